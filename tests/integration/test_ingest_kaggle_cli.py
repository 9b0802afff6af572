"""`retail-pipeline ingest` with Kaggle credentials: the real client, the fake server, the lake, end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.fake_kaggle import FakeKaggle

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _env(fake: FakeKaggle, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE") and "PROXY" not in k.upper()}
    env.update(fake.client_env())
    env.update(
        HOME=str(home),
        KAGGLE_CONFIG_DIR=str(home / ".kaggle"),
        KAGGLE_USERNAME=fake.username,
        KAGGLE_KEY=fake.key,
    )
    return env


def test_default_source_is_kaggle_with_credentials_and_lands_download_without_secrets(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    lake = tmp_path / "lake"
    with FakeKaggle() as fake:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "retail_pipeline.cli",
                "--lake",
                str(lake),
                "ingest",
                "--ingest-date",
                "2024-06-01",
            ],
            capture_output=True,
            text=True,
            env=_env(fake, home),
            cwd=REPO,
            timeout=120,
        )
        served = fake.csv_bytes
        assert len(fake.download_calls) == 1
    assert result.returncode == 0, result.stderr
    assert "kaggle (KAGGLE_USERNAME" in result.stdout
    part = lake / "raw-data/online_retail/ingest_date=2024-06-01"
    assert (part / "online_retail.csv").read_bytes() == served
    manifest_text = (part / "_manifest.json").read_text()
    manifest = json.loads(manifest_text)
    assert manifest["source"] == "kaggle"
    assert manifest["source_details"]["dataset"] == "ulrikthygepedersen/online-retail-dataset"
    for secret in (fake.key, fake.username):
        assert secret not in manifest_text
        assert secret not in result.stdout + result.stderr
