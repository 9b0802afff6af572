"""A processed lake made by hand: ``processed-data/`` partitions in the TSV dialect plus their run reports.

The warehouse tests use it instead of running the transform: it writes exactly what the transform promises
(retail_core/dialect.py, retail_core/layout.py), so a dbt build can be checked against known rows.
``synthetic_sales`` makes a larger, realistically skewed batch for timing and for the guest-key spread.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from decimal import Decimal
from pathlib import Path

from retail_core import dialect, layout
from retail_core.lake import LocalLake


@dataclass(frozen=True)
class Line:
    """One clean sales line as the transform writes it (without ingest_date, which the batch gives)."""

    invoice_no: str
    stock_code: str
    description: str | None
    quantity: int
    invoice_date: dt.datetime
    unit_price: Decimal
    customer_id: int | None
    country: str

    @property
    def line_id(self) -> str:
        """md5 of the raw row, as the transform computes the line key: the same row gives the same key."""
        raw = "\x1f".join("" if v is None else str(v) for v in astuple(self))
        return hashlib.md5(raw.encode("utf-8")).hexdigest()

    @property
    def total_sales(self) -> Decimal:
        return self.quantity * self.unit_price


def _field(value: object) -> str:
    if value is None:
        return dialect.NULL_VALUE
    if isinstance(value, dt.datetime):
        return value.strftime(dialect.TIMESTAMP_FORMAT_PY)
    if isinstance(value, Decimal):
        return format(value, "f")
    return dialect.sanitize(str(value))


def write_batch(
    lake: Path,
    ingest_date: dt.date,
    lines: Sequence[Line],
    *,
    parts: int = 2,
    report: dict[str, object] | None = None,
    returns: Sequence[Line] | None = None,
) -> dict[str, object]:
    """Write one batch as the transform publishes it (part files in a staging folder, ``_SUCCESS``, then the
    lake's own promote, which writes the partition manifest) and its run report; return the report written.

    ``report`` overrides fields of the report, e.g. to tamper with ``rows_clean``. ``returns``: the batch's return
    lines (negative quantities), published in returns/ as the transform does; None writes a batch as the transform
    did before returns were kept apart (no returns/ partition, no rows_returns or returns_total_sales in the report).
    """
    generation = uuid.uuid4().hex[:12]
    if returns is not None:
        _publish(lake, layout.RETURNS_ZONE, ingest_date, generation, returns, parts=1)
    _publish(lake, layout.PROCESSED_ZONE, ingest_date, generation, lines, parts=parts)

    written = {
        "ingest_date": ingest_date.isoformat(),
        "status": "succeeded",
        "rows_in": len(lines) + len(returns or ()),
        "rows_clean": len(lines),
        "rows_quarantined": 0,
        "quarantined_by_reason": {},
        "total_sales": format(sum((line.total_sales for line in lines), Decimal("0.000")), "f"),
        # Each write is a new transform run, as the load tells batches apart by their run id.
        "run_id": f"fake-{uuid.uuid4().hex[:12]}",
        "generation": generation,
    }
    if returns is not None:
        written["rows_returns"] = len(returns)
        written["returns_total_sales"] = format(
            sum((line.total_sales for line in returns), Decimal("0.000")), "f"
        )
    written.update(report or {})
    report_path = lake / layout.run_report_key(ingest_date)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(written, indent=2), encoding="utf-8")
    return written


def _publish(
    lake: Path, zone: str, ingest_date: dt.date, generation: str, lines: Sequence[Line], *, parts: int
) -> None:
    staging = layout.staging_prefix(zone, ingest_date, generation)
    folder = lake / staging
    folder.mkdir(parents=True, exist_ok=True)
    header = dialect.SEPARATOR.join(dialect.PROCESSED_COLUMNS)
    chunks = [lines[i::parts] for i in range(parts)]
    for number, chunk in enumerate(chunks):
        rows = [
            dialect.SEPARATOR.join(
                _field(v)
                for v in (
                    line.line_id,
                    line.invoice_no,
                    line.stock_code,
                    line.description,
                    line.quantity,
                    line.invoice_date,
                    line.unit_price,
                    line.customer_id,
                    line.country,
                    line.total_sales,
                    ingest_date.isoformat(),
                )
            )
            for line in chunk
        ]
        text = dialect.LINE_TERMINATOR.join([header, *rows]) + dialect.LINE_TERMINATOR
        (folder / f"part-{number:05d}{dialect.FILE_SUFFIX}").write_text(text, encoding=dialect.ENCODING)
    (folder / layout.SUCCESS_NAME).write_text("", encoding="utf-8")
    LocalLake(lake).promote(staging, layout.zone_prefix(zone, ingest_date), generation=generation)


COUNTRIES = ("United Kingdom", "Germany", "France", "EIRE", "Spain", "Netherlands", "Belgium", "Switzerland")
NON_PRODUCT_CODES = ("POST", "M", "DOT", "BANK CHARGES", "C2")


def synthetic_sales(
    rows: int, *, seed: int = 7, start: dt.datetime = dt.datetime(2010, 12, 1, 8), days: int = 373
) -> list[Line]:
    """About ``rows`` lines shaped like the Online Retail data: ~25% guest lines grouped in guest invoices,
    ~4,300 customers with a skewed number of lines (the largest near 1.5%), several descriptions and prices per
    stock code, and a few non-product codes."""
    rng = random.Random(seed)
    customers = [12346 + i for i in range(4300)]
    weights = [1.0 / (rank + 1) ** 0.6 for rank in range(len(customers))]
    home = {c: COUNTRIES[0] if rng.random() < 0.9 else rng.choice(COUNTRIES) for c in customers}
    codes = [f"{20000 + i}" for i in range(3900)] + list(NON_PRODUCT_CODES)
    lines: list[Line] = []
    seen: set[str] = set()  # the transform quarantines exact duplicates: every line here is unique
    invoice = 536365
    while len(lines) < rows:
        invoice += 1
        guest = rng.random() < 0.11  # guest invoices are larger: ~25% of the lines
        size = min(int(rng.paretovariate(1.6) * (30 if guest else 12)), 1100)
        customer = None if guest else rng.choices(customers, weights)[0]
        country = rng.choice(COUNTRIES) if guest else home[customer]
        when = start + dt.timedelta(minutes=int(rng.random() * days * 24 * 60))
        for _ in range(size):
            code = rng.choice(codes)
            variant = rng.random()
            line = Line(
                invoice_no=str(invoice),
                stock_code=code,
                description=f"ITEM {code}" if variant < 0.9 else f"ITEM {code} (NEW)",
                quantity=rng.randint(1, 24),
                invoice_date=when,
                unit_price=Decimal("2.55") if variant < 0.7 else Decimal("2.95"),
                customer_id=customer,
                country=country,
            )
            if line.line_id not in seen:
                seen.add(line.line_id)
                lines.append(line)
    return lines[:rows]
