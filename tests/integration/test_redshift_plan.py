"""The SQL dbt-redshift would send, recorded by `make redshift-plan`, is valid Redshift and builds what we designed.

The plan is rendered once for the module (dbt with the prod target against a recording stand-in for
redshift_connector.connect), then every statement of every model, test and the COPY load is parsed with sqlglot's
redshift dialect, strictly: a statement sqlglot can only keep as an opaque Command fails.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from retail_core import dialect, layout
from warehouse import redshift_plan
from warehouse.redshift_plan import COPY_ROLE, INGEST_DATE, LAKE, render_plan

pytestmark = pytest.mark.integration

GOLD = layout.GOLD_PUBLISHED  # the star schema and the marts, in the order they are published


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("redshift_plan")
    render_plan(out)
    return out


def _statements(path: Path) -> list[exp.Expression]:
    parsed = sqlglot.parse(path.read_text(encoding="utf-8"), read="redshift", error_level=ErrorLevel.RAISE)
    return [statement for statement in parsed if statement is not None]


def _planned_files(plan: Path) -> list[Path]:
    """Every model, test, set-up and load file: all but dbt's own catalogue queries (_catalog.sql)."""
    return sorted(p for p in plan.rglob("*.sql") if ".dbt" not in p.parts and p.name != "_catalog.sql")


def _tables_created(path: Path) -> dict[str, exp.Create]:
    created = {}
    for statement in _statements(path):
        if isinstance(statement, exp.Create) and statement.kind == "TABLE":
            table = statement.this.this if isinstance(statement.this, exp.Schema) else statement.this
            created[table.name] = statement
    return created


def _properties(create: exp.Create) -> dict[str, str]:
    properties = create.args.get("properties")
    return {
        type(p).__name__: p.sql("redshift").upper() for p in (properties.expressions if properties else [])
    }


def test_plan_has_one_file_per_model_for_each_build(plan: Path) -> None:
    for phase in ("first_build", "incremental_build"):
        models = {p.stem for p in (plan / phase).glob("*.sql") if not p.stem.startswith("_")}
        assert models == {
            *GOLD,
            "stg_online_retail__transactions",
            "stg_online_retail__returns",
            "stg_online_retail__run_reports",
            "stg_online_retail__pending_batches",
        }
    assert (plan / "load" / "load.sql").is_file()
    assert (plan / "first_publish" / "publish_gold.sql").is_file()


def test_every_planned_statement_parses_as_redshift_without_falling_back_to_command(plan: Path) -> None:
    files = _planned_files(plan)
    assert len(files) > 20
    for path in files:
        statements = _statements(path)
        assert statements, path
        for statement in statements:
            commands = [node for node in statement.walk() if isinstance(node, exp.Command)]
            assert not commands, (
                f"{path.relative_to(plan)}: sqlglot kept as Command: {commands[0].sql()[:120]}"
            )


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            "customers",
            {"DistKeyProperty": "DISTKEY(CUSTOMERID)", "SortKeyProperty": "COMPOUND SORTKEY(CUSTOMERID)"},
        ),
        (
            "products",
            {"DistStyleProperty": "DISTSTYLE ALL", "SortKeyProperty": "COMPOUND SORTKEY(STOCKCODE)"},
        ),
        (
            "sales_transactions",
            {"DistKeyProperty": "DISTKEY(CUSTOMERID)", "SortKeyProperty": "COMPOUND SORTKEY(INVOICEDATE)"},
        ),
        (
            "sales_returns",
            {"DistStyleProperty": "DISTSTYLE EVEN", "SortKeyProperty": "COMPOUND SORTKEY(INVOICEDATE)"},
        ),
        (
            "monthly_revenue",
            {
                "DistStyleProperty": "DISTSTYLE ALL",
                "SortKeyProperty": "COMPOUND SORTKEY(REVENUE_MONTH, COUNTRY)",
            },
        ),
        (
            "customer_rfm",
            {"DistStyleProperty": "DISTSTYLE ALL", "SortKeyProperty": "COMPOUND SORTKEY(CUSTOMERID)"},
        ),
        (
            "cohort_retention",
            {
                "DistStyleProperty": "DISTSTYLE ALL",
                "SortKeyProperty": "COMPOUND SORTKEY(COHORT_MONTH, ACTIVITY_MONTH)",
            },
        ),
    ],
)
def test_gold_tables_are_created_with_their_dist_and_sort_keys(
    plan: Path, model: str, expected: dict[str, str]
) -> None:
    # The dimensions are tables: built under a temporary name and renamed into place (in the audit schema).
    created = _tables_created(plan / "first_build" / f"{model}.sql")
    create = created.get(model) or created[f"{model}__dbt_tmp"]
    properties = _properties(create)
    for name, rendered in expected.items():
        assert properties[name] == rendered


def test_fact_references_both_dimensions_by_schema_qualified_name(plan: Path) -> None:
    create = _tables_created(plan / "first_build" / "sales_transactions.sql")["sales_transactions"]
    references = sorted(r.sql("redshift") for r in create.find_all(exp.Reference))
    assert references == [
        # Built in the audit schema, where the dimensions it references are built too.
        'REFERENCES "gold_audit"."customers" (customerid)',
        'REFERENCES "gold_audit"."products" (stockcode)',
    ]


def test_incremental_temp_table_has_no_constraints_dist_or_sort(plan: Path) -> None:
    created = _tables_created(plan / "incremental_build" / "sales_transactions.sql")
    (temp,) = [create for name, create in created.items() if "__dbt_tmp" in name]
    properties = _properties(temp)
    assert "TemporaryProperty" in properties
    assert not {"DistKeyProperty", "DistStyleProperty", "SortKeyProperty"} & set(properties)
    assert not list(temp.find_all(exp.Reference))
    assert not list(temp.find_all(exp.PrimaryKeyColumnConstraint))


def test_incremental_fact_replaces_the_pending_batches_lines_without_dropping_the_table(plan: Path) -> None:
    path = plan / "incremental_build" / "sales_transactions.sql"
    statements = _statements(path)
    deletes = [s for s in statements if isinstance(s, exp.Delete)]
    assert len(deletes) == 1
    assert "stg_online_retail__pending_batches" in deletes[0].sql("redshift")  # the pre-hook
    inserts = [s for s in statements if isinstance(s, exp.Insert)]
    assert len(inserts) == 1 and inserts[0].this.this.name == "sales_transactions"
    assert not any(isinstance(s, exp.Drop) and s.this.name == "sales_transactions" for s in statements)
    text = path.read_text(encoding="utf-8")
    assert '"gold_audit"."sales_transactions" as published' in text


def test_load_then_build_then_publish_for_each_date(plan: Path) -> None:
    from warehouse.redshift_plan import NEXT_INGEST_DATE, PHASES

    assert PHASES == (
        "load",
        "first_build",
        "first_publish",
        "incremental_load",
        "incremental_build",
        "incremental_publish",
    )
    assert f"ingest_date={NEXT_INGEST_DATE}/" in (plan / "incremental_load" / "load.sql").read_text(
        encoding="utf-8"
    )


@pytest.mark.parametrize("phase", ["first_publish", "incremental_publish"])
def test_publish_copies_every_audited_table_into_gold_in_one_transaction(plan: Path, phase: str) -> None:
    statements = _statements(plan / phase / "publish_gold.sql")
    kinds = [type(s).__name__ for s in statements]
    start = len(kinds) - 1 - kinds[::-1].index("Transaction")
    body = statements[start:]
    assert isinstance(body[-1], exp.Commit)
    inserts = [s for s in body if isinstance(s, exp.Insert)]
    assert [(i.this.db, i.this.name) for i in inserts] == [("gold", t) for t in GOLD]
    assert all(i.expression.find(exp.Table).db == "gold_audit" for i in inserts)
    deleted = [s.this.sql("redshift") for s in body if isinstance(s, exp.Delete)]
    creates = [s for s in body if isinstance(s, exp.Create)]
    if (
        phase == "first_publish"
    ):  # gold does not exist yet: created LIKE its audited twin (dist, sort, encodings)
        assert [c.this.this.name for c in creates] == list(GOLD)
        assert all(c.find(exp.LikeProperty) for c in creates)
        assert deleted == ['"analytics"."staging"."online_retail_pending_batches"']
    else:  # gold exists: its rows are replaced, the tables (grants, dependent views) stay
        # Only the delta's list of lines, a temporary table, is created and dropped.
        assert [c.this.name for c in creates] == ["publish_pending_lines"]
        assert creates[0].find(exp.TemporaryProperty) is not None
        dropped = [d.args["tables"][0].name for d in body if isinstance(d, exp.Drop)]
        assert dropped == ["publish_pending_lines"]
        assert deleted == [f'"analytics"."gold"."{t}"' for t in GOLD] + [
            '"analytics"."staging"."online_retail_pending_batches"'
        ]
        # ...of the incremental fact, only the pending batches' lines (doc: delta_publish); of the rest, all.
        where = {s.this.name: s.args.get("where") for s in body if isinstance(s, exp.Delete)}
        assert "publish_pending_lines" in where["sales_transactions"].sql("redshift")
        assert "stg_online_retail__pending_batches" in creates[0].expression.sql("redshift")
        assert all(where[t] is None for t in GOLD if t != "sales_transactions")
        (fact,) = [i for i in inserts if i.this.name == "sales_transactions"]
        # Those lines, no others.
        assert "publish_pending_lines" in fact.expression.args["where"].sql("redshift")
        # The pending queue is emptied after the delta has read it.
        assert [s.this.name for s in body if isinstance(s, exp.Delete)][-1] == "online_retail_pending_batches"


def test_load_copies_one_ingest_date_with_the_dialect_options_idempotently(plan: Path) -> None:
    path = plan / "load" / "load.sql"
    text = path.read_text(encoding="utf-8")
    assert dialect.redshift_copy_options() in text
    assert f"iam_role '{COPY_ROLE}'" in text
    statements = _statements(path)
    copies = [s for s in statements if isinstance(s, exp.Copy)]
    lines, returns, report = (c.args["files"][0].name for c in copies)
    # The lines and the returns: exactly the files each partition's COPY manifest lists (MANIFEST), never a key
    # prefix, which would also take a dead run's files or the previous generation's beside the published ones.
    for zone, source in (("processed-data", lines), ("returns", returns)):
        partition = f"{LAKE}/{zone}/online_retail/ingest_date={INGEST_DATE}/"
        assert source.startswith(partition)
        assert re.fullmatch(r"_copy_manifest-[0-9A-Za-z_-]+\.json", source.removeprefix(partition)), source
    assert report == f"{LAKE}/quality/online_retail/ingest_date={INGEST_DATE}/run_report.json"
    assert ["MANIFEST" in _copy_flags(c) for c in copies] == [True, True, False]
    # Each COPY follows a DELETE of the same date, inside one transaction with the pending queue's row: a second
    # load replaces the first. (dbt's own run-operation opens and commits an empty transaction first.)
    kinds = [type(s).__name__ for s in statements if not isinstance(s, exp.Create)]
    start = len(kinds) - 1 - kinds[::-1].index("Transaction")
    assert kinds[start:] == [
        "Transaction",
        "Select",
        "Delete",
        "Copy",
        "Delete",
        "Copy",
        "Delete",
        "Copy",
        "Delete",
        "Insert",
        "Commit",
    ]
    deleted = [s.args["where"].sql("redshift") for s in statements if isinstance(s, exp.Delete)]
    assert deleted == [f"WHERE ingest_date = '{INGEST_DATE}'"] * 4


def test_the_load_adds_the_report_column_an_older_warehouse_lacks_in_one_transaction(plan: Path) -> None:
    """A warehouse created before run_reports.returns_total_sales: prepare_sources adds that column, and only it
    (Redshift has no ADD COLUMN IF NOT EXISTS: the catalogue decides). A current warehouse gets no ALTER at all."""
    manifest = plan / ".dbt" / "target" / "manifest.json"  # parsed by render_plan for the module
    current = redshift_plan._source_columns(manifest)
    older = dict(current)
    older["online_retail_run_reports"] = [
        c for c in current["online_retail_run_reports"] if c.name != "returns_total_sales"
    ]
    env = redshift_plan._env(plan)
    operation = ["run-operation", "prepare_sources"]

    def sent(columns: dict[str, list[redshift_plan.Column]]) -> list[exp.Expression]:
        statements = redshift_plan._run(operation, env, redshift_plan.Warehouse(columns=columns))
        text = ";\n".join(s.sql for s in statements if not s.is_catalogue)
        return [
            s for s in sqlglot.parse(text, read="redshift", error_level=ErrorLevel.RAISE) if s is not None
        ]

    assert not [s for s in sent(current) if isinstance(s, exp.Alter)]
    upgraded = sent(older)
    alters = [s.sql("redshift", comments=False) for s in upgraded if isinstance(s, exp.Alter)]
    assert alters == [
        'ALTER TABLE "analytics"."staging"."online_retail_run_reports" ADD COLUMN returns_total_sales VARCHAR(64)'
    ]
    kinds = [type(s).__name__ for s in upgraded]
    at = kinds.index("Alter")
    # Inside a transaction that commits it (an operation's open transaction would be rolled back at its end).
    assert kinds[at - 2 : at + 2] == ["Transaction", "Select", "Alter", "Commit"]


def _copy_flags(copy: exp.Copy) -> set[str]:
    """The names of a COPY's word options (MANIFEST, DELIMITER, ...), upper case."""
    return {v.name.upper() for p in copy.args.get("params", []) for v in p.find_all(exp.Var)}


@pytest.mark.parametrize("phase", ["load", "first_build", "incremental_load", "incremental_build"])
def test_nothing_before_the_publish_step_writes_to_gold(plan: Path, phase: str) -> None:
    """Write, audit, publish on Redshift: the load and the build (models and tests) only write to staging,
    gold_audit and the test audit schema, so a failing test, which stops before the publish, leaves gold as it was."""
    written = set()
    for statement in _statements(plan / phase / "_sequence.sql"):
        if isinstance(
            statement, (exp.Create, exp.Insert, exp.Delete, exp.Merge, exp.Drop, exp.Alter, exp.Update)
        ):
            target = statement.this.this if isinstance(statement.this, exp.Schema) else statement.this
            if isinstance(target, exp.Table):
                written.add(target.db)
    assert written, phase
    assert "gold" not in written
