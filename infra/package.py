"""Cut the Glue job's artifacts out of the wheel: ``python infra/package.py dist`` (``make package`` runs it).

The wheel in ``dist/`` is the single source of what is deployed anywhere. This adds, beside it:

* ``dist/glue/retail_transform.py``: the job script (the wheel's ``glue/retail_transform.py``), which Glue runs;
* ``dist/glue/retail_transform_libs.zip``: ``--extra-py-files``, the wheel's ``retail_core/`` and ``glue/``
  (core + transform) without the local runtime (``glue/local.py`` and its log4j settings), which Glue never
  runs and which the import contracts keep the job from needing;
* ``dist/glue/wheelhouse/``: the Glue job's Python dependencies beyond Glue's own, as wheels for Glue 5.0's
  Python (3.11) and platform (manylinux, glibc 2.34, x86_64), with a ``requirements.txt`` of exact versions and
  hashes: great-expectations as pinned in ``constraints.txt`` and what it needs that Glue 5.0 does not already
  provide (``infra/glue-5.0-provided.txt``, AWS's list, whose versions the resolution is held to). The job's pip
  installs them with ``--no-index``: nothing from PyPI at run time, and no Glue library replaced;
* ``dist/MANIFEST.json``: each artifact's SHA-256 and, for the zip, its members; ``infra/deploy.sh`` keys the
  Glue upload by these hashes, so a changed job gets a new S3 key. ``glue_wheelhouse`` lists the wheels.

The zip's entries carry a fixed timestamp, so the same wheel always makes the same zip (and hash).

The wheelhouse needs PyPI (or the pip configuration's index) once: the resolution and the wheels are kept in
``build/glue-wheelhouse/<key>/`` with what they depend on (the requirements, the target, the pin of every package
resolved), and a later ``make package`` whose pins still give that resolution copies them without calling pip:
offline, in well under a second.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

GLUE_PACKAGES = ("retail_core/", "glue/")
LOCAL_ONLY = ("glue/local.py", "glue/log4j2.properties")
SCRIPT = "glue/retail_transform.py"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "constraints.txt"
GLUE_PROVIDED = Path(__file__).resolve().with_name("glue-5.0-provided.txt")
WHEELHOUSE_CACHE = REPO / "build" / "glue-wheelhouse"
# What the job imports beyond retail_core, glue and Glue's own libraries (glue/quality.py).
GLUE_REQUIREMENTS = ("great-expectations",)
# Glue 5.0's interpreter and platform: Python 3.11 on Amazon Linux 2023 (glibc 2.34), x86_64. pip takes a manylinux
# tag as exactly that tag, so every glibc from 2.34 down is named (manylinux2014 adds manylinux2010 and 1).
GLUE_PYTHON = "3.11"
GLUE_PLATFORMS = (*(f"manylinux_2_{minor}_x86_64" for minor in range(34, 16, -1)), "manylinux2014_x86_64")
_TARGET = [
    "--only-binary=:all:",
    "--implementation", "cp",
    "--python-version", GLUE_PYTHON,
    "--abi", "cp311",
    *(arg for tag in GLUE_PLATFORMS for arg in ("--platform", tag)),
]  # fmt: skip
_CACHE_FORMAT = 1  # bump when what the cache holds changes


def glue_members(names: list[str]) -> list[str]:
    """The wheel's files that go into the Glue zip: core + transform, no local runtime, no bytecode."""
    return sorted(
        n
        for n in names
        if n.startswith(GLUE_PACKAGES) and n not in LOCAL_ONLY and not n.endswith((".pyc", "/"))
    )


def package(dist: Path, wheelhouse_cache: Path = WHEELHOUSE_CACHE) -> dict[str, object]:
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
        "glue_wheelhouse": glue_wheelhouse(dist, out / "wheelhouse", wheelhouse_cache),
    }
    (dist / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the Glue job's wheelhouse -------------------------------------------------------------------------------


class PackageError(Exception):
    """What ``make package`` cannot build, in one line the user can act on."""


def glue_wheelhouse(dist: Path, out: Path, cache: Path = WHEELHOUSE_CACHE) -> dict[str, object]:
    """Fill ``out`` with the Glue job's wheels and their requirements.txt; return the manifest's entry for them.

    The wheels come from ``cache`` when it holds this resolution already, else from pip (resolved, downloaded,
    each file checked against the hash the index gave), and are kept there for the next build."""
    pinned = read_pins(CONSTRAINTS.read_text(encoding="utf-8"))
    provided = read_pins(GLUE_PROVIDED.read_text(encoding="utf-8"))
    # Glue's versions win over our lock for what Glue installs: the wheelhouse must fit the job's environment.
    constraints = {**pinned, **provided}
    kept = _kept_resolution(cache, constraints) or _build_wheelhouse(cache, constraints, provided, pinned)
    resolution = json.loads((kept / "resolution.json").read_text(encoding="utf-8"))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    files = []
    for entry in resolution["wheels"]:
        shutil.copyfile(kept / entry["file"], out / entry["file"])
        files.append({**entry, "file": (out / entry["file"]).relative_to(dist).as_posix()})
    shutil.copyfile(kept / "requirements.txt", out / "requirements.txt")
    return {
        "requirements": (out / "requirements.txt").relative_to(dist).as_posix(),
        "requirements_sha256": _sha256(out / "requirements.txt"),
        "files": files,
        "glue_provides": resolution["glue_provides"],
        "target": {"glue_version": "5.0", "python": GLUE_PYTHON, "platform": GLUE_PLATFORMS[0]},
    }


def read_pins(text: str) -> dict[str, str]:
    """``name==version`` lines (comments and blank lines aside) as {normalized name: version}."""
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not version.strip():
            raise PackageError(f"not an exact pin: {line!r}")
        pins[normalize(name)] = version.strip()
    return pins


def normalize(name: str) -> str:
    """PEP 503's name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _inputs(pins: dict[str, str]) -> dict[str, object]:
    """What a resolution depends on: the requirements, the target, and the pin of every package it resolved."""
    return {
        "format": _CACHE_FORMAT,
        "requirements": list(GLUE_REQUIREMENTS),
        "target": _TARGET,
        "pins": dict(sorted(pins.items())),
    }


def _kept_resolution(cache: Path, constraints: dict[str, str]) -> Path | None:
    """A kept resolution that still holds under ``constraints``, its wheels intact; None if there is none.

    A resolution holds while every package it resolved keeps its pin: their dependencies are then the same, so
    no other pin can change the outcome. A change to the lock elsewhere (dbt, moto, ...) keeps the cache."""
    if not cache.is_dir():
        return None
    for kept in sorted(cache.iterdir()):
        try:
            resolution = json.loads((kept / "resolution.json").read_text(encoding="utf-8"))
            pins = resolution["inputs"]["pins"]
            if resolution["inputs"] != _inputs({n: constraints.get(n, "") for n in pins}):
                continue
            if (kept / "requirements.txt").is_file() and all(
                _sha256(kept / entry["file"]) == entry["sha256"] for entry in resolution["wheels"]
            ):
                return kept
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def _build_wheelhouse(
    cache: Path, constraints: dict[str, str], provided: dict[str, str], pinned: dict[str, str]
) -> Path:
    """Resolve against ``constraints`` for Glue's target; download what Glue lacks into a new folder of ``cache``."""
    here = (sys.version_info[:2], sys.platform, platform.machine())
    if here != ((3, 11), "linux", "x86_64"):
        # pip evaluates environment markers (python_version, sys_platform) for the interpreter running it.
        raise PackageError(
            f"the Glue wheelhouse is resolved by Glue 5.0's Python (3.11 on Linux x86_64), not "
            f"{here[0][0]}.{here[0][1]} on {here[1]} {here[2]}: run make package there once "
            f"and keep its {cache}/"
        )
    cache.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=".staged-", dir=cache))  # renamed into place when whole
    staged.chmod(0o755)
    try:
        with tempfile.TemporaryDirectory(prefix="glue-wheelhouse-") as tmp:
            scratch = Path(tmp)
            (scratch / "constraints.txt").write_text(
                "".join(f"{name}=={version}\n" for name, version in sorted(constraints.items())),
                encoding="utf-8",
            )
            _pip(
                "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(scratch / "report.json"),
                *_TARGET, "--target", str(scratch / "target"), "-c", str(scratch / "constraints.txt"),
                *GLUE_REQUIREMENTS,
            )  # fmt: skip
            report = json.loads((scratch / "report.json").read_text(encoding="utf-8"))
            ship, relies_on = _split(report, provided, pinned)
            inputs = _inputs({**relies_on, **{w["name"]: w["version"] for w in ship}})
            (scratch / "download.txt").write_text(
                "".join(f"{w['name']}=={w['version']} --hash=sha256:{w['sha256']}\n" for w in ship),
                encoding="utf-8",
            )
            download = ["download", "--quiet", "--no-deps", *_TARGET, "-d", str(staged)]
            _pip(*download, "-r", str(scratch / "download.txt"))
        entries = []
        for wheel in ship:
            path = staged / wheel["file"]
            if not path.is_file() or _sha256(path) != wheel["sha256"]:
                raise PackageError(f"pip did not download {wheel['file']} with the hash the index gave")
            entries.append({**wheel, "bytes": path.stat().st_size})
        (staged / "requirements.txt").write_text(_requirements(ship, relies_on), encoding="utf-8")
        (staged / "resolution.json").write_text(
            json.dumps({"inputs": inputs, "wheels": entries, "glue_provides": relies_on}, indent=2) + "\n",
            encoding="utf-8",
        )
        kept = cache / hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
        if kept.exists() and _kept_resolution(cache, constraints) != kept:
            shutil.rmtree(kept)  # a damaged copy of this resolution
        if not kept.exists():  # else another build kept the same resolution meanwhile: use that one
            os.replace(staged, kept)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    _forget_other_formats(cache)
    return kept


def _forget_other_formats(cache: Path) -> None:
    """Remove what an older (or newer) package.py kept: it is never used by this one."""
    for kept in cache.iterdir():
        if kept.name.startswith("."):
            continue
        try:
            fmt = json.loads((kept / "resolution.json").read_text(encoding="utf-8"))["inputs"]["format"]
        except (OSError, ValueError, KeyError, TypeError):
            fmt = None
        if fmt != _CACHE_FORMAT:
            shutil.rmtree(kept, ignore_errors=True)


def _split(
    report: dict[str, object], provided: dict[str, str], pinned: dict[str, str]
) -> tuple[list[dict[str, str]], dict[str, str]]:
    """The resolution as (the wheels to ship, sorted by name; {name: version} of what Glue provides)."""
    ship, relies_on = [], {}
    for item in report["install"]:  # type: ignore[union-attr]
        name, version = normalize(item["metadata"]["name"]), item["metadata"]["version"]
        if name in provided:
            relies_on[name] = version  # the constraint held it to Glue's version
            continue
        if pinned.get(name) != version:
            raise PackageError(
                f"the Glue wheelhouse would ship {name} {version}, which constraints.txt does not pin: "
                "add it to the lock (see the comment at its top)"
            )
        info = item["download_info"]
        ship.append(
            {
                "name": name,
                "version": version,
                "file": info["url"].rsplit("/", 1)[1],
                "sha256": info["archive_info"]["hashes"]["sha256"],
            }
        )
    return sorted(ship, key=lambda w: w["name"]), dict(sorted(relies_on.items()))


def _requirements(ship: list[dict[str, str]], relies_on: dict[str, str]) -> str:
    lines = [
        "# The Glue job's wheelhouse (infra/package.py): install with",
        "#   pip install --no-index --find-links <this folder> -r requirements.txt",
        "# over AWS Glue 5.0's own libraries, of which it needs (and does not replace):",
        *(f"#   {name}=={version}" for name, version in relies_on.items()),
    ]
    lines += [f"{w['name']}=={w['version']} \\\n    --hash=sha256:{w['sha256']}" for w in ship]
    return "\n".join(lines) + "\n"


def _pip(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")] or [
            done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        ]
        raise PackageError(f"pip {args[0]} for the Glue wheelhouse failed: {errors[0]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infra/package.py", description=__doc__.split("\n", 1)[0])
    parser.add_argument("dist", nargs="?", default="dist", type=Path)
    parser.add_argument("--wheelhouse-cache", type=Path, default=WHEELHOUSE_CACHE)
    args = parser.parse_args(argv)
    try:
        built = package(args.dist, args.wheelhouse_cache)
    except PackageError as exc:
        print(f"package: error: {exc}", file=sys.stderr)
        return 2
    wheelhouse = built["glue_wheelhouse"]
    size = sum(f["bytes"] for f in wheelhouse["files"])
    print(
        f"package: {built['wheel']['file']}, glue/retail_transform.py, glue/retail_transform_libs.zip "
        f"({len(built['glue_libs']['members'])} files), glue/wheelhouse/ ({len(wheelhouse['files'])} wheels, "
        f"{size / 1e6:.1f} MB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
