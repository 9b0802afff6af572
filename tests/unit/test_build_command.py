"""``retail-pipeline build``'s dbt target: the flag, else RETAIL_DBT_TARGET (what a bare `dbt` reads), else dev."""

from __future__ import annotations

import re

import pytest

from retail_core.errors import InputError
from retail_pipeline import cli
from retail_pipeline.commands import build as build_command


@pytest.mark.parametrize(
    ("flag", "env", "target"),
    [
        (None, {}, "dev"),
        (None, {"RETAIL_DBT_TARGET": "prod"}, "prod"),
        (None, {"RETAIL_DBT_TARGET": ""}, "dev"),
        ("dev", {"RETAIL_DBT_TARGET": "prod"}, "dev"),  # the flag wins
        ("prod", {}, "prod"),
    ],
)
def test_the_target_is_the_flag_then_the_environment_then_dev(flag, env, target):
    assert build_command.dbt_target(flag, env) == target


def test_an_unknown_target_in_the_environment_is_refused_naming_the_variable():
    with pytest.raises(
        InputError, match=re.escape("unknown dbt target 'staging' (RETAIL_DBT_TARGET): set it to dev or prod")
    ):
        build_command.dbt_target(None, {"RETAIL_DBT_TARGET": "staging"})


def test_the_command_builds_the_environments_target(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(build_command, "parse", lambda settings, *, target: seen.append(target) or 0.0)
    monkeypatch.setenv("RETAIL_DBT_TARGET", "prod")
    argv = [
        "--lake",
        str(tmp_path / "lake"),
        "--duckdb-path",
        str(tmp_path / "w.duckdb"),
        "build",
        "--parse-only",
    ]
    assert cli.main(argv) == 0
    assert cli.main([*argv, "--target", "dev"]) == 0
    assert seen == ["prod", "dev"]


def test_a_bad_target_exits_2_in_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RETAIL_RUN_ID", raising=False)
    monkeypatch.setenv("RETAIL_DBT_TARGET", "Prod ")
    lake = tmp_path / "lake"
    assert cli.main(["--lake", str(lake), "--duckdb-path", str(tmp_path / "w.duckdb"), "build"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("retail-pipeline build: error: unknown dbt target") and "RETAIL_DBT_TARGET" in line
    assert not lake.exists() and not (tmp_path / "w.duckdb").exists()
