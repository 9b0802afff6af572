"""The cleaning contract's names and patterns (docs/cleaning-contract.md), without Spark.

The Spark rules (glue/cleaning.py) and the benchmark's DuckDB and pandas references (retail_pipeline/bench)
both build on these, so a reason or a pattern is defined once and the references cannot drift from the job.
"""

from __future__ import annotations

import datetime as dt
import re

from retail_core.dialect import PROCESSED_SCHEMA

# Why a row is rejected, in the order the rules are tried: a row breaking several gets the first.
# `malformed_row` (the CSV line does not split into the 8 fields) and `invalid_customer_id` are not in the
# issue's list; both exist so that no row is ever dropped or altered silently (docs/cleaning-contract.md).
MALFORMED_ROW = "malformed_row"
DUPLICATE = "duplicate"
MISSING_INVOICE_NO = "missing_invoice_no"
MISSING_STOCK_CODE = "missing_stock_code"
INVALID_QUANTITY = "invalid_quantity"
INVALID_UNIT_PRICE = "invalid_unit_price"
INVALID_INVOICE_DATE = "invalid_invoice_date"
# The date parses but lies outside the configured window (a typo'd year such as 2099 or 1900): the row is
# quarantined rather than failing the whole batch at the gate. Right after invalid_invoice_date.
INVOICE_DATE_OUT_OF_RANGE = "invoice_date_out_of_range"
INVALID_CUSTOMER_ID = "invalid_customer_id"
# A text value longer, in UTF-8 bytes, than its warehouse column (TEXT_WIDTHS): Redshift's COPY would fail the
# whole load on it. After every parse check, before the business rules (cancelled, non-positive).
VALUE_TOO_LONG = "value_too_long"
# A cancellation (invoice number starting with C) is a return, a business fact, when its quantity is negative and
# its unit price positive: it goes to the returns output, not to quarantine. One that is not (a zero or positive
# quantity, a zero price) cannot be read as a return and is quarantined with this reason.
INVALID_CANCELLATION = "invalid_cancellation"
NON_POSITIVE_QUANTITY = "non_positive_quantity"
NON_POSITIVE_UNIT_PRICE = "non_positive_unit_price"

REJECT_REASONS: tuple[str, ...] = (
    MALFORMED_ROW,
    DUPLICATE,
    MISSING_INVOICE_NO,
    MISSING_STOCK_CODE,
    INVALID_QUANTITY,
    INVALID_UNIT_PRICE,
    INVALID_INVOICE_DATE,
    INVOICE_DATE_OUT_OF_RANGE,
    INVALID_CUSTOMER_ID,
    VALUE_TOO_LONG,
    INVALID_CANCELLATION,
    NON_POSITIVE_QUANTITY,
    NON_POSITIVE_UNIT_PRICE,
)

# What the transform makes of a row that is not rejected: a sale (processed-data/) or a return (returns/).
CANCELLATION_PREFIX = "C"
RETURN = "return"

# Accepted invoice_date layouts (Spark datetime patterns), by family. The family is picked from the text
# ('/' or not) so that a row is parsed once, not tried against every layout: a failed parse costs a Java
# exception, which at 54M rows is the difference between seconds and minutes.
ISO_DATE_FORMATS: tuple[str, ...] = ("yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd HH:mm")
US_DATE_FORMATS: tuple[str, ...] = ("M/d/yyyy H:mm", "M/d/yyyy H:mm:ss")

# The default window of accepted invoice dates: from EARLIEST_INVOICE_DATE to the run's start plus
# LATEST_INVOICE_DAYS_AHEAD days (a shop in another time zone may date a sale tomorrow in UTC). Both ends are
# configurable (glue/options.py TransformOptions); outside it a row is invoice_date_out_of_range.
EARLIEST_INVOICE_DATE = dt.datetime(2000, 1, 1)
LATEST_INVOICE_DAYS_AHEAD = 1

# The warehouse widths of the text columns from the raw file (dialect.PROCESSED_SCHEMA's varchar(n)), in bytes
# as Redshift counts them: invoice_no 16, stock_code 32, description 512, country 64.
TEXT_WIDTHS: dict[str, int] = {
    name: int(m.group(1))
    for name, type_name in PROCESSED_SCHEMA
    if name != "line_id" and (m := re.fullmatch(r"varchar\(([0-9]+)\)", type_name))
}


def invoice_date_window(
    now: dt.datetime, *, earliest: dt.datetime | None = None, latest: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """The accepted invoice dates (both ends included, naive UTC): the defaults above unless given."""
    now = now.astimezone(dt.UTC).replace(tzinfo=None) if now.tzinfo else now
    return (
        earliest or EARLIEST_INVOICE_DATE,
        latest or (now + dt.timedelta(days=LATEST_INVOICE_DAYS_AHEAD)).replace(microsecond=0),
    )


# Types of the parsed values (dialect.PROCESSED_SCHEMA holds the same in warehouse terms).
QUANTITY_TYPE = "bigint"
UNIT_PRICE_TYPE = "decimal(18,3)"
# bigint (19 digits) x decimal(18,3): 19 + 15 integer digits and 3 decimals fit in 38, so the product is exact.
TOTAL_SALES_TYPE = "decimal(38,3)"

# The line key: md5 over the 8 raw strings joined by the unit separator; a missing field (NULL) is NUL, which
# no CSV field carries, so NULL and "" hash differently (docs/adr/0003-line-key.md).
LINE_KEY_SEPARATOR = "\u001f"
LINE_KEY_NULL = "\u0000"

# A plain decimal with at most 3 significant decimals (trailing zeros are fine): 2.55, 0.001, 3, .5, 2.5500.
PRICE_PATTERN = r"[+-]?([0-9]+([.][0-9]{0,3}0*)?|[.][0-9]{1,3}0*)"
# 17850 or 17850.0: the float the export made of an integer id.
CUSTOMER_ID_PATTERN = r"[0-9]+([.]0+)?"
