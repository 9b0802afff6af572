"""One writer per dataset and ingest date: a lease in the lake that the ingest and the transform take first; and
one build of the warehouse at a time (:func:`held_warehouse`), a lease of the same kind on ``warehouse.json``.

Two writers of one date (two ingests, two transforms, an ingest and a transform reading its raw file) would sweep
each other's staging and temp files and publish in any order. Each stage therefore takes the date's lease before
it writes, and a second writer exits at once with :class:`LeaseHeld` (exit code 5), having changed nothing.

* **Local folder** (``leases/online_retail/ingest_date=D.json``): an exclusive ``flock`` on the file. The kernel
  drops it when the holder's process ends, however it ends, so a killed writer never blocks the next one and
  there is nothing to expire. The file names the holder while it is held and is removed on release.
* **S3** (same key): S3's conditional writes. The lease is created with ``If-None-Match: *`` (only one
  creator succeeds), carries an expiry, and is renewed by a heartbeat thread with ``If-Match`` on its ETag. A
  holder that dies stops renewing; once its expiry has passed, the next writer takes the lease over, again
  with ``If-Match`` so that of two writers racing for a dead lease only one wins. A holder whose renewal fails
  (its lease expired and was taken) learns it at its next :meth:`Lease.check`, which the writers call before
  every publishing step, and stops with :class:`LeaseLost` before it publishes anything.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from retail_core import faults, layout
from retail_core.errors import InputError, PipelineError
from retail_core.lake import Lake, LocalLake, S3Lake

log = logging.getLogger(__name__)

ENV_TTL = "RETAIL_LEASE_TTL_S"
DEFAULT_TTL_S = 600  # renewed every third of it; a dead holder blocks its date for at most this long
_MIN_TTL_S, _MAX_TTL_S = 3, 24 * 3600


class LeaseHeld(PipelineError):
    """Another writer holds the date's lease; nothing was changed."""

    exit_code = 5


class LeaseLost(PipelineError):
    """This writer's lease expired and another took it; it stopped before publishing."""

    exit_code = 5


def ttl_from_env(env: Mapping[str, str] | None = None) -> int:
    """``RETAIL_LEASE_TTL_S`` (seconds, default 600) or an InputError naming the accepted range."""
    text = ((os.environ if env is None else env).get(ENV_TTL) or "").strip()
    if not text:
        return DEFAULT_TTL_S
    if not text.isdigit() or not _MIN_TTL_S <= int(text) <= _MAX_TTL_S:
        raise InputError(
            "bad lease expiry",
            f"{ENV_TTL}={text[:20]!r}",
            f"use whole seconds from {_MIN_TTL_S} to {_MAX_TTL_S}",
        )
    return int(text)


class Lease:
    """A held lease; :meth:`check` raises :class:`LeaseLost` once it is no longer this writer's."""

    def __init__(self, where: str, holder: dict[str, Any], what: str = "this date") -> None:
        self.where = where
        self.holder = holder
        self.what = what
        self._lost: str | None = None
        # S3 only: when (time.monotonic()) the expiry last written runs out. Past it, another writer may take the
        # lease over at any moment, whether or not this holder has heard of it yet.
        self._deadline: float | None = None

    def check(self) -> None:
        if self._lost is None and self._deadline is not None and time.monotonic() >= self._deadline:
            self._mark_lost("its expiry passed before it could be renewed (S3 unreachable?)")
        if self._lost is not None:
            raise LeaseLost(
                f"this run's lease on {self.what} was lost",
                self.where,
                f"{self._lost}; nothing more was published",
            )

    def _mark_lost(self, why: str) -> None:
        self._lost = why


def held(
    lake: Lake, ingest_date: dt.date, *, stage: str, run_id: str, ttl_s: int | None = None
) -> contextlib.AbstractContextManager[Lease]:
    """Hold the lease of ``ingest_date`` for the block, or raise :class:`LeaseHeld` without changing anything."""
    return _held(lake, layout.lease_key(ingest_date), "this date", stage=stage, run_id=run_id, ttl_s=ttl_s)


def held_warehouse(
    lake: Lake, *, stage: str, run_id: str, ttl_s: int | None = None
) -> contextlib.AbstractContextManager[Lease]:
    """Hold the warehouse's lease for the block: one build (load, build, publish) of the lake's warehouse at a
    time. Two would load, build the audit schema and publish over each other: one could publish the other's
    audited tables before their tests ran."""
    return _held(lake, layout.warehouse_lease_key(), "the warehouse", stage=stage, run_id=run_id, ttl_s=ttl_s)


@contextlib.contextmanager
def _held(
    lake: Lake, key: str, what: str, *, stage: str, run_id: str, ttl_s: int | None = None
) -> Iterator[Lease]:
    holder = {
        "stage": stage,
        "run_id": run_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "token": uuid.uuid4().hex,
        "acquired_at": _now().isoformat(timespec="seconds"),
    }
    if isinstance(lake, LocalLake):
        manager = _local(lake, key, holder, what)
    elif isinstance(lake, S3Lake):
        manager = _s3(lake, key, holder, ttl_s or ttl_from_env(), what)
    else:  # pragma: no cover - every lake is one of the two
        raise TypeError(type(lake).__name__)
    with manager as lease:
        faults.point("lease.acquired")
        yield lease


def _describe(holder: Mapping[str, Any]) -> str:
    return (
        f"held by the {holder.get('stage', '?')} of run {holder.get('run_id', '?')} "
        f"on {holder.get('host', '?')} (pid {holder.get('pid', '?')}) since {holder.get('acquired_at', '?')}"
    )


@contextlib.contextmanager
def _local(lake: LocalLake, key: str, holder: dict[str, Any], what: str) -> Iterator[Lease]:
    import fcntl

    path = lake.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise LeaseHeld(
                f"another writer is working on {what}", lake.uri(key), _held_by_text(path)
            ) from None
        # The previous holder removes the file as it releases; a lock taken on a file that was removed (or
        # replaced) in the meantime guards nothing. Try again on the file now at the path.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(holder, sort_keys=True) + "\n").encode())
        yield Lease(lake.uri(key), holder, what)
    finally:
        # Remove, then unlock: a waiter that locked the old file sees it is gone and retries on a new one.
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def _held_by_text(path: os.PathLike[str]) -> str:
    try:
        holder = json.loads(open(path, encoding="utf-8").read() or "{}")  # noqa: SIM115 - read once
    except (OSError, ValueError):
        holder = {}
    return (_describe(holder) + "; wait for it to finish") if holder else "wait for it to finish"


@contextlib.contextmanager
def _s3(lake: S3Lake, key: str, holder: dict[str, Any], ttl_s: int, what: str) -> Iterator[Lease]:
    def body() -> bytes:
        expires = _now() + dt.timedelta(seconds=ttl_s)
        return json.dumps({**holder, "expires_at": expires.isoformat(timespec="seconds")}).encode()

    asked = time.monotonic()  # the expiry written below is at least this plus ttl_s
    etag = lake.put_if_absent(key, body())
    if etag is None:
        current = lake.get_with_etag(key)
        if current is None:  # released between the two calls
            etag = lake.put_if_absent(key, body())
        else:
            data, current_etag = current
            other = _parse(data)
            if _expired(other):
                etag = lake.put_if_match(key, body(), current_etag)
                if etag is not None:
                    log.warning("took over an expired lease: it was %s", _describe(other))
            if etag is None:
                raise LeaseHeld(
                    f"another writer is working on {what}",
                    lake.uri(key),
                    f"{_describe(other)}, until {other.get('expires_at', '?')}; wait for it to finish "
                    "(a lease whose holder died expires by itself)",
                )
    lease = Lease(lake.uri(key), holder, what)
    lease._deadline = asked + ttl_s
    stop = threading.Event()
    state = {"etag": etag}

    def renew() -> None:
        while not stop.wait(ttl_s / 3):
            asked = time.monotonic()
            try:
                renewed = lake.put_if_match(key, body(), state["etag"])
            except Exception as exc:  # S3's answer or no answer at all (a timeout, a reset)
                # Try again at the next beat; once the expiry passes unrenewed, check() reports the lease lost.
                line = exc.one_line() if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {exc}"
                log.warning("could not renew the lease: %s", line)
                continue
            if renewed is None:
                lease._mark_lost("another writer took it over after it expired")
                return
            state["etag"] = renewed
            lease._deadline = asked + ttl_s

    beat = threading.Thread(target=renew, name="lease-heartbeat", daemon=True)
    beat.start()
    try:
        yield lease
    finally:
        stop.set()
        beat.join()
        if lease._lost is None:
            try:
                lake.delete_if_match(key, state["etag"])
            except Exception as exc:  # the lease then expires by itself; the run's outcome stands
                log.warning("could not release the lease (it expires by itself): %s", type(exc).__name__)


def _parse(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _expired(holder: Mapping[str, Any]) -> bool:
    try:
        expires = dt.datetime.fromisoformat(str(holder["expires_at"]))
    except (KeyError, ValueError):
        return True  # unreadable: nobody can prove they hold it
    return expires <= _now()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
