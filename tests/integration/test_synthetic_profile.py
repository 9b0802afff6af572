"""The synthetic twin at full size: scale 1 has the real file's published profile and money, scale 2 doubles it."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from ingestion.sources.synthetic import write_csv
from retail_pipeline.bench import published
from retail_pipeline.cli import main
from tests.support.csv_profile import profile_csv

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# The published profile of the real file (UCI Online Retail, Kaggle ulrikthygepedersen/online-retail-dataset).
PUBLISHED = {
    "rows": 541_909,
    "missing_customer_id": 135_080,
    "missing_description": 1_454,
    "missing_description_with_customer": 0,
    "duplicate_rows": 5_268,
    "negative_quantity": 10_624,
    "nonpositive_unit_price": 2_517,
    "negative_unit_price": 2,
    "cancellation_rows": 9_288,
    "distinct_invoice_no": 25_900,
    "distinct_stock_code": 4_070,
    "distinct_description": 4_223,
    "distinct_customer_id": 4_372,
    "distinct_country": 38,
    "invoice_date_min": "2010-12-01 08:26:00",
    "invoice_date_max": "2011-12-09 12:50:00",
    "quantity_min": -80_995,
    "quantity_max": 80_995,
    "unit_price_min": -11_062.06,
    "unit_price_max": 38_970.0,
}
PUBLISHED_CLEAN_ROWS = 392_692


@pytest.fixture(scope="module")
def scale_one(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `retail-pipeline ingest --source synthetic` lands: the profile is checked on the landed bytes."""
    lake = tmp_path_factory.mktemp("lake")
    args = ["--lake", str(lake), "ingest", "--source", "synthetic", "--ingest-date", "2024-01-01"]
    assert main(args) == 0
    path = lake / "raw-data/online_retail/ingest_date=2024-01-01/online_retail.csv"
    with open(path, "rb") as landed:
        assert (
            hashlib.sha256(landed.read()).hexdigest()
            == json.loads((path.parent / "_manifest.json").read_text())["sha256"]
        )
    return path


@pytest.fixture(scope="module")
def rows(scale_one: Path) -> list[list[str]]:
    with open(scale_one, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))[1:]


@pytest.fixture(scope="module")
def profile(scale_one: Path) -> dict:
    return profile_csv(scale_one)


@pytest.fixture(scope="module")
def money(scale_one: Path) -> dict[str, Decimal]:
    """The figures `retail-pipeline reconcile-published` judges, measured on the landed file."""
    return published.measure(scale_one)


@pytest.mark.parametrize("figure", sorted(PUBLISHED))
def test_scale_one_reproduces_the_published_figure(profile: dict, figure: str):
    assert profile[figure] == PUBLISHED[figure]


JUDGED = [f for f in published.PUBLISHED if f.tolerance is not None]


@pytest.mark.parametrize("figure", JUDGED, ids=[f.name for f in JUDGED])
def test_scale_one_lands_every_judged_published_figure_within_its_tolerance(
    money: dict[str, Decimal], figure: published.Figure
):
    comparison = published.Comparison(figure, money[figure.name])
    assert comparison.within, f"{figure.name}: {comparison.measured} vs {figure.published}"


def test_the_biggest_customers_are_the_real_files_with_about_their_revenue(scale_one: Path, money: dict):
    import duckdb

    query = """
        select CustomerID, sum(Quantity * UnitPrice) as revenue
        from read_csv(?, header = true, all_varchar = false)
        where Quantity > 0 and CustomerID is not null
        group by 1 order by 2 desc limit 5
    """
    ranked = [int(customer) for customer, _ in duckdb.connect().execute(query, [str(scale_one)]).fetchall()]
    # The three published ones, and 16446 with its 80,995 paper crafts near them, as in the real file.
    assert ranked[:3] == [14646, 18102, 17450]
    assert 16446 in ranked
    for figure in published.PUBLISHED:
        if figure.tolerance is None:  # shown, not judged: the twin need only be of that order
            off = abs(money[figure.name] - figure.published)
            assert off <= Decimal("0.05") * figure.published, figure.name


def test_money_is_heavy_tailed_like_the_real_files_but_lines_are_ordinary(scale_one: Path):
    import duckdb

    con = duckdb.connect()
    con.execute(
        """
        create table sales as select CustomerID, Quantity, Quantity * UnitPrice as revenue
        from read_csv(?, header = true, all_varchar = false) where Quantity > 0 and CustomerID is not null
        """,
        [str(scale_one)],
    )
    top_share, top_tenth_share = con.execute("""
        with customers as (select CustomerID, sum(revenue) as revenue from sales group by 1),
        ranked as (select revenue, row_number() over (order by revenue desc) as n, count(*) over () as total
                   from customers)
        select sum(revenue) filter (where n <= total / 100) / sum(revenue),
               sum(revenue) filter (where n <= total / 10) / sum(revenue)
        from ranked
    """).fetchone()
    # Customers as in the real file, whose ten biggest alone spend about a sixth of the revenue.
    assert top_share > 0.15 and top_tenth_share > 0.45
    median_quantity, median_line, big_lines = con.execute(
        "select median(Quantity), median(revenue), count(*) filter (where revenue >= 1000) from sales"
    ).fetchone()
    # The real file's median line: 6 units for about £12; and some lines of £1,000 or more.
    assert 3 <= median_quantity <= 12 and 5 <= median_line <= 20
    assert 20 <= big_lines <= 2_000


def test_scale_one_leaves_the_published_clean_row_count(profile: dict):
    clean = profile["clean_rows"]
    assert abs(clean - PUBLISHED_CLEAN_ROWS) <= 0.005 * PUBLISHED_CLEAN_ROWS
    assert clean == PUBLISHED_CLEAN_ROWS  # by construction it lands exactly


def test_famous_rows_of_the_real_file_are_there(rows: list[list[str]]):
    by_key = {(row[0], row[1], row[3]): row for row in rows}
    big = by_key[("581483", "23843", "80995")]
    assert big[2] == "PAPER CRAFT , LITTLE BIRDIE" and big[6] == "16446.0"
    assert big[4].startswith("2011-12-09")
    assert by_key[("C581484", "23843", "-80995")][6] == "16446.0"
    jar = by_key[("541431", "23166", "74215")]
    assert (jar[2], jar[4][:10], jar[6]) == ("MEDIUM CERAMIC TOP STORAGE JAR", "2011-01-18", "12346.0")
    returned = by_key[("C541433", "23166", "-74215")]
    assert (returned[4][:10], returned[5], returned[6]) == ("2011-01-18", jar[5], "12346.0")
    assert by_key[("C556445", "M", "-1")][2:] == [
        "Manual",
        "-1",
        "2011-06-10 15:31:00",
        "38970.0",
        "15098.0",
        "United Kingdom",
    ]
    debts = [row for row in rows if row[5] == "-11062.06"]
    assert [(r[0][0], r[1], r[2], r[6]) for r in debts] == [("A", "B", "Adjust bad debt", "")] * 2


def test_invoices_have_one_customer_date_and_country_and_customers_mostly_one_country(rows: list[list[str]]):
    invoice_facts: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    countries: dict[str, set[str]] = defaultdict(set)
    for invoice, _, _, _, date, _, customer, country in rows:
        invoice_facts[invoice].add((date, customer, country))
        if customer:
            countries[customer].add(country)
    assert all(len(facts) == 1 for facts in invoice_facts.values())
    assert sum(len(c) == 2 for c in countries.values()) == 8
    assert max(len(c) for c in countries.values()) == 2


def test_dirt_the_cleaning_stages_are_tested_on_is_there(rows: list[list[str]]):
    codes = {row[1] for row in rows}
    for code in ("POST", "DOT", "M", "D", "C2", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS", "S", "B", "m"):
        assert code in codes, code
    assert {"85123A", "22423"} <= codes
    descriptions: dict[str, set[str]] = defaultdict(set)
    prices: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row[2]:
            descriptions[row[1]].add(row[2])
        prices[row[1]].add(row[5])
    assert "CREAM HANGING HEART T-LIGHT HOLDER" in descriptions["85123A"]
    assert sum(len(d) > 1 for d in descriptions.values()) > 500
    assert sum(len(p) > 1 for p in prices.values()) > 3_000
    cancels = [row for row in rows if row[0].startswith("C")]
    assert all(len(row[0]) == 7 and row[0][1:].isdigit() and int(row[3]) < 0 for row in cancels)
    # As in the real file: 8,905 of them with a customer, 383 in 182 invoices without.
    guest_cancels = [row for row in cancels if not row[6]]
    assert (len(guest_cancels), len({row[0] for row in guest_cancels})) == (383, 182)
    missing = [row for row in rows if not row[2]]
    assert all(row[5] == "0.0" and not row[6] for row in missing)
    assert all(
        re.fullmatch(r"-?\d+\.\d{1,3}", row[5]) for row in rows
    )  # as the real file: 2.55, 0.001, 38970.0
    uk = sum(row[7] == "United Kingdom" for row in rows) / len(rows)
    assert 0.89 < uk < 0.93


def test_pandas_and_duckdb_read_back_what_the_csv_module_reads(scale_one: Path, rows: list[list[str]]):
    import duckdb
    import pandas as pd

    frame = pd.read_csv(scale_one, dtype=str, keep_default_na=False)
    assert frame.to_numpy().tolist() == rows
    read = duckdb.connect().execute(
        "select * from read_csv(?, all_varchar = true, header = true, hive_partitioning = false)",
        [str(scale_one)],
    )
    assert [["" if v is None else v for v in row] for row in read.fetchall()] == rows


def _sha256_in_subprocess(hash_seed: str) -> str:
    code = (
        "import hashlib, sys\n"
        "from ingestion.sources.synthetic import write_csv\n"
        "class Sink:\n"
        "    def __init__(self): self.h = hashlib.sha256()\n"
        "    def write(self, b): self.h.update(b); return len(b)\n"
        "sink = Sink(); write_csv(sink, seed=42, scale=1); print(sink.h.hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_same_seed_is_byte_identical_across_processes_and_hash_seeds(scale_one: Path):
    on_disk = hashlib.sha256(scale_one.read_bytes()).hexdigest()
    assert _sha256_in_subprocess("1") == on_disk
    assert _sha256_in_subprocess("2") == on_disk


def test_scale_two_doubles_rows_invoices_customers_and_dirt_but_not_products(tmp_path: Path):
    path = tmp_path / "scale2.csv"
    with open(path, "wb") as out:
        assert write_csv(out, seed=42, scale=2) == 2 * 541_909
    facts = profile_csv(path)
    assert facts["rows"] == 2 * 541_909
    assert facts["distinct_invoice_no"] == 2 * 25_900
    assert facts["distinct_customer_id"] == 2 * 4_372
    assert facts["duplicate_rows"] == 2 * 5_268
    assert facts["cancellation_rows"] == 2 * 9_288
    assert facts["clean_rows"] == 2 * PUBLISHED_CLEAN_ROWS
    assert (facts["distinct_stock_code"], facts["distinct_description"], facts["distinct_country"]) == (
        4_070,
        4_223,
        38,
    )
    assert (facts["invoice_date_min"], facts["invoice_date_max"]) == (
        "2010-12-01 08:26:00",
        "2011-12-09 12:50:00",
    )
    # The money scales too: every judged figure is N times the published one (a share stays a share; stock codes
    # stay), within the same tolerance.
    for comparison in published.compare(published.measure(path)):
        figure = comparison.figure
        if figure.tolerance is None:
            continue
        times = 1 if not figure.relative or figure.unit == "codes" else 2
        off = abs(comparison.measured - times * figure.published)
        assert off <= figure.tolerance * (times * figure.published if figure.relative else 1), figure.name
