"""The quality gate (glue/quality.py) on small clean batches: a good batch passes every expectation, and each
expectation fails, alone, on a batch built to break it. This is what a change to how the gate computes its
metrics must not change: the verdict and the observed value of every expectation."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from glue import quality
from retail_core import dialect

WINDOW = (dt.datetime(2000, 1, 1), dt.datetime(2024, 1, 2))
INGEST = dt.date(2024, 1, 1)
SCHEMA = ", ".join(
    f"{name} {'string' if kind.startswith('varchar') else kind}" for name, kind in dialect.PROCESSED_SCHEMA
)
EXPECTATIONS = (
    "quarantine_ratio",
    "line_id_unique",
    *(f"{c}_not_null" for c in quality.NOT_NULL_COLUMNS),
    "quantity_positive",
    "unit_price_positive",
    "total_sales_positive",
    "invoice_date_not_before_2000",
    "invoice_date_not_in_future",
)


def sale(n: int, **changes: Any) -> dict[str, Any]:
    """A clean sales row (processed-data/ columns, typed), with some values changed."""
    row = {
        "line_id": f"{n:032x}",
        "invoice_no": f"5363{n:02d}",
        "stock_code": "85123A",
        "description": "WHITE HANGING HEART T-LIGHT HOLDER",
        "quantity": 6,
        "invoice_date": dt.datetime(2010, 12, 1, 8, 26),
        "unit_price": Decimal("2.550"),
        "customer_id": 17850,
        "country": "United Kingdom",
        "total_sales": Decimal("15.300"),
        "ingest_date": INGEST,
    }
    unknown = set(changes) - set(row)
    assert not unknown, unknown
    return {**row, **changes}


def batch(spark: SparkSession, rows: list[dict[str, Any]], *, as_the_job_does: bool) -> DataFrame:
    """The rows as a DataFrame; ``as_the_job_does``: cached, hash-partitioned and sorted by line_id within
    partitions, as the dedupe leaves the job's cache (the gate's distinct count then streams the sorted keys)."""
    df = spark.createDataFrame([tuple(r[c] for c in dialect.PROCESSED_COLUMNS) for r in rows], SCHEMA)
    if as_the_job_does:
        df = df.repartition(2, "line_id").sortWithinPartitions("line_id").cache()
    return df


def gate(df: DataFrame, rows_in: int | None = None, **kw: Any) -> quality.GateResult:
    return quality.run_gate(
        df,
        rows_in=df.count() if rows_in is None else rows_in,
        max_quarantine_ratio=0.2,
        date_window=WINDOW,
        **kw,
    )


# One batch per expectation: ten good rows with one thing broken, and the rows read (None: as many as clean).
BROKEN: dict[str, tuple[list[dict[str, Any]], int | None]] = {
    "quarantine_ratio": ([sale(n) for n in range(10)], 13),  # 3 of 13 quarantined > 20%
    "line_id_unique": ([sale(n) for n in range(9)] + [sale(99, line_id=f"{3:032x}")], None),
    **{
        f"{c}_not_null": ([sale(n) for n in range(9)] + [sale(9, **{c: None})], None)
        for c in quality.NOT_NULL_COLUMNS
    },
    "quantity_positive": ([sale(n) for n in range(9)] + [sale(9, quantity=0)], None),
    "unit_price_positive": ([sale(n) for n in range(9)] + [sale(9, unit_price=Decimal("0.000"))], None),
    "total_sales_positive": ([sale(n) for n in range(9)] + [sale(9, total_sales=Decimal("0.000"))], None),
    "invoice_date_not_before_2000": (
        [sale(n) for n in range(9)] + [sale(9, invoice_date=dt.datetime(1999, 12, 31, 23, 59))],
        None,
    ),
    "invoice_date_not_in_future": (
        [sale(n) for n in range(9)] + [sale(9, invoice_date=dt.datetime(2024, 1, 2, 0, 1))],
        None,
    ),
}
OBSERVED = {  # what the gate reports for the broken value
    "quarantine_ratio": pytest.approx(3 / 13),
    "line_id_unique": pytest.approx(0.9),
    **{f"{c}_not_null": pytest.approx(0.9) for c in quality.NOT_NULL_COLUMNS},
    "quantity_positive": 0,
    "unit_price_positive": 0.0,
    "total_sales_positive": 0.0,
    "invoice_date_not_before_2000": "1999-12-31T23:59:00",
    "invoice_date_not_in_future": "2024-01-02T00:01:00",
}


def test_every_expectation_has_a_batch_that_breaks_it():
    assert tuple(BROKEN) == EXPECTATIONS == tuple(OBSERVED)


@pytest.mark.parametrize("as_the_job_does", [True, False], ids=["cached-sorted", "plain"])
def test_a_good_batch_passes_every_expectation(spark, as_the_job_does):
    result = gate(batch(spark, [sale(n) for n in range(10)], as_the_job_does=as_the_job_does))
    assert result.passed
    assert [e.name for e in result.expectations] == list(EXPECTATIONS)
    observed = {e.name: e.observed for e in result.expectations}
    assert observed["quarantine_ratio"] == 0.0
    assert observed["line_id_unique"] == 1.0
    assert observed["quantity_positive"] == 6
    assert observed["invoice_date_not_in_future"] == "2010-12-01T08:26:00"


@pytest.mark.parametrize("as_the_job_does", [True, False], ids=["cached-sorted", "plain"])
@pytest.mark.parametrize("name", EXPECTATIONS)
def test_each_expectation_fails_alone_on_a_batch_that_breaks_it(spark, name, as_the_job_does):
    rows, rows_in = BROKEN[name]
    result = gate(batch(spark, rows, as_the_job_does=as_the_job_does), rows_in)
    assert not result.passed
    assert [e.name for e in result.expectations if not e.success] == [name]
    assert {e.name: e.observed for e in result.expectations}[name] == OBSERVED[name]
    # The run report carries each expectation with its verdict, its observed value and its GX type.
    (reported,) = [e for e in result.as_report()["expectations"] if e["name"] == name]
    assert reported["success"] is False
    assert reported["expectation"].startswith("expect_")


def test_the_line_keys_distinct_count_streams_the_sorted_cache(spark):
    """Why the job's gate is cheap: over a frame sorted by line_id within partitions, the distinct count the
    uniqueness expectation asks for alone (its own domain) is a sort aggregate, not two hash aggregates."""
    df = batch(spark, [sale(n) for n in range(10)], as_the_job_does=True)
    counted = df.where("line_id IS NOT NULL").agg(F.countDistinct("line_id"))
    assert counted.collect()[0][0] == 10
    text = counted._jdf.queryExecution().executedPlan().toString()
    ran = text.split("== Initial Plan ==")[0]  # the adaptive plan as it ran
    assert "SortAggregate(key=[line_id" in ran and "HashAggregate(keys=[line_id" not in ran


def test_the_failure_line_gives_the_quarantine_ratio_as_figures_and_names_the_other_checks(spark):
    rows, rows_in = BROKEN["quarantine_ratio"]
    failed = gate(batch(spark, rows, as_the_job_does=False), rows_in)
    assert failed.failure_line() == "23.08% of rows quarantined, more than 20%"  # 3 of 13
    rows, rows_in = BROKEN["quantity_positive"]
    assert gate(batch(spark, rows, as_the_job_does=False), rows_in).failure_line() == "quantity_positive"


@pytest.mark.parametrize("counted", [True, False], ids=["rows_clean given", "gate looks"])
def test_with_no_clean_row_the_ratio_decides_and_the_column_checks_are_not_evaluated(spark, counted):
    """The min, or the proportion, of nothing is no verdict: GX calls all 14 column checks failed on an empty
    batch. A day of returns only (every row read is a return) passes; rows all quarantined fail on the ratio."""
    column_checks = EXPECTATIONS[1:]
    extra = {"rows_clean": 0} if counted else {}
    empty = batch(spark, [], as_the_job_does=False)

    returns_only = gate(empty, 3, rows_returns=3, **extra)
    assert returns_only.passed
    assert [e.name for e in returns_only.expectations] == list(EXPECTATIONS)
    reported = {e["name"]: e for e in returns_only.as_report()["expectations"]}
    assert reported["quarantine_ratio"]["observed"] == 0.0 and "note" not in reported["quarantine_ratio"]
    assert {
        name: (e["success"], e["observed"], e.get("note"))
        for name, e in reported.items()
        if name != EXPECTATIONS[0]
    } == {name: (True, None, quality.NO_ROW_TO_JUDGE) for name in column_checks}

    quarantined = gate(empty, 3, rows_returns=1, **extra)  # 2 of 3 rows quarantined
    assert not quarantined.passed
    assert [e.name for e in quarantined.expectations if not e.success] == ["quarantine_ratio"]
    assert quarantined.failure_line() == "66.67% of rows quarantined, more than 20%"
