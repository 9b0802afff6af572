"""The job's edges: peeking at the raw CSV on the driver, reading it with Spark, writing the TSV dialect.

Reading the raw file (``read_raw``): every field is read as the string it is, so rejected rows keep their
original values and the line key hashes what was read. Two columns record where a row came from, for "first
copy wins" and for the quarantine's ``line_no``: ``_block_start`` (the byte offset of the file split that
holds it) and ``_row_id`` (``monotonically_increasing_id``, which counts rows in read order inside a split).

Writing (``write_tsv``): every value is turned into the dialect's text first (timestamps
``YYYY-MM-DD HH:MM:SS``, plain decimals, NULL as an empty field) and the fields of a row are joined into its
line, then Spark's text writer writes the lines as they are, the header line before the first line of each
part file (what Spark's CSV writer with ``retail_core.dialect.spark_writer_options`` writes, byte for byte), and
the part files are renamed ``part-00000.tsv``... before anyone can see them.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from glue.cleaning import CORRUPT_RECORD_COLUMN, snake_case
from retail_core import dialect
from retail_core.errors import InputError, UpstreamError
from retail_core.lake import Lake, LocalLake

SPARK_CHARSETS = {"utf-8": "UTF-8", "iso-8859-1": "ISO-8859-1"}
HEAD_SIZE = 1 << 20  # what the driver reads to check the header and guess the encoding
_BOM = codecs.BOM_UTF8
BLOCK_START = "_block_start"
ROW_ID = "_row_id"


@dataclass(frozen=True)
class Encoding:
    """How the raw bytes are decoded; ``how`` is ``flag`` (the user said), ``detected`` or ``fallback``.

    ``valid_utf8``: the whole file is known to be valid UTF-8 (the ingest checked every byte, or the head is
    the whole file), so a U+FFFD read from it is a character of the data, not a sign of another encoding."""

    name: str
    how: str
    bom: bool = False
    valid_utf8: bool = False

    @property
    def spark_charset(self) -> str:
        return SPARK_CHARSETS[self.name]


def choose_encoding(
    requested: str, head: bytes, *, whole_file: bool = False, valid_utf8: bool = False
) -> Encoding:
    """The flag's encoding, or for ``auto``: UTF-8 when there is a BOM or the head decodes as UTF-8, else
    ISO-8859-1 (which decodes any byte). ``whole_file``: ``head`` is the entire file. ``valid_utf8``: the
    ingest found every byte valid UTF-8 (its manifest's ``utf8``)."""
    bom = head.startswith(_BOM)
    if requested != "auto":  # TransformOptions.check has vetted it
        return Encoding(requested, "flag", bom, valid_utf8)
    if bom or valid_utf8:
        return Encoding("utf-8", "detected", bom, valid_utf8)
    try:
        # Incremental: a multi-byte character cut by the end of the head is not an error.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=whole_file)
    except UnicodeDecodeError:
        return Encoding("iso-8859-1", "detected", False)
    return Encoding("utf-8", "detected", False, whole_file)


def check_header(head: bytes, encoding: Encoding, *, where: str) -> tuple[str, ...]:
    """The raw header's names; InputError unless they are the eight expected columns in order (or the file is
    UTF-16/32, which Spark would read as garbage)."""
    dialect.refuse_wide_encoding(head, where)
    first = dialect.first_line(head)
    if first.startswith(_BOM):
        first = first[len(_BOM) :]
    if not first.strip():
        raise InputError("the raw CSV is empty", where, "run the ingest again")
    try:
        names = tuple(next(csv.reader([first.decode(encoding.name, errors="replace")])))
    except csv.Error as exc:
        raise InputError("the CSV header cannot be read", where, f"{exc}; export the data again") from None
    if tuple(snake_case(n) for n in names) != dialect.SOURCE_COLUMNS:
        raise InputError(
            "wrong CSV header",
            where,
            f"expected {','.join(dialect.RAW_COLUMNS)} but found {','.join(names)[:200]!r}",
        )
    return names


def read_head(lake: Lake, key: str, size: int | None = None, *, endpoint_url: str | None = None) -> bytes:
    """The first ``size`` (default HEAD_SIZE) bytes of ``key`` (a ranged GET on S3: the file may be gigabytes)."""
    size = size or HEAD_SIZE
    if isinstance(lake, LocalLake):
        try:
            with lake.path(key).open("rb") as handle:
                return handle.read(size)
        except FileNotFoundError:
            raise InputError("raw file not found", lake.uri(key), "run `retail-pipeline ingest`") from None
    import boto3
    from botocore.exceptions import ClientError

    bucket, _, object_key = lake.uri(key)[len("s3://") :].partition("/")
    try:
        response = boto3.client("s3", endpoint_url=endpoint_url).get_object(
            Bucket=bucket, Key=object_key, Range=f"bytes=0-{size - 1}"
        )
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "error"))
        if code in ("InvalidRange", "416"):  # S3's answer to a range of an empty object: no bytes
            return b""
        if code in ("NoSuchKey", "404"):
            raise InputError("raw file not found", lake.uri(key), "run `retail-pipeline ingest`") from None
        raise UpstreamError(
            f"S3 could not read ({code})", lake.uri(key), "check the bucket, its policy and the job's role"
        ) from None
    return response["Body"].read()


# The most fields a raw line may split into and still be read (then quarantined as malformed_row). The parser keeps
# one array of this many references per task (8 MB); a line with more stops the scan with a one-line error
# (glue/job.py, _scan_until_sound).
MAX_COLUMNS = 1_000_000


def raw_schema() -> T.StructType:
    """Eight strings named as in the raw header, plus the reader's corrupt-record column."""
    fields = [T.StructField(name, T.StringType()) for name in dialect.RAW_COLUMNS]
    return T.StructType([*fields, T.StructField(CORRUPT_RECORD_COLUMN, T.StringType())])


def read_raw(spark: SparkSession, uri: str, *, charset: str, multiline: bool, attempt: str = "") -> DataFrame:
    """The raw CSV (RFC 4180: ``"`` quotes, ``""`` escapes) as strings, with its position columns.

    ``multiline=False`` splits the file across cores but cannot see a newline inside a quoted field (such a
    record comes out as malformed pieces); ``multiline=True`` reads the file in one task and can.
    A line that does not split into eight fields keeps its text in ``_corrupt_record``. ``attempt`` makes the
    plan this run's own (see below).
    """
    df = (
        spark.read.schema(raw_schema())
        .option("header", "true")
        .option("enforceSchema", "true")  # the header was checked on the driver; names come from the schema
        .option("multiLine", str(multiline).lower())
        .option("encoding", charset)
        .option("quote", '"')
        .option("escape", '"')
        .option("mode", "PERMISSIVE")
        # A line of more fields than this stops the reader (univocity's array bound) instead of landing in
        # _corrupt_record; the default 20,480 is one line of stray commas away. See MAX_COLUMNS.
        .option("maxColumns", str(MAX_COLUMNS))
        .option("columnNameOfCorruptRecord", CORRUPT_RECORD_COLUMN)
        # Ignored by the reader, but part of the plan: Spark's cache matches plans, not file contents, so
        # without it a rerun on a rewritten file in the same session could be served the previous run's rows.
        .option("retailAttempt", attempt)
        .csv(uri)
    )
    # Both must be computed in the scan itself: after a shuffle they would mean nothing.
    return df.select(
        "*",
        F.expr("input_file_block_start()").alias(BLOCK_START),
        F.monotonically_increasing_id().alias(ROW_ID),
    )


def line_numbers(blocks: Mapping[int, tuple[int, int]]) -> Column:
    """``line_no`` (1-based data row) from the position columns, given each block's (row count, first _row_id).

    Rows of one split are read in order by one task, so ``_row_id`` counts up by one inside a block; blocks
    follow each other in the file by their start offset.
    """
    offsets: dict[int, int] = {}
    before = 0
    for start in sorted(blocks):
        count, first_row_id = blocks[start]
        offsets[start] = before + 1 - first_row_id
        before += count
    if not offsets:
        return F.lit(None).cast("bigint")
    pairs = [item for start, offset in offsets.items() for item in (F.lit(start), F.lit(offset))]
    return F.col(ROW_ID) + F.element_at(F.create_map(*pairs), F.col(BLOCK_START))


def tsv_columns(df: DataFrame) -> DataFrame:
    """Every column as the dialect's text: timestamps ``yyyy-MM-dd HH:mm:ss``, dates ISO, numbers plain."""
    out = []
    for f in df.schema.fields:
        col = F.col(f"`{f.name}`")
        if isinstance(f.dataType, T.TimestampType | T.TimestampNTZType):
            col = F.date_format(col, dialect.TIMESTAMP_FORMAT_SPARK)
        elif not isinstance(f.dataType, T.StringType):
            col = col.cast("string")
        out.append(col.alias(f.name))
    return df.select(out)


def tsv_lines(df: DataFrame) -> DataFrame:
    """Each row as its TSV line (the fields joined by tabs, NULL as an empty field), in one column named by the
    header line."""
    fields = [F.coalesce(F.col(f"`{c}`"), F.lit(dialect.NULL_VALUE)) for c in df.columns]
    return tsv_columns(df).select(
        F.concat_ws(dialect.SEPARATOR, *fields).alias(dialect.SEPARATOR.join(df.columns))
    )


# The position of a row in its task: monotonically_increasing_id is the task's index << 33 plus this.
_ROW_IN_TASK = (1 << 33) - 1


def write_tsv(
    df: DataFrame,
    uri: str,
    *,
    files: int,
    partitions: int | None = None,
    metrics: Mapping[str, Column] | None = None,
) -> dict[str, Any]:
    """Write ``df`` to the folder ``uri`` in at most ``files`` part files, ``_SUCCESS`` last.

    ``df``'s text columns must hold no tab, CR, LF or NUL (the cleaning's ``sanitized``). ``partitions``: how
    many partitions ``df`` has, when known; with at least ``files`` of them the parts are merged without a
    shuffle. ``metrics`` are aggregates computed while writing (``observe``, no second pass); the row count is
    always among them, as ``rows``.
    """
    observation = Observation("written")
    exprs = {"rows": F.count(F.lit(1)), **(metrics or {})}
    observed = df.observe(observation, *[e.alias(name) for name, e in exprs.items()])
    # coalesce merges (cached) partitions without a shuffle; only a frame with fewer needs a repartition.
    enough = partitions is None or partitions >= files
    shaped = observed.coalesce(files) if enough else observed.repartition(files)
    lines = tsv_lines(shaped)
    header = lines.columns[0]
    line = F.col(f"`{header}`")
    # Spark's CSV writer would turn every line into a Java String and back into UTF-8 bytes (a quarter of the
    # sales' write at scale 10); the text writer writes the bytes as they are. Each task writes one part file,
    # so the header goes before the task's first line, where the CSV writer puts it.
    first = (F.monotonically_increasing_id().bitwiseAND(F.lit(_ROW_IN_TASK))) == 0
    with_header = F.when(first, F.concat(F.lit(header + dialect.LINE_TERMINATOR), line)).otherwise(line)
    lines.select(with_header).write.mode("overwrite").option("lineSep", dialect.LINE_TERMINATOR).text(uri)
    _rename_parts(df.sparkSession, uri, header=header)
    return dict(observation.get)


def _rename_parts(spark: SparkSession, uri: str, *, header: str) -> list[str]:
    """``part-00000-<uuid>-c000.txt`` -> ``part-00000.tsv`` through Hadoop's FileSystem (local, S3 alike).

    An empty part file (Spark's first task writes one even without rows) becomes the header line alone, as the
    CSV writer writes it."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    parts = sorted(
        (
            s
            for s in fs.listStatus(path)
            if s.getPath().getName().startswith("part-")
            and not s.getPath().getName().endswith(dialect.FILE_SUFFIX)
        ),
        key=lambda s: s.getPath().getName(),
    )
    renamed = []
    for number, status in enumerate(parts):
        source = status.getPath()
        target_name = f"part-{number:05d}{dialect.FILE_SUFFIX}"
        target = jvm.org.apache.hadoop.fs.Path(path, target_name)
        if status.getLen() == 0:
            stream = fs.create(target, True)
            try:
                stream.write(bytearray((header + dialect.LINE_TERMINATOR).encode(dialect.ENCODING)))
            finally:
                stream.close()
            fs.delete(source, False)
        elif not fs.rename(source, target):
            raise OSError(f"could not rename {uri}/{source.getName()} to {target_name}")
        renamed.append(target_name)
    return renamed
