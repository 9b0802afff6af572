"""The cleaning contract (glue/cleaning.py) again, in DuckDB SQL and in pandas: the tools a data engineer would
reach for on one machine, as baselines for the Spark job.

Each reference does the job's work, not less: read the raw CSV, flag every row with the first reason it breaks
(malformed, duplicate, missing or invalid fields, cancelled, non-positive), compute ``line_id`` and the exact
``total_sales``, and write the clean rows and the quarantined rows as TSV in the pipeline's dialect. What they
leave out is what is not the contract: the quality gate, the run report, and the quarantine's ``line_no``.

They must give exactly the clean rows Spark gives (count, Σ total_sales, and a digest of the ``line_id`` set;
see :mod:`retail_pipeline.bench.parity`), so every rule is mirrored down to what Spark's functions actually do:

* the CSV is read as RFC 4180 strings; an empty field (quoted or not) is NULL; a record that does not split
  into 8 fields is ``malformed_row``; a line of nothing but whitespace is skipped, as Spark's reader skips it;
* ``line_id`` is md5 of the 8 raw strings joined by U+001F, NULL as U+0000; the first copy of a line is kept
  (all copies are the same strings, so which copy is first changes no clean row);
* text fields: tab, CR, LF and NUL become spaces, then *spaces only* are trimmed (Spark's ``trim``);
* quantity: ``try_cast(... as bigint)``, which also strips ASCII control characters and spaces around it;
* unit price: the contract's pattern, matched like Java's ``rlike`` (``$`` also matches before a final line
  terminator), then an exact decimal(18,3); customer id the same way;
* invoice date: ``M/d/yyyy H:mm[:ss]`` when the text holds a ``/``, else ``yyyy-MM-dd HH:mm[:ss]``, with the
  field widths of Java's ``DateTimeFormatter`` (``M``, ``d``, ``H``: 1 to 19 digits; ``MM``, ``mm``...: exactly 2)
  and its strict calendar (no 30 February, no 24:00); a date outside the window (``contract.invoice_date_window``,
  both ends included) is ``invoice_date_out_of_range``;
* a text value (normalised) longer in UTF-8 bytes than its warehouse column (``contract.TEXT_WIDTHS``) is
  ``value_too_long``.

Run one as ``python -m retail_pipeline.bench.references duckdb RAW.csv OUT_DIR --result result.json``; the
benchmark does, in a subprocess of its own, so that its time and memory are its own.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from retail_core import dialect
from retail_core.contract import (
    CUSTOMER_ID_PATTERN,
    LINE_KEY_NULL,
    LINE_KEY_SEPARATOR,
    PRICE_PATTERN,
    REJECT_REASONS,
    TEXT_WIDTHS,
    invoice_date_window,
)

ENGINES: tuple[str, ...] = ("duckdb", "pandas")
CLEAN_FILE = f"clean{dialect.FILE_SUFFIX}"
QUARANTINE_FILE = f"quarantine{dialect.FILE_SUFFIX}"
RETURNS_FILE = f"returns{dialect.FILE_SUFFIX}"

ISO_DATE_PATTERN = r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?"
US_DATE_PATTERN = r"([0-9]{1,19})/([0-9]{1,19})/([0-9]{4}) ([0-9]{1,19}):([0-9]{2})(?::([0-9]{2}))?"
ISO_SECONDS_SHAPE = r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}"  # the Kaggle file's layout
US_MINUTES_SHAPE = r"[0-9]{1,2}/[0-9]{1,2}/[0-9]{4} [0-9]{1,2}:[0-9]{2}"  # the UCI workbook's layout
# Java's `$` also matches before a final line terminator. The price then goes through String.trim(), which
# removes CR and LF but not the other terminators (so those make the cast fail); the customer id keeps digits.
JAVA_EOL = "(?:\r\n|[\n\r\u0085\u2028\u2029])?"
JAVA_EOL_RE2 = r"(?:\r\n|[\n\r\x{85}\x{2028}\x{2029}])?"
PRICE_EOL = "(?:\r\n|\r|\n)?"
PRICE_EOL_RE2 = r"(?:\r\n|\r|\n)?"
# What try_cast(string as bigint) strips around the digits: ASCII whitespace and control characters.
CAST_BLANKS = "".join(chr(c) for c in range(0x21)) + "\x7f"
FORBIDDEN = dialect.FORBIDDEN_CHARS  # what the TSV dialect cannot carry: each becomes a space
TERMINATORS = "\r\n\u0085\u2028\u2029"
PRICE_DIGITS = 15  # decimal(18,3): 15 integer digits
EXTRA_COLUMNS = 24  # DuckDB reads records of up to 8 + 24 fields in-band (wider ones are malformed too)
BIGINT_MAX = 2**63 - 1


@dataclass(frozen=True)
class CleanFigures:
    """What one engine made of one raw file: the figures the parity check compares."""

    engine: str
    rows_in: int
    rows_clean: int
    total_sales: Decimal
    line_id_digest: str  # see line_id_digest()
    by_reason: dict[str, int] = field(default_factory=dict)
    rows_returns: int = 0  # kept cancellation lines: neither sales (clean) nor rejects
    seconds: float = 0.0  # inside the engine's process, start-up and imports excluded

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "total_sales": str(self.total_sales)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CleanFigures:
        return cls(**{**data, "total_sales": Decimal(data["total_sales"])})


def line_id_digest(sum_of_prefixes: int) -> str:
    """The digest of a set of line_ids: Σ of each id's first 16 hex digits (64 bits), modulo 2^64, as hex.

    Order-independent, so no engine sorts 54M keys for it; two sets that differ by any one id differ here
    unless 64 random bits cancel out."""
    return f"{sum_of_prefixes % 2**64:016x}"


def run(
    engine: str,
    raw_csv: Path,
    out_dir: Path,
    *,
    encoding: str = "utf-8",
    ingest_date: dt.date | None = None,
    date_window: tuple[dt.datetime, dt.datetime] | None = None,
) -> CleanFigures:
    """Clean ``raw_csv`` with ``engine`` into ``out_dir`` (clean.tsv, quarantine.tsv) and return its figures.

    ``date_window``: the accepted invoice dates (default: the contract's, as the Spark job takes them)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    ingest_date = ingest_date or dt.date.today()
    window = date_window or invoice_date_window(dt.datetime.now(dt.UTC))
    started = time.perf_counter()
    clean = _duckdb if engine == "duckdb" else _pandas
    figures = clean(raw_csv, out_dir, encoding=encoding, ingest_date=ingest_date, date_window=window)
    return CleanFigures(**{**asdict(figures), "seconds": round(time.perf_counter() - started, 3)})


# --- DuckDB ------------------------------------------------------------------------------------------------


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_chars(chars: str) -> str:
    """A SQL expression for a string of (possibly unprintable) characters."""
    return " || ".join(f"chr({ord(c)})" for c in chars)


def _duckdb(
    raw_csv: Path,
    out_dir: Path,
    *,
    encoding: str,
    ingest_date: dt.date,
    date_window: tuple[dt.datetime, dt.datetime],
) -> CleanFigures:
    import duckdb

    con = duckdb.connect()
    con.execute(f"set threads = {os.cpu_count() or 1}")
    con.execute("set preserve_insertion_order = false")  # the output's order is not part of the contract
    con.execute("set memory_limit = '4GB'")
    con.execute("set enable_progress_bar = false")
    con.execute(f"set temp_directory = {_sql_text(str(out_dir / '.duckdb_tmp'))}")
    rejects = "rejects_parallel"
    try:
        con.execute(_duckdb_flag_sql(raw_csv, encoding, date_window, rejects=rejects, parallel=True))
    except duckdb.Error:
        # Quoted line breaks: DuckDB's parallel scanner cannot NULL-pad short records around them. Read the
        # file again in one thread, as the Spark job reads such a file again in one task.
        rejects = "rejects_serial"
        con.execute(_duckdb_flag_sql(raw_csv, encoding, date_window, rejects=rejects, parallel=False))
    by_reason = dict(
        con.execute(
            "select reason, count(*) from flagged where not coalesce(is_return, false) group by reason"
        ).fetchall()
    )
    (returns,) = con.execute("select count(*) from flagged where is_return").fetchone()
    too_wide = con.execute(f"select count(distinct (file_id, line)) from {rejects}").fetchone()[0]
    clean_rows, total, prefixes = con.execute(
        "select count(*), coalesce(sum(total_sales), 0), "
        "coalesce(sum(('0x' || substr(line_id, 1, 16))::ubigint), 0) from flagged "
        "where reason is null and not is_return"
    ).fetchone()
    tsv = "format csv, delimiter '\t', header true, quote '', escape '', nullstr ''"
    day = _sql_text(ingest_date.isoformat())
    for kept, file_name in (("not is_return", CLEAN_FILE), ("is_return", RETURNS_FILE)):
        con.execute(
            f"""copy (
                select line_id, p_invoice_no as invoice_no, p_stock_code as stock_code,
                    p_description as description, p_quantity as quantity,
                    strftime(p_invoice_date, '%Y-%m-%d %H:%M:%S') as invoice_date, p_unit_price as unit_price,
                    p_customer_id as customer_id, p_country as country, total_sales, {day} as ingest_date
                from flagged where reason is null and {kept}
            ) to {_sql_text(str(out_dir / file_name))} ({tsv})"""
        )
    forbidden, spaces = _sql_chars(FORBIDDEN), _sql_chars(" " * len(FORBIDDEN))
    raw_cols = ", ".join(f"translate({c}, {forbidden}, {spaces}) as {c}" for c in dialect.SOURCE_COLUMNS)
    con.execute(
        f"""copy (
            select {raw_cols}, reason as reject_reason, {day} as ingest_date
            from flagged where reason is not null
        ) to {_sql_text(str(out_dir / QUARANTINE_FILE))} ({tsv})"""
    )
    reasons = {r: n for r, n in by_reason.items() if r is not None}
    if too_wide:
        reasons["malformed_row"] = reasons.get("malformed_row", 0) + too_wide
    rows_in = sum(by_reason.values()) + returns + too_wide
    con.close()
    return CleanFigures(
        engine="duckdb",
        rows_in=rows_in,
        rows_clean=clean_rows,
        total_sales=Decimal(total).quantize(Decimal("0.001")),
        line_id_digest=line_id_digest(int(prefixes)),
        by_reason=_ordered(reasons),
        rows_returns=int(returns),
    )


def _duckdb_flag_sql(
    raw_csv: Path,
    encoding: str,
    date_window: tuple[dt.datetime, dt.datetime],
    *,
    rejects: str,
    parallel: bool,
) -> str:
    """``create temp table flagged``: every row with line_id, its parsed values, reason and total_sales."""
    earliest, latest = (f"timestamp '{d.strftime('%Y-%m-%d %H:%M:%S')}'" for d in date_window)
    # strlen counts bytes, as Redshift's varchar does.
    too_long = " or ".join(f"strlen(p_{c}) > {width}" for c, width in TEXT_WIDTHS.items())
    extras = [f"_extra{i}" for i in range(1, EXTRA_COLUMNS + 1)]
    names = [*dialect.RAW_COLUMNS, *extras]
    columns = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n in names) + "}"
    charset = {"utf-8": "utf-8", "iso-8859-1": "latin-1"}[encoding]
    # More columns than the 8, NULL-padded: a short record leaves Country NULL (an empty field reads as ''
    # here, since nothing is the NULL string), a wide one fills an extra column. Padding costs nothing
    # measurable; records wider still land in the rejects table (parallel) or fail the read (serial).
    extra = f"coalesce({', '.join(extras)})"
    read = (
        f"read_csv({_sql_text(str(raw_csv))}, columns = {columns}, header = true, delim = ',', quote = '\"', "
        f"escape = '\"', auto_detect = false, null_padding = true, nullstr = {_sql_text(chr(2))}, "
        f"allow_quoted_nulls = false, ignore_errors = true, store_rejects = true, rejects_table = '{rejects}', "
        f"rejects_scan = '{rejects}_scans', parallel = {str(parallel).lower()}, encoding = '{charset}')"
    )
    renamed = ", ".join(
        f"nullif(\"{raw}\", '') as {name}"
        for raw, name in zip(dialect.RAW_COLUMNS, dialect.SOURCE_COLUMNS, strict=True)
    )
    blanks = _sql_chars(CAST_BLANKS[:-1])  # Java's String.trim(): U+0000..U+0020
    forbidden, spaces = _sql_chars(FORBIDDEN), _sql_chars(" " * len(FORBIDDEN))

    def text(c: str) -> str:
        return f"nullif(trim(translate({c}, {forbidden}, {spaces}), ' '), '')"

    key = ", ".join(f"coalesce({c}, chr(0))" for c in dialect.SOURCE_COLUMNS)
    cast_blanks = r"[\x00-\x20\x7f]"

    def timestamp(groups: str) -> str:
        y, m, d, h, mi, s = (f"{groups}.{g}" for g in ("y", "m", "d", "h", "mi", "s"))
        parts = f"try_cast({y} as bigint), try_cast({m} as bigint), try_cast({d} as bigint), "
        parts += f"try_cast({h} as bigint), try_cast({mi} as bigint), try_cast(coalesce(nullif({s}, ''), '0') as bigint)"
        return (
            f"case when {y} <> '' then try_strptime(printf('%04d-%02d-%02d %02d:%02d:%02d', {parts}), "
            "'%Y-%m-%d %H:%M:%S') end"
        )

    price = "trim(unit_price, ' ')"
    customer = "trim(customer_id, ' ')"
    date_text = "trim(invoice_date, ' ')"
    return f"""
create or replace temp table flagged as
with raw as (
    select
        {renamed},
        ("Country" is null or {extra} is not null) as malformed,
        coalesce("StockCode" is null and {extra} is null and trim("InvoiceNo", {blanks}) = '', false) as blank
    from {read}
),

keyed as (
    select *, md5(concat_ws(chr(31), {key})) as line_id
    from raw
    where not blank
),

lines as (
    select *, row_number() over (partition by line_id, malformed) as copy, 1 as copies
    from keyed
),

parsed as (
    select
        *,
        {text("invoice_no")} as p_invoice_no,
        {text("stock_code")} as p_stock_code,
        {text("description")} as p_description,
        {text("country")} as p_country,
        try_cast(regexp_extract(quantity, '^{cast_blanks}*([+-]?[0-9]+){cast_blanks}*$', 1) as bigint) as p_quantity,
        case when regexp_matches({price}, '^{PRICE_PATTERN}{PRICE_EOL_RE2}$')
            then try_cast(rtrim({price}, chr(13) || chr(10)) as decimal(18, 3)) end as p_unit_price,
        -- The common shapes go straight to strptime (its own calendar checks); the rest through their parts.
        case
            when regexp_matches({date_text}, '^{ISO_SECONDS_SHAPE}$')
                then try_strptime({date_text}, '%Y-%m-%d %H:%M:%S')
            when regexp_matches({date_text}, '^{US_MINUTES_SHAPE}$')
                then try_strptime({date_text}, '%m/%d/%Y %H:%M')
            when contains({date_text}, '/')
                then {timestamp(f"regexp_extract({date_text}, '^{US_DATE_PATTERN}$', ['m', 'd', 'y', 'h', 'mi', 's'])")}
            else {timestamp(f"regexp_extract({date_text}, '^{ISO_DATE_PATTERN}$', ['y', 'm', 'd', 'h', 'mi', 's'])")}
        end as p_invoice_date,
        case when regexp_matches({customer}, '^{CUSTOMER_ID_PATTERN}{JAVA_EOL_RE2}$')
            then try_cast(regexp_extract({customer}, '^([0-9]+)', 1) as bigint) end as p_customer_id,
        {text("customer_id")} is not null as has_customer_id
    from lines
),

flagged as (
    select
        *,
        case
            when malformed then 'malformed_row'
            when copy > 1 then 'duplicate'
            when p_invoice_no is null then 'missing_invoice_no'
            when p_stock_code is null then 'missing_stock_code'
            when p_quantity is null then 'invalid_quantity'
            when p_unit_price is null then 'invalid_unit_price'
            when p_invoice_date is null then 'invalid_invoice_date'
            when p_invoice_date < {earliest} or p_invoice_date > {latest} then 'invoice_date_out_of_range'
            when p_customer_id is null and has_customer_id then 'invalid_customer_id'
            when {too_long} then 'value_too_long'
            when starts_with(p_invoice_no, 'C') and (p_quantity >= 0 or p_unit_price <= 0)
                then 'invalid_cancellation'
            when not starts_with(p_invoice_no, 'C') and p_quantity <= 0 then 'non_positive_quantity'
            when not starts_with(p_invoice_no, 'C') and p_unit_price <= 0 then 'non_positive_unit_price'
        end as reason
    from parsed
)

select
    line_id, reason, reason is null and starts_with(p_invoice_no, 'C') as is_return,
    p_invoice_no, p_stock_code, p_description, p_quantity, p_invoice_date, p_unit_price, p_customer_id, p_country,
    case when reason is null
        then cast(cast(p_quantity as decimal(19, 0)) * p_unit_price as decimal(38, 3)) end as total_sales,
    {", ".join(f"case when reason is not null then {c} end as {c}" for c in dialect.SOURCE_COLUMNS)}
from flagged

"""


# --- pandas ------------------------------------------------------------------------------------------------


def _pandas(
    raw_csv: Path,
    out_dir: Path,
    *,
    encoding: str,
    ingest_date: dt.date,
    date_window: tuple[dt.datetime, dt.datetime],
) -> CleanFigures:
    import numpy as np
    import pandas as pd

    names = list(dialect.SOURCE_COLUMNS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Strings as they are (no NA guessing); a record of more than 8 fields is skipped with a warning.
        df = pd.read_csv(
            raw_csv,
            header=None,
            skiprows=1,
            names=names,
            dtype=str,
            na_filter=False,
            index_col=False,
            on_bad_lines="warn",
            encoding=encoding,
            engine="c",
        )
    skipped = sum(len(re.findall(r"Skipping line \d+", str(w.message))) for w in caught)
    wide: list[list[str]] = []
    malformed = np.zeros(len(df), dtype=bool)
    if skipped or (df["country"] == "").any():
        # pandas pads a short record with empty strings, and it does not keep the wide ones: only then is
        # the file read again, with the csv module, to count each record's fields.
        counts, wide = _field_counts(raw_csv, encoding)
        if len(counts) != len(df):
            raise RuntimeError(f"pandas read {len(df)} rows but the csv module {len(counts)}")
        malformed = np.asarray(counts) != len(names)
    rows_in = len(df) + len(wide)
    raw = df.mask(df == "")  # an empty field is NULL
    del df

    columns = [raw[c].fillna(LINE_KEY_NULL).tolist() for c in names]
    line_id = pd.Series(
        [
            hashlib.md5(LINE_KEY_SEPARATOR.join(t).encode("utf-8")).hexdigest()
            for t in zip(*columns, strict=True)
        ],
        index=raw.index,
        dtype=str,
    )
    del columns
    duplicate = pd.Series(False, index=raw.index)
    well_formed = ~malformed
    duplicate[well_formed] = line_id[well_formed].duplicated()

    # Each rule is a function of one field's text, and fields repeat (dates, prices, codes, countries): parse
    # each distinct value once and map the results back, the usual pandas way with low-cardinality strings.
    text = {
        c: _on_distinct(raw[c], _normalised) for c in ("invoice_no", "stock_code", "description", "country")
    }
    quantity = _on_distinct(raw["quantity"], _parse_quantity)
    price_milli = _on_distinct(raw["unit_price"], _price_milli)
    invoice_date = _on_distinct(raw["invoice_date"], _invoice_date)
    customer_id = _on_distinct(raw["customer_id"], _parse_customer_id)
    has_customer = _on_distinct(raw["customer_id"], _normalised).notna()
    earliest, latest = (d.strftime("%Y-%m-%d %H:%M:%S") for d in date_window)  # invoice_date is that text
    cancelled = text["invoice_no"].str.startswith("C").fillna(False).astype(bool).to_numpy()

    conditions = [
        malformed,
        duplicate.to_numpy(),
        text["invoice_no"].isna().to_numpy(),
        text["stock_code"].isna().to_numpy(),
        quantity.isna().to_numpy(),
        price_milli.isna().to_numpy(),
        invoice_date.isna().to_numpy(),
        ((invoice_date < earliest) | (invoice_date > latest)).fillna(False).astype(bool).to_numpy(),
        (customer_id.isna() & has_customer).to_numpy(),
        np.logical_or.reduce(
            [
                (text[c].str.encode("utf-8").str.len() > width).fillna(False).astype(bool).to_numpy()
                for c, width in TEXT_WIDTHS.items()
            ]
        ),
        cancelled & ((quantity >= 0) | (price_milli <= 0)).fillna(False).astype(bool).to_numpy(),
        ~cancelled & (quantity <= 0).fillna(False).astype(bool).to_numpy(),
        ~cancelled & (price_milli <= 0).fillna(False).astype(bool).to_numpy(),
    ]
    reason = pd.Series(np.select(conditions, list(REJECT_REASONS), default=""), index=raw.index)
    kept = (reason == "").to_numpy()
    returned = kept & cancelled
    clean = kept & ~cancelled
    by_reason = reason[~kept].value_counts().to_dict()
    if wide:
        by_reason["malformed_row"] = by_reason.get("malformed_row", 0) + len(wide)

    q = quantity[clean].to_numpy(dtype="int64")
    p = price_milli[clean].to_numpy(dtype="int64")
    totals = _exact_products(q, p)
    total_milli = _exact_sum(totals)
    ids = line_id[clean]
    prefixes = (
        np.frombuffer(bytes.fromhex("".join(ids)), dtype=">u8").reshape(-1, 2)[:, 0].astype(np.uint64)
        if len(ids)
        else np.zeros(0, dtype=np.uint64)
    )
    digest = line_id_digest(int(prefixes.sum(dtype=np.uint64)))

    day = ingest_date.isoformat()

    def typed(rows: Any, unit_milli: Any, totals_milli: Any) -> Any:
        return pd.DataFrame(
            {
                "line_id": line_id[rows],
                "invoice_no": text["invoice_no"][rows],
                "stock_code": text["stock_code"][rows],
                "description": text["description"][rows],
                "quantity": quantity[rows].astype("int64").astype(str),
                "invoice_date": invoice_date[rows],
                "unit_price": _milli_text(unit_milli),
                "customer_id": customer_id[rows].astype("string").fillna(""),
                "country": text["country"][rows],
                "total_sales": _milli_text(totals_milli),
                "ingest_date": day,
            }
        )

    _write_tsv(typed(clean, p, totals), out_dir / CLEAN_FILE)
    rq = quantity[returned].to_numpy(dtype="int64")
    rp = price_milli[returned].to_numpy(dtype="int64")
    _write_tsv(typed(returned, rp, _exact_products(rq, rp)), out_dir / RETURNS_FILE)
    rejected = raw[~kept].apply(lambda s: s.str.translate(_FORBIDDEN_TABLE))
    rejected["reject_reason"] = reason[~kept]
    rejected["ingest_date"] = day
    if wide:
        extra = pd.DataFrame(wide, columns=names).apply(lambda s: s.str.translate(_FORBIDDEN_TABLE))
        extra["reject_reason"], extra["ingest_date"] = "malformed_row", day
        rejected = pd.concat([rejected, extra], ignore_index=True)
    _write_tsv(rejected, out_dir / QUARANTINE_FILE)
    return CleanFigures(
        engine="pandas",
        rows_in=rows_in,
        rows_clean=int(clean.sum()),
        total_sales=(Decimal(total_milli) / 1000).quantize(Decimal("0.001")),
        line_id_digest=digest,
        by_reason=_ordered(by_reason),
        rows_returns=int(returned.sum()),
    )


_FORBIDDEN_TABLE = {ord(c): " " for c in FORBIDDEN}


def _on_distinct(s: Any, parse: Any) -> Any:
    """``parse(s)``, computed on the distinct values of ``s`` only (NULL maps to NULL)."""
    import pandas as pd

    codes, distinct = pd.factorize(s)
    parsed = parse(pd.Series(distinct, dtype=s.dtype))
    return pd.Series(parsed.array.take(codes, allow_fill=True), index=s.index)


def _parse_quantity(s: Any) -> Any:
    """try_cast(trim(quantity) as bigint)."""
    return _bigint(s.str.strip(CAST_BLANKS), r"[+-]?[0-9]+")


def _parse_customer_id(s: Any) -> Any:
    """The customer number when the (space-trimmed) text is digits, maybe with a .0 tail; else NULL."""
    customer = s.str.strip(" ")
    ok = customer.str.fullmatch(CUSTOMER_ID_PATTERN + JAVA_EOL).fillna(False).astype(bool)
    return _bigint(customer.where(ok).str.partition(".")[0].str.rstrip(TERMINATORS), "[0-9]+")


def _normalised(s: Any) -> Any:
    """Tab, CR, LF and NUL become spaces, spaces are trimmed, an empty result is NULL."""
    out = s.str.translate(_FORBIDDEN_TABLE).str.strip(" ")
    return out.mask(out == "")


def _bigint(s: Any, pattern: str) -> Any:
    """``s`` as Int64 where it fully matches ``pattern`` (digits, maybe a sign) and fits a bigint, else NA."""
    import numpy as np

    ok = s.str.fullmatch(pattern).fillna(False).astype(bool).to_numpy()
    digits = s.where(ok).str.lstrip("+-").str.lstrip("0").str.len().fillna(99).to_numpy()
    values = np.zeros(len(s), dtype=np.int64)
    valid = ok & (digits <= 18)
    values[valid] = s[valid].astype("int64").to_numpy()
    for i in np.flatnonzero(ok & (digits == 19)):  # the few near the edge: exact Python ints
        value = int(s.iloc[i])
        if -BIGINT_MAX - 1 <= value <= BIGINT_MAX:
            values[i], valid[i] = value, True
    return _int64(values, valid, s.index)


def _int64(values: Any, valid: Any, index: Any) -> Any:
    """An Int64 series from int64 values and a validity mask (assigning into an Int64 series by a boolean
    mask goes through float64 in pandas and rounds values above 2^53)."""
    import pandas as pd

    return pd.Series(pd.arrays.IntegerArray(values, ~valid), index=index)


def _price_milli(s: Any) -> Any:
    """The unit price in thousandths (exact decimal(18,3)) as Int64, NA where the contract refuses it."""
    import numpy as np

    s = s.str.strip(" ")
    ok = s.str.fullmatch(PRICE_PATTERN + PRICE_EOL).fillna(False).astype(bool).to_numpy()
    core = s.where(ok).str.rstrip("\r\n")
    negative = core.str.startswith("-").fillna(False).astype(bool).to_numpy()
    parts = core.str.lstrip("+-").str.partition(".")
    whole = parts[0].str.lstrip("0")
    fraction = parts[2].str.rstrip("0").str.ljust(3, "0")
    valid = ok & (whole.str.len().fillna(99).to_numpy() <= PRICE_DIGITS)
    values = np.zeros(len(s), dtype=np.int64)
    values[valid] = (
        whole[valid].replace("", "0").astype("int64").to_numpy() * 1000
        + fraction[valid].astype("int64").to_numpy()
    )
    values[negative] = -values[negative]
    return _int64(values, valid, s.index)


def _invoice_date(s: Any) -> Any:
    """``YYYY-MM-DD HH:MM:SS`` text of the parsed timestamp, NA where neither layout family parses."""
    import pandas as pd

    s = s.str.strip(" ")
    slash = s.str.contains("/", regex=False).fillna(False).astype(bool)
    canonical = pd.Series(pd.NA, index=s.index, dtype="string")
    iso = s[~slash]
    iso_ok = iso.str.fullmatch(ISO_DATE_PATTERN).fillna(False).astype(bool)
    iso = iso[iso_ok]
    canonical[iso.index] = iso.where(iso.str.len() != 16, iso + ":00")
    us = s[slash].str.extract("^" + US_DATE_PATTERN + r"\Z").dropna(subset=[0])
    if len(us):
        numbers = us.fillna("0").apply(lambda c: c.str.slice(0, 19).astype("float64"))
        # Widths beyond 2 digits only parse when the value itself is small (Java reads "012" as 12).
        small = (numbers[[0, 1, 3]] < 100).all(axis=1)
        numbers = numbers[small].astype("int64")
        text = (
            numbers[2].astype(str).str.zfill(4)
            + "-"
            + numbers[0].astype(str).str.zfill(2)
            + "-"
            + numbers[1].astype(str).str.zfill(2)
            + " "
            + numbers[3].astype(str).str.zfill(2)
            + ":"
            + numbers[4].astype(str).str.zfill(2)
            + ":"
            + numbers[5].astype(str).str.zfill(2)
        )
        canonical[text.index] = text
    # strptime takes 60 and 61 for seconds (leap seconds); Java's ss does not.
    parsed = pd.to_datetime(canonical, format="%Y-%m-%d %H:%M:%S", errors="coerce")
    return canonical.where(parsed.notna() & (canonical.str.slice(17, 19) < "60").fillna(False).astype(bool))


def _exact_products(q: Any, p: Any) -> Any:
    """quantity x price in thousandths, exactly: int64 where it cannot overflow, Python ints where it might."""
    import numpy as np

    safe = np.abs(q.astype("float64") * p.astype("float64")) < 2.0**62
    if safe.all():
        return q * p
    out = (q * np.where(safe, p, 0)).astype(object)
    for i in np.flatnonzero(~safe):
        out[i] = int(q[i]) * int(p[i])
    return out


def _exact_sum(values: Any) -> int:
    import numpy as np

    if values.dtype != object and abs(float(values.astype("float64").sum())) < 2.0**62:
        return int(values.sum(dtype=np.int64))
    return sum(int(v) for v in values)


def _milli_text(values: Any) -> Any:
    """Thousandths as plain decimal text: 2550 -> 2.550, -5 -> -0.005."""
    import numpy as np
    import pandas as pd

    values = np.asarray(values)
    negative = pd.Series(values < 0)
    magnitude = np.abs(values)
    whole = pd.Series(magnitude // 1000).astype(str)
    fraction = pd.Series(magnitude % 1000).astype(str).str.zfill(3)
    text = whole + "." + fraction
    return text.where(~negative, "-" + text).to_numpy()


def _field_counts(raw_csv: Path, encoding: str) -> tuple[list[int], list[list[str]]]:
    """Fields per record as pandas keeps them (blank lines and records wider than 8 left out), and the wide
    records' first 8 fields (what Spark keeps of them)."""
    counts: list[int] = []
    wide: list[list[str]] = []
    width = len(dialect.SOURCE_COLUMNS)
    with open(raw_csv, encoding=encoding, newline="") as handle:
        records = csv.reader(handle)
        next(records, None)
        for record in records:
            if not record or (len(record) == 1 and not record[0].strip(" \t")):
                continue
            if len(record) > width:
                wide.append([v if v != "" else None for v in record[:width]])  # type: ignore[misc]
            else:
                counts.append(len(record))
    return counts, wide


def _write_tsv(df: Any, path: Path) -> None:
    """The pipeline's TSV dialect: tab, no quoting, empty for NULL (values hold no tab, CR or LF)."""
    with open(path, "w", encoding=dialect.ENCODING, newline="") as handle:
        handle.write(dialect.SEPARATOR.join(df.columns) + dialect.LINE_TERMINATOR)
        if len(df):
            columns = [df[c].astype("string").fillna("") for c in df.columns]
            lines = columns[0].str.cat(columns[1:], sep=dialect.SEPARATOR)
            handle.write(dialect.LINE_TERMINATOR.join(lines) + dialect.LINE_TERMINATOR)


def _ordered(by_reason: dict[str, int]) -> dict[str, int]:
    return {r: int(by_reason[r]) for r in REJECT_REASONS if by_reason.get(r)}


# --- as a process of its own -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m retail_pipeline.bench.references",
        description="Clean a raw Online Retail CSV with a reference engine; print or write its figures.",
    )
    parser.add_argument("engine", choices=ENGINES)
    parser.add_argument("raw_csv", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--encoding", default="utf-8", choices=("utf-8", "iso-8859-1"))
    parser.add_argument("--ingest-date", type=dt.date.fromisoformat)
    parser.add_argument("--result", type=Path, help="write the figures here as JSON (default: stdout)")
    args = parser.parse_args(argv)
    figures = run(
        args.engine, args.raw_csv, args.out_dir, encoding=args.encoding, ingest_date=args.ingest_date
    )
    text = json.dumps(figures.to_json(), indent=2)
    if args.result:
        args.result.write_text(text + "\n", encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
