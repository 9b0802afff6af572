"""The SQL dbt-redshift would send to Redshift for this project, recorded without a cluster (``make redshift-plan``).

dbt runs exactly as in production (``--target prod``, dbt-redshift's own macros and materializations); only
``redshift_connector.connect`` is replaced by a stand-in that records every statement and answers dbt's catalogue
questions as a warehouse in that state would. The phases, in the order a first and a second day run them, each in
``target/redshift_plan/<phase>/``:

* ``load``: what ``retail-pipeline build`` does first (warehouse/load.py): ``prepare_sources`` (the source tables,
  if missing) and ``load_batches`` for one ingest date: its COPYs, in one transaction;
* ``first_build``: ``dbt build`` on an empty database, the gold models in the audit schema (write, audit);
* ``first_publish``: ``publish_gold`` after the tests passed: gold created from the audited tables (publish);
* ``incremental_load``, ``incremental_build``, ``incremental_publish``: the next ingest date, with everything of
  the first day in place: its load, the incremental build, and gold's rows replaced in one transaction.

Each model's statements go to ``<phase>/<model>.sql``, each test's to ``<phase>/tests/<test>.sql``, schema set-up to
``<phase>/_setup.sql`` and dbt's own catalogue queries (information_schema, pg_catalog) to ``<phase>/_catalog.sql``;
``<phase>/_sequence.sql`` holds every statement but the catalogue queries in the order dbt sent them.
Unit tests are left out: they check logic, not Redshift, and run on DuckDB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from retail_core import dialect, layout
from warehouse import project

PLAN_DIR = project.PROJECT_DIR / "target" / "redshift_plan"
DATABASE = "analytics"
INGEST_DATE = dt.date(2024, 1, 2)
LAKE = "s3://retail-lake/prod"
COPY_ROLE = "arn:aws:iam::123456789012:role/retail-redshift-copy"
NEXT_INGEST_DATE = dt.date(2024, 1, 3)
PHASES = (
    "load",
    "first_build",
    "first_publish",
    "incremental_load",
    "incremental_build",
    "incremental_publish",
)
# Every phase's statements in the order sent (catalogue queries left out), beside the per-node files.
SEQUENCE_FILE = "_sequence.sql"

# Redshift type OIDs, as redshift_connector reports them in cursor.description.
_OIDS = {
    "bigint": 20,
    "integer": 23,
    "smallint": 21,
    "boolean": 16,
    "varchar": 1043,
    "character varying": 1043,
    "text": 1043,
    "timestamp": 1114,
    "date": 1082,
    "decimal": 1700,
    "numeric": 1700,
}
_INFORMATION_SCHEMA_TYPES = {
    "varchar": "character varying",
    "decimal": "numeric",
    "timestamp": "timestamp without time zone",
}
_NODE_ID = re.compile(r'"node_id":\s*"([^"]+)"')
_LEADING_COMMENT = re.compile(r"^\s*/\*.*?\*/\s*", re.DOTALL)
_CATALOGUE = re.compile(r"information_schema|pg_namespace|pg_class|pg_depend|pg_proc|pg_backend_pid|svv_")


@dataclass
class Column:
    name: str
    data_type: str

    @property
    def base_type(self) -> str:
        return self.data_type.split("(")[0].strip().lower()

    @property
    def oid(self) -> int:
        return _OIDS[self.base_type]

    def information_schema_row(self) -> tuple[Any, ...]:
        """(column_name, data_type, character_maximum_length, numeric_precision, numeric_scale)."""
        sizes = [int(n) for n in re.findall(r"\d+", self.data_type)]
        kind = _INFORMATION_SCHEMA_TYPES.get(self.base_type, self.base_type)
        if kind == "character varying":
            return (self.name, kind, sizes[0] if sizes else 256, None, None)
        if kind == "numeric":
            return (self.name, kind, None, sizes[0], sizes[1] if len(sizes) > 1 else 0)
        return (self.name, kind, None, None, None)


@dataclass
class Warehouse:
    """What the stand-in database holds: relations by (schema, name) -> type, and the columns of models."""

    relations: dict[tuple[str, str], str] = field(default_factory=dict)
    columns: dict[str, list[Column]] = field(default_factory=dict)

    @property
    def schemas(self) -> set[str]:
        return {schema for schema, _ in self.relations}


@dataclass
class Statement:
    node_id: str | None
    sql: str

    @property
    def is_catalogue(self) -> bool:
        return bool(_CATALOGUE.search(_LEADING_COMMENT.sub("", self.sql).lower()))


class Recorder:
    """Every statement sent, with the dbt node it was sent for (from dbt's query comment)."""

    def __init__(self, state: Warehouse) -> None:
        self.state = state
        self.statements: list[Statement] = []
        self._lock = threading.Lock()

    def connect(self, **_: Any) -> RecordingConnection:
        return RecordingConnection(self)

    def record(self, node_id: str | None, sql: str) -> None:
        with self._lock:
            self.statements.append(Statement(node_id, sql.strip()))


class RecordingConnection:
    """Stands in for ``redshift_connector.Connection``."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.autocommit = False
        self.node_id: str | None = None

    def cursor(self) -> RecordingCursor:
        return RecordingCursor(self)

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...


class RecordingCursor:
    """Stands in for ``redshift_connector.Cursor``: records, then answers like the warehouse state would."""

    def __init__(self, connection: RecordingConnection) -> None:
        self.connection = connection
        self.description: list[tuple[Any, ...]] | None = None
        self.rowcount = -1
        self._rows: list[tuple[Any, ...]] = []

    def __enter__(self) -> RecordingCursor:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def execute(self, operation: str, args: object = None, **_: Any) -> RecordingCursor:
        comment = _NODE_ID.search(operation[:2000]) if operation.lstrip().startswith("/*") else None
        if operation.lstrip().startswith("/*"):
            self.connection.node_id = comment.group(1) if comment else None
        self.connection.recorder.record(self.connection.node_id, operation)
        columns, rows = _answer(operation, self.connection.node_id, self.connection.recorder.state)
        self.description = [(name, oid, None, None, None, None, None) for name, oid in columns] or None
        self._rows = rows
        self.rowcount = len(rows)
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows[: size or 1], self._rows[size or 1 :]
        return rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None

    def close(self) -> None: ...


Answer = tuple[list[tuple[str, int]], list[tuple[Any, ...]]]


def _answer(sql: str, node_id: str | None, state: Warehouse) -> Answer:
    """What Redshift would return for the catalogue queries dbt-redshift asks; nothing for everything else."""
    text = _LEADING_COMMENT.sub("", sql).lower()
    varchar, integer, boolean = _OIDS["varchar"], _OIDS["integer"], _OIDS["boolean"]
    if "pg_backend_pid()" in text:
        return [("pg_backend_pid", integer)], [(4242,)]
    if "from information_schema.tables" in text:  # list_relations_without_caching
        schema = re.search(r"table_schema ilike '([^']+)'", text)
        rows = [
            (DATABASE, name, rel_schema, kind)
            for (rel_schema, name), kind in sorted(state.relations.items())
            if schema and rel_schema == schema.group(1)
        ]
        return [("database", varchar), ("name", varchar), ("schema", varchar), ("type", varchar)], rows
    if "from pg_depend" in text or "pg_depend." in text:  # view dependencies, for dbt's relation cache
        names = ("dependent_schema", "dependent_name", "referenced_schema", "referenced_name")
        return [(n, varchar) for n in names], []
    if "select distinct nspname from pg_namespace" in text:
        return [("nspname", varchar)], [(schema,) for schema in sorted(state.schemas)]
    if "from pg_namespace where nspname" in text:
        schema = re.search(r"nspname = '([^']+)'", text)
        return [("count", integer)], [(int(bool(schema) and schema.group(1) in state.schemas),)]
    if 'information_schema."columns"' in text:  # get_columns_in_relation
        table = re.search(r"table_name = '([^']+)'", text)
        model = re.sub(r"__dbt_(tmp|backup)\w*$", "", table.group(1)) if table else ""
        names = ("column_name", "data_type", "character_maximum_length", "numeric_precision", "numeric_scale")
        types = (varchar, varchar, integer, integer, integer)
        return list(zip(names, types, strict=True)), [
            c.information_schema_row() for c in state.columns.get(model, [])
        ]
    if "__dbt_sbq" in text:  # the contract check: the model's columns, as its SQL would return them
        model = (node_id or "").rsplit(".", 1)[-1]
        columns = state.columns.get(model, [])
        if (node_id or "").startswith("snapshot."):  # a snapshot's query: its table without dbt's own columns
            columns = [c for c in columns if not c.name.startswith("dbt_")]
        return [(c.name, c.oid) for c in columns], []
    if "dbt_internal_test" in text:  # a data test: no failing rows
        return [("failures", integer), ("should_warn", boolean), ("should_error", boolean)], [
            (0, False, False)
        ]
    return [], []


@contextmanager
def _recording(state: Warehouse) -> Iterator[Recorder]:
    import redshift_connector

    recorder = Recorder(state)
    with mock.patch.object(redshift_connector, "connect", recorder.connect):
        yield recorder


def _env(plan_dir: Path) -> dict[str, str]:
    dbt_dir = plan_dir / ".dbt"
    return {
        "DBT_PROFILES_DIR": str(project.copy_profiles_example(dbt_dir / "profiles")),
        "DBT_TARGET_PATH": str(dbt_dir / "target"),
        "DBT_LOG_PATH": str(dbt_dir / "logs"),
        "REDSHIFT_METHOD": "database",
        "REDSHIFT_HOST": "redshift-plan.invalid",  # never contacted: connect() is the stand-in
        "REDSHIFT_PORT": "5439",
        "REDSHIFT_DATABASE": DATABASE,
        "REDSHIFT_USER": "dbt",
        "REDSHIFT_PASSWORD": "unused",
        "RETAIL_LAKE": LAKE,
        "REDSHIFT_COPY_IAM_ROLE": COPY_ROLE,
        project.GOLD_BUILD_SCHEMA_VAR: layout.GOLD_AUDIT_SCHEMA,
    }


def _contract_columns(manifest_path: Path) -> dict[str, list[Column]]:
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    columns: dict[str, list[Column]] = {}
    for node in manifest["nodes"].values():
        # A snapshot's declared columns answer the materialization's questions about its query and its table.
        if node["resource_type"] in ("model", "snapshot"):
            declared = [
                Column(c["name"], c["data_type"]) for c in node["columns"].values() if c.get("data_type")
            ]
            if declared:
                columns[node["name"]] = declared
    return columns


# The source tables' columns as prepare_sources creates them (macros/load_batches.sql), by the source's name.
SOURCE_SCHEMAS: dict[str, tuple[tuple[str, str], ...]] = {
    "transactions": dialect.PROCESSED_SCHEMA,
    "returns": dialect.PROCESSED_SCHEMA,
    "run_reports": dialect.RUN_REPORT_SCHEMA,
    "pending_batches": dialect.PENDING_BATCH_SCHEMA,
}


def _source_columns(manifest_path: Path) -> dict[str, list[Column]]:
    """The source tables' columns, by table name: a warehouse of this version lacks none."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return {
        source["identifier"]: [Column(name, kind) for name, kind in SOURCE_SCHEMAS[source["name"]]]
        for source in manifest["sources"].values()
    }


def _built_relations(manifest_path: Path) -> dict[tuple[str, str], str]:
    """The relations a first build leaves: every model, as a view or a table, and the table of failing rows each
    test keeps (``store_failures``), which the next build drops and creates again."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    relations = {
        (node["schema"], node["alias"]): "view" if node["config"]["materialized"] == "view" else "table"
        for node in manifest["nodes"].values()
        if node["resource_type"] in ("model", "snapshot")
    }
    relations.update(
        {
            (node["schema"], node["alias"]): "table"
            for node in manifest["nodes"].values()
            if node["resource_type"] == "test" and node["config"].get("store_failures")
        }
    )
    return relations


def _run(args: Sequence[str], env: dict[str, str], state: Warehouse) -> list[Statement]:
    with _recording(state) as recorder:
        outcome = project.invoke_dbt([*args, "--target", "prod", "--threads", "1"], env)
    if not outcome.success:
        raise RuntimeError(f"dbt {' '.join(args)} failed against the recording stand-in: {outcome.exception}")
    return recorder.statements


def _attributed(statements: list[Statement]) -> list[Statement]:
    """Statements with BEGIN moved to the node it opens a transaction for.

    dbt prefixes its query comment (which names the node) to each statement it sends but not to BEGIN, which
    comes before the node's first statement: so a BEGIN belongs to the next statement's node."""
    attributed = list(statements)
    for index in range(len(attributed) - 2, -1, -1):
        if _LEADING_COMMENT.sub("", attributed[index].sql).strip().upper() == "BEGIN":
            attributed[index] = Statement(attributed[index + 1].node_id, attributed[index].sql)
    return attributed


def _write(phase_dir: Path, statements: list[Statement], *, single: str | None = None) -> list[Path]:
    if phase_dir.exists():
        shutil.rmtree(phase_dir)
    groups: dict[Path, list[str]] = defaultdict(list)
    for statement in _attributed(statements):
        kind, _, name = (statement.node_id or "..").split(".", 2)  # model.retail.customers
        if statement.is_catalogue:
            path = phase_dir / "_catalog.sql"
        elif single:
            path = phase_dir / f"{single}.sql"
        elif kind in ("model", "snapshot"):
            path = phase_dir / f"{name}.sql"
        elif kind == "test":
            path = phase_dir / "tests" / f"{name.split('.')[0][:100]}.sql"  # test.retail.<name>.<hash>
        else:
            path = phase_dir / "_setup.sql"
        groups[path].append(statement.sql.rstrip().rstrip(";"))
    # The same statements once more, in the order dbt sent them: what a replay on a real server executes.
    groups[phase_dir / SEQUENCE_FILE] = [
        s.sql.rstrip().rstrip(";") for s in _attributed(statements) if not s.is_catalogue
    ]
    for path, sqls in groups.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{sql};\n\n" for sql in sqls), encoding="utf-8")
    return sorted(groups)


def _published(relations: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
    """``relations`` with gold's published tables beside their audited twins."""
    gold = {
        (layout.GOLD_SCHEMA, name): "table"
        for (schema, name) in relations
        if schema == layout.GOLD_AUDIT_SCHEMA
    }
    return {**relations, **gold}


# The generation the plan's batches are published under: the plan is rendered without a lake, so it names one.
PLAN_GENERATION = "plan00000001"


def plan_batch(day: dt.date, parts: int = 2) -> dict[str, object]:
    """A batch as warehouse/load.py hands it to ``load_batches``: the files partition manifests of generation
    :data:`PLAN_GENERATION` name (the sales, and the returns in one file), and their COPY manifests."""
    prefix, returns = layout.processed_prefix(day), layout.returns_prefix(day)
    return {
        "ingest_date": day.isoformat(),
        "files": [
            f"{prefix}/{layout.generation_name(f'part-{n:05d}.tsv', PLAN_GENERATION)}" for n in range(parts)
        ],
        "copy_manifest": f"{prefix}/{layout.copy_manifest_name(PLAN_GENERATION)}",
        "returns_files": [f"{returns}/{layout.generation_name('part-00000.tsv', PLAN_GENERATION)}"],
        "returns_copy_manifest": f"{returns}/{layout.copy_manifest_name(PLAN_GENERATION)}",
    }


def render_plan(
    plan_dir: Path = PLAN_DIR,
    *,
    ingest_date: dt.date = INGEST_DATE,
    next_ingest_date: dt.date = NEXT_INGEST_DATE,
) -> dict[str, list[Path]]:
    """Record the phases (:data:`PHASES`) into ``plan_dir``; returns the files written per phase."""
    plan_dir.mkdir(parents=True, exist_ok=True)
    env = _env(plan_dir)
    parsed = project.invoke_dbt(["parse", "--target", "prod"], env)
    if not parsed.success:
        raise RuntimeError(f"dbt parse failed: {parsed.exception}")
    manifest = Path(env["DBT_TARGET_PATH"]) / "manifest.json"
    columns = {**_contract_columns(manifest), **_source_columns(manifest)}
    built = _built_relations(manifest)
    written: dict[str, list[Path]] = {}
    build_args = ["build", "--exclude-resource-type", "unit_test"]
    publish_args = [
        "run-operation",
        "publish_gold",
        "--args",
        json.dumps(
            {
                "tables": list(layout.GOLD_PUBLISHED),
                "audit_schema": layout.GOLD_AUDIT_SCHEMA,
                "gold_schema": layout.GOLD_SCHEMA,
                # As warehouse.build.publish: the fact's delta on an incremental day (the first publish creates it).
                "apply_pending_to": "sales_transactions",
            }
        ),
    ]

    def load_args(day: dt.date) -> list[list[str]]:
        return [
            ["run-operation", "prepare_sources"],
            ["run-operation", "load_batches", "--args", json.dumps({"batches": [plan_batch(day)]})],
        ]

    days = (
        ("load", "first_build", "first_publish", ingest_date, Warehouse(columns=columns)),
        (
            "incremental_load",
            "incremental_build",
            "incremental_publish",
            next_ingest_date,
            Warehouse(relations=_published(built), columns=columns),
        ),
    )
    for load_phase, build_phase, publish_phase, day, before in days:
        loaded = [s for args in load_args(day) for s in _run(args, env, before)]
        written[load_phase] = _write(plan_dir / load_phase, loaded, single="load")
        after_load = Warehouse(relations={**before.relations, **_source_relations(manifest)}, columns=columns)
        written[build_phase] = _write(plan_dir / build_phase, _run(build_args, env, after_load))
        after_build = Warehouse(relations={**after_load.relations, **built}, columns=columns)
        written[publish_phase] = _write(
            plan_dir / publish_phase, _run(publish_args, env, after_build), single="publish_gold"
        )
    return written


def _source_relations(manifest_path: Path) -> dict[tuple[str, str], str]:
    """The source tables the load creates."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return {(source["schema"], source["identifier"]): "table" for source in manifest["sources"].values()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m warehouse.redshift_plan", description=__doc__)
    parser.add_argument("--out", type=Path, default=PLAN_DIR, help=f"output folder (default {PLAN_DIR})")
    args = parser.parse_args(argv)
    written = render_plan(args.out)
    for phase, files in written.items():
        print(f"{phase}: {len(files)} files in {args.out / phase}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
