"""``retail-pipeline run``: ingest, transform and build in one go, then a summary.

One process, so nothing is started twice: when the source knows about how big its file will be (the synthetic
twin, a local file), the Spark the transform needs is started on a thread while the ingest lands the file, and
the JVM's start-up is hidden behind it. A wrong guess costs one more start, never a wrongly sized Spark.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from glue.options import TransformOptions
from glue.runtime import Runtime
from ingestion.sources import Source
from retail_core import layout, metrics
from retail_core.config import Settings
from retail_core.lake import open_lake
from retail_pipeline.commands.ingest import (
    SOURCE_HELP,
    add_source_arguments,
    check_source_flags,
    run_ingest,
    source_from_args,
)
from retail_pipeline.commands.transform import add_transform_arguments, options_from_args
from retail_pipeline.progress import stage as stage_progress
from warehouse.build import build

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run",
        help="the whole pipeline: ingest, transform, dbt build, and a summary",
        description="Land the raw CSV (ingest), clean it with Spark (transform), model it with dbt (build), and "
        "print what each stage did. Takes the same source flags as `ingest`; the transform and the dbt build work "
        "on the partition the ingest landed (or found already landed).",
        epilog=SOURCE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_source_arguments(parser)
    add_transform_arguments(parser, ingest_date=False)
    group = parser.add_argument_group("build")
    group.add_argument("--full-refresh", action="store_true", help="rebuild the warehouse from every batch")
    group.add_argument("--skip-docs", action="store_true", help="do not generate the dbt docs site")
    parser.set_defaults(handler=handle)


@dataclass
class Summary:
    """What the run did, for the closing table."""

    ingest_date: dt.date | None = None
    source: str = ""
    rows_in: int = 0
    rows_clean: int = 0
    rows_returns: int = 0
    rows_quarantined: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    gold_rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    report_uri: str = ""
    docs_path: str = ""


def handle(args: argparse.Namespace, settings: Settings) -> int:
    # Spark and great_expectations load with the transform, not with the CLI (see commands/transform.py).
    from glue import local

    check_source_flags(args)
    run_id = metrics.run_id_from_env()
    summary = Summary()
    options = options_from_args(args)
    with metrics.measured(settings, "pipeline", run_id=run_id) as record, contextlib.ExitStack() as stack:
        chosen = source_from_args(args)  # inside: a source that cannot be used is a failed run, recorded
        early = stack.enter_context(_spark_started_early(chosen[0], options, settings))
        clock = time.perf_counter()
        ingested = run_ingest(args, settings, run_id=run_id, chosen=chosen)
        summary.seconds["ingest"] = time.perf_counter() - clock
        summary.ingest_date = record.ingest_date = ingested.ingest_date
        summary.source = ingested.source
        summary.notes["source"] = f"{ingested.source}: {ingested.reason}"
        if not ingested.landed:
            summary.notes["ingest"] = "identical content already landed"

        clock = time.perf_counter()
        report = _current_report(settings, ingested.ingest_date, ingested.manifest["sha256"])
        if report is None:
            with stage_progress("transform: cleaning with Spark, then the quality gate"):
                transformed = local.run_local(
                    settings,
                    ingest_date=ingested.ingest_date,
                    options=options,
                    run_id=run_id,
                    started=early.take(),
                )
            report, summary.report_uri = transformed.report, transformed.report_uri
        else:
            summary.notes["transform"] = "processed output is current, not redone"
            summary.report_uri = _lake_uri(settings, layout.run_report_key(ingested.ingest_date))
        summary.seconds["transform"] = time.perf_counter() - clock
        summary.rows_in, summary.rows_clean = report["rows_in"], report["rows_clean"]
        summary.rows_quarantined = report["rows_quarantined"]
        summary.rows_returns = int(report.get("rows_returns", 0))
        summary.by_reason = dict(report["quarantined_by_reason"])

        clock = time.perf_counter()
        with stage_progress("build: dbt load, models, tests, publish"):
            built = build(
                settings,
                ingest_date=ingested.ingest_date,
                run_id=run_id,
                full_refresh=args.full_refresh,
                docs=not args.skip_docs,
            )
        summary.seconds["build"] = time.perf_counter() - clock
        summary.gold_rows = built.gold_rows
        summary.docs_path = str(built.docs_path or "")

        record.figures.update(
            rows_in=summary.rows_in,
            rows_clean=summary.rows_clean,
            rows_returns=summary.rows_returns,
            rows_quarantined=summary.rows_quarantined,
            quarantine_ratio=summary.rows_quarantined / summary.rows_in if summary.rows_in else 0.0,
            **{f"gold_rows_{table}": rows for table, rows in summary.gold_rows.items()},
        )
    summary.seconds["total"] = sum(summary.seconds.values())
    _print_summary(summary, settings)
    return 0


@dataclass
class _EarlySpark:
    """A Spark being started on a thread; ``take`` hands it over (whoever takes it stops it)."""

    future: concurrent.futures.Future[Runtime] | None = None

    def take(self) -> concurrent.futures.Future[Runtime] | None:
        future, self.future = self.future, None
        return future


@contextlib.contextmanager
def _spark_started_early(
    source: Source, options: TransformOptions, settings: Settings
) -> Iterator[_EarlySpark]:
    """Start the transform's Spark while the block (the ingest) runs, sized from the source's expected bytes;
    stop it on the way out if nobody took it (the transform was not needed, or the ingest failed)."""
    size = source.expected_bytes()
    # Unknown size (Kaggle, until downloaded); or an s3:// lake, which the local transform refuses.
    if size is None or settings.lake_is_s3:
        yield _EarlySpark()
        return
    from glue.local import start_local_spark, stop_started  # Spark only when it will be used (see handle)

    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="spark-start")
    early = _EarlySpark(pool.submit(start_local_spark, size, options))
    log.info("starting Spark for about %s MB while the ingest runs", f"{size / 1e6:,.0f}")
    try:
        yield early
    finally:
        left = early.take()
        if left is not None:
            stop_started(left)
        pool.shutdown()


def _current_report(settings: Settings, ingest_date: dt.date, raw_sha256: str) -> dict[str, Any] | None:
    """The run report of a successful transform of exactly these raw bytes, if its output is still there."""
    lake = open_lake(settings)
    report_key = layout.run_report_key(ingest_date)
    if not lake.exists(report_key):
        return None
    report = lake.read_json(report_key)
    if report.get("status") != "succeeded" or report.get("raw_sha256") != raw_sha256:
        return None
    # The output must be the one this report describes: a transform killed after publishing new files but
    # before its report leaves a manifest of another generation.
    manifest = lake.read_partition(layout.processed_prefix(ingest_date))
    if manifest is None or manifest.get("generation") != report.get("generation"):
        return None
    return report


def _lake_uri(settings: Settings, key: str) -> str:
    return open_lake(settings).uri(key)


def _print_summary(summary: Summary, settings: Settings) -> None:
    # soft_wrap: a path stays on one line, whatever the width (a log is often not a terminal).
    console = Console(soft_wrap=True)
    rows_in = summary.rows_in or 1
    table = Table(title=f"retail-pipeline run: ingest_date={summary.ingest_date}", title_justify="left")
    table.add_column("stage")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("seconds", justify="right")
    table.add_row(
        "ingest", f"rows in, from {summary.source}", f"{summary.rows_in:,}", _secs(summary, "ingest")
    )
    table.add_row("transform", "clean", f"{summary.rows_clean:,}", _secs(summary, "transform"))
    table.add_row("", "returns", f"{summary.rows_returns:,}", "")
    table.add_row(
        "", "quarantined", f"{summary.rows_quarantined:,} ({summary.rows_quarantined / rows_in:.2%})", ""
    )
    for reason, count in sorted(summary.by_reason.items(), key=lambda item: -item[1]):
        table.add_row("", f"  {reason}", f"{count:,}", "")
    first = True
    for name, rows in summary.gold_rows.items():
        table.add_row(
            "build" if first else "", f"gold.{name}", f"{rows:,}", _secs(summary, "build") if first else ""
        )
        first = False
    table.add_row("total", "", "", f"{summary.seconds['total']:.1f}")
    console.print(table)
    reconciled = summary.rows_clean + summary.rows_returns + summary.rows_quarantined == summary.rows_in
    console.print(
        f"rows in = clean + returns + quarantined: {summary.rows_in:,} = {summary.rows_clean:,} + "
        f"{summary.rows_returns:,} + {summary.rows_quarantined:,} ({'ok' if reconciled else 'MISMATCH'})"
    )
    for stage, note in summary.notes.items():
        console.print(f"{stage}: {note}")
    console.print(f"quality report: {summary.report_uri}")
    if summary.ingest_date is not None:
        page = _lake_uri(settings, layout.run_page_key(summary.ingest_date))
        console.print(f"run page:       {page} (retail-pipeline report --html opens it)")
    if summary.docs_path:
        console.print(f"dbt docs:       {summary.docs_path} (serve: .venv/bin/dbt docs serve)")
    console.print(
        f"warehouse:      {settings.duckdb_path} ({', '.join(f'gold.{t}' for t in layout.GOLD_PUBLISHED)})"
    )


def _secs(summary: Summary, stage: str) -> str:
    return f"{summary.seconds.get(stage, 0.0):.1f}"
