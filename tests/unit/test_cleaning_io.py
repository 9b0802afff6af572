"""The job's edges: encoding and header checks, line numbers, the TSV writer, picking a partition, the runtime."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import types
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from pyspark.sql import functions as F

from glue import io as tio
from glue import job, local, runtime
from glue.job import NothingNew, pick_partition
from glue.options import TransformOptions
from retail_core import contract, dialect, layout
from retail_core.errors import InputError
from retail_core.lake import LocalLake

HEADER = b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


# Encoding --------------------------------------------------------------------------------------------------


def test_utf8_with_bom_is_detected():
    enc = tio.choose_encoding("auto", b"\xef\xbb\xbf" + HEADER + "1,A,CAFÉ,1,x,1,,UK\n".encode())
    assert (enc.name, enc.bom, enc.how) == ("utf-8", True, "detected")


def test_utf8_without_bom_is_detected():
    assert tio.choose_encoding("auto", HEADER + "1,A,CAFÉ,1,x,1,,UK\n".encode()).name == "utf-8"


def test_latin1_bytes_are_detected_as_iso_8859_1():
    assert tio.choose_encoding("auto", HEADER + "1,A,CAFÉ,1,x,1,,UK\n".encode("latin-1")).name == "iso-8859-1"


def test_a_utf8_character_cut_by_the_end_of_the_head_is_still_utf8():
    head = HEADER + "CAFÉ".encode()[:-1]
    assert tio.choose_encoding("auto", head).name == "utf-8"
    assert tio.choose_encoding("auto", head, whole_file=True).name == "iso-8859-1"


def test_the_encoding_flag_wins_over_detection():
    enc = tio.choose_encoding("iso-8859-1", HEADER + "CAFÉ".encode())
    assert (enc.name, enc.how) == ("iso-8859-1", "flag")


# Header ----------------------------------------------------------------------------------------------------


def test_header_with_bom_and_crlf_is_accepted():
    head = b"\xef\xbb\xbf" + HEADER.replace(b"\n", b"\r\n")
    assert tio.check_header(head, tio.Encoding("utf-8", "detected", True), where="x") == dialect.RAW_COLUMNS


def test_wrong_header_is_a_one_line_input_error():
    with pytest.raises(InputError, match="wrong CSV header") as err:
        tio.check_header(b"a,b,c\n1,2,3\n", tio.Encoding("utf-8", "flag"), where="raw.csv")
    assert "\n" not in str(err.value)


def test_empty_file_is_an_input_error():
    with pytest.raises(InputError, match="empty"):
        tio.check_header(b"", tio.Encoding("utf-8", "flag"), where="raw.csv")


# Line numbers ----------------------------------------------------------------------------------------------


def test_line_numbers_count_on_across_file_splits(spark):
    # Two splits: rows 0..2 of the split at byte 0 and rows of the split at byte 100, whose ids start at 2^33.
    first = 1 << 33
    rows = [(0, 0), (0, 1), (0, 2), (100, first), (100, first + 1)]
    df = spark.createDataFrame(rows, [tio.BLOCK_START, tio.ROW_ID])
    blocks = {0: (3, 0), 100: (2, first)}
    got = sorted(r.line_no for r in df.select(tio.line_numbers(blocks).alias("line_no")).collect())
    assert got == [1, 2, 3, 4, 5]


def test_read_line_by_line_no_field_holds_a_cr_or_lf(spark, tmp_path):
    # flag_rows(line_breaks=False) searches only for tabs and NULs: that is exact only if the line reader
    # splits on every CR, LF and CRLF, inside quotes too, as here.
    body = b'1,A,"CR\rINSIDE",1,x,1,,UK\r\n2,B,LONE CR\rHERE,2,x,2,,UK\n3,C,"LF\nINSIDE",3,x,3,,UK\r4,D,E,4,x,4,,UK'
    path = tmp_path / "raw.csv"
    path.write_bytes(HEADER.replace(b"\n", b"\r\n") + body)
    rows = tio.read_raw(spark, str(path), charset="UTF-8", multiline=False).collect()
    fields = [r[c] for r in rows for c in [*dialect.RAW_COLUMNS, "_corrupt_record"] if r[c] is not None]
    assert any("INSIDE" in f for f in fields)  # the pieces were read
    assert not [f for f in fields if "\r" in f or "\n" in f]
    multiline = tio.read_raw(spark, str(path), charset="UTF-8", multiline=True).collect()
    assert any("\r" in (r["Description"] or "") for r in multiline)  # the search is needed there


SALE_LINE = b"536365,85123A,WHITE HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"


def _flagged_file(
    spark, path: Path, body: bytes, *, multiline: bool = False, find_undecodable: bool = False, attempt="test"
):
    """``body`` under the raw header at ``path``, read and flagged as the scan does (not cached)."""
    path.write_bytes(HEADER + body)
    return job.flagged_frame(
        spark,
        str(path),
        charset="UTF-8",
        multiline=multiline,
        attempt=attempt,
        date_window=(dt.datetime(2000, 1, 1), dt.datetime(2030, 1, 1)),
        find_undecodable=find_undecodable,
    )


@pytest.mark.parametrize("multiline", [False, True])
@pytest.mark.parametrize("find_undecodable", [False, True])
def test_the_flagging_stage_runs_as_whole_stage_code(spark, tmp_path, multiline, find_undecodable):
    # A generated method over runtime.HUGE_METHOD_LIMIT bytes makes Spark run the stage operator by operator,
    # copying every row at each step: 2-3 s more of the scan at scale 10. A new rule that pushes the stage
    # over must be paid for elsewhere (compute a shared value once, in the parse projection).
    frame = _flagged_file(
        spark, tmp_path / "raw.csv", SALE_LINE, multiline=multiline, find_undecodable=find_undecodable
    )
    assert len(frame.collect()) == 1  # run: with adaptive execution the final plan exists only then
    plan = frame._jdf.queryExecution().executedPlan()
    code = spark._jvm.org.apache.spark.sql.execution.debug.package.codegenString(plan)
    sizes = [int(n) for n in re.findall(r"maxMethodCodeSize:(\d+)", code)]
    assert len(sizes) >= 2, code[:500]  # the read's stage and the flagging stage, at least
    assert max(sizes) <= runtime.HUGE_METHOD_LIMIT


def test_the_scan_reads_its_cache_once_and_keeps_raw_values_for_rejects_only(spark, tmp_path):
    # Adaptive execution in Spark 3.5 builds a cache in a job of its own and reads it whole again for the
    # counts (at scale 10: 1.4 s more); with it off for the counts, the dedupe's shuffle and one pass remain.
    bad_quantity = b"536366,22633,HAND WARMER,x,2010-12-01 08:28:00,1.85,17850.0,United Kingdom\n"
    frame = _flagged_file(spark, tmp_path / "raw.csv", SALE_LINE + bad_quantity, attempt="test-one-pass")
    sc = spark.sparkContext
    sc.setJobGroup("scan-once", "the scan's jobs")
    try:
        scan = job._scan(frame, charset="UTF-8", multiline=False)
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    try:
        assert (scan.rows, scan.by_reason) == (2, {None: 1, contract.INVALID_QUANTITY: 1})
        jobs = sc.statusTracker().getJobIdsForGroup("scan-once")
        assert len(jobs) == 2, jobs  # the shuffle's map side, then the pass that caches and counts
        assert spark.conf.get("spark.sql.adaptive.enabled") == "true"  # set back for the gate and the writes
        raw = {r["reject_reason"]: r[job.RAW_VALUES] for r in scan.flagged.collect()}
        assert raw[None] is None  # a kept row carries its parsed values only
        assert raw[contract.INVALID_QUANTITY]["quantity"] == "x"
    finally:
        scan.flagged.unpersist()


# TSV writer ------------------------------------------------------------------------------------------------

TRICKY = [
    'SET OF 3 "CAKE" TINS',
    '"QUOTED AT BOTH ENDS"',
    'ONE " QUOTE',
    "BACK\\SLASH \\N \\t",
    "COMMA, SEPARATED",
    "PIPE|SEPARATED",
    "NULL",
    "CAFÉ CRÈME ÆØÅ 日本",
    "'SINGLE'",
]


def _written(spark, tmp_path: Path) -> tuple[Path, list[dict[str, str]]]:
    rows = [
        (f"{n:032x}", text, n, dt.datetime(2010, 12, 1, 8, 26, n), Decimal("0.001") * n, None if n % 2 else n)
        for n, text in enumerate(TRICKY)
    ]
    df = spark.createDataFrame(
        rows,
        "line_id string, description string, quantity bigint, invoice_date timestamp, "
        "unit_price decimal(18,3), customer_id bigint",
    ).repartition(3)
    df.write.parquet(str(tmp_path / "source"))  # the same rows again, for a second writer
    out = tmp_path / "out"
    written = tio.write_tsv(df, str(out), files=2, partitions=3, metrics={"n": F.sum("quantity")})
    assert written == {"rows": len(TRICKY), "n": sum(range(len(TRICKY)))}
    lines = []
    for part in sorted(out.glob(f"part-*{dialect.FILE_SUFFIX}")):
        header, *body = part.read_text(encoding="utf-8").split(dialect.LINE_TERMINATOR)
        assert header.split(dialect.SEPARATOR) == df.columns
        assert body[-1] == ""
        lines += [dict(zip(df.columns, line.split(dialect.SEPARATOR), strict=True)) for line in body[:-1]]
    return out, lines


def test_tsv_writer_keeps_quotes_backslashes_commas_and_pipes_literally(spark, tmp_path):
    _, lines = _written(spark, tmp_path)
    assert sorted(line["description"] for line in lines) == sorted(TRICKY)


def test_tsv_writer_formats_values_in_the_dialect(spark, tmp_path):
    _, lines = _written(spark, tmp_path)
    row = next(line for line in lines if line["line_id"] == f"{1:032x}")
    assert row["invoice_date"] == "2010-12-01 08:26:01"
    assert row["unit_price"] == "0.001"
    assert row["customer_id"] == ""  # NULL is an empty field


def test_tsv_writer_writes_what_the_dialects_csv_writer_writes_field_by_field(spark, tmp_path):
    """write_tsv hands Spark's writer each row as one field, its line (the writer's CPU is per field): the files
    must hold exactly the lines the dialect's options give when the writer gets the fields themselves."""
    out, _ = _written(spark, tmp_path)
    df = spark.read.parquet(str(tmp_path / "source"))
    fields = tmp_path / "fields"
    tio.tsv_columns(df).coalesce(1).write.options(**dialect.spark_writer_options()).csv(str(fields))

    def lines(folder: Path) -> list[bytes]:
        return sorted(line for part in folder.glob("part-*") for line in part.read_bytes().splitlines(True))

    header = (dialect.SEPARATOR.join(df.columns) + dialect.LINE_TERMINATOR).encode()
    assert lines(out) == sorted([header, *lines(fields)])
    assert lines(out).count(header) == 2  # one per part file


@pytest.mark.parametrize("rows", [0, 1], ids=["no-rows", "first-task-empty"])
def test_tsv_writer_writes_the_header_alone_where_the_csv_writer_does(spark, tmp_path, rows):
    # write_tsv writes lines with Spark's text writer and puts the header before each task's first line; an
    # empty task (the first task writes a file even then) must still give the header-only file the CSV writer
    # gives. parallelize puts the only row in the last of three slices.
    data = spark.sparkContext.parallelize([("WHITE HEART", 1)][:rows], 3)
    df = spark.createDataFrame(data, "description string, quantity bigint")
    written = tio.write_tsv(df, str(tmp_path / "out"), files=3, partitions=3)
    assert written == {"rows": rows}
    fields = tmp_path / "fields"
    tio.tsv_columns(df).coalesce(3).write.options(**dialect.spark_writer_options()).csv(str(fields))

    def contents(folder: Path) -> list[bytes]:
        return sorted(part.read_bytes() for part in folder.glob("part-*"))

    header = b"description\tquantity\n"
    assert contents(tmp_path / "out") == contents(fields)
    assert contents(tmp_path / "out")[0] == header  # the empty task's file: the header alone
    assert sorted(p.name for p in (tmp_path / "out").glob("part-*")) == [
        f"part-{n:05d}{dialect.FILE_SUFFIX}" for n in range(1 + rows)
    ]


def test_tsv_writer_names_parts_and_marks_success(spark, tmp_path):
    out, _ = _written(spark, tmp_path)
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == ["_SUCCESS", "part-00000.tsv", "part-00001.tsv"]


def test_duckdb_reads_the_tsv_back_with_the_shared_dialect(spark, tmp_path):
    out, _ = _written(spark, tmp_path)
    columns = "{'line_id': 'VARCHAR', 'description': 'VARCHAR', 'quantity': 'BIGINT', 'invoice_date': 'TIMESTAMP', 'unit_price': 'DECIMAL(18,3)', 'customer_id': 'BIGINT'}"
    got = duckdb.sql(
        f"select description, unit_price, invoice_date, customer_id from read_csv('{out}/part-*.tsv', "
        f"{dialect.duckdb_read_options()}, columns = {columns}) order by quantity"
    ).fetchall()
    assert [g[0] for g in got] == TRICKY
    assert got[1][1:] == (Decimal("0.001"), dt.datetime(2010, 12, 1, 8, 26, 1), None)


# Picking the partition --------------------------------------------------------------------------------------


def _land(lake: LocalLake, date: dt.date, *, manifest: bool = True) -> None:
    lake.write_bytes(layout.raw_key(date), HEADER)
    if manifest:
        lake.write_json(layout.raw_manifest_key(date), {"source": "file", "sha256": "0", "rows": 0})


def test_the_newest_complete_partition_is_picked(tmp_path):
    lake = LocalLake(tmp_path)
    _land(lake, dt.date(2024, 1, 1))
    _land(lake, dt.date(2024, 1, 2))
    _land(lake, dt.date(2024, 1, 3), manifest=False)  # still landing
    assert pick_partition(lake, None) == dt.date(2024, 1, 2)


def test_a_requested_partition_must_be_complete(tmp_path):
    lake = LocalLake(tmp_path)
    _land(lake, dt.date(2024, 1, 3), manifest=False)
    with pytest.raises(InputError, match="no complete raw partition"):
        pick_partition(lake, dt.date(2024, 1, 3))
    with pytest.raises(InputError, match="no complete raw partition"):
        pick_partition(lake, None)


def test_with_job_bookmarks_only_unseen_partitions_are_candidates(tmp_path):
    lake = LocalLake(tmp_path)
    _land(lake, dt.date(2024, 1, 1))
    _land(lake, dt.date(2024, 1, 2))
    assert pick_partition(lake, None, candidates={dt.date(2024, 1, 1)}) == dt.date(2024, 1, 1)
    with pytest.raises(NothingNew):
        pick_partition(lake, None, candidates=set())


# Runtime: Glue or local ------------------------------------------------------------------------------------


@pytest.fixture
def stub_awsglue(monkeypatch):
    """An awsglue package that imports but whose GlueContext cannot be made (as aws-glue-libs on a laptop)."""

    class GlueContext:
        def __init__(self, sc):
            raise TypeError("'JavaPackage' object is not callable")

    package = types.ModuleType("awsglue")
    context = types.ModuleType("awsglue.context")
    context.GlueContext = GlueContext
    job = types.ModuleType("awsglue.job")
    job.Job = object
    for name, module in {"awsglue": package, "awsglue.context": context, "awsglue.job": job}.items():
        monkeypatch.setitem(sys.modules, name, module)


def test_a_stub_awsglue_that_cannot_make_a_glue_context_means_local(spark, stub_awsglue):
    assert runtime.start_glue(["retail_transform.py", "--JOB_NAME", "x", "--lake", "s3://b"]) is None


def test_without_glue_job_arguments_the_job_runs_locally_even_with_awsglue(spark, stub_awsglue):
    assert not runtime.is_glue_job_run(["retail_transform.py", "--lake", "data/lake"])
    assert runtime.start_glue(["retail_transform.py", "--lake", "data/lake"]) is None


def test_a_working_glue_context_means_glue(spark, monkeypatch, stub_awsglue):
    class GlueContext:
        def __init__(self, sc):
            self.spark_session = spark

    class Job:
        def __init__(self, context):
            self.context = context

    monkeypatch.setattr(sys.modules["awsglue.context"], "GlueContext", GlueContext)
    monkeypatch.setattr(sys.modules["awsglue.job"], "Job", Job)
    rt = runtime.start_glue(["retail_transform.py", "--JOB_NAME", "x"])
    assert rt.engine == runtime.GLUE_ENGINE
    assert isinstance(rt.job, Job)
    assert not rt.owns_session


def test_shuffle_partitions_follow_the_input_size():
    assert runtime.shuffle_partitions_for(45 * 2**20, cores=2) == 2
    assert runtime.shuffle_partitions_for(4300 * 2**20, cores=2) == 68
    assert runtime.shuffle_partitions_for(4300 * 2**20, cores=2, requested=8) == 8


def test_the_csv_is_read_in_equal_waves_over_the_cores():
    mib = 2**20
    # Spark's own split is 128 MiB; above cores x 128 MiB it would leave a short last split and an idle core.
    assert runtime.read_splits_for(45 * mib, cores=2) == 2
    # Scale 10: 4 splits of ~116 MiB, not 128, 128, 128 and 78.
    assert runtime.read_splits_for(462 * mib, cores=2) == 4
    assert runtime.read_splits_for(4620 * mib, cores=2) == 38
    assert runtime.read_splits_for(4620 * mib, cores=8) == 40
    for size in (1, 300 * mib, 4620 * mib):
        for cores in (1, 2, 4, 8):
            splits = runtime.read_splits_for(size, cores)
            assert splits % cores == 0
            assert (size + runtime.READ_OPEN_COST) / splits <= runtime.READ_SPLIT_MAX
    assert runtime.sql_settings(2, 462 * mib, cores=2)["spark.sql.files.minPartitionNum"] == "4"
    assert "spark.sql.files.minPartitionNum" not in runtime.sql_settings(2)


def test_session_settings_pin_utc_and_the_partitions():
    settings = runtime.sql_settings(6)
    assert settings["spark.sql.session.timeZone"] == "UTC"
    assert settings["spark.sql.shuffle.partitions"] == "6"


def test_on_glue_the_bookmark_decides_which_manifests_are_new(spark, tmp_path):
    class DynamicFrames:
        def from_options(self, **kwargs):
            assert kwargs["transformation_ctx"] == "raw_manifests"  # the bookmark's key
            assert kwargs["format"] == "json"
            rows = [("2024-01-02",), ("2024-01-03",), (None,)]
            frame = spark.createDataFrame(rows, "ingest_date string")
            return types.SimpleNamespace(toDF=lambda: frame)

    glue = types.SimpleNamespace(create_dynamic_frame=DynamicFrames())
    rt = runtime.Runtime(spark=spark, engine=runtime.GLUE_ENGINE, glue_context=glue)
    assert rt.unprocessed_partitions(LocalLake(tmp_path)) == {dt.date(2024, 1, 2), dt.date(2024, 1, 3)}
    assert (
        runtime.Runtime(spark=spark, engine=runtime.LOCAL_ENGINE).unprocessed_partitions(LocalLake(tmp_path))
        is None
    )


def test_transform_help_documents_every_parameter(capsys):
    from retail_pipeline.cli import main

    with pytest.raises(SystemExit) as done:
        main(["transform", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--ingest-date",
        "--encoding",
        "--output-files",
        "--max-quarantine-ratio",
        "--shuffle-partitions",
        "--driver-memory",
    ):
        assert flag in text
    assert "UTC" in text


def test_on_glue_nothing_new_since_the_bookmark_is_an_empty_set(spark, tmp_path):
    empty = types.SimpleNamespace(toDF=lambda: spark.createDataFrame([], "x int").drop("x"))
    glue = types.SimpleNamespace(create_dynamic_frame=types.SimpleNamespace(from_options=lambda **kw: empty))
    rt = runtime.Runtime(spark=spark, engine=runtime.GLUE_ENGINE, glue_context=glue)
    assert rt.unprocessed_partitions(LocalLake(tmp_path)) == set()


@pytest.mark.parametrize(("size", "ok"), [("10m", False), ("1023m", False), ("1024m", True), ("1g", True)])
def test_a_driver_memory_spark_cannot_start_in_is_refused_with_the_flag(size, ok):
    """Below 1 GiB the JVM died with a Java stack trace and the advice to check Java 17."""
    options = TransformOptions(driver_memory=size)
    if ok:
        options.check()
    else:
        with pytest.raises(InputError, match="driver memory below 1024m"):
            options.check()


def test_driver_memory_follows_the_input_size_unless_given():
    mib = 2**20
    assert local.driver_memory_for(45 * mib) == "2g"
    assert local.driver_memory_for(450 * mib) == "3g"
    assert local.driver_memory_for(4300 * mib) == "4g"
    assert local.driver_memory_for(4300 * mib, "6g") == "6g"


def _java_version(*options: str) -> subprocess.CompletedProcess[str]:
    """``java OPTIONS -version`` with the JVM the transform would start; it must accept the options."""
    local.ensure_java()
    java = local._java()
    assert java is not None
    done = subprocess.run([str(java), *options, "-version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done


def test_the_jit_directives_are_read_by_this_jvm():
    # A file the JVM cannot parse is an error at start: check it the way the transform passes it.
    done = _java_version(*local.MID_RUN_JAVA_OPTIONS[1:], "-XX:+CompilerDirectivesPrint")
    out = done.stdout + done.stderr
    assert "1 compiler directives added" in out
    ours = out.split("Directive: (default)")[0]  # the JVM prints ours, then its default
    assert "org/codehaus/*.*" in ours  # Janino
    assert "Exclude:true" in ours.split("c2 directives:")[1]


def test_the_mid_run_heap_and_metaspace_reach_the_jvm():
    # What the JVM makes of the options a scale-10 run starts with: the whole heap and metaspace from the start.
    options = local.java_options_for(438 * 2**20, heap="3g")
    done = _java_version(*options, "-Xmx3g", "-XX:+PrintFlagsFinal")
    flags = {line.split()[1]: line.split()[3] for line in done.stdout.splitlines() if " = " in line}
    assert flags["InitialHeapSize"] == str(3 * 2**30)
    assert flags["MetaspaceSize"] == str(256 * 2**20)
    assert flags["UseParallelGC"] == "true"


@pytest.mark.parametrize(
    ("selected", "offered"),
    [
        ("always [madvise] never\n", True),  # these machines, most distributions
        ("[always] madvise never\n", True),
        ("always madvise [never]\n", False),
        (None, False),  # no such file: not Linux, or a kernel without them
    ],
)
def test_huge_pages_are_asked_for_only_where_the_kernel_offers_them(tmp_path, selected, offered):
    setting = tmp_path / "enabled"
    if selected is not None:
        setting.write_text(selected)
    assert local.huge_pages_offered(setting) is offered


def test_only_the_committed_mid_run_heap_goes_in_huge_pages():
    mib = 2**20
    scale_10 = local.java_options_for(438 * mib, heap="3g", huge_pages=True)
    assert scale_10[-3:] == ("-Xms3g", *local.HUGE_PAGE_JAVA_OPTIONS)
    assert not set(local.HUGE_PAGE_JAVA_OPTIONS) & set(local.java_options_for(438 * mib, heap="3g"))
    # Scale 1 (C1, a heap that grows: they cost 0.5-1 s there) and scale 100 (G1, the JVM's defaults).
    assert not set(local.HUGE_PAGE_JAVA_OPTIONS) & set(
        local.java_options_for(43 * mib, heap="2g", huge_pages=True)
    )
    assert local.java_options_for(4400 * mib, heap="4g", huge_pages=True) == ()


def test_the_huge_pages_reach_the_jvm_where_the_kernel_offers_them():
    options = local.local_spark_settings(438 * 2**20, TransformOptions()).java_options
    if not local.huge_pages_offered():
        assert not set(local.HUGE_PAGE_JAVA_OPTIONS) & set(options)
        return
    assert options[-2:] == local.HUGE_PAGE_JAVA_OPTIONS
    # The same options on a 64 MiB heap: what the JVM makes of them, without mapping 3 GiB for a version string.
    small = [o for o in options if not o.startswith("-Xms")]
    done = _java_version(*small, "-Xms64m", "-Xmx64m", "-XX:+PrintFlagsFinal")
    flags = {line.split()[1]: line.split()[3] for line in done.stdout.splitlines() if " = " in line}
    assert flags["UseTransparentHugePages"] == "true"  # the JVM turns it off, with a warning, when refused
    assert flags["AlwaysPreTouch"] == "true"
    assert "VM warning" not in done.stdout + done.stderr


def test_only_a_short_run_gives_up_the_optimising_jit():
    mib = 2**20
    assert "-XX:TieredStopAtLevel=1" in local.java_options_for(43 * mib)  # scale 1
    scale_10 = local.local_spark_settings(438 * mib, TransformOptions()).java_options
    assert scale_10[: len(local.MID_RUN_JAVA_OPTIONS)] == local.MID_RUN_JAVA_OPTIONS  # C2 pays for itself
    assert "-XX:+UseParallelGC" in local.MID_RUN_JAVA_OPTIONS
    assert "-Xms3g" in scale_10  # the heap committed whole from the start (driver_memory_for: 3g)
    given = local.local_spark_settings(438 * mib, TransformOptions(driver_memory="6g"))
    assert "-Xms6g" in given.java_options
    assert not [f for f in local.java_options_for(43 * mib, heap="2g") if f.startswith("-Xms")]
    assert local.java_options_for(4400 * mib) == ()  # scale 100: G1 beside a full 4g heap and its spills
    assert local.java_options_for(0) == ()  # size unknown: the JVM's defaults
