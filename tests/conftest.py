"""Fixtures shared by the whole suite. Keep each one small and say what it is for."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make package` once for the session, into a folder of the tests' (the repository's dist/ is left alone):
    what the packaged-artifact tests and the rehearsal install and run. Tests copy it before changing anything."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        ["make", "-s", "package", f"DIST={out}"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for every Spark test (starting the JVM costs seconds): 2 cores, UTC, 2 shuffle
    partitions, no UI, and the transform's own session settings (glue/runtime.py)."""
    import os

    from glue.local import ensure_java
    from glue.runtime import sql_settings

    ensure_java()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master("local[2]")
        .appName("retail-pipeline-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
    )
    for key, value in sql_settings(shuffle_partitions=2).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    yield session
    session.stop()
