"""The Glue job's wheelhouse (``make package``: dist/glue/wheelhouse/): great-expectations and only what Glue 5.0
lacks, at the lock's versions, for Glue's Python and platform, hashed; kept between builds while its pins hold.
tests/integration/test_packaged.py installs it as the job does (pip ``--no-index`` over Glue's own libraries at
AWS's versions) and runs the packaged job on it."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _package_module() -> ModuleType:
    """infra/package.py (a script, not a package), for its pin reader and file names."""
    spec = importlib.util.spec_from_file_location("infra_package", REPO / "infra" / "package.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


package = _package_module()
PINNED = package.read_pins((REPO / "constraints.txt").read_text(encoding="utf-8"))
GLUE = package.read_pins(package.GLUE_PROVIDED.read_text(encoding="utf-8"))
_REQUIREMENT = re.compile(
    r"^(?P<name>[\w.-]+)==(?P<version>\S+) \\\n    --hash=sha256:(?P<sha>[0-9a-f]{64})$", re.M
)


def _wheelhouse(dist: Path) -> dict:
    return json.loads((dist / "MANIFEST.json").read_text(encoding="utf-8"))["glue_wheelhouse"]


def test_the_wheelhouse_is_great_expectations_and_only_what_glue_lacks_pinned_and_hashed(dist: Path) -> None:
    wheelhouse = _wheelhouse(dist)
    files = {f["name"]: f for f in wheelhouse["files"]}
    assert files["great-expectations"]["version"] == PINNED["great-expectations"]
    # Nothing Glue 5.0 brings is shipped again: not its pandas, numpy or pyarrow, boto3, or Spark's pyspark.
    assert not files.keys() & GLUE.keys(), sorted(files.keys() & GLUE.keys())
    for name, entry in files.items():
        path = dist / entry["file"]
        assert entry["version"] == PINNED[name], f"{name} is not the version constraints.txt pins"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], path.name
        assert path.stat().st_size == entry["bytes"]
        # Glue 5.0's interpreter and platform: CPython 3.11 (or pure Python), manylinux x86_64 up to glibc 2.34.
        _, _, python, abi, platforms = path.name[: -len(".whl")].rsplit("-", 4)
        assert python in ("py3", "py2.py3", "cp311") and abi in ("none", "abi3", "cp311"), path.name
        for tag in platforms.split("."):
            glibc = re.fullmatch(r"manylinux_2_(\d+)_x86_64", tag)
            assert tag in ("any", "manylinux2014_x86_64") or (glibc and int(glibc[1]) <= 34), path.name
    # Every wheel in the folder is in the manifest, and the requirements name each with its version and hash.
    folder = dist / Path(wheelhouse["requirements"]).parent
    assert sorted(p.name for p in folder.glob("*.whl")) == sorted(
        Path(f["file"]).name for f in files.values()
    )
    requirements = (dist / wheelhouse["requirements"]).read_text(encoding="utf-8")
    assert hashlib.sha256(requirements.encode()).hexdigest() == wheelhouse["requirements_sha256"]
    listed = {m["name"]: (m["version"], m["sha"]) for m in _REQUIREMENT.finditer(requirements)}
    assert listed == {name: (f["version"], f["sha256"]) for name, f in files.items()}
    # What it needs of Glue's own, at Glue's versions.
    provides = wheelhouse["glue_provides"]
    assert {"numpy", "pandas"} <= provides.keys()
    assert all(GLUE[name] == version for name, version in provides.items())


def test_the_kept_wheelhouse_is_reused_offline_until_a_pin_it_resolved_changes(tmp_path, monkeypatch) -> None:
    cache, out = tmp_path / "cache", tmp_path / "dist" / "glue" / "wheelhouse"
    first = package.glue_wheelhouse(tmp_path / "dist", out, cache)  # resolves and downloads, once

    def no_pip(*args: str) -> None:
        raise package.PackageError(f"pip {args[0]} called")

    monkeypatch.setattr(package, "_pip", no_pip)
    lock = tmp_path / "constraints.txt"
    monkeypatch.setattr(package, "CONSTRAINTS", lock)
    # Another pin of the lock moves (one the Glue job never sees): the kept resolution still holds, no pip.
    lock.write_text(_repin("dbt-core", "0.0.1"), encoding="utf-8")
    assert package.glue_wheelhouse(tmp_path / "dist", out, cache) == first
    # A pin the resolution used moves: it is resolved again (here, with no pip, a one-line error).
    shipped = next(f for f in first["files"] if f["name"] != "great-expectations")
    lock.write_text(_repin(shipped["name"], "0.0.1"), encoding="utf-8")
    with pytest.raises(package.PackageError, match=r"^pip install called$"):
        package.glue_wheelhouse(tmp_path / "dist", out, cache)


def _repin(name: str, version: str) -> str:
    """constraints.txt with ``name`` pinned at ``version`` instead."""
    lines = (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines()
    assert any(package.normalize(line.split("==")[0]) == name for line in lines if "==" in line)
    return "".join(
        f"{name}=={version}\n"
        if "==" in line and package.normalize(line.split("==")[0]) == name
        else line + "\n"
        for line in lines
    )
