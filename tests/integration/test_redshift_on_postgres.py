"""The SQL dbt-redshift sends to Redshift runs on a real server, PostgreSQL 15, and builds the gold DuckDB builds.

Two ingest dates of a small raw file (the synthetic twin's first invoices, a description with every character the
TSV dialect carries literally, and on day 2 a line of day 1 delivered again) go through the real transform (local
Spark). dbt builds gold on DuckDB from that lake as ``retail-pipeline build`` does (warehouse/build.py), and the
recording of the prod SQL (``make redshift-plan``, warehouse/redshift_plan.py) is replayed statement by statement
on a throwaway PostgreSQL server (tests/support/postgres.py), its COPYs fed from the same lake and only Redshift's
physical clauses stripped (tests/support/redshift_on_postgres.py). Every statement must run, every data test must
find no failing rows, and gold must equal DuckDB's row for row.

The first day runs as the server's superuser, as an earlier stack's builds ran as the namespace's admin; then
infra/warehouse_user.py sets up the build's own database user on that warehouse (its statements, with the two
that PostgreSQL has no word for translated or left out) and the second day runs as that user: its grants, and
the hand-over of what the admin built, must be enough for every statement of a day's load, build and publish.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import importlib.util
import io
import json
import multiprocessing
import re
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import pytest

from glue.local import run_local
from glue.options import TransformOptions
from ingestion.sources.synthetic import iter_invoices
from retail_core import dialect, layout
from retail_core.config import Settings
from retail_core.lake import LocalLake
from tests.support import postgres as postgres_support
from tests.support.postgres import PostgresServer, PostgresUnavailable, running_postgres
from tests.support.redshift_on_postgres import (
    SEQUENCE_FILE,
    LakeMapping,
    PhaseResult,
    ReplayFailed,
    UnsupportedStatement,
    copy_from_lake,
    install_shims,
    parse_copy,
    replay,
    split_statements,
    to_postgres,
)
from warehouse import project
from warehouse.build import build
from warehouse.redshift_plan import COPY_ROLE, DATABASE, LAKE, PHASES, render_plan

pytestmark = pytest.mark.integration

DAY_1 = dt.date(2024, 1, 1)
DAY_2 = dt.date(2024, 1, 2)
TRICKY = 'SET/6 "FRENCH" \\ PARIS, | ROSE'
# Redshift's text COPY loads a field that is exactly \N as NULL unless NULL AS names another string.
BACKSLASH_N = "\\N"


class Step(NamedTuple):
    """One phase folder of the plan, replayed in turn."""

    phase: str
    # After this phase, gold on PostgreSQL must equal gold on DuckDB after its build of this ingest date.
    gold_of: dt.date | None = None


# The replay, in order: the plan's phases (warehouse/redshift_plan.py PHASES, checked below) for a first day
# (render_plan's ingest_date) and the next one (its next_ingest_date). Gold is compared once published.
REPLAY: tuple[Step, ...] = (
    Step("load"),
    Step("first_build"),
    Step("first_publish", gold_of=DAY_1),
    Step("incremental_load"),
    Step("incremental_build"),
    Step("incremental_publish", gold_of=DAY_2),
)

Rows = Counter[tuple[Any, ...]]


@dataclass(frozen=True)
class Gold:
    """A gold table's column names and rows (a multiset: order is not part of the contract)."""

    columns: tuple[str, ...]
    rows: Rows


@dataclass
class Replayed:
    plan: Path
    phases: list[PhaseResult] = field(default_factory=list)
    gold: dict[Step, dict[str, Gold]] = field(default_factory=dict)
    failure: ReplayFailed | None = None
    # Who ran each phase (current_user), and what warehouse_user.py sent before the build user's first phase.
    ran_as: dict[str, str] = field(default_factory=dict)
    handover: list[str] = field(default_factory=list)


# --- the lake, built with the real transform ------------------------------------------------------------


def _raw_rows() -> tuple[list[list[str]], list[list[str]]]:
    """Day 1: the synthetic twin's first ~300 rows and a tricky description; day 2: the next ~150 rows and day 1's
    first row again (a re-delivered line: the same line_id)."""
    rows: list[list[str]] = []
    for _, text in iter_invoices(seed=42):
        rows += csv.reader(io.StringIO(text))
        if len(rows) >= 450:
            break
    split = next(i for i in range(300, len(rows)) if rows[i][0] != rows[i - 1][0])  # whole invoices per day
    tricky = ["536999", "84029Z", TRICKY, "6", "2010-12-01 09:00:00", "3.39", "17850.0", "United Kingdom"]
    null_like = [
        "536999",
        "84029Y",
        BACKSLASH_N,
        "2",
        "2010-12-01 09:00:00",
        "1.25",
        "17850.0",
        "United Kingdom",
    ]
    return [*rows[:split], tricky, null_like], [*rows[split:], rows[0]]


def _land(lake_root: Path, day: dt.date, rows: list[list[str]]) -> None:
    """A raw partition as the ingest leaves it: the CSV, then its manifest."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(dialect.RAW_COLUMNS)
    writer.writerows(rows)
    data = text.getvalue().encode("utf-8")
    lake = LocalLake(lake_root)
    lake.write_bytes(layout.raw_key(day), data)
    lake.write_json(
        layout.raw_manifest_key(day),
        {"source": "file", "sha256": hashlib.sha256(data).hexdigest(), "rows": len(rows)},
    )


def _transform(lake_root: Path, day: dt.date, rows: list[list[str]]) -> None:
    _land(lake_root, day, rows)
    run_local(
        Settings(lake=str(lake_root)),
        # The longest run id the pipeline takes (128 characters; a Step Functions execution name has up to 80):
        # the COPY of the run report into a narrower column failed on Redshift and PostgreSQL alike.
        run_id=f"transform-{day}-".ljust(128, "x"),
        ingest_date=day,
        options=TransformOptions(output_files=2, max_quarantine_ratio=1.0),  # the twin's head is dirty
    )


def _duckdb_gold(path: Path) -> dict[str, Gold]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {table: _gold(con.cursor(), table) for table in layout.GOLD_PUBLISHED}


def _versions(history: Gold) -> Gold:
    """A snapshot's rows without dbt's timestamps and ids, each with whether it is the current version."""
    keep = [i for i, name in enumerate(history.columns) if not name.startswith("dbt_")]
    current = history.columns.index("dbt_valid_to")
    columns = (*(history.columns[i] for i in keep), "is_current")
    rows: Counter[tuple[Any, ...]] = Counter()
    for row, count in history.rows.items():
        rows[(*(row[i] for i in keep), row[current] is None)] += count
    return Gold(columns, rows)


def _gold(cursor: Any, table: str) -> Gold:
    cursor.execute(f"select * from {layout.GOLD_SCHEMA}.{table}")
    columns = tuple(d[0] for d in cursor.description)
    return Gold(columns, Counter(tuple(row) for row in cursor.fetchall()))


@pytest.fixture(scope="module")
def lake_and_duckdb(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, dict[dt.date, dict[str, Gold]]]]:
    """The lake (both dates transformed) and DuckDB's gold after its build of each date, in turn."""
    root = tmp_path_factory.mktemp("redshift_on_postgres")
    day_1, day_2 = _raw_rows()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DBT_PROFILES_DIR", str(project.copy_profiles_example(root / "profiles")))
        mp.setenv("DBT_TARGET_PATH", str(root / "target"))
        mp.setenv("DBT_LOG_PATH", str(root / "logs"))
        mp.delenv("RETAIL_INGEST_DATE", raising=False)
        settings = Settings(lake=str(root / "lake"), duckdb_path=root / "warehouse.duckdb")
        gold: dict[dt.date, dict[str, Gold]] = {}
        _transform(root / "lake", DAY_1, day_1)
        build(settings, run_id="duckdb-day-1")
        gold[DAY_1] = _duckdb_gold(settings.duckdb_path)
        _transform(root / "lake", DAY_2, day_2)
        build(settings, run_id="duckdb-day-2", ingest_date=DAY_2)
        gold[DAY_2] = _duckdb_gold(settings.duckdb_path)
        yield root / "lake", gold


def _publish_as_planned(lake_root: Path, plan: Path) -> None:
    """The plan's COPYs name a COPY manifest of a generation of its own (the plan is rendered without the lake):
    each partition they load is published again under that generation, its files unchanged, with the lake's own
    promote, which writes that COPY manifest. A generation the lake already has is left alone."""
    lake = LocalLake(lake_root)
    for phase in PHASES:
        for statement in split_statements((plan / phase / SEQUENCE_FILE).read_text(encoding="utf-8")):
            copy = parse_copy(statement)
            named = (
                re.search(
                    r"/([a-z-]+)/online_retail/(ingest_date=[^/]+)/_copy_manifest-([^/]+)\.json$", copy.source
                )
                if copy
                else None
            )
            if named is None:
                continue
            zone, day, generation = named[1], layout.parse_ingest_date(named[2]), named[3]
            assert day is not None and zone in (layout.PROCESSED_ZONE, layout.RETURNS_ZONE), copy
            prefix = layout.zone_prefix(zone, day)
            files = lake.partition_files(prefix)
            assert files, f"{prefix}: the transform published no partition manifest"
            if (lake.read_partition(prefix) or {}).get("generation") == generation:
                continue
            staging = layout.staging_prefix(zone, day, generation)
            for number, key in enumerate(files):
                lake.write_bytes(f"{staging}/part-{number:05d}{dialect.FILE_SUFFIX}", lake.read_bytes(key))
            lake.write_bytes(f"{staging}/{layout.SUCCESS_NAME}", b"")
            lake.promote(staging, prefix, generation=generation)


# --- the plan, replayed on PostgreSQL -------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        with running_postgres() as server:
            yield server
    except PostgresUnavailable as missing:
        pytest.fail(str(missing), pytrace=False)


@dataclass(frozen=True)
class Rendering:
    """The plan being rendered into ``folder``."""

    folder: Path
    done: Future[Any]

    def result(self) -> Path:
        self.done.result()  # render_plan's own error, if it failed
        return self.folder


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendering]:
    """The plan for DAY_1 and DAY_2, rendered in a process of its own (dbt is not thread-safe in one) while this
    one transforms and builds on DuckDB."""
    out = tmp_path_factory.mktemp("redshift_plan") / "plan"
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield Rendering(out, pool.submit(render_plan, out, ingest_date=DAY_1, next_ingest_date=DAY_2))


@pytest.fixture(scope="module")
def replayed(
    postgres: PostgresServer,
    plan: Rendering,
    lake_and_duckdb: tuple[Path, dict[dt.date, dict[str, Gold]]],
) -> Iterator[Replayed]:
    """Every step of REPLAY on a new database, gold read (by another session: what readers see) at checkpoints.
    A statement PostgreSQL rejects ends the replay; the tests report it."""
    lake_root, _ = lake_and_duckdb
    postgres.create_database(DATABASE)  # the plan names relations "analytics"."schema"."table"
    admin = postgres.connect(DATABASE)
    reader = postgres.connect(DATABASE, options="-c lock_timeout=5s")
    admin.autocommit = reader.autocommit = True
    outcome = Replayed(plan.result())
    _publish_as_planned(lake_root, outcome.plan)
    lake = LakeMapping(LAKE, lake_root)
    build_user = None
    try:
        install_shims(admin)
        try:
            for step in REPLAY:
                if step.phase == BUILD_USER_FROM and build_user is None:
                    outcome.handover = set_up_build_user(admin)
                    build_user = postgres.connect(DATABASE, user=warehouse_user.database_user(BUILD_ROLE))
                    build_user.autocommit = True
                connection = build_user or admin
                with connection.cursor() as cursor:
                    cursor.execute("select current_user")
                    outcome.ran_as[step.phase] = cursor.fetchone()[0]
                [result] = replay(connection, [outcome.plan / step.phase], lake)
                outcome.phases.append(result)
                if step.gold_of:
                    with reader.cursor() as cursor:
                        outcome.gold[step] = {table: _gold(cursor, table) for table in layout.GOLD_PUBLISHED}
        except ReplayFailed as failed:
            outcome.failure = failed
        yield outcome
    finally:
        for connection in (admin, reader, build_user):
            if connection is not None:
                connection.close()


# The build's role in the plan's account, and the phase from which its database user runs the replay.
BUILD_ROLE = "online-retail-build-task-eu-west-1"
BUILD_USER_FROM = "incremental_load"


def _load_warehouse_user() -> Any:
    """infra/warehouse_user.py, a deploy script (not a package), as deploy.sh runs it."""
    path = Path(__file__).resolve().parents[2] / "infra" / "warehouse_user.py"
    spec = importlib.util.spec_from_file_location("infra_warehouse_user", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


warehouse_user = _load_warehouse_user()


def for_postgres(statement: str) -> str | None:
    """A statement of warehouse_user.py as PostgreSQL takes it: its users are login roles; ASSUMEROLE, which lets a
    user name an IAM role in COPY, has no counterpart (the replay's COPYs read the lake themselves)."""
    if statement.startswith(("grant assumerole ", "revoke assumerole ")):
        return None
    if statement.startswith("create user ") and statement.endswith(" password disable"):
        return (
            "create role "
            + statement.removeprefix("create user ").removesuffix(" password disable")
            + " login"
        )
    return statement


def set_up_build_user(admin: Any, database: str = DATABASE) -> list[str]:
    """What deploy.sh does after the stack, here on the admin's connection: warehouse_user.py's steps, read from
    this warehouse's catalogue, each in a transaction of its own. Returns their statements as planned."""

    def query(sql: str) -> list[list[str]]:
        with admin.cursor() as cursor:
            cursor.execute(sql)
            return [list(row) for row in cursor.fetchall()]

    steps = warehouse_user.plan(query, BUILD_ROLE, database, COPY_ROLE)
    with admin.cursor() as cursor:
        for step in steps:
            cursor.execute("begin")
            for statement in filter(None, map(for_postgres, step)):
                cursor.execute(statement)
            cursor.execute("commit")
    return [statement for step in steps for statement in step]


def _check_replay_completed(replayed: Replayed) -> None:
    """Fail with the statement PostgreSQL rejected (an expected failure if it is a known defect of the plan)."""
    if replayed.failure is None:
        return
    message = str(replayed.failure)
    pytest.fail(message, pytrace=False)


def test_the_replay_takes_every_phase_of_the_plan_in_order() -> None:
    assert tuple(step.phase for step in REPLAY) == PHASES


def test_every_statement_of_every_phase_runs_on_postgres(replayed: Replayed) -> None:
    for result in replayed.phases:  # the phases that ran, all of them unless a statement failed
        # Counted again from the per-node files, which hold the same statements grouped by dbt node.
        node_files = [
            p for p in result.folder.rglob("*.sql") if p.name not in (SEQUENCE_FILE, "_catalog.sql")
        ]
        in_node_files = sum(len(split_statements(p.read_text(encoding="utf-8"))) for p in node_files)
        assert len(result.executed) == in_node_files > 0, result.phase
    assert any(e.kind == "COPY" for result in replayed.phases for e in result.executed)
    _check_replay_completed(replayed)
    assert [result.folder for result in replayed.phases] == [replayed.plan / step.phase for step in REPLAY]


def test_every_data_test_in_the_plan_finds_no_failing_rows(replayed: Replayed) -> None:
    tested = [result for result in replayed.phases if result.data_tests]
    assert tested, "no phase ran a dbt data test"
    for result in tested:
        assert len(result.data_tests) == len(list((result.folder / "tests").glob("*.sql"))), result.phase
        failing = {e.node: e.rows for e in result.data_tests if not e.rows or e.rows[0][0] != 0}
        assert not failing, f"{result.phase}: data tests with failing rows on PostgreSQL: {failing}"
    _check_replay_completed(replayed)  # and the phases after the one that failed, when none does


@pytest.mark.parametrize("step", [s for s in REPLAY if s.gold_of], ids=lambda s: f"{s.phase}-{s.gold_of}")
def test_gold_on_postgres_equals_gold_on_duckdb_row_for_row(
    step: Step, replayed: Replayed, lake_and_duckdb: tuple[Path, dict[dt.date, dict[str, Gold]]]
) -> None:
    if step not in replayed.gold:
        _check_replay_completed(replayed)
    assert step.gold_of is not None
    postgres_gold, duckdb_gold = replayed.gold[step], lake_and_duckdb[1][step.gold_of]
    for table in layout.GOLD_PUBLISHED:
        ours, theirs = postgres_gold[table], duckdb_gold[table]
        if (
            table in layout.GOLD_SNAPSHOTS
        ):  # build times and the ids made from them differ: compare the versions
            ours, theirs = _versions(ours), _versions(theirs)
        assert ours.columns == theirs.columns, table
        assert sum(ours.rows.values()) == sum(theirs.rows.values()) > 0, table
        missing, extra = theirs.rows - ours.rows, ours.rows - theirs.rows
        assert not missing and not extra, (
            f"{table}: rows only on DuckDB {list(missing)[:3]}, only on PostgreSQL {list(extra)[:3]}"
        )
    assert _total_sales(postgres_gold) == _total_sales(duckdb_gold)
    products = postgres_gold["products"]
    descriptions = {row[products.columns.index("description")] for row in products.rows}
    assert TRICKY in descriptions  # the dialect's literal characters came through COPY unchanged
    assert BACKSLASH_N in descriptions  # not NULL: the COPY names NUL as its null string (NULL AS '\000')


def test_the_second_day_runs_as_the_build_user_after_the_admins_first(
    replayed: Replayed, postgres: PostgresServer
) -> None:
    _check_replay_completed(replayed)
    user = warehouse_user.database_user(BUILD_ROLE)
    first = REPLAY.index(next(step for step in REPLAY if step.phase == BUILD_USER_FROM))
    assert replayed.ran_as == {
        step.phase: postgres.user if number < first else user for number, step in enumerate(REPLAY)
    }
    # The user was created, then given the database's CREATE and the schemas and relations the admin had built.
    create, grant_create, *handed, revoke, assumerole = replayed.handover
    assert (revoke, assumerole) == (
        "revoke assumerole on all from public for all",
        f"grant assumerole on '{COPY_ROLE}' to \"{user}\" for copy",
    )
    assert create == f'create user "{user}" password disable'
    assert grant_create == f'grant create on database "{DATABASE}" to "{user}"'
    handed_schemas = {s.split('"')[1] for s in handed if s.startswith("alter schema ")}
    assert handed_schemas == {"staging", layout.GOLD_AUDIT_SCHEMA, layout.GOLD_SCHEMA}
    assert sum(s.startswith("alter table ") for s in handed) >= len(layout.GOLD_PUBLISHED)


def test_after_the_handover_the_build_user_owns_all_of_the_build_and_a_second_deploy_changes_nothing(
    replayed: Replayed, postgres: PostgresServer
) -> None:
    _check_replay_completed(replayed)
    user = warehouse_user.database_user(BUILD_ROLE)
    connection = postgres.connect(DATABASE)
    try:
        with connection.cursor() as cursor:
            cursor.execute(warehouse_user.owned_by_others_query(user))
            assert cursor.fetchall() == []
            cursor.execute(
                "select count(*) from pg_tables where schemaname = %s and tableowner = %s",
                (layout.GOLD_SCHEMA, user),
            )
            assert cursor.fetchone()[0] >= len(layout.GOLD_PUBLISHED)

        def query(sql: str) -> list[list[str]]:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return [list(row) for row in cursor.fetchall()]

        again = warehouse_user.plan(query, BUILD_ROLE, DATABASE, COPY_ROLE)
        assert [[s.split(" ")[:2] for s in step] for step in again] == [
            [["grant", "create"]],
            [["revoke", "assumerole"]],
            [["grant", "assumerole"]],
        ]
    finally:
        connection.close()


def test_on_a_new_warehouse_the_build_user_creates_its_schemas_and_loads_the_first_day(
    replayed: Replayed,
    postgres: PostgresServer,
    lake_and_duckdb: tuple[Path, dict[dt.date, dict[str, Gold]]],
) -> None:
    """A first deploy: nothing to hand over, and the build's first load (schemas, source tables, COPYs) runs as
    its own user from the start."""
    fresh = f"{DATABASE}_fresh"
    postgres.create_database(fresh)
    admin = postgres.connect(fresh)
    admin.autocommit = True
    build_user = None
    try:
        install_shims(admin)
        statements = set_up_build_user(admin, database=fresh)
        # Users are the server's, not a database's (as on Redshift): the other warehouse's replay made it.
        assert [s.split(" ")[:2] for s in statements] == [
            ["grant", "create"],
            ["revoke", "assumerole"],
            ["grant", "assumerole"],
        ]
        build_user = postgres.connect(fresh, user=warehouse_user.database_user(BUILD_ROLE))
        build_user.autocommit = True
        # The plan names its database: the same statements, on this one.
        load = Path(replayed.plan.parent / "fresh_load")
        load.mkdir(exist_ok=True)
        text = (replayed.plan / "load" / SEQUENCE_FILE).read_text(encoding="utf-8")
        (load / SEQUENCE_FILE).write_text(text.replace(f'"{DATABASE}".', f'"{fresh}".'), encoding="utf-8")
        [result] = replay(build_user, [load], LakeMapping(LAKE, lake_and_duckdb[0]))
        assert any(e.kind == "COPY" for e in result.executed)
        with admin.cursor() as cursor:
            cursor.execute(
                "select distinct nspname, pg_get_userbyid(nspowner) from pg_namespace where nspname = 'staging'"
            )
            assert cursor.fetchall() == [("staging", warehouse_user.database_user(BUILD_ROLE))]
    finally:
        for connection in (admin, build_user):
            if connection is not None:
                connection.close()


def test_every_schema_the_plan_writes_is_one_the_build_user_is_given(replayed: Replayed) -> None:
    """warehouse_user.BUILD_SCHEMAS hands over exactly the schemas the build makes: a schema added to the
    project but not there would stay the admin's on an upgraded warehouse."""
    written: set[str] = set()
    for phase in PHASES:
        text = (replayed.plan / phase / SEQUENCE_FILE).read_text(encoding="utf-8")
        written |= set(re.findall(rf'"{DATABASE}"\."([a-z_0-9]+)"\.', text))
        written |= set(
            re.findall(r'create schema if not exists "?(?:[a-z_0-9]+"?\.)?"?([a-z_0-9]+)', text, re.I)
        )
    assert written, "no schema found in the plan"
    assert written <= set(warehouse_user.BUILD_SCHEMAS), written - set(warehouse_user.BUILD_SCHEMAS)


def test_day_two_adds_lines_and_sales_to_gold(
    lake_and_duckdb: tuple[Path, dict[dt.date, dict[str, Gold]]],
) -> None:
    # Guards the comparison above against two builds that both did nothing on day 2.
    gold = lake_and_duckdb[1]
    first, second = (sum(gold[day]["sales_transactions"].rows.values()) for day in (DAY_1, DAY_2))
    assert first < second
    assert _total_sales(gold[DAY_1]) < _total_sales(gold[DAY_2])


def _total_sales(gold: dict[str, Gold]) -> Decimal:
    fact = gold["sales_transactions"]
    column = fact.columns.index("total_sales")
    return sum((row[column] * count for row, count in fact.rows.items()), Decimal(0))


# --- the translation, on examples ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("redshift", "postgres_sql"),
    [
        (
            "create table t (a bigint not null primary key, b varchar(3)) diststyle key distkey (a) "
            "compound sortkey(a, b)",
            "create table t (a bigint not null primary key, b varchar(3))   ",
        ),
        ("create table t (a int) diststyle all interleaved sortkey (a)", "create table t (a int)  "),
        ("create table t (a int) diststyle even sortkey (a) encode auto", "create table t (a int)   "),
        ("create table t (a int encode az64 distkey sortkey, b int)", "create table t (a int   , b int)"),
        (
            "create table t (sortkey int, distkey int encode zstd)",
            "create table t (sortkey int, distkey int )",
        ),
        (  # CTAS: the clauses before AS go; a function called encode, a string and a quoted name stay
            "create table t diststyle even sortkey auto as (select encode(a, 'hex') as \"distkey\", "
            "'diststyle even sortkey(a)' as s from u)",
            "create table t   as (select encode(a, 'hex') as \"distkey\", 'diststyle even sortkey(a)' as s from u)",
        ),
        ("select encode(a, 'hex') as diststyle from t", "select encode(a, 'hex') as diststyle from t"),
        ("insert into t select 1 as sortkey", "insert into t select 1 as sortkey"),
    ],
)
def test_to_postgres_strips_only_the_redshift_physical_clauses(redshift: str, postgres_sql: str) -> None:
    assert to_postgres(redshift) == postgres_sql


def test_strtol_shim_reads_numbers_in_a_base_like_redshift(postgres: PostgresServer) -> None:
    import psycopg2

    postgres.create_database("shims")
    connection = postgres.connect("shims")
    connection.autocommit = True
    try:
        install_shims(connection)
        with connection.cursor() as cursor:
            invoice = "536544"
            digits = hashlib.md5(invoice.encode()).hexdigest()[:15]
            cursor.execute(
                "select strtol('abcd1234', 16), strtol('110', 2), strtol(' -0x1A ', 16), strtol('zz', 36), "
                "strtol(null, 16), -1 * strtol(substring(md5(%s), 1, 15), 16)",
                (invoice,),
            )
            assert cursor.fetchone() == (2882343476, 6, -26, 1295, None, -int(digits, 16))
            for bad in (
                "strtol('12g', 16)",
                "strtol('2', 2)",
                "strtol('', 10)",
                "strtol('ffffffffffffffffff', 16)",
            ):
                with pytest.raises(psycopg2.Error):
                    cursor.execute(f"select {bad}")
    finally:
        connection.close()


def test_copy_options_without_a_translation_fail_instead_of_being_dropped(tmp_path: Path) -> None:
    (tmp_path / "processed").mkdir()
    (tmp_path / "processed" / "part-0.tsv").write_text("a\n1\n", encoding="utf-8")
    lake = LakeMapping("s3://bucket/lake", tmp_path)
    key = "'s3://bucket/lake/processed/part-'"
    for options in (
        "csv",
        "delimiter '|' gzip",
        "delimiter '\\t' timeformat 'MM/DD/YYYY HH:MI'",
        "ignoreheader 1",
        "delimiter '\\t' ignoreheader 1 emptyasnull",  # Redshift's default null string \N: no PostgreSQL twin
        "delimiter '\\t' emptyasnull null as 'NA'",
    ):
        copy = parse_copy(f"copy t (a) from {key} iam_role 'arn:aws:iam::1:role/r' {options}")
        assert copy is not None
        with pytest.raises(UnsupportedStatement):
            copy_from_lake(None, copy, lake)
    outside = parse_copy("copy t from 's3://elsewhere/x' emptyasnull")
    assert outside is not None
    with pytest.raises(UnsupportedStatement, match="outside the lake"):
        copy_from_lake(None, outside, lake)


def test_a_manifest_copy_reads_exactly_the_files_its_manifest_lists(tmp_path: Path) -> None:
    """COPY ... MANIFEST: the listed files and nothing else of the folder (an older generation beside them)."""
    folder = tmp_path / "processed"
    folder.mkdir()
    for name in ("part-0-new.tsv", "part-1-new.tsv", "part-0-old.tsv"):
        (folder / name).write_text(f"{name}\n", encoding="utf-8")
    lake = LakeMapping("s3://bucket/lake", tmp_path)
    entries = [
        {"url": "s3://bucket/lake/processed/part-0-new.tsv", "mandatory": True},
        {"url": str(folder / "part-1-new.tsv"), "mandatory": True},  # a local lake's manifest names paths
    ]
    (folder / "_copy_manifest-new.json").write_text(json.dumps({"entries": entries}), encoding="utf-8")
    assert lake.listed("s3://bucket/lake/processed/_copy_manifest-new.json") == [
        folder / "part-0-new.tsv",
        folder / "part-1-new.tsv",
    ]
    for broken in (
        [{**entries[0], "mandatory": False}],
        [{"url": "s3://bucket/lake/processed/part-9-gone.tsv", "mandatory": True}],
        [{"url": "s3://elsewhere/part-0-new.tsv", "mandatory": True}],
        [],
    ):
        (folder / "_copy_manifest-bad.json").write_text(json.dumps({"entries": broken}), encoding="utf-8")
        with pytest.raises(UnsupportedStatement):
            lake.listed("s3://bucket/lake/processed/_copy_manifest-bad.json")
    copy = parse_copy(
        "copy t (a) from 's3://bucket/lake/processed/_copy_manifest-new.json' iam_role 'arn:aws:iam::1:role/r' "
        "manifest delimiter '\\t' emptyasnull"
    )
    assert copy is not None and copy.has("MANIFEST") and copy.option("MANIFEST") is None


def test_a_machine_without_a_postgres_server_fails_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(postgres_support, "DEBIAN_BIN_GLOB", str(tmp_path / "postgresql" / "*" / "bin"))
    with pytest.raises(
        PostgresUnavailable, match=re.escape("install it, e.g. `apt-get install postgresql`")
    ) as missing:
        postgres_support.server_bin_dir()
    assert "\n" not in str(missing.value)
