"""The dbt project reads the lake in the dialect retail_core/dialect.py defines: its macros must agree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jinja2
import pytest

from retail_core import dialect
from warehouse import project

MACROS = project.PROJECT_DIR / "macros" / "dialect.sql"


class _Returned(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


def _raise_return(value: Any) -> str:
    raise _Returned(value)


def _macro(name: str) -> Callable[[], Any]:
    """Call a macro of macros/dialect.sql as dbt would: its value is what it passes to return()."""
    environment = jinja2.Environment(extensions=["jinja2.ext.do"])
    environment.globals["return"] = _raise_return
    module = environment.from_string(MACROS.read_text(encoding="utf-8")).module

    def call() -> Any:
        try:
            getattr(module, name)()
        except _Returned as returned:
            return returned.value
        raise AssertionError(f"macro {name} returned nothing")

    return call


def test_processed_schema_macro_lists_the_dialect_columns_and_types_in_file_order() -> None:
    assert [tuple(pair) for pair in _macro("processed_schema")()] == list(dialect.PROCESSED_SCHEMA)


@pytest.mark.parametrize(
    ("macro", "schema"),
    [
        ("run_report_schema", dialect.RUN_REPORT_SCHEMA),
        ("pending_batch_schema", dialect.PENDING_BATCH_SCHEMA),
    ],
)
def test_the_small_source_tables_macros_list_the_dialects_columns_in_table_order(
    macro: str, schema: tuple[tuple[str, str], ...]
) -> None:
    assert [tuple(pair) for pair in _macro(macro)()] == list(schema)


def test_duckdb_read_options_macro_is_the_dialect_read_options() -> None:
    assert _macro("duckdb_read_options")() == dialect.duckdb_read_options()


def test_redshift_copy_options_macro_is_the_dialect_copy_options() -> None:
    assert _macro("redshift_copy_options")() == dialect.redshift_copy_options()


@pytest.mark.parametrize(
    "option", ["DELIMITER '\\t'", "IGNOREHEADER 1", "NULL AS '\\000'", "TIMEFORMAT 'YYYY-MM-DD HH:MI:SS'"]
)
def test_copy_options_hold_what_the_issue_requires(option: str) -> None:
    assert option in _macro("redshift_copy_options")()


def test_copy_options_never_switch_on_csv_quoting_or_escapes() -> None:
    options = _macro("redshift_copy_options")().upper().split()
    assert "CSV" not in options
    assert "ESCAPE" not in options
    assert "REMOVEQUOTES" not in options
