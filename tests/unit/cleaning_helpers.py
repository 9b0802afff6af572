"""Small raw batches for the cleaning tests: rows of the eight raw strings, numbered in file order."""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from glue.cleaning import CORRUPT_RECORD_COLUMN, flag_rows
from retail_core.dialect import SOURCE_COLUMNS

# A clean line from the real file.
GOOD: dict[str, str | None] = {
    "invoice_no": "536365",
    "stock_code": "85123A",
    "description": "WHITE HANGING HEART T-LIGHT HOLDER",
    "quantity": "6",
    "invoice_date": "2010-12-01 08:26:00",
    "unit_price": "2.55",
    "customer_id": "17850.0",
    "country": "United Kingdom",
}


def raw_row(**changes: str | None) -> dict[str, str | None]:
    """GOOD with some fields changed (None: the field is empty in the CSV)."""
    unknown = set(changes) - set(GOOD) - {CORRUPT_RECORD_COLUMN}
    assert not unknown, unknown
    return {**GOOD, **changes}


def raw_frame(spark: SparkSession, rows: list[dict[str, Any]]) -> DataFrame:
    """The rows as the reader gives them: strings, ``_corrupt_record``, and ``line_no`` (1-based) in order."""
    schema = T.StructType(
        [T.StructField(c, T.StringType()) for c in SOURCE_COLUMNS]
        + [T.StructField(CORRUPT_RECORD_COLUMN, T.StringType()), T.StructField("line_no", T.LongType())]
    )
    data = [
        (*[row.get(c) for c in SOURCE_COLUMNS], row.get(CORRUPT_RECORD_COLUMN), number)
        for number, row in enumerate(rows, start=1)
    ]
    return spark.createDataFrame(data, schema)


def flagged(spark: SparkSession, rows: list[dict[str, Any]]) -> DataFrame:
    return flag_rows(raw_frame(spark, rows), order_by=("line_no",))


def reasons(spark: SparkSession, rows: list[dict[str, Any]]) -> list[str | None]:
    """reject_reason of each row, in file order."""
    out = flagged(spark, rows).select("line_no", "reject_reason").collect()
    return [r.reject_reason for r in sorted(out, key=lambda r: r.line_no)]
