"""Typed configuration, read once at the entry point (flags first, then environment, then defaults)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from retail_core.errors import InputError

DEFAULT_LAKE = "data/lake"
DEFAULT_DUCKDB_PATH = "data/warehouse.duckdb"
KAGGLE_DATASET = "ulrikthygepedersen/online-retail-dataset"


@dataclass(frozen=True)
class Settings:
    """Where the pipeline reads and writes.

    lake: a local folder or ``s3://bucket/prefix`` (``RETAIL_LAKE``).
    duckdb_path: the local warehouse file (``RETAIL_DUCKDB_PATH``).
    aws_endpoint_url: an S3-compatible endpoint (``AWS_ENDPOINT_URL``), e.g. moto or MinIO; None for AWS.
    verbose: the CLI's ``-v``: the tools the stages drive (dbt) print their detail too, not only warnings.
    """

    lake: str = DEFAULT_LAKE
    duckdb_path: Path = Path(DEFAULT_DUCKDB_PATH)
    aws_endpoint_url: str | None = None
    verbose: bool = False

    @property
    def lake_is_s3(self) -> bool:
        return self.lake.startswith("s3://")

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        lake: str | None = None,
        duckdb_path: str | None = None,
        verbose: bool = False,
    ) -> Settings:
        """Flags win over the environment, the environment over the defaults."""
        env = os.environ if env is None else env
        given, where = _given(lake, "--lake", env, "RETAIL_LAKE") or (DEFAULT_LAKE, "the default")
        if not given.strip():
            raise InputError(
                "the lake is empty", where, f"give a folder or s3://bucket/prefix (default {DEFAULT_LAKE})"
            )
        return cls(
            lake=_normalise_lake(given),
            duckdb_path=_duckdb_path(duckdb_path, env),
            aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            verbose=verbose,
        )


def _given(flag: str | None, flag_name: str, env: Mapping[str, str], variable: str) -> tuple[str, str] | None:
    """The value a user gave, from the flag (even blank) or else the environment, with where it came from for an
    error; None when neither gave one."""
    if flag is not None:
        return flag, f"{flag_name} {flag!r}"
    if env.get(variable):
        return env[variable], f"{variable}={env[variable]!r}"
    return None


def _duckdb_path(flag: str | None, env: Mapping[str, str]) -> Path:
    """The warehouse file, from the flag, the environment or the default, as the lake is chosen. A blank one
    would be a file named by spaces in the current folder, a folder a DuckDB error deep in dbt: both refused."""
    chosen = _given(flag, "--duckdb-path", env, "RETAIL_DUCKDB_PATH")
    if chosen is None:
        return Path(DEFAULT_DUCKDB_PATH)
    given, where = chosen
    if not given.strip():
        raise InputError(
            "the warehouse file is empty", where, f"give a file path (default {DEFAULT_DUCKDB_PATH})"
        )
    path = Path(given.strip())
    if path.is_dir():
        raise InputError(
            "the warehouse file is a folder", where, f"name a file in it, e.g. {path / 'warehouse.duckdb'}"
        )
    return path


def _normalise_lake(value: str) -> str:
    """The lake root as the stages take it; a URL this pipeline cannot write is refused (it would otherwise be
    taken for a local folder named ``gs:``)."""
    value = value.strip()
    scheme = _URL_SCHEME.match(value)
    if scheme and scheme.group(1).lower() in ("s3", "s3a"):
        # Schemes are case-insensitive (S3://, s3a:// as Hadoop writes it): one spelling from here on, or the
        # lake would be taken for a local folder named "S3:".
        value = "s3://" + value[scheme.end() :]
        scheme = None
    if scheme:
        raise InputError(
            f"a lake at {scheme.group(1)}:// is not supported",
            value,
            "use a local folder or s3://bucket/prefix",
        )
    if value.startswith("s3://"):
        if not value[len("s3://") :].split("/", 1)[0]:
            raise InputError("the lake URL names no bucket", value, "use s3://bucket or s3://bucket/prefix")
        value = value.rstrip("/")
    return value


_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
