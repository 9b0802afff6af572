"""The synthetic twin's format, determinism and streaming; and profile_csv on hand-made files."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from ingestion.sources import synthetic
from ingestion.sources.synthetic import BASE_ROWS, SyntheticSource, write_csv
from retail_core.errors import InputError
from tests.support.csv_profile import profile_csv

HEADER = b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


class _Enough(Exception):
    pass


class _Head(io.RawIOBase):
    """A binary sink that keeps what it is given and stops the writer after ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.buffer += data
        if len(self.buffer) >= self.limit:
            raise _Enough
        return len(data)


def _head(seed: int = 42, limit: int = 2_000_000, progress=None) -> bytes:
    sink = _Head(limit)
    with pytest.raises(_Enough):
        write_csv(sink, seed=seed, progress=progress)
    return bytes(sink.buffer)


def _rows(data: bytes) -> list[list[str]]:
    """Whole data rows of a head: the header and a cut last line are dropped."""
    text = data.decode("utf-8")
    text = text[: text.rindex("\n") + 1]
    return list(csv.reader(io.StringIO(text, newline="")))[1:]


def test_header_is_exactly_the_real_files_header():
    assert _head(limit=10).startswith(HEADER)


def test_same_seed_writes_identical_bytes_even_with_the_plan_rebuilt():
    first = _head(seed=42)
    synthetic._plan.cache_clear()
    assert _head(seed=42) == first


def test_different_seeds_write_different_bytes():
    assert _head(seed=42, limit=300_000) != _head(seed=43, limit=300_000)


def test_negative_seed_is_not_the_same_as_its_absolute_value():
    # random.Random(int) ignores the sign; the generator must not.
    assert _head(seed=-42, limit=300_000) != _head(seed=42, limit=300_000)


def test_every_row_reads_back_with_the_csv_module_as_eight_fields():
    rows = _rows(_head())
    assert len(rows) > 15_000
    assert {len(row) for row in rows} == {8}


def test_lines_end_with_lf_and_are_exactly_what_the_csv_module_writes():
    data = _head()
    assert b"\r" not in data
    lines = data.decode("utf-8").split("\n")[1:-1]
    for line, row in zip(lines, _rows(data), strict=True):
        out = io.StringIO()
        csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL).writerow(row)
        assert out.getvalue() == line + "\n"


def test_descriptions_carry_commas_quotes_apostrophes_and_trailing_spaces():
    data = _head(limit=4_000_000)
    descriptions = {row[2] for row in _rows(data)}
    assert any("," in d for d in descriptions)
    assert any('"' in d for d in descriptions)
    assert any("'" in d for d in descriptions)
    assert any(d.endswith(" ") for d in descriptions)
    assert "" in descriptions  # missing descriptions
    assert b'""' in data  # a quote inside a quoted field is doubled (RFC 4180)


def test_values_are_formatted_as_the_kaggle_file():
    for invoice, stock, _, quantity, date, price, customer, country in _rows(_head()):
        assert re.fullmatch(r"[CA]?\d{6}", invoice), invoice
        assert stock and "," not in stock
        assert re.fullmatch(r"-?\d+", quantity), quantity
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:00", date), date
        assert re.fullmatch(r"-?\d+\.\d{1,3}", price), price  # plain decimal, never an exponent
        assert re.fullmatch(r"(\d+\.0)?", customer), customer
        assert country


def test_first_invoice_is_the_real_files_first_invoice():
    rows = _rows(_head(limit=5_000))
    first = [row for row in rows if row[0] == "536365"]
    assert [r[1] for r in first] == ["85123A", "71053", "84406B", "84029G", "84029E", "22752", "21730"]
    assert first[0] == [
        "536365",
        "85123A",
        "WHITE HANGING HEART T-LIGHT HOLDER",
        "6",
        "2010-12-01 08:26:00",
        "2.55",
        "17850.0",
        "United Kingdom",
    ]


def test_cancellations_have_negative_quantities_and_mostly_a_customer():
    cancels = [row for row in _rows(_head(limit=8_000_000)) if row[0].startswith("C")]
    assert cancels
    assert all(int(row[3]) < 0 for row in cancels)
    without = sum(not row[6] for row in cancels)
    assert 0 < without < 0.15 * len(cancels)  # the real file: 383 of 9,288


def test_an_invoice_has_one_customer_one_date_and_one_country():
    seen: dict[str, tuple[str, str, str]] = {}
    for invoice, *_, date, _, customer, country in _rows(_head()):
        assert seen.setdefault(invoice, (date, customer, country)) == (date, customer, country)


def test_a_bad_scale_or_seed_is_refused_before_anything_is_written():
    for bad in ({"scale": 0}, {"scale": 1.5}, {"seed": "42"}):
        out = io.BytesIO()
        with pytest.raises(InputError, match=r"scale|seed"):
            write_csv(out, **bad)  # type: ignore[arg-type]
        assert out.getvalue() == b""


def test_progress_is_reported_about_every_hundred_thousand_rows_after_they_are_written():
    calls: list[tuple[int, int]] = []
    sink = _Head(21_000_000)

    def progress(rows: int) -> None:
        calls.append((rows, sink.buffer.count(b"\n") - 1))

    with pytest.raises(_Enough):
        write_csv(sink, progress=progress)
    assert len(calls) == 2
    (first, written_first), (second, written_second) = calls
    assert 100_000 <= first < 112_000
    assert 200_000 <= second < 212_000
    assert written_first >= first and written_second >= second


def test_write_csv_streams_scale_one_to_a_file_in_small_chunks(tmp_path: Path):
    path = tmp_path / "online_retail.csv"
    sizes: list[int] = []
    reported: list[int] = []

    class Recording(io.FileIO):
        def write(self, data) -> int:  # type: ignore[override]
            sizes.append(len(data))
            return super().write(data)

    with Recording(path, "w") as out:
        rows = write_csv(out, progress=reported.append)
    assert rows == BASE_ROWS
    with open(path, "rb") as handle:
        assert sum(1 for _ in handle) == BASE_ROWS + 1
    assert len(sizes) > 50 and max(sizes) < 2_000_000  # written as it goes, never as one block
    assert reported[:5] == sorted(reported[:5]) and reported[-1] == BASE_ROWS
    assert len(reported) == 6  # 100k, 200k, ... 500k, and the total


def test_synthetic_source_reports_rows_seed_and_scale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    seen: dict[str, object] = {}

    def fake_write_csv(out, *, seed, scale, progress):
        seen.update(seed=seed, scale=scale, writable=out.writable())
        out.write(HEADER)
        return 0

    monkeypatch.setattr(synthetic, "write_csv", fake_write_csv)
    produced = SyntheticSource(seed=5, scale=3).produce(tmp_path / "raw.csv")
    assert seen == {"seed": 5, "scale": 3, "writable": True}
    assert produced.rows == 0
    assert produced.details["seed"] == 5 and produced.details["scale"] == 3
    assert (tmp_path / "raw.csv").read_bytes() == HEADER


# ---------------------------------------------------------------------------------------------------------
# The money plan
# ---------------------------------------------------------------------------------------------------------


def test_nice_rounds_to_the_nearest_quantity_the_real_file_uses():
    assert [synthetic._nice(x) for x in (0.2, 1.49, 1.5, 6.9, 7.1, 13.4, 13.6, 4_801.0, 6_049.0)] == [
        1,
        1,
        2,
        6,
        8,
        12,
        15,
        4_800,
        6_000,
    ]
    assert synthetic._nice(1e9) == synthetic._MAX_RANDOM_QUANTITY < 80_995  # the blunders stay the extremes


def _fixed_revenue(inv) -> float:
    return sum(int(q) * float(p) for _, q, p in inv.fixed)


def test_sale_budgets_and_fixed_lines_add_up_to_the_published_money():
    plan = synthetic._plan(42)
    sales = [inv for inv in plan.invoices if inv.kind == synthetic._SALE]
    by_month: dict[tuple[int, int], float] = {}
    uk = 0.0
    by_customer: dict[int | None, float] = {}
    for inv in sales:
        money = inv.budget + _fixed_revenue(inv)
        month = synthetic._month(inv.minute)
        by_month[month] = by_month.get(month, 0.0) + money
        by_customer[inv.customer] = by_customer.get(inv.customer, 0.0) + money
        if inv.country == "United Kingdom":
            uk += money
    assert by_month == pytest.approx(synthetic.MONTH_REVENUE, rel=1e-9)
    assert uk / sum(by_month.values()) == pytest.approx(synthetic.UK_REVENUE_SHARE, rel=1e-9)
    for customer, (_, revenue, _) in synthetic._BIG_SPENDERS.items():
        assert by_customer[customer] == pytest.approx(revenue, rel=1e-9)
    assert min(inv.budget for inv in sales if inv.n_random) > 0


def test_customers_are_sold_only_the_planned_stock_codes():
    plan = synthetic._plan(42)
    cum = plan.sale_weights_cum
    bought = {i for i in range(len(cum)) if cum[i] > (cum[i - 1] if i else 0.0)}
    assert len(bought) + len(synthetic._CUSTOMER_SPECIALS) == synthetic.N_SALE_STOCK_CODES
    assert set(range(len(synthetic._REAL_PRODUCTS))) <= bought  # the real best sellers among them
    codes = {plan.products[i].code for i in range(len(cum)) if i not in bought}
    for inv in plan.invoices:
        if inv.kind == synthetic._SALE:
            assert not {line[0].split(",")[0] for line in inv.fixed} & codes


# ---------------------------------------------------------------------------------------------------------
# profile_csv, on files small enough to count by hand
# ---------------------------------------------------------------------------------------------------------


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "sample.csv"
    path.write_bytes(HEADER + "".join(line + "\n" for line in lines).encode("utf-8"))
    return path


def test_profile_counts_dirt_and_clean_rows(tmp_path: Path):
    path = _write(
        tmp_path,
        "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
        "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
        "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",
        'C536379,D,"Discount, ""big""",-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom',
        "536414,22139,,56,2010-12-01 11:52:00,0.0,,United Kingdom",
        "A563185,B,Adjust bad debt,1,2011-08-12 14:50:00,-11062.06,,United Kingdom",
        "536544,21773,DECORATIVE ROSE BATHROOM BOTTLE,1,2010-12-01 14:32:00,2.51,,France",
    )
    facts = profile_csv(path)
    assert facts["rows"] == 7
    assert facts["duplicate_rows"] == 2
    assert facts["missing_customer_id"] == 3
    assert facts["missing_description"] == 1
    assert facts["missing_description_with_customer"] == 0
    assert facts["negative_quantity"] == 1
    assert facts["nonpositive_unit_price"] == 2
    assert facts["negative_unit_price"] == 1
    assert facts["cancellation_rows"] == 1
    assert facts["clean_rows"] == 1
    assert facts["distinct_invoice_no"] == 5
    assert facts["distinct_stock_code"] == 5
    assert facts["distinct_description"] == 4  # the empty one is not a description
    assert facts["distinct_customer_id"] == 2
    assert facts["distinct_country"] == 2
    assert (facts["invoice_date_min"], facts["invoice_date_max"]) == (
        "2010-12-01 08:26:00",
        "2011-08-12 14:50:00",
    )
    assert (facts["quantity_min"], facts["quantity_max"]) == (-1, 56)
    assert (facts["unit_price_min"], facts["unit_price_max"]) == (-11062.06, 27.5)


def test_profile_rejects_a_file_with_another_header(tmp_path: Path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="unexpected header"):
        profile_csv(path)


def test_profile_names_the_line_of_a_short_row(tmp_path: Path):
    path = _write(tmp_path, "536365,85123A,X,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom", "536366,1,2")
    with pytest.raises(InputError, match="line 3"):
        profile_csv(path)
