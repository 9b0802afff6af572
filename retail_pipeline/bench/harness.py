"""Run the pipeline stage by stage on synthetic data, each stage a ``retail-pipeline`` subprocess, and measure it.

For each scale, in a fresh lake and warehouse under ``<out>/work/scale-<N>/``:

1. generate: ``ingest --source synthetic --scale N`` (below scale 1, a prefix of the scale-1 file made
   beforehand and landed with ``--source file``);
2. transform: ``transform``; the quality gate's seconds are read from its run report (``timings_s.gate``: the
   gate runs alone, before the writes);
3. build: ``build`` (``dbt build`` on DuckDB, with the example profile), after an untimed ``build --parse-only``
   as ``make setup`` does (its seconds are reported as ``dbt.parse_beforehand_seconds``);
4. the DuckDB and pandas references on the same raw CSV (``python -m retail_pipeline.bench.references``),
   then the parity check against what Spark wrote;
5. incremental (optional): one more ingest date holding about one day of sales, transformed and built into the
   warehouse built in 1-3, with the old partitions moved out of the lake while it runs, so that anything that
   re-read them would fail.

Each subprocess is timed from start to exit (interpreter and JVM start-up included: that is what a user waits
for), and the resident memory of its whole process tree is sampled every 0.1 s from ``/proc``: the Spark JVM
is a child of the Python process, and ``/usr/bin/time`` only sees the process it waited for.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingestion.sources.synthetic import HEADER, iter_invoices
from retail_core import layout
from retail_core.dialect import RAW_COLUMNS
from retail_core.errors import PipelineError
from retail_pipeline.bench import parity, references
from warehouse import project

log = logging.getLogger(__name__)

BASE_ROWS = 541_909  # rows of the synthetic twin at scale 1 (ingestion.sources.synthetic.BASE_ROWS)
INVOICE_STRIDE = 1_000_000  # what the twin adds to invoice numbers per copy
FULL_DATE = dt.date(2011, 12, 10)  # the day after the twin's last sale: the whole history lands at once
NEXT_DATE = dt.date(2011, 12, 11)  # the incremental batch
SAMPLE_SECONDS = 0.1
PIPELINE_STAGES: tuple[str, ...] = ("generate", "transform", "gate", "build", "end_to_end")
# End to end above --pipeline-max-scale: not timed as one `retail-pipeline run`, but the three stages' sum.
STAGES_SUMMED_NOTE = "generate + transform + build, three processes one after the other"
GIB = 1024**3


class StageFailed(PipelineError):
    """A stage's subprocess exited non-zero; its log says why."""


@dataclass(frozen=True)
class BenchConfig:
    """What ``retail-pipeline bench`` was asked to do."""

    scales: tuple[float, ...] = (1.0, 10.0)
    out: Path = Path("data/bench")
    seed: int = 42
    references: bool = True
    pandas_max_scale: float = 10.0  # pandas holds the whole file in memory: ~25 GiB at scale 100
    incremental: bool = True
    keep_work: bool = False
    # End to end is `retail-pipeline run` timed whole, up to this scale; above it, the sum of the stages (a run
    # more at scale 100 would add a quarter of an hour).
    pipeline_max_scale: float = 10.0


@dataclass
class Measured:
    """One timed subprocess (or a part of one, for the gate)."""

    seconds: float
    rows: int
    peak_rss_bytes: int | None = None
    cpu_seconds: float | None = None  # user + system of the whole tree; wall x cores bounds it
    rss_at_peak: dict[str, int] = field(default_factory=dict)  # process name -> bytes, at the peak sample
    note: str = ""

    @property
    def rows_per_second(self) -> float | None:
        return self.rows / self.seconds if self.seconds > 0 else None

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3),
            "rows": self.rows,
            "rows_per_second": None if self.rows_per_second is None else round(self.rows_per_second),
            "cpu_seconds": None if self.cpu_seconds is None else round(self.cpu_seconds, 2),
            "peak_rss_bytes": self.peak_rss_bytes,
            "peak_rss_gib": None if self.peak_rss_bytes is None else round(self.peak_rss_bytes / GIB, 3),
            "rss_at_peak_by_process": self.rss_at_peak,
            "note": self.note,
        }


@dataclass
class ScaleResult:
    """Everything measured at one scale."""

    scale: float
    rows_in: int = 0
    rows_clean: int = 0
    raw_bytes: int = 0
    stages: dict[str, Measured] = field(default_factory=dict)
    references: dict[str, Measured] = field(default_factory=dict)
    figures: dict[str, references.CleanFigures] = field(default_factory=dict)  # spark and each reference
    parity: list[parity.Mismatch] | None = None  # None: not checked
    transform_timings: dict[str, float] = field(default_factory=dict)
    transform_jvm_flags: list[str] = field(default_factory=list)  # as the run report read them from the JVM
    dbt: dict[str, Any] = field(default_factory=dict)
    incremental: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    load_average: dict[str, list[float]] = field(default_factory=dict)  # 1, 5, 15 min, at start and end

    @property
    def label(self) -> str:
        return scale_label(self.scale)

    @property
    def stages_summed_seconds(self) -> float:
        """generate + transform + build, each its own process (end to end may be one `run` instead)."""
        return sum(self.stages[s].seconds for s in ("generate", "transform", "build") if s in self.stages)

    def ratio(self, engine: str) -> float | None:
        """Spark transform seconds / the reference's seconds, both whole processes (start-up included).

        The Spark side includes its quality gate and Data Docs, which the references do not do; the run
        report's phases (``transform_timings``) show what they cost."""
        ref = self.references.get(engine)
        spark = self.stages.get("transform")
        if ref is None or spark is None or ref.seconds <= 0:
            return None
        return spark.seconds / ref.seconds


def scale_label(scale: float) -> str:
    return str(int(scale)) if scale == int(scale) else f"{scale:g}"


# --- the process tree's memory -----------------------------------------------------------------------------


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_table() -> dict[int, tuple[int, int]]:
    """Every process now: pid -> (parent pid, CPU ticks used so far, user + system)."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        # "pid (comm) state ppid ... utime stime ...": comm may hold spaces and parentheses, so split after
        # the last ')'; ppid is then field 1, utime and stime fields 11 and 12.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 12:
            table[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def process_tree(root: int, table: dict[int, tuple[int, int]] | None = None) -> list[int]:
    """``root`` and all its descendants, now."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in (table if table is not None else _proc_table()).items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _rss(pid: int) -> tuple[str, int] | None:
    """(process name, VmRSS in bytes), or None when the process is gone or has no memory (a zombie)."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as handle:
            status = handle.read()
    except OSError:
        return None
    name, rss = "?", None
    for line in status.splitlines():
        if line.startswith("Name:"):
            name = line.split(None, 1)[1].strip() if len(line.split(None, 1)) > 1 else "?"
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
            break
    return None if rss is None else (name, rss)


class TreeSampler:
    """Samples the summed VmRSS of a process and its descendants until stopped; keeps the peak, and the CPU
    seconds each process had used when last seen (a process's last 0.1 s may be missed: a lower bound)."""

    def __init__(self, pid: int, interval: float = SAMPLE_SECONDS) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.at_peak: dict[str, int] = {}
        self.samples = 0
        self._seen: set[int] = set()
        self._cpu_ticks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        by_name: dict[str, int] = {}
        table = _proc_table()
        pids = process_tree(self.pid, table)
        for pid in pids:
            if pid in table:
                self._cpu_ticks[pid] = max(self._cpu_ticks.get(pid, 0), table[pid][1])
            # A child seen for the first time may be a fork that has not exec'd yet (the JVM runs chmod and
            # friends that way): its VmRSS repeats its parent's pages. Count a process from its second sample.
            if pid != self.pid and pid not in self._seen:
                continue
            found = _rss(pid)
            if found is not None:
                by_name[found[0]] = by_name.get(found[0], 0) + found[1]
        self._seen = set(pids)
        total = sum(by_name.values())
        self.samples += 1
        if total > self.peak:
            self.peak, self.at_peak = total, by_name

    @property
    def cpu_seconds(self) -> float:
        return sum(self._cpu_ticks.values()) / CLOCK_TICKS

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


def run_measured(
    cmd: Sequence[str], *, rows: int, log_path: Path, env: dict[str, str], what: str
) -> Measured:
    """Run ``cmd`` to completion, timing it and sampling its process tree; StageFailed if it exits non-zero."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(cmd), stdout=output, stderr=subprocess.STDOUT, env=env, cwd=project.PROJECT_DIR
        )
        with TreeSampler(process.pid) as sampler:
            code = process.wait()
        seconds = time.perf_counter() - started
    if code != 0:
        raise StageFailed(
            f"{what} failed (exit {code}): {_last_line(log_path)}", str(log_path), "see the log"
        )
    return Measured(
        seconds=seconds,
        rows=rows,
        peak_rss_bytes=sampler.peak,
        rss_at_peak=sampler.at_peak,
        cpu_seconds=sampler.cpu_seconds,
    )


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    meaningful = [line for line in lines if line and not line.startswith(("WARNING", "WARN", "at "))]
    return (meaningful or lines or ["(no output)"])[-1][:300]


# --- one scale ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Work:
    """The fresh lake, warehouse and scratch of one scale."""

    root: Path

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def duckdb_path(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def inputs(self) -> Path:
        return self.root / "input"

    def raw_csv(self, date: dt.date) -> Path:
        return self.lake / layout.raw_key(date)

    def cli(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "retail_pipeline.cli",
            "--lake",
            str(self.lake),
            "--duckdb-path",
            str(self.duckdb_path),
            *args,
        ]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("RETAIL_LAKE", "RETAIL_DUCKDB_PATH")}
        env.update(
            DBT_TARGET_PATH=str(self.root / "target"),  # never the repository's target/: others may use it
            # The example profile as shipped (DuckDB memory limit included), whatever the user's profiles.yml says.
            DBT_PROFILES_DIR=str(self.root / "profiles"),
            DBT_LOG_PATH=str(self.logs / "dbt"),
            RETAIL_METRICS="lake",
            PYTHONUNBUFFERED="1",
        )
        return env

    def parse_project(self, env: dict[str, str], what: str) -> Measured:
        """As ``make setup`` does: the example profile in place, then ``build --parse-only``, so that the builds
        that follow (same target, profile and paths) re-parse nothing."""
        project.copy_profiles_example(self.root / "profiles")
        return run_measured(
            self.cli("build", "--parse-only"), rows=0, log_path=self.logs / "parse.log", env=env, what=what
        )


def run_scale(scale: float, config: BenchConfig, *, run_id: str) -> ScaleResult:
    """Every stage at one scale; the work folder is removed afterwards unless ``config.keep_work``."""
    result = ScaleResult(scale=scale)
    work = _Work(config.out.resolve() / "work" / f"scale-{scale_label(scale)}")
    shutil.rmtree(work.root, ignore_errors=True)
    work.inputs.mkdir(parents=True)
    env = {**work.env(), "RETAIL_RUN_ID": f"{run_id}-scale-{scale_label(scale)}"}
    result.load_average["start"] = [round(x, 2) for x in os.getloadavg()]
    try:
        _full_run(result, work, env, config)
        # The new day before the references, as the full run it is compared with: they evict the page cache (pandas
        # alone holds 6 GiB at scale 10), which a small transform pays for in reading Spark's jars again (10.6 s
        # against 9.1 s with the caches dropped). Scale 10's day: 13.9 s after them, 13.0 s before them.
        if config.incremental:
            _incremental(result, work, env)
        if config.references:
            _references(result, work, config)
        result.load_average["end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        if not config.keep_work:
            shutil.rmtree(work.root, ignore_errors=True)
            with contextlib.suppress(OSError):
                work.root.parent.rmdir()  # only when no other scale's work is left in it
    return result


def _full_run(result: ScaleResult, work: _Work, env: dict[str, str], config: BenchConfig) -> None:
    label = scale_label(result.scale)
    date = FULL_DATE.isoformat()
    if result.scale >= 1:
        ingest_args = ["--source", "synthetic", "--seed", str(config.seed), "--scale", str(int(result.scale))]
        note = f"synthetic twin, scale {int(result.scale)}, generated while landing"
    else:
        prefix = work.inputs / layout.RAW_FILE_NAME
        rows = write_prefix(prefix, round(result.scale * BASE_ROWS), seed=config.seed)
        ingest_args = ["--source", "file", "--path", str(prefix)]
        note = f"first {rows:,} rows of the scale-1 twin (whole invoices), made beforehand, then landed"
    log.info("bench scale %s: generate", label)
    generate = run_measured(
        work.cli("ingest", *ingest_args, "--ingest-date", date),
        rows=0,
        log_path=work.logs / "generate.log",
        env=env,
        what=f"generate (scale {label})",
    )
    manifest = json.loads((work.lake / layout.raw_manifest_key(FULL_DATE)).read_text(encoding="utf-8"))
    result.rows_in, result.raw_bytes = int(manifest["rows"]), int(manifest["bytes"])
    generate.rows, generate.note = result.rows_in, note
    result.stages["generate"] = generate
    _log_stage(label, "generate", generate)

    transform = run_measured(
        work.cli("transform", "--ingest-date", date),
        rows=result.rows_in,
        log_path=work.logs / "transform.log",
        env=env,
        what=f"transform (scale {label})",
    )
    report = json.loads((work.lake / layout.run_report_key(FULL_DATE)).read_text(encoding="utf-8"))
    result.rows_clean = int(report["rows_clean"])
    result.transform_timings = dict(report.get("timings_s", {}))
    result.transform_jvm_flags = list(report.get("spark", {}).get("jvm_flags", []))
    transform.note = "Spark local mode, JVM start, scan, quality gate, writes and Data Docs included"
    result.stages["transform"] = transform
    _log_stage(label, "transform", transform)
    result.stages["gate"] = Measured(
        seconds=float(result.transform_timings.get("gate", 0.0)),
        rows=result.rows_clean,
        peak_rss_bytes=transform.peak_rss_bytes,
        note="great-expectations on the cached clean rows, before the writes: a phase of the transform "
        "(timings_s.gate)",
    )

    # As `make setup` does: dbt parses the project once, and the timed build re-parses nothing. The cold parse
    # is measured too, and reported beside the build.
    parse = work.parse_project(env, f"dbt parse (scale {label})")
    build = run_measured(
        work.cli("build", "--ingest-date", date),
        rows=result.rows_clean,
        log_path=work.logs / "build.log",
        env=env,
        what=f"dbt build (scale {label})",
    )
    build.note = (
        "dbt build on DuckDB: start-up (the project parsed beforehand), staging and gold models, tests"
    )
    result.stages["build"] = build
    result.dbt = dbt_profile(work.root / "target" / "run_results.json", build.seconds)
    result.dbt["parse_beforehand_seconds"] = round(parse.seconds, 3)
    result.dbt["gold_rows"] = project.gold_row_counts(work.duckdb_path)
    _log_stage(label, "build", build)

    if result.scale <= config.pipeline_max_scale:
        result.stages["end_to_end"] = _pipeline_run(result, work, ingest_args, date)
    else:
        stages = [generate, transform, build]
        result.stages["end_to_end"] = Measured(
            seconds=result.stages_summed_seconds,
            rows=result.rows_in,
            peak_rss_bytes=max(s.peak_rss_bytes or 0 for s in stages),
            cpu_seconds=sum(s.cpu_seconds or 0.0 for s in stages),
            note=STAGES_SUMMED_NOTE,
        )
    _log_stage(label, "end_to_end", result.stages["end_to_end"])


def _pipeline_run(result: ScaleResult, work: _Work, ingest_args: list[str], date: str) -> Measured:
    """``retail-pipeline run --skip-docs`` (what a user runs), timed whole, in a fresh lake and warehouse of its
    own, after an untimed ``build --parse-only`` as ``make setup`` does; the folder is removed afterwards."""
    pipe = _Work(work.root / "pipeline")
    env = {**pipe.env(), "RETAIL_RUN_ID": f"{work.root.name}-pipeline"}
    label = scale_label(result.scale)
    try:
        pipe.parse_project(env, f"dbt parse before the pipeline run (scale {label})")
        measured = run_measured(
            pipe.cli("run", *ingest_args, "--ingest-date", date, "--skip-docs"),
            rows=result.rows_in,
            log_path=pipe.logs / "run.log",
            env=env,
            what=f"retail-pipeline run (scale {label})",
        )
        fact = project.gold_row_counts(pipe.duckdb_path).get("sales_transactions")
        if fact != result.rows_clean:
            raise StageFailed(
                f"retail-pipeline run built {fact} fact rows, the stages {result.rows_clean}",
                str(pipe.logs / "run.log"),
                "see the log",
            )
    finally:
        shutil.copytree(pipe.logs, work.logs / "pipeline", dirs_exist_ok=True)
        shutil.rmtree(pipe.root, ignore_errors=True)
    measured.note = (
        "retail-pipeline run --skip-docs: ingest, transform and dbt build in one process (Spark started while "
        "the ingest runs), in its own fresh lake and warehouse"
    )
    return measured


def _references(result: ScaleResult, work: _Work, config: BenchConfig) -> None:
    label = scale_label(result.scale)
    result.figures["spark"] = parity.spark_figures(work.lake, FULL_DATE)
    report = json.loads((work.lake / layout.run_report_key(FULL_DATE)).read_text(encoding="utf-8"))
    encoding = report.get("encoding", {}).get("name", "utf-8")
    for engine in references.ENGINES:
        if engine == "pandas" and result.scale > config.pandas_max_scale:
            result.notes.append(
                f"pandas skipped above scale {scale_label(config.pandas_max_scale)}: it holds the whole file "
                "in memory (about 25 GiB at scale 100)"
            )
            continue
        out = work.root / f"reference-{engine}"
        figures_path = work.root / f"reference-{engine}.json"
        cmd = [
            sys.executable,
            "-m",
            "retail_pipeline.bench.references",
            engine,
            str(work.raw_csv(FULL_DATE)),
            str(out),
            "--encoding",
            encoding,
            "--ingest-date",
            FULL_DATE.isoformat(),
            "--result",
            str(figures_path),
        ]
        measured = run_measured(
            cmd,
            rows=result.rows_in,
            log_path=work.logs / f"reference-{engine}.log",
            env=work.env(),
            what=f"{engine} reference (scale {label})",
        )
        figures = references.CleanFigures.from_json(json.loads(figures_path.read_text(encoding="utf-8")))
        measured.note = f"same contract, read + clean + write TSV; {figures.seconds:.1f} s inside the process"
        result.references[engine] = measured
        result.figures[engine] = figures
        _log_stage(label, f"{engine} reference", measured)
        shutil.rmtree(out, ignore_errors=True)
    checked = [f for name, f in result.figures.items() if name != "spark"]
    result.parity = parity.compare_all(result.figures["spark"], checked)
    if result.parity:
        log.error("bench scale %s: parity FAILED: %s", label, parity.describe(result.parity))
    else:
        log.info("bench scale %s: parity ok (%s)", label, ", ".join(f.engine for f in checked))


def _incremental(result: ScaleResult, work: _Work, env: dict[str, str]) -> None:
    """One more ingest date of about one day's sales into the built warehouse, old partitions out of reach."""
    label = scale_label(result.scale)
    copies = max(1, math.ceil(result.scale))
    day_csv = work.inputs / "next_day.csv"
    batch = write_day_batch(work.raw_csv(FULL_DATE), day_csv, invoice_offset=copies * INVOICE_STRIDE)
    hidden = work.root / "hidden"
    moved = []
    for zone in (layout.RAW_ZONE, layout.PROCESSED_ZONE):
        source = work.lake / layout.zone_prefix(zone, FULL_DATE)
        target = hidden / layout.zone_prefix(zone, FULL_DATE)
        target.parent.mkdir(parents=True, exist_ok=True)
        source.rename(target)
        moved.append((target, source))
    date = NEXT_DATE.isoformat()
    try:
        ingest = run_measured(
            work.cli("ingest", "--source", "file", "--path", str(day_csv), "--ingest-date", date),
            rows=batch["rows"],
            log_path=work.logs / "incremental-ingest.log",
            env=env,
            what=f"incremental ingest (scale {label})",
        )
        transform = run_measured(
            work.cli("transform", "--ingest-date", date),
            rows=batch["rows"],
            log_path=work.logs / "incremental-transform.log",
            env=env,
            what=f"incremental transform (scale {label})",
        )
        report = json.loads((work.lake / layout.run_report_key(NEXT_DATE)).read_text(encoding="utf-8"))
        build = run_measured(
            work.cli("build", "--ingest-date", date),
            rows=int(report["rows_clean"]),
            log_path=work.logs / "incremental-build.log",
            env=env,
            what=f"incremental dbt build (scale {label})",
        )
    finally:
        for target, source in moved:
            target.rename(source)
    dbt = dbt_profile(work.root / "target" / "run_results.json", build.seconds)
    gold = project.gold_row_counts(work.duckdb_path)
    full = result.stages["transform"].seconds + result.stages["build"].seconds
    before = result.dbt.get("gold_rows", {}).get("sales_transactions")
    merged = None if before is None else gold.get("sales_transactions", 0) - before
    result.incremental = {
        "batch": batch,
        "rows_clean": int(report["rows_clean"]),
        "stages": {
            "ingest": ingest.to_json(),
            "transform": transform.to_json(),
            "build": build.to_json(),
        },
        "transform_timings_s": report.get("timings_s", {}),
        "dbt": dbt,
        "seconds_transform_build": round(transform.seconds + build.seconds, 3),
        "full_seconds_transform_build": round(full, 3),
        "ratio_to_full": round((transform.seconds + build.seconds) / full, 3) if full else None,
        "fact_rows_merged": merged,  # gold.sales_transactions after - before
        "gold_rows_after": gold,
        "gold_fact_rows_expected": result.rows_clean + int(report["rows_clean"]),
        "old_partitions_hidden": True,
    }
    log.info(
        "bench scale %s: incremental batch of %s rows: transform %.1f s + build %.1f s = %.0f%% of the full run",
        label,
        f"{batch['rows']:,}",
        transform.seconds,
        build.seconds,
        100 * result.incremental["ratio_to_full"],
    )


def dbt_profile(run_results: Path, wall_seconds: float) -> dict[str, Any]:
    """Where a ``dbt build`` spent its time: per node (models and tests), and what was left for start-up."""
    if not run_results.exists():
        return {}
    data = json.loads(run_results.read_text(encoding="utf-8"))
    nodes = [
        {
            "node": item.get("unique_id", ""),
            "status": item.get("status"),
            "seconds": round(float(item.get("execution_time") or 0.0), 3),
        }
        for item in data.get("results", [])
    ]
    nodes.sort(key=lambda n: -n["seconds"])
    elapsed = float(data.get("elapsed_time") or 0.0)
    # What is built (models and the snapshot) against what checks it (data and unit tests).
    built = ("model.", "snapshot.")
    checks = ("test.", "unit_test.")
    return {
        "elapsed_s": round(elapsed, 3),
        "outside_nodes_s": round(wall_seconds - elapsed, 3),  # interpreter, dbt import, parse, connection
        "models_s": round(sum(n["seconds"] for n in nodes if n["node"].startswith(built)), 3),
        "tests_s": round(sum(n["seconds"] for n in nodes if n["node"].startswith(checks)), 3),
        "tests": sum(1 for n in nodes if n["node"].startswith(checks)),
        "models": {
            n["node"].rsplit(".", 1)[-1]: n["seconds"] for n in nodes if n["node"].startswith("model.")
        },
        "slowest_nodes": nodes[:10],
    }


def _log_stage(label: str, stage: str, m: Measured) -> None:
    peak = f", peak {m.peak_rss_bytes / GIB:.2f} GiB" if m.peak_rss_bytes else ""
    log.info("bench scale %s: %s %.1f s%s", label, stage, m.seconds, peak)


# --- inputs the bench makes ----------------------------------------------------------------------------------


def write_prefix(path: Path, rows: int, *, seed: int) -> int:
    """The first whole invoices of the scale-1 twin, at least ``rows`` rows (header included); returns rows."""

    written = 0
    with open(path, "wb") as out:
        out.write(HEADER.encode("utf-8"))
        for count, text in iter_invoices(seed=seed, scale=1):
            out.write(text.encode("utf-8"))
            written += count
            if written >= max(rows, 1):
                break
    return written


def write_day_batch(raw_csv: Path, dest: Path, *, invoice_offset: int) -> dict[str, Any]:
    """The next day's sales, made from the raw file: the day whose row count is nearest the mean, its invoices
    renumbered past every existing one (+``invoice_offset``) and dated the day after the last sale.

    Customers, products and prices are the file's own, so the batch meets the warehouse's existing dimensions
    as a real next day would. Returns rows, the day copied and the new date."""
    import duckdb

    con = duckdb.connect()
    con.execute("set enable_progress_bar = false")
    read = (
        f"read_csv('{_sql_path(raw_csv)}', header = true, all_varchar = true, auto_detect = false, "
        "columns = {" + ", ".join(f"'{c}': 'VARCHAR'" for c in _raw_columns()) + "})"
    )
    days = con.execute(
        f"select substr(InvoiceDate, 1, 10) as day, count(*) as n from {read} "
        "where regexp_matches(InvoiceDate, '^[0-9]{4}-[0-9]{2}-[0-9]{2} ') group by day order by day"
    ).fetchall()
    if not days:
        raise PipelineError("no dated rows to make a next-day batch from", str(raw_csv))
    mean = sum(n for _, n in days) / len(days)
    day, _ = min(days, key=lambda d: (abs(d[1] - mean), d[0]))
    next_day = (dt.date.fromisoformat(days[-1][0]) + dt.timedelta(days=1)).isoformat()
    con.execute(
        f"""copy (
            select
                regexp_extract(InvoiceNo, '^([A-Za-z]*)', 1)
                    || cast(cast(regexp_extract(InvoiceNo, '([0-9]+)$', 1) as bigint) + {int(invoice_offset)} as varchar)
                    as InvoiceNo,
                StockCode, Description, Quantity,
                '{next_day}' || substr(InvoiceDate, 11) as InvoiceDate,
                UnitPrice, CustomerID, Country
            from {read}
            where InvoiceDate like '{day}%' and regexp_matches(InvoiceNo, '^[A-Za-z]*[0-9]+$')
        ) to '{_sql_path(dest)}' (format csv, header true, quote '"', escape '"', nullstr '')"""
    )
    rows = con.execute(
        f"select count(*) from read_csv('{_sql_path(dest)}', header = true, all_varchar = true)"
    )
    count = int(rows.fetchone()[0])
    con.close()
    return {"rows": count, "copied_day": day, "new_invoice_date": next_day, "mean_rows_per_day": round(mean)}


def _raw_columns() -> tuple[str, ...]:
    return RAW_COLUMNS


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


# --- the whole bench -----------------------------------------------------------------------------------------


def run_bench(
    config: BenchConfig, *, on_scale: Callable[[ScaleResult], None] | None = None
) -> list[ScaleResult]:
    """Every scale in turn; ``on_scale`` is called after each (the command writes its report as it goes)."""
    run_id = "bench-" + dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    results = []
    for scale in config.scales:
        result = run_scale(scale, config, run_id=run_id)
        results.append(result)
        if on_scale is not None:
            on_scale(result)
    return results
