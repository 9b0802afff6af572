"""Faults and concurrency, as a user meets them: `retail-pipeline` processes killed (SIGKILL) or refused a write
(ENOSPC) at the named points of retail_core/faults.py, and two writers of one date at once.

For every point armed here: the last good output stays readable and self-consistent (the files its manifest
names are there, with the sizes and checksums it records), readers never see a mix, the next run converges to
what a single clean run publishes, and nothing is left behind (no staging, no temp file, no lease, no file the
manifest does not name). The promote's own points are also armed on both stores, in process, by
tests/integration/test_promote.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingestion.ingest import complete_partitions
from retail_core import dialect, faults, layout
from retail_core.lake import LocalLake, S3Lake
from tests.fakes.moto_s3 import moto_with_bucket, s3_client
from warehouse.load import accepted_batches

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DAY = dt.date(2024, 3, 1)
HEADER = ",".join(dialect.RAW_COLUMNS)
KILLED = -signal.SIGKILL


def export(quantity: int) -> bytes:
    """A small export: 40 sale lines (quantity ``quantity``), 1 return and 2 rows the transform quarantines; each
    output differs between two quantities, so that a test can tell an old output from a new one in every zone."""
    rows = [
        f"{536000 + n},85123A,WHITE HANGING HEART T-LIGHT HOLDER,{quantity},2010-12-01 08:26:00,2.55,17850,United Kingdom"
        for n in range(40)
    ]
    rows += [
        f"C536997,85123A,WHITE HANGING HEART T-LIGHT HOLDER,-{quantity},2010-12-02 08:26:00,2.55,17850,United Kingdom",
        f"536998,X1,NO PRICE {quantity},1,2010-12-01 08:26:00,,17850,France",
        f"536999,X2,BAD QTY {quantity},x,2010-12-01,1.0,,France",
    ]
    return ("\n".join([HEADER, *rows]) + "\n").encode("utf-8")


def cli(
    lake: str, *args: str, fault: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`retail-pipeline --lake LAKE ARGS` in its own process group; the group is killed afterwards, so that a JVM
    left behind by a killed driver does not outlive the test."""
    with child_scratch() as scratch:
        child_env = {**child_base_env(scratch), **(env or {})}
        if fault:
            child_env[faults.ENV] = fault
        proc = subprocess.Popen(
            [sys.executable, "-m", "retail_pipeline.cli", "--lake", lake, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env,
            cwd=REPO,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=300)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def child_base_env(scratch: str) -> dict[str, str]:
    """This process's environment without Kaggle or pipeline settings, the lake's metrics on, temp files in
    ``scratch``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAGGLE", "RETAIL_"))}
    env.update(RETAIL_METRICS="lake", TMPDIR=scratch)
    return env


@contextlib.contextmanager
def child_scratch() -> Iterator[str]:
    """A TMPDIR for one child process, removed after it. A process killed on purpose cannot remove its own
    temporary folders (Spark's scratch, the Data Docs being rendered); without this, every run of this suite
    left a few in /tmp."""
    scratch = tempfile.mkdtemp(prefix="retail-faults-")
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def transform(lake: Path, fault: str = "") -> subprocess.CompletedProcess:
    return cli(str(lake), "transform", "--ingest-date", DAY.isoformat(), "--output-files", "2", fault=fault)


def ingest(
    lake: str, path: Path, fault: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return cli(lake, "ingest", "--path", str(path), "--ingest-date", DAY.isoformat(), fault=fault, env=env)


def published(lake: LocalLake, prefix: str) -> tuple[str, list[str]]:
    """(generation, every data line of the files its manifest names, sorted), after checking each named file
    against the manifest's size and checksum."""
    manifest = lake.read_partition(prefix)
    assert manifest is not None, f"{prefix} has no manifest"
    lines: list[str] = []
    for entry in manifest["files"]:
        data = lake.read_bytes(f"{prefix}/{entry['name']}")
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["bytes"], entry["sha256"])
        lines += data.decode("utf-8").splitlines()[1:]
    assert len(lines) == manifest["rows"]
    return manifest["generation"], sorted(lines)


def content(lake: LocalLake) -> dict[str, list[str]]:
    """What a reader reads of each zone (without the generation, which every run makes anew)."""
    return {zone: published(lake, layout.zone_prefix(zone, DAY))[1] for zone in ZONES}


def leftovers(lake: LocalLake) -> list[str]:
    """Keys a finished run must not leave: staging, temp files, a lease, files no manifest names."""
    found = [k for k in lake.list_keys("") if layout.STAGING in k or k.startswith(layout.LEASES_ZONE)]
    found += [str(p) for p in Path(lake.root).rglob(".tmp-*")]
    for prefix in (layout.zone_prefix(zone, DAY) for zone in ZONES):
        manifest = lake.read_partition(prefix) or {"files": [], "copy_manifest": None}
        keep = {layout.MANIFEST_NAME, manifest["copy_manifest"], *(f["name"] for f in manifest["files"])}
        found += [k for k in lake.list_keys(prefix) if k.rsplit("/", 1)[-1] not in keep]
    return found


def start_child(args: list[str], scratch: str, **popen: Any) -> subprocess.Popen[str]:
    """``args`` in a process group of its own (the caller kills the group), its stderr piped, temp files in
    ``scratch``."""
    return subprocess.Popen(
        args,
        stderr=subprocess.PIPE,
        text=True,
        env=child_base_env(scratch),
        cwd=REPO,
        start_new_session=True,
        **popen,
    )


def contested_transform(lake_root: Path) -> dict[str, subprocess.CompletedProcess]:
    """Two transforms of DAY started together on ``lake_root``: the second once the first holds the date's lease."""
    args = [sys.executable, "-m", "retail_pipeline.cli", "--lake", str(lake_root), "transform"]
    args += ["--ingest-date", DAY.isoformat(), "--output-files", "2"]
    with child_scratch() as scratch:
        first = start_child(args, scratch)
        try:
            lease_file = lake_root / layout.lease_key(DAY)
            deadline = time.monotonic() + 120
            while not lease_file.exists() and first.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert lease_file.exists(), "the first transform never took the lease"
            second = cli(str(lake_root), "transform", "--ingest-date", DAY.isoformat(), "--output-files", "2")
            _, first_err = first.communicate(timeout=300)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(first.pid, signal.SIGKILL)
    return {"first": subprocess.CompletedProcess(args, first.returncode, "", first_err), "second": second}


@pytest.fixture(scope="module")
def single_runs(tmp_path_factory):
    """A lake where day 1 was transformed once from v1 (6 a line), and what one run of v2 (7 a line) publishes,
    the run a second transform of the same date tried to join (the last test says what each of the two did).
    Every transform starts a JVM (about 20 s of CPU), so this one run serves as the reference of every test."""
    base = tmp_path_factory.mktemp("faults")
    v1, v2 = base / "v1.csv", base / "v2.csv"
    v1.write_bytes(export(6))
    v2.write_bytes(export(7))
    good = base / "good"
    assert ingest(str(good), v1).returncode == 0
    done = transform(good)
    assert done.returncode == 0, done.stderr[-2000:]
    contested = base / "contested"
    assert ingest(str(contested), v2).returncode == 0
    runs = contested_transform(contested)
    assert runs["first"].returncode == 0, runs["first"].stderr[-2000:]
    return {
        "good": good,
        "v1": v1,
        "v2": v2,
        "v2_content": content(LocalLake(contested)),
        "contested": contested,
        "contested_runs": runs,
    }


# Where a transform of a corrected delivery (v2) dies, and what readers must then see of processed-data: the last
# good output (v1's), or already v2's. Quarantine is promoted first, so its switch comes one point earlier.
# The zones in the order the transform publishes them (glue/job.py ZONES): a promote point's visit number counts
# in this order (@1 quarantine, @2 returns, @3 processed: each of the first two has one part file).
ZONES = (layout.QUARANTINE_ZONE, layout.RETURNS_ZONE, layout.PROCESSED_ZONE)
TRANSFORM_FAULTS = [
    # (fault, quarantine, returns, processed): what readers then see of each zone
    ("lease.acquired=kill", "old", "old", "old"),
    ("transform.between_zones=kill", "new", "old", "old"),
    ("promote.after_manifest=kill@2", "new", "new", "old"),  # the returns switched, the sales not yet
    (
        "promote.after_part=enospc@3",
        "new",
        "new",
        "old",
    ),  # the first processed part placed, then the disk is full
    ("promote.before_manifest=kill@3", "new", "new", "old"),
    ("promote.after_manifest=kill@3", "new", "new", "new"),
    ("transform.before_report=kill", "new", "new", "new"),
]


def test_a_transform_killed_or_refused_at_each_point_keeps_a_readable_output_and_the_rerun_converges(
    single_runs, tmp_path
):
    lake_root = tmp_path / "lake"
    shutil.copytree(single_runs["good"], lake_root)
    lake = LocalLake(lake_root)
    old = content(lake)
    old_report = lake.read_json(layout.run_report_key(DAY))
    new = single_runs["v2_content"]
    assert all(old[zone] != new[zone] for zone in ZONES)  # every zone tells the two runs apart
    assert ingest(str(lake_root), single_runs["v2"]).returncode == 0  # the corrected delivery

    for fault, *states in TRANSFORM_FAULTS:
        done = transform(lake_root, fault)
        if fault.split("=")[1].startswith("kill"):
            assert done.returncode == KILLED, (fault, done.stderr[-2000:])
        else:
            assert done.returncode == 4, (fault, done.stderr[-2000:])
            error = done.stderr.strip().splitlines()[-1]
            assert error.startswith("retail-pipeline transform: error:") and "No space left" in error
            assert "Traceback" not in done.stderr
        seen = content(lake)
        want = {
            zone: (old if state == "old" else new)[zone] for zone, state in zip(ZONES, states, strict=True)
        }
        assert seen == want, fault
        # The warehouse's load takes a batch only when the report and both manifests it loads (sales, returns) are
        # of one run: while neither has switched that is still the last good one; after a switch, nothing until a
        # run finishes (what is loaded stays). A run that failed (rather than died) says so in its report, and the
        # load then keeps what it loaded.
        batches = accepted_batches(lake)
        sales_and_returns_old = states[1] == states[2] == "old"
        if sales_and_returns_old and lake.read_json(layout.run_report_key(DAY))["status"] == "succeeded":
            assert [b.run_id for b in batches] == [old_report["run_id"]], fault
        else:
            assert batches == [], fault

    done = transform(lake_root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert content(lake) == new
    assert leftovers(lake) == []
    report = lake.read_json(layout.run_report_key(DAY))
    assert [b.run_id for b in accepted_batches(lake)] == [report["run_id"]]
    assert (
        report["rows_in"] == report["rows_clean"] + report["rows_returns"] + report["rows_quarantined"] == 43
    )


def processes_naming(text: str) -> list[int]:
    """The processes whose command line holds ``text`` (Linux's /proc)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):  # gone meanwhile
            if text.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
    return found


def native_libraries_left(since: float) -> list[str]:
    """Native libraries a JVM unpacked into /tmp (java.io.tmpdir's default on Linux, whatever TMPDIR says) since
    ``since`` that no live process maps: lz4-java and snappy-java delete theirs only when the JVM exits cleanly,
    so these were left by a killed one. (One a running JVM still maps, in another test's Spark, is not left.)"""
    mapped = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
            mapped.update(line.split()[-1] for line in maps.read_text().splitlines() if line.endswith(".so"))
    left = []
    for name in ("liblz4-java*.so", "snappy-*.so"):
        for lib in Path("/tmp").glob(name):
            with contextlib.suppress(OSError):
                if lib.stat().st_mtime >= since and str(lib) not in mapped:
                    left.append(lib.name)
    return sorted(left)


def signalled_transform(
    lake_root: Path, when: str, delay: float, signum: int = signal.SIGINT
) -> tuple[int, list[str], list[int], list[str]]:
    """A transform in a process group of its own, signalled ``delay`` seconds after its stderr shows ``when``:
    SIGINT to the group (as a terminal's Ctrl-C reaches the driver and its JVM), SIGTERM to the driver alone (as
    the task image's entrypoint forwards ECS's stop). Returns its exit code, its stderr lines, the processes still
    alive afterwards that use its scratch folder (a JVM left behind), and what is left in that folder."""
    args = [sys.executable, "-m", "retail_pipeline.cli", "--lake", str(lake_root), "transform"]
    args += ["--ingest-date", DAY.isoformat(), "--output-files", "2"]
    with child_scratch() as scratch:
        proc = start_child(
            args,
            scratch,
            stdout=subprocess.DEVNULL,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a shell's foreground job
        )
        try:
            assert proc.stderr is not None
            lines = []
            for line in proc.stderr:
                lines.append(line.rstrip("\n"))
                if when in line:
                    time.sleep(delay)
                    if signum == signal.SIGINT:
                        os.killpg(proc.pid, signum)
                    else:
                        proc.send_signal(signum)
                    break
            lines += proc.stderr.read().splitlines()
            code = proc.wait(timeout=120)
            alive = processes_naming(scratch)
            left = sorted(p.name for p in Path(scratch).iterdir())
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    return code, lines, alive, left


# Where a Ctrl-C lands: (a line the transform logs, seconds after it). On this small export the scan, the gate
# and the writes follow within a few seconds of the first line: the delays spread the signal over them, inside
# py4j calls and between them.
SIGNAL_MOMENTS = [(signal.SIGINT, "transform: /", d) for d in (0.0, 0.4, 0.8, 1.2, 1.8)]
SIGNAL_MOMENTS += [(signal.SIGINT, "rows read", d) for d in (0.0, 0.5)]
SIGNAL_MOMENTS += [(signal.SIGTERM, "transform: /", 0.8), (signal.SIGTERM, "rows read", 0.2)]


def test_a_ctrl_c_or_sigterm_ends_a_transform_in_one_line_keeps_the_last_good_output_and_leaves_nothing(
    single_runs, tmp_path
):
    """PySpark's own SIGINT handler made a Ctrl-C print pages of py4j and Java tracebacks, or be lost (the run
    went on), or, while the JVM started, leave it running for ever; a SIGTERM ended Python without its finally
    blocks, leaving Spark's scratch folder behind (retail_core/interrupts.py)."""
    lake_root = tmp_path / "lake"
    shutil.copytree(single_runs["good"], lake_root)
    lake = LocalLake(lake_root)
    old = content(lake)
    assert ingest(str(lake_root), single_runs["v2"]).returncode == 0
    started = time.time() - 1  # a file's mtime may be rounded down

    for signum, when, delay in SIGNAL_MOMENTS:
        code, lines, alive, left = signalled_transform(lake_root, when, delay, signum)
        moment = (signum, when, delay, lines)
        if code == 0:  # the run ended before the signal: nothing to judge at this moment
            continue
        assert code == 128 + signum, moment
        after = lines[next(i for i, line in enumerate(lines) if when in line) + 1 :]
        assert after[-1] == "retail-pipeline transform: interrupted", moment
        assert not [x for x in after[:-1] if "Traceback" in x or " ERROR " in x or "Exception" in x], moment
        assert alive == [], moment  # the JVM went with the driver
        assert left == [], moment  # Spark's scratch, the Data Docs being rendered: removed on the way out
        assert content(lake) == old, moment
    assert native_libraries_left(started) == []  # the killed JVMs' temp files went with their scratch folder
    done = transform(lake_root)  # and the next run converges
    assert done.returncode == 0, done.stderr[-2000:]
    assert content(lake) == single_runs["v2_content"]
    assert leftovers(lake) == []


def test_two_transforms_of_one_date_started_together_one_wins_the_other_changes_nothing(single_runs):
    # The fixture's v2 lake: the first transform held the lease when the second started.
    runs = single_runs["contested_runs"]
    assert runs["first"].returncode == 0, runs["first"].stderr[-2000:]
    second = runs["second"]
    assert second.returncode == 5, second.stderr[-2000:]
    error = second.stderr.strip().splitlines()[-1]
    assert error.startswith("retail-pipeline transform: error: another writer is working on this date")
    assert "held by the transform of run" in error and "Traceback" not in second.stderr
    lake = LocalLake(single_runs["contested"])
    # What one run of v2 publishes, whole (each file as its manifest records it): 2 rows quarantined, 1 return,
    # 40 sales of 7 (the kill test above converges to the same bytes from another lake, a run at a time).
    seen = content(lake)
    assert [len(seen[zone]) for zone in ZONES] == [2, 1, 40]
    assert all("\t7\t" in line for line in seen[layout.PROCESSED_ZONE])
    report = lake.read_json(layout.run_report_key(DAY))
    assert (report["status"], report["rows_in"]) == ("succeeded", 43)
    assert leftovers(lake) == []


# --- the ingest ------------------------------------------------------------------------------------------------

INGEST_FAULTS = [
    "lease.acquired=kill",
    "ingest.after_old_manifest=kill",
    "ingest.after_old_manifest=enospc",
    "ingest.before_manifest=kill",
    "ingest.before_manifest=enospc",
]


def raw_state(lake) -> tuple[str, ...]:
    """The raw partition as readers see it: complete (manifest) or not; a complete one must describe its bytes."""
    if DAY not in complete_partitions(lake):
        return ("incomplete",)
    manifest = lake.read_json(layout.raw_manifest_key(DAY))
    assert hashlib.sha256(lake.read_bytes(layout.raw_key(DAY))).hexdigest() == manifest["sha256"]
    return ("complete", manifest["sha256"])


@pytest.mark.parametrize("store", ["local", "s3"])
def test_an_ingest_killed_at_each_point_never_leaves_a_manifest_of_other_bytes_and_the_rerun_converges(
    store, tmp_path
):
    v1, v2 = tmp_path / "v1.csv", tmp_path / "v2.csv"
    v1.write_bytes(export(6))
    v2.write_bytes(export(7))
    sha1, sha2 = (hashlib.sha256(p.read_bytes()).hexdigest() for p in (v1, v2))
    with contextlib.ExitStack() as stack:
        if store == "local":
            root, env = str(tmp_path / "lake"), {}
            lake = LocalLake(root)
        else:
            endpoint = stack.enter_context(moto_with_bucket("retail-faults"))
            root = "s3://retail-faults/lake"
            # A short lease, so that the lease of a killed ingest expires within the test.
            env = {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "RETAIL_LEASE_TTL_S": "3",
            }
            lake = S3Lake(root, client=s3_client(endpoint))
        assert ingest(root, v1, env=env).returncode == 0
        for fault in INGEST_FAULTS:
            done = ingest(root, v2, fault, env)
            assert done.returncode == (KILLED if fault.endswith("kill") else 4), (fault, done.stderr[-2000:])
            assert "Traceback" not in done.stderr
            # Killed before it removed the old manifest: v1 still complete; later: incomplete, never v1's manifest
            # beside v2's bytes.
            assert raw_state(lake) in {("complete", sha1), ("incomplete",)}, fault
            if fault.startswith("lease") or fault == "ingest.after_old_manifest=enospc":
                # An error (not a kill) before the new CSV landed puts the old manifest back.
                assert raw_state(lake) == ("complete", sha1)
            if store == "s3" and fault.endswith("kill"):
                # The dead ingest's lease stays until it expires: the next writer is told who holds it.
                held = ingest(root, v2, env=env)
                assert held.returncode == 5 and "another writer is working on this date" in held.stderr
                time.sleep(3.5)
            done = ingest(root, v2, env=env)
            assert done.returncode == 0, (fault, done.stderr[-2000:])
            assert raw_state(lake) == ("complete", sha2), fault
            done = ingest(root, v1, env=env)  # back to v1, for the next point to re-deliver v2 again
            assert done.returncode == 0 and raw_state(lake) == ("complete", sha1)
        keys = lake.list_keys("")
        assert not [k for k in keys if k.startswith(layout.LEASES_ZONE) or ".tmp-" in k], keys
