"""Named fault-injection points: the places where a crash or an I/O error must leave the lake readable.

Code that writes to the lake calls :func:`point` at each step where dying matters (after each file is placed,
before and after a manifest, after a lease is taken). Nothing happens unless the point is armed, through the
``RETAIL_FAULT`` environment variable (for a child process: the CLI, the ECS task) or :func:`armed` (in the
same process)::

    RETAIL_FAULT=promote.after_manifest=kill          # SIGKILL this process the first time the point is reached
    RETAIL_FAULT=promote.after_part=enospc@2          # raise ENOSPC the second time
    RETAIL_FAULT=ingest.before_manifest=eio,lease.acquired=kill

Every point is declared in :data:`POINTS`, so a test can walk all of them and a misspelt name fails at once
instead of never firing. The tests in ``tests/integration/test_faults.py`` arm each one and check that the last
good output is intact, that a rerun converges, and that nothing is left behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass

ENV = "RETAIL_FAULT"

# name -> where it sits. The order is the order a transform meets them.
POINTS: dict[str, str] = {
    "lease.acquired": "a writer has just taken the date's lease, before it writes anything",
    "ingest.after_old_manifest": "a re-delivery: the old raw manifest is deleted, the new CSV not yet landed",
    "ingest.before_manifest": "the new raw CSV has landed; its manifest is not yet written",
    "promote.after_part": "after each new part file is placed in the published folder (not yet named anywhere)",
    "promote.before_manifest": "every new part is placed; the partition manifest still names the old ones",
    "promote.after_manifest": "the new manifest is written (the switch); old files not yet swept",
    "promote.after_sweep": "the old files are swept; the staging folder not yet removed",
    "transform.between_zones": "a zone is promoted, the next not yet (@1: after quarantine, @2: after returns)",
    "transform.before_report": "both zones are promoted; the run report not yet written",
}

ACTIONS = ("kill", "enospc", "eio", "interrupt")  # interrupt: KeyboardInterrupt, as a Ctrl-C raises it


@dataclass(frozen=True)
class Fault:
    point: str
    action: str
    hit: int = 1  # fire on this visit of the point (1 = the first)


_IN_PROCESS: list[Fault] = []
_VISITS: dict[str, int] = {}


def parse(spec: str) -> list[Fault]:
    """``point=action[@n]`` items, comma-separated; ValueError names what is wrong."""
    faults = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, action = item.partition("=")
        action, _, hit = action.partition("@")
        if not sep or name not in POINTS or action not in ACTIONS:
            raise ValueError(
                f"{ENV}: {item!r} is not point=action[@n] with a point of {sorted(POINTS)} "
                f"and an action of {list(ACTIONS)}"
            )
        if hit and not (hit.isdigit() and int(hit) >= 1):
            raise ValueError(f"{ENV}: {item!r}: the visit number after @ must be 1 or more")
        faults.append(Fault(name, action, int(hit or 1)))
    return faults


def point(name: str) -> None:
    """Fire the fault armed at ``name``, if any; otherwise return at once."""
    if name not in POINTS:
        raise KeyError(f"undeclared fault point {name!r}")
    spec = os.environ.get(ENV, "")
    if not spec and not _IN_PROCESS:
        return
    _VISITS[name] = _VISITS.get(name, 0) + 1
    for fault in [*_IN_PROCESS, *parse(spec)]:
        if fault.point == name and fault.hit == _VISITS[name]:
            _fire(fault)


def _fire(fault: Fault) -> None:
    if fault.action == "kill":
        # SIGKILL, not sys.exit: no finally block, no atexit, no flush, as when the OOM killer or a stopped task
        # ends the process.
        os.kill(os.getpid(), signal.SIGKILL)
    if fault.action == "interrupt":
        raise KeyboardInterrupt(f"injected at {fault.point}")
    code = errno.ENOSPC if fault.action == "enospc" else errno.EIO
    raise OSError(code, f"{os.strerror(code)} (injected at {fault.point})")


@contextlib.contextmanager
def armed(name: str, action: str, hit: int = 1) -> Iterator[None]:
    """Arm ``name`` in this process for the block (tests); visit counts start again at zero."""
    (fault,) = parse(f"{name}={action}@{hit}")
    _IN_PROCESS.append(fault)
    _VISITS.clear()
    try:
        yield
    finally:
        _IN_PROCESS.remove(fault)
        _VISITS.clear()


def check_env(env: dict[str, str] | None = None) -> None:
    """Refuse a malformed ``RETAIL_FAULT`` before any work (ValueError with the reason)."""
    parse((os.environ if env is None else env).get(ENV, ""))
