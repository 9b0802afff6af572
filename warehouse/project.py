"""The dbt project, driven from Python: where it is, how dbt is invoked, what it built.

The project lives at the repository root (``dbt_project.yml``, ``models/``, ``macros/``, ``analyses/``,
``tests/dbt/``), where users run ``dbt build`` themselves. The wheel carries a copy under
``warehouse/dbt_project/`` (pyproject.toml, ``force-include``), with ``profiles.yml.example`` as its
``profiles.yml``: an installed pipeline (the task image) finds its project there, a checkout finds the root.

dbt runs in-process (``dbtRunner``). The configuration reaches it the way it reaches a user's ``dbt build``:
through the environment (``RETAIL_LAKE``, ``RETAIL_DUCKDB_PATH``, ``RETAIL_GOLD_BUILD_SCHEMA``), set only for the
duration of the call, and ``profiles.yml`` (``DBT_PROFILES_DIR`` if set, else the repository root, where it is
copied from ``profiles.yml.example`` when missing).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from retail_core import layout
from retail_core.config import Settings
from retail_core.errors import InputError, PipelineError, UpstreamError

BUNDLED_DIR = Path(__file__).resolve().parent / "dbt_project"
CHECKOUT_DIR = Path(__file__).resolve().parent.parent


def _project_dir() -> Path:
    """The wheel's copy when installed, else the checkout's root (an editable install or the repo on the path)."""
    return BUNDLED_DIR if (BUNDLED_DIR / "dbt_project.yml").is_file() else CHECKOUT_DIR


PROJECT_DIR = _project_dir()
# In a checkout, profiles.yml is made from the example; the wheel ships the example as its profiles.yml.
PROFILES_EXAMPLE = PROJECT_DIR / ("profiles.yml" if PROJECT_DIR == BUNDLED_DIR else "profiles.yml.example")
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


# dbt copies variables with this prefix into every artifact's ``metadata.env`` (run_results.json, manifest.json):
# the pipeline's run id travels with the artifacts without touching the models or their partial parse.
DBT_RUN_ID_VAR = "DBT_ENV_CUSTOM_ENV_RETAIL_RUN_ID"
# Where the gold models build (macros/generate_schema_name.sql): the audit schema for the pipeline, gold otherwise.
GOLD_BUILD_SCHEMA_VAR = "RETAIL_GOLD_BUILD_SCHEMA"
LOG_LEVEL_VAR = "DBT_LOG_LEVEL"  # what dbt prints on stdout
LOG_LEVEL_FILE_VAR = "DBT_LOG_LEVEL_FILE"  # what it writes to its log file (logs/dbt.log)


def dbt_env(settings: Settings, *, run_id: str | None = None, audit: bool = True) -> dict[str, str]:
    """The environment the project reads, from the settings. Paths are made absolute: dbt resolves relative ones
    against the process's working directory, not the project. ``run_id`` tags dbt's artifacts. ``audit`` builds
    the gold models in the audit schema (write-audit-publish, warehouse/build.py); without it they build in gold,
    as a bare ``dbt build`` does."""
    lake = settings.lake if settings.lake_is_s3 else str(Path(settings.lake).resolve())
    env = {
        "RETAIL_LAKE": lake,
        "RETAIL_DUCKDB_PATH": str(settings.duckdb_path.resolve()),
        GOLD_BUILD_SCHEMA_VAR: layout.GOLD_AUDIT_SCHEMA if audit else layout.GOLD_SCHEMA,
    }
    if settings.aws_endpoint_url:
        env["AWS_ENDPOINT_URL"] = settings.aws_endpoint_url
    if run_id:
        env[DBT_RUN_ID_VAR] = run_id
    # dbt prints a line per model and test (a hundred per build): only its warnings and errors unless -v, or
    # DBT_LOG_LEVEL says otherwise (the task image sets info: its log is the operator's record). The log file
    # (target's dbt.log) keeps the detail either way, and operations still answer through their logged lines.
    if LOG_LEVEL_VAR not in os.environ:
        env[LOG_LEVEL_VAR] = "info" if settings.verbose else "warn"
    if LOG_LEVEL_FILE_VAR not in os.environ:
        env[LOG_LEVEL_FILE_VAR] = "debug"  # dbt's default; without it the file would follow DBT_LOG_LEVEL
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
    return invoke_dbt_logged(args, env)[0]


def invoke_dbt_logged(args: Sequence[str], env: Mapping[str, str]) -> tuple[Any, list[str], list[str]]:
    """Run one dbt command on this project; returns dbt's ``dbtRunnerResult``, what its macros logged
    (``{{ log(...) }}``, which is how an operation answers: macros/load_batches.sql) and the messages of its
    error events (an operation's failure is only there)."""
    from dbt.cli.main import dbtRunner  # dbt is slow to import: only when a command runs
    from dbt_common.events import functions as dbt_events

    messages: list[str] = []
    errors: list[str] = []
    if args and args[0] == "run-operation":
        # An operation's JSON artifacts are the parsed manifest again and a run_results.json about one macro call
        # (which would replace the build's): 0.17 s of writing per operation, and a build runs three or four.
        args = [*args, "--no-write-json"]

    def collect(event: Any) -> None:
        if event.info.name == "JinjaLogInfo":
            messages.append(str(event.data.msg))
        elif event.info.level == "error":
            errors.append(str(event.info.msg))

    with environ(env):
        # dbt reads the DBT_ENV_CUSTOM_ENV_* variables (the run id) once per process and caches them; in-process,
        # each invocation must read its own, or a second build would carry the first one's run id.
        dbt_events.reset_metadata_vars()
        try:
            result = dbtRunner(callbacks=[collect]).invoke(
                [*args, "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(profiles_dir())]
            )
        finally:
            _release_duckdb()
    return result, messages, errors


def run_operation(args: list[str], env: dict[str, str], target: str) -> list[str]:
    """Run a dbt operation on ``target``; return the messages its macros logged (how an operation answers:
    macros/load_batches.sql, macros/gold_figures.sql). A failure is one InputError line."""
    outcome, messages, errors = invoke_dbt_logged([*args, "--target", target], env)
    if not outcome.success:
        detail = first_line(outcome.exception) or _error_detail(errors) or "see the dbt log above"
        raise dbt_failure(f"dbt {args[1]} failed", detail, target)
    return messages


# How the adapters' drivers (redshift_connector, psycopg2, DuckDB) say the warehouse could not be reached, lower case.
_UNREACHABLE = (
    "communication error",
    "connection refused",
    "could not connect",
    "timed out",
    "name or service not known",
    "could not translate host name",
    "no route to host",
)


def dbt_failure(what: str, detail: str, target: str, where: str = "") -> PipelineError:
    """A failed dbt invocation as one line: an unreachable warehouse is a service that failed (exit 4, as S3 or
    Kaggle), anything else a problem to fix here (exit 2). ``where`` is added to the place named."""
    if any(sign in detail.lower() for sign in _UNREACHABLE):
        return UpstreamError(
            f"{what}: the warehouse could not be reached: {detail}",
            f"dbt target {target}{where}",
            "check the endpoint (REDSHIFT_HOST, REDSHIFT_PORT), the network path to it and the credentials, "
            "then run again",
        )
    return InputError(
        f"{what}: {detail}",
        f"{PROJECT_DIR} (target {target}){where}",
        "fix the cause above and run retail-pipeline build again",
    )


def _error_detail(errors: list[str]) -> str:
    """dbt's first error event as one line, e.g. ``Database Error: ('communication error', ...)``."""
    for message in errors:
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        if lines:
            lines[0] = lines[0].removeprefix("Encountered an error while running operation: ")
            return ": ".join(lines[:2])
    return ""


def _release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open after a run (a class-level cache), so that this process
    and others can open the warehouse file again, read-only included."""
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
    import duckdb  # the local warehouse's engine only: the task image (Redshift) has no DuckDB

    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        existing = {
            name
            for (name,) in con.execute(
                "select table_name from information_schema.tables where table_schema = ?",
                [layout.GOLD_SCHEMA],
            ).fetchall()
        }
        return {
            table: int(con.execute(f"select count(*) from {layout.GOLD_SCHEMA}.{table}").fetchone()[0])
            for table in layout.GOLD_TABLES
            if table in existing
        }


def copy_profiles_example(destination: Path) -> Path:
    """A profiles.yml made from the example in ``destination`` (a folder); returns the folder."""
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROFILES_EXAMPLE, destination / "profiles.yml")
    return destination


def first_line(message: object) -> str:
    """The first non-blank line of a dbt message or exception: what a one-line error quotes."""
    lines = [line.strip() for line in str(message or "").splitlines() if line.strip()]
    return lines[0] if lines else ""
