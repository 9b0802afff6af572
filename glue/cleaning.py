"""The cleaning contract (docs/cleaning-contract.md) as pure DataFrame -> DataFrame functions.

Nothing here reads or writes: the job script does I/O, these functions say what a clean row is. Every rule is
a built-in Spark expression (no Python UDF), so it runs in the JVM on every executor.

The pipeline of functions, in the job and in the tests:

1. :func:`rename_columns`: the raw header to snake_case.
2. :func:`flag_rows`: ``line_id``, the parsed values and ``reject_reason`` for every row, duplicates included.
3. :func:`clean_rows`, :func:`return_rows` and :func:`quarantine_rows`: the three outputs (sales, returns,
   rejects), which partition the flagged rows.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
import re
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from retail_core import dialect
from retail_core.contract import (
    CANCELLATION_PREFIX,
    CUSTOMER_ID_PATTERN,
    DUPLICATE,
    INVALID_CANCELLATION,
    INVALID_CUSTOMER_ID,
    INVALID_INVOICE_DATE,
    INVALID_QUANTITY,
    INVALID_UNIT_PRICE,
    INVOICE_DATE_OUT_OF_RANGE,
    ISO_DATE_FORMATS,
    LINE_KEY_NULL,
    LINE_KEY_SEPARATOR,
    MALFORMED_ROW,
    MISSING_INVOICE_NO,
    MISSING_STOCK_CODE,
    NON_POSITIVE_QUANTITY,
    NON_POSITIVE_UNIT_PRICE,
    PRICE_PATTERN,
    QUANTITY_TYPE,
    TEXT_WIDTHS,
    TOTAL_SALES_TYPE,
    UNIT_PRICE_TYPE,
    US_DATE_FORMATS,
    VALUE_TOO_LONG,
    invoice_date_window,
)
from retail_core.dialect import QUARANTINE_COLUMNS, SOURCE_COLUMNS
from retail_core.errors import InputError

# Characters the TSV dialect cannot carry (retail_core.dialect.sanitize): each becomes a space.
_FORBIDDEN_CHARS = f"[{dialect.FORBIDDEN_CHARS}]"
_PRICE = f"^{PRICE_PATTERN}$"
_CUSTOMER_ID = f"^{CUSTOMER_ID_PATTERN}$"
# The first ISO layout (ISO_DATE_FORMATS[0], yyyy-MM-dd HH:mm:ss) exactly: digits where it has digits, to the end.
_ISO_SECONDS = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\z"

CORRUPT_RECORD_COLUMN = "_corrupt_record"
PARSED_PREFIX = "parsed_"


def snake_case(name: str) -> str:
    """``InvoiceNo`` -> ``invoice_no``, ``CustomerID`` -> ``customer_id``, ``Unit Price`` -> ``unit_price``."""
    name = re.sub(r"[^0-9A-Za-z]+", "_", name.strip())
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return name.strip("_").lower()


def rename_columns(df: DataFrame) -> DataFrame:
    """Rule 1: the eight raw columns renamed to snake_case; other columns (bookkeeping) are kept as they are."""
    renames = {name: snake_case(name) for name in df.columns if snake_case(name) in SOURCE_COLUMNS}
    found = sorted(set(renames.values()))
    if found != sorted(SOURCE_COLUMNS) or len(renames) != len(SOURCE_COLUMNS):
        raise InputError(
            "wrong columns",
            ", ".join(df.columns),
            f"expected {', '.join(SOURCE_COLUMNS)} (in any case or spacing)",
        )
    return df.select([F.col(f"`{c}`").alias(renames.get(c, c)) for c in df.columns])


def holds_forbidden(column: Column, chars: str = dialect.FORBIDDEN_CHARS) -> Column:
    """True when the value holds one of ``chars`` (default: tab, CR, LF, NUL); NULL for NULL."""
    # Most values hold none of them: a test is cheaper than a replace, which copies every string. Byte searches
    # are cheaper than a regex match (a third of the parse at scale 10), and exact: these are ASCII bytes,
    # which never occur inside a multi-byte UTF-8 character.
    return functools.reduce(operator.or_, [column.contains(c) for c in chars])


def sanitized(column: Column | str, searched: str = dialect.FORBIDDEN_CHARS) -> Column:
    """Tab, CR, LF and NUL become a space (``retail_core.dialect.sanitize`` in Spark).

    ``searched``: the forbidden characters the value may hold (a value read line by line holds no CR or LF).
    """
    column = F.col(column) if isinstance(column, str) else column
    return F.when(
        holds_forbidden(column, searched), F.regexp_replace(column, _FORBIDDEN_CHARS, " ")
    ).otherwise(column)


def normalised_text(column: Column | str, searched: str = dialect.FORBIDDEN_CHARS) -> Column:
    """Tab, CR, LF (and NUL) become a space, then the value is trimmed; an empty result is NULL."""
    column = F.col(column) if isinstance(column, str) else column
    # Empty after cleaning means made of spaces and forbidden characters only, which btrim tells without the
    # byte searches. Testing the cleaned value itself would write it twice (the test, the result), and
    # Spark's generated code would compute it twice.
    return F.when(F.btrim(column, F.lit(" " + searched)) != "", F.trim(sanitized(column, searched)))


def line_id(columns: Sequence[str] = SOURCE_COLUMNS) -> Column:
    """md5 hex of the raw field strings as read: equal for exact duplicates, stable across re-ingests."""
    parts = [F.coalesce(F.col(c), F.lit(LINE_KEY_NULL)) for c in columns]
    return F.md5(F.concat_ws(LINE_KEY_SEPARATOR, *parts))


def parse_quantity(name: str) -> Column:
    """A whole number (``6``, ``-3``, ``+2``) that fits in a bigint, else NULL (``6.0`` and ``1e3`` too)."""
    # try_cast to an integral type is strict: no decimals, exponents, hex or overflow; spaces around are fine.
    return _try_cast(name, QUANTITY_TYPE, "{}")


def parse_unit_price(name: str) -> Column:
    """An exact decimal(18,3), else NULL: exponents, separators and a 4th significant decimal are refused."""
    return F.when(F.trim(F.col(name)).rlike(_PRICE), _try_cast(name, UNIT_PRICE_TYPE))


def parse_invoice_date(name: str) -> Column:
    """A timestamp from ``2010-12-01 08:26:00`` or ``12/1/2010 8:26`` (and their variants), else NULL."""
    text = F.trim(F.col(name))

    def first_of(formats: Sequence[str]) -> Column:
        return F.coalesce(*[F.try_to_timestamp(text, F.lit(fmt)) for fmt in formats])

    formats = F.when(F.instr(text, "/") > 0, first_of(US_DATE_FORMATS)).otherwise(first_of(ISO_DATE_FORMATS))
    # The common layout (the Kaggle file's, every row of it) by Spark's own string-to-timestamp cast, which is
    # several times cheaper than a DateTimeFormatter. On exactly these 19 characters both read the same fields
    # and refuse the same dates (month 13, 30 February, hour 24, second 60); anything else, a trailing line
    # terminator included (hence \z, not $), takes the formatters.
    return F.when(text.rlike(_ISO_SECONDS), _try_cast(name, "timestamp")).otherwise(formats)


def parse_customer_id(name: str) -> Column:
    """``17850.0`` and ``17850`` -> 17850; NULL when missing or not a whole number (see invalid_customer_id)."""
    digits = "regexp_extract(trim({}), '^([0-9]+)', 1)"
    return F.when(F.trim(F.col(name)).rlike(_CUSTOMER_ID), _try_cast(name, "bigint", digits))


def too_long(column: Column | str, width: int) -> Column:
    """True when the (normalised) text takes more than ``width`` bytes in UTF-8, as Redshift's varchar counts."""
    column = F.col(column) if isinstance(column, str) else column
    # octet_length is the string's stored size (UTF-8), read without a scan; length() would count characters.
    return F.coalesce(F.octet_length(column) > width, F.lit(False))


def flag_rows(
    df: DataFrame,
    order_by: Sequence[str],
    *,
    date_window: tuple[dt.datetime, dt.datetime] | None = None,
    line_breaks: bool = True,
) -> DataFrame:
    """Rules 2-5 on every row: adds ``line_id``, the ``parsed_*`` values, ``reject_reason`` (NULL: kept) and
    ``is_return`` (a kept cancellation line: a return, not a sale).

    ``df`` holds the eight snake_case raw string columns, the columns in ``order_by`` that put rows in file
    order (the first copy of a duplicate is the earliest), and optionally ``_corrupt_record`` (set by the
    CSV reader when a line does not split into eight fields; read for ``malformed_row``, then dropped). Other
    columns are passed through.
    ``date_window``: the accepted invoice dates, both ends included (default: ``contract.invoice_date_window``
    of now). ``line_breaks=False``: the rows were read line by line (``read_raw(multiline=False)``), so no
    field holds a CR or LF, and only tabs and NULs are searched for.
    """
    # The forbidden-character searches are the parse's largest cost after the CSV reader: halved when they can.
    searched = "".join(c for c in dialect.FORBIDDEN_CHARS if line_breaks or c not in "\r\n")
    p = PARSED_PREFIX
    earliest, latest = date_window or invoice_date_window(dt.datetime.now(dt.UTC))
    date = F.col(f"{p}invoice_date")
    long_text = F.lit(False)
    for name, width in TEXT_WIDTHS.items():
        long_text = long_text | too_long(f"{p}{name}", width)
    malformed = (
        F.col(CORRUPT_RECORD_COLUMN).isNotNull() if CORRUPT_RECORD_COLUMN in df.columns else F.lit(False)
    )
    # The corrupt record's text is read for _malformed only: it does not travel through the shuffle.
    passed = [c for c in df.columns if c != CORRUPT_RECORD_COLUMN]
    keyed = df.select(*passed, line_id().alias("line_id"), malformed.alias("_malformed"))
    # Rule 2: the first copy in file order stays; a malformed row is never a well-formed row's first copy.
    # The window (a shuffle) comes before parsing so that only the raw strings travel through it, and it
    # partitions by line_id alone so that the result stays clustered by the key (uniqueness checks need no
    # second shuffle).
    copies = Window.partitionBy("line_id").orderBy("_malformed", *order_by)
    numbered = keyed.withColumn("_copy", F.row_number().over(copies))
    parsed = numbered.select(
        "*",
        normalised_text("invoice_no", searched).alias(f"{p}invoice_no"),
        normalised_text("stock_code", searched).alias(f"{p}stock_code"),
        normalised_text("description", searched).alias(f"{p}description"),
        parse_quantity("quantity").alias(f"{p}quantity"),
        parse_invoice_date("invoice_date").alias(f"{p}invoice_date"),
        parse_unit_price("unit_price").alias(f"{p}unit_price"),
        parse_customer_id("customer_id").alias(f"{p}customer_id"),
        normalised_text("country", searched).alias(f"{p}country"),
        # Used by three rules and is_return: computed here once (and this keeps the generated code of the stage under
        # HotSpot's 8000-byte limit for a method it compiles; see runtime.HUGE_METHOD_LIMIT).
        F.coalesce(
            normalised_text("invoice_no", searched).startswith(CANCELLATION_PREFIX), F.lit(False)
        ).alias("_cancelled"),
    )
    cancelled = F.col("_cancelled")
    reason = (
        F.when(F.col("_malformed"), F.lit(MALFORMED_ROW))
        .when(F.col("_copy") > 1, F.lit(DUPLICATE))
        .when(F.col(f"{p}invoice_no").isNull(), F.lit(MISSING_INVOICE_NO))
        .when(F.col(f"{p}stock_code").isNull(), F.lit(MISSING_STOCK_CODE))
        .when(F.col(f"{p}quantity").isNull(), F.lit(INVALID_QUANTITY))
        .when(F.col(f"{p}unit_price").isNull(), F.lit(INVALID_UNIT_PRICE))
        .when(date.isNull(), F.lit(INVALID_INVOICE_DATE))
        .when((date < _timestamp(earliest)) | (date > _timestamp(latest)), F.lit(INVOICE_DATE_OUT_OF_RANGE))
        .when(
            F.col(f"{p}customer_id").isNull() & normalised_text("customer_id", searched).isNotNull(),
            F.lit(INVALID_CUSTOMER_ID),
        )
        .when(long_text, F.lit(VALUE_TOO_LONG))
        # A cancellation is a return when it takes goods back (quantity < 0) at a price (> 0); else unreadable.
        .when(
            cancelled & ((F.col(f"{p}quantity") >= 0) | (F.col(f"{p}unit_price") <= 0)),
            F.lit(INVALID_CANCELLATION),
        )
        .when(~cancelled & (F.col(f"{p}quantity") <= 0), F.lit(NON_POSITIVE_QUANTITY))
        .when(~cancelled & (F.col(f"{p}unit_price") <= 0), F.lit(NON_POSITIVE_UNIT_PRICE))
    )
    flagged = parsed.withColumn("reject_reason", reason)
    is_return = F.col("reject_reason").isNull() & cancelled
    return flagged.withColumn("is_return", is_return).drop("_copy", "_malformed", "_cancelled")


def total_sales() -> Column:
    """Rule 6: quantity x unit_price, exact (decimal arithmetic, no float on the way)."""
    quantity = F.col(f"{PARSED_PREFIX}quantity").cast("decimal(19,0)")
    return (quantity * F.col(f"{PARSED_PREFIX}unit_price")).cast(TOTAL_SALES_TYPE)


def clean_rows(flagged: DataFrame, ingest_date: dt.date) -> DataFrame:
    """The sales: rows without a reject reason that are not returns, typed, in ``dialect.PROCESSED_COLUMNS``
    order."""
    return _typed(flagged.where(F.col("reject_reason").isNull() & ~F.col("is_return")), ingest_date)


def return_rows(flagged: DataFrame, ingest_date: dt.date) -> DataFrame:
    """The returns: kept cancellation lines (negative quantity, positive price, so a negative total_sales), typed
    as the sales are."""
    return _typed(flagged.where(F.col("is_return")), ingest_date)


def _typed(kept: DataFrame, ingest_date: dt.date) -> DataFrame:
    p = PARSED_PREFIX
    return kept.select(
        "line_id",
        F.col(f"{p}invoice_no").alias("invoice_no"),
        F.col(f"{p}stock_code").alias("stock_code"),
        F.col(f"{p}description").alias("description"),
        F.col(f"{p}quantity").alias("quantity"),
        F.col(f"{p}invoice_date").alias("invoice_date"),
        F.col(f"{p}unit_price").alias("unit_price"),
        F.col(f"{p}customer_id").alias("customer_id"),
        F.col(f"{p}country").alias("country"),
        total_sales().alias("total_sales"),
        F.lit(ingest_date).alias("ingest_date"),
    )


def quarantine_rows(flagged: DataFrame, ingest_date: dt.date) -> DataFrame:
    """The rejected rows: original values (only tab/CR/LF/NUL made spaces, as the TSV needs), ``line_no``,
    ``reject_reason`` and ``ingest_date``, in ``dialect.QUARANTINE_COLUMNS`` order.

    ``flagged`` must carry ``line_no``, the 1-based data row number in the raw file.
    """
    raw = [sanitized(c).alias(c) for c in SOURCE_COLUMNS]
    rejected = flagged.where(F.col("reject_reason").isNotNull())
    return rejected.select(*raw, "line_no", "reject_reason", F.lit(ingest_date).alias("ingest_date")).select(
        *QUARANTINE_COLUMNS
    )


def _timestamp(value: dt.datetime) -> Column:
    """A timestamp literal read in the session's zone (UTC), as the invoice dates are; a naive datetime
    handed to ``F.lit`` would be taken in the Python process's local zone instead."""
    return F.to_timestamp(F.lit(value.strftime("%Y-%m-%d %H:%M:%S")))


def _try_cast(name: str, type_name: str, inner: str = "trim({})") -> Column:
    """``try_cast`` (SQL-only in Spark 3.5): NULL on overflow whatever ``spark.sql.ansi.enabled`` says."""
    return F.expr(f"try_cast({inner.format(f'`{name}`')} as {type_name})")
