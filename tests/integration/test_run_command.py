"""`retail-pipeline run` in a process of its own, as a user runs it: the Spark it starts while the ingest runs
is the one the transform uses when the guess was right, and is stopped cleanly when the ingest fails.
(The benchmark's tiny-scale test runs a whole successful `run` too; this one looks at the edges.)"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from retail_core import dialect, layout
from warehouse import project

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LINE = "536365,{code},WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"
DATE = dt.date(2024, 3, 1)


def _run(tmp_path: Path, csv_path: Path | None, *command: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAGGLE", "RETAIL_", "DBT_LOG_LEVEL"))}
    env.update(
        DBT_PROFILES_DIR=str(project.copy_profiles_example(tmp_path / "profiles")),
        DBT_TARGET_PATH=str(tmp_path / "target"),
        DBT_LOG_PATH=str(tmp_path / "dbt-logs"),
        RETAIL_METRICS="lake",
    )
    if not command:
        command = ("run", "--source", "file", "--path", str(csv_path), "--ingest-date", DATE.isoformat())
        command += ("--skip-docs",)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "retail_pipeline.cli",
            "--lake",
            str(tmp_path / "lake"),
            "--duckdb-path",
            str(tmp_path / "warehouse.duckdb"),
            *command,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One successful `retail-pipeline run` of a three-line export in a fresh lake and warehouse, shared by the
    tests below (each `run` starts a JVM and dbt: half a minute of CPU); the last of them builds on top of it."""
    tmp_path = tmp_path_factory.mktemp("run")
    csv_path = tmp_path / "export.csv"
    lines = "".join(LINE.format(code=code) for code in ("85123A", "71053", "22633"))
    csv_path.write_text(",".join(dialect.RAW_COLUMNS) + "\n" + lines, encoding="utf-8")
    return tmp_path, _run(tmp_path, csv_path)


def test_run_transforms_with_the_spark_it_started_during_the_ingest(first_run):
    tmp_path, done = first_run
    assert done.returncode == 0, done.stderr[-2000:]
    assert "starting Spark for about 0 MB while the ingest runs" in done.stderr
    assert "sized for another input" not in done.stderr  # the early Spark was the right one, and was used
    report = json.loads((tmp_path / "lake" / layout.run_report_key(DATE)).read_text())
    assert (report["rows_in"], report["rows_clean"]) == (3, 3)
    # Sized from the file before it landed: a small input's JIT and GC, as the JVM itself reports.
    assert {"-XX:TieredStopAtLevel=1", "-XX:+UseParallelGC"} <= set(report["spark"]["jvm_flags"])
    # A crashing JVM would write its report to the scratch folder, never to the working directory.
    (error_file,) = [f for f in report["spark"]["jvm_flags"] if f.startswith("-XX:ErrorFile=")]
    assert error_file.startswith(f"-XX:ErrorFile={tempfile.gettempdir()}/retail-spark-")
    assert project.gold_row_counts(tmp_path / "warehouse.duckdb")["sales_transactions"] == 3
    # Quiet by default: a line per stage and the summary, not dbt's line per model and test.
    output = (done.stdout + done.stderr).splitlines()
    assert len(output) <= 45, "\n".join(output)
    assert not [line for line in output if "START sql" in line or "START test" in line]
    assert not [line for line in output if " WARN " in line], "a clean run has nothing to warn about"


def test_one_run_id_reaches_the_manifest_the_report_the_metrics_and_dbt(first_run):
    """The run mints one id (no RETAIL_RUN_ID given) and every stage, record and artifact carries it."""
    tmp_path, done = first_run
    assert done.returncode == 0, done.stderr[-2000:]
    lake = tmp_path / "lake"
    manifest = json.loads((lake / layout.raw_manifest_key(DATE)).read_text())
    run_id = manifest["run_id"]
    assert json.loads((lake / layout.run_report_key(DATE)).read_text())["run_id"] == run_id
    records = [json.loads(line) for line in (lake / "runs" / "online_retail" / "run_log.jsonl").open()]
    assert {(r["stage"], r["run_id"]) for r in records} == {
        (stage, run_id) for stage in ("ingest", "transform", "build", "pipeline")
    }
    run_results = json.loads((tmp_path / "target" / "run_results.json").read_text())
    assert run_results["metadata"]["env"]["RETAIL_RUN_ID"] == run_id


def test_verbose_brings_dbts_detail_back(first_run):
    tmp_path, done = first_run
    assert done.returncode == 0, done.stderr[-2000:]
    verbose = _run(tmp_path, None, "-v", "build", "--full-refresh")
    assert verbose.returncode == 0, verbose.stderr[-2000:]
    assert "OK created sql incremental model gold_audit.sales_transactions" in verbose.stdout + verbose.stderr
    assert "START sql" in verbose.stdout + verbose.stderr  # what the quiet run leaves out


def test_a_day_of_returns_only_runs_through_to_gold(first_run):
    """Every row of the day is a return: no clean row, nothing quarantined. The gate judges the ratio (its column
    checks have no row to judge), the transform publishes an empty sales partition beside the returns, and the
    build takes the return to gold, paired with the sale it reverses."""
    tmp_path, done = first_run
    assert done.returncode == 0, done.stderr[-2000:]
    day = DATE + dt.timedelta(days=1)
    csv_path = tmp_path / "returns.csv"
    returned = "C536366,85123A,WHITE HANGING HEART T-LIGHT HOLDER,-2,2010-12-02 09:00:00,2.55,17850.0,United Kingdom\n"
    csv_path.write_text(",".join(dialect.RAW_COLUMNS) + "\n" + returned, encoding="utf-8")
    command = (
        "run",
        "--source",
        "file",
        "--path",
        str(csv_path),
        "--ingest-date",
        day.isoformat(),
        "--skip-docs",
    )
    returns_day = _run(tmp_path, None, *command)
    assert returns_day.returncode == 0, returns_day.stderr[-2000:]
    report = json.loads((tmp_path / "lake" / layout.run_report_key(day)).read_text())
    assert (report["status"], report["rows_in"], report["rows_clean"], report["rows_returns"]) == (
        "succeeded",
        1,
        0,
        1,
    )
    assert (report["total_sales"], report["returns_total_sales"]) == ("0.000", "-5.100")
    gold = tmp_path / "warehouse.duckdb"
    assert project.gold_row_counts(gold)["sales_transactions"] == 3
    with duckdb.connect(str(gold), read_only=True) as con:
        assert con.execute("select invoiceno, total_sales, is_paired from gold.sales_returns").fetchall() == [
            ("C536366", Decimal("-5.100"), True)
        ]


def test_a_failed_ingest_stops_the_early_spark_and_exits_with_one_line(tmp_path):
    csv_path = tmp_path / "export.csv"
    csv_path.write_text("a,b\n1,2\n", encoding="utf-8")

    done = _run(tmp_path, csv_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "wrong" in last.lower() and "header" in last.lower()
    assert not (tmp_path / "lake" / layout.RAW_ZONE).exists() or not any(
        (tmp_path / "lake" / layout.RAW_ZONE).rglob("*.csv")
    )


STOP_AND_RESTART = """
import os, sys
from glue import local, runtime
first = local.start_local(runtime.SparkSettings(driver_memory="1g"))
jvm = first.spark._jvm.java.lang.ProcessHandle.current().pid()
first.stop()
print(os.path.exists(f"/proc/{jvm}"))
second = local.start_local(runtime.SparkSettings(driver_memory="2g"))
print(second.spark._jvm.java.lang.Runtime.getRuntime().maxMemory() // 2**20, second.spark.range(3).count())
second.stop()
"""


def test_stopping_our_spark_ends_its_jvm_and_the_next_start_gets_its_own_heap():
    """SparkSession.stop alone keeps the JVM (and its heap) until Python exits: `run` would hold it through the
    dbt build, and a restart for a bigger input would silently keep the old heap."""
    done = subprocess.run(
        [sys.executable, "-c", STOP_AND_RESTART], capture_output=True, text=True, cwd=REPO, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    alive, heap = done.stdout.split("\n")[:2]
    assert alive == "False"
    assert heap == "2048 3"


RECORD_CLASSES = """
import sys
from pathlib import Path
from glue import local, runtime
archive = Path(sys.argv[1])
local.class_archive_path = lambda: archive  # a fresh install's state, without touching this venv's archive
rt = local.start_local(runtime.SparkSettings(driver_memory="1g", java_options=tuple(sys.argv[3:])))
assert rt.spark.range(1000).selectExpr("sum(id)").first()[0] == 499500
if sys.argv[2] == "succeeded":
    local.keep_class_recording(rt)
stopper = rt.stopper
rt.stop()
stopper.join()
print(archive.is_file(), sorted(p.name for p in archive.parent.iterdir() if p != archive))
"""


def test_a_first_spark_records_the_class_archive_as_its_jvm_exits_and_the_next_one_maps_it(tmp_path):
    """`make run` builds no archive beforehand: the first transform records it as its JVM exits (kept because its
    run succeeded), and the next JVM maps it instead of recording again."""
    archive = tmp_path / "var" / "spark.jsa"

    def spark(outcome: str, *java_options: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", RECORD_CLASSES, str(archive), outcome, *java_options],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip()

    # (A failed run's JVM is killed before it writes: tests/unit/test_local_jvm.py, on a stand-in JVM.)
    assert spark("succeeded") == "True []"
    recorded = archive.stat()
    loads = tmp_path / "class-load.log"
    assert spark("succeeded", f"-Xlog:class+load=info:file={loads}") == "True []"
    # The JVM logs where each class came from: from this archive (the "top" layer above the JDK's own), many.
    from_archive = sum("source: shared objects file (top)" in line for line in loads.open())
    assert from_archive > 1000
    assert archive.stat().st_mtime_ns == recorded.st_mtime_ns  # mapped, not recorded again
