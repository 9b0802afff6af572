"""The transform job end to end in local Spark, on small raw files the tests write."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from glue import io as tio
from glue.job import TransformFailed
from glue.local import run_local
from glue.options import TransformOptions
from glue.retail_transform import main as job_main
from ingestion import validate
from ingestion.manifest import build_manifest
from ingestion.sources import Produced
from retail_core import dialect, faults, layout
from retail_core.config import Settings
from retail_core.lake import LocalLake
from retail_pipeline.cli import main

pytestmark = pytest.mark.integration

DAY = dt.date(2024, 3, 1)
GOOD = [
    "536365",
    "85123A",
    "WHITE HANGING HEART T-LIGHT HOLDER",
    "6",
    "2010-12-01 08:26:00",
    "2.55",
    "17850.0",
    "United Kingdom",
]
TRICKY = [
    'SET OF 3 "CAKE" TINS',
    "BACK\\SLASH",
    "COMMA, SEPARATED",
    "PIPE|SEPARATED",
    "CAFÉ CRÈME",
    "NEW\nLINE",
    "TAB\tINSIDE",
]


def line(**changes: str) -> list[str]:
    row = dict(zip(dialect.SOURCE_COLUMNS, GOOD, strict=True))
    row.update(changes)
    return [row[c] for c in dialect.SOURCE_COLUMNS]


def land(
    lake_root: Path,
    rows: list[list[str]],
    *,
    date: dt.date = DAY,
    encoding: str = "utf-8",
    bom: bool = False,
    manifest_rows: int | None = None,
) -> None:
    """A raw partition as the ingest leaves it: the CSV, then a minimal manifest."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(dialect.RAW_COLUMNS)
    writer.writerows(rows)
    data = (b"\xef\xbb\xbf" if bom else b"") + text.getvalue().encode(encoding)
    lake = LocalLake(lake_root)
    lake.write_bytes(layout.raw_key(date), data)
    lake.write_json(
        layout.raw_manifest_key(date),
        {
            "source": "file",
            "sha256": hashlib.sha256(data).hexdigest(),
            "rows": len(rows) if manifest_rows is None else manifest_rows,
        },
    )


def named_files(folder: Path) -> list[Path]:
    """The files the partition manifest of ``folder`` names: what every reader reads."""
    manifest = json.loads((folder / layout.MANIFEST_NAME).read_text(encoding="utf-8"))
    return [folder / entry["name"] for entry in manifest["files"]]


def read_tsv(folder: Path) -> list[dict[str, str]]:
    rows = []
    for part in named_files(folder):
        header, *body = part.read_text(encoding="utf-8").split("\n")
        names = header.split("\t")
        rows += [dict(zip(names, text.split("\t"), strict=True)) for text in body if text]
    return rows


def transform(lake_root: Path, **options) -> object:
    return run_local(Settings(lake=str(lake_root)), run_id="test-run", options=TransformOptions(**options))


def processed(lake_root: Path, date: dt.date = DAY) -> Path:
    return lake_root / layout.processed_prefix(date)


@pytest.fixture
def lake(tmp_path, spark) -> Path:
    return tmp_path / "lake"


def test_transform_writes_processed_quarantine_and_a_reconciled_report(lake):
    rows = [
        line(),
        line(stock_code="71053", description="WHITE METAL LANTERN", quantity="8", unit_price="3.39"),
        line(),  # exact duplicate of the first
        line(invoice_no="C536379", quantity="-1"),
        line(stock_code="POST", unit_price="0"),
        line(
            stock_code="22752",
            customer_id="",
            invoice_date="12/1/2010 8:26",
            unit_price="0.001",
            quantity="3",
        ),
        line(stock_code="B", quantity="x"),
        line(invoice_no="C536380", quantity="2"),  # a cancellation giving nothing back
    ]
    land(lake, rows)
    result = transform(lake, output_files=2, max_quarantine_ratio=0.6)

    folder = processed(lake)
    generation = result.report["generation"]
    assert [p.name for p in named_files(folder)] == [f"part-0000{n}-{generation}.tsv" for n in (0, 1)]
    # The folder holds what its manifest names, the manifest and its COPY twin: no _SUCCESS, nothing else.
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [layout.MANIFEST_NAME, f"_copy_manifest-{generation}.json", *(p.name for p in named_files(folder))]
    )
    clean = read_tsv(folder)
    assert [list(r) for r in clean[:1]] == [list(dialect.PROCESSED_COLUMNS)]
    by_code = {r["stock_code"]: r for r in clean}
    assert sorted(by_code) == ["22752", "71053", "85123A"]
    guest = by_code["22752"]
    assert guest["customer_id"] == ""
    assert guest["invoice_date"] == "2010-12-01 08:26:00"
    assert (guest["unit_price"], guest["total_sales"]) == ("0.001", "0.003")
    assert by_code["85123A"]["customer_id"] == "17850"
    assert by_code["85123A"]["ingest_date"] == DAY.isoformat()

    rejected = read_tsv(lake / layout.quarantine_prefix(DAY))
    assert [list(r) for r in rejected[:1]] == [list(dialect.QUARANTINE_COLUMNS)]
    assert {(r["line_no"], r["reject_reason"]) for r in rejected} == {
        ("3", "duplicate"),
        ("5", "non_positive_unit_price"),
        ("7", "invalid_quantity"),
        ("8", "invalid_cancellation"),
    }
    # The return (line 4) is neither a sale nor a reject: typed, in returns/, with a negative total.
    (returned,) = read_tsv(lake / layout.returns_prefix(DAY))
    assert (returned["invoice_no"], returned["quantity"], returned["total_sales"]) == (
        "C536379",
        "-1",
        "-2.550",
    )
    assert next(r for r in rejected if r["line_no"] == "3")["customer_id"] == "17850.0"  # as it was

    report = json.loads((lake / layout.run_report_key(DAY)).read_text())
    assert report == result.report
    assert report["status"] == "succeeded"
    assert (report["rows_in"], report["rows_clean"], report["rows_returns"], report["rows_quarantined"]) == (
        8,
        3,
        1,
        4,
    )
    assert (
        report["rows_in"]
        == report["rows_clean"] + report["rows_returns"] + report["rows_quarantined"]
        == report["manifest_rows"]
    )
    assert report["quarantined_by_reason"] == {
        "duplicate": 1,
        "invalid_quantity": 1,
        "invalid_cancellation": 1,
        "non_positive_unit_price": 1,
    }
    assert Decimal(report["total_sales"]) == Decimal("15.30") + Decimal("27.12") + Decimal("0.003")
    assert Decimal(report["returns_total_sales"]) == Decimal("-2.550")
    assert report["quarantine_ratio"] == pytest.approx(4 / 8)
    assert report["engine"] == "spark-local"
    assert report["raw_sha256"] == json.loads((lake / layout.raw_manifest_key(DAY)).read_text())["sha256"]
    assert set(report["timings_s"]) >= {"read", "clean", "gate", "write", "total"}
    assert (lake / report["data_docs"]).read_text().lower().startswith("<!doctype html>")
    assert report["gate"]["passed"] is True
    assert report["gate"]["threshold"] == 0.6
    assert not (lake / layout.staging_prefix(layout.PROCESSED_ZONE, DAY)).exists()


def test_both_encodings_and_tricky_descriptions_arrive_exactly(lake):
    rows = [line(stock_code=str(n), description=text) for n, text in enumerate(TRICKY)]
    expected = {str(n): text.replace("\n", " ").replace("\t", " ") for n, text in enumerate(TRICKY)}
    for encoding, bom, date in (("utf-8", True, DAY), ("iso-8859-1", False, DAY + dt.timedelta(days=1))):
        land(lake, rows, encoding=encoding, bom=bom, date=date)
        result = run_local(
            Settings(lake=str(lake)), run_id="test-run", ingest_date=date, options=TransformOptions()
        )
        assert result.report["encoding"]["name"] == encoding
        assert result.report["multiline_records"] is True  # "NEW\nLINE" is one quoted field
        got = {r["stock_code"]: r["description"] for r in read_tsv(processed(lake, date))}
        assert got == expected
        # The warehouse's reader (DuckDB with the shared dialect) sees the same strings.
        duck = duckdb.sql(
            f"select stock_code, description from read_csv({[str(p) for p in named_files(processed(lake, date))]}, "
            f"{dialect.duckdb_read_options()}, columns = {{'line_id': 'VARCHAR', 'invoice_no': 'VARCHAR', "
            "'stock_code': 'VARCHAR', 'description': 'VARCHAR', 'quantity': 'BIGINT', "
            "'invoice_date': 'TIMESTAMP', 'unit_price': 'DECIMAL(18,3)', 'customer_id': 'BIGINT', "
            "'country': 'VARCHAR', 'total_sales': 'DECIMAL(38,3)', 'ingest_date': 'DATE'})"
        ).fetchall()
        assert dict(duck) == expected
        assert named_files(processed(lake, date))[0].read_bytes().decode("utf-8")  # UTF-8 out


def test_a_latin1_file_detected_as_utf8_from_its_head_is_read_again_as_latin1(lake, monkeypatch):
    monkeypatch.setattr(tio, "HEAD_SIZE", 200)  # the é lies beyond the bytes the driver looks at
    rows = [line(stock_code=str(n)) for n in range(5)] + [line(stock_code="X", description="CAFÉ")]
    land(lake, rows, encoding="iso-8859-1")
    result = transform(lake, max_quarantine_ratio=1.0)
    assert result.report["encoding"] == {"name": "iso-8859-1", "how": "fallback", "bom": False}
    assert {r["description"] for r in read_tsv(processed(lake)) if r["stock_code"] == "X"} == {"CAFÉ"}


def test_a_failed_gate_exits_3_writes_its_report_and_keeps_the_last_good_output(lake, capsys):
    land(lake, [line(stock_code=str(n)) for n in range(10)] + [line(invoice_no="C536365", quantity="-2")])
    assert main(["--lake", str(lake), "transform"]) == 0
    # The summary adds up: every row read is clean, a return or quarantined.
    assert "rows in 11  clean 10  returns 1  quarantined 0 (0.00%)" in capsys.readouterr().out
    before = {p.name: p.read_bytes() for p in processed(lake).iterdir()}
    rejected_before = {p.name: p.read_bytes() for p in (lake / layout.quarantine_prefix(DAY)).iterdir()}

    bad = [line(stock_code=str(n), quantity="-1") for n in range(8)] + [
        line(stock_code="A"),
        line(stock_code="B"),
    ]
    land(lake, bad)
    code = main(["--lake", str(lake), "transform", "--max-quarantine-ratio", "0.5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert "quality gate failed: 80% of rows quarantined, more than 50% (" in err[-1]  # 8 of 10

    assert {p.name: p.read_bytes() for p in processed(lake).iterdir()} == before
    assert {
        p.name: p.read_bytes() for p in (lake / layout.quarantine_prefix(DAY)).iterdir()
    } == rejected_before
    report = json.loads((lake / layout.run_report_key(DAY)).read_text())
    assert report["status"] == "failed_gate"
    assert report["quarantine_ratio"] == pytest.approx(0.8)
    failed = [e for e in report["gate"]["expectations"] if not e["success"]]
    assert [e["name"] for e in failed] == ["quarantine_ratio"]
    assert (lake / report["data_docs"]).exists()
    # The run page says the same for people, and links the Data Docs beside it.
    page_path = lake / layout.run_page_key(DAY)
    page = page_path.read_text(encoding="utf-8")
    assert "quality gate failed" in page
    assert '<td>quarantine_ratio</td><td class="bad">✗ fail</td>' in page
    assert "Not built by this run yet" in page
    assert 'href="data_docs/index.html"' in page and (page_path.parent / "data_docs" / "index.html").exists()
    # The writes ran beside the gate, into staging; the failed gate removed them unpublished.
    assert "rows_written" not in report
    for zone in (layout.PROCESSED_ZONE, layout.QUARANTINE_ZONE):
        assert LocalLake(lake).list_keys(layout.staging_prefix(zone, DAY)) == []


def test_a_ctrl_c_while_publishing_leaves_a_failed_report_and_the_last_good_sales(lake):
    """Interrupted after the quarantine is promoted and before the sales are: the report must not say
    "succeeded" (the load would then skip a batch it believes is mismatched, as if nothing were wrong)."""
    land(lake, [line(stock_code=str(n)) for n in range(10)])
    transform(lake)
    before = {p.name: p.read_bytes() for p in processed(lake).iterdir()}
    land(lake, [line(stock_code=str(n), quantity="2") for n in range(12)])
    with faults.armed("transform.between_zones", "interrupt"), pytest.raises(KeyboardInterrupt):
        transform(lake)
    report = json.loads((lake / layout.run_report_key(DAY)).read_text())
    assert report["status"] == "failed" and "interrupted" in report["error"]
    assert "generation" not in report
    assert {p.name: p.read_bytes() for p in processed(lake).iterdir()} == before
    transform(lake)  # and the next run converges
    report = json.loads((lake / layout.run_report_key(DAY)).read_text())
    assert (report["status"], report["rows_clean"]) == ("succeeded", 12)


def test_rows_that_do_not_reconcile_fail_the_run_and_publish_nothing(lake):
    land(lake, [line(stock_code=str(n)) for n in range(4)], manifest_rows=5)
    with pytest.raises(TransformFailed, match="do not reconcile"):
        transform(lake)
    assert not processed(lake).exists()
    report = json.loads((lake / layout.run_report_key(DAY)).read_text())
    assert report["status"] == "failed_conservation"
    # A batch the gate refuses too: the miscount is the news (the gate judged rows read wrongly).
    land(lake, [line(stock_code=str(n), quantity="x" if n % 2 else "1") for n in range(4)], manifest_rows=5)
    with pytest.raises(TransformFailed, match="the manifest counts 5 rows, Spark read 4"):
        transform(lake)
    report = json.loads((lake / layout.run_report_key(DAY)).read_text())
    assert (report["status"], report["gate"]["passed"]) == ("failed_conservation", False)


def land_as_ingested(lake_root: Path, data: bytes, date: dt.date = DAY) -> dict:
    """``data`` as the raw partition, with the manifest the ingest writes for it (its facts read by the ingest's
    own inspection)."""
    path = lake_root.parent / "export.csv"
    path.write_bytes(data)
    facts = validate.inspect_csv(path)
    produced = Produced(details={"path": str(path)})
    manifest = build_manifest(
        source="file",
        facts=facts,
        produced=produced,
        ingest_date=date,
        fetched_at=dt.datetime.now(dt.UTC),
        run_id="t",
    )
    lake = LocalLake(lake_root)
    lake.write_bytes(layout.raw_key(date), data)
    lake.write_json(layout.raw_manifest_key(date), manifest)
    return manifest


SPLIT_RECORD = (
    # A quoted last field holding a line break, whose pieces each split into eight fields: read line by line,
    # the second piece is a well-formed sale of 500.00 that no one made.
    '536920,X20,SPLIT,1,2010-12-01 08:26:00,1.0,17850.0,"United\n'
    '536921,X21,A FAKE SALE OF FIVE HUNDRED POUNDS,5,2010-12-01 08:26:00,100.0,17850.0,Kingdom"\n'
)


def test_a_split_record_and_a_dropped_line_of_spaces_do_not_cancel_out(lake):
    """The line reader drops the line of spaces and splits the record in two: three rows, as many as the ingest
    counted, so the counts alone do not show it. The manifest's record shape does."""
    header = ",".join(dialect.RAW_COLUMNS)
    data = f"{header}\n{','.join(GOOD)}\n{SPLIT_RECORD}   \n".encode()
    manifest = land_as_ingested(lake, data)
    assert (manifest["rows"], manifest["multiline_records"], manifest["blank_like_lines"]) == (3, 1, 1)
    report = transform(lake, max_quarantine_ratio=1.0).report
    assert report["multiline_records"] is True
    assert (report["rows_in"], report["rows_clean"]) == (3, 1)
    # The record, its country now 94 characters long, and the line of spaces, each in quarantine.
    assert report["quarantined_by_reason"] == {"value_too_long": 1, "malformed_row": 1}
    assert Decimal(report["total_sales"]) == Decimal("15.300")


def test_mixed_line_ends_where_records_span_lines_are_a_one_line_error(lake, capsys):
    header = ",".join(dialect.RAW_COLUMNS)
    data = f"{header}\r\n{','.join(GOOD)}\n{SPLIT_RECORD}".encode()
    land_as_ingested(lake, data)
    assert main(["--lake", str(lake), "transform"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("retail-pipeline transform: error: the raw CSV mixes line ends (1 CRLF, 2 LF)")
    assert "dos2unix" in err[-1] and "Traceback" not in "".join(err)
    assert not processed(lake).exists()


def test_total_sales_past_decimal_38_3_is_a_one_line_error_not_a_zero(lake, capsys):
    """Each row's total fits (19 + 15 digits), twelve of them do not: Spark's sum is then NULL, which the report
    said was 0.000, and the writes' sums reconciled with it."""
    land(
        lake,
        [
            line(stock_code=f"H{n}", quantity="9" + "0" * 18, unit_price="999999999999999.999")
            for n in range(12)
        ],
    )
    assert main(["--lake", str(lake), "transform"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "total_sales (quantity x unit_price) add up past decimal(38,3)" in err[-1]
    assert not processed(lake).exists()


def test_a_killed_run_leaves_only_staging_which_no_reader_sees_and_the_next_run_removes(lake):
    land(lake, [line(stock_code=str(n)) for n in range(3)])
    leftover = lake / layout.staging_prefix(layout.PROCESSED_ZONE, DAY, "killed-run")
    leftover.mkdir(parents=True)
    (leftover / "part-00000.tsv").write_text("half a file")
    assert LocalLake(lake).partitions(layout.PROCESSED_ZONE) == []  # readers list ingest_date=... only
    transform(lake)
    assert not leftover.exists()
    assert LocalLake(lake).partitions(layout.PROCESSED_ZONE) == [DAY]


def test_bad_input_is_a_one_line_error_with_exit_code_2(lake, capsys):
    assert main(["--lake", str(lake), "transform"]) == 2
    assert "no complete raw partition" in capsys.readouterr().err
    LocalLake(lake).write_bytes(layout.raw_key(DAY), b"a,b\n1,2\n")
    LocalLake(lake).write_json(layout.raw_manifest_key(DAY), {"source": "file", "sha256": "0", "rows": 1})
    assert main(["--lake", str(lake), "transform"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "wrong CSV header" in err[-1]
    assert main(["--lake", "s3://bucket/lake", "transform"]) == 2
    assert "local lakes only" in capsys.readouterr().err


def test_the_glue_script_runs_locally_with_glue_style_arguments(lake):
    land(lake, [line(stock_code=str(n)) for n in range(3)])
    argv = [
        "retail_transform.py",
        "--lake",
        str(lake),
        "--ingest_date",
        DAY.isoformat(),
        "--output_files",
        "1",
        "--run_id",
        "run-from-the-state-machine",
    ]
    assert job_main(argv) == 0
    report = json.loads((lake / layout.run_report_key(DAY)).read_text())
    assert [p.name for p in named_files(processed(lake))] == [f"part-00000-{report['generation']}.tsv"]
    assert (report["engine"], report["run_id"]) == ("spark-local", "run-from-the-state-machine")
