"""``retail-pipeline report``: the recent runs from the lake's run log, as a table and a small chart; with
``--html``, the latest run's page (quality/.../report.html, retail_core/run_page.py), opened in a browser."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retail_core import layout
from retail_core.config import Settings
from retail_core.errors import InputError
from retail_core.lake import LocalLake, open_lake
from retail_core.metrics import read_runs

BAR_WIDTH = 28
_BLOCKS = " ▏▎▍▌▋▊▉█"
_STATUS_STYLE = {"succeeded": "green", "failed": "bold red", "incomplete": "yellow"}
_STATUS_WORD = {"succeeded": "ok", "failed": "FAILED", "incomplete": "partial"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report",
        help="show the recent runs: rows, quarantine ratio, gold rows, dbt test failures, duration",
        description="Read the run log every stage writes to {lake}/runs/online_retail/ and show the last runs "
        "as a table, then a chart of rows in and quarantine ratio per run.",
    )
    parser.add_argument("--limit", type=int, default=10, help="how many runs to show (default 10)")
    parser.add_argument("--json", action="store_true", help="print the runs as JSON instead")
    parser.add_argument(
        "--html",
        action="store_true",
        help="open the latest run's HTML page (rows, quarantine, returns, gate, gold, monthly net revenue)",
    )
    parser.add_argument(
        "--no-open", action="store_true", help="with --html: print the page's path, do not start a browser"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console

    if args.limit < 1:
        raise InputError("--limit must be at least 1", f"--limit {args.limit}", "ask for 1 or more runs")
    if args.no_open and not args.html:
        raise InputError(
            "--no-open only applies to --html", "report --no-open", "add --html or drop --no-open"
        )
    if args.html and args.json:
        raise InputError("--html and --json are two different outputs", "report --html --json", "choose one")
    if args.html:
        return open_latest_page(settings, open_browser=not args.no_open)
    runs = read_runs(settings, args.limit)
    if args.json:
        print(json.dumps(runs, indent=2, sort_keys=True))
        return 0
    console = Console()
    if not runs:
        console.print(f"No runs recorded yet in {settings.lake}. Run `retail-pipeline run` first.")
        return 0
    console.print(runs_table(runs))
    console.print()
    console.print(runs_chart(runs, console.width))
    return 0


def latest_page_key(settings: Settings) -> str:
    """The key of the newest run's page: the last run in the run log whose date has one, else the page of the
    newest date (a lake whose run log was lost). InputError when the lake holds no page."""
    lake = open_lake(settings)
    for run in reversed(read_runs(settings, 50)):
        key = layout.run_page_key(dt.date.fromisoformat(run["ingest_date"]))
        if lake.exists(key):
            return key
    pages = sorted(
        key
        for key in lake.list_keys(f"{layout.QUALITY_ZONE}/{layout.DATASET}/")
        if key.endswith("/" + layout.RUN_PAGE_NAME)
    )
    if not pages:
        raise InputError(
            "no run page in the lake yet",
            lake.uri(f"{layout.QUALITY_ZONE}/{layout.DATASET}/"),
            "run `retail-pipeline run` (or transform and build) first",
        )
    return pages[-1]


def open_latest_page(settings: Settings, *, open_browser: bool = True) -> int:
    """Print where the latest run page is and open it; an S3 page is copied to a local file first."""
    import webbrowser

    lake = open_lake(settings)
    key = latest_page_key(settings)
    if isinstance(lake, LocalLake):
        path = lake.path(key).resolve()
    else:
        folder = Path(tempfile.mkdtemp(prefix="retail-report-"))
        path = folder / key.replace("/", "_")
        path.write_bytes(lake.read_bytes(key))
    source = lake.uri(key)
    # A local page is the lake's own file; an S3 one is a copy, so say where it came from.
    print(
        f"run page: {path}" if source in (str(path), path.as_uri()) else f"run page: {path} (from {source})"
    )
    if open_browser and not webbrowser.open(path.as_uri()):
        print("no browser found here: open the file above in one")
    return 0


def runs_table(runs: Sequence[dict[str, Any]]):
    """One row per run, oldest first. Every figure is in ``--json``; the table keeps what fits a terminal."""
    from rich.table import Table

    table = Table(
        title=f"Last {len(runs)} run(s)",
        title_justify="left",
        box=None,
        header_style="bold underline",
        padding=(0, 1),
        collapse_padding=True,
        pad_edge=False,
    )
    table.add_column("run", overflow="fold", min_width=8)
    table.add_column("ingest date", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for name in ("rows in", "quarant.", "ratio", "gold c/p/s", "fails", "took"):
        table.add_column(name, justify="right", no_wrap=True)
    for run in runs:
        gold = run["gold_rows"]
        table.add_row(
            run["run_id"],
            run["ingest_date"],
            f"[{_STATUS_STYLE[run['status']]}]{'no-op' if run['noop'] else _STATUS_WORD[run['status']]}[/]",
            _count(run["rows_in"]),
            _count(run["rows_quarantined"]),
            _percent(run["quarantine_ratio"]),
            "/".join(_short(gold[t]) for t in layout.GOLD_TABLES),
            _count(run["dbt_test_failures"]),
            _duration(run["duration_seconds"]),
        )
    return table


def runs_chart(runs: Sequence[dict[str, Any]], width: int = 100):
    """Two bars per run: rows in (scaled to the largest run) and the quarantine ratio (scaled to the worst)."""
    from rich.text import Text

    most_rows = max((r["rows_in"] or 0 for r in runs), default=0)
    worst = max((r["quarantine_ratio"] or 0 for r in runs), default=0)
    labels = [_label(r["run_id"]) for r in runs]
    label_width = max(len(label) for label in labels)
    bar_width = max(6, min(BAR_WIDTH, (width - label_width - 24) // 2))
    text = Text()
    text.append("rows in", style="bold cyan")
    text.append(" and ")
    text.append("quarantine ratio", style="bold magenta")
    text.append(" per run\n")
    for label, run in zip(labels, runs, strict=True):
        rows, ratio = run["rows_in"], run["quarantine_ratio"]
        text.append(f"{label:<{label_width}} ")
        text.append(bar(rows or 0, most_rows, bar_width), style="cyan")
        text.append(f" {_short(rows):>7}  ")
        text.append(bar(ratio or 0, worst, bar_width), style="magenta")
        text.append(f" {_percent(ratio):>6}\n")
    return text


def bar(value: float, largest: float, width: int = BAR_WIDTH) -> str:
    """A left-aligned bar of ``width`` cells, in eighths of a cell, for ``value`` out of ``largest``."""
    if largest <= 0 or value <= 0:
        return " " * width
    eighths = round(min(value / largest, 1.0) * width * 8)
    full, part = divmod(eighths, 8)
    cells = "█" * full + (_BLOCKS[part] if part else "")
    return cells.ljust(width)


def _label(run_id: str, width: int = 22) -> str:
    # Execution names and generated ids are unique at their end (a random suffix).
    return run_id if len(run_id) <= width else "…" + run_id[-(width - 1) :]


def _short(value: float | None) -> str:
    if value is None:
        return "-"
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            scaled = value / limit
            return f"{scaled:.0f}{suffix}" if abs(scaled) >= 100 else f"{scaled:.1f}{suffix}"
    return f"{round(value)}"


def _count(value: float | None) -> str:
    return "-" if value is None else f"{round(value):,}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
