"""The execution input's ``select`` reaches dbt as arguments: only dbt's selector grammar gets through."""

from __future__ import annotations

import pytest

from retail_core.errors import InputError
from retail_core.selector import parse_selector
from retail_pipeline import cli


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("gold", ["gold"]),
        ("+sales_transactions", ["+sales_transactions"]),
        ("2+customers+1 @products", ["2+customers+1", "@products"]),
        ("tag:nightly,config.materialized:table", ["tag:nightly,config.materialized:table"]),
        ("source:online_retail.transactions+", ["source:online_retail.transactions+"]),
        ("path:models/staging resource_type:unit_test", ["path:models/staging", "resource_type:unit_test"]),
        (
            "package:online_retail test_type:data fqn:gold.*",
            ["package:online_retail", "test_type:data", "fqn:gold.*"],
        ),
        (
            "models/gold/customers.sql stg_online_retail__transactions",
            ["models/gold/customers.sql", "stg_online_retail__transactions"],
        ),
        ("  ", []),
        (None, []),
    ],
)
def test_dbt_selectors_are_accepted_and_split_into_words(text, words):
    assert parse_selector(text) == words


@pytest.mark.parametrize(
    "text",
    [
        "gold --vars {x:1}",
        "--target prod",
        "gold -s staging",
        "--empty",
        "-x",
        "gold,--full-refresh",
        "tag:-x",
        "state:modified",  # needs --state: not something the input can ask for
        "gold;drop",
        "gold'",
        "a,,b",
        "@+gold",
        "gold\x00",
        "x" * 2001,
    ],
)
def test_anything_but_a_selector_is_refused(text):
    with pytest.raises(InputError):
        parse_selector(text)


def test_build_select_with_options_exits_2_in_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RETAIL_RUN_ID", raising=False)
    monkeypatch.delenv("RETAIL_METRICS", raising=False)
    lake = tmp_path / "lake"
    code = cli.main(
        [
            "--lake",
            str(lake),
            "--duckdb-path",
            str(tmp_path / "w.duckdb"),
            "build",
            "--select=gold --target prod",
        ]
    )
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("retail-pipeline build: error: not a dbt selector") and "--target" in line
    assert not lake.exists() and not (tmp_path / "w.duckdb").exists()


def test_a_bad_run_id_stops_the_cli_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RETAIL_RUN_ID", "../../etc")
    lake = tmp_path / "lake"
    code = cli.main(["--lake", str(lake), "ingest", "--path", str(tmp_path / "missing.csv")])
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("retail-pipeline ingest: error: bad run id") and "RETAIL_RUN_ID" in line
    assert not lake.exists()
