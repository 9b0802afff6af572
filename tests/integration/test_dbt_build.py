"""`retail-pipeline build` on DuckDB, end to end: a small processed lake in, gold tables and quality gates out.

One warehouse is built in stages and shared by the module (each dbt build costs seconds): the first batch, the
second batch merged incrementally, the same batch again, a full refresh, then a tampered run report. Each stage
keeps a snapshot of what the tests look at, taken right after its build.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from retail_core import dialect, layout, run_page
from retail_core.config import Settings
from retail_core.errors import InputError, QualityGateError
from retail_core.lake import LocalLake
from tests.fakes.processed_lake import Line, synthetic_sales, write_batch
from warehouse import figures, load, project
from warehouse.build import BuildResult, build, parse

pytestmark = pytest.mark.integration

DAY_1 = dt.date(2024, 1, 1)
DAY_2 = dt.date(2024, 1, 2)
TRICKY = 'SET/6 "FRENCH" \\ PARIS, | ROSE'
WHEN = dt.datetime(2011, 3, 1, 10, 0)
LATER = dt.datetime(2011, 12, 9, 12, 0)


def _line(
    invoice: str, code: str, description: str | None, price: str, customer: int | None, **kw: Any
) -> Line:
    values: dict[str, Any] = {
        "invoice_no": invoice,
        "stock_code": code,
        "description": description,
        "quantity": 6,
        "invoice_date": WHEN,
        "unit_price": Decimal(price),
        "customer_id": customer,
        "country": "United Kingdom",
    }
    values.update(kw)
    return Line(**values)


DAY_1_SPECIAL = [
    # One stock code, three descriptions and two prices: WHITE at 2.55 is sold most often.
    _line("536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "2.55", 17850),
    _line("536366", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "2.55", 17850),
    _line("536367", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "2.55", 13047),
    _line("536368", "85123A", "CREAM HANGING HEART T-LIGHT HOLDER", "2.95", 13047),
    _line("536369", "85123A", "?", "2.95", None, quantity=1),
    # A customer seen in Cyprus first, then in Austria.
    _line("536370", "22633", "HAND WARMER UNION JACK", "1.85", 18100, country="Cyprus"),
    _line("540001", "22633", "HAND WARMER UNION JACK", "1.85", 18100, country="Austria", invoice_date=WHEN),
    _line(
        "536371",
        "22633",
        "HAND WARMER UNION JACK",
        "1.85",
        18100,
        country="Cyprus",
        invoice_date=dt.datetime(2010, 12, 1),
    ),
    # Non-product codes.
    _line("536372", "POST", "POSTAGE", "18.00", 12583, country="France"),
    _line("536373", "M", "Manual", "0.85", 12583, country="France"),
    _line("536374", "BANK CHARGES", "Bank Charges", "15.00", None),
    # A description with every character the dialect carries literally.
    _line("536375", "84029G", TRICKY, "3.39", 17850),
    # Two guest invoices.
    _line("536544", "21123", "SET/10 IVORY POLKADOT PARTY CANDLES", "1.25", None, quantity=1),
    _line("536544", "21124", "SET/10 BLUE POLKADOT PARTY CANDLES", "1.25", None, quantity=2),
    _line("536545", "21125", "SET/10 PINK POLKADOT PARTY CANDLES", "1.25", None, country="EIRE"),
]
# A quarter of the lines are guest sales, in invoices of 20 lines.
GUEST_INVOICES = [
    _line(str(560000 + invoice), f"{22000 + item}", f"ITEM {item}", "1.65", None, quantity=item + 1)
    for invoice in range(6)
    for item in range(20)
]
DAY_1_LINES = DAY_1_SPECIAL + GUEST_INVOICES + synthetic_sales(360, seed=11)
REDELIVERED = DAY_1_LINES[0]  # the same raw row again on day 2: the same line_id
DAY_2_NEW = [
    _line("581587", "22899", "CHILDREN'S APRON DOLLY GIRL", "2.10", 12680, country="France"),
    # A day-1 customer buys again from another country: gold.customers moves them, customer_history keeps both.
    _line(
        "581589", "22899", "CHILDREN'S APRON DOLLY GIRL", "2.10", 12346, country="Germany", invoice_date=LATER
    ),
    _line("581588", "23254", "CHILDRENS CUTLERY DOLLY GIRL", "4.15", None, country="France"),
    _line("581588", "23255", "CHILDRENS CUTLERY CIRCUS PARADE", "4.15", None, country="France"),
]
DAY_2_LINES = [*DAY_2_NEW, REDELIVERED]
# Day 2's returns: 17850 takes back 2 of the hearts bought on day 1 (two sale lines at one time: the later invoice
# pairs); a guest's return pairs with nothing; Amazon's fee, on a cancellation invoice too, is no goods returned.
DAY_2_RETURNS = [
    _line(
        "C581590",
        "85123A",
        "WHITE HANGING HEART T-LIGHT HOLDER",
        "2.55",
        17850,
        quantity=-2,
        invoice_date=LATER,
    ),
    _line("C581591", "22899", "CHILDREN'S APRON DOLLY GIRL", "2.10", None, quantity=-1, invoice_date=LATER),
    _line("C581592", "AMAZONFEE", "AMAZON FEE", "13.54", None, quantity=-1, invoice_date=LATER),
]


@dataclass(frozen=True)
class Snapshot:
    result: BuildResult
    gold: dict[str, int]
    fact_rows_by_batch: dict[str, int]
    fact_total_sales: Decimal
    staging_rows_by_batch: dict[str, int]
    sample_queries: list[list[tuple[Any, ...]]]
    rows: dict[str, list[tuple[Any, ...]]]
    run_id: str | None = None  # what dbt's run_results.json says the pipeline run was


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def _snapshot(settings: Settings, result: BuildResult) -> Snapshot:
    path = settings.duckdb_path
    samples = [
        "SELECT COUNT(*) FROM gold.customers;",
        "SELECT * FROM gold.products;",
        "SELECT COUNT(*) FROM gold.sales_transactions;",
    ]
    run_id = None
    if result.run_results is not None:  # a no-op build ran no dbt
        run_results = json.loads(result.run_results.read_text(encoding="utf-8"))
        run_id = run_results["metadata"]["env"].get("RETAIL_RUN_ID")
    return Snapshot(
        result=result,
        run_id=run_id,
        gold=project.gold_row_counts(path),
        fact_rows_by_batch=dict(
            _query(
                path, "select cast(ingest_date as varchar), count(*) from gold.sales_transactions group by 1"
            )
        ),
        fact_total_sales=_query(path, "select sum(total_sales) from gold.sales_transactions")[0][0],
        staging_rows_by_batch=dict(
            _query(
                path,
                "select cast(ingest_date as varchar), count(*) from staging.stg_online_retail__transactions group by 1",
            )
        ),
        sample_queries=[_query(path, sql) for sql in samples],
        rows={
            "product_85123A": _query(
                path,
                "select description, unitprice, description_count, price_count, is_product "
                "from gold.products where stockcode = '85123A'",
            ),
            "product_kinds": _query(
                path,
                "select stockcode, product_kind, is_product from gold.products "
                "where stockcode in ('POST', 'M', 'BANK CHARGES', '22633') order by stockcode",
            ),
            "customer_18100": _query(
                path, "select country, country_count, is_guest from gold.customers where customerid = 18100"
            ),
            "tricky": _query(path, "select description from gold.products where stockcode = '84029G'"),
            "guest_keys": _query(
                path,
                "select sales.invoiceno, sales.customerid, customers.is_guest, customers.country, count(*) "
                "from gold.sales_transactions as sales "
                "left join gold.customers as customers on sales.customerid = customers.customerid "
                "where sales.is_guest group by 1, 2, 3, 4 order by 1",
            ),
            "max_share": _query(
                path,
                "select max(n) * 1.0 / sum(n) from "
                "(select customerid, count(*) as n from gold.sales_transactions group by customerid)",
            ),
            "redelivered": _query(
                path,
                "select cast(ingest_date as varchar) from gold.sales_transactions "
                f"where line_id = '{REDELIVERED.line_id}'",
            ),
            "history_12346": _query(
                path,
                "select country, cast(last_invoicedate as varchar), dbt_valid_to is null from gold.customer_history "
                "where customerid = 12346 order by dbt_valid_from",
            ),
            "returns": _query(
                path,
                "select invoiceno, customerid, quantity, total_sales, paired_invoiceno, is_paired, product_kind "
                "from gold.sales_returns order by invoiceno",
            ),
            "monthly_totals": _query(
                path,
                "select sum(gross_sales), sum(returned_sales), sum(fees_and_adjustments), sum(net_revenue)"
                " from gold.monthly_revenue",
            ),
            "history_counts": _query(
                path,
                "select count(*), count(distinct customerid), count(dbt_valid_to) from gold.customer_history",
            ),
        },
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    root = tmp_path_factory.mktemp("warehouse")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DBT_PROFILES_DIR", str(project.copy_profiles_example(root / "profiles")))
        mp.setenv("DBT_TARGET_PATH", str(root / "target"))
        mp.setenv("DBT_LOG_PATH", str(root / "logs"))
        mp.delenv("RETAIL_INGEST_DATE", raising=False)
        yield Settings(lake=str(root / "lake"), duckdb_path=root / "warehouse.duckdb")


@pytest.fixture(scope="module")
def first(env: Settings) -> Snapshot:
    parse(env)  # as make setup does: the build below then re-parses nothing
    write_batch(Path(env.lake), DAY_1, DAY_1_LINES)
    return _snapshot(env, build(env, run_id="run-first", docs=True))


@pytest.fixture(scope="module")
def second(env: Settings, first: Snapshot) -> Snapshot:
    write_batch(Path(env.lake), DAY_2, DAY_2_LINES, parts=1, returns=DAY_2_RETURNS)
    return _snapshot(env, build(env, run_id="run-day-2", ingest_date=DAY_2))


@pytest.fixture(scope="module")
def rerun(env: Settings, second: Snapshot) -> Snapshot:
    return _snapshot(env, build(env, run_id="run-day-2", ingest_date=DAY_2))


@pytest.fixture(scope="module")
def refreshed(env: Settings, rerun: Snapshot) -> Snapshot:
    return _snapshot(env, build(env, run_id="run-refresh", full_refresh=True, ingest_date=DAY_2))


def _lines_per_customerid(lines: list[Line]) -> Counter[object]:
    """What gold's customerid should group: the customer, or for a guest line its invoice."""
    return Counter(line.customer_id or f"guest {line.invoice_no}" for line in lines)


def test_first_build_creates_the_three_gold_tables_and_passes_every_test(first: Snapshot) -> None:
    assert first.result.success
    assert first.result.test_failures == 0
    assert first.gold == {
        "customers": len(_lines_per_customerid(DAY_1_LINES)),
        "products": len({line.stock_code for line in DAY_1_LINES}),
        "sales_transactions": len(DAY_1_LINES),
    }
    assert first.result.gold_rows == first.gold


def test_a_build_after_parse_only_skips_parsing(env: Settings, first: Snapshot) -> None:
    log = (Path(env.duckdb_path).parent / "logs" / "dbt.log").read_text(encoding="utf-8")
    parse_log, build_log = log.split("running dbt with arguments")[1:3]
    assert "saved manifest not found" in parse_log  # parse-only parsed everything
    assert "no changes found, skipping parsing" in build_log  # the first build, nothing


def test_duckdb_runs_with_the_profiles_memory_limit(env: Settings, first: Snapshot) -> None:
    shown = project.invoke_dbt(
        [
            "show",
            "--inline",
            "select current_setting('memory_limit') as m, current_setting('preserve_insertion_order') as p",
            "--target",
            "dev",
        ],
        project.dbt_env(env),
    )
    assert shown.success
    # 3GB (the profile's default) as DuckDB prints it; 80% of this machine's RAM without the setting.
    assert tuple(shown.result.results[0].agate_table.rows[0].values()) == ("2.7 GiB", False)


def test_an_operation_leaves_the_builds_artifacts_alone(env: Settings, first: Snapshot) -> None:
    """An operation writes no JSON (project.invoke_dbt_logged): its run_results.json would replace the build's,
    and its manifest.json is the parsed one again, 0.17 s of writing per operation."""
    target = project.target_dir()
    artifacts = ("run_results.json", "manifest.json")
    before = {name: (target / name).stat().st_mtime_ns for name in artifacts}
    gold = figures.gold_figures(env, target="dev", run_id="run-figures", published=True)
    assert gold.rows["sales_transactions"] == first.gold["sales_transactions"]  # the operation did run
    assert {name: (target / name).stat().st_mtime_ns for name in artifacts} == before


def test_gold_figures_read_a_monthly_revenue_published_before_fees_were_kept_apart(
    env: Settings, tmp_path: Path
) -> None:
    """The page a failed build writes reads the gold still published, which an earlier version may have built:
    its monthly_revenue has no fees_and_adjustments, its returned_sales holds every cancellation line."""
    settings = replace(env, lake=str(tmp_path / "lake"), duckdb_path=tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute("create schema gold")
        con.execute(
            "create table gold.monthly_revenue as select date '2011-02-01' as revenue_month, 'EIRE' as country,"
            " 10.000::decimal(38, 3) as gross_sales, -3.000::decimal(38, 3) as returned_sales,"
            " 7.000::decimal(38, 3) as net_revenue, 2 as orders, 1 as cancellations, 1 as customers"
        )
    gold = figures.gold_figures(settings, target="dev", run_id="run-older-gold", published=False)
    assert [(m.month, m.gross, m.returns, m.net) for m in gold.monthly] == [
        (dt.date(2011, 2, 1), Decimal("10.000"), Decimal("-3.000"), Decimal("7.000"))
    ]


def test_seed_sample_queries_answer_unchanged(first: Snapshot) -> None:
    customers, products, sales = first.sample_queries
    assert customers == [(first.gold["customers"],)]
    assert len(products) == first.gold["products"]
    assert sales == [(len(DAY_1_LINES),)]


def test_description_with_quote_backslash_comma_and_pipe_arrives_verbatim(first: Snapshot) -> None:
    assert first.rows["tricky"] == [(TRICKY,)]


def test_product_takes_its_most_sold_description_and_price(first: Snapshot) -> None:
    # WHITE at 2.55 on 3 lines; CREAM and "?" at 2.95 on one line each.
    assert first.rows["product_85123A"] == [
        ("WHITE HANGING HEART T-LIGHT HOLDER", Decimal("2.550"), 3, 2, True)
    ]


def test_non_product_codes_are_marked(first: Snapshot) -> None:
    assert first.rows["product_kinds"] == [
        ("22633", "merchandise", True),
        ("BANK CHARGES", "fee", False),
        ("M", "manual", False),
        ("POST", "postage", False),
    ]


def test_customer_seen_in_two_countries_takes_the_latest_invoices_country(first: Snapshot) -> None:
    assert first.rows["customer_18100"] == [("Austria", 2, False)]


def test_each_guest_invoice_gets_its_own_negative_key_present_in_customers(first: Snapshot) -> None:
    guests = first.rows["guest_keys"]
    invoices = {invoice for invoice, *_ in guests}
    keys = {key for _, key, *_ in guests}
    assert len(keys) == len(invoices) == len(guests)  # one key per invoice, one invoice per key
    assert all(key < 0 for key in keys)
    assert all(is_guest is True for _, _, is_guest, _, _ in guests)  # the key is in customers (left join)
    by_invoice = {invoice: (country, lines) for invoice, _, _, country, lines in guests}
    assert by_invoice["536544"] == ("United Kingdom", 2)
    assert by_invoice["536545"] == ("EIRE", 1)


def test_largest_customerid_share_is_one_customer_or_one_guest_invoice_not_all_guests(
    first: Snapshot,
) -> None:
    # The 2% goal needs volume (the singular test judges it from 10,000 rows). At this scale: the largest
    # customerid holds exactly the lines of the largest customer or guest invoice, far fewer than all guests.
    per_key = _lines_per_customerid(DAY_1_LINES)
    guest_lines = sum(1 for line in DAY_1_LINES if line.customer_id is None)
    (max_share,) = first.rows["max_share"][0]
    assert round(max_share * len(DAY_1_LINES)) == max(per_key.values())
    assert max(per_key.values()) < guest_lines


def test_docs_are_generated_beside_the_build(first: Snapshot) -> None:
    assert first.result.docs_path is not None
    assert first.result.docs_path.name == "index.html"
    assert first.result.docs_path.is_file()
    catalog = json.loads((first.result.docs_path.parent / "catalog.json").read_text(encoding="utf-8"))
    assert {f"model.retail.{table}" for table in layout.GOLD_TABLES + layout.GOLD_MARTS} <= set(
        catalog["nodes"]
    )
    assert {f"snapshot.retail.{table}" for table in layout.GOLD_SNAPSHOTS} <= set(catalog["nodes"])
    # The docs open on the project's own overview (models/_overview.md), not dbt's welcome text.
    manifest = json.loads((first.result.docs_path.parent / "manifest.json").read_text(encoding="utf-8"))
    overview = manifest["docs"]["doc.retail.__overview__"]["block_contents"]
    assert "# Online Retail: the warehouse" in overview and "gold.customer_rfm" in overview
    # The pipeline's run id travels with dbt's artifacts (only this build generated docs).
    assert catalog["metadata"]["env"]["RETAIL_RUN_ID"] == "run-first"


def test_the_pipeline_build_leaves_unit_tests_to_ci_and_ci_runs_every_one(
    env: Settings, first: Snapshot
) -> None:
    """dbt's advice: unit tests (logic on fixtures) in development and CI, not in production builds."""
    built = json.loads(first.result.build_results or b"{}")
    assert built["results"] and not [r for r in built["results"] if r["unique_id"].startswith("unit_test.")]
    declared = yaml.safe_load((project.PROJECT_DIR / "models/gold/_gold__unit_tests.yml").read_text())
    names = {test["name"] for test in declared["unit_tests"]}
    tested = project.invoke_dbt(
        ["test", "--select", "test_type:unit", "--target", "dev"], project.dbt_env(env, audit=False)
    )
    ran = {result.node.name: str(result.status) for result in tested.result.results}
    assert ran == dict.fromkeys(names, "pass")


def test_data_tests_run_their_query_alone_and_models_keep_their_transactions(
    env: Settings, first: Snapshot, tmp_path: Path
) -> None:
    """macros/test_materialization.sql: on DuckDB a data test is its one query, with no BEGIN or ROLLBACK around
    it and no copy in target/run/ (dbt's bookkeeping, a sixth of a test node's time); a model still builds in a
    transaction and leaves its copy. Every data test runs and passes: their verdicts on a tampered warehouse, and
    the failing rows stored by dbt's default materialization, are the tests below."""
    target, logs = tmp_path / "target", tmp_path / "logs"
    args = ["--target", "dev", "--target-path", str(target), "--log-path", str(logs)]
    tested = project.invoke_dbt(
        ["test", *args, "--exclude-resource-type", "unit_test"], project.dbt_env(env, audit=False)
    )
    names = {result.node.name for result in tested.result.results}
    assert len(names) >= 80 and {str(result.status) for result in tested.result.results} == {"pass"}
    built = project.invoke_dbt(["run", *args, "--select", "products"], project.dbt_env(env, audit=False))
    assert built.success
    log = (logs / "dbt.log").read_text(encoding="utf-8")
    bracketing = Counter(re.findall(r"On (test|model)\.retail\.[^:]+: (BEGIN|ROLLBACK|COMMIT)$", log, re.M))
    assert bracketing[("model", "BEGIN")] > 0, f"no model's BEGIN in the debug log: {bracketing}"
    assert not [key for key in bracketing if key[0] == "test"], bracketing
    copies = {path.stem for path in (target / "run").rglob("*.sql")}
    assert "products" in copies and not copies & names, copies & names


def test_the_build_rewrites_the_run_page_with_what_it_published(env: Settings, first: Snapshot) -> None:
    page = (Path(env.lake) / layout.run_page_key(DAY_1)).read_text(encoding="utf-8")
    assert "Published by this run." in page
    for table, rows in first.gold.items():
        assert f'<td>gold.{table}</td><td class="num">{rows:,}</td>' in page
    # The chart's totals are gold.monthly_revenue's, read through dbt (macros/gold_figures.sql).
    gross, returned, fees, net = first.rows["monthly_totals"][0]
    assert (
        f"gross {run_page._gbp(gross)}, returns {run_page._gbp(returned + fees)}, net {run_page._gbp(net)}"
        in page
    )
    assert page.count('<circle class="net"') == 1 + len(
        {(line.invoice_date.year, line.invoice_date.month) for line in DAY_1_LINES}
    )
    # It links the docs this build generated.
    assert f'href="{first.result.docs_path.resolve().as_uri()}"' in page


def test_the_load_reads_the_lakes_batch_with_the_dialect_options(env: Settings, first: Snapshot) -> None:
    assert first.result.loaded == (DAY_1,)
    assert first.result.published == layout.GOLD_PUBLISHED
    log = (Path(env.duckdb_path).parent / "logs" / "dbt.log").read_text(encoding="utf-8")
    lake = Path(env.lake).resolve()
    # Exactly the files the partition manifest names, in its order: no glob that would take a stray file too.
    files = LocalLake(lake).partition_files(layout.processed_prefix(DAY_1))
    assert files
    assert "read_csv([" + ", ".join(f"'{lake}/{key}'" for key in files) + "]" in log
    assert "part-*" not in log
    assert dialect.duckdb_read_options() in log
    assert first.staging_rows_by_batch == {str(DAY_1): len(DAY_1_LINES)}


def test_second_ingest_date_merges_only_its_new_lines(first: Snapshot, second: Snapshot) -> None:
    assert second.gold["sales_transactions"] == len(DAY_1_LINES) + len(DAY_2_NEW)
    assert second.fact_rows_by_batch == {
        str(DAY_1): len(DAY_1_LINES) - 1,
        str(DAY_2): len(DAY_2_LINES),  # the re-delivered line now counts from its latest batch
    }
    assert second.rows["redelivered"] == [(str(DAY_2),)]
    assert second.staging_rows_by_batch == {str(DAY_1): len(DAY_1_LINES), str(DAY_2): len(DAY_2_LINES)}
    new_sales = sum((line.total_sales for line in DAY_2_NEW), Decimal(0))
    assert second.fact_total_sales == first.fact_total_sales + new_sales


def test_incremental_build_applies_only_the_loaded_batch(second: Snapshot) -> None:
    assert second.result.loaded == (DAY_2,)
    fact = (
        project.target_dir() / "compiled" / "retail" / "models" / "gold" / "sales_transactions.sql"
    ).read_text(encoding="utf-8")
    # Built in the audit schema, against the lines it already holds; published afterwards.
    assert '"gold_audit"."sales_transactions" as published' in fact
    assert second.result.published == layout.GOLD_PUBLISHED


def test_building_again_with_nothing_new_is_a_no_op(second: Snapshot, rerun: Snapshot) -> None:
    assert rerun.result.loaded == ()
    assert rerun.result.published == ()
    assert rerun.gold == second.gold
    assert rerun.fact_rows_by_batch == second.fact_rows_by_batch
    assert rerun.staging_rows_by_batch == second.staging_rows_by_batch
    assert rerun.fact_total_sales == second.fact_total_sales


def test_a_select_that_matches_nothing_is_an_error_not_a_no_op(env: Settings, rerun: Snapshot) -> None:
    with pytest.raises(InputError, match="--select matched nothing to build") as nothing:
        build(env, run_id="run-select-nothing", select="no_such_model")
    assert nothing.value.exit_code == 2
    assert _snapshot(env, rerun.result).gold == rerun.gold  # nothing was published


def test_full_refresh_rebuilds_the_same_warehouse_from_every_batch(
    second: Snapshot, refreshed: Snapshot
) -> None:
    assert refreshed.gold == second.gold
    assert refreshed.fact_rows_by_batch == second.fact_rows_by_batch
    assert refreshed.staging_rows_by_batch == second.staging_rows_by_batch
    assert refreshed.fact_total_sales == second.fact_total_sales


def _compiled_test_on_a_copy(name: str, env: Settings, tmp_path: Path) -> tuple[str, Path]:
    """A singular test as dbt compiled it for the last build, and a copy of that warehouse to run it on (the same
    file name: the compiled SQL names its catalog), to change behind dbt's back."""
    compiled = project.target_dir() / "compiled" / "retail" / "tests" / "dbt"
    copy = tmp_path / Path(env.duckdb_path).name
    copy.write_bytes(Path(env.duckdb_path).read_bytes())
    return (compiled / f"{name}.sql").read_text(encoding="utf-8"), copy


def test_the_reconciliation_finds_a_changed_total_and_a_line_no_batch_has(
    env: Settings, refreshed: Snapshot, tmp_path: Path
) -> None:
    sql, copy = _compiled_test_on_a_copy("assert_gold_reconciles_with_run_reports", env, tmp_path)
    assert _query(copy, sql) == []  # the build passed it: the re-delivered line counts in both its batches

    day_1_only = DAY_1_LINES[1].line_id
    with duckdb.connect(str(copy)) as con:
        con.execute(
            "update gold_audit.sales_transactions set total_sales = total_sales + 1 where line_id = ?",
            [day_1_only],
        )
        con.execute(
            "insert into gold_audit.sales_transactions select * replace (md5(line_id) as line_id)"
            " from gold_audit.sales_transactions where line_id = ?",
            [day_1_only],
        )
    day_1_total = sum((line.total_sales for line in DAY_1_LINES), Decimal("0"))
    assert sorted(_query(copy, sql), key=str) == [
        ("orphaned", 0, 1, None, None, None),
        ("succeeded", len(DAY_1_LINES), len(DAY_1_LINES), day_1_total, day_1_total + 1, DAY_1),
    ]


def test_the_returns_reconciliation_finds_a_changed_amount_in_a_batch_and_in_gold(
    env: Settings, refreshed: Snapshot, tmp_path: Path
) -> None:
    sql, copy = _compiled_test_on_a_copy("assert_returns_reconcile_with_run_reports", env, tmp_path)
    reported = sum((line.total_sales for line in DAY_2_RETURNS), Decimal("0"))
    assert _query(
        copy, "select ingest_date, returns_total_sales from staging.stg_online_retail__run_reports"
    ) == [
        (DAY_1, None),  # transformed before returns were kept apart: counted only
        (DAY_2, reported),
    ]
    assert _query(copy, sql) == []

    # A return line's amount changed on the way: the batch's count still agrees, its money does not.
    with duckdb.connect(str(copy)) as con:
        con.execute(
            "update staging.online_retail_returns set total_sales = total_sales - 1 where invoice_no = 'C581591'"
        )
    assert _query(copy, sql) == [
        (DAY_2, len(DAY_2_RETURNS), len(DAY_2_RETURNS), reported, reported - 1),
        # gold.sales_returns was built from the amount before the change
        (None, len(DAY_2_RETURNS), len(DAY_2_RETURNS), reported - 1, reported),
    ]

    # A report without the sum (an older transform's) leaves the batch to its count; gold is still checked.
    with duckdb.connect(str(copy)) as con:
        con.execute("update staging.online_retail_run_reports set returns_total_sales = null")
    assert _query(copy, sql) == [(None, len(DAY_2_RETURNS), len(DAY_2_RETURNS), reported - 1, reported)]


def test_monthly_revenue_reconciles_with_the_facts_and_a_changed_figure_is_found(
    env: Settings, refreshed: Snapshot, tmp_path: Path
) -> None:
    sql, copy = _compiled_test_on_a_copy("assert_monthly_revenue_reconciles_with_the_facts", env, tmp_path)
    assert _query(copy, sql) == []
    with duckdb.connect(str(copy)) as con:
        # A fee counted as goods in the mart: the split is wrong though the returns' total still holds.
        con.execute(
            "update gold_audit.monthly_revenue set returned_sales = returned_sales + fees_and_adjustments,"
            " fees_and_adjustments = 0 where fees_and_adjustments <> 0"
        )
        con.execute("update gold_audit.monthly_revenue set gross_sales = gross_sales + 1 where orders > 0")
    rows = {figure: (mart, facts) for figure, mart, facts in _query(copy, sql)}
    assert set(rows) == {"gross_sales", "returned_sales"}
    assert rows["returned_sales"][0] - rows["returned_sales"][1] == Decimal("-13.540")  # the Amazon fee


def test_gold_that_disagrees_with_the_run_report_fails_the_build_and_gold_stays_published(
    env: Settings, refreshed: Snapshot
) -> None:
    # The same batch again, with a report that claims one clean line more: a new run, so it is loaded.
    write_batch(Path(env.lake), DAY_2, DAY_2_LINES, parts=1, report={"rows_clean": len(DAY_2_LINES) + 1})
    with pytest.raises(QualityGateError) as failure:
        build(env, run_id="run-tampered")
    message = failure.value.one_line()
    assert "assert_gold_reconciles_with_run_reports" in message
    page = (Path(env.lake) / layout.run_page_key(DAY_2)).read_text(encoding="utf-8")
    assert "assert_gold_reconciles_with_run_reports" in page
    assert "Gold was not published" in page
    assert "gold not published" in message
    assert "\n" not in message
    failing = _query(
        env.duckdb_path,
        "select ingest_date, rows_clean, fact_rows from dbt_test__audit.assert_gold_reconciles_with_run_reports",
    )
    assert failing == [(DAY_2, len(DAY_2_LINES) + 1, len(DAY_2_LINES))]
    # Write, audit, publish: what readers see is what the last good build published.
    assert project.gold_row_counts(env.duckdb_path) == refreshed.gold
    assert _query(env.duckdb_path, "select sum(total_sales) from gold.sales_transactions")[0][0] == (
        refreshed.fact_total_sales
    )
    # The date stays pending: a corrected batch is applied and published by the next build.
    write_batch(Path(env.lake), DAY_2, DAY_2_LINES, parts=1)
    fixed = build(env, run_id="run-fixed")
    assert fixed.loaded == (DAY_2,)
    assert fixed.published == layout.GOLD_PUBLISHED
    assert fixed.gold_rows == refreshed.gold
    assert "Published by this run." in (Path(env.lake) / layout.run_page_key(DAY_2)).read_text(
        encoding="utf-8"
    )


def test_synthetic_lines_have_unique_line_keys() -> None:
    keys = [line.line_id for line in DAY_1_LINES + DAY_2_NEW]
    assert len(keys) == len(set(keys))
    assert replace(REDELIVERED).line_id == REDELIVERED.line_id


# Last in the module: it needs the later builds, which overwrite the compiled SQL the tests above read.
def test_each_build_in_one_process_tags_dbts_artifacts_with_its_own_run_id(
    first: Snapshot, second: Snapshot, refreshed: Snapshot
) -> None:
    assert (first.run_id, second.run_id, refreshed.run_id) == ("run-first", "run-day-2", "run-refresh")


def test_customer_history_keeps_both_versions_of_a_customer_who_moved(
    first: Snapshot, second: Snapshot, rerun: Snapshot
) -> None:
    known = {line.customer_id for line in DAY_1_LINES if line.customer_id is not None}
    # Day 1: one current version per known customer, no guest.
    assert first.rows["history_counts"] == [(len(known), len(known), 0)]
    assert first.rows["history_12346"] == [("United Kingdom", "2011-02-17 05:51:00", True)]
    # Day 2: 12346 bought again, from Germany: the UK version is closed, the German one current. 12680 is new.
    assert second.rows["history_12346"] == [
        ("United Kingdom", "2011-02-17 05:51:00", False),
        ("Germany", "2011-12-09 12:00:00", True),
    ]
    assert second.rows["history_counts"] == [(len(known) + 2, len(known) + 1, 1)]
    # The same batch again changes nothing: no new version.
    assert rerun.rows["history_counts"] == second.rows["history_counts"]


def test_returns_reach_gold_paired_with_the_sale_they_reverse(first: Snapshot, second: Snapshot) -> None:
    assert first.rows["returns"] == []  # day 1 was transformed before returns were kept apart: none
    assert second.rows["returns"] == [
        ("C581590", 17850, -2, Decimal("-5.100"), "536366", True, "merchandise"),
        ("C581591", None, -1, Decimal("-2.100"), None, False, "merchandise"),
        ("C581592", None, -1, Decimal("-13.540"), None, False, "fee"),  # never sold: not in gold.products
    ]
    # Monthly revenue nets them: every sale and every cancellation line once, the goods apart from the fee.
    gross, returned, fees, net = second.rows["monthly_totals"][0]
    assert (gross, returned, fees, net) == (
        second.fact_total_sales,
        Decimal("-7.200"),
        Decimal("-13.540"),
        second.fact_total_sales - Decimal("20.74"),
    )
    # rows in = clean + returns + quarantined held for both batches: the reconciliation tests passed.
    assert second.result.success and second.result.test_failures == 0


def test_a_warehouse_created_before_a_report_column_gets_it_and_keeps_its_rows(
    env: Settings, tmp_path: Path
) -> None:
    """A warehouse an earlier version created: its run reports table lacks returns_total_sales. The load's first
    step adds it, NULL for the report already loaded (which the returns' test then checks by count), once."""
    settings = replace(env, lake=str(tmp_path / "lake"), duckdb_path=tmp_path / "warehouse.duckdb")
    older = [(name, kind) for name, kind in dialect.RUN_REPORT_SCHEMA if name != "returns_total_sales"]
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute("create schema staging")
        con.execute(
            "create table staging.online_retail_run_reports ("
            + ", ".join(f"{name} {kind}" for name, kind in older)
            + ")"
        )
        con.execute(
            "insert into staging.online_retail_run_reports values "
            "('2024-01-01', 'succeeded', 3, 3, 0, '12.500', 'run-older')"
        )
    columns_sql = (
        "select column_name from information_schema.columns "
        "where table_schema = 'staging' and table_name = 'online_retail_run_reports' order by ordinal_position"
    )

    for _ in range(2):  # the second time, nothing is missing: nothing is added, nothing fails
        state = load.warehouse_state(project.dbt_env(settings), "dev")
        assert state.loaded == {DAY_1: "run-older"}
        assert [row[0] for row in _query(settings.duckdb_path, columns_sql)] == [
            name for name, _ in dialect.RUN_REPORT_SCHEMA
        ]
        assert _query(
            settings.duckdb_path,
            "select ingest_date, total_sales, run_id, returns_total_sales from staging.online_retail_run_reports",
        ) == [(DAY_1, "12.500", "run-older", None)]


def test_an_empty_warehouse_whose_only_batch_failed_its_transform_is_an_error_not_a_no_op(
    env: Settings, tmp_path: Path
) -> None:
    """The lake keeps the last good files of a date whose latest transform failed (its gate, or a Ctrl-C), but
    the report says failed: an empty warehouse has nothing to load, and 'gold is current' would be false."""
    settings = replace(env, lake=str(tmp_path / "lake"), duckdb_path=tmp_path / "warehouse.duckdb")
    write_batch(tmp_path / "lake", DAY_1, DAY_1_LINES[:20], report={"status": "failed_gate"})
    with pytest.raises(
        InputError, match=r"nothing to load: the latest transform of 2024-01-01 did not succeed"
    ):
        build(settings, run_id="run-failed-only")
    schemas = {
        row[0] for row in _query(tmp_path / "warehouse.duckdb", "select schema_name from duckdb_schemas()")
    }
    assert "gold" not in schemas
