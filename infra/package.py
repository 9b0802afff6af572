"""Cut the Glue job's artifacts out of the wheel: ``python infra/package.py dist`` (``make package`` runs it).

The wheel in ``dist/`` is the single source of what is deployed anywhere. This adds, beside it:

* ``dist/glue/retail_transform.py``: the job script (the wheel's ``glue/retail_transform.py``), which Glue runs;
* ``dist/glue/retail_transform_libs.zip``: ``--extra-py-files``, the wheel's ``retail_core/`` and ``glue/``
  (core + transform) without the local runtime (``glue/local.py`` and its log4j settings), which Glue never
  runs and which the import contracts keep the job from needing;
* ``dist/MANIFEST.json``: each artifact's SHA-256 and, for the zip, its members; ``infra/deploy.sh`` keys the
  Glue upload by these hashes, so a changed job gets a new S3 key.

The zip's entries carry a fixed timestamp, so the same wheel always makes the same zip (and hash).
"""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from pathlib import Path

GLUE_PACKAGES = ("retail_core/", "glue/")
LOCAL_ONLY = ("glue/local.py", "glue/log4j2.properties")
SCRIPT = "glue/retail_transform.py"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def glue_members(names: list[str]) -> list[str]:
    """The wheel's files that go into the Glue zip: core + transform, no local runtime, no bytecode."""
    return sorted(
        n
        for n in names
        if n.startswith(GLUE_PACKAGES) and n not in LOCAL_ONLY and not n.endswith((".pyc", "/"))
    )


def package(dist: Path) -> dict[str, object]:
    wheels = sorted(dist.glob("online_retail_pipeline-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"package: expected one wheel in {dist}, found {len(wheels)}: run `make package`")
    wheel = wheels[0]
    out = dist / "glue"
    out.mkdir(parents=True, exist_ok=True)
    libs = out / "retail_transform_libs.zip"
    with zipfile.ZipFile(wheel) as whl:
        members = glue_members(whl.namelist())
        (out / "retail_transform.py").write_bytes(whl.read(SCRIPT))
        tmp = libs.with_suffix(".zip.tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in members:
                zf.writestr(zipfile.ZipInfo(name, date_time=FIXED_TIME), whl.read(name), zipfile.ZIP_DEFLATED)
        tmp.replace(libs)
    manifest = {
        "wheel": {"file": wheel.name, "sha256": _sha256(wheel)},
        "glue_script": {"file": "glue/retail_transform.py", "sha256": _sha256(out / "retail_transform.py")},
        "glue_libs": {"file": "glue/retail_transform_libs.zip", "sha256": _sha256(libs), "members": members},
    }
    (dist / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


if __name__ == "__main__":
    built = package(Path(sys.argv[1] if len(sys.argv) > 1 else "dist"))
    print(
        f"package: {built['wheel']['file']}, glue/retail_transform.py, glue/retail_transform_libs.zip "
        f"({len(built['glue_libs']['members'])} files)"
    )
