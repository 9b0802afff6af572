"""A throwaway PostgreSQL server for tests: its own data folder, 127.0.0.1 on a free port, fsync off.

:func:`running_postgres` runs ``initdb`` and ``pg_ctl start`` from the server binaries it finds (PATH, then
Debian's ``/usr/lib/postgresql/<version>/bin``), yields a :class:`PostgresServer`, and at the end stops the
server and removes its folder. PostgreSQL refuses to run as root: as root the binaries run as the ``postgres``
system user (``runuser``, else ``setpriv``), in a folder that user owns; as anyone else they run directly.

A missing server is :class:`PostgresUnavailable` with a one-line message saying what to install: callers fail
on it (never skip), so a machine without PostgreSQL cannot turn the suite green.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql

SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
SYSTEM_USER = "postgres"  # who runs the server when we are root (Debian's postgresql package creates it)
SUPERUSER = "postgres"
HOST = "127.0.0.1"
START_SECONDS = 30
# Durability is worth nothing to a server that is deleted after the session.
SETTINGS = {
    "listen_addresses": HOST,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "20",
    "shared_buffers": "32MB",
}


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says what to install or fix."""


@dataclass(frozen=True)
class PostgresServer:
    """A running server: connect as ``user`` (trust authentication, no password) to ``host``:``port``."""

    host: str
    port: int
    user: str
    root: Path  # holds data/, the socket and server.log

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> Any:
        """A psycopg2 connection to ``dbname``."""
        return psycopg2.connect(self.dsn(dbname), **kwargs)

    def create_database(self, name: str) -> None:
        """Create database ``name`` (dropping one left by an earlier use of this server)."""
        connection = self.connect(connect_timeout=10)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(
                    sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
                )
                cursor.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        finally:
            connection.close()

    def log_tail(self, lines: int = 20) -> str:
        log = self.root / "server.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def server_bin_dir() -> Path:
    """The folder holding initdb, pg_ctl and postgres; PostgresUnavailable when there is none."""
    candidates: list[Path] = []
    for program in ("pg_ctl", "initdb"):
        found = shutil.which(program)
        if found:
            candidates.append(Path(found).resolve().parent)  # /usr/local/bin/initdb -> .../15/bin
    candidates += sorted(
        (Path(p) for p in glob.glob(DEBIAN_BIN_GLOB)), key=lambda p: _version(p.parent.name), reverse=True
    )
    for folder in candidates:
        if all((folder / program).is_file() for program in SERVER_PROGRAMS):
            return folder
    raise PostgresUnavailable(
        "PostgreSQL server not found (initdb, pg_ctl and postgres): install it, e.g. "
        "`apt-get install postgresql` on Debian/Ubuntu or `brew install postgresql@15` on macOS"
    )


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a throwaway server; stop it and delete its files when the block ends."""
    bin_dir = server_bin_dir()
    as_user = _run_as_prefix()
    root = Path(tempfile.mkdtemp(prefix="retail-pg-"))
    try:
        if as_user:
            account = pwd.getpwnam(SYSTEM_USER)
            os.chown(root, account.pw_uid, account.pw_gid)
        data = root / "data"
        _run(
            [
                *as_user,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            cwd=root,
            what="initdb",
        )
        server = _start(bin_dir, as_user, root, data)
        try:
            yield server
        finally:
            subprocess.run(
                [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                cwd=root,
                capture_output=True,
                check=False,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _start(bin_dir: Path, as_user: Sequence[str], root: Path, data: Path) -> PostgresServer:
    """pg_ctl start on a free port; a port taken between choosing and binding it is tried again."""
    failure = ""
    for _ in range(3):
        port = _free_port()
        settings = {**SETTINGS, "port": str(port), "unix_socket_directories": str(root)}
        with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:  # appended: the owner stays
            conf.write("".join(f"\n{key} = '{value}'" for key, value in settings.items()) + "\n")
        started = subprocess.run(
            [
                *as_user,
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "server.log"),
                "-w",
                "-t",
                str(START_SECONDS),
                "start",
            ],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        server = PostgresServer(host=HOST, port=port, user=SUPERUSER, root=root)
        if started.returncode == 0:
            return server
        failure = server.log_tail() or started.stderr or started.stdout
        if "could not bind" not in failure and "already in use" not in failure:
            break
    raise PostgresUnavailable(f"pg_ctl start failed: {_last_line(failure)} (log in {root / 'server.log'})")


def _run_as_prefix() -> list[str]:
    """What to put before a server binary: nothing, or as root a switch to the postgres system user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"running as root and there is no '{SYSTEM_USER}' user to run PostgreSQL as (it refuses root): "
            "install Debian's postgresql package, which creates it, or run the tests as another user"
        ) from None
    if shutil.which("runuser"):
        return ["runuser", "-u", SYSTEM_USER, "--"]
    if shutil.which("setpriv"):
        return ["setpriv", f"--reuid={SYSTEM_USER}", f"--regid={SYSTEM_USER}", "--init-groups"]
    raise PostgresUnavailable(
        "running as root and neither runuser nor setpriv is available to start PostgreSQL as "
        f"'{SYSTEM_USER}': install util-linux"
    )


def _run(command: Sequence[str], *, cwd: Path, what: str) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PostgresUnavailable(f"{what} failed: {_last_line(done.stderr or done.stdout)}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
