"""An s3:// lake that AWS cannot serve (no credentials, nothing listening): one line and exit 4, never a botocore
traceback; and -v never prints the session token (botocore's debug log signs every request with it)."""

from __future__ import annotations

import logging
import socket

import pytest

from retail_core import dialect
from retail_pipeline import cli

TOKEN = "SessTokJunk999"


@pytest.fixture
def no_aws(tmp_path, monkeypatch):
    """An environment where botocore finds no credentials anywhere and never asks the instance metadata."""
    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "RETAIL_RUN_ID",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("RETAIL_METRICS", "lake")
    csv = tmp_path / "export.csv"
    csv.write_text(",".join(dialect.RAW_COLUMNS) + "\n536365,X,Y,1,2010-12-01 08:26:00,1.0,,France\n")
    yield csv
    logging.getLogger().handlers.clear()  # main's handler wrote to the captured stderr


def test_no_credentials_is_one_line_and_exit_4(no_aws, capsys):
    code = cli.main(["--lake", "s3://retail-bucket/lake", "ingest", "--path", str(no_aws)])
    err = capsys.readouterr().err
    assert code == 4, err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if "error:" in x]
    assert (
        line.startswith("retail-pipeline ingest: error: AWS could not be reached") and "AWS_PROFILE" in line
    )


def test_verbose_logging_never_prints_the_session_token(no_aws, capsys, monkeypatch):
    with socket.socket() as closed:  # a loopback port nothing listens on: the connection is refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAJUNKJUNKJUNK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "junk-secret-key")
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    code = cli.main(["-v", "--lake", "s3://retail-bucket/lake", "ingest", "--path", str(no_aws)])
    err = capsys.readouterr().err
    assert code == 4, err
    assert "Traceback" not in err and "Could not connect" in err
    assert TOKEN not in err and "junk-secret-key" not in err
    assert logging.getLogger("botocore").getEffectiveLevel() == logging.INFO  # -v's DEBUG stops at the SDK


def test_a_bug_still_raises(monkeypatch):
    """Only botocore's own failures are turned into a line; anything else is a bug and keeps its traceback."""
    assert cli._aws_error_line(ValueError("x")) is None
