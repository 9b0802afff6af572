"""`retail-pipeline report`: the run log as a table and a chart, through the CLI."""

import datetime as dt
import json
import logging

import pytest

from retail_core import layout, metrics
from retail_core.config import Settings
from retail_pipeline import cli
from retail_pipeline.commands import report

T0 = dt.datetime(2024, 3, 1, 6, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _restore_logging():
    """cli.main configures the root logger on this test's captured stderr; later tests must not inherit it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _two_runs(lake) -> None:
    settings = Settings(lake=str(lake))
    for n, (rows, quarantined) in enumerate([(541_909, 17_500), (270_000, 27_000)]):
        run_id, at = f"run-{n}", T0 + dt.timedelta(days=n)
        day = at.date()
        figures = {
            "rows_in": rows,
            "rows_clean": rows - quarantined,
            "rows_quarantined": quarantined,
            "quarantine_ratio": quarantined / rows,
            "duration_seconds": 65,
        }
        metrics.emit(settings, "transform", figures, run_id=run_id, ingest_date=day, now=at, env={})
        metrics.emit(settings, "pipeline", {"success": 1}, run_id=run_id, ingest_date=day, now=at, env={})


def test_report_shows_each_run_in_a_table_and_a_chart(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    _two_runs(tmp_path / "lake")
    assert cli.main(["--lake", str(tmp_path / "lake"), "report"]) == 0
    out = capsys.readouterr().out
    assert "Last 2 run(s)" in out
    for text in ("run-0", "run-1", "541,909", "270,000", "3.23%", "10.00%", "1m05s", "ok"):
        assert text in out
    chart = out[out.index("per run") :]
    # The larger run has the full rows bar; the worse quarantine ratio has the full ratio bar.
    row0 = next(line for line in chart.splitlines() if line.startswith("run-0"))
    row1 = next(line for line in chart.splitlines() if line.startswith("run-1"))
    rows_bar0, ratio_bar0 = (part.count("█") for part in row0.split("542k"))
    rows_bar1, ratio_bar1 = (part.count("█") for part in row1.split("270k"))
    assert rows_bar0 > rows_bar1 > 0
    assert ratio_bar1 > ratio_bar0 > 0


def test_report_json_has_every_figure(tmp_path, capsys):
    _two_runs(tmp_path / "lake")
    assert cli.main(["--lake", str(tmp_path / "lake"), "report", "--json", "--limit", "1"]) == 0
    [run] = json.loads(capsys.readouterr().out)
    assert run["run_id"] == "run-1"
    assert run["rows_quarantined"] == 27_000 and run["status"] == "succeeded"


def test_report_on_an_empty_lake_says_how_to_get_runs(tmp_path, capsys):
    assert cli.main(["--lake", str(tmp_path / "empty"), "report"]) == 0
    assert "No runs recorded yet" in capsys.readouterr().out


def test_report_rejects_a_limit_below_one(tmp_path, capsys):
    assert cli.main(["--lake", str(tmp_path), "report", "--limit", "0"]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--no-open"], "--no-open only applies to --html"),
        (["--html", "--json"], "--html and --json are two"),
    ],
)
def test_report_refuses_flags_that_do_not_go_together(tmp_path, capsys, flags, message):
    """A flag that would be ignored is refused: the user asked for something they would not get."""
    assert cli.main(["--lake", str(tmp_path), "report", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"retail-pipeline report: error: {message}") and "\n" not in err


def _page(lake, day: dt.date, text: str) -> None:
    path = lake / layout.run_page_key(day)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_report_html_names_the_latest_runs_page(tmp_path, capsys):
    """The latest run is run-1 (the later day); an older date's page written afterwards does not win."""
    lake = tmp_path / "lake"
    _two_runs(lake)
    _page(lake, (T0 + dt.timedelta(days=1)).date(), "<p>run-1</p>")
    _page(lake, (T0 - dt.timedelta(days=9)).date(), "<p>a backfill's page, no run log</p>")
    assert cli.main(["--lake", str(lake), "report", "--html", "--no-open"]) == 0
    out = capsys.readouterr().out
    page = (lake / layout.run_page_key(T0.date() + dt.timedelta(days=1))).resolve()
    assert out.splitlines()[0] == f"run page: {page}"  # a local page is the lake's own file: named once


def test_report_html_without_a_run_log_takes_the_newest_dates_page(tmp_path, capsys):
    lake = tmp_path / "lake"
    for days in (3, 1, 2):
        _page(lake, T0.date() + dt.timedelta(days=days), "<p/>")
    assert cli.main(["--lake", str(lake), "report", "--html", "--no-open"]) == 0
    assert layout.run_page_key(T0.date() + dt.timedelta(days=3)) in capsys.readouterr().out


def test_report_html_on_a_lake_without_pages_is_one_line_and_exit_2(tmp_path, capsys):
    _two_runs(tmp_path / "lake")
    assert cli.main(["--lake", str(tmp_path / "lake"), "report", "--html", "--no-open"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("retail-pipeline report: error: no run page in the lake yet")
    assert "\n" not in err and "retail-pipeline run" in err


@pytest.mark.parametrize(
    ("value", "largest", "expected"),
    [(0, 10, " " * 8), (10, 10, "█" * 8), (5, 10, "████    "), (1, 16, "▌       "), (3, 0, " " * 8)],
)
def test_bars_are_scaled_in_eighths_of_a_cell(value, largest, expected):
    assert report.bar(value, largest, width=8) == expected


def test_a_reader_that_goes_away_ends_the_report_silently_with_141(tmp_path):
    """`retail-pipeline report | head`: the pipe closes before the report is written. It was "error: [Errno 32]
    Broken pipe" with exit 4, then Python's own complaint when it flushed stdout at exit."""
    import os
    import subprocess
    import sys

    _two_runs(tmp_path / "lake")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIL_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "retail_pipeline.cli", "--lake", str(tmp_path / "lake"), "report", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command has started writing: its first write finds no reader
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == cli.SIGPIPE_EXIT
    assert err == ""
