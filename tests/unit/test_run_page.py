"""The run page (retail_core/run_page.py): what it shows, that it needs nothing from the network, that data cannot
break out of it; and how the build reads gold's figures from the operation's logged line (warehouse/figures.py)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from retail_core import run_page
from retail_core.errors import InputError
from retail_core.run_page import GoldFigures, MonthlyRevenue, PageLinks
from warehouse import figures

REPORT = {
    "dataset": "online_retail",
    "ingest_date": "2026-11-30",
    "status": "succeeded",
    "run_id": "run-7",
    "rows_in": 1000,
    "rows_clean": 950,
    "rows_returns": 20,
    "rows_quarantined": 30,
    "quarantined_by_reason": {"duplicate": 25, "non_positive_quantity": 5},
    "total_sales": "12345.678",
    "returns_total_sales": "-234.500",
    "gate": {
        "passed": True,
        "threshold": 0.05,
        "expectations": [
            {"name": "quarantine_ratio", "success": True, "observed": 950, "expectation": "expect_x"},
            {
                "name": "unit_price_positive",
                "success": True,
                "observed": {"min": 0.01},
                "expectation": "expect_y",
            },
        ],
    },
}
MONTHS = (
    MonthlyRevenue(
        dt.date(2010, 12, 1), Decimal("572713.890"), Decimal("-10000.500"), Decimal("562713.390"), 1400
    ),
    MonthlyRevenue(
        dt.date(2011, 1, 1), Decimal("569445.040"), Decimal("-131000.000"), Decimal("438445.040"), 990
    ),
)
GOLD = GoldFigures(rows={"customers": 4339, "sales_transactions": 950, "monthly_revenue": 2}, monthly=MONTHS)


class _Page(HTMLParser):
    """Every tag with its attributes, every text run, and the ids of the sections."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("td", "th", "tr", "p", "li", "h1", "h2", "summary"):
            self.text.append(" ")

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def attr(self, tag: str, name: str) -> list[str]:
        return [str(a[name]) for t, a in self.tags if t == tag and a.get(name) is not None]


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_the_page_shows_rows_reasons_gate_gold_and_each_month() -> None:
    page = run_page.render(
        REPORT, run_id="run-7", gold=GOLD, links=PageLinks(data_docs="data_docs/index.html")
    )
    text = _flat("".join(_Page(page).text))
    assert "rows in = clean + returns + quarantined: 1,000 = 950 + 20 + 30 (ok)" in text
    assert "duplicate 25 2.50%" in text
    assert "quality gate" in text.lower() and "passed" in text
    assert "gold.customers 4,339" in text
    assert "gold.sales_transactions 950" in text
    # The chart: one gross bar, one returns bar and one net dot per month, each with its figure on hover.
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert svg.count('<rect class="gross"') == len(MONTHS) + 1  # + the legend's swatch
    assert svg.count('<circle class="net"') == len(MONTHS) + 1
    assert "2010-12 net £562,713.39" in svg
    assert "2011-01 returns -£131,000.00" in svg
    # ... and the figures under it, with the total net.
    assert "net £1,001,158.43" in text
    assert "2011-01 569,445.04 -131,000.00 438,445.04 990" in text


def test_a_count_that_does_not_reconcile_is_shown_as_a_mismatch() -> None:
    page = run_page.render({**REPORT, "rows_quarantined": 29}, run_id="r")
    assert "(MISMATCH)" in _flat("".join(_Page(page).text))


def test_a_failed_gate_shows_which_expectation_failed_and_that_gold_was_not_built() -> None:
    gate = {
        "passed": False,
        "threshold": 0.05,
        "expectations": [{"name": "quarantine_ratio", "success": False, "observed": 0.3, "expectation": "e"}],
    }
    page = run_page.render({**REPORT, "status": "failed_gate", "gate": gate}, run_id="r")
    text = _flat("".join(_Page(page).text))
    assert "quality gate failed" in text
    assert "quarantine_ratio ✗ fail 0.3" in text
    assert "Not built by this run yet" in text


def test_a_check_the_gate_did_not_evaluate_is_not_shown_as_passed() -> None:
    """A day of returns only: the column checks had no row to judge (glue/quality.py NO_ROW_TO_JUDGE)."""
    note = "not evaluated: no clean row to judge"
    gate = {
        "passed": True,
        "threshold": 0.05,
        "expectations": [
            {"name": "quarantine_ratio", "success": True, "observed": 0.0, "expectation": "e"},
            {
                "name": "quantity_positive",
                "success": True,
                "observed": None,
                "expectation": "m",
                "note": note,
            },
        ],
    }
    page = run_page.render({**REPORT, "gate": gate}, run_id="r")
    text = _flat("".join(_Page(page).text))
    assert "quarantine_ratio ✓ pass 0" in text
    assert "quantity_positive – not evaluated no clean row to judge" in text
    assert "quantity_positive ✓" not in text
    assert '<td class="na">– not evaluated</td>' in page  # grey, not the green of a pass


def test_a_build_whose_tests_failed_says_so_and_that_gold_is_unchanged() -> None:
    page = run_page.render(REPORT, run_id="r", build_error="dbt tests failed: assert_x (where) -> do")
    text = _flat("".join(_Page(page).text))
    assert "build: dbt tests failed: assert_x" in text
    assert "Gold was not published" in text


def test_the_page_needs_nothing_from_the_network() -> None:
    """No script, stylesheet, font, image or frame: nothing a browser would fetch. The SVG namespace is a name,
    not a fetch; the links are the run's own artifacts, followed only when clicked."""
    links = PageLinks(data_docs="data_docs/index.html", dbt_docs="file:///tmp/target/index.html")
    page = run_page.render(REPORT, run_id="r", gold=GOLD, links=links)
    parsed = _Page(page)
    fetching = {
        "script",
        "link",
        "img",
        "iframe",
        "object",
        "embed",
        "video",
        "audio",
        "source",
        "image",
        "use",
    }
    assert not fetching & {tag for tag, _ in parsed.tags}
    assert not any("src" in attrs for _, attrs in parsed.tags)
    assert "url(" not in page and "@import" not in page
    assert parsed.attr("a", "href") == [
        "data_docs/index.html",
        "file:///tmp/target/index.html",
        "run_report.json",
    ]
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"]


def test_values_from_the_data_cannot_inject_markup() -> None:
    hostile = '<script>alert(1)</script>"><img src=x>'
    report = {**REPORT, "run_id": hostile, "quarantined_by_reason": {hostile: 3}, "error": hostile}
    gate = {**REPORT["gate"], "expectations": [{"name": hostile, "success": True, "observed": hostile}]}
    page = run_page.render(
        {**report, "gate": gate},
        run_id=hostile,
        gold=GoldFigures(rows={hostile: 1}, monthly=MONTHS),
        links=PageLinks(data_docs='x" onmouseover="alert(1)'),
    )
    parsed = _Page(page)
    assert {tag for tag, _ in parsed.tags} & {"script", "img"} == set()
    assert not any(name.startswith("on") for _, attrs in parsed.tags for name in attrs)
    assert hostile in "".join(parsed.text)  # shown as text, verbatim


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0, 100, [0, 20, 40, 60, 80, 100]),
        (-130, 570, [0, 200, 400]),
        (-1300, 200, [-1000, -500, 0]),
        (0, 0, [0.0]),
    ],
)
def test_gridlines_are_round_numbers_that_include_zero(low, high, expected) -> None:
    assert run_page._ticks(low, high) == expected


def test_gold_figures_are_read_from_the_operations_line() -> None:
    line = figures.MARKER + (
        '{"rows": {"customers": 4339, "sales_transactions": 950}, '
        '"monthly": [["2010-12-01", "572713.890", "-10000.500", "562713.390", "1400"]]}'
    )
    read = figures.parse(["something else", line], published=False)
    assert read.rows == {"customers": 4339, "sales_transactions": 950}
    assert read.monthly == (MONTHS[0],)
    assert read.published is False


@pytest.mark.parametrize(
    "messages",
    [[], ["retail-gold-figures: {}"], ['retail-gold-figures: {"rows": {}, "monthly": [["x", 1, 2, 3, 4]]}']],
)
def test_a_missing_or_malformed_figures_line_is_one_clear_error(messages) -> None:
    with pytest.raises(InputError) as failure:
        figures.parse(messages, published=True, where="op")
    assert "\n" not in failure.value.one_line()
    assert "op" in failure.value.one_line()
