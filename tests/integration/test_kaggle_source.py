"""The Kaggle source driven through the real ``kaggle`` client against a fake Kaggle on 127.0.0.1."""

from __future__ import annotations

import base64
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingestion.sources.kaggle import DATASET, download_csv
from retail_core.errors import InputError, UpstreamError
from tests.fakes.fake_kaggle import CSV_BYTES, DOWNLOAD_METHOD, FakeKaggle, fresh_kaggle_import

pytestmark = pytest.mark.integration

# Variables that would let the developer's own Kaggle set-up, or a proxy, leak into a test.
_CLEARED = (
    "VERBOSE",
    "VERBOSE_OUTPUT",
    "XDG_CONFIG_HOME",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)


class Sleeps(list[float]):
    """An injected ``sleep`` that records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeKaggle]:
    for name in list(os.environ):
        if name.startswith("KAGGLE_") or name in _CLEARED:
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(home / ".kaggle"))
    with FakeKaggle() as server, fresh_kaggle_import():
        for name, value in server.client_env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("KAGGLE_USERNAME", server.username)
        monkeypatch.setenv("KAGGLE_KEY", server.key)
        yield server


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "raw"


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def _files_in(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


def test_download_extracts_the_served_csv_byte_for_byte(fake: FakeKaggle, dest: Path, sleeps: Sleeps) -> None:
    csv_path = download_csv(dest, sleep=sleeps)

    assert csv_path.read_bytes() == CSV_BYTES
    assert _files_in(dest) == [csv_path], "only the CSV is left: no zip, no staging folder"
    assert sleeps == []
    [call] = fake.download_calls
    assert (call.method, call.host, call.path) == ("POST", "localhost", "/api/v1/" + DOWNLOAD_METHOD)
    assert call.auth_scheme == "Basic"
    assert call.json_body == {"ownerSlug": "ulrikthygepedersen", "datasetSlug": "online-retail-dataset"}
    # The client followed Kaggle's redirect to storage and did not carry the credentials there.
    [storage] = fake.storage_calls
    assert storage.method == "GET" and storage.auth_scheme is None


def test_the_one_csv_is_extracted_whatever_it_is_called(fake: FakeKaggle, dest: Path) -> None:
    fake.csv_name = "data/Online Retail 2010-2011.csv"

    csv_path = download_csv(dest, sleep=Sleeps())

    assert csv_path == dest / "Online Retail 2010-2011.csv"
    assert csv_path.read_bytes() == CSV_BYTES


def test_rate_limited_download_is_retried_after_a_backoff(
    fake: FakeKaggle, dest: Path, sleeps: Sleeps
) -> None:
    fake.script = [429, "ok"]

    csv_path = download_csv(dest, sleep=sleeps, backoff_seconds=2.0)

    assert csv_path.read_bytes() == CSV_BYTES
    assert len(fake.download_calls) == 2
    assert sleeps == [2.0]


def test_retry_after_from_kaggle_sets_the_wait(fake: FakeKaggle, dest: Path, sleeps: Sleeps) -> None:
    fake.script = [429, 503, "ok"]
    fake.retry_after = "7"

    download_csv(dest, sleep=sleeps, backoff_seconds=2.0)

    assert sleeps == [7.0, 7.0]
    assert len(fake.download_calls) == 3


def test_server_errors_back_off_exponentially_then_recover(
    fake: FakeKaggle, dest: Path, sleeps: Sleeps
) -> None:
    fake.script = [500, 502, 503, "ok"]

    csv_path = download_csv(dest, sleep=sleeps, backoff_seconds=0.5)

    assert csv_path.read_bytes() == CSV_BYTES
    assert sleeps == [0.5, 1.0, 2.0]


def test_server_errors_that_outlast_the_attempts_raise_upstream_error_and_leave_nothing(
    fake: FakeKaggle, dest: Path, sleeps: Sleeps
) -> None:
    fake.script = [503] * 10

    with pytest.raises(UpstreamError) as caught:
        download_csv(dest, max_attempts=3, backoff_seconds=0.5, sleep=sleeps)

    message = str(caught.value)
    assert "\n" not in message
    assert "3 attempts" in message and "HTTP 503" in message and DATASET in message
    assert caught.value.exit_code == 4
    assert len(fake.download_calls) == 3
    assert sleeps == [0.5, 1.0], "no wait after the last attempt"
    assert _files_in(dest) == []


def test_unreachable_kaggle_is_retried_then_reported(
    fake: FakeKaggle, dest: Path, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:1")

    with pytest.raises(UpstreamError, match="after 2 attempts"):
        download_csv(dest, max_attempts=2, sleep=sleeps)

    assert sleeps == [2.0]
    assert _files_in(dest) == []


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("corrupt", "bad CRC"),
        ("truncated", "not a readable zip"),
        ("not-a-zip", "not a readable zip"),
        ("no-csv", "exactly one CSV, it holds 0"),
        ("two-csvs", "exactly one CSV, it holds 2"),
        ("encrypted", "not a readable zip .*password required"),
    ],
)
def test_a_bad_zip_raises_input_error_and_leaves_nothing(
    fake: FakeKaggle, dest: Path, sleeps: Sleeps, variant: str, expected: str
) -> None:
    fake.script = [variant]

    with pytest.raises(InputError, match=expected) as caught:
        download_csv(dest, sleep=sleeps)

    assert "\n" not in str(caught.value)
    assert _files_in(dest) == []
    assert len(fake.download_calls) == 1, "a bad zip is not retried"
    assert sleeps == []


def test_a_signal_during_the_download_is_an_interruption_not_a_credentials_error(
    fake: FakeKaggle, dest: Path, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kaggle.api.kaggle_api_extended import KaggleApi

    from retail_core import interrupts

    def stopped(*_args: object, **_kwargs: object) -> None:
        interrupts._handler(signal.SIGTERM, None)  # what ECS stopping the task raises in the main thread

    monkeypatch.setattr(KaggleApi, "dataset_download_files", stopped)
    monkeypatch.setattr(interrupts, "_received", [])
    with pytest.raises(SystemExit) as caught:
        download_csv(dest, sleep=sleeps)
    assert caught.value.code == 143
    assert interrupts.seen() and sleeps == []


def test_refused_credentials_are_reported_and_not_retried(
    fake: FakeKaggle, dest: Path, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAGGLE_KEY", "ffffffffffffffffffffffffffffffff")

    with pytest.raises(InputError) as caught:
        download_csv(dest, sleep=sleeps)

    assert str(caught.value) == (
        f"Kaggle refused the credentials (HTTP 401) ({DATASET}): "
        "check KAGGLE_USERNAME/KAGGLE_KEY (or KAGGLE_API_TOKEN, or ~/.kaggle/kaggle.json)"
    )
    assert len(fake.download_calls) == 1
    assert sleeps == []
    assert _files_in(dest) == []


@pytest.mark.parametrize(("status", "expected"), [(403, "HTTP 403"), (404, "HTTP 404")])
def test_forbidden_or_missing_dataset_is_reported_and_not_retried(
    fake: FakeKaggle, dest: Path, sleeps: Sleeps, status: int, expected: str
) -> None:
    fake.script = [status]

    with pytest.raises(InputError, match=expected):
        download_csv(dest, sleep=sleeps)

    assert len(fake.download_calls) == 1
    assert sleeps == []


def test_an_unknown_dataset_reference_is_sent_to_kaggle_and_reported(fake: FakeKaggle, dest: Path) -> None:
    with pytest.raises(InputError, match=r"no such dataset \(HTTP 404\) \(someone/not-there\)"):
        download_csv(dest, dataset="someone/not-there", sleep=Sleeps())

    assert fake.download_calls[0].json_body == {"ownerSlug": "someone", "datasetSlug": "not-there"}


def test_an_access_token_is_sent_as_bearer(
    fake: FakeKaggle, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.token = "KGAT_0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", fake.token)

    csv_path = download_csv(dest, sleep=Sleeps())

    assert csv_path.read_bytes() == CSV_BYTES
    assert [call.auth_scheme for call in fake.download_calls] == ["Bearer"]


def test_credentials_never_reach_logs_output_or_errors(
    fake: FakeKaggle,
    dest: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # VERBOSE makes the kaggle client print every request with its Authorization header.
    monkeypatch.setenv("VERBOSE", "1")
    caplog.set_level(logging.DEBUG)
    fake.username = "retail-ci-user-5e1d"
    fake.key = "9a8b7c6d5e4f39281706f5e4d3c2b1a0"
    fake.token = "KGAT_77aa66bb55cc44dd33ee22ff11009988"
    monkeypatch.setenv("KAGGLE_USERNAME", fake.username)
    monkeypatch.setenv("KAGGLE_KEY", fake.key)
    fake.script = [429, "ok"]
    errors: list[str] = []

    download_csv(dest / "key", sleep=Sleeps())
    monkeypatch.setenv("KAGGLE_KEY", "0000" + fake.key[4:])  # refused: 401
    with pytest.raises(InputError) as refused:
        download_csv(dest / "refused", sleep=Sleeps())
    errors.append(str(refused.value))
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", fake.token)
    download_csv(dest / "token", sleep=Sleeps())

    out, err = capfd.readouterr()
    seen = "\n".join([out, err, caplog.text, *errors])
    assert "Downloading Kaggle dataset" in caplog.text, "the logs were captured"
    assert "kaggle client output" in caplog.text, "the client's own output was captured"
    secrets = {
        "username": fake.username,
        "key": fake.key,
        "refused key": "0000" + fake.key[4:],
        "token": fake.token,
        "basic auth": base64.b64encode(f"{fake.username}:{fake.key}".encode()).decode(),
    }
    leaked = [name for name, value in secrets.items() if value in seen]
    assert leaked == []


def test_missing_credentials_fail_before_any_request(
    fake: FakeKaggle, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")

    with pytest.raises(InputError, match="no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY"):
        download_csv(dest, sleep=Sleeps())

    assert fake.requests == []
    assert "kaggle" not in sys.modules, "the kaggle package was not even imported"
