"""The dbt project at the repository root, driven from Python: where it is, how dbt is invoked, what it built.

dbt runs in-process (``dbtRunner``). The configuration reaches it the way it reaches a user's ``dbt build``:
through the environment (``RETAIL_LAKE``, ``RETAIL_DUCKDB_PATH``, ``RETAIL_INGEST_DATE``), set only for the
duration of the call, and ``profiles.yml`` (``DBT_PROFILES_DIR`` if set, else the repository root, where it is
copied from ``profiles.yml.example`` when missing).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from retail_pipeline.config import Settings

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROFILES_EXAMPLE = PROJECT_DIR / "profiles.yml.example"
GOLD_TABLES: tuple[str, ...] = ("customers", "products", "sales_transactions")
GOLD_SCHEMA = "gold"
AUDIT_SCHEMA = "dbt_test__audit"


def profiles_dir() -> Path:
    """Where dbt finds profiles.yml: ``DBT_PROFILES_DIR``, else the repository root (copied from the example)."""
    configured = os.environ.get("DBT_PROFILES_DIR")
    if configured:
        return Path(configured)
    profiles = PROJECT_DIR / "profiles.yml"
    if not profiles.exists():
        # Written whole under another name, then renamed: a concurrent reader never sees half a file.
        with tempfile.NamedTemporaryFile("wb", dir=PROJECT_DIR, prefix=".profiles.", delete=False) as tmp:
            tmp.write(PROFILES_EXAMPLE.read_bytes())
        os.replace(tmp.name, profiles)
    return PROJECT_DIR


def target_dir() -> Path:
    """dbt's target path (``DBT_TARGET_PATH`` or ``target/``): manifest, run results, docs."""
    configured = os.environ.get("DBT_TARGET_PATH")
    path = Path(configured) if configured else Path("target")
    return path if path.is_absolute() else PROJECT_DIR / path


def dbt_env(settings: Settings, *, ingest_date: dt.date | None = None) -> dict[str, str]:
    """The environment the project reads, from the settings. Paths are made absolute: dbt resolves relative ones
    against the process's working directory, not the project."""
    lake = settings.lake if settings.lake_is_s3 else str(Path(settings.lake).resolve())
    env = {
        "RETAIL_LAKE": lake,
        "RETAIL_DUCKDB_PATH": str(settings.duckdb_path.resolve()),
        "RETAIL_INGEST_DATE": ingest_date.isoformat() if ingest_date else "",
    }
    if settings.aws_endpoint_url:
        env["AWS_ENDPOINT_URL"] = settings.aws_endpoint_url
    return env


@contextmanager
def environ(overrides: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``overrides`` for the duration of the block (dbt reads it at invocation)."""
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def invoke_dbt(args: Sequence[str], env: Mapping[str, str]) -> Any:
    """Run one dbt command on this project; returns dbt's ``dbtRunnerResult``."""
    from dbt.cli.main import dbtRunner  # dbt is slow to import: only when a command runs

    with environ(env):
        try:
            return dbtRunner().invoke(
                [*args, "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(profiles_dir())]
            )
        finally:
            _release_duckdb()


def _release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open after a run (a class-level cache), so that this process
    and others can open the warehouse file again, read-only included."""
    import sys

    connections = sys.modules.get("dbt.adapters.duckdb.connections")
    if connections is None:
        return
    manager = connections.DuckDBConnectionManager
    environment = getattr(manager, "_ENV", None)
    manager.close_all_connections()
    if environment is not None:
        environment.close()


def gold_row_counts(duckdb_path: Path) -> dict[str, int]:
    """Rows in each gold table of the DuckDB warehouse (what the seed's sample queries count); a table not built
    yet (e.g. after a partial --select) is left out."""
    import duckdb

    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        existing = {
            name
            for (name,) in con.execute(
                "select table_name from information_schema.tables where table_schema = ?", [GOLD_SCHEMA]
            ).fetchall()
        }
        return {
            table: int(con.execute(f"select count(*) from {GOLD_SCHEMA}.{table}").fetchone()[0])
            for table in GOLD_TABLES
            if table in existing
        }


def copy_profiles_example(destination: Path) -> Path:
    """A profiles.yml made from the example in ``destination`` (a folder); returns the folder."""
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROFILES_EXAMPLE, destination / "profiles.yml")
    return destination
