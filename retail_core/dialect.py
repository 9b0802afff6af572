"""The TSV dialect of ``processed-data/`` and ``quarantine/``, defined once.

Every reader and writer takes its settings from here: the Spark writer in the Glue job, the DuckDB source
and the Redshift ``COPY`` in the warehouse, and the tests.

The dialect (see docs/adr/0002-tsv-dialect.md):

* UTF-8 without BOM (Redshift COPY requires UTF-8), ``\\n`` line ends, one header line.
* Tab separates fields. There is **no quoting and no escaping**: a field never holds a tab, CR or LF
  (the cleaning step turns them, and NUL, into spaces), so every other character, ``"``, ``\\``, ``,`` and ``|``
  included, is written and read literally.
* An empty field is NULL. The cleaning contract never produces an empty string, so nothing is lost.
* Timestamps are ``YYYY-MM-DD HH:MM:SS`` (UTC, no zone), which Redshift's TIMESTAMP accepts as is.
* Decimals are plain (``2.55``, ``0.001``), never exponent notation.
"""

from __future__ import annotations

import codecs
import re

from retail_core.errors import InputError

ENCODING = "utf-8"
SEPARATOR = "\t"
LINE_TERMINATOR = "\n"
NULL_VALUE = ""
TIMESTAMP_FORMAT_PY = "%Y-%m-%d %H:%M:%S"
TIMESTAMP_FORMAT_SPARK = "yyyy-MM-dd HH:mm:ss"
TIMESTAMP_FORMAT_REDSHIFT = "YYYY-MM-DD HH:MI:SS"
FILE_SUFFIX = ".tsv"

# Raw CSV header, exactly as the Kaggle file has it.
RAW_COLUMNS: tuple[str, ...] = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)

# Byte-order marks of encodings the raw CSV may not be in, checked longest first (UTF-32 LE starts as UTF-16 LE).
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_LINE_END = re.compile(rb"\r\n|\r|\n")

# snake_case names of the raw columns, in the same order.
SOURCE_COLUMNS: tuple[str, ...] = (
    "invoice_no",
    "stock_code",
    "description",
    "quantity",
    "invoice_date",
    "unit_price",
    "customer_id",
    "country",
)

# processed-data/ columns, in file order, with the type each holds.
PROCESSED_SCHEMA: tuple[tuple[str, str], ...] = (
    ("line_id", "varchar(32)"),  # md5 of the raw row: the line key (docs/adr/0003-line-key.md)
    ("invoice_no", "varchar(16)"),
    ("stock_code", "varchar(32)"),
    ("description", "varchar(512)"),
    ("quantity", "bigint"),
    ("invoice_date", "timestamp"),
    ("unit_price", "decimal(18,3)"),
    ("customer_id", "bigint"),  # NULL for a guest sale
    ("country", "varchar(64)"),
    ("total_sales", "decimal(38,3)"),
    ("ingest_date", "date"),
)
PROCESSED_COLUMNS: tuple[str, ...] = tuple(name for name, _ in PROCESSED_SCHEMA)

# The run report's fields the warehouse loads (staging.online_retail_run_reports), in table order: a field added
# later goes last, where `alter table ... add column` puts it in a warehouse created before it. The sums are
# decimal strings, cast where they are compared.
RUN_REPORT_SCHEMA: tuple[tuple[str, str], ...] = (
    ("ingest_date", "date"),
    ("status", "varchar(32)"),
    ("rows_in", "bigint"),
    ("rows_clean", "bigint"),
    ("rows_quarantined", "bigint"),
    ("total_sales", "varchar(64)"),
    ("run_id", "varchar(128)"),
    ("returns_total_sales", "varchar(64)"),  # added with the returns' money reconciliation
)

# The load's queue of batches loaded since gold was last published (staging.online_retail_pending_batches).
PENDING_BATCH_SCHEMA: tuple[tuple[str, str], ...] = (
    ("ingest_date", "date"),
    ("run_id", "varchar(128)"),
    ("loaded_at", "timestamp"),
)

# quarantine/ columns: the original values as read (strings), the raw line number, and why.
QUARANTINE_COLUMNS: tuple[str, ...] = (*SOURCE_COLUMNS, "line_no", "reject_reason", "ingest_date")

# What no field may hold. NUL too: Redshift COPY rejects it, and Spark's writer would take it for its (disabled)
# quote character. The Spark job builds its regex from this string (glue/cleaning.py).
FORBIDDEN_CHARS = "\t\r\n\x00"
_FORBIDDEN = re.compile(f"[{FORBIDDEN_CHARS}]")


def refuse_wide_encoding(head: bytes, where: str) -> None:
    """InputError when ``head`` starts with a UTF-16 or UTF-32 byte-order mark (or looks like UTF-16)."""
    name = next((name for bom, name in _WIDE_BOMS if head.startswith(bom)), None)
    # No BOM, but "I\0n\0v\0" or "\0I\0n\0": UTF-16 without its mark.
    if name is None and head[:2].count(0) == 1 and head[:8].count(0) >= 3:
        name = "UTF-16"
    if name is not None:
        raise InputError(
            f"the CSV is {name}, not UTF-8 or ISO-8859-1",
            where,
            f"convert it first, e.g. iconv -f {name} -t UTF-8 in.csv > out.csv",
        )


def first_line(head: bytes) -> bytes:
    """The header line of ``head``, whatever ends it (LF, CRLF or a lone CR)."""
    return _LINE_END.split(head, maxsplit=1)[0]


def sanitize(value: str) -> str:
    """A field value the dialect can carry: tab, CR, LF (and NUL) become a space."""
    return _FORBIDDEN.sub(" ", value)


def spark_writer_options() -> dict[str, str]:
    """Options for ``DataFrame.write.csv`` that write this dialect and nothing else.

    Spark quotes and escapes by default; an empty ``quote`` turns quoting off (``\\u0000``), and
    ``escapeQuotes``/``quoteAll`` off keep ``"`` and ``\\`` literal.
    """
    return {
        "sep": SEPARATOR,
        "header": "true",
        "encoding": "UTF-8",
        "lineSep": LINE_TERMINATOR,
        "quote": "",
        "escape": "",
        "escapeQuotes": "false",
        "quoteAll": "false",
        "nullValue": NULL_VALUE,
        "emptyValue": NULL_VALUE,
        "timestampFormat": TIMESTAMP_FORMAT_SPARK,
        "ignoreLeadingWhiteSpace": "false",
        "ignoreTrailingWhiteSpace": "false",
    }


def duckdb_read_options() -> str:
    """Arguments for DuckDB's ``read_csv`` that read this dialect (columns given by the caller)."""
    return (
        "delim = '\\t', header = true, quote = '', escape = '', "
        "nullstr = '', timestampformat = '%Y-%m-%d %H:%M:%S', hive_partitioning = false, "
        "auto_detect = false"
    )


def redshift_copy_options() -> str:
    """``COPY`` options that read this dialect (no CSV keyword: CSV mode would honour quotes).

    ``NULL AS '\\000'``: without it Redshift's text COPY loads a field that is exactly ``\\N`` as NULL (its
    default null string), so a description or stock code ``\\N`` would not arrive verbatim. NUL never occurs in
    the dialect (the cleaning makes it a space); an empty field is the NULL (EMPTYASNULL, and always for non-text)."""
    return (
        "DELIMITER '\\t' IGNOREHEADER 1 EMPTYASNULL NULL AS '\\000' "
        f"TIMEFORMAT '{TIMESTAMP_FORMAT_REDSHIFT}' DATEFORMAT 'YYYY-MM-DD' "
        "ENCODING UTF8"
    )
