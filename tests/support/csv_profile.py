"""The published profile of an Online Retail CSV: row counts, dirt counts, distinct counts and ranges.

One streaming pass with the ``csv`` module. Memory grows with the number of distinct rows (a 16-byte
digest each, for the duplicate count) and distinct keys (invoices, customers, ...), not with the file.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

from retail_core.dialect import RAW_COLUMNS
from retail_core.errors import InputError

_INVOICE, _STOCK, _DESCRIPTION, _QUANTITY, _DATE, _PRICE, _CUSTOMER, _COUNTRY = range(8)


def profile_csv(path: Path) -> dict[str, Any]:
    """Profile a CSV with the Online Retail header.

    Keys: ``rows``, ``missing_customer_id``, ``missing_description``, ``missing_description_with_customer``,
    ``duplicate_rows`` (rows identical in all 8 fields to an earlier row), ``negative_quantity``,
    ``nonpositive_unit_price``, ``negative_unit_price``, ``cancellation_rows`` (InvoiceNo starts with C),
    ``distinct_invoice_no`` / ``_stock_code`` / ``_description`` / ``_customer_id`` / ``_country`` (non-empty
    values), ``invoice_date_min`` / ``_max`` (as written; ISO timestamps compare as text), ``quantity_min`` /
    ``_max``, ``unit_price_min`` / ``_max``, and ``clean_rows``: the distinct rows with Quantity > 0,
    UnitPrice > 0 and a CustomerID.
    """
    facts: dict[str, Any] = dict.fromkeys(
        (
            "rows",
            "missing_customer_id",
            "missing_description",
            "missing_description_with_customer",
            "duplicate_rows",
            "negative_quantity",
            "nonpositive_unit_price",
            "negative_unit_price",
            "cancellation_rows",
            "clean_rows",
        ),
        0,
    )
    invoices: set[str] = set()
    stock_codes: set[str] = set()
    descriptions: set[str] = set()
    customers: set[str] = set()
    countries: set[str] = set()
    seen: set[bytes] = set()
    date_min = date_max = None
    q_min = q_max = None
    p_min = p_max = None
    rows = missing_customer = missing_description = missing_description_with_customer = 0
    duplicates = negative_quantity = nonpositive_price = negative_price = cancellations = clean = 0

    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(header) != RAW_COLUMNS:
            raise InputError(
                "not an Online Retail CSV: unexpected header",
                f"{path}, line 1",
                f"expected {','.join(RAW_COLUMNS)}",
            )
        for row in reader:
            if len(row) != 8:
                raise InputError(
                    f"row has {len(row)} fields, expected 8", f"{path}, line {reader.line_num}", "fix the row"
                )
            invoice, stock, description, quantity, date, price, customer, country = row
            try:
                q = int(quantity)
            except ValueError:
                raise InputError(
                    f"Quantity {quantity!r} is not a whole number", f"{path}, line {reader.line_num}"
                ) from None
            try:
                p = float(price)
            except ValueError:
                raise InputError(
                    f"UnitPrice {price!r} is not a number", f"{path}, line {reader.line_num}"
                ) from None
            rows += 1
            digest = hashlib.blake2b("\x1f".join(row).encode("utf-8"), digest_size=16).digest()
            first_copy = digest not in seen
            if first_copy:
                seen.add(digest)
            else:
                duplicates += 1
            if customer:
                customers.add(customer)
                if not description:
                    missing_description_with_customer += 1
                if first_copy and q > 0 and p > 0:
                    clean += 1
            else:
                missing_customer += 1
            if description:
                descriptions.add(description)
            else:
                missing_description += 1
            if q < 0:
                negative_quantity += 1
            if p <= 0:
                nonpositive_price += 1
                if p < 0:
                    negative_price += 1
            if invoice.startswith("C"):
                cancellations += 1
            invoices.add(invoice)
            stock_codes.add(stock)
            countries.add(country)
            if date_min is None or date < date_min:
                date_min = date
            if date_max is None or date > date_max:
                date_max = date
            if q_min is None or q < q_min:
                q_min = q
            if q_max is None or q > q_max:
                q_max = q
            if p_min is None or p < p_min:
                p_min = p
            if p_max is None or p > p_max:
                p_max = p

    facts.update(
        rows=rows,
        missing_customer_id=missing_customer,
        missing_description=missing_description,
        missing_description_with_customer=missing_description_with_customer,
        duplicate_rows=duplicates,
        negative_quantity=negative_quantity,
        nonpositive_unit_price=nonpositive_price,
        negative_unit_price=negative_price,
        cancellation_rows=cancellations,
        clean_rows=clean,
        distinct_invoice_no=len(invoices),
        distinct_stock_code=len(stock_codes),
        distinct_description=len(descriptions),
        distinct_customer_id=len(customers),
        distinct_country=len(countries),
        invoice_date_min=date_min,
        invoice_date_max=date_max,
        quantity_min=q_min,
        quantity_max=q_max,
        unit_price_min=p_min,
        unit_price_max=p_max,
    )
    return facts
