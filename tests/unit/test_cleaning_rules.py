"""The cleaning contract (docs/cleaning-contract.md), rule by rule, through the pure functions."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
from decimal import Decimal

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from glue import cleaning
from retail_core import contract, dialect
from retail_core.errors import InputError
from tests.unit.cleaning_helpers import GOOD, flagged, raw_frame, raw_row, reasons

INGEST = dt.date(2024, 1, 2)


# Rule 1: column names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "snake"),
    [
        ("InvoiceNo", "invoice_no"),
        ("StockCode", "stock_code"),
        ("Description", "description"),
        ("Quantity", "quantity"),
        ("InvoiceDate", "invoice_date"),
        ("UnitPrice", "unit_price"),
        ("CustomerID", "customer_id"),
        ("Country", "country"),
        (" Unit Price ", "unit_price"),
        ("customer_id", "customer_id"),
    ],
)
def test_raw_column_names_become_snake_case(raw, snake):
    assert cleaning.snake_case(raw) == snake


def test_rename_columns_gives_the_contract_names_and_keeps_bookkeeping_columns(spark):
    df = spark.createDataFrame([(*"abcdefgh", 1)], [*dialect.RAW_COLUMNS, "_row_id"])
    assert cleaning.rename_columns(df).columns == [*dialect.SOURCE_COLUMNS, "_row_id"]


def test_rename_columns_rejects_a_missing_column(spark):
    df = spark.createDataFrame([tuple("abcdefg")], list(dialect.RAW_COLUMNS[:7]))
    with pytest.raises(InputError, match="wrong columns"):
        cleaning.rename_columns(df)


# Rule 2: exact duplicates ----------------------------------------------------------------------------------


def test_exact_duplicates_keep_the_first_copy_and_quarantine_the_others(spark):
    other = raw_row(stock_code="71053")
    rows = [raw_row(), other, raw_row(), other, raw_row()]
    assert reasons(spark, rows) == [None, None, "duplicate", "duplicate", "duplicate"]


def test_the_first_copy_is_the_earliest_in_file_order_whatever_the_shuffle(spark):
    # 60 distinct rows, each copied later in the file: the later copy is always the one rejected.
    rows = [raw_row(stock_code=str(n)) for n in range(60)]
    got = reasons(spark, rows + rows[::-1])
    assert got == [None] * 60 + ["duplicate"] * 60


def test_rows_that_differ_in_any_raw_field_are_not_duplicates(spark):
    rows = [
        raw_row(),
        raw_row(customer_id="17850"),
        raw_row(description=" WHITE HANGING HEART T-LIGHT HOLDER"),
    ]
    assert reasons(spark, rows) == [None, None, None]


def test_a_copy_of_a_rejected_row_is_quarantined_as_duplicate(spark):
    cancelled = raw_row(invoice_no="C536379", quantity="1")  # a cancellation that gives nothing back
    assert reasons(spark, [cancelled, cancelled]) == ["invalid_cancellation", "duplicate"]


def test_a_cancellation_taking_goods_back_is_a_return_not_a_reject_and_a_copy_of_it_a_duplicate(spark):
    returned = raw_row(invoice_no="C536379", quantity="-1")
    rows = flagged(spark, [returned, returned, raw_row()]).collect()
    got = sorted((r.line_no, r.reject_reason, r.is_return) for r in rows)
    assert got == [(1, None, True), (2, "duplicate", False), (3, None, False)]


def test_line_id_is_md5_of_the_raw_fields_with_null_distinct_from_empty(spark):
    rows = [raw_row(customer_id=None), raw_row(customer_id="")]
    got = {r.line_no: r.line_id for r in flagged(spark, rows).collect()}
    for number, value in ((1, "\u0000"), (2, "")):
        fields = [*list(GOOD.values())[:6], value, GOOD["country"]]
        assert got[number] == hashlib.md5("\u001f".join(fields).encode("utf-8")).hexdigest()
    assert got[1] != got[2]


# Rule 3: reject reasons, each one ---------------------------------------------------------------------------


ONE_RULE_BROKEN = [
    ({"_corrupt_record": '536365,85123A,"WHITE'}, "malformed_row"),
    ({"invoice_no": None}, "missing_invoice_no"),
    ({"invoice_no": "   "}, "missing_invoice_no"),
    ({"stock_code": None}, "missing_stock_code"),
    ({"stock_code": "\t"}, "missing_stock_code"),
    ({"quantity": None}, "invalid_quantity"),
    ({"quantity": "6.0"}, "invalid_quantity"),
    ({"quantity": "six"}, "invalid_quantity"),
    ({"quantity": "1e3"}, "invalid_quantity"),
    ({"quantity": "99999999999999999999"}, "invalid_quantity"),
    ({"unit_price": None}, "invalid_unit_price"),
    ({"unit_price": "2,55"}, "invalid_unit_price"),
    ({"unit_price": "1e-3"}, "invalid_unit_price"),
    ({"unit_price": "0.0015"}, "invalid_unit_price"),  # a 4th decimal would be rounded away
    ({"unit_price": "£2.55"}, "invalid_unit_price"),
    ({"unit_price": "9999999999999999.5"}, "invalid_unit_price"),  # 16 integer digits overflow decimal(18,3)
    ({"invoice_date": None}, "invalid_invoice_date"),
    ({"invoice_date": "2010-13-01 08:26:00"}, "invalid_invoice_date"),
    ({"invoice_date": "12/32/2010 8:26"}, "invalid_invoice_date"),
    ({"invoice_date": "01.12.2010 08:26"}, "invalid_invoice_date"),
    ({"invoice_date": "2099-12-01 08:26:00"}, "invoice_date_out_of_range"),
    ({"invoice_date": "12/1/2099 8:26"}, "invoice_date_out_of_range"),
    ({"invoice_date": "1999-12-31 23:59:59"}, "invoice_date_out_of_range"),
    ({"customer_id": "17850.5"}, "invalid_customer_id"),
    ({"customer_id": "guest"}, "invalid_customer_id"),
    ({"customer_id": "99999999999999999999"}, "invalid_customer_id"),  # beyond bigint
    ({"invoice_no": "5" * 17}, "value_too_long"),  # the warehouse widths: dialect.PROCESSED_SCHEMA
    ({"stock_code": "S" * 33}, "value_too_long"),
    ({"description": "D" * 513}, "value_too_long"),
    ({"description": "É" * 257}, "value_too_long"),  # 257 characters, 514 bytes: Redshift counts bytes
    ({"country": "C" * 65}, "value_too_long"),
    ({"invoice_no": "C536379"}, "invalid_cancellation"),  # a positive quantity: nothing comes back
    ({"invoice_no": "C536379", "quantity": "0"}, "invalid_cancellation"),
    ({"invoice_no": "C536379", "quantity": "-1", "unit_price": "0"}, "invalid_cancellation"),
    ({"quantity": "0"}, "non_positive_quantity"),
    ({"quantity": "-12"}, "non_positive_quantity"),
    ({"unit_price": "0"}, "non_positive_unit_price"),
    ({"unit_price": "0.000"}, "non_positive_unit_price"),
    ({"unit_price": "-11062.06"}, "non_positive_unit_price"),
]

SEVERAL_RULES_BROKEN = [
    ({"invoice_no": None, "stock_code": None, "quantity": "x"}, "missing_invoice_no"),
    ({"stock_code": None, "quantity": "x", "invoice_no": "C1"}, "missing_stock_code"),
    ({"quantity": "x", "unit_price": "y", "invoice_date": "z"}, "invalid_quantity"),
    ({"unit_price": "y", "invoice_date": "z"}, "invalid_unit_price"),
    ({"invoice_date": "z", "customer_id": "y", "invoice_no": "C1"}, "invalid_invoice_date"),
    (
        {"invoice_date": "2099-01-01 00:00:00", "customer_id": "y", "description": "D" * 600},
        "invoice_date_out_of_range",
    ),
    ({"customer_id": "y", "invoice_no": "C1", "description": "D" * 600}, "invalid_customer_id"),
    ({"description": "D" * 600, "invoice_no": "C1", "quantity": "-1"}, "value_too_long"),
    ({"invoice_no": "C1", "quantity": "-1", "unit_price": "-1"}, "invalid_cancellation"),
    ({"quantity": "-1", "unit_price": "0"}, "non_positive_quantity"),
]


@pytest.fixture(scope="module")
def reason_of(spark):
    """The reason of every case above, from one DataFrame (one Spark job instead of one per case)."""
    cases = ONE_RULE_BROKEN + SEVERAL_RULES_BROKEN
    # A distinct country per case keeps the cases from being duplicates of each other.
    rows = [raw_row(**{"country": f"case {n}", **changes}) for n, (changes, _) in enumerate(cases)]
    got = reasons(spark, rows)
    return lambda changes: got[[c for c, _ in cases].index(changes)]


@pytest.mark.parametrize(("changes", "reason"), ONE_RULE_BROKEN)
def test_each_broken_rule_has_its_reason(reason_of, changes, reason):
    assert reason_of(changes) == reason


@pytest.mark.parametrize(("changes", "reason"), SEVERAL_RULES_BROKEN)
def test_a_row_breaking_several_rules_gets_the_first_in_contract_order(reason_of, changes, reason):
    assert reason_of(changes) == reason


def test_every_reject_reason_is_tested_here_in_contract_order():
    tested = [reason for _, reason in ONE_RULE_BROKEN]
    assert list(dict.fromkeys(["malformed_row", "duplicate", *tested])) == list(contract.REJECT_REASONS)


def test_values_exactly_as_wide_as_their_warehouse_column_are_clean(spark):
    widest = {"invoice_no": "5" * 16, "stock_code": "S" * 32, "description": "É" * 256, "country": "C" * 64}
    assert reasons(spark, [raw_row(**widest)]) == [None]


def test_the_invoice_date_window_is_configurable_and_includes_both_ends(spark):
    window = (dt.datetime(2010, 12, 1, 8, 26), dt.datetime(2010, 12, 31, 23, 59, 59))
    dates = ["2010-12-01 08:26:00", "2010-12-31 23:59:59", "2010-12-01 08:25:59", "2011-01-01 00:00:00"]
    rows = [raw_row(invoice_date=d) for d in dates]
    out = cleaning.flag_rows(raw_frame(spark, rows), order_by=("line_no",), date_window=window).collect()
    got = [r.reject_reason for r in sorted(out, key=lambda r: r.line_no)]
    assert got == [None, None, "invoice_date_out_of_range", "invoice_date_out_of_range"]


# Rule 4: types ---------------------------------------------------------------------------------------------


def _clean(spark, rows):
    return cleaning.clean_rows(flagged(spark, rows), INGEST)


def test_clean_rows_have_the_processed_columns_and_types(spark):
    df = _clean(spark, [raw_row()])
    assert tuple(df.columns) == dialect.PROCESSED_COLUMNS
    types = dict(df.dtypes)
    assert types["quantity"] == "bigint"
    assert types["unit_price"] == "decimal(18,3)"
    assert types["total_sales"] == "decimal(38,3)"
    assert types["invoice_date"] == "timestamp"
    assert types["customer_id"] == "bigint"
    assert types["ingest_date"] == "date"


def test_quantity_is_a_bigint_wide_enough_for_any_real_value(spark):
    rows = [
        raw_row(quantity="80995"),
        raw_row(quantity="9223372036854775807", stock_code="X"),
        raw_row(quantity=" +7 ", stock_code="Y"),
    ]
    got = sorted(r.quantity for r in _clean(spark, rows).collect())
    assert got == [7, 80995, 9223372036854775807]


@pytest.mark.parametrize(
    ("text", "exact"),
    [("0.001", "0.001"), ("2.55", "2.550"), ("2.5500", "2.550"), ("38970", "38970.000"), (".5", "0.500")],
)
def test_unit_price_is_an_exact_three_decimal_number(spark, text, exact):
    (row,) = _clean(spark, [raw_row(unit_price=text)]).collect()
    assert row.unit_price == Decimal(exact)


def test_total_sales_is_quantity_times_unit_price_exactly(spark):
    rows = [
        raw_row(quantity="3", unit_price="0.001"),
        raw_row(quantity="80995", unit_price="2.08", stock_code="23843"),
        raw_row(quantity="9223372036854775807", unit_price="999999999999999.999", stock_code="BIG"),
    ]
    got = {r.stock_code: r.total_sales for r in _clean(spark, rows).collect()}
    assert got["85123A"] == Decimal("0.003")
    assert got["23843"] == Decimal("168469.600")
    with decimal.localcontext(prec=60):  # Python's default 28 digits would round the expected value
        assert got["BIG"] == Decimal("9223372036854775807") * Decimal("999999999999999.999")


@pytest.mark.parametrize(
    "text",
    ["2010-12-01 08:26:00", "12/1/2010 8:26", "12/01/2010 08:26", "2010-12-01 08:26", "12/1/2010 8:26:00"],
)
def test_invoice_date_is_read_from_both_formats(spark, text):
    (row,) = _clean(spark, [raw_row(invoice_date=text)]).collect()
    assert row.invoice_date == dt.datetime(2010, 12, 1, 8, 26)


def test_the_fast_path_for_iso_dates_reads_exactly_what_the_formatters_read(spark):
    """parse_invoice_date casts the yyyy-MM-dd HH:mm:ss layout instead of running the formatters: on every
    text, valid or not, it must give what the formatters alone give (epoch seconds: year 0 has no datetime)."""
    texts = [
        "2010-12-01 08:26:00",
        " 2010-12-01 08:26:00 ",
        "0000-01-01 00:00:00",
        "1582-10-10 00:00:00",
        "9999-12-31 23:59:59",
        "2012-02-29 12:00:00",
        "2011-02-29 00:00:00",
        "1900-02-29 00:00:00",
        "2010-04-31 10:00:00",
        "2010-13-01 00:00:00",
        "2010-00-01 00:00:00",
        "2010-12-00 00:00:00",
        "2010-12-01 24:00:00",
        "2010-12-01 23:60:00",
        "2010-12-01 23:59:60",
        "2010-12-01 08:26:00\n",
        "2010-12-01 08:26:00\r\n",
        "2010-12-01 08:26:00\u0085",
        "\n2010-12-01 08:26:00",
        "2010-12-01T08:26:00",
        "2010-12-01 08:26:00.5",
        "2010-12-01\t08:26:00",
        "+010-12-01 08:26:00",
        "20100-12-01 08:26:00",
        "2010-12-01 8:26:00",
        "２０１０-12-01 08:26:00",
        "2010-12-01 08:26",
        "12/1/2010 8:26",
    ]
    text = F.trim(F.col("t"))

    def formatters(formats):
        return F.coalesce(*[F.try_to_timestamp(text, F.lit(f)) for f in formats])

    slow = F.when(F.instr(text, "/") > 0, formatters(contract.US_DATE_FORMATS)).otherwise(
        formatters(contract.ISO_DATE_FORMATS)
    )
    df = spark.createDataFrame([(t,) for t in texts], "t string")
    got = df.select(
        "t", cleaning.parse_invoice_date("t").cast("long").alias("fast"), slow.cast("long").alias("slow")
    ).collect()
    assert [(r.t, r.fast) for r in got] == [(r.t, r.slow) for r in got]
    assert sum(r.fast is not None for r in got) == 8  # both sides parse some, and refuse the rest


def test_customer_id_float_text_becomes_an_integer_and_a_missing_one_is_a_guest(spark):
    rows = [
        raw_row(customer_id="17850.0"),
        raw_row(customer_id="17850", stock_code="A"),
        raw_row(customer_id=None, stock_code="B"),
        raw_row(customer_id="  ", stock_code="C"),
    ]
    got = {r.stock_code: r.customer_id for r in _clean(spark, rows).collect()}
    assert got == {"85123A": 17850, "A": 17850, "B": None, "C": None}


# Rule 5: description ---------------------------------------------------------------------------------------


def test_description_is_trimmed_and_tab_cr_lf_become_spaces(spark):
    (row,) = _clean(spark, [raw_row(description="  SET OF 3\tCAKE\r\nTINS \n\x00")]).collect()
    assert row.description == "SET OF 3 CAKE  TINS"


def test_a_missing_description_is_kept_as_null_on_a_clean_row(spark):
    rows = [raw_row(description=None), raw_row(description="   ", stock_code="X")]
    got = _clean(spark, rows).collect()
    assert len(got) == 2
    assert {r.description for r in got} == {None}


def test_quotes_backslashes_commas_and_pipes_in_descriptions_are_kept(spark):
    text = "SET/3 \"CAKE\" TINS, RED|BLUE \\ 50% 'OFF'"
    (row,) = _clean(spark, [raw_row(description=text)]).collect()
    assert row.description == text


# Outputs ---------------------------------------------------------------------------------------------------


def test_quarantine_rows_keep_the_original_values_line_number_and_reason(spark):
    bad = raw_row(quantity=" 6.0 ", customer_id="17850.0", description="A\tB")
    df = flagged(spark, [raw_row(), bad])
    out = cleaning.quarantine_rows(df, INGEST).collect()
    assert tuple(cleaning.quarantine_rows(df, INGEST).columns) == dialect.QUARANTINE_COLUMNS
    (row,) = out
    assert row.line_no == 2
    assert row.reject_reason == "invalid_quantity"
    assert (row.quantity, row.customer_id, row.unit_price) == (" 6.0 ", "17850.0", "2.55")
    assert row.description == "A B"  # only what the TSV cannot carry is changed
    assert row.ingest_date == INGEST


def test_clean_returned_and_quarantined_rows_partition_the_input(spark):
    rows = [
        raw_row(),
        raw_row(),
        raw_row(quantity="x"),
        raw_row(stock_code=None),
        raw_row(stock_code="Z"),
        raw_row(invoice_no="C536379", quantity="-2"),
    ]
    df = flagged(spark, rows)
    clean = cleaning.clean_rows(df, INGEST).count()
    (returned,) = cleaning.return_rows(df, INGEST).collect()
    quarantined = cleaning.quarantine_rows(df, INGEST).count()
    assert (clean, quarantined) == (2, 3)
    assert clean + 1 + quarantined == raw_frame(spark, rows).count()
    assert (returned.invoice_no, returned.quantity, str(returned.total_sales)) == ("C536379", -2, "-5.100")
    assert tuple(cleaning.return_rows(df, INGEST).columns) == tuple(cleaning.clean_rows(df, INGEST).columns)


def test_clean_line_ids_are_unique(spark):
    rows = [raw_row(stock_code=str(n % 7)) for n in range(30)]
    ids = [r.line_id for r in _clean(spark, rows).collect()]
    assert len(ids) == len(set(ids)) == 7


def test_flag_rows_keeps_columns_it_does_not_know(spark):
    df = raw_frame(spark, [raw_row()]).withColumn("extra", F.lit(1))
    out = cleaning.flag_rows(df, order_by=("line_no",))
    assert "extra" in out.columns
    assert dict(out.dtypes)["reject_reason"] == "string"
    assert isinstance(out.schema["parsed_unit_price"].dataType, T.DecimalType)
