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

It also spends money like the real shop (``retail-pipeline reconcile-published``): the 397,924 rows with
Quantity > 0 and a CustomerID (exact), 4,339 customers and 3,665 stock codes among them (exact), their revenue
(£8,911,407.90) and its 13 months, the United Kingdom's 82.01% of it, and 9,025 / 8,326 / 7,226 clean rows
from Germany / France / EIRE, each to well within the published tolerance (money lands within about 0.1%,
the row counts within a free line or two). The biggest customers are the real ones: 14646 (Netherlands),
18102 and 17450, with about their £280k, £260k and £195k; then 16446, whose 80,995 paper crafts (cancelled
the same morning) are, like 12346's 74,215 storage jars, in that revenue and in their month.

How: a *plan* drawn from a ``random.Random`` seeded with the seed fixes every invoice (number, kind,
date, customer, country, how many lines, how many duplicated lines, a budget for the lines it does not fix)
and every line a figure depends on (price-0 lines, notes, special stock codes, one line per product and per
description so that the distinct counts land). A *renderer* then fills the remaining lines (which product,
quantity, price tier, description variant) from a second RNG; nothing it draws can move a row figure. A
customer sale's quantities are packs of each product (a pack costs about £15), scaled alike so that the
lines add up to the invoice's budget and rounded to quantities the real file uses; what the rounding and
bulk prices miss goes to the group's next invoice. The budgets are log-normal weights (per customer and per
invoice) fitted to the published money by month and by the UK / abroad / each big spender. Invoices are
rendered and written one at a time.

The dirt, by row category (scale 1):

* 397,924 customer sale rows in 18,532 invoices, 5,192 of them exact duplicates of a line in the same
  invoice and 40 with UnitPrice 0.0 (free lines); special codes POST, C2, M, m, BANK CHARGES, PADS
  (0.001) among them; some lines carry a description variant of their stock code. 394 of the generated
  products (the least popular) are never sold to a customer.
* 9,288 cancellation rows (``C`` + 6 digits, Quantity < 0, UnitPrice > 0) in 3,836 invoices: 8,905 rows
  with a customer (33 duplicates; 33 customers never buy, they only return), 383 in 182 invoices
  without; special codes D, CRUK, AMAZONFEE, S, M, POST, BANK CHARGES among them.
* 132,219 guest sale rows (no customer) in 1,629 invoices, 43 duplicates; DOT, gift vouchers, M.
* 2,475 stock adjustments (no customer, UnitPrice 0.0) in 1,900 invoices: 1,454 without Description,
  1,021 with a note ('damaged', '?', 'found', ...); 1,336 of them have Quantity < 0.
* 3 'Adjust bad debt' rows (StockCode B, invoices A563185..A563187, no customer).
* A customer's invoices share the customer's country, except 8 customers who also buy under a second
  country. Invoice numbers grow with the invoice date.

Scale N writes N copies of the plan, one after the other. Copy k (0-based) adds k x 1,000,000 to every
invoice number (so only copy 0 has 6-digit numbers) and k x 10,000 to every customer id; the random
lines are drawn afresh for each copy. What scales by exactly N: rows and every row count above,
invoices, customers, duplicates, clean rows; the revenue (each month, each country) by N to within the
rounding. What stays: stock codes, descriptions, countries, prices
per product, the date range (each copy repeats the same invoice dates), the quantity and price ranges.
Memory does not grow with the scale: only the plan (25,900 invoices) is held.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
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
BASE_BYTES = 45_693_931  # the scale-1 file at seed 42; other seeds differ by well under 1%
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
ROWS_CANCEL_GUEST = 383  # cancellation rows without a CustomerID: 9,288 - 8,905
N_GUEST_CANCEL_INVOICES = 182  # the C invoices without a customer: 3,836 - 3,654
# Duplicates in cancellations with a customer: the 5,225 duplicates with a customer less the 5,192 below.
DUPS_CANCEL = 33
ROWS_MISSING_DESCRIPTION = 1_454
NEGATIVE_MISSING_DESCRIPTION = 600
ROWS_NOTE = 1_021
NEGATIVE_NOTE = 736  # with the 600 above: the 1,336 negative quantities outside cancellations
ROWS_FREE = 40  # customer rows with UnitPrice 0.0
DUPS_SALE = 5_192  # 397,924 sale rows - 40 free - 392,692 clean
DUPS_GUEST = 43  # 5,268 - 5,225 duplicates without a customer
ROWS_SALE = BASE_ROWS - ROWS_MISSING_CUSTOMER - (ROWS_CANCEL - ROWS_CANCEL_GUEST)  # 397,924
ROWS_GUEST = (
    ROWS_MISSING_CUSTOMER - N_BAD_DEBT_INVOICES - ROWS_MISSING_DESCRIPTION - ROWS_NOTE - ROWS_CANCEL_GUEST
)

N_STOCK_CODES = 4_070
N_DESCRIPTIONS = 4_223
N_CUSTOMERS = 4_372
N_CANCEL_ONLY_CUSTOMERS = 33  # customers who only return things: 4,372 - 4,339 who buy
# Stock codes on a customer's sale line; the rest only reach guests or the stock book.
N_SALE_STOCK_CODES = 3_665

# ---------------------------------------------------------------------------------------------------------
# The money: the published revenue of the sale rows (Quantity > 0 and a CustomerID), per month of invoice date,
# the United Kingdom's share of it and the three biggest customers. (retail_pipeline/bench/published.py holds
# the same figures to judge a file by; ingestion sits below it and cannot import it.)
# ---------------------------------------------------------------------------------------------------------
MONTH_REVENUE = {
    (2010, 12): 572_713.89,
    (2011, 1): 569_445.04,
    (2011, 2): 447_137.35,
    (2011, 3): 595_500.76,
    (2011, 4): 469_200.36,
    (2011, 5): 678_594.56,
    (2011, 6): 661_213.69,
    (2011, 7): 600_091.01,
    (2011, 8): 645_343.90,
    (2011, 9): 952_838.38,
    (2011, 10): 1_039_318.79,
    (2011, 11): 1_161_817.38,
    (2011, 12): 518_192.79,
}
UK_REVENUE_SHARE = 0.8201
# id -> (home country, revenue, activity: how many sale invoices, on the scale of the Pareto draws below)
_BIG_SPENDERS = {
    14646: ("Netherlands", 280_206.02, 70.0),
    18102: ("United Kingdom", 259_657.30, 57.0),
    17450: ("United Kingdom", 194_550.79, 44.0),
}
# Clean rows (distinct, UnitPrice > 0) of the countries whose count is published; their sale rows are planned
# to these counts (the duplicates are on top, and only a free line or so falls in each).
_COUNTRY_ROWS = {"Germany": 9_025, "France": 8_326, "EIRE": 7_226}

_SALE, _GUEST, _CANCEL, _ADJUST, _BAD_DEBT = range(5)

# The literal tables, from package data (synthetic_tables.toml: the real file's published figures).
_TABLES = tomllib.loads(
    resources.files("ingestion.sources").joinpath("synthetic_tables.toml").read_text("utf-8")
)
_CUSTOMER_COUNTRIES = tuple(tuple(row) for row in _TABLES["customer_countries"])
_GUEST_COUNTRIES = tuple(tuple(row) for row in _TABLES["guest_countries"])
_KNOWN_CUSTOMERS = {int(k): v for k, v in _TABLES["known_customers"].items()}
_KNOWN_CUSTOMERS |= {c: home for c, (home, _, _) in _BIG_SPENDERS.items()}
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
_CUSTOMER_SPECIALS = ("POST", "C2", "M", "m", "BANK CHARGES", "PADS")  # special codes customers pay for

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
    pack: int = 1  # the quantity a customer's line is a multiple of, before the invoice's budget scales it


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
    budget: float = 0.0  # what the drawn lines of a customer sale (duplicates included) are to add up to


@dataclass(frozen=True)
class _Plan:
    products: tuple[_Product, ...]
    weights_cum: tuple[float, ...]  # every regular product, for guests and the stock book
    sale_weights_cum: tuple[float, ...]  # the same, less the products no customer buys
    invoices: tuple[_Invoice, ...]


# Quantities as the real file has them: a drawn quantity is rounded to the nearest of these.
_NICE_QUANTITIES = (
    1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 16, 18, 20, 24, 25, 30, 32, 36, 40, 48, 50, 60, 64, 72, 80, 96, 100, 120,
    144, 150, 160, 192, 200, 240, 250, 288, 300, 360, 384, 400, 432, 480, 500, 576, 600, 640, 720, 800, 864,
    960, 1000, 1200, 1440, 1500, 1728, 2000, 2400, 2880, 3000, 3600, 4000, 4320, 4800,
)  # fmt: skip
_NICE_MIDPOINTS = tuple((a + b) / 2 for a, b in itertools.pairwise(_NICE_QUANTITIES))
_MAX_RANDOM_QUANTITY = 12_540  # about the real file's largest quantity after the 80,995 / 74,215 blunders
# Multiples of a product's pack on a customer's line, before the budget scales them: most lines are one pack.
_PACK_MULTIPLES = (
    (1, 46.0),
    (2, 22.0),
    (3, 8.0),
    (4, 9.0),
    (5, 2.0),
    (6, 4.0),
    (8, 2.0),
    (10, 3.0),
    (12, 1.5),
)
_CASE_VALUE = 15.0  # £: a pack costs about this much (12 x 1.25, 6 x 2.55, 2 x 7.65), as in the real file


def _nice(quantity: float) -> int:
    """``quantity`` rounded to a quantity the real file uses (1 at least, at most _MAX_RANDOM_QUANTITY)."""
    if quantity >= _NICE_QUANTITIES[-1]:
        return min(round(quantity / 100.0) * 100, _MAX_RANDOM_QUANTITY)
    return _NICE_QUANTITIES[bisect.bisect(_NICE_MIDPOINTS, quantity)]


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
        pack = _nice(_CASE_VALUE * rng.lognormvariate(0.0, 0.4) / base)
        products.append(
            _Product(
                code=code,
                description=name,
                base=base,
                bulk=max(bulk, 0.01),
                guest=round(base * 1.95 + 0.01, 2),
                late=late,
                bulk_qty=rng.choice((12, 24, 25, 48, 100)),
                pack=pack,
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
        products[index] = dataclasses.replace(products[index], alt=alt)
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


def _month(minute: int) -> tuple[int, int]:
    day = _FIRST_DAY + dt.timedelta(days=minute // 1440)
    return day.year, day.month


def _plan_budgets(rng: random.Random, invoices: list[_Invoice]) -> None:
    """Give each customer sale invoice a budget for its drawn lines, so that the money lands on the published figures.

    An invoice's weight is its drawn lines (duplicates included) times its customer's spending habit times a draw of
    its own, both log-normal and narrow (sigma 0.6 and 0.3: wider, and most lines would be one unit where the real
    file's median line is 6 units for about £12); the heavy tail is in the invoice sizes, the customers' activity,
    the packs per line and the big spenders. The budgets
    are the weights scaled to two margins at once by iterative proportional fitting: each month's revenue, and the
    revenue of the United Kingdom, of the rest of the world and of each big spender; less, in each, what the fixed
    lines (the extreme orders, postage, manual lines, ...) bring in already.
    """
    total = sum(MONTH_REVENUE.values())
    month_target = dict(MONTH_REVENUE)
    group_target: dict[object, float] = {
        "uk": UK_REVENUE_SHARE * total,
        "abroad": (1 - UK_REVENUE_SHARE) * total,
    }
    for customer, (home, revenue, _) in _BIG_SPENDERS.items():
        group_target[customer] = revenue
        group_target["uk" if home == "United Kingdom" else "abroad"] -= revenue
    habit: dict[int | None, float] = {}
    cells: list[tuple[_Invoice, tuple[int, int], object, float]] = []
    for inv in invoices:
        if inv.customer in _BIG_SPENDERS:
            group: object = inv.customer
        else:
            group = "uk" if inv.country == "United Kingdom" else "abroad"
        month = _month(inv.minute)
        fixed = sum(int(q) * float(p) for _, q, p in inv.fixed)
        month_target[month] -= fixed
        group_target[group] -= fixed
        if inv.customer not in habit:
            habit[inv.customer] = rng.lognormvariate(0.0, 0.6)
        weight = (inv.n_random + inv.n_dups) * habit[inv.customer] * rng.lognormvariate(0.0, 0.3)
        if weight:
            cells.append((inv, month, group, weight))
    if min(month_target.values()) <= 0 or min(group_target.values()) <= 0:
        raise RuntimeError("the fixed lines spend more than the published revenue")  # a bug in the plan
    grid: dict[tuple[tuple[int, int], object], float] = {}
    for _, month, group, weight in cells:
        grid[month, group] = grid.get((month, group), 0.0) + weight
    month_scale = dict.fromkeys(month_target, 1.0)
    group_scale = dict.fromkeys(group_target, 1.0)
    for _ in range(200):
        by_month = dict.fromkeys(month_target, 0.0)
        for (month, group), weight in grid.items():
            by_month[month] += weight * group_scale[group]
        month_scale = {m: month_target[m] / by_month[m] for m in month_target}
        by_group = dict.fromkeys(group_target, 0.0)
        for (month, group), weight in grid.items():
            by_group[group] += weight * month_scale[month]
        group_scale = {g: group_target[g] / by_group[g] for g in group_target}
    for inv, month, group, weight in cells:
        inv.budget = weight * month_scale[month] * group_scale[group]


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

    # Customer sale invoices: every customer but 12346 and a few who only return things buys at least once, a
    # few buy very often.
    cancel_only = set(rng.sample([c for c in ids if c not in _KNOWN_CUSTOMERS], N_CANCEL_ONLY_CUSTOMERS))
    buyers = [c for c in ids if c != 12346 and c not in cancel_only]
    activity = {c: min(rng.paretovariate(1.3), 60.0) for c in buyers}
    activity[14911] = 230.0  # about 250 invoices, as in the real file
    for c, (_, _, invoices) in _BIG_SPENDERS.items():
        activity[c] = invoices
    n_sales = N_SALE_INVOICES - 4  # less the anchors
    owners = buyers + rng.choices(buyers, weights=[activity[c] for c in buyers], k=n_sales - len(buyers))
    rng.shuffle(owners)
    sales = [new(_SALE, c) for c in owners]
    per_customer: dict[int, list[_Invoice]] = {}
    for inv in sales:
        per_customer.setdefault(inv.customer or 0, []).append(inv)
    # A handful of customers also order under a second country.
    foreign = [
        c
        for c in buyers
        if country_of[c] != "United Kingdom" and len(per_customer[c]) >= 2 and c not in _BIG_SPENDERS
    ]
    abroad = sorted({country for country, _ in _CUSTOMER_COUNTRIES} - {"United Kingdom"})
    for c in rng.sample(foreign, 8):
        rng.choice(per_customer[c]).country = rng.choice([k for k in abroad if k != country_of[c]])

    cancellers = [c for c in buyers if c != 14096]
    cancel_weights = [len(per_customer[c]) for c in cancellers]
    cancels = [new(_CANCEL, 14096) for _ in range(16)]  # CRUK commission
    cancels += [new(_CANCEL, c) for c in sorted(cancel_only)]
    cancels += [
        new(_CANCEL, c)
        for c in rng.choices(cancellers, weights=cancel_weights, k=N_CANCEL_INVOICES - 3 - len(cancels))
    ]
    # Some returns reach the shop without a customer (the real file's 383 cancellation rows without an id).
    guest_cancels = rng.sample(cancels[16 + N_CANCEL_ONLY_CUSTOMERS :], N_GUEST_CANCEL_INVOICES)
    for inv in guest_cancels:
        inv.customer, inv.country = None, "United Kingdom"
    customer_cancels = [inv for inv in cancels if inv.customer is not None]
    guests = [new(_GUEST, None, country) for country, n in _GUEST_COUNTRIES for _ in range(n)]
    guests += [new(_GUEST) for _ in range(N_GUEST_INVOICES - len(guests))]
    adjusts = [new(_ADJUST) for _ in range(N_ADJUST_INVOICES)]

    all_sales = [*sales, last]

    # Popularity: a product's rank decides how often the renderer draws it. The least popular generated products
    # are never sold to a customer (guests and the stock book only), as many as leave N_SALE_STOCK_CODES codes on
    # customers' sale lines (the six special codes customers pay for among them).
    weights = [1.0 / (rank + 30) ** 0.8 for rank in range(n_regular)]
    order = list(range(1, n_regular))
    rng.shuffle(order)
    ranked = [0, *order]  # the white hanging heart is the best seller, as in the real file
    popularity = [0.0] * n_regular
    for rank, index in enumerate(ranked):
        popularity[index] = weights[rank]
    n_guest_only = n_regular - (N_SALE_STOCK_CODES - len(_CUSTOMER_SPECIALS))
    guest_only = set([i for i in reversed(ranked) if i >= len(_REAL_PRODUCTS)][:n_guest_only])
    sale_popularity = [0.0 if i in guest_only else w for i, w in enumerate(popularity)]
    sale_pool = [i for i in range(n_regular) if i not in guest_only]

    # Fixed lines: every product and every description once, then the special stock codes.
    for index in range(n_regular):
        p = products[index]
        pool, price = (guests, p.guest) if index in guest_only else (sales, p.base)
        if index not in first.exclude and index not in (_PAPER_CRAFT, _STORAGE_JAR):
            _place(rng, pool, index, _line(p, rng.choice((1, 2, 6, 12)), price))
        if p.alt is not None:
            _place(rng, pool, index, _line(p, rng.choice((1, 2, 6, 12)), price, p.alt))
    for _ in range(ROWS_FREE):
        index = rng.choice(sale_pool)
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
    # Manual lines are mostly small corrections, a few up to £950.
    specials(
        sales, "M", 180, lambda: 1, lambda: round(rng.uniform(0.19, 15.0 if rng.random() < 0.8 else 950.0), 2)
    )
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

    # Line counts: the fixed lines are part of them, the renderer draws the rest. The countries whose clean rows
    # are published get exactly those rows (less the odd free line), the rest of the customers' sales the rest.
    def sizes_for(invoices: list[_Invoice], total: int, sigma: float, cap: int) -> None:
        sizes = _allocate(rng, total, [max(1, len(i.fixed)) for i in invoices], sigma, cap)
        for inv, size in zip(invoices, sizes, strict=True):
            inv.n_random = size - len(inv.fixed)

    sale_rows = ROWS_SALE - DUPS_SALE - sum(len(i.fixed) for i in (first, big_order, jar_order))
    for country, rows in _COUNTRY_ROWS.items():
        sizes_for([inv for inv in all_sales if inv.country == country], rows, 1.0, 540)
        sale_rows -= rows
    sizes_for([inv for inv in all_sales if inv.country not in _COUNTRY_ROWS], sale_rows, 1.0, 540)
    cancel_rows = ROWS_CANCEL - ROWS_CANCEL_GUEST - DUPS_CANCEL - 3
    sizes_for(customer_cancels, cancel_rows, 1.6, 60)
    sizes_for(guest_cancels, ROWS_CANCEL_GUEST, 1.0, 12)
    sizes_for(guests, ROWS_GUEST - DUPS_GUEST, 1.1, 1100)
    _spread(rng, DUPS_SALE, sales, lambda inv: inv.n_random)
    _spread(rng, DUPS_CANCEL, customer_cancels, lambda inv: inv.n_random)
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
    _plan_budgets(rng, [first, big_order, jar_order, *all_sales])
    return _Plan(tuple(products), tuple(_cum(popularity)), tuple(_cum(sale_popularity)), tuple(invoices))


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
    everything = range(n_regular)
    bought = [
        i for i in everything if plan.sale_weights_cum[i] > (plan.sale_weights_cum[i - 1] if i else 0.0)
    ]
    # Per product: (code+description, code+variant description, base, bulk, guest, late price, bulk qty, and the
    # base, bulk and late prices as numbers, pack).
    rows = [
        (
            f"{p.code},{_csv_field(p.description)},",
            f"{p.code},{_csv_field(p.alt)}," if p.alt else None,
            _price(p.base),
            _price(p.bulk),
            _price(p.guest),
            _price(p.late),
            p.bulk_qty,
            p.base,
            p.bulk,
            p.late,
            p.pack,
        )
        for p in products[:n_regular]
    ]
    base_values = [p.pack * p.base for p in products[:n_regular]]  # what one pack costs
    late_values = [p.pack * p.late for p in products[:n_regular]]
    tables = {}
    for kind, table, sign in ((_GUEST, _GUEST_QTY, 1), (_CANCEL, _CANCEL_QTY, -1)):
        values = [q for q, _ in table]
        tables[kind] = ([str(sign * q) for q in values], _cum([w for _, w in table]))
    nice, midpoints, top, find = _NICE_QUANTITIES, _NICE_MIDPOINTS, _NICE_QUANTITIES[-1], bisect.bisect
    multiples = [m for m, _ in _PACK_MULTIPLES]
    multiples_cum = _cum([w for _, w in _PACK_MULTIPLES])
    late_from = (_PRICE_RISE - _FIRST_DAY).days * 1440
    invoice_offset = copy * INVOICE_STRIDE
    customer_offset = copy * CUSTOMER_STRIDE
    # What the lines drawn so far missed their budgets by (rounding to usual quantities, bulk prices): the next line
    # makes it up, in the invoice and then in the next invoice of the same budget group (the UK, abroad, each big
    # spender) in the same month, so that the money of a month and of a group lands on its budget to within the
    # rounding of one line. (Carried into the next month, a big spender's miss could land on a month too small to
    # absorb it.)
    carry: dict[object, float] = {}

    for inv in plan.invoices:
        head = f"{inv.prefix}{inv.number + invoice_offset},"
        mid = f",{_timestamp(inv.minute)},"
        customer = "" if inv.customer is None else f"{inv.customer + customer_offset}.0"
        tail = f",{customer},{inv.country}\n"
        lines = [f"{head}{cd}{q}{mid}{p}{tail}" for cd, q, p in inv.fixed]
        n = inv.n_random
        if n:
            kind = inv.kind
            # Customers buy (and return) only what customers buy; guests anything.
            if inv.customer is None:
                pool, cum = everything, plan.weights_cum
            else:
                pool, cum = bought, plan.sale_weights_cum
            picked: list[int] = []
            seen = set(inv.exclude)
            for _ in range(4):
                need = n - len(picked)
                for index in choices(everything, cum_weights=cum, k=need + (need >> 2) + 2):
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
            late = inv.minute >= late_from
            dups = [randrange(n) for _ in range(inv.n_dups)]
            drawn = []
            if kind == _SALE:
                # Each line is some packs of its product; the invoice's budget then scales all of them alike.
                copies = [1] * n
                for i in dups:
                    copies[i] += 1
                packs = choices(multiples, cum_weights=multiples_cum, k=n)
                values = late_values if late else base_values
                nominal = sum(c * m * values[i] for i, m, c in zip(picked, packs, copies, strict=True))
                if inv.customer in _BIG_SPENDERS:
                    group: object = (inv.customer, _month(inv.minute))
                else:
                    group = (inv.country == "United Kingdom", _month(inv.minute))
                scale = inv.budget / nominal
                miss = carry.get(group, 0.0)
                for index, m, c in zip(picked, packs, copies, strict=True):
                    cd, alt, base, bulk, _, late_price, bulk_qty, base_f, bulk_f, late_f, pack = rows[index]
                    if alt is not None and random_() < 0.05:
                        cd = alt
                    list_price = late_f if late else base_f
                    want = c * m * pack * list_price * scale + miss  # £, for the line and its duplicates
                    x = want / (c * list_price)
                    q = nice[find(midpoints, x)] if x < top else _nice(x)
                    if late:
                        price, price_f = late_price, late_f
                    elif q >= bulk_qty:
                        price, price_f = bulk, bulk_f
                    else:
                        price, price_f = base, base_f
                    miss = want - c * q * price_f
                    drawn.append(f"{head}{cd}{q}{mid}{price}{tail}")
                carry[group] = miss
            else:
                q_text, q_cum = tables[kind]
                qs = choices(range(len(q_text)), cum_weights=q_cum, k=n)
                for index, qi in zip(picked, qs, strict=True):
                    cd, alt, base, _, guest, late_price = rows[index][:6]
                    if alt is not None and random_() < 0.05:
                        cd = alt
                    price = guest if kind == _GUEST else late_price if late else base
                    drawn.append(f"{head}{cd}{q_text[qi]}{mid}{price}{tail}")
            if dups:
                lines += drawn
                lines += [drawn[i] for i in dups]
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
