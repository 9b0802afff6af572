"""Where the job runs: the :class:`Runtime` the job is handed, Glue's start, and the Spark settings both
targets share. This module goes to Glue in the job's zip; the local start (JVM flags, class archive, early
start) is in glue/local.py, which never does.

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
``spark.sql.adaptive.enabled``           ``false`` for the scan's   Spark 3.5 would build the cache in a job of
                                         counting query only        its own, then read it whole again to count;
                                         (``runtime.conf_set``)     without it one pass does both (scale 10:
                                                                    4 jobs -> 2, 885 MB read once, not twice)
``spark.sql.files.minPartitionNum``      a multiple of the cores    the CSV is read in equal splits of at most
                                         (``read_splits_for``)      128 MiB, which end together on every core
``spark.sql.inMemoryColumnarStorage      ``false``                  compressing the cache costs CPU and saves no
.compressed``                                                       memory: the heap is fixed, and what does not
                                                                    fit goes to local disk (scale 100: the scan's
                                                                    CPU 564 -> 300 s, the run 519 -> 395 s)
``spark.driver.memory``                  2g / 3g / 4g for CSVs up   local mode runs everything in the driver;
                                         to 256 MiB / 1 GiB / more  the cache spills to disk beyond it; 4g keeps
                                         (``--driver-memory``)      the process tree under 6 GiB at scale 100
``spark.sql.legacy.timeParserPolicy``    ``CORRECTED``              unparseable dates become NULL instead of
                                                                    Spark 2-vs-3 "inconsistent behaviour" errors
``spark.sql.ansi.enabled``               ``false``                  Glue 5.0's default; casts are try_cast anyway
``spark.sql.codegen.hugeMethodLimit``    ``8000``                   a generated method the JVM would not compile
                                                                    (over 8000 bytes) runs as Spark's
                                                                    per-operator code instead of interpreted:
                                                                    the scan's CPU 75 -> 50 s at scale 10. The
                                                                    flagging stage is kept under it (a test
                                                                    checks), so it runs fused: scan 30 -> 28 s
``spark.sql.execution.replaceHashWith    ``true``                   the gate's distinct count of line_id streams
SortAgg``                                                           the cache's sorted keys instead of hashing
                                                                    them (glue/quality.py)
``spark.ui.enabled``                     ``false`` (local)          no port to bind, faster start
JVM class-data sharing archive           once recorded (1st run)   ~2 s off a cold start (glue/local.py)
JIT and GC (``-XX:TieredStopAtLevel=1   up to 64 MiB of CSV only   a small run ends before C2's code pays back
-XX:+UseParallelGC``)                                               its compile time: on 2 cores C2 took 13 of 28
                                                                    CPU s at scale 1 (43 MiB), and C1 alone ran
                                                                    the job 2.2 s faster; at scale 10 (438 MiB)
                                                                    C1 alone was 2x slower (91 s against 46 s)
``-XX:+UseParallelGC``                   up to 1 GiB of CSV (a 3g   less GC CPU than G1 in a batch job nobody
                                         heap), G1 above            waits on: scale 10 49.5 -> 46-48 s; above,
                                                                    the 4g heap fills with the cache (untried)
``-Xms`` = the heap,                     beside the parallel        no full collection as the cache fills the
``-XX:MetaspaceSize=256m``               collector above 64 MiB     heap (the collector grows a small one step
                                                                    by step): scale 10 GC pauses 1.6-1.9 ->
                                                                    0.9-1.0 s, transform 42.6-44.3 -> 39.8-42 s
C2 directives (``glue/jit_directives     beside the parallel        C2 leaves Janino, the SQL parser, Java
.json``)                                 collector                  serialisation and class loading to C1: their
                                                                    C2 code pays back after the job; scale 10
                                                                    C2 CPU 14 -> 11 s, transform 46.9 -> 44.6 s
``-XX:+UseTransparentHugePages           beside ``-Xms`` (64 MiB    the heap in 2 MiB pages mapped before the job:
-XX:+AlwaysPreTouch``                    to 1 GiB of CSV), where    no page faults as the cache fills it, kernel
                                         the kernel offers them     time halved; scale 10 transform 42.7-44.3 ->
                                                                    38.3-39.5 s, CPU 80-83 -> 72-74 s
=======================================  =========================  ==============================================
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from retail_core import layout
from retail_core.lake import Lake

log = logging.getLogger(__name__)

LOCAL_ENGINE = "spark-local"
GLUE_ENGINE = "glue"
BYTES_PER_SHUFFLE_PARTITION = 64 * 1024 * 1024
READ_SPLIT_MAX = 128 * 1024 * 1024  # spark.sql.files.maxPartitionBytes, Spark's default
READ_OPEN_COST = 4 * 1024 * 1024  # spark.sql.files.openCostInBytes, Spark's default: added per file
HUGE_METHOD_LIMIT = 8000  # bytes of bytecode: HotSpot's -XX:HugeMethodLimit, which Glue's JVMs keep too


@dataclass(frozen=True)
class SparkSettings:
    """What the user may tune; everything else is fixed above. Locally only: on Glue the worker type decides."""

    shuffle_partitions: int | None = None  # None: sized from the input
    driver_memory: str = "2g"
    cores: int | None = None  # None: all of this machine's cores
    java_options: tuple[str, ...] = ()  # added to the driver JVM's options (glue.local.java_options_for)


def sql_settings(shuffle_partitions: int, input_bytes: int = 0, cores: int = 0) -> dict[str, str]:
    """Session settings, the same on Glue and locally (they can change on a running session).

    ``input_bytes`` and ``cores``, when known, size the read's splits."""
    read = {"spark.sql.files.minPartitionNum": str(read_splits_for(input_bytes, cores))} if cores else {}
    return {
        **read,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        # We size the partitions; AQE merging them would leave fewer tasks than cores and uneven part files.
        "spark.sql.adaptive.coalescePartitions.enabled": "false",
        "spark.sql.inMemoryColumnarStorage.compressed": "false",
        "spark.sql.legacy.timeParserPolicy": "CORRECTED",
        "spark.sql.ansi.enabled": "false",
        # The JVM does not compile a method over 8000 bytes of bytecode (HotSpot's HugeMethodLimit) and runs it
        # interpreted: the generated code of the pass that parses and flags every row is just over it, which made
        # that pass 2-3x slower. At this limit Spark falls back to its per-operator compiled code instead.
        "spark.sql.codegen.hugeMethodLimit": str(HUGE_METHOD_LIMIT),
        # An aggregate grouped by keys its input is already sorted by streams them instead of hashing them: the
        # gate's distinct count of line_id over the cache, sorted by the dedupe (glue/quality.py).
        "spark.sql.execution.replaceHashWithSortAgg": "true",
    }


@contextlib.contextmanager
def conf_set(spark: Any, key: str, value: str) -> Iterator[None]:
    """``key`` set to ``value`` in the session for the block, then what it was (unset if it was unset)."""
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def read_splits_for(input_bytes: int, cores: int) -> int:
    """How many splits the raw CSV is read in, at least: a multiple of the cores, each at most Spark's 128 MiB.
    Spark would cut 128 MiB splits and a shorter last one (scale 10: 128, 128, 128 and 78 MiB on 2 cores), and a
    core would wait while the other reads the last full one; equal splits end together."""
    waves = max(1, math.ceil((input_bytes + READ_OPEN_COST) / (cores * READ_SPLIT_MAX)))
    return cores * waves


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
    settings: SparkSettings | None = None  # what glue.local started it with (None: not ours, or Glue)
    # How to stop it: set by whoever started a session of its own (glue.local); someone else's is left running.
    stopper: Callable[[], None] | None = None

    @property
    def cores(self) -> int:
        return int(self.spark.sparkContext.defaultParallelism)

    @property
    def owns_session(self) -> bool:
        return self.stopper is not None

    def jvm_flags(self) -> list[str]:
        """The driver JVM's ``-XX`` and heap flags as it was started (JIT, GC, class archive, ``-Xms``/``-Xmx``),
        for the run report."""
        try:
            bean = self.spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
            return [str(a) for a in bean.getInputArguments() if str(a).startswith(("-XX:", "-Xms", "-Xmx"))]
        except Exception:  # a JVM we cannot ask (Spark Connect): the report says nothing rather than fail
            return []

    def configure(self, shuffle_partitions: int, input_bytes: int = 0) -> None:
        for key, value in sql_settings(shuffle_partitions, input_bytes, self.cores).items():
            self.spark.conf.set(key, value)

    def commit(self) -> None:
        """``job.commit()`` on Glue (records the job bookmark); nothing locally."""
        if self.job is not None:
            self.job.commit()

    def stop(self) -> None:
        """Stop a session this process started (and its JVM); someone else's is left running."""
        if self.stopper is not None:
            stopper, self.stopper = self.stopper, None
            stopper()

    def unprocessed_partitions(self, lake: Lake) -> set[dt.date] | None:
        """On Glue, the raw partitions whose manifest the job bookmark has not seen (all of them when bookmarks
        are off); None locally, where every complete partition is a candidate."""
        if self.glue_context is None:
            return None
        manifests = self.glue_context.create_dynamic_frame.from_options(
            connection_type="s3",
            connection_options={
                "paths": [lake.uri(f"{layout.RAW_ZONE}/{layout.DATASET}/")],
                "recurse": True,
                "exclusions": json.dumps([f"**/{layout.RAW_FILE_NAME}"]),
            },
            format="json",
            format_options={"multiline": True},  # the lake writes indented JSON
            transformation_ctx="raw_manifests",
        )
        frame = manifests.toDF()
        if "ingest_date" not in frame.columns:  # nothing new: an empty frame has no columns at all
            return set()
        dates = set()
        for row in frame.select("ingest_date").distinct().collect():
            try:
                dates.add(dt.date.fromisoformat(row["ingest_date"]))
            except (TypeError, ValueError):
                continue
        return dates


def start(argv: Sequence[str]) -> Runtime:
    """Glue when this is a Glue job run that can make a ``GlueContext``; else a plain SparkSession (an active
    one is used and left running). The laptop's tuned start is glue.local's, which the Glue zip does not carry."""
    glue = start_glue(argv)
    if glue is not None:
        return glue
    from pyspark import SparkContext  # Spark is there wherever the job script runs
    from pyspark.sql import SparkSession

    if SparkContext._active_spark_context is not None:
        return Runtime(spark=SparkSession.builder.getOrCreate(), engine=LOCAL_ENGINE)
    builder = SparkSession.builder.appName("retail-transform")
    for key, value in sql_settings(os.cpu_count() or 1).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    return Runtime(spark=spark, engine=LOCAL_ENGINE, stopper=spark.stop)


def is_glue_job_run(argv: Sequence[str]) -> bool:
    """Glue passes ``--JOB_NAME`` to every job run; the local CLI never does."""
    return "--JOB_NAME" in argv


def start_glue(argv: Sequence[str]) -> Runtime | None:
    """The Glue job's runtime when this is a Glue job run that can make a ``GlueContext``, else None."""
    if not is_glue_job_run(argv):
        return None
    try:
        from awsglue.context import GlueContext  # only Glue (or aws-glue-libs) has it
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
