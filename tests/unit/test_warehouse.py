"""How the pipeline hands its configuration to dbt and reads dbt's verdict, without running dbt."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from retail_core.config import Settings
from retail_core.errors import InputError
from warehouse import project
from warehouse.build import _failures, build


def test_dbt_env_passes_absolute_paths_and_builds_gold_in_the_audit_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = project.dbt_env(Settings(lake="lake", duckdb_path=Path("wh.duckdb")))
    assert env["RETAIL_LAKE"] == str(tmp_path / "lake")
    assert env["RETAIL_DUCKDB_PATH"] == str(tmp_path / "wh.duckdb")
    assert env["RETAIL_GOLD_BUILD_SCHEMA"] == "gold_audit"


def test_dbt_env_keeps_an_s3_lake_and_builds_gold_in_place_without_audit() -> None:
    env = project.dbt_env(Settings(lake="s3://bucket/lake"), audit=False)
    assert env["RETAIL_LAKE"] == "s3://bucket/lake"
    assert env["RETAIL_GOLD_BUILD_SCHEMA"] == "gold"


def test_environ_sets_variables_only_for_the_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETAIL_LAKE", "before")
    monkeypatch.delenv("RETAIL_INGEST_DATE", raising=False)
    with project.environ({"RETAIL_LAKE": "during", "RETAIL_INGEST_DATE": "2024-01-02"}):
        assert os.environ["RETAIL_LAKE"] == "during"
    assert os.environ["RETAIL_LAKE"] == "before"
    assert "RETAIL_INGEST_DATE" not in os.environ


def _result(name: str, resource_type: str, status: str, message: str = "") -> SimpleNamespace:
    return SimpleNamespace(
        node=SimpleNamespace(name=name, resource_type=resource_type), status=status, message=message
    )


def test_failures_name_failed_tests_and_failed_models_apart_from_warnings() -> None:
    results = SimpleNamespace(
        results=[
            _result("customers", "model", "success"),
            _result("sales_transactions", "model", "error", "Binder Error: no column x\nLINE 3"),
            _result("unique_customers_customerid", "test", "fail"),
            _result("products_pick_rule", "unit_test", "error"),
            _result("accepted_values_customers_country", "test", "warn"),
            _result("not_null_products_stockcode", "test", "pass"),
        ]
    )
    tests, nodes, warnings = _failures(results)
    assert tests == ["unique_customers_customerid", "products_pick_rule"]
    assert nodes == ["sales_transactions: Binder Error: no column x"]
    assert warnings == 1


def test_build_without_processed_data_says_to_run_the_transform(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no processed data to build from"):
        build(Settings(lake=str(tmp_path / "lake"), duckdb_path=tmp_path / "wh.duckdb"), run_id="r")
