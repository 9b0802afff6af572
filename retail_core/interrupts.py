"""Ctrl-C and SIGTERM as one exception, remembered.

PySpark replaces Python's SIGINT handler with one that calls the JVM (``cancelAllJobs``) from inside the signal
handler. When the signal lands while the main thread is itself in a py4j call, that nested call fails
("reentrant call"), py4j logs pages of tracebacks, the interrupt is lost and the run goes on. This module's
handlers only raise and note that they did: KeyboardInterrupt for SIGINT, SystemExit(143) for SIGTERM (what ECS
sends a task it stops, through the image's entrypoint), which Python's default would end without a ``finally``:
no failed report, Spark's scratch folder left behind. The entry points install them (again after Spark has
started), and treat any error that follows a signal (a py4j call cut off mid-answer) as the signal itself: exit
128 + its number, one line. The JVM ignores SIGINT (PySpark starts it so) and is killed with the session.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_received: list[int] = []


def _handler(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def install() -> None:
    """Make SIGINT and SIGTERM raise, and be remembered (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _handler)


def seen() -> bool:
    """Whether SIGINT or SIGTERM arrived since the process started."""
    return bool(_received)


def exit_code() -> int:
    """128 + the first signal's number (130 for Ctrl-C, 143 for SIGTERM), as a shell reports it."""
    return 128 + (_received[0] if _received else signal.SIGINT)
