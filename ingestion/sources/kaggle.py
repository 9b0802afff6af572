"""The Kaggle source: fetch the Online Retail dataset through the official ``kaggle`` client.

Knows Kaggle and nothing about the lake or S3. ``credentials_available`` answers without importing the
``kaggle`` package, because importing it authenticates at import time (it prints a help text to stderr
when there are no credentials, makes ``~/.config/kaggle`` and, with an access token, calls Kaggle).
``download_csv`` imports it lazily, retries what is worth retrying, and hands back one validated CSV.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import io
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from ingestion.sources import Produced, Progress
from retail_core import interrupts
from retail_core.errors import InputError, UpstreamError

DATASET = "ulrikthygepedersen/online-retail-dataset"

logger = logging.getLogger("retail_pipeline.ingestion.kaggle")

# Cap the waits so that a bogus Retry-After or a large max_attempts cannot park the pipeline for hours.
MAX_BACKOFF_SECONDS = 60.0
MAX_RETRY_AFTER_SECONDS = 300.0

_NO_CREDENTIALS = (
    "no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN), "
    "or put kaggle.json in ~/.kaggle (https://www.kaggle.com/settings/api)"
)
_DATASET_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/\d+)?$")


# ---------------------------------------------------------------------------------------------------------
# Credentials: the places kaggle 2.x looks, in the order KaggleApi.authenticate() tries them
# (kagglesdk/kaggle_env.get_access_token_from_env, KaggleApi.read_config_file/read_config_environment,
# kagglesdk/kaggle_creds.KaggleCredentials.load).
# ---------------------------------------------------------------------------------------------------------


def credentials_available(env: Mapping[str, str] | None = None, home: Path | None = None) -> tuple[bool, str]:
    """Say whether the kaggle client will find credentials, and where; never imports ``kaggle``.

    The reason names the place (``'KAGGLE_USERNAME/KAGGLE_KEY set'``, ``'~/.kaggle/kaggle.json found'``,
    ``'KAGGLE_API_TOKEN set'``, ...) and never a credential value.
    """
    env = os.environ if env is None else env
    if home is None:
        home = Path(env["HOME"]) if env.get("HOME") else Path.home()

    # 1. Access tokens. Inside a Kaggle notebook, a token file named by KAGGLE_API_V1_TOKEN comes first.
    in_notebook = (
        env.get("KAGGLE_KERNEL_RUN_TYPE") is not None and env.get("KAGGLE_DATA_PROXY_URL") is not None
    )
    if in_notebook and _non_empty_file(env.get("KAGGLE_API_V1_TOKEN")):
        return True, "KAGGLE_API_V1_TOKEN file found (Kaggle notebook)"
    token = env.get("KAGGLE_API_TOKEN")
    if token:
        # The client accepts either the token itself or the path of a file holding it.
        if not Path(token).exists():
            return True, "KAGGLE_API_TOKEN set"
        if _non_empty_file(token):
            return True, "KAGGLE_API_TOKEN set (token file)"
    for name in ("access_token", "access_token.txt"):
        if _non_empty_file(home / ".kaggle" / name):
            return True, f"~/.kaggle/{name} found"

    # 2. The legacy API key: kaggle.json in the config dir, overlaid by KAGGLE_* environment variables.
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        return True, "KAGGLE_USERNAME/KAGGLE_KEY set"
    config_file, shown = _legacy_config_file(env, home)
    config = _read_json(config_file)
    username = env.get("KAGGLE_USERNAME") or config.get("username")
    key = env.get("KAGGLE_KEY") or config.get("key")
    if username and key:
        return True, f"{shown} found"

    # 3. OAuth credentials left by `kaggle auth login`.
    if _read_json(home / ".kaggle" / "credentials.json").get("refresh_token"):
        return True, "~/.kaggle/credentials.json found (kaggle auth login)"

    return False, _NO_CREDENTIALS


def _legacy_config_file(env: Mapping[str, str], home: Path) -> tuple[Path, str]:
    """Where KaggleApi reads kaggle.json: KAGGLE_CONFIG_DIR, else ~/.kaggle, else (Linux, when ~/.kaggle
    does not exist) $XDG_CONFIG_HOME/kaggle or ~/.config/kaggle."""
    if env.get("KAGGLE_CONFIG_DIR"):
        return Path(env["KAGGLE_CONFIG_DIR"]) / "kaggle.json", "$KAGGLE_CONFIG_DIR/kaggle.json"
    dot_kaggle = home / ".kaggle"
    if sys.platform.startswith("linux") and not dot_kaggle.exists():
        if env.get("XDG_CONFIG_HOME"):
            return Path(
                env["XDG_CONFIG_HOME"]
            ) / "kaggle" / "kaggle.json", "$XDG_CONFIG_HOME/kaggle/kaggle.json"
        return home / ".config" / "kaggle" / "kaggle.json", "~/.config/kaggle/kaggle.json"
    return dot_kaggle / "kaggle.json", "~/.kaggle/kaggle.json"


def _non_empty_file(path: str | Path | None) -> bool:
    if not path:
        return False
    try:
        return bool(Path(path).read_text(encoding="utf-8", errors="replace").strip())
    except OSError:
        return False


def _read_json(path: Path) -> dict[str, Any]:
    """The file's JSON object, or {} when it is missing or unreadable (the client ignores those too)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------------------------------------------------
# Download
# ---------------------------------------------------------------------------------------------------------


class _Retryable(Exception):
    """One attempt failed in a way that may pass if tried again."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def download_csv(
    dest_dir: Path,
    *,
    dataset: str = DATASET,
    max_attempts: int = 5,
    backoff_seconds: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Download ``dataset`` through the official kaggle client, check the zip, and extract its one CSV
    into ``dest_dir``; return the CSV's path.

    HTTP 429 and 5xx (and dropped connections) are retried up to ``max_attempts`` times with exponential
    backoff, honouring Retry-After; then ``UpstreamError``. HTTP 401/403/404 are not retried: ``InputError``.
    A zip that is corrupt, truncated, or does not hold exactly one CSV raises ``InputError``. On any failure
    nothing new is left in ``dest_dir``.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if not _DATASET_RE.match(dataset):
        raise InputError(
            f"not a Kaggle dataset reference: {dataset!r}", todo="use owner/dataset-name, e.g. " + DATASET
        )
    found, reason = credentials_available()
    if not found:
        raise InputError("cannot download from Kaggle", where=dataset, todo=reason)
    logger.info("Kaggle credentials: %s", reason)

    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    # Everything is written inside a hidden staging folder in dest_dir (same file system, so the CSV is
    # moved into place atomically) and the folder is removed whatever happens.
    staging = Path(tempfile.mkdtemp(prefix=".kaggle-download-", dir=dest_dir))
    try:
        zip_path = _download_with_retries(
            dataset, staging, max_attempts=max_attempts, backoff_seconds=backoff_seconds, sleep=sleep
        )
        csv_path = _extract_single_csv(zip_path, dest_dir, staging, dataset)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Kaggle dataset %s extracted to %s (%d bytes)", dataset, csv_path, csv_path.stat().st_size)
    return csv_path


def _download_with_retries(
    dataset: str,
    staging: Path,
    *,
    max_attempts: int,
    backoff_seconds: float,
    sleep: Callable[[float], None],
) -> Path:
    last_reason = ""
    for attempt in range(1, max_attempts + 1):
        # A fresh folder per attempt: the client would otherwise resume onto, or skip because of, the bytes
        # a failed attempt left behind.
        attempt_dir = staging / f"attempt-{attempt}"
        attempt_dir.mkdir()
        logger.info("Downloading Kaggle dataset %s (attempt %d/%d)", dataset, attempt, max_attempts)
        try:
            return _download_once(dataset, attempt_dir)
        except _Retryable as retry:
            last_reason = retry.reason
            shutil.rmtree(attempt_dir, ignore_errors=True)
            if attempt == max_attempts:
                break
            delay = min(backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
            if retry.retry_after is not None:
                delay = min(retry.retry_after, MAX_RETRY_AFTER_SECONDS)
            logger.warning(
                "Kaggle download of %s failed (%s, attempt %d/%d); retrying in %.1f s",
                dataset,
                retry.reason,
                attempt,
                max_attempts,
                delay,
            )
            sleep(delay)
    raise UpstreamError(
        f"Kaggle download failed after {max_attempts} attempts (last: {last_reason})",
        where=dataset,
        todo="Kaggle is unavailable or rate-limiting; run the ingest again later",
    )


def _download_once(dataset: str, attempt_dir: Path) -> Path:
    """One authenticated download of the dataset zip into ``attempt_dir``; classify what goes wrong."""
    import requests

    secrets = _secrets_from(os.environ)
    output = io.StringIO()
    try:
        # The client prints (stdout and stderr) instead of logging; keep that out of the user's terminal
        # and pass it on, redacted, at debug level.
        with _captured_client_output(output):
            try:
                api = _authenticated_api(secrets)
            except SystemExit as exc:
                # KaggleApi.authenticate() calls exit(1) when it finds nothing usable. A signal is a SystemExit
                # too (retail_core/interrupts.py): that one is an interruption, not a credentials problem.
                if interrupts.seen():
                    raise
                raise InputError(
                    "Kaggle found no usable credentials", where=dataset, todo=_NO_CREDENTIALS
                ) from exc
            api.dataset_download_files(dataset, path=str(attempt_dir), force=True, quiet=True, unzip=False)
    except requests.HTTPError as exc:
        raise _classify_http_error(exc, dataset) from exc
    except requests.RequestException as exc:
        # Connection refused or reset, timeouts, a stream cut short: worth another attempt.
        logger.debug("Kaggle request failed: %s", _redact(str(exc), secrets))
        raise _Retryable(type(exc).__name__) from exc
    finally:
        text = output.getvalue().strip()
        if text:
            logger.debug("kaggle client output: %s", _redact(text, secrets))

    zips = sorted(attempt_dir.glob("*.zip"))
    if len(zips) != 1:
        raise UpstreamError(
            "the kaggle client finished without writing the dataset zip",
            where=dataset,
            todo="check the installed kaggle package version (kaggle>=2 is expected)",
        )
    return zips[0]


def _authenticated_api(secrets: set[str]) -> Any:
    """A KaggleApi that has authenticated the way the CLI does (env, kaggle.json, access token, OAuth)."""
    # Imported here, never at module level: importing kaggle authenticates.
    from kaggle.api.kaggle_api_extended import KaggleApi

    api = KaggleApi()
    # VERBOSE=1 in the environment makes the client print every request with its Authorization header.
    api.args = [arg for arg in KaggleApi.args if arg not in ("--verbose", "-v")]
    api.authenticate()
    values = getattr(api, "config_values", {}) or {}
    for name in ("username", "key", "token"):
        if values.get(name):
            secrets.add(str(values[name]))
    if values.get("username") and values.get("key"):
        secrets.add(_basic_auth(str(values["username"]), str(values["key"])))
    return api


def _classify_http_error(exc: Any, dataset: str) -> Exception:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status == 401:
        return InputError(
            "Kaggle refused the credentials (HTTP 401)",
            where=dataset,
            todo="check KAGGLE_USERNAME/KAGGLE_KEY (or KAGGLE_API_TOKEN, or ~/.kaggle/kaggle.json)",
        )
    if status == 403:
        return InputError(
            "Kaggle denied access to the dataset (HTTP 403)",
            where=dataset,
            todo="check the credentials and accept the dataset's terms on kaggle.com",
        )
    if status == 404:
        return InputError(
            "Kaggle has no such dataset (HTTP 404)",
            where=dataset,
            todo="check the owner/dataset-name reference",
        )
    if status == 429 or (status is not None and 500 <= status < 600):
        return _Retryable(f"HTTP {status}", _retry_after_seconds(response))
    return UpstreamError(
        f"Kaggle answered HTTP {status}",
        where=dataset,
        todo="unexpected answer from Kaggle; try again later or report it",
    )


def _retry_after_seconds(response: Any) -> float | None:
    """Retry-After as seconds (RFC 9110: delay-seconds or an HTTP date), None when absent or unreadable."""
    value = (getattr(response, "headers", None) or {}).get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@contextlib.contextmanager
def _captured_client_output(buffer: io.StringIO) -> Iterator[None]:
    # redirect_stdout swaps the process-wide sys.stdout; fine for a CLI that downloads on one thread.
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        yield


def _secrets_from(env: Mapping[str, str]) -> set[str]:
    secrets = {env[name] for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN") if env.get(name)}
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        secrets.add(_basic_auth(env["KAGGLE_USERNAME"], env["KAGGLE_KEY"]))
    return secrets


def _basic_auth(username: str, key: str) -> str:
    return base64.b64encode(f"{username}:{key}".encode()).decode("ascii")


def _redact(text: str, secrets: set[str]) -> str:
    # Longest first, so that a secret containing another is replaced whole.
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


# ---------------------------------------------------------------------------------------------------------
# Zip validation and extraction
# ---------------------------------------------------------------------------------------------------------


def _extract_single_csv(zip_path: Path, dest_dir: Path, staging: Path, dataset: str) -> Path:
    """Check every member's CRC, then extract the zip's one CSV into ``dest_dir``."""
    where = f"{dataset}, {zip_path.name}"
    rerun = "run the ingest again; if it keeps failing, the download or the dataset on Kaggle is broken"
    try:
        with zipfile.ZipFile(zip_path) as archive:
            bad_member = archive.testzip()
            if bad_member is not None:
                raise InputError(
                    f"the Kaggle download is corrupt (bad CRC in {bad_member})", where=where, todo=rerun
                )
            csvs = [
                info
                for info in archive.infolist()
                if not info.is_dir()
                and info.filename.lower().endswith(".csv")
                and not info.filename.startswith("__MACOSX/")
            ]
            if len(csvs) != 1:
                names = ", ".join(info.filename for info in csvs) or "none"
                raise InputError(
                    f"the Kaggle download should hold exactly one CSV, it holds {len(csvs)} ({names})",
                    where=where,
                    todo="check that the dataset reference points at the Online Retail dataset",
                )
            # Only the base name: a member called ../../x.csv must not escape dest_dir.
            name = PurePosixPath(csvs[0].filename.replace("\\", "/")).name
            part = staging / (name + ".part")
            with archive.open(csvs[0]) as source, part.open("wb") as target:
                shutil.copyfileobj(source, target, length=1024 * 1024)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        # RuntimeError: zipfile's answer to an encrypted member ("password required").
        raise InputError(
            f"the Kaggle download is not a readable zip ({exc})", where=where, todo=rerun
        ) from exc
    csv_path = dest_dir / name
    os.replace(part, csv_path)
    return csv_path


@dataclass(frozen=True)
class KaggleSource:
    """The ingest-facing source: downloads through :func:`download_csv` and hands over the CSV's bytes."""

    dataset: str = DATASET
    name: str = "kaggle"

    def describe(self) -> str:
        return f"Kaggle dataset {self.dataset}"

    def expected_bytes(self) -> int | None:
        return None  # known once downloaded

    def produce(self, dest: Path, progress: Progress | None = None) -> Produced:
        with tempfile.TemporaryDirectory(prefix="retail-kaggle-") as tmp:
            csv_path = download_csv(Path(tmp), dataset=self.dataset)
            shutil.move(str(csv_path), dest)
        return Produced(details={"dataset": self.dataset, "file_name": csv_path.name})
