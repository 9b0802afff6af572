"""An s3:// lake that AWS cannot serve (no credentials, nothing listening): one line and exit 4, never a botocore
traceback; and -v never prints the session token (botocore's debug log signs every request with it).

Each case runs the CLI in a process of its own: boto3's default session caches the credentials an earlier test
in this process may have set up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from retail_core import dialect
from retail_core.errors import InputError
from retail_pipeline import cli

REPO = Path(__file__).resolve().parents[2]
TOKEN = "SessTokJunk999"


@pytest.fixture
def no_aws(tmp_path):
    """An environment where botocore finds no credentials anywhere and never asks the instance metadata, and a
    small export to ingest."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RETAIL_", "KAGGLE"))}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_REGION="us-east-1",
        AWS_MAX_ATTEMPTS="1",
        RETAIL_METRICS="lake",
    )
    csv = tmp_path / "export.csv"
    csv.write_text(",".join(dialect.RAW_COLUMNS) + "\n536365,X,Y,1,2010-12-01 08:26:00,1.0,,France\n")
    return env, csv


def _ingest(env: dict[str, str], csv: Path, *flags: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "retail_pipeline.cli", *flags, "--lake", "s3://retail-bucket/lake"]
    args += ["ingest", "--path", str(csv)]
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)


def test_no_credentials_is_one_line_and_exit_4(no_aws):
    env, csv = no_aws
    done = _ingest(env, csv)
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if "error:" in x]
    assert (
        line.startswith("retail-pipeline ingest: error: AWS could not be reached") and "AWS_PROFILE" in line
    )


def test_verbose_logging_never_prints_the_session_token(no_aws):
    env, csv = no_aws
    with socket.socket() as closed:  # a loopback port nothing listens on: the connection is refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env.update(
        AWS_ACCESS_KEY_ID="AKIAJUNKJUNKJUNK",
        AWS_SECRET_ACCESS_KEY="junk-secret-key",
        AWS_SESSION_TOKEN=TOKEN,
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
    )
    done = _ingest(env, csv, "-v")
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr and "Could not connect" in done.stderr
    assert "INFO botocore" in done.stderr  # -v took effect: the SDK's INFO shows, its DEBUG (the headers) not
    assert TOKEN not in done.stderr and "junk-secret-key" not in done.stderr


def test_a_bug_still_raises():
    """Only botocore's own failures are turned into a line; anything else is a bug and keeps its traceback."""
    assert cli._aws_error_line(ValueError("x")) is None


# --- what a signal cuts short fails after it ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signum", "failure", "code"),
    [
        # dbt catches a Ctrl-C in its node and fails the build: the stage's error is an InputError.
        (2, InputError("dbt build failed", "the project", "see the log"), 130),
        # A JVM killed with the process group answers py4j with a refused connection (an OSError).
        (15, ConnectionRefusedError(111, "Connection refused"), 143),
    ],
)
def test_an_error_after_a_signal_is_reported_as_the_interruption(monkeypatch, capsys, signum, failure, code):
    from retail_core import interrupts

    def cut_short() -> None:
        monkeypatch.setattr(interrupts, "_received", [signum])
        raise failure

    monkeypatch.setattr(cli.metrics, "check_env", cut_short)
    assert cli.main(["report"]) == code
    assert capsys.readouterr().err.strip().splitlines()[-1] == "retail-pipeline report: interrupted"
