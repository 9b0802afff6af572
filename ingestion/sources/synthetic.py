"""A deterministic synthetic twin of the UCI Online Retail CSV.

The real file is Kaggle's ``ulrikthygepedersen/online-retail-dataset``; this one has its header, value
formats (``2010-12-01 08:26:00``, ``17850.0``, ``2.55``), QUOTE_MINIMAL quoting and ``\n`` line ends.

At scale 1 the file reproduces the real file's published profile exactly: 541,909 data rows, 135,080
without CustomerID, 1,454 without Description (all of them guest rows with UnitPrice 0), 5,268 exact
duplicate rows, 10,624 negative quantities, 2,517 prices <= 0 (two of them -11062.06 'Adjust bad debt'),
9,288 cancellation rows in 3,836 ``C`` invoices, 25,900 / 4,070 / 4,223 / 4,372 / 38 distinct invoices /
stock codes / descriptions / customers / countries, dates 2010-12-01 08:26:00 .. 2011-12-09 12:50:00,
quantities -80,995 .. 80,995, prices -11,062.06 .. 38,970, and 392,692 rows left after keeping
Quantity > 0, UnitPrice > 0, CustomerID present and dropping duplicates.

How: a *plan* drawn from a ``random.Random`` seeded with the seed fixes every invoice (number, kind,
date, customer, country, how many lines, how many duplicated lines) and every line a figure depends on
(price-0 lines, notes, special stock codes, one line per product and per description so that the
distinct counts land). A *renderer* then fills the remaining lines (which product, quantity, price
tier, description variant) from a second RNG; nothing it draws can move a figure. Invoices are
rendered and written one at a time.

The dirt, by row category (scale 1):

* 397,541 customer sale rows in 18,532 invoices, 4,809 of them exact duplicates of a line in the same
  invoice and 40 with UnitPrice 0.0 (free lines); special codes POST, C2, M, m, BANK CHARGES, PADS
  (0.001) among them; some lines carry a description variant of their stock code.
* 9,288 cancellation rows (``C`` + 6 digits, Quantity < 0, UnitPrice > 0, always with a customer) in
  3,836 invoices, 50 duplicates; special codes D, CRUK, AMAZONFEE, S, M, POST, BANK CHARGES among them.
* 132,602 guest sale rows (no customer) in 1,629 invoices, 409 duplicates; DOT, gift vouchers, M.
* 2,475 stock adjustments (no customer, UnitPrice 0.0) in 1,900 invoices: 1,454 without Description,
  1,021 with a note ('damaged', '?', 'found', ...); 1,336 of them have Quantity < 0.
* 3 'Adjust bad debt' rows (StockCode B, invoices A563185..A563187, no customer).
* A customer's invoices share the customer's country, except 8 customers who also buy under a second
  country. Invoice numbers grow with the invoice date.

Scale N writes N copies of the plan, one after the other. Copy k (0-based) adds k x 1,000,000 to every
invoice number (so only copy 0 has 6-digit numbers) and k x 10,000 to every customer id; the random
lines are drawn afresh for each copy. What scales by exactly N: rows and every row count above,
invoices, customers, duplicates, clean rows. What stays: stock codes, descriptions, countries, prices
per product, the date range (each copy repeats the same invoice dates), the quantity and price ranges.
Memory does not grow with the scale: only the plan (25,900 invoices) is held.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import itertools
import random
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import BinaryIO

from ingestion.sources import Produced, Progress
from retail_core.dialect import RAW_COLUMNS
from retail_core.errors import InputError

BASE_ROWS = 541_909
BASE_BYTES = 45_453_269  # the scale-1 file at seed 42; other seeds differ by well under 1%
HEADER = ",".join(RAW_COLUMNS) + "\n"
PROGRESS_EVERY = 100_000
INVOICE_STRIDE = 1_000_000  # added to invoice numbers per copy
CUSTOMER_STRIDE = 10_000  # added to customer ids per copy (real ids span 12346..18287)

# ---------------------------------------------------------------------------------------------------------
# The plan's totals. Everything below is derived from the published profile; see the module docstring.
# ---------------------------------------------------------------------------------------------------------
N_INVOICES = 25_900
N_CANCEL_INVOICES = 3_836
N_SALE_INVOICES = 18_532
N_ADJUST_INVOICES = 1_900
N_BAD_DEBT_INVOICES = 3
N_GUEST_INVOICES = N_INVOICES - N_CANCEL_INVOICES - N_SALE_INVOICES - N_ADJUST_INVOICES - N_BAD_DEBT_INVOICES

ROWS_MISSING_CUSTOMER = 135_080
ROWS_CANCEL = 9_288
DUPS_CANCEL = 50
ROWS_MISSING_DESCRIPTION = 1_454
NEGATIVE_MISSING_DESCRIPTION = 600
ROWS_NOTE = 1_021
NEGATIVE_NOTE = 736  # with the 600 above: the 1,336 negative quantities outside cancellations
ROWS_FREE = 40  # customer rows with UnitPrice 0.0
DUPS_SALE = 4_809
DUPS_GUEST = 409
ROWS_SALE = BASE_ROWS - ROWS_MISSING_CUSTOMER - ROWS_CANCEL
ROWS_GUEST = ROWS_MISSING_CUSTOMER - N_BAD_DEBT_INVOICES - ROWS_MISSING_DESCRIPTION - ROWS_NOTE

N_STOCK_CODES = 4_070
N_DESCRIPTIONS = 4_223
N_CUSTOMERS = 4_372

_SALE, _GUEST, _CANCEL, _ADJUST, _BAD_DEBT = range(5)

# The literal tables, from package data (synthetic_tables.toml: the real file's published figures).
_TABLES = tomllib.loads(
    resources.files("ingestion.sources").joinpath("synthetic_tables.toml").read_text("utf-8")
)
_CUSTOMER_COUNTRIES = tuple(tuple(row) for row in _TABLES["customer_countries"])
_GUEST_COUNTRIES = tuple(tuple(row) for row in _TABLES["guest_countries"])
_KNOWN_CUSTOMERS = {int(k): v for k, v in _TABLES["known_customers"].items()}
_MONTH_WEIGHTS = {tuple(int(p) for p in k.split("-")): v for k, v in _TABLES["month_weights"].items()}
_REAL_PRODUCTS = tuple(tuple(row) for row in _TABLES["real_products"])
_FIRST_INVOICE = tuple(tuple(row) for row in _TABLES["first_invoice"])
_KNOWN_ALTS = tuple(tuple(row) for row in _TABLES["known_alts"])
_SPECIALS = tuple(tuple(row) for row in _TABLES["specials"])
_NEGATIVE_NOTES = tuple(_TABLES["negative_notes"])
_POSITIVE_NOTES = tuple(_TABLES["positive_notes"])
_ITEMS = tuple(_TABLES["items"])
_THEMES = tuple(_TABLES["themes"])
_COLOURS = tuple(_TABLES["colours"])
_SIZES = tuple(_TABLES["sizes"])
_PRICE_POINTS = tuple(tuple(row) for row in _TABLES["price_points"])
_SALE_QTY = tuple(tuple(row) for row in _TABLES["sale_qty"])
_GUEST_QTY = tuple(tuple(row) for row in _TABLES["guest_qty"])
_CANCEL_QTY = tuple(tuple(row) for row in _TABLES["cancel_qty"])
_ADJUST_QTY = tuple(tuple(row) for row in _TABLES["adjust_qty"])

_FIRST_DAY = dt.date(2010, 12, 1)
_LAST_DAY = dt.date(2011, 12, 9)
_CLOSED_DAYS = {dt.date(2011, 4, 22), dt.date(2011, 4, 25), dt.date(2011, 4, 29), dt.date(2011, 5, 2)}
_CLOSED_DAYS |= {dt.date(2011, 5, 30), dt.date(2011, 8, 29)}
_CLOSED_DAYS |= {dt.date(2010, 12, 24) + dt.timedelta(days=i) for i in range(11)}  # to 2011-01-03
_PRICE_RISE = dt.date(2011, 9, 1)  # some products cost more from here on

# ---------------------------------------------------------------------------------------------------------
# Products
# ---------------------------------------------------------------------------------------------------------
_PAPER_CRAFT, _STORAGE_JAR = 7, 8

_N_SHARED_PAIRS = 5  # pairs of stock codes that share one description


def _price(value: float) -> str:
    """A price as the real file writes it: the shortest decimal that reads back, never an exponent."""
    text = repr(float(value))
    if "e" in text:  # repr uses an exponent below 1e-4 and from 1e16: no price of ours is there
        raise RuntimeError(f"price {value!r} cannot be written as a plain decimal")
    return text


def _csv_field(value: str) -> str:
    """``value`` as the csv module writes it with QUOTE_MINIMAL (quoted when it holds , or ")."""
    if value == "":
        return ""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL).writerow([value])
    return buf.getvalue()[:-1]


@dataclass(frozen=True, slots=True)
class _Product:
    code: str
    description: str
    base: float
    bulk: float
    guest: float
    late: float
    bulk_qty: int
    alt: str | None = None


@dataclass(slots=True)
class _Invoice:
    kind: int
    number: int
    prefix: str
    minute: int  # minutes since _FIRST_DAY 00:00
    customer: int | None
    country: str
    fixed: list[tuple[str, str, str]]  # (code_and_description_csv, quantity, price) lines
    exclude: set[int]  # product indices already on the invoice
    n_random: int = 0
    n_dups: int = 0


@dataclass(frozen=True)
class _Plan:
    products: tuple[_Product, ...]
    weights_cum: tuple[float, ...]
    invoices: tuple[_Invoice, ...]


# ---------------------------------------------------------------------------------------------------------
# Planning: everything a figure depends on.
# ---------------------------------------------------------------------------------------------------------


def _cum(weights: list[float] | tuple[float, ...]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


def _product_names(rng: random.Random, taken: set[str], n: int) -> list[str]:
    """``n`` new upper-case product names, distinct from ``taken`` and from each other."""
    names: list[str] = []
    seen = set(taken) | {t.strip() for t in taken}
    while len(names) < n:
        item, theme, colour = rng.choice(_ITEMS), rng.choice(_THEMES), rng.choice(_COLOURS)
        form = rng.random()
        if form < 0.25:
            name = f"{item} {theme}"
        elif form < 0.42:
            name = f"{theme} {item}"
        elif form < 0.57:
            name = f"{colour} {theme} {item}"
        elif form < 0.67:
            name = f"{item} {colour}"
        elif form < 0.74:
            name = f"SET OF {rng.choice((2, 3, 4, 6, 12))} {theme} {item}"
        elif form < 0.80:
            name = f"PACK OF {rng.choice((6, 12, 20, 24, 60, 72))} {theme} {item}"
        elif form < 0.90:
            name = f"{rng.choice(_SIZES)} {theme} {item}"
        elif form < 0.97:
            name = f"{colour} {item} {rng.choice(_SIZES)}"
        elif form < 0.99:
            name = f"{item}{rng.choice((', ', ' , ', ','))}{theme}"
        elif form < 0.992:
            name = f'{item} "{theme}"'
        else:
            name = f"{theme}'S {item}"
        if rng.random() < 0.015:
            name = name.replace(" ", "  ", 1)
        if name.strip() in seen:
            continue
        seen.add(name.strip())
        names.append(name + " " if rng.random() < 0.09 else name)
    return names


def _stock_codes(rng: random.Random, taken: set[str], n: int) -> list[str]:
    """``n`` new stock codes: mostly 5 digits (``22423``), some with a letter (``85123A``)."""
    codes: list[str] = []
    seen = set(taken)
    families = (10, 15, 16, 17, 20, 35, 37, 46, 47, 48, 51, 71, 72, 79, 82, 84, 85, 90)
    while len(codes) < n:
        if rng.random() < 0.72:
            code = str(rng.randint(20600, 23999))
        else:
            base = rng.choice(families) * 1000 + rng.randint(0, 999)
            suffix = rng.choice(("", "A", "B", "C", "D", "E", "F", "G", "L", "S", "P", "N", "BL", "W"))
            code = f"{base}{suffix}"
        if code in seen:
            continue
        seen.add(code)
        codes.append(code)
    return codes


def _alt_description(rng: random.Random, name: str) -> str:
    """A second description for the same stock code, as the real file has them."""
    swaps = (("WHITE", "CREAM"), ("PINK", "RED"), ("SET OF", "SET/"), (" AND ", " & "), ("HOLDER", "HLDR"))
    form = rng.random()
    if form < 0.3:
        return name.rstrip() if name.endswith(" ") else name + " "
    if form < 0.65:
        for old, new in swaps:
            if old in name:
                return name.replace(old, new, 1)
    if form < 0.8:
        return name.rstrip() + " DESIGN"
    if form < 0.9:
        return name.rstrip().title()
    return name.replace(" ", "  ", 1)


def _build_products(rng: random.Random) -> list[_Product]:
    """Regular products first, then the specials; as many description variants as the target needs."""
    n_regular = N_STOCK_CODES - len(_SPECIALS)
    codes = [c for c, _, _ in _REAL_PRODUCTS]
    names = [d for _, d, _ in _REAL_PRODUCTS]
    bases = [p for _, _, p in _REAL_PRODUCTS]
    taken_names = set(names) | {d for _, d in _SPECIALS} | set(_NEGATIVE_NOTES) | set(_POSITIVE_NOTES)
    extra = n_regular - len(codes)
    codes += _stock_codes(rng, set(codes) | {c for c, _ in _SPECIALS}, extra)
    names += _product_names(rng, taken_names, extra)
    points, point_weights = zip(*_PRICE_POINTS, strict=True)
    bases += rng.choices(points, weights=point_weights, k=extra)
    # A few stock codes share one description (the products dimension must pick per code, not per name).
    pairs = rng.sample(range(len(_REAL_PRODUCTS), n_regular), 2 * _N_SHARED_PAIRS)
    for a, b in zip(pairs[::2], pairs[1::2], strict=True):
        names[b] = names[a]

    products: list[_Product] = []
    for code, name, base in zip(codes, names, bases, strict=True):
        bulk = round(base * rng.choice((0.8, 0.85, 0.87, 0.9)), 2) if base >= 0.3 else base
        late = round(base * 1.1, 2) if rng.random() < 0.25 else base
        products.append(
            _Product(
                code=code,
                description=name,
                base=base,
                bulk=max(bulk, 0.01),
                guest=round(base * 1.95 + 0.01, 2),
                late=late,
                bulk_qty=rng.choice((12, 24, 25, 48, 100)),
            )
        )
    # Second descriptions, as many as the distinct-description target needs.
    distinct = {p.description for p in products} | {d for _, d in _SPECIALS}
    notes = set(_NEGATIVE_NOTES) | set(_POSITIVE_NOTES)
    n_alts = N_DESCRIPTIONS - len(distinct) - len(notes)
    shared = {names[i] for i in pairs}
    alts: dict[int, str] = {}
    for index, alt in _KNOWN_ALTS:
        alts[index] = alt
    used = distinct | notes | set(alts.values())
    candidates = [i for i in range(n_regular) if products[i].description not in shared and i not in alts]
    rng.shuffle(candidates)
    for index in candidates:
        if len(alts) == n_alts:
            break
        alt = _alt_description(rng, products[index].description)
        if alt in used:
            continue
        used.add(alt)
        alts[index] = alt
    if len(alts) != n_alts:
        raise RuntimeError(f"placed {len(alts)} description variants, wanted {n_alts}")  # a bug
    for index, alt in alts.items():
        p = products[index]
        products[index] = _Product(p.code, p.description, p.base, p.bulk, p.guest, p.late, p.bulk_qty, alt)
    for code, name in _SPECIALS:
        products.append(_Product(code, name, 0.0, 0.0, 0.0, 0.0, 1_000_000))
    return products


def _trading_days() -> list[tuple[dt.date, float]]:
    """Days the shop traded (no Saturdays, a Christmas break, bank holidays), each with a weight."""
    days: list[dt.date] = []
    day = _FIRST_DAY
    while day <= _LAST_DAY:
        if day.weekday() != 5 and day not in _CLOSED_DAYS:
            days.append(day)
        day += dt.timedelta(days=1)
    per_month: dict[tuple[int, int], int] = {}
    for day in days:
        per_month[(day.year, day.month)] = per_month.get((day.year, day.month), 0) + 1
    out = []
    for day in days:
        weight = _MONTH_WEIGHTS[(day.year, day.month)] / per_month[(day.year, day.month)]
        if day == _LAST_DAY:
            weight *= 0.35  # the file stops at 12:50
        elif day.weekday() == 6:
            weight *= 0.6
        out.append((day, weight))
    return out


def _minute(day: dt.date, hh: int, mm: int) -> int:
    return (day - _FIRST_DAY).days * 1440 + hh * 60 + mm


# Fixed invoices: (minute, number). Nothing else may be dated inside these windows, so that invoice
# numbers can grow with dates and the anchors keep the numbers they have in the real file.
_ANCHOR_TIMES = {
    536365: _minute(dt.date(2010, 12, 1), 8, 26),
    541431: _minute(dt.date(2011, 1, 18), 10, 1),
    541433: _minute(dt.date(2011, 1, 18), 10, 17),
    556445: _minute(dt.date(2011, 6, 10), 15, 31),
    563185: _minute(dt.date(2011, 8, 12), 14, 50),
    563186: _minute(dt.date(2011, 8, 12), 14, 51),
    563187: _minute(dt.date(2011, 8, 12), 14, 52),
    581483: _minute(dt.date(2011, 12, 9), 9, 15),
    581484: _minute(dt.date(2011, 12, 9), 9, 27),
    581587: _minute(dt.date(2011, 12, 9), 12, 50),
}
_FORBIDDEN = (
    (_ANCHOR_TIMES[541431], _ANCHOR_TIMES[541433]),
    (_ANCHOR_TIMES[556445], _ANCHOR_TIMES[556445]),
    (_ANCHOR_TIMES[563185], _ANCHOR_TIMES[563187]),
    (_ANCHOR_TIMES[581483], _ANCHOR_TIMES[581484]),
)


def _draw_minutes(rng: random.Random, n: int) -> list[int]:
    """``n`` invoice times strictly between the first and the last invoice, outside the anchor windows."""
    days = _trading_days()
    day_list = [d for d, _ in days]
    cum = _cum([w for _, w in days])
    first, last = _ANCHOR_TIMES[536365], _ANCHOR_TIMES[581587]
    hours = [(600, 960) if day.weekday() == 6 else (435, 1200) for day in day_list]
    starts = [_minute(day, 0, 0) for day in day_list]
    out: list[int] = []
    while len(out) < n:
        for d in rng.choices(range(len(day_list)), cum_weights=cum, k=n - len(out)):
            open_, close = hours[d]
            minute = starts[d] + int(rng.triangular(open_, close, 750))
            if first < minute < last and not any(a <= minute <= b for a, b in _FORBIDDEN):
                out.append(minute)
    return out


def _allocate(rng: random.Random, total: int, mins: list[int], sigma: float, cap: int) -> list[int]:
    """Sizes >= ``mins`` (each <= ``cap``) that add up to ``total``, skewed like real invoice sizes."""
    sizes = list(mins)
    remaining = total - sum(sizes)
    if remaining < 0 or total > cap * len(mins) or any(m > cap for m in mins):
        raise RuntimeError(f"cannot allocate {total} over {len(mins)} invoices")  # a bug in the plan
    weights = [rng.lognormvariate(0.0, sigma) for _ in mins]
    while remaining:
        open_ = [i for i, s in enumerate(sizes) if s < cap]
        scale = remaining / sum(weights[i] for i in open_)
        for i in open_:  # the expected share, rounded down ...
            sizes[i] += int(weights[i] * scale)
        left = total - sum(sizes)
        # ... and what rounding left over, drawn with the same weights
        for i in rng.choices(open_, weights=[weights[i] for i in open_], k=left):
            sizes[i] += 1
        sizes = [min(s, cap) for s in sizes]
        remaining = total - sum(sizes)
    return sizes


def _spread(
    rng: random.Random, n: int, invoices: list[_Invoice], weight: Callable[[_Invoice], float]
) -> None:
    """Give ``n`` duplicate lines to ``invoices``, in proportion to ``weight`` (which must be 0 for none)."""
    weights = [weight(inv) for inv in invoices]
    for inv in rng.choices(invoices, weights=weights, k=n):
        inv.n_dups += 1


def _line(product: _Product, quantity: int, price: float | str, description: str | None = None) -> tuple:
    text = product.description if description is None else description
    price_text = price if isinstance(price, str) else _price(price)
    return (f"{product.code},{_csv_field(text)},", str(quantity), price_text)


def _place(rng: random.Random, invoices: list[_Invoice], index: int, line: tuple) -> None:
    """Put a line for product ``index`` on a random invoice of ``invoices`` that does not have it yet."""
    while True:
        inv = invoices[rng.randrange(len(invoices))]
        if index not in inv.exclude:
            inv.exclude.add(index)
            inv.fixed.append(line)
            return


@functools.lru_cache(maxsize=4)
def _plan(seed: int) -> _Plan:
    """The whole plan for one copy; it depends on the seed only."""
    rng = random.Random(f"online-retail-plan/{seed}")  # a str seed: -42 and 42 differ, unlike int seeds
    products = _build_products(rng)
    n_regular = N_STOCK_CODES - len(_SPECIALS)
    special = {p.code: i for i, p in enumerate(products) if i >= n_regular}
    country_of: dict[int, str] = {}

    # Customers: known ones first, the rest drawn from the real id range, each with a home country.
    free_ids = [c for c in range(12346, 18288) if c not in _KNOWN_CUSTOMERS]
    ids = list(_KNOWN_CUSTOMERS) + rng.sample(free_ids, N_CUSTOMERS - len(_KNOWN_CUSTOMERS))
    homes: list[str] = []
    for country, count in _CUSTOMER_COUNTRIES:
        count -= sum(1 for c in _KNOWN_CUSTOMERS.values() if c == country)
        homes += [country] * count
    rng.shuffle(homes)
    for customer in ids:
        country_of[customer] = _KNOWN_CUSTOMERS.get(customer) or homes.pop()

    def new(kind: int, customer: int | None = None, country: str = "United Kingdom") -> _Invoice:
        if customer is not None:
            country = country_of[customer]
        return _Invoice(kind, 0, "", 0, customer, country, [], set())

    # Anchors: the real file's first and last invoice, its extreme rows and its bad debt.
    def anchor(kind: int, number: int, customer: int | None, prefix: str = "") -> _Invoice:
        inv = new(kind, customer)
        inv.number, inv.prefix, inv.minute = number, prefix, _ANCHOR_TIMES[number]
        return inv

    first = anchor(_SALE, 536365, 17850)
    for index, qty in _FIRST_INVOICE:
        first.fixed.append(_line(products[index], qty, products[index].base))
        first.exclude.add(index)
    paper = products[_PAPER_CRAFT]
    jar = products[_STORAGE_JAR]
    big_order = anchor(_SALE, 581483, 16446)
    big_order.fixed.append(_line(paper, 80995, 2.08))
    big_cancel = anchor(_CANCEL, 581484, 16446, "C")
    big_cancel.fixed.append(_line(paper, -80995, 2.08))
    jar_order = anchor(_SALE, 541431, 12346)
    jar_order.fixed.append(_line(jar, 74215, 1.04))
    jar_cancel = anchor(_CANCEL, 541433, 12346, "C")
    jar_cancel.fixed.append(_line(jar, -74215, 1.04))
    manual = anchor(_CANCEL, 556445, 15098, "C")
    manual.fixed.append(_line(products[special["M"]], -1, 38970.0))
    bad_debt = products[special["B"]]
    bad_debts = [anchor(_BAD_DEBT, n, None, "A") for n in (563185, 563186, 563187)]
    for inv, price in zip(bad_debts, (-11062.06, -11062.06, 11062.06), strict=True):
        inv.fixed.append(_line(bad_debt, 1, price))
    last = anchor(_SALE, 581587, 12680)
    anchors = [first, big_order, big_cancel, jar_order, jar_cancel, manual, *bad_debts, last]

    # Customer sale invoices: every customer but 12346 buys at least once, a few buy very often.
    buyers = [c for c in ids if c != 12346]
    activity = {c: min(rng.paretovariate(1.3), 60.0) for c in buyers}
    activity[14911] = 230.0  # about 250 invoices, as in the real file
    n_sales = N_SALE_INVOICES - 4  # less the anchors
    owners = buyers + rng.choices(buyers, weights=[activity[c] for c in buyers], k=n_sales - len(buyers))
    rng.shuffle(owners)
    sales = [new(_SALE, c) for c in owners]
    per_customer: dict[int, list[_Invoice]] = {}
    for inv in sales:
        per_customer.setdefault(inv.customer or 0, []).append(inv)
    # A handful of customers also order under a second country.
    foreign = [c for c in buyers if country_of[c] != "United Kingdom" and len(per_customer[c]) >= 2]
    abroad = sorted({country for country, _ in _CUSTOMER_COUNTRIES} - {"United Kingdom"})
    for c in rng.sample(foreign, 8):
        rng.choice(per_customer[c]).country = rng.choice([k for k in abroad if k != country_of[c]])

    cancellers = [c for c in buyers if c != 14096]
    cancel_weights = [len(per_customer[c]) for c in cancellers]
    cancels = [new(_CANCEL, 14096) for _ in range(16)]  # CRUK commission
    cancels += [
        new(_CANCEL, c)
        for c in rng.choices(cancellers, weights=cancel_weights, k=N_CANCEL_INVOICES - 3 - len(cancels))
    ]
    guests = [new(_GUEST, None, country) for country, n in _GUEST_COUNTRIES for _ in range(n)]
    guests += [new(_GUEST) for _ in range(N_GUEST_INVOICES - len(guests))]
    adjusts = [new(_ADJUST) for _ in range(N_ADJUST_INVOICES)]

    all_sales = [*sales, last]
    all_cancels = [*cancels]
    # Fixed lines: every product and every description once, then the special stock codes.
    regular = range(n_regular)
    for index in regular:
        p = products[index]
        if index not in first.exclude and index not in (_PAPER_CRAFT, _STORAGE_JAR):
            _place(rng, sales, index, _line(p, rng.choice((1, 2, 6, 12)), p.base))
        if p.alt is not None:
            _place(rng, sales, index, _line(p, rng.choice((1, 2, 6, 12)), p.base, p.alt))
    for _ in range(ROWS_FREE):
        index = rng.randrange(n_regular)
        _place(rng, sales, index, _line(products[index], rng.choice((1, 2, 4, 6, 12)), "0.0"))

    def specials(pool: list[_Invoice], code: str, n: int, qty: Callable[[], int], price: Callable[[], float]):
        for _ in range(n):
            _place(rng, pool, special[code], _line(products[special[code]], qty(), price()))

    def money(low: float, high: float) -> Callable[[], float]:
        return lambda: round(rng.uniform(low, high), 2)

    abroad_sales = [inv for inv in all_sales if inv.country != "United Kingdom"]
    for inv in abroad_sales:
        if rng.random() < 0.55:
            inv.fixed.append(
                _line(products[special["POST"]], rng.randint(1, 6), rng.choice((18.0, 28.0, 40.0)))
            )
            inv.exclude.add(special["POST"])
    carriage = [inv for inv in sales if inv.country in ("EIRE", "Channel Islands")]
    specials(carriage, "C2", 60, lambda: 1, lambda: 50.0)
    specials(sales, "M", 180, lambda: rng.randint(1, 12), money(0.19, 950.0))
    specials(sales, "m", 1, lambda: 1, lambda: 2.55)
    specials(sales, "BANK CHARGES", 25, lambda: 1, lambda: 15.0)
    specials(sales, "PADS", 3, lambda: 1, lambda: 0.001)
    for inv in guests:
        if rng.random() < 0.45:
            price = round(rng.uniform(10.0, 1600.0), 2)
            inv.fixed.append(_line(products[special["DOT"]], 1, price))
            inv.exclude.add(special["DOT"])
    specials(guests, "M", 40, lambda: 1, money(0.19, 600.0))
    specials(guests, "AMAZONFEE", 2, lambda: 1, money(5000.0, 13541.33))
    for value in (10, 20, 30, 40, 50):
        specials(guests, f"gift_0001_{value}", 4, lambda: 1, lambda v=value: round(v * 0.85, 2))
    for inv in cancels[:16]:
        inv.fixed.append(_line(products[special["CRUK"]], -1, round(rng.uniform(1.6, 52.0), 2)))
        inv.exclude.add(special["CRUK"])
    others = cancels[16:]
    specials(others, "D", 77, lambda: -1, money(0.5, 200.0))
    specials(others, "AMAZONFEE", 30, lambda: -1, money(1000.0, 17836.46))
    specials(others, "S", 60, lambda: -1, money(1.0, 200.0))
    specials(others, "M", 150, lambda: -rng.randint(1, 12), money(0.19, 4000.0))
    specials(others, "POST", 100, lambda: -rng.randint(1, 3), lambda: rng.choice((18.0, 40.0)))
    specials(others, "BANK CHARGES", 12, lambda: -1, lambda: 15.0)

    # Line counts: the fixed lines are part of them, the renderer draws the rest.
    sale_rows = ROWS_SALE - DUPS_SALE - sum(len(i.fixed) for i in (first, big_order, jar_order))
    sizes = _allocate(rng, sale_rows, [max(1, len(i.fixed)) for i in all_sales], 1.0, 540)
    for inv, size in zip(all_sales, sizes, strict=True):
        inv.n_random = size - len(inv.fixed)
    cancel_rows = ROWS_CANCEL - DUPS_CANCEL - 3
    sizes = _allocate(rng, cancel_rows, [max(1, len(i.fixed)) for i in all_cancels], 1.6, 60)
    for inv, size in zip(all_cancels, sizes, strict=True):
        inv.n_random = size - len(inv.fixed)
    guest_rows = ROWS_GUEST - DUPS_GUEST
    sizes = _allocate(rng, guest_rows, [max(1, len(i.fixed)) for i in guests], 1.1, 1100)
    for inv, size in zip(guests, sizes, strict=True):
        inv.n_random = size - len(inv.fixed)
    _spread(rng, DUPS_SALE, sales, lambda inv: inv.n_random)
    _spread(rng, DUPS_CANCEL, cancels, lambda inv: inv.n_random)
    _spread(rng, DUPS_GUEST, guests, lambda inv: inv.n_random)

    # Stock adjustments: every line planned (no description or a note; the sign of the quantity).
    adjust_rows = ROWS_MISSING_DESCRIPTION + ROWS_NOTE
    sizes = _allocate(rng, adjust_rows, [1] * N_ADJUST_INVOICES, 1.2, 12)
    neg_notes = list(_NEGATIVE_NOTES)
    pos_notes = list(_POSITIVE_NOTES)
    # (description, sign): None is no description, "" a note drawn below, else this very note.
    kinds: list[tuple[str | None, int]] = (
        [(None, -1)] * NEGATIVE_MISSING_DESCRIPTION
        + [(None, 1)] * (ROWS_MISSING_DESCRIPTION - NEGATIVE_MISSING_DESCRIPTION)
        + [(note, -1) for note in neg_notes]
        + [("", -1)] * (NEGATIVE_NOTE - len(neg_notes))
        + [(note, 1) for note in pos_notes]
        + [("", 1)] * (ROWS_NOTE - NEGATIVE_NOTE - len(pos_notes))
    )
    rng.shuffle(kinds)
    adjust_qty, adjust_weights = zip(*_ADJUST_QTY, strict=True)
    rows = iter(kinds)
    for inv, size in zip(adjusts, sizes, strict=True):
        for _ in range(size):
            what, sign = next(rows)
            index = rng.randrange(n_regular)
            while index in inv.exclude:
                index = rng.randrange(n_regular)
            inv.exclude.add(index)
            qty = sign * rng.choices(adjust_qty, weights=adjust_weights)[0]
            code = products[index].code
            if what is None:
                inv.fixed.append((f"{code},,", str(qty), "0.0"))
                continue
            if not what:
                what = rng.choice(neg_notes if sign < 0 else pos_notes)
            inv.fixed.append((f"{code},{_csv_field(what)},", str(qty), "0.0"))

    # Dates, then invoice numbers that grow with them and keep the anchors' real numbers.
    rest = [*sales, *cancels, *guests, *adjusts]
    for inv, minute in zip(rest, _draw_minutes(rng, len(rest)), strict=True):
        inv.minute = minute
    for inv in rest:
        if inv.kind == _CANCEL:
            inv.prefix = "C"
    ordered = sorted(rest, key=lambda inv: inv.minute)
    bounds = sorted(anchors, key=lambda inv: inv.number)
    position = 0
    for low, high in itertools.pairwise(bounds):
        segment = []
        while position < len(ordered) and ordered[position].minute < high.minute:
            segment.append(ordered[position])
            position += 1
        if len(segment) > high.number - low.number - 1:
            raise RuntimeError(f"no room for {len(segment)} invoices between {low.number} and {high.number}")
        numbers = sorted(rng.sample(range(low.number + 1, high.number), len(segment)))
        for inv, number in zip(segment, numbers, strict=True):
            inv.number = number
    if position != len(ordered):
        raise RuntimeError("invoices dated after the last invoice")  # a bug in _draw_minutes

    invoices = sorted([*anchors, *rest], key=lambda inv: inv.number)
    weights = [1.0 / (rank + 30) ** 0.8 for rank in range(n_regular)]
    order = list(range(1, n_regular))
    rng.shuffle(order)
    ranked = [0, *order]  # the white hanging heart is the best seller, as in the real file
    popularity = [0.0] * n_regular
    for rank, index in enumerate(ranked):
        popularity[index] = weights[rank]
    return _Plan(tuple(products), tuple(_cum(popularity)), tuple(invoices))


# ---------------------------------------------------------------------------------------------------------
# Rendering: one copy of the plan, invoice by invoice.
# ---------------------------------------------------------------------------------------------------------


def _timestamp(minute: int) -> str:
    moment = dt.datetime(_FIRST_DAY.year, _FIRST_DAY.month, _FIRST_DAY.day) + dt.timedelta(minutes=minute)
    return moment.strftime("%Y-%m-%d %H:%M:00")


def _render(plan: _Plan, seed: int, copy: int) -> Iterator[tuple[int, str]]:
    rng = random.Random(f"online-retail/{seed}/{copy}")
    choices, random_, randrange, shuffle = rng.choices, rng.random, rng.randrange, rng.shuffle
    products = plan.products
    n_regular = len(plan.weights_cum)
    pool = range(n_regular)
    cum = plan.weights_cum
    # Per product: (code+description, code+variant description, base, bulk, guest, late price, bulk qty).
    rows = [
        (
            f"{p.code},{_csv_field(p.description)},",
            f"{p.code},{_csv_field(p.alt)}," if p.alt else None,
            _price(p.base),
            _price(p.bulk),
            _price(p.guest),
            _price(p.late),
            p.bulk_qty,
        )
        for p in products[:n_regular]
    ]
    tables = {}
    for kind, table, sign in ((_SALE, _SALE_QTY, 1), (_GUEST, _GUEST_QTY, 1), (_CANCEL, _CANCEL_QTY, -1)):
        values = [q for q, _ in table]
        tables[kind] = ([str(sign * q) for q in values], values, _cum([w for _, w in table]))
    late_from = (_PRICE_RISE - _FIRST_DAY).days * 1440
    invoice_offset = copy * INVOICE_STRIDE
    customer_offset = copy * CUSTOMER_STRIDE

    for inv in plan.invoices:
        head = f"{inv.prefix}{inv.number + invoice_offset},"
        mid = f",{_timestamp(inv.minute)},"
        customer = "" if inv.customer is None else f"{inv.customer + customer_offset}.0"
        tail = f",{customer},{inv.country}\n"
        lines = [f"{head}{cd}{q}{mid}{p}{tail}" for cd, q, p in inv.fixed]
        n = inv.n_random
        if n:
            picked: list[int] = []
            seen = set(inv.exclude)
            for _ in range(4):
                need = n - len(picked)
                for index in choices(pool, cum_weights=cum, k=need + (need >> 2) + 2):
                    if index not in seen:
                        seen.add(index)
                        picked.append(index)
                        if len(picked) == n:
                            break
                if len(picked) == n:
                    break
            else:  # a big invoice of rare products: top up uniformly
                rest = [i for i in pool if i not in seen]
                picked += rng.sample(rest, n - len(picked))
            q_text, q_value, q_cum = tables[inv.kind]
            qs = choices(range(len(q_text)), cum_weights=q_cum, k=n)
            kind = inv.kind
            late = inv.minute >= late_from
            drawn = []
            for index, qi in zip(picked, qs, strict=True):
                cd, alt, base, bulk, guest, late_price, bulk_qty = rows[index]
                if alt is not None and random_() < 0.05:
                    cd = alt
                if kind == _GUEST:
                    price = guest
                elif late:
                    price = late_price
                elif kind == _SALE and q_value[qi] >= bulk_qty:
                    price = bulk
                else:
                    price = base
                drawn.append(f"{head}{cd}{q_text[qi]}{mid}{price}{tail}")
            if inv.n_dups:
                lines += drawn
                lines += [drawn[randrange(n)] for _ in range(inv.n_dups)]
                shuffle(lines)
            elif inv.fixed:
                lines += drawn
                shuffle(lines)
            else:
                lines = drawn
        yield len(lines), "".join(lines)


def _check(seed: object, scale: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError("seed must be a whole number", f"seed={seed!r}", "pass e.g. --seed 42")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise InputError("scale must be a positive whole number", f"scale={scale!r}", "use 1 or more")


def iter_invoices(*, seed: int = 42, scale: int = 1) -> Iterator[tuple[int, str]]:
    """The data rows of the synthetic CSV, one invoice at a time: ``(row count, CSV text)``, no header."""
    _check(seed, scale)
    plan = _plan(seed)
    return itertools.chain.from_iterable(_render(plan, seed, copy) for copy in range(scale))


def write_csv(
    out: BinaryIO, *, seed: int = 42, scale: int = 1, progress: Callable[[int], None] | None = None
) -> int:
    """Stream the synthetic CSV (header + scale*541,909 data rows) to `out` as UTF-8 bytes.

    Returns the data row count. `progress(rows_written_so_far)` is called every ~100k rows (once those
    rows were handed to ``out``) and once at the end with the total.
    """
    invoices = iter_invoices(seed=seed, scale=scale)  # checks the arguments before a byte is written
    out.write(HEADER.encode("utf-8"))
    written = 0
    pending: list[str] = []
    pending_rows = 0
    next_report = PROGRESS_EVERY
    for rows, text in invoices:
        pending.append(text)
        pending_rows += rows
        if pending_rows >= 8192:
            out.write("".join(pending).encode("utf-8"))
            written += pending_rows
            pending, pending_rows = [], 0
            if progress is not None and written >= next_report:
                progress(written)
                next_report = (written // PROGRESS_EVERY + 1) * PROGRESS_EVERY
    if pending:
        out.write("".join(pending).encode("utf-8"))
        written += pending_rows
    if progress is not None:
        progress(written)
    return written


@dataclass(frozen=True)
class SyntheticSource:
    """The ingest source for the synthetic twin (``--source synthetic --seed S --scale N``)."""

    seed: int = 42
    scale: int = 1
    name: str = "synthetic"

    def describe(self) -> str:
        return f"synthetic Online Retail twin (seed {self.seed}, scale {self.scale})"

    def expected_bytes(self) -> int | None:
        return BASE_BYTES * self.scale

    def produce(self, dest: Path, progress: Progress | None = None) -> Produced:
        with open(dest, "wb", buffering=1 << 20) as out:
            rows = write_csv(out, seed=self.seed, scale=self.scale, progress=progress)
        return Produced(rows=rows, details={"seed": self.seed, "scale": self.scale, "base_rows": BASE_ROWS})
