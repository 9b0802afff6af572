"""``retail-pipeline reconcile-published``: the figures published for the real Online Retail file, computed again
from the raw CSV the lake holds, each beside the published value with the difference and its tolerance."""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path

from ingestion.validate import read_header
from retail_core import layout
from retail_core.config import Settings
from retail_core.errors import InputError, QualityGateError
from retail_core.lake import LocalLake, open_lake
from retail_pipeline.bench import published
from retail_pipeline.commands.ingest import parse_date

DESCRIPTION = """\
Compute, from the raw CSV of one ingest date (default: the newest complete one), the figures every public
analysis of the dataset publishes: the rows with Quantity > 0 and a CustomerID, their revenue by month, the UK's
share, the customers and stock codes, the cleaned and de-duplicated row counts by country, the largest customers.
Each is printed beside its published value with the difference.

On the real Kaggle file every figure agrees exactly. On the synthetic twin each judged figure must lie within its
tolerance (the two row totals exactly; the customers, stock codes, money and the countries' rows within 2%; the UK
share within half a point); the largest customers are shown, not judged. Exit 0 when every judged figure is within
tolerance, 3 otherwise."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "reconcile-published",
        help="compare the raw file's figures with those published for the real dataset",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--ingest-date", type=parse_date, help="the raw partition (default: the newest complete)"
    )
    source.add_argument("--path", type=Path, help="a raw CSV outside the lake instead")
    parser.add_argument(
        "--encoding", choices=("utf-8", "iso-8859-1"), help="of --path (default utf-8; the lake's say it)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, settings: Settings) -> int:
    if args.path is not None:
        if not args.path.is_file():
            raise InputError("no such file", str(args.path), "give the raw CSV's path")
        # The ingest's own check: a file that is not the export (another CSV, a README) is refused in one line
        # rather than measured into a table of meaningless differences.
        read_header(args.path)
        figures = published.measure(args.path, encoding=args.encoding or "utf-8")
        where = str(args.path)
    else:
        figures, where = _from_lake(settings, args.ingest_date, args.encoding)
    comparisons = published.compare(figures)
    _print(comparisons, where)
    outside = [c.figure.name for c in comparisons if c.within is False]
    if outside:
        raise QualityGateError(
            f"{len(outside)} figure(s) outside their tolerance: {', '.join(outside[:3])}"
            + (" ..." if len(outside) > 3 else ""),
            where,
            "expected on a file that is not the real dataset or its calibrated twin; see the table above",
        )
    return 0


def _from_lake(settings: Settings, date: dt.date | None, encoding: str | None) -> tuple[dict, str]:
    lake = open_lake(settings)
    complete = [d for d in lake.partitions(layout.RAW_ZONE) if lake.exists(layout.raw_manifest_key(d))]
    if date is None:
        if not complete:
            raise InputError(
                "no complete raw partition", lake.uri(layout.RAW_ZONE), "run `retail-pipeline ingest`"
            )
        date = complete[-1]
    elif date not in complete:
        raise InputError(
            "no complete raw partition for that date", lake.uri(layout.raw_key(date)), "pick another"
        )
    manifest = lake.read_json(layout.raw_manifest_key(date))
    # The ingest recorded whether the bytes are UTF-8; the real export is ISO-8859-1.
    encoding = encoding or ("utf-8" if manifest.get("utf8", True) else "iso-8859-1")
    key = layout.raw_key(date)
    if isinstance(lake, LocalLake):
        return published.measure(lake.path(key), encoding=encoding), lake.uri(key)
    with tempfile.TemporaryDirectory(prefix="retail-reconcile-") as tmp:
        local = Path(tmp) / layout.RAW_FILE_NAME
        local.write_bytes(lake.read_bytes(key))
        return published.measure(local, encoding=encoding), lake.uri(key)


def _print(comparisons: list[published.Comparison], where: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"published figures vs {where}", title_justify="left")
    for name, justify in (
        ("figure", "left"),
        ("published", "right"),
        ("this file", "right"),
        ("difference", "right"),
        ("tolerance", "right"),
        ("", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for c in comparisons:
        unit = c.figure.unit
        if c.figure.tolerance is None:
            tolerance, verdict = "shown", ""
        elif c.figure.relative:
            tolerance = "exact" if c.figure.tolerance == 0 else f"±{c.figure.tolerance * 100:.0f}%"
            verdict = "ok" if c.within else "OUTSIDE"
        else:
            tolerance, verdict = f"±{c.figure.tolerance} pts", "ok" if c.within else "OUTSIDE"
        share = (
            f" ({c.difference / c.figure.published * 100:+.2f}%)"
            if c.figure.relative and c.difference
            else ""
        )
        table.add_row(
            c.figure.name,
            published.format_value(c.figure.published, unit),
            published.format_value(c.measured, unit),
            published.format_value(c.difference, unit) + share,
            tolerance,
            verdict,
        )
    Console(width=140).print(table)
