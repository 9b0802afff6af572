"""The SQL dbt-redshift would send, recorded by `make redshift-plan`, is valid Redshift and builds what we designed.

The plan is rendered once for the module (dbt with the prod target against a recording stand-in for
redshift_connector.connect), then every statement of every model, test and the COPY load is parsed with sqlglot's
redshift dialect, strictly: a statement sqlglot can only keep as an opaque Command fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from retail_core import dialect
from warehouse.redshift_plan import COPY_ROLE, INGEST_DATE, LAKE, render_plan

pytestmark = pytest.mark.integration

GOLD = ("customers", "products", "sales_transactions")


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
        assert models == {*GOLD, "stg_online_retail__transactions", "stg_online_retail__run_reports"}
    assert (plan / "load" / "load_processed_data.sql").is_file()


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
    ],
)
def test_gold_tables_are_created_with_their_dist_and_sort_keys(
    plan: Path, model: str, expected: dict[str, str]
) -> None:
    create = _tables_created(plan / "first_build" / f"{model}.sql")[model]
    properties = _properties(create)
    for name, rendered in expected.items():
        assert properties[name] == rendered


def test_fact_references_both_dimensions_by_schema_qualified_name(plan: Path) -> None:
    create = _tables_created(plan / "first_build" / "sales_transactions.sql")["sales_transactions"]
    references = sorted(r.sql("redshift") for r in create.find_all(exp.Reference))
    assert references == [
        'REFERENCES "gold"."customers" (customerid)',
        'REFERENCES "gold"."products" (stockcode)',
    ]


@pytest.mark.parametrize("model", GOLD)
def test_incremental_temp_table_has_no_constraints_dist_or_sort(plan: Path, model: str) -> None:
    created = _tables_created(plan / "incremental_build" / f"{model}.sql")
    (temp,) = [create for name, create in created.items() if "__dbt_tmp" in name]
    properties = _properties(temp)
    assert "TemporaryProperty" in properties
    assert not {"DistKeyProperty", "DistStyleProperty", "SortKeyProperty"} & set(properties)
    assert not list(temp.find_all(exp.Reference))
    assert not list(temp.find_all(exp.PrimaryKeyColumnConstraint))


@pytest.mark.parametrize("model", GOLD)
def test_incremental_build_merges_on_the_key_without_dropping_the_table(plan: Path, model: str) -> None:
    statements = _statements(plan / "incremental_build" / f"{model}.sql")
    assert any(isinstance(s, exp.Merge) for s in statements)
    assert not any(isinstance(s, exp.Drop) and s.this.name == model for s in statements)


def test_incremental_fact_reads_only_the_new_ingest_date(plan: Path) -> None:
    text = (plan / "incremental_build" / "sales_transactions.sql").read_text(encoding="utf-8")
    assert f"where ingest_date = cast('{INGEST_DATE}' as date)" in text


def test_load_copies_one_ingest_date_with_the_dialect_options_idempotently(plan: Path) -> None:
    path = plan / "load" / "load_processed_data.sql"
    text = path.read_text(encoding="utf-8")
    assert dialect.redshift_copy_options() in text
    assert f"iam_role '{COPY_ROLE}'" in text
    statements = _statements(path)
    copies = [s for s in statements if isinstance(s, exp.Copy)]
    assert [c.args["files"][0].sql("redshift") for c in copies] == [
        f"'{LAKE}/processed-data/online_retail/ingest_date={INGEST_DATE}/part-'",
        f"'{LAKE}/quality/online_retail/ingest_date={INGEST_DATE}/run_report.json'",
    ]
    # Each COPY follows a DELETE of the same date, inside one transaction: a second load replaces the first.
    # (dbt's own run-operation opens and commits an empty transaction first.)
    kinds = [type(s).__name__ for s in statements if not isinstance(s, exp.Create)]
    start = len(kinds) - 1 - kinds[::-1].index("Transaction")
    assert kinds[start:] == ["Transaction", "Delete", "Copy", "Delete", "Copy", "Commit"]
    deleted = [s.args["where"].sql("redshift") for s in statements if isinstance(s, exp.Delete)]
    assert deleted == [f"WHERE ingest_date = '{INGEST_DATE}'"] * 2
