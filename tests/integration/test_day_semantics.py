"""What a scheduled pipeline needs from the warehouse, day after day (docs/operations.md, "Day semantics").

One DuckDB warehouse, built by `warehouse.build.build` (the ECS task's code path) from a hand-made processed lake:
a corrected re-delivery replaces its date, whatever the line keys; a backfilled older date is picked up by a plain
incremental build; a line that two batches carry comes back from the older one when the newer drops it; nothing
new is a recorded no-op.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from retail_core import metrics
from retail_core.config import Settings
from retail_core.errors import QualityGateError
from tests.fakes.processed_lake import Line, synthetic_sales, write_batch
from warehouse import project
from warehouse.build import build

pytestmark = pytest.mark.integration

D1, D2, D0 = dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2023, 12, 31)
LEAVER = 99_001  # a customer whose only line the correction removes: gone from gold.customers afterwards
V1 = [
    *synthetic_sales(39, seed=3)[:39],
    Line(**{**synthetic_sales(1, seed=5)[0].__dict__, "customer_id": LEAVER}),
]
# The correction: one quantity changed (a new line key), three lines removed, two added.
V2 = [
    Line(**{**V1[0].__dict__, "quantity": V1[0].quantity + 5}),
    *V1[1:-3],
    *synthetic_sales(2, seed=99),
]
SHARED = V1[5]  # delivered on D1 and again on D2
DAY_2 = [*synthetic_sales(6, seed=7), SHARED]
BACKFILL = synthetic_sales(5, seed=21)
D3 = dt.date(2024, 1, 3)
DAY_3 = synthetic_sales(4, seed=33)
STRAY = "f" * 32


def _gold(settings: Settings) -> dict[str, Any]:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        rows = con.execute(
            "select line_id, cast(ingest_date as varchar), total_sales from gold.sales_transactions"
        )
        lines = {line_id: (day, total) for line_id, day, total in rows.fetchall()}
        pending = con.execute("select count(*) from staging.online_retail_pending_batches").fetchone()[0]
        # Rows in one of gold's fact and its audited twin but not the other: a publish must leave none.
        unlike = con.execute(
            "select count(*) from ((select * from gold.sales_transactions except all"
            " select * from gold_audit.sales_transactions) union all (select * from gold_audit.sales_transactions"
            " except all select * from gold.sales_transactions))"
        ).fetchone()[0]
    return {
        "lines": lines,
        "total": sum((t for _, t in lines.values()), Decimal(0)),
        "pending": pending,
        "unlike_audited": unlike,
    }


def _expected(*batches: tuple[dt.date, list[Line]]) -> dict[str, str]:
    """line_id -> the latest date among the batches that carry it."""
    winner: dict[str, str] = {}
    for day, lines in sorted(batches, key=lambda b: b[0]):
        for line in lines:
            winner[line.line_id] = str(day)
    return winner


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    root = tmp_path_factory.mktemp("days")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DBT_PROFILES_DIR", str(project.copy_profiles_example(root / "profiles")))
        mp.setenv("DBT_TARGET_PATH", str(root / "target"))
        mp.setenv("DBT_LOG_PATH", str(root / "logs"))
        mp.setenv("RETAIL_METRICS", "lake")
        yield Settings(lake=str(root / "lake"), duckdb_path=root / "warehouse.duckdb")


@pytest.fixture(scope="module")
def days(env: Settings) -> dict[str, dict[str, Any]]:
    """Each step's build result and gold, in order; the tests below read them."""
    lake = Path(env.lake)
    seen: dict[str, dict[str, Any]] = {}

    write_batch(lake, D1, V1)
    seen["first"] = {"result": build(env, run_id="day-1", ingest_date=D1), **_gold(env)}
    seen["unchanged"] = {"result": build(env, run_id="day-1-again"), **_gold(env)}

    write_batch(lake, D1, V2)  # a corrected re-delivery of D1, built as the schedule does: no --ingest-date
    seen["corrected"] = {"result": build(env, run_id="day-1-corrected"), **_gold(env)}

    write_batch(lake, D2, DAY_2)
    seen["day 2"] = {"result": build(env, run_id="day-2"), **_gold(env)}

    write_batch(lake, D0, BACKFILL)  # older than everything loaded
    seen["backfill"] = {"result": build(env, run_id="backfill"), **_gold(env)}

    write_batch(lake, D2, [line for line in DAY_2 if line != SHARED])  # D2 drops the shared line
    seen["shared dropped"] = {"result": build(env, run_id="day-2-corrected"), **_gold(env)}

    # Gold changed in place (as a bare `dbt build` on gold could): a line no batch has. The delta would keep it, so
    # the publish sees one row too many and copies the whole fact instead.
    with duckdb.connect(str(env.duckdb_path)) as con:
        con.execute(
            "insert into gold.sales_transactions select ? as line_id, * exclude (line_id)"
            " from gold.sales_transactions limit 1",
            [STRAY],
        )
    write_batch(lake, D3, DAY_3)
    seen["gold changed in place"] = {"result": build(env, run_id="day-3"), **_gold(env)}
    return seen


def test_a_corrected_redelivery_replaces_its_dates_lines_whatever_their_keys(days: dict[str, Any]) -> None:
    first, corrected = days["first"], days["corrected"]
    assert set(first["lines"]) == {line.line_id for line in V1}
    assert set(corrected["lines"]) == {line.line_id for line in V2}
    assert len(corrected["lines"]) == len(V1) - 3 + 2
    assert V1[0].line_id not in corrected["lines"]  # the old quantity's line is gone
    assert corrected["total"] == sum((line.total_sales for line in V2), Decimal(0))
    assert corrected["result"].loaded == (D1,)
    assert corrected["pending"] == 0


def test_nothing_new_is_a_no_op_recorded_in_the_run_log(env: Settings, days: dict[str, Any]) -> None:
    unchanged = days["unchanged"]
    assert unchanged["result"].loaded == () and unchanged["result"].published == ()
    assert unchanged["lines"] == days["first"]["lines"]
    runs = {run["run_id"]: run for run in metrics.read_runs(settings=env, limit=50)}
    assert runs["day-1-again"]["stages"]["build"]["noop"] == 1
    assert runs["day-1-again"]["stages"]["build"]["success"] == 1
    assert runs["day-1"]["stages"]["build"]["noop"] == 0
    assert runs["day-1"]["stages"]["build"]["batches_loaded"] == 1


def test_a_line_two_batches_carry_is_kept_once_from_the_later_batch(days: dict[str, Any]) -> None:
    day_2 = days["day 2"]
    assert day_2["lines"][SHARED.line_id][0] == str(D2)
    assert {k: v[0] for k, v in day_2["lines"].items()} == _expected((D1, V2), (D2, DAY_2))


def test_a_backfilled_older_date_is_picked_up_by_a_plain_incremental_build(days: dict[str, Any]) -> None:
    backfill = days["backfill"]
    assert backfill["result"].loaded == (D0,)
    assert {k: v[0] for k, v in backfill["lines"].items()} == _expected((D0, BACKFILL), (D1, V2), (D2, DAY_2))


def test_a_line_its_newer_batch_drops_comes_back_from_the_older_one(days: dict[str, Any]) -> None:
    dropped = days["shared dropped"]
    remaining = [line for line in DAY_2 if line != SHARED]
    assert dropped["lines"][SHARED.line_id][0] == str(D1)
    assert {k: v[0] for k, v in dropped["lines"].items()} == _expected(
        (D0, BACKFILL), (D1, V2), (D2, remaining)
    )
    expected_total = sum((line.total_sales for line in [*BACKFILL, *V2, *remaining]), Decimal(0))
    assert dropped["total"] == expected_total


def test_each_publish_leaves_gold_equal_to_the_audited_fact_replacing_only_the_pending_lines(
    env: Settings, days: dict[str, Any]
) -> None:
    # Incremental builds publish the fact's delta (doc: delta_publish); gold must still equal what was audited.
    assert {step: seen["unlike_audited"] for step, seen in days.items()} == dict.fromkeys(days, 0)
    log = (Path(env.lake).parent / "logs" / "dbt.log").read_text(encoding="utf-8")
    assert "(sales_transactions: the pending batches' lines)" in log
    # The stray line put in gold by hand went with the whole copy its publish fell back to.
    changed = days["gold changed in place"]
    assert "after the pending lines: copying it whole" in log
    assert STRAY not in changed["lines"]
    assert {k: v[0] for k, v in changed["lines"].items()} == _expected(
        (D0, BACKFILL), (D1, V2), (D2, [line for line in DAY_2 if line != SHARED]), (D3, DAY_3)
    )


def test_a_customer_the_correction_removes_has_their_history_closed_and_the_builds_go_on(
    env: Settings, days: dict[str, Any]
) -> None:
    # Every build after the correction published (a history still current for a customer gold no longer has
    # failed the snapshot's relationships test on each of them, for good).
    assert all(step["result"].published for name, step in days.items() if name != "unchanged")
    with duckdb.connect(str(env.duckdb_path), read_only=True) as con:
        assert con.execute(
            "select count(*) from gold.customers where customerid = ?", [LEAVER]
        ).fetchone() == (0,)
        versions = con.execute(
            "select dbt_valid_to is null from gold.customer_history where customerid = ?", [LEAVER]
        ).fetchall()
    assert versions == [(False,)]  # one version, closed by the correction


def test_a_failed_builds_customer_versions_are_never_published(tmp_path: Path) -> None:
    """The snapshot keeps its history in the audit schema: a build whose tests fail after the snapshot ran (the
    fact's reconciliation does not hold the snapshot back) recorded versions there, which the next good build
    published as versions of their own. Each build now starts from gold's history."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DBT_PROFILES_DIR", str(project.copy_profiles_example(tmp_path / "profiles")))
        mp.setenv("DBT_TARGET_PATH", str(tmp_path / "target"))
        mp.setenv("DBT_LOG_PATH", str(tmp_path / "logs"))
        mp.setenv("RETAIL_METRICS", "lake")
        settings = Settings(lake=str(tmp_path / "lake"), duckdb_path=tmp_path / "warehouse.duckdb")
        lake = Path(settings.lake)

        def history(schema: str) -> list[tuple[int, str, Any, bool]]:
            with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
                return con.execute(
                    f"select customerid, country, dbt_valid_from, dbt_valid_to is null from {schema}.customer_history"
                    " order by customerid, dbt_valid_from"
                ).fetchall()

        lines = synthetic_sales(20, seed=3)
        # A first build that fails: nothing published, and its versions must not date the history.
        write_batch(lake, D1, lines, report={"rows_clean": len(lines) + 1})
        with pytest.raises(QualityGateError, match="assert_gold_reconciles_with_run_reports"):
            build(settings, run_id="day-1-failed")
        failed_first = max(valid_from for _, _, valid_from, _ in history("gold_audit"))
        write_batch(lake, D1, lines)
        assert build(settings, run_id="day-1").published
        first = history("gold")
        assert first and {valid_from for _, _, valid_from, _ in first} != {failed_first}
        assert all(valid_from > failed_first and current for _, _, valid_from, current in first)

        # A customer moves to Narnia in a batch whose build fails, then the batch is corrected.
        customer = next(line.customer_id for line in lines if line.customer_id is not None)
        moved = Line(
            **{
                **lines[0].__dict__,
                "customer_id": customer,
                "country": "Narnia",
                "invoice_no": "599999",
                "invoice_date": dt.datetime(2011, 12, 9, 10, 0),
            }
        )
        write_batch(lake, D2, [moved], report={"rows_clean": 2})
        with pytest.raises(QualityGateError, match="assert_gold_reconciles_with_run_reports"):
            build(settings, run_id="day-2-failed")
        assert "Narnia" in {country for _, country, _, _ in history("gold_audit")}  # recorded, not published
        assert history("gold") == first
        write_batch(lake, D2, [Line(**{**moved.__dict__, "country": lines[0].country})])
        assert build(settings, run_id="day-2").published
        after = history("gold")
        assert "Narnia" not in {country for _, country, _, _ in after}
        assert [current for c, _, _, current in after if c == customer] == [
            False,
            True,
        ]  # day 1's, then day 2's
        assert history("gold_audit") == after


def test_a_day_of_returns_only_is_loaded_built_and_published(tmp_path: Path) -> None:
    """A batch whose every row is a return has no clean line: its processed partition holds a header-only file
    (what Spark writes), its report counts 0 clean rows and 0.000 of sales. The build takes its returns to gold,
    and the reconciliation holds: no line in the fact is what the report counted."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DBT_PROFILES_DIR", str(project.copy_profiles_example(tmp_path / "profiles")))
        mp.setenv("DBT_TARGET_PATH", str(tmp_path / "target"))
        mp.setenv("DBT_LOG_PATH", str(tmp_path / "logs"))
        settings = Settings(lake=str(tmp_path / "lake"), duckdb_path=tmp_path / "warehouse.duckdb")
        lake = Path(settings.lake)
        sales = synthetic_sales(20, seed=3)
        write_batch(lake, D1, sales, returns=[])
        assert build(settings, run_id="day-1").published
        before = _gold(settings)

        sold = next(line for line in sales if line.customer_id is not None)
        returned = Line(
            **{
                **sold.__dict__,
                "invoice_no": "C" + sold.invoice_no,
                "quantity": -1,
                "invoice_date": sold.invoice_date + dt.timedelta(days=1),
            }
        )
        report = write_batch(lake, D2, [], returns=[returned])
        assert (report["rows_clean"], report["total_sales"], report["rows_returns"]) == (0, "0.000", 1)
        result = build(settings, run_id="day-2")
        assert result.success and result.published and result.loaded == (D2,)
        after = _gold(settings)
        assert (after["lines"], after["pending"], after["unlike_audited"]) == (before["lines"], 0, 0)
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
            assert con.execute(
                "select invoiceno, total_sales, paired_line_id, cast(ingest_date as varchar) from gold.sales_returns"
            ).fetchall() == [(returned.invoice_no, returned.total_sales, sold.line_id, str(D2))]
