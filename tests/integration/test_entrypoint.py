"""The task image's entrypoint, run here without Docker: secrets from Secrets Manager (moto's server over HTTP),
the state machine's dbt flags, artifacts shipped to S3, and a real ingest through it as a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from orchestration import entrypoint
from tests.fakes.moto_s3 import moto_server, s3_client

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BUCKET = "retail-entrypoint-test"
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
ROW = "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"


class Recorder:
    """Stands in for the subprocess runner: records the command and environment, can write dbt artifacts."""

    def __init__(self, code: int = 0, artifacts: Path | None = None) -> None:
        self.code = code
        self.artifacts = artifacts
        self.calls: list[tuple[list[str], dict[str, str]]] = []

    def __call__(self, command, env):
        self.calls.append((list(command), dict(env)))
        if self.artifacts is not None:
            self.artifacts.mkdir(parents=True, exist_ok=True)
            (self.artifacts / "run_results.json").write_text('{"results": []}')
            (self.artifacts / "manifest.json").write_text('{"nodes": {}}')
            (self.artifacts / "index.html").write_text("<html></html>")
            (self.artifacts / "graph.gpickle").write_bytes(b"not shipped")
        return self.code


class NoSecretsManager:
    def get_secret_value(self, **kwargs):
        raise AssertionError("Secrets Manager must not be called when the environment has the credentials")


@pytest.fixture(scope="module")
def endpoint():
    with moto_server() as url:
        s3_client(url).create_bucket(Bucket=BUCKET)
        secrets = boto3.client(
            "secretsmanager",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        secrets.create_secret(
            Name="retail/kaggle", SecretString=json.dumps({"username": "ann", "key": "k-123"})
        )
        secrets.create_secret(
            Name="retail/redshift",
            SecretString=json.dumps({"username": "retail_admin", "password": "p@ss", "port": 5439}),
        )
        secrets.create_secret(Name="retail/incomplete", SecretString=json.dumps({"username": "ann"}))
        yield url


@pytest.fixture
def aws_env(endpoint, monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return {"AWS_ENDPOINT_URL": endpoint, "PATH": os.environ["PATH"], "RETAIL_RUN_ID": "exec-7"}


def test_secrets_named_in_the_environment_are_read_from_secrets_manager(aws_env):
    runner = Recorder()
    env = {**aws_env, "KAGGLE_SECRET_ID": "retail/kaggle", "REDSHIFT_SECRET_ID": "retail/redshift"}
    assert entrypoint.main(["ingest", "--source", "kaggle"], env, runner=runner) == 0
    [(command, seen)] = runner.calls
    assert command == [sys.executable, "-m", "retail_pipeline.cli", "ingest", "--source", "kaggle"]
    assert (seen["KAGGLE_USERNAME"], seen["KAGGLE_KEY"]) == ("ann", "k-123")
    assert (seen["REDSHIFT_USER"], seen["REDSHIFT_PASSWORD"], seen["REDSHIFT_PORT"]) == (
        "retail_admin",
        "p@ss",
        "5439",
    )
    assert "REDSHIFT_HOST" not in seen  # not in the secret: the task definition sets it


def test_credentials_already_in_the_environment_win_over_the_secret():
    runner = Recorder()
    env = {
        "KAGGLE_SECRET_ID": "retail/kaggle",
        "KAGGLE_USERNAME": "bob",
        "KAGGLE_KEY": "mine",
        "RETAIL_RUN_ID": "r",
    }
    assert entrypoint.main(["ingest"], env, runner=runner, secrets_client=NoSecretsManager()) == 0
    assert runner.calls[0][1]["KAGGLE_USERNAME"] == "bob"


@pytest.mark.parametrize(
    ("secret_id", "code", "message"),
    [
        ("retail/missing", 2, "could not read secret retail/missing (ResourceNotFoundException)"),
        ("retail/incomplete", 2, "has no key"),
    ],
)
def test_a_missing_or_incomplete_secret_stops_before_the_command(aws_env, capsys, secret_id, code, message):
    runner = Recorder()
    assert entrypoint.main(["ingest"], {**aws_env, "KAGGLE_SECRET_ID": secret_id}, runner=runner) == code
    assert runner.calls == []
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("entrypoint: error: ") and message in last


def test_build_gets_the_state_machines_select_full_refresh_and_docs():
    runner = Recorder()
    env = {
        "RETAIL_RUN_ID": "exec-8",
        "RETAIL_DBT_SELECT": "gold",
        "RETAIL_DBT_FULL_REFRESH": "true",
        "RETAIL_DBT_DOCS": "true",
        "DBT_TARGET_PATH": "/nonexistent",
    }
    entrypoint.main(["build", "--target", "prod", "--ingest-date", "2024-03-01"], env, runner=runner)
    command = runner.calls[0][0]
    assert command[3:] == [
        "build",
        "--target",
        "prod",
        "--ingest-date",
        "2024-03-01",
        "--select",
        "gold",
        "--full-refresh",
        "--docs",
    ]


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        ({"RETAIL_DBT_SELECT": "", "RETAIL_DBT_FULL_REFRESH": "false"}, ["build"], ["build"]),
        ({"RETAIL_DBT_SELECT": "gold"}, ["build", "--select", "staging"], ["build", "--select", "staging"]),
        ({"RETAIL_DBT_FULL_REFRESH": "True"}, ["run"], ["run", "--full-refresh"]),
        ({"RETAIL_DBT_DOCS": "1"}, ["run"], ["run"]),  # `run` has no --docs
    ],
)
def test_dbt_flags_are_added_only_when_asked_and_not_given(env, args, expected):
    assert entrypoint.with_dbt_flags(args, env) == expected


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"RETAIL_DBT_SELECT": "gold --vars {x: 1}"}, "--vars"),
        ({"RETAIL_DBT_SELECT": "gold\n--target prod"}, "--target"),
        ({"RETAIL_DBT_SELECT": "--empty"}, "--empty"),
        ({"RETAIL_RUN_ID": "../exec"}, "RETAIL_RUN_ID"),
        ({"RETAIL_METRICS": "statsd"}, "RETAIL_METRICS"),
    ],
)
def test_a_hostile_execution_input_exits_2_in_one_line_before_secrets_or_the_command(capsys, env, named):
    runner = Recorder()

    class NoSecretRead:
        def get_secret_value(self, **_kwargs: object) -> None:
            raise AssertionError("a secret was read before the input was checked")

    code = entrypoint.main(
        ["build"], {"KAGGLE_SECRET_ID": "retail/kaggle", **env}, runner=runner, secrets_client=NoSecretRead()
    )
    assert code == 2
    assert runner.calls == []
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("entrypoint: error: ") and named in line


def test_dbt_artifacts_are_shipped_to_s3_even_when_a_test_failed(aws_env, tmp_path):
    target = tmp_path / "target"
    runner = Recorder(code=3, artifacts=target)
    env = {**aws_env, "RETAIL_LAKE": f"s3://{BUCKET}/lake", "DBT_TARGET_PATH": str(target)}
    assert entrypoint.main(["build", "--target", "prod"], env, runner=runner) == 3
    listed = s3_client(aws_env["AWS_ENDPOINT_URL"]).list_objects_v2(
        Bucket=BUCKET, Prefix="lake/dbt-artifacts/"
    )
    keys = sorted(o["Key"] for o in listed["Contents"])
    prefix = "lake/dbt-artifacts/online_retail/run_id=exec-7/"
    assert keys == [f"{prefix}index.html", f"{prefix}manifest.json", f"{prefix}run_results.json"]


def test_a_build_that_passed_but_could_not_ship_its_artifacts_fails(tmp_path, capsys):
    target = tmp_path / "target"
    blocked = tmp_path / "lake-is-a-file"
    blocked.write_text("")
    env = {"RETAIL_RUN_ID": "exec-9", "RETAIL_LAKE": str(blocked), "DBT_TARGET_PATH": str(target)}
    assert entrypoint.main(["build"], env, runner=Recorder(code=0, artifacts=target)) == 4
    assert "could not ship the dbt artifacts" in capsys.readouterr().err


def test_ingest_runs_through_the_entrypoint_as_the_container_would(tmp_path):
    csv = tmp_path / "export.csv"
    csv.write_text(HEADER + ROW)
    lake = tmp_path / "lake"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAGGLE", "RETAIL_"))}
    env.update({"RETAIL_LAKE": str(lake), "PYTHONPATH": str(REPO)})
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestration.entrypoint",
            "ingest",
            "--source",
            "file",
            "--path",
            str(csv),
            "--ingest-date",
            "2024-03-01",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    landed = lake / "raw-data/online_retail/ingest_date=2024-03-01/online_retail.csv"
    assert landed.read_text() == HEADER + ROW


def test_without_a_command_it_prints_its_usage_and_fails(capsys):
    assert entrypoint.main([], {}) == 2
    assert "entrypoint.py COMMAND" in capsys.readouterr().out
