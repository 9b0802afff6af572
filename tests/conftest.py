"""Fixtures shared by the whole suite. Keep each one small and say what it is for."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The files whose tests take minutes, heaviest first. `make test` runs two pytest-xdist workers that take whole
# files in collection order (--dist loadfile): these start first, the many short files fill in around them, and
# neither worker ends up alone on a long file at the end. Serially the order changes nothing.
HEAVY_FILES = (
    "integration/test_rehearsal.py",
    "integration/test_faults.py",
    "integration/test_bench.py",
    "integration/test_packaged.py",
    "integration/test_run_command.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.relative_to(REPO / "tests").as_posix()
        return HEAVY_FILES.index(name) if name in HEAVY_FILES else len(HEAVY_FILES)

    items.sort(key=rank)  # stable: each file's tests keep their order


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make package` once for the session, into a folder of the tests' (the repository's dist/ is left alone):
    what the packaged-artifact tests and the rehearsal install and run. Tests copy it before changing anything.
    Under pytest-xdist (`make test` runs two workers) the workers share one build: the first to take the lock
    builds into their common temporary folder, the others wait and reuse it (two builds at once would also race
    on the Glue wheelhouse cache in the repository)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # each worker's base folder sits in the run's own
    out = shared / "dist"
    with open(shared / "dist.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (out / "MANIFEST.json").is_file():
            shutil.rmtree(out, ignore_errors=True)  # a build that failed half-way
            done = subprocess.run(
                ["make", "-s", "package", f"DIST={out}"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return out


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for every Spark test (starting the JVM costs seconds): 2 cores, UTC, 2 shuffle
    partitions, no UI, and the transform's own session settings (glue/runtime.py)."""
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
