"""The entry points run a stage with the garbage collector set for a batch process (retail_core/gc_policy.py):
rare young-generation passes while the stage runs, every object frozen before the interpreter tears down."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap

import pytest

from retail_core import gc_policy

# In a process of its own: an entry point changes the collector for the whole process.
PROBE = textwrap.dedent(
    """
    import gc, json
    import {module} as entry

    seen = {{}}

    def main():
        seen["threshold"] = list(gc.get_threshold())
        seen["frozen_during"] = gc.get_freeze_count()
        {ending}

    entry.main = main
    try:
        code = entry.console()
    except SystemExit as exc:
        code = f"exit {{exc.code}}"
    print(json.dumps({{"code": code, **seen, "frozen_after": gc.get_freeze_count()}}))
    """
)


@pytest.mark.parametrize("module", ["retail_pipeline.cli", "glue.retail_transform"])
@pytest.mark.parametrize(
    ("ending", "expected_code"),
    [("return 3", 3), ("raise SystemExit(2)", "exit 2")],  # argparse's usage errors and --help exit this way
)
def test_the_entry_point_runs_main_with_batch_thresholds_and_freezes_what_is_left_before_exit(
    module: str, ending: str, expected_code: object
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, ending=ending)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["code"] == expected_code
    assert seen["threshold"] == list(gc_policy.BATCH_THRESHOLDS)
    assert seen["frozen_during"] == 0  # while the stage runs, its cyclic garbage is still collected
    assert seen["frozen_after"] > 0


def test_main_called_in_process_keeps_pythons_collector() -> None:
    """Tests and embedders call ``main``: only the entry points change the process's collector."""
    from retail_pipeline import cli

    before = gc.get_threshold()
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
