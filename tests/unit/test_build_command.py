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


def test_a_warehouse_that_cannot_be_reached_is_an_upstream_failure_exit_4(tmp_path, capsys, monkeypatch):
    """dbt-redshift against a port where nothing listens: it was exit 2 (bad input), "fix the cause above"; an
    unreachable warehouse is a service that failed, exit 4, as S3 or Kaggle are."""
    from warehouse import project

    monkeypatch.delenv("RETAIL_RUN_ID", raising=False)
    monkeypatch.setenv("DBT_PROFILES_DIR", str(project.copy_profiles_example(tmp_path / "profiles")))
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "target"))
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "logs"))
    for name, value in {"HOST": "127.0.0.1", "PORT": "1", "USER": "u", "PASSWORD": "not-a-secret"}.items():
        monkeypatch.setenv(f"REDSHIFT_{name}", value)
    assert cli.main(["--lake", str(tmp_path / "lake"), "build", "--target", "prod"]) == 4
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(
        "retail-pipeline build: error: dbt prepare_sources failed: the warehouse could not be"
    )
    assert "(dbt target prod)" in line and "REDSHIFT_HOST" in line and "not-a-secret" not in line


@pytest.mark.parametrize(
    ("detail", "code"),
    [
        ("Database Error: ('communication error', ConnectionRefusedError(111, 'Connection refused'))", 4),
        ('could not translate host name "nowhere" to address: Name or service not known', 4),
        ("Compilation Error in model customers: 'x' is undefined", 2),
        ('Database Error: relation "gold.customers" does not exist', 2),
    ],
)
def test_dbt_failures_are_told_apart_by_what_the_driver_said(detail, code):
    from warehouse import project

    assert project.dbt_failure("dbt build failed", detail, "prod").exit_code == code


def test_a_second_build_of_the_same_lake_exits_5_in_one_line_having_changed_nothing(
    tmp_path, capsys, monkeypatch
):
    """A scheduled run and a backfill overlap: the second build would load, build the audit schema and publish over
    the first's (one could publish the other's audited tables before their tests ran)."""
    import datetime as dt

    from retail_core import layout, lease
    from retail_core.lake import LocalLake
    from warehouse import project

    monkeypatch.setenv("RETAIL_METRICS", "lake")
    lake = LocalLake(tmp_path / "lake")
    lake.write_json(f"{layout.processed_prefix(dt.date(2024, 1, 1))}/{layout.MANIFEST_NAME}", {"files": []})
    ran = []
    monkeypatch.setattr(project, "invoke_dbt_logged", lambda *a, **k: ran.append(a) or pytest.fail("dbt ran"))
    argv = ["--lake", str(lake.root), "--duckdb-path", str(tmp_path / "w.duckdb"), "build"]
    with lease.held_warehouse(lake, stage="build", run_id="run-first"):
        assert cli.main(argv) == 5
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("retail-pipeline build: error: another writer is working on the warehouse")
    assert "held by the build of run run-first" in line and layout.warehouse_lease_key() in line
    assert ran == [] and not (tmp_path / "w.duckdb").exists()
    # A date's lease is another lease: the warehouse's does not hold back an ingest or a transform.
    with lease.held(lake, dt.date(2024, 1, 1), stage="ingest", run_id="run-second"):
        pass
