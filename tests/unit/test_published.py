"""The published figures, computed from a raw CSV (retail_pipeline/bench/published.py) and judged."""

from __future__ import annotations

from decimal import Decimal

import pytest

from retail_core import dialect
from retail_pipeline.bench import published
from retail_pipeline.cli import main

ROWS = [
    # sales with a customer: 2 UK lines in 2010-12 (one of them twice, exactly), 1 German line in 2011-01
    "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
    "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
    "536366,22633,HAND WARMER,2,12/1/2010 8:28,1.85,14646.0,United Kingdom",
    "539000,22899,APRON,10,2011-01-05 10:00:00,2.10,12345.0,Germany",
    # a zero price: in the sales set, not in the cleaned one
    "539001,22900,FREEBIE,1,2011-01-06 10:00:00,0,12345.0,Germany",
    # out of every set: a cancellation, a guest, an unreadable quantity
    "C539002,22899,APRON,-1,2011-01-07 10:00:00,2.10,12345.0,Germany",
    "539003,22899,APRON,3,2011-01-07 10:00:00,2.10,,France",
    "539004,22899,APRON,x,2011-01-07 10:00:00,2.10,12345.0,France",
]


@pytest.fixture
def raw_csv(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("\n".join([",".join(dialect.RAW_COLUMNS), *ROWS]) + "\n", encoding="utf-8")
    return path


def test_the_figures_follow_the_published_steps(raw_csv):
    figures = published.measure(raw_csv)
    assert figures["rows with Quantity > 0 and a CustomerID"] == 5
    assert figures["their revenue, Σ Quantity × UnitPrice"] == Decimal("6") * 2 * Decimal("2.55") + Decimal(
        "3.70"
    ) + Decimal("21.00")
    uk = Decimal("30.60") + Decimal("3.70")
    assert figures["United Kingdom's share of that revenue"] == uk * 100 / (uk + Decimal("21.00"))
    assert (figures["customers in that set"], figures["stock codes in that set"]) == (3, 4)
    assert figures["revenue 2010-12"] == uk  # both date layouts are read
    assert figures["revenue 2011-01"] == Decimal("21.00")
    assert figures["revenue 2011-02"] == 0
    # Price > 0 and exact duplicates dropped: the FREEBIE and the second WHITE HANGING HEART go.
    assert figures["rows after Quantity>0, UnitPrice>0, CustomerID, distinct"] == 3
    assert (figures["of which Germany"], figures["of which France"]) == (1, 0)
    assert figures["revenue of customer 14646"] == Decimal("3.70")


def test_each_figure_is_judged_against_its_tolerance():
    by_name = {f.name: f for f in published.PUBLISHED}
    count = by_name["rows with Quantity > 0 and a CustomerID"]
    assert published.Comparison(count, Decimal(397_924)).within is True
    assert published.Comparison(count, Decimal(397_925)).within is False  # counts are exact
    month = by_name["revenue 2011-11"]
    assert published.Comparison(month, month.published * Decimal("1.019")).within is True
    assert published.Comparison(month, month.published * Decimal("0.979")).within is False
    share = by_name["United Kingdom's share of that revenue"]
    assert published.Comparison(share, Decimal("82.50")).within is True  # half a point, absolute
    assert published.Comparison(share, Decimal("82.52")).within is False
    top = by_name["revenue of customer 14646"]
    assert published.Comparison(top, Decimal(0)).within is None  # shown, not judged


def test_the_command_prints_every_figure_and_exits_3_when_some_are_outside(raw_csv, capsys):
    assert main(["reconcile-published", "--path", str(raw_csv)]) == 3
    out, err = capsys.readouterr()
    assert all(f.name.split(",")[0] in out for f in published.PUBLISHED)
    assert err.count("\n") == 1 and "outside their tolerance" in err


def test_a_lake_without_raw_data_is_a_one_line_error(tmp_path, capsys):
    assert main(["--lake", str(tmp_path / "lake"), "reconcile-published"]) == 2
    assert "no complete raw partition" in capsys.readouterr().err


def test_a_file_that_is_not_the_export_is_refused_by_its_header(tmp_path, capsys):
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nInvoiceNo is the first column of the export.\n", encoding="utf-8")
    assert main(["reconcile-published", "--path", str(notes)]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # no table of figures measured from the wrong file
    (line,) = err.strip().splitlines()
    assert "wrong CSV header" in line and str(notes) in line
