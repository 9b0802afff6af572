"""Where ``credentials_available`` looks for Kaggle credentials, and that it never imports ``kaggle``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingestion.sources.kaggle import credentials_available

REPO = Path(__file__).resolve().parents[2]
USERNAME = "someone-5e1d"
KEY = "9a8b7c6d5e4f39281706f5e4d3c2b1a0"
TOKEN = "KGAT_77aa66bb55cc44dd33ee22ff11009988"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _kaggle_json(username: str = USERNAME, key: str = KEY) -> str:
    return json.dumps({"username": username, "key": key})


def test_username_and_key_in_the_environment_are_found(home: Path) -> None:
    assert credentials_available({"KAGGLE_USERNAME": USERNAME, "KAGGLE_KEY": KEY}, home) == (
        True,
        "KAGGLE_USERNAME/KAGGLE_KEY set",
    )


def test_a_username_without_a_key_is_not_enough(home: Path) -> None:
    found, reason = credentials_available({"KAGGLE_USERNAME": USERNAME}, home)

    assert not found
    assert reason.startswith("no Kaggle credentials: ")


def test_an_api_token_in_the_environment_is_found(home: Path) -> None:
    assert credentials_available({"KAGGLE_API_TOKEN": TOKEN}, home) == (True, "KAGGLE_API_TOKEN set")


def test_an_api_token_variable_may_name_a_token_file(home: Path) -> None:
    token_file = _write(home / "secrets" / "kaggle-token", TOKEN + "\n")

    assert credentials_available({"KAGGLE_API_TOKEN": str(token_file)}, home) == (
        True,
        "KAGGLE_API_TOKEN set (token file)",
    )


def test_an_api_token_variable_naming_an_empty_file_is_not_a_credential(home: Path) -> None:
    token_file = _write(home / "secrets" / "kaggle-token", "\n")

    assert credentials_available({"KAGGLE_API_TOKEN": str(token_file)}, home)[0] is False


def test_kaggle_json_in_kaggle_config_dir_is_found(home: Path, tmp_path: Path) -> None:
    config_dir = tmp_path / "kaggle-config"
    _write(config_dir / "kaggle.json", _kaggle_json())

    assert credentials_available({"KAGGLE_CONFIG_DIR": str(config_dir)}, home) == (
        True,
        "$KAGGLE_CONFIG_DIR/kaggle.json found",
    )


def test_kaggle_config_dir_replaces_the_home_folder(home: Path, tmp_path: Path) -> None:
    # The client reads one kaggle.json: KAGGLE_CONFIG_DIR's when it is set, ~/.kaggle's only otherwise.
    _write(home / ".kaggle" / "kaggle.json", _kaggle_json())

    found, _ = credentials_available({"KAGGLE_CONFIG_DIR": str(tmp_path / "empty")}, home)

    assert not found


def test_kaggle_json_in_the_home_folder_is_found(home: Path) -> None:
    _write(home / ".kaggle" / "kaggle.json", _kaggle_json())

    assert credentials_available({}, home) == (True, "~/.kaggle/kaggle.json found")


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the XDG fallback is the client's Linux rule"
)
def test_kaggle_json_in_the_xdg_config_folder_is_found_when_there_is_no_dot_kaggle(home: Path) -> None:
    _write(home / ".config" / "kaggle" / "kaggle.json", _kaggle_json())

    assert credentials_available({}, home) == (True, "~/.config/kaggle/kaggle.json found")


def test_kaggle_json_may_hold_the_username_and_the_environment_the_key(home: Path) -> None:
    _write(home / ".kaggle" / "kaggle.json", json.dumps({"username": USERNAME}))

    assert credentials_available({"KAGGLE_KEY": KEY}, home) == (True, "~/.kaggle/kaggle.json found")


def test_an_unreadable_kaggle_json_is_not_a_credential(home: Path) -> None:
    _write(home / ".kaggle" / "kaggle.json", "{not json")

    assert credentials_available({}, home)[0] is False


@pytest.mark.parametrize("name", ["access_token", "access_token.txt"])
def test_an_access_token_file_in_the_home_folder_is_found(home: Path, name: str) -> None:
    _write(home / ".kaggle" / name, TOKEN)

    assert credentials_available({}, home) == (True, f"~/.kaggle/{name} found")


def test_oauth_credentials_from_kaggle_auth_login_are_found(home: Path) -> None:
    _write(home / ".kaggle" / "credentials.json", json.dumps({"refresh_token": TOKEN, "username": USERNAME}))

    assert credentials_available({}, home) == (True, "~/.kaggle/credentials.json found (kaggle auth login)")


def test_nothing_anywhere_says_what_to_set(home: Path) -> None:
    found, reason = credentials_available({}, home)

    assert not found
    assert "KAGGLE_USERNAME" in reason and "KAGGLE_KEY" in reason and "KAGGLE_API_TOKEN" in reason
    assert "\n" not in reason


def test_home_defaults_to_the_environments_home(home: Path) -> None:
    _write(home / ".kaggle" / "kaggle.json", _kaggle_json())

    assert credentials_available({"HOME": str(home)}) == (True, "~/.kaggle/kaggle.json found")


def test_reasons_never_contain_credential_values(home: Path, tmp_path: Path) -> None:
    token_file = _write(tmp_path / "token", TOKEN)
    _write(home / ".kaggle" / "kaggle.json", _kaggle_json())
    envs = [
        {"KAGGLE_USERNAME": USERNAME, "KAGGLE_KEY": KEY},
        {"KAGGLE_API_TOKEN": TOKEN},
        {"KAGGLE_API_TOKEN": str(token_file)},
        {},
    ]
    reasons = [credentials_available(env, home)[1] for env in envs]

    assert all(found for found, _ in (credentials_available(env, home) for env in envs))
    assert not [r for r in reasons if USERNAME in r or KEY in r or TOKEN in r]


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_") and not k.startswith("VERBOSE")}
    env.pop("XDG_CONFIG_HOME", None)
    env.update(HOME=str(home), PYTHONPATH=str(REPO), **extra)
    return env


def test_checking_credentials_does_not_import_kaggle(home: Path) -> None:
    code = (
        "import sys\n"
        "from ingestion.sources.kaggle import credentials_available\n"
        "print(credentials_available())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kaggle', 'kagglesdk')))\n"
    )
    env = _clean_env(home, KAGGLE_USERNAME=USERNAME, KAGGLE_KEY=KEY)

    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert result.stdout.splitlines() == ["(True, 'KAGGLE_USERNAME/KAGGLE_KEY set')", "[]"]
    assert not (home / ".config" / "kaggle").exists(), "importing kaggle would have made this folder"


@pytest.mark.integration
@pytest.mark.parametrize(
    "place", ["environment", "KAGGLE_CONFIG_DIR", "~/.kaggle", "~/.config/kaggle", "nowhere"]
)
def test_the_real_client_agrees_on_api_key_places(home: Path, tmp_path: Path, place: str) -> None:
    """Ask KaggleApi.authenticate itself, in a fresh process, whether it finds the key where we say."""
    extra: dict[str, str] = {}
    if place == "environment":
        extra = {"KAGGLE_USERNAME": USERNAME, "KAGGLE_KEY": KEY}
    elif place == "KAGGLE_CONFIG_DIR":
        _write(tmp_path / "cfg" / "kaggle.json", _kaggle_json())
        extra = {"KAGGLE_CONFIG_DIR": str(tmp_path / "cfg")}
    elif place == "~/.kaggle":
        _write(home / ".kaggle" / "kaggle.json", _kaggle_json())
    elif place == "~/.config/kaggle":
        _write(home / ".config" / "kaggle" / "kaggle.json", _kaggle_json())
    env = _clean_env(home, **extra)
    # Token and OAuth places make the client call Kaggle to check them, so only API-key places are asked.
    code = (
        f"USERNAME, KEY = {USERNAME!r}, {KEY!r}\n"
        "from kaggle.api.kaggle_api_extended import KaggleApi\n"
        "api = KaggleApi()\n"
        "try:\n"
        "    api.authenticate()\n"
        "except SystemExit:\n"
        "    print(False)\n"
        "else:\n"
        "    print(api.config_values.get('username') == USERNAME and api.config_values.get('key') == KEY)\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )

    client_found = result.stdout.strip().splitlines()[-1] == "True"
    assert credentials_available(env, home)[0] is client_found
    assert client_found is (place != "nowhere")


# --- which source an ingest takes when --source is not given -------------------------------------------------


def test_a_dataset_asked_for_by_name_is_kaggles_even_without_credentials(home: Path) -> None:
    from ingestion.ingest import SourceRequest, choose_source

    nothing = {"HOME": str(home), "KAGGLE_CONFIG_DIR": str(home / ".kaggle")}
    source, reason = choose_source(SourceRequest(dataset="someone/other-dataset"), env=nothing)
    # Not the synthetic twin: the user named a dataset, and its download then says what is missing.
    assert (source.name, reason) == ("kaggle", "--dataset was given")
    assert source.describe() == "Kaggle dataset someone/other-dataset"
    source, reason = choose_source(SourceRequest(), env=nothing)
    assert source.name == "synthetic" and reason.endswith("using the synthetic twin")
