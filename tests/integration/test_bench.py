"""The benchmark runs, and its references are honest: they clean exactly as the Spark job does, and the parity
check that says so can fail. (The benchmark itself is not a test: nothing here looks at timings.)"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
import random
from decimal import Decimal
from pathlib import Path

import pytest

from glue.local import run_local
from glue.options import TransformOptions
from retail_core import dialect, layout
from retail_core.config import Settings
from retail_core.lake import LocalLake
from retail_pipeline.bench import parity, references
from retail_pipeline.bench.harness import PIPELINE_STAGES
from retail_pipeline.cli import main

pytestmark = pytest.mark.integration

DAY = dt.date(2024, 3, 1)
GOOD = ["536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "6", "2010-12-01 08:26:00", "2.55", "17850.0", "United Kingdom"]  # fmt: skip


def line(**changes: str) -> list[str]:
    row = dict(zip(dialect.SOURCE_COLUMNS, GOOD, strict=True))
    row.update(changes)
    return [row[c] for c in dialect.SOURCE_COLUMNS]


# Every kind of dirt the contract knows, and the clean shapes it must accept. The comment is the reason expected.
DIRTY: list[list[str]] = [
    line(),  # clean
    line(),  # duplicate
    line(stock_code="71053", invoice_date="12/1/2010 8:26", description="LANTERN"),  # clean, US date
    line(stock_code="22752", invoice_date="12/01/2010 08:26:30"),  # clean, US date with seconds
    line(stock_code="21730", invoice_date="2010-12-01 08:26"),  # clean, ISO date without seconds
    line(stock_code="22633", invoice_date=" 2011-12-09 12:50:00 "),  # clean, spaces around
    line(invoice_no="C536379", stock_code="D", quantity="-1", unit_price="27.50"),  # a return, not a reject
    line(invoice_no="C536381", quantity="1"),  # invalid_cancellation: it takes nothing back
    line(invoice_no=""),  # missing_invoice_no
    line(stock_code="  "),  # missing_stock_code
    line(quantity="6.0"),  # invalid_quantity
    line(quantity="x"),  # invalid_quantity
    line(quantity="9223372036854775808"),  # invalid_quantity: beyond bigint
    line(unit_price="2.5555"),  # invalid_unit_price: a 4th decimal
    line(unit_price="1,000.00"),  # invalid_unit_price
    line(invoice_date="2/30/2011 8:00"),  # invalid_invoice_date
    line(invoice_date="2010-12-01 24:00:00"),  # invalid_invoice_date
    line(invoice_date="garbage"),  # invalid_invoice_date
    line(customer_id="abc"),  # invalid_customer_id
    line(customer_id="17850.5"),  # invalid_customer_id
    line(stock_code="84406B", customer_id=""),  # clean, a guest sale
    line(stock_code="84406B", customer_id=""),  # duplicate of the guest sale
    line(quantity="x"),  # duplicate (of an invalid row: duplicate comes first)
    line(stock_code="84029G", quantity="0"),  # non_positive_quantity
    line(stock_code="84029E", quantity="-3"),  # non_positive_quantity
    line(stock_code="POST", unit_price="0"),  # non_positive_unit_price
    # non_positive_unit_price, twice: the bad-debt adjustment, and a stock adjustment without a description
    line(
        invoice_no="A563185",
        stock_code="B",
        description="Adjust bad debt",
        unit_price="-11062.06",
        customer_id="",
    ),
    line(stock_code="22139", description="", customer_id="", unit_price="0.0", quantity="56"),
    line(stock_code="21755", description='SET OF 3 "CAKE" TINS'),  # clean, quotes
    line(stock_code="21754", description="BACK\\SLASH"),  # clean, a backslash
    line(stock_code="21871", description="TAB\tINSIDE"),  # clean, tab becomes a space
    line(stock_code="21777", description="  PADDED  "),  # clean, trimmed
    line(stock_code="21034", description="COMMA, SEPARATED | PIPE"),  # clean
    line(stock_code="22960", description="CAFÉ CRÈME"),  # clean
    line(stock_code="22961", description="NEW\nLINE"),  # clean: a quoted line break
    line(stock_code="22962", quantity=" 12 ", unit_price=" 0.001", customer_id=" 17850.0 "),  # clean, trimmed
    line(stock_code="22963", quantity="+2", unit_price=".5"),  # clean
    line(stock_code="22964", unit_price="5.", customer_id="12346"),  # clean
    line(stock_code="22966", invoice_date="2099-12-01 08:26:00"),  # invoice_date_out_of_range
    line(stock_code="22967", invoice_date="12/31/1999 23:59"),  # invoice_date_out_of_range
    line(stock_code="22968", description="É" * 257),  # value_too_long: 514 bytes in a varchar(512)
    line(stock_code="22969", description="É" * 256),  # clean: 512 bytes exactly
    line(stock_code="S" * 33),  # value_too_long
    line(stock_code="22965", unit_price="2.5500"),  # clean, trailing zeros (last: the tamper test drops it)
]
MALFORMED = [
    "536366,85123A,SEVEN FIELDS,6,2010-12-01 08:26:00,2.55,17850.0\n",
    "536366,85123A,NINE FIELDS,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom,extra\n",
]


def dirty_csv() -> bytes:
    """DIRTY as the Kaggle export would write it (quoted where needed), a BOM, and two malformed lines."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(dialect.RAW_COLUMNS)
    writer.writerows(DIRTY[:5])
    body = text.getvalue() + MALFORMED[0]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(DIRTY[5:])
    return "\ufeff".encode() + (body + MALFORMED[1] + text.getvalue()).encode("utf-8")


@pytest.fixture(scope="module")
def transformed(tmp_path_factory, spark) -> Path:
    """A lake whose one partition is the dirty file, transformed by the real job (local Spark)."""
    lake_root = tmp_path_factory.mktemp("dirty") / "lake"
    data = dirty_csv()
    lake = LocalLake(lake_root)
    lake.write_bytes(layout.raw_key(DAY), data)
    rows = len(DIRTY) + len(MALFORMED)
    lake.write_json(
        layout.raw_manifest_key(DAY),
        {"source": "file", "sha256": hashlib.sha256(data).hexdigest(), "rows": rows},
    )
    run_local(
        Settings(lake=str(lake_root)),
        run_id="bench-parity",
        ingest_date=DAY,
        options=TransformOptions(max_quarantine_ratio=1.0),
    )
    return lake_root


def test_bench_runs_end_to_end_at_a_tiny_scale_and_writes_json_table_and_chart(tmp_path):
    assert main(["bench", "--scale", "0.01", "--out", str(tmp_path)]) == 0

    [result] = tmp_path.glob("*.json")
    data = json.loads(result.read_text())
    assert data["command"].startswith("retail-pipeline bench --scale 0.01")
    [scale] = data["scales"]
    assert scale["rows_in"] >= round(0.01 * 541_909)
    for stage in PIPELINE_STAGES:
        assert scale["stages"][stage]["seconds"] > 0
        assert scale["stages"][stage]["rows_per_second"] > 0
    transform = scale["stages"]["transform"]
    assert "java" in transform["rss_at_peak_by_process"]  # the JVM is sampled with its Python parent
    assert transform["peak_rss_bytes"] > transform["rss_at_peak_by_process"]["java"]
    # End to end is a whole `retail-pipeline run` in its own lake (it checks its fact rows against the stages').
    assert scale["stages"]["end_to_end"]["note"].startswith("retail-pipeline run --skip-docs")
    assert scale["stages_summed_seconds"] > 0
    # A tiny input runs on C1 and the parallel collector, as the JVM itself reports (glue/runtime.py).
    assert {"-XX:TieredStopAtLevel=1", "-XX:+UseParallelGC"} <= set(scale["transform_jvm_flags"])
    assert scale["parity"] == {"ok": True, "engines": ["duckdb", "pandas", "spark"], "mismatches": []}
    assert scale["ratios"]["spark_over_duckdb"] > 0
    incremental = scale["incremental"]
    assert incremental["fact_rows_merged"] == incremental["rows_clean"] > 0
    assert incremental["gold_rows_after"]["sales_transactions"] == incremental["gold_fact_rows_expected"]
    # Every target a ratio with its goal, judged only where this run measured it (scale 0.01 alone here).
    assert all({"name", "goal", "ratio", "limit", "measured", "met"} <= set(t) for t in data["targets"])
    assert {t["name"] for t in data["targets"] if t["met"] is not None} == {"gate_share_0.01", "incremental"}

    table = result.with_suffix(".md").read_text()
    assert "| 0.01 | " in table and "exact (duckdb, pandas)" in table
    assert result.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    assert not (tmp_path / "work").exists()  # each scale's lake and warehouse are removed afterwards


def test_references_clean_every_kind_of_dirt_exactly_as_spark(transformed, tmp_path):
    spark = parity.spark_figures(transformed, DAY)
    assert set(spark.by_reason) == set(references.REJECT_REASONS)  # the fixture holds every kind of dirt
    assert spark.rows_in == len(DIRTY) + len(MALFORMED)
    raw = transformed / layout.raw_key(DAY)
    found = [references.run(engine, raw, tmp_path / engine, ingest_date=DAY) for engine in references.ENGINES]

    parity.check(spark, found)

    assert spark.rows_returns == 1
    # The references' own output holds the same clean lines and returns as Spark's, field for field.
    spark_rows = _tsv(transformed / layout.processed_prefix(DAY), "part-*.tsv")
    spark_returns = _tsv(transformed / layout.returns_prefix(DAY), "part-*.tsv")
    assert [r[1] for r in spark_returns] == ["C536379"]
    for engine in references.ENGINES:
        assert _tsv(tmp_path / engine, references.CLEAN_FILE) == spark_rows, engine
        assert _tsv(tmp_path / engine, references.RETURNS_FILE) == spark_returns, engine


# Values that tell the engines' parsers apart (Java regex `$`, try_cast's trimming, DateTimeFormatter widths,
# bigint edges, strptime's leap seconds...), mixed at random into otherwise good lines.
EDGES: dict[str, list[str]] = {
    "invoice_no": ["536365", " 536366 ", "C536379", "c536380", "", "  ", "A563185", "\t536367", "C", "5" * 17,
                   " " + "5" * 16 + " "],
    "stock_code": ["85123A", "", " ", "POST", "TAB\tCODE", "\x00"],
    "description": ["", 'SET OF 3 "CAKE" TINS', "BACK\\SLASH", "  padded  ", "nul\x00in", "\u00a0nbsp", "NEW\nLINE",
                    "É" * 256, "É" * 257, "D" * 513],
    "quantity": ["-3", "+2", "0", "007", " 6 ", "\t6", "6.0", "1e3", "", "x", "9223372036854775807",
                 "9223372036854775808", "-9223372036854775808", "6\x7f", "\u0663", "1_000", "+-1", "6\r\n"],
    "invoice_date": ["2010-12-01 08:26", "12/1/2010 8:26", "12/01/2010 08:26:30", "2/30/2011 8:00",
                     "2012-02-29 10:00:00", "2010-12-01 24:00:00", "12/1/2010 8:5", "12/1/10 8:26",
                     "2010-12-1 08:26:00", "2010-12-01T08:26:00", "012/1/2010 8:26", "12/1/2010 08:26:60",
                     "", "2010/12/01 08:26:00", "12/1/2010  8:26", "1/32/2011 0:00", "2010-12-01 08:26:00\t",
                     "2010-12-01 08:26:00\n", "2099-12-01 08:26:00", "12/31/1999 23:59", "2000-01-01 00:00:00"],
    "unit_price": ["0", "-1.5", "0.001", "2.5500", "2.5555", ".5", "5.", "+.5", "-0", "1e3", "1,000.00", "",
                   " 2.55 ", "\t2.55", "999999999999999.999", "1000000000000000", "0000000000000000002.5",
                   ".", "0.00010", "2.55\n", "2.55\r\n", "2.55\u2028"],
    "customer_id": ["17850", "", " ", "17850.5", "abc", "12346.00", "-5", "+5", "99999999999999999999",
                    "\t17850.0", "17850.", "9223372036854775808", "\t", "17850.0\n", "17850\u2028",
                    "17850.0\u0085"],
    "country": ["", " EIRE ", "TAB\tLAND", "C" * 65, "C" * 64],
}  # fmt: skip


def test_references_agree_with_spark_on_random_dirt(spark, tmp_path):
    """Not the job (its gate would refuse such a file), but its reader and cleaning functions on it."""
    from glue import cleaning
    from glue import io as tio

    rng = random.Random(7)
    rows = []
    for _ in range(2_000):
        row = line(invoice_no=str(536365 + rng.randrange(100)), quantity=str(rng.randrange(1, 20)))
        for i, column in enumerate(dialect.SOURCE_COLUMNS):
            if rng.random() < 0.15:
                row[i] = rng.choice(EDGES[column])
        rows.append(row)
        if rng.random() < 0.05:
            rows.append(list(rng.choice(rows)))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(dialect.RAW_COLUMNS)
    writer.writerows(rows)
    raw = tmp_path / "random.csv"
    raw.write_bytes(text.getvalue().encode("utf-8") + MALFORMED[0].encode())

    read = tio.read_raw(spark, str(raw), charset="UTF-8", multiline=True)
    flagged = cleaning.flag_rows(cleaning.rename_columns(read), order_by=(tio.BLOCK_START, tio.ROW_ID))
    by_reason = {r[0]: r[1] for r in flagged.groupBy("reject_reason").count().collect() if r[0]}

    def rows_of(df):
        return sorted(
            tuple(
                str(Decimal(v).normalize()) if c in ("unit_price", "total_sales") else (v or "")
                for c, v in r.asDict().items()
            )
            for r in tio.tsv_columns(df).collect()
        )

    spark_rows = rows_of(cleaning.clean_rows(flagged, DAY))
    spark_returns = rows_of(cleaning.return_rows(flagged, DAY))
    assert len(by_reason) >= 10 and len(spark_rows) > 500
    for engine in references.ENGINES:
        figures = references.run(engine, raw, tmp_path / engine, ingest_date=DAY)
        assert figures.by_reason == by_reason, engine
        assert figures.rows_returns == len(spark_returns), engine
        assert _tsv(tmp_path / engine, references.CLEAN_FILE) == spark_rows, engine
        assert _tsv(tmp_path / engine, references.RETURNS_FILE) == spark_returns, engine


def test_the_parity_check_fails_when_a_reference_differs(transformed, tmp_path):
    spark = parity.spark_figures(transformed, DAY)
    honest = references.run("duckdb", transformed / layout.raw_key(DAY), tmp_path / "honest", ingest_date=DAY)
    parity.check(spark, [honest])

    # A reference whose result was tampered with, by one tenth of a penny.
    tampered = dataclasses.replace(honest, total_sales=honest.total_sales + Decimal("0.001"))
    with pytest.raises(parity.ParityError, match="duckdb total_sales"):
        parity.check(spark, [tampered])

    # A reference that dropped one clean line: the count, the sum and the digest all say so.
    raw = (transformed / layout.raw_key(DAY)).read_bytes()
    last = b"536365,22965,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.5500,17850.0,United Kingdom\n"
    assert raw.endswith(last)
    dropped = raw[: -len(last)]
    (tmp_path / "dropped.csv").write_bytes(dropped)
    short = references.run("pandas", tmp_path / "dropped.csv", tmp_path / "short", ingest_date=DAY)
    with pytest.raises(parity.ParityError) as failed:
        parity.check(spark, [short])
    assert {m.figure for m in failed.value.mismatches} == {
        "rows_in",
        "rows_clean",
        "total_sales",
        "line_id_digest",
    }
    assert "\n" not in str(failed.value)  # one line, for the CLI


def _tsv(folder: Path, pattern: str) -> list[tuple[str, ...]]:
    """The data lines of the TSV files, as field tuples, sorted; decimals compared as numbers."""
    rows = []
    for part in folder.glob(pattern):
        header, *body = part.read_text(encoding="utf-8").split("\n")
        names = header.split("\t")
        for text in filter(None, body):
            row = dict(zip(names, text.split("\t"), strict=True))
            for name in ("unit_price", "total_sales"):
                row[name] = str(Decimal(row[name]).normalize())
            rows.append(tuple(row[c] for c in dialect.PROCESSED_COLUMNS))
    return sorted(rows)
