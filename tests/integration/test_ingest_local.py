"""Ingest into a local lake: landing, idempotency, atomicity under a kill, and bad input through the CLI."""

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from glue.job import NothingNew, pick_partition
from ingestion.ingest import complete_partitions, ingest
from ingestion.sources.file import FileSource
from retail_core import layout
from retail_core.errors import InputError
from retail_core.lake import LocalLake

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
ROWS = [
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n",
    '536365,71053,"LANTERN, WHITE METAL",6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom\n',
    '536366,22633,"HAND WARMER ""UNION JACK""\nSECOND LINE",6,2010-12-01 08:28:00,1.85,,France\n',
]


def _csv(tmp_path: Path, name="export.csv", rows=ROWS) -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path


def _cli(*args: str, env_extra: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "retail_pipeline.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or REPO,
        timeout=120,
    )


def test_file_source_lands_bytes_unchanged_with_a_complete_manifest(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    src = _csv(tmp_path)
    day = dt.date(2024, 3, 1)
    result = ingest(lake, FileSource(src), run_id="test-run", ingest_date=day)
    assert result.landed
    landed = lake.path(layout.raw_key(day))
    assert landed.read_bytes() == src.read_bytes()
    manifest = json.loads(lake.path(layout.raw_manifest_key(day)).read_text())
    assert manifest["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert manifest["bytes"] == src.stat().st_size
    # The third record has a newline inside quotes: rows are CSV records, not lines.
    assert manifest["rows"] == 3
    assert manifest["header"] == HEADER.strip().split(",")
    assert manifest["source"] == "file"
    assert {"fetched_at", "seed", "scale"} <= manifest.keys()


def test_identical_content_is_not_landed_twice(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    src = _csv(tmp_path)
    first = ingest(lake, FileSource(src), run_id="test-run", ingest_date=dt.date(2024, 3, 1))
    mtime = lake.path(layout.raw_key(dt.date(2024, 3, 1))).stat().st_mtime_ns
    second = ingest(lake, FileSource(src), run_id="test-run", ingest_date=dt.date(2024, 3, 2))
    assert first.landed and not second.landed
    assert second.already_at == dt.date(2024, 3, 1)
    assert complete_partitions(lake) == [dt.date(2024, 3, 1)]
    assert lake.path(layout.raw_key(dt.date(2024, 3, 1))).stat().st_mtime_ns == mtime
    # The date asked for says why it has no data, so that its transform is a no-op, not a failure.
    marker = lake.read_json(layout.raw_unchanged_key(dt.date(2024, 3, 2)))
    assert marker["same_as"] == "2024-03-01"
    assert marker["sha256"] == first.manifest["sha256"]
    assert not lake.exists(layout.raw_key(dt.date(2024, 3, 2)))
    with pytest.raises(NothingNew, match="unchanged on 2024-03-02"):
        pick_partition(lake, dt.date(2024, 3, 2))
    with pytest.raises(InputError, match="no complete raw partition"):
        pick_partition(lake, dt.date(2024, 3, 3))  # neither data nor a marker: still an error


def test_new_content_on_the_same_day_replaces_csv_and_manifest_together(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    day = dt.date(2024, 3, 1)
    ingest(lake, FileSource(_csv(tmp_path, "a.csv", ROWS[:1])), run_id="test-run", ingest_date=day)
    ingest(lake, FileSource(_csv(tmp_path, "b.csv", ROWS)), run_id="test-run", ingest_date=day)
    manifest = lake.read_json(layout.raw_manifest_key(day))
    assert manifest["rows"] == 3
    assert manifest["sha256"] == hashlib.sha256(lake.read_bytes(layout.raw_key(day))).hexdigest()


KILL_SCRIPT = textwrap.dedent(
    """
    import datetime as dt, sys, time
    from pathlib import Path
    from ingestion.ingest import ingest
    from ingestion.sources import Produced
    from retail_core.lake import LocalLake

    class Slow:
        name = "slow"
        def describe(self):
            return "slow test source"
        def expected_bytes(self):
            return None

        def produce(self, dest, progress=None):
            with open(dest, "w") as out:
                out.write("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\\n")
                for i in range(10_000_000):
                    out.write(f"{i},A,X,1,2010-12-01 08:26:00,1.0,,UK\\n")
                    if i % 1000 == 0:
                        out.flush()
                        print("writing", flush=True)
                        time.sleep(0.05)
            return Produced()

    ingest(LocalLake(sys.argv[1]), Slow(), run_id="test-run", ingest_date=dt.date(2024, 3, 1))
    """
)


def test_killed_ingest_leaves_no_visible_partial_file_and_the_next_run_cleans_up(tmp_path):
    lake_root = tmp_path / "lake"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(lake_root)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        for _ in range(3):  # wait until it is midway through writing
            assert proc.stdout.readline().startswith("writing")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    lake = LocalLake(lake_root)
    day = dt.date(2024, 3, 1)
    partition_dir = lake.path(layout.zone_prefix(layout.RAW_ZONE, day))
    leftovers = os.listdir(partition_dir)
    assert leftovers and all(name.startswith(".tmp-") for name in leftovers)
    assert not lake.exists(layout.raw_key(day))
    assert not lake.exists(layout.raw_manifest_key(day))
    assert lake.list_keys("raw-data") == []

    ingest(lake, FileSource(_csv(tmp_path)), run_id="test-run", ingest_date=day)
    assert sorted(os.listdir(partition_dir)) == ["_manifest.json", "online_retail.csv"]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (None, "input file not found"),
        ("", "the CSV is empty"),
        ("a,b,c\n1,2,3\n", "wrong CSV header"),
        (HEADER, "no data rows"),
    ],
    ids=["missing", "empty", "wrong-header", "header-only"],
)
def test_bad_input_is_one_line_error_with_nonzero_exit_and_nothing_landed(tmp_path, setup, expected):
    path = tmp_path / "input.csv"
    if setup is not None:
        path.write_text(setup)
    lake_root = tmp_path / "lake"
    result = _cli("--lake", str(lake_root), "ingest", "--source", "file", "--path", str(path))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    # Progress logs may precede it; the error itself is one line, the last one.
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    assert errors == [lines[-1]], result.stderr
    assert expected in errors[0] and errors[0].startswith("retail-pipeline ingest: error:")
    lake = LocalLake(lake_root)
    assert lake.list_keys("raw-data") == []
    # The failure is on record for monitoring, and nothing else is in the lake.
    assert lake.list_keys("") == ["runs/online_retail/run_log.jsonl"]
    (entry,) = lake.read_bytes("runs/online_retail/run_log.jsonl").decode().splitlines()
    assert json.loads(entry)["figures"]["success"] == 0


def test_cli_ingest_file_lands_and_reports_then_says_nothing_to_do(tmp_path):
    src = _csv(tmp_path)
    lake_root = tmp_path / "lake"
    first = _cli("--lake", str(lake_root), "ingest", "--path", str(src), "--ingest-date", "2024-03-01")
    assert first.returncode == 0, first.stderr
    assert "landed" in first.stdout and "--path was given" in first.stdout
    second = _cli("--lake", str(lake_root), "ingest", "--path", str(src))
    assert second.returncode == 0, second.stderr
    assert "already landed, nothing to do" in second.stdout


@pytest.mark.parametrize("command", ["ingest", "run"])
@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--source", "synthetic", "--dataset", "someone/other"], "--dataset only goes with --source kaggle"),
        (["--path", "x.csv", "--dataset", "someone/other"], "--dataset and --path name two sources"),
    ],
)
def test_flags_of_two_sources_are_refused_before_anything_runs(tmp_path, command, flags, expected):
    result = _cli("--lake", str(tmp_path / "lake"), command, *flags)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert expected in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "lake" / "raw-data").exists()
