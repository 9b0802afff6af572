"""The import contracts (pyproject.toml, [tool.importlinter]) hold, and they fail on the imports they forbid.

`make test` runs `lint-imports` on the tree itself; here it runs on a copy of the packages with one wrong
import added, to show that a wrong-way import or a cycle would fail CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("retail_core", "ingestion", "glue", "warehouse", "retail_pipeline", "orchestration")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tmp_path: Path, module: str | None = None, line: str = "") -> subprocess.CompletedProcess[str]:
    """lint-imports on a copy of the packages, ``line`` appended to ``module`` (a path under the copy)."""
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("node", "__pycache__")
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    if module:
        with (tmp_path / module).open("a", encoding="utf-8") as out:
            out.write(f"\n{line}\n")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )


def test_the_tree_keeps_every_contract(tmp_path):
    done = _lint(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Contracts: 3 kept, 0 broken." in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # the core imports the CLI
        ("retail_core/layout.py", "import retail_pipeline.cli", "retail_core.layout -> retail_pipeline.cli"),
        # one stage imports another
        ("ingestion/ingest.py", "from warehouse import project", "ingestion.ingest -> warehouse.project"),
        # the Glue job reaches for the laptop's runtime, which its zip does not carry
        ("glue/job.py", "from glue import local", "glue.job -> glue.local"),
        # a cycle inside a package, hidden in a function or not
        ("glue/runtime.py", "def _f():\n    from glue import job", ".runtime -> .job"),
    ],
)
def test_a_wrong_way_import_or_a_cycle_breaks_a_contract(tmp_path, module, line, broken):
    done = _lint(tmp_path, module, line)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "BROKEN" in done.stdout
    assert broken in done.stdout
