"""Ctrl-C as one KeyboardInterrupt, remembered.

PySpark replaces Python's SIGINT handler with one that calls the JVM (``cancelAllJobs``) from inside the signal
handler. When the signal lands while the main thread is itself in a py4j call, that nested call fails
("reentrant call"), py4j logs pages of tracebacks, the interrupt is lost and the run goes on. This module's
handler only raises KeyboardInterrupt and notes that it did: the entry points install it (again after Spark has
started), and treat any error that follows an interrupt (a py4j call cut off mid-answer) as the interrupt itself,
exit 130, one line. The JVM ignores SIGINT (PySpark starts it so) and is stopped with the session.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_seen = threading.Event()


def _handler(signum: int, frame: FrameType | None) -> None:
    _seen.set()
    raise KeyboardInterrupt


def install() -> None:
    """Make SIGINT raise KeyboardInterrupt and be remembered (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)


def seen() -> bool:
    """Whether a SIGINT arrived since the process started."""
    return _seen.is_set()
