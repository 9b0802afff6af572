"""Values from outside the project reach SQL as literals quoted by one macro, macros/sql_string.sql."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jinja2
import pytest

from warehouse import project

MACROS = project.PROJECT_DIR / "macros"


class _Returned(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class CompilerError(Exception):
    pass


def _raise_return(value: Any) -> str:
    raise _Returned(value)


def _raise_compiler_error(message: str) -> None:
    raise CompilerError(message)


def _returning(macro: Any) -> Callable[..., Any]:
    """A macro as dbt calls it: its value is what it passes to return(), else what it renders."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return macro(*args, **kwargs)
        except _Returned as returned:
            return returned.value

    return call


def macros(*files: str, **stubs: Any) -> dict[str, Callable[..., Any]]:
    """Every macro of ``files`` (each its own template, so that they call each other through the globals, as dbt's
    macros do) with dbt's return(), exceptions and the given stand-ins (var, source, ...)."""
    environment = jinja2.Environment(extensions=["jinja2.ext.do"])
    environment.globals.update(
        {
            "return": _raise_return,
            "exceptions": type("E", (), {"raise_compiler_error": _raise_compiler_error}),
        }
    )
    environment.globals.update(stubs)
    texts = [(MACROS / name).read_text(encoding="utf-8") for name in ("sql_string.sql", *files)]
    found: dict[str, Callable[..., Any]] = {}
    # A module copies the globals when it is made: first a forwarder per macro name, then the modules.
    for text in texts:
        for name in _names(text):
            environment.globals[name] = _forward(found, name)
    for text in texts:
        module = environment.from_string(text).module
        for attr in dir(module):
            value = getattr(module, attr)
            if isinstance(value, jinja2.runtime.Macro):
                found[attr] = _returning(value)
    return found


def _names(text: str) -> set[str]:
    return set(re.findall(r"{%-?\s*macro\s+(\w+)", text))


def _forward(found: dict[str, Callable[..., Any]], name: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return found[name](*args, **kwargs)

    return call


def test_sql_string_doubles_single_quotes_and_leaves_ordinary_values_as_they_were():
    quote = macros()["sql_string"]
    assert quote("s3://bucket/lake/processed-data/online_retail/ingest_date=2024-01-31/part-") == (
        "'s3://bucket/lake/processed-data/online_retail/ingest_date=2024-01-31/part-'"
    )
    assert quote("x' or '1'='1") == "'x'' or ''1''=''1'"
    assert quote("''") == "''''''"


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "C:\\lake", "x\\'; drop table t; --"])
def test_sql_string_refuses_nul_line_breaks_and_backslashes(value):
    with pytest.raises(CompilerError, match="NUL, line break or backslash"):
        macros()["sql_string"](value)


def test_product_kind_quotes_the_vars_it_pastes_into_sql():
    dbt_vars = {
        "non_product_stock_codes": {"POST": "postage", "X'Y": "it's"},
        "gift_voucher_stock_code_prefix": "gift_0001'",
    }
    product_kind = macros("product_kind.sql", var=dbt_vars.__getitem__)["product_kind"]
    sql = " ".join(str(product_kind("stock_code")).split())
    assert "when upper(stock_code) in ('POST') then 'postage'" in sql
    assert "when upper(stock_code) in ('X''Y') then 'it''s'" in sql
    assert "when lower(left(stock_code, 10)) = 'gift_0001''' then 'gift_voucher'" in sql


def _copy_macros() -> dict[str, Callable[..., Any]]:
    return macros(
        "dialect.sql",
        "lake_source.sql",
        "load_batches.sql",
        source=lambda _source, table: f"staging.{table}",
        var=lambda _name, default=None: default,
        env_var=lambda _name, default="": default,
    )


PARTITION = "processed-data/online_retail/ingest_date=2024-01-31"
BATCH = {
    "ingest_date": "2024-01-31",
    "files": [f"{PARTITION}/part-00000-g1.tsv", f"{PARTITION}/part-00001-g1.tsv"],
    "copy_manifest": f"{PARTITION}/_copy_manifest-g1.json",
}


def test_the_redshift_copy_reads_the_copy_manifest_and_quotes_the_lake_path_and_the_iam_role():
    copy = _copy_macros()["redshift__batch_copy_statements"]
    ordinary = copy("2024-01-31", BATCH, "s3://bucket/lake", "arn:aws:iam::1:role/copy")
    assert (
        f" from 's3://bucket/lake/{PARTITION}/_copy_manifest-g1.json' iam_role 'arn:aws:iam::1:role/copy' manifest"
        in ordinary["transactions"]
    )
    hostile = copy("2024-01-31", BATCH, "s3://b/x' iam_role 'y", "arn:x' region 'z")
    assert "from 's3://b/x'' iam_role ''y/processed-data/" in hostile["transactions"]
    assert "iam_role 'arn:x'' region ''z' format as json 'auto'" in hostile["report"]


def test_the_duckdb_load_reads_exactly_the_named_files_and_quotes_the_lake_path():
    copy = _copy_macros()["duckdb__batch_copy_statements"]
    ordinary = copy("2024-01-31", BATCH, "data/lake", None)
    assert (
        f"from read_csv(['data/lake/{PARTITION}/part-00000-g1.tsv', 'data/lake/{PARTITION}/part-00001-g1.tsv'], "
        in ordinary["transactions"]
    )
    hostile = copy("2024-01-31", BATCH, "/tmp/a'); drop table x; --", None)
    assert "read_json('/tmp/a''); drop table x; --/quality/online_retail/" in hostile["report"]


@pytest.mark.parametrize(
    "key",
    [
        "processed-data/online_retail/ingest_date=2024-02-01/part-00000-g1.tsv",  # another date's file
        "processed-data/online_retail/ingest_date=2024-01-31/../../../quality/x.json",
        "raw-data/online_retail/ingest_date=2024-01-31/online_retail.csv",
    ],
)
def test_a_load_refuses_a_file_outside_its_dates_partition(key):
    for engine in ("redshift", "duckdb"):
        copy = _copy_macros()[f"{engine}__batch_copy_statements"]
        batch = {**BATCH, "files": [key], "copy_manifest": key}
        with pytest.raises(CompilerError, match="not a file of"):
            copy("2024-01-31", batch, "s3://bucket/lake", "arn:aws:iam::1:role/copy")


def _checking_macros() -> dict[str, Callable[..., Any]]:
    import types

    return macros(modules=types.SimpleNamespace(re=re))


@pytest.mark.parametrize(
    ("value", "ok"), [("10000", True), (" 5 ", True), ("1; drop table x", False), ("1e9", False)]
)
def test_a_number_var_reaches_sql_as_digits_only(value, ok):
    check = _checking_macros()["sql_integer"]
    if ok:
        assert check(value, "customer_share_min_rows") == value.strip()
    else:
        with pytest.raises(CompilerError, match="customer_share_min_rows must be a whole number"):
            check(value, "customer_share_min_rows")


@pytest.mark.parametrize(
    ("value", "ok"), [("gold_audit", True), ("gold", True), ('gold"; drop schema x', False), ("Gold", False)]
)
def test_the_gold_build_schema_is_a_plain_identifier(value, ok):
    check = _checking_macros()["sql_identifier"]
    if ok:
        assert check(value, "RETAIL_GOLD_BUILD_SCHEMA") == value
    else:
        with pytest.raises(CompilerError, match="RETAIL_GOLD_BUILD_SCHEMA must be a lower-case identifier"):
            check(value, "RETAIL_GOLD_BUILD_SCHEMA")
