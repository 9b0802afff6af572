"""The transform job: one raw partition of the lake -> processed TSV, quarantine TSV and a run report.

The same code on both targets: AWS Glue runs it from ``glue/retail_transform.py`` (the job script, with
``retail_core`` and ``glue`` as ``--extra-py-files``), ``retail-pipeline transform`` from ``glue/local.py``
(Spark in local mode). Each hands :func:`transform` a started :class:`~glue.runtime.Runtime` and the lake, and
records the stage's figures through :func:`recorded`.

In one pass over the raw CSV it parses, flags and deduplicates every row and caches the result; the run's
counts, the quality gate and the three outputs are then read from that cache:

1. driver: pick the partition, read its manifest, sniff the header and the encoding (first MiB only);
2. Spark job 1: scan + flag + dedupe, cached; one small aggregate gives counts by reason and by file split;
3. the quality gate (GX) on the cached clean rows, alone. A failing gate writes its report and Data Docs and
   nothing else;
4. the three outputs (sales, returns, quarantine) written to staging folders at once, counting what is
   written, while GX renders the Data Docs;
5. conservation (rows read = manifest rows = clean + returns + quarantined written), then promotion: each
   staging folder replaces the published one, its manifest last; the run report is written last.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import decimal
import logging
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from glue import cleaning, quality, runtime
from glue import io as tio
from glue.options import TransformOptions
from retail_core import contract, dialect, faults, layout, lease, metrics, run_page
from retail_core.config import Settings
from retail_core.errors import InputError, PipelineError, QualityGateError
from retail_core.lake import Lake, LocalLake

log = logging.getLogger(__name__)

PROCESSED, QUARANTINE, RETURNS = layout.PROCESSED_ZONE, layout.QUARANTINE_ZONE, layout.RETURNS_ZONE
# Publishing order: the returns and the rejects before the sales, whose manifest the warehouse load keys on.
ZONES = (QUARANTINE, RETURNS, PROCESSED)
DATA_DOCS_DIR = layout.DATA_DOCS_DIR
SUCCEEDED = "succeeded"
FAILED_GATE = "failed_gate"
FAILED_CONSERVATION = "failed_conservation"
FAILED = "failed"  # anything else after the gate passed (e.g. the lake refused a write)
RAW_VALUES = "_raw"  # the cached scan's struct of a rejected row's raw values (NULL for a kept row)


@dataclass(frozen=True)
class TransformResult:
    ingest_date: dt.date
    report: dict[str, Any]
    rows_in: int
    rows_clean: int
    rows_quarantined: int
    rows_returns: int
    processed_uri: str
    quarantine_uri: str
    report_uri: str

    @property
    def passed(self) -> bool:
        return self.report["status"] == SUCCEEDED


# No decimal(38,3) reaches 10**35: the type of total_sales, of its sums in Spark and of the warehouse's.
_PRECISION, _SCALE = (int(n) for n in re.findall("[0-9]+", contract.TOTAL_SALES_TYPE))
_TOTAL_SALES_BOUND = Decimal(10) ** (_PRECISION - _SCALE)


@dataclass
class _Scan:
    """The cached flagged frame and what one aggregate over it said."""

    flagged: Any  # DataFrame, cached
    charset: str
    multiline: bool
    rows: int = 0
    by_reason: dict[str | None, int] = field(default_factory=dict)
    total_sales: Decimal = Decimal("0.000")  # over the clean rows (the sales)
    returns: int = 0  # kept cancellation lines
    returns_total_sales: Decimal = Decimal("0.000")  # over the returns (negative)
    blocks: dict[int, tuple[int, int]] = field(default_factory=dict)  # split start -> (rows, first _row_id)
    split_records: int = 0
    undecodable: int = 0
    # A sum of kept rows' total_sales past decimal(38,3): Spark's sum then says NULL, which read as 0.000 would
    # reconcile with the writes' equally NULL sums; the warehouse's sum cannot hold it either.
    sum_overflow: bool = False

    @property
    def encoding(self) -> str:
        return {v: k for k, v in tio.SPARK_CHARSETS.items()}[self.charset]


class NothingNew(Exception):
    """Nothing to transform, and that is a success: every raw partition was already processed (Glue's job
    bookmarks), or the ingest found the source unchanged on the date asked for (its ``_unchanged.json``)."""


class TransformFailed(QualityGateError):
    """The gate or the row reconciliation said no; ``report`` was written and the last good output kept."""

    def __init__(self, what: str, where: str, todo: str | None, report: dict[str, Any]) -> None:
        super().__init__(what, where, todo)
        self.report = report


def metric_figures(report: dict[str, Any]) -> dict[str, float]:
    """The run's figures for ``retail_core.metrics`` (the alarms watch the quarantine ratio)."""
    return {
        "rows_in": report["rows_in"],
        "rows_clean": report["rows_clean"],
        "rows_quarantined": report["rows_quarantined"],
        "rows_returns": report.get("rows_returns", 0),
        "quarantine_ratio": report["quarantine_ratio"],
    }


@contextlib.contextmanager
def recorded(
    settings: Settings, *, run_id: str, ingest_date: dt.date | None
) -> Iterator[Callable[[TransformResult], None]]:
    """The transform stage's figures for run ``run_id``, recorded once whichever target ran it (the Glue script
    or glue/local.py): rows in, clean, quarantined and the quarantine ratio, which the alarms watch. The block
    calls the yielded function with its result; a failed gate's report is recorded as it raises."""
    nothing_new: NothingNew | None = None
    with metrics.measured(settings, "transform", run_id=run_id) as record:
        record.ingest_date = ingest_date

        def done(result: TransformResult) -> None:
            record.ingest_date = result.ingest_date
            record.figures.update(metric_figures(result.report))
            record.figures["noop"] = 0

        try:
            yield done
        except NothingNew as exc:  # a success: recorded as a no-op, then passed on to the caller
            record.figures["noop"] = 1
            nothing_new = exc
        except TransformFailed as failed:
            record.ingest_date = dt.date.fromisoformat(failed.report["ingest_date"])
            record.figures.update(metric_figures(failed.report))
            raise
    if nothing_new is not None:
        raise nothing_new


@dataclass
class _Run:
    """What one run knows before it reads a row."""

    rt: runtime.Runtime
    lake: Lake
    options: TransformOptions
    date: dt.date
    manifest: dict[str, Any]
    encoding: tio.Encoding
    partitions: int
    clock: _Clock
    started_at: dt.datetime
    run_id: str  # the pipeline run's, given by whoever started it
    # This invocation's own token: two attempts of one run (a retry) never share Spark's cached scan (a read is
    # cached by its plan, and the plan names the token) or a staging folder.
    attempt: str
    lease: lease.Lease

    @property
    def date_window(self) -> tuple[dt.datetime, dt.datetime]:
        """The accepted invoice dates, fixed at the run's start."""
        return self.options.date_window(self.started_at)


def transform(
    rt: runtime.Runtime,
    lake: Lake,
    *,
    run_id: str,
    ingest_date: dt.date | None = None,
    options: TransformOptions | None = None,
    endpoint_url: str | None = None,
    candidates: set[dt.date] | None = None,
    startup: float | None = None,
    held: lease.Lease | None = None,
) -> TransformResult:
    """Clean one raw partition (``ingest_date``, else the newest complete one among ``candidates``) for the
    pipeline run ``run_id``, which the run report carries.

    ``held``: the date's lease, when the caller took it already (glue/local.py does, before it starts Spark, so a
    second writer of the date stops at once); otherwise the transform takes it here."""
    options = options or TransformOptions()
    options.check()
    started_at = dt.datetime.now(dt.UTC)
    clock = _Clock(startup)
    date = pick_partition(lake, ingest_date, candidates)
    with contextlib.ExitStack() as stack:
        if held is None:
            held = stack.enter_context(lease.held(lake, date, stage="transform", run_id=run_id))
        return _transform_date(
            rt,
            lake,
            date,
            run_id=run_id,
            options=options,
            endpoint_url=endpoint_url,
            clock=clock,
            started_at=started_at,
            held=held,
        )


def _transform_date(
    rt: runtime.Runtime,
    lake: Lake,
    date: dt.date,
    *,
    run_id: str,
    options: TransformOptions,
    endpoint_url: str | None,
    clock: _Clock,
    started_at: dt.datetime,
    held: lease.Lease,
) -> TransformResult:
    """The transform of ``date``, under its lease."""
    manifest = lake.read_json(layout.raw_manifest_key(date))
    raw_uri = lake.uri(layout.raw_key(date))
    head = tio.read_head(lake, layout.raw_key(date), endpoint_url=endpoint_url)
    encoding = tio.choose_encoding(
        options.encoding,
        head,
        whole_file=len(head) < tio.HEAD_SIZE,
        valid_utf8=manifest.get("utf8") is True,
    )
    tio.check_header(head, encoding, where=raw_uri)
    size = input_size(lake, date, manifest) or len(head)
    partitions = _shuffle_partitions(size, rt.cores, options)
    rt.configure(partitions, size)
    quality.preload()
    log.info("transform: %s (%s, %s bytes, %s)", raw_uri, encoding.name, f"{size:,}", encoding.how)
    clock.lap("read")

    run = _Run(
        rt=rt,
        lake=lake,
        options=options,
        date=date,
        manifest=manifest,
        encoding=encoding,
        partitions=partitions,
        clock=clock,
        started_at=started_at,
        run_id=run_id,
        attempt=uuid.uuid4().hex[:12],
        lease=held,
    )
    scan = _scan_until_sound(
        rt.spark,
        raw_uri,
        encoding,
        manifest_rows=manifest.get("rows"),
        attempt=run.attempt,
        date_window=run.date_window,
        lines=RawLines.of(manifest),
    )
    try:
        return _finish(run, scan)
    finally:
        scan.flagged.unpersist()


def _finish(run: _Run, scan: _Scan) -> TransformResult:
    """Gate, write, reconcile, promote and report, from the cached scan.

    The gate runs first and alone, so that its time is its own and a batch it refuses is never written. The
    three outputs are then written to staging folders while great_expectations renders the Data Docs (Python,
    beside the JVM's writes). Nothing is published before the gate has passed and the counts reconcile.
    """
    lake, date = run.lake, run.date
    rows_in = scan.rows
    if rows_in == 0:
        raise InputError(
            "the raw CSV has no data rows", lake.uri(layout.raw_key(date)), "check the source export"
        )
    if scan.sum_overflow:
        raise InputError(
            f"the kept rows' total_sales (quantity x unit_price) add up past {contract.TOTAL_SALES_TYPE}, the "
            "type the warehouse sums them in",
            lake.uri(layout.raw_key(date)),
            "look for absurd quantities or unit prices (19-digit numbers), fix or remove them and ingest again",
        )
    rows_clean = scan.by_reason.get(None, 0)
    rows_quarantined = rows_in - rows_clean - scan.returns
    by_reason = {r: scan.by_reason[r] for r in contract.REJECT_REASONS if scan.by_reason.get(r)}
    log.info(
        "transform: %s rows read, %s clean, %s returns, %s quarantined",
        rows_in,
        rows_clean,
        scan.returns,
        rows_quarantined,
    )
    run.clock.lap("clean")

    staged = {zone: layout.staging_prefix(zone, date, run.attempt) for zone in ZONES}
    for zone in ZONES:
        published = layout.zone_prefix(zone, date)
        # What a killed run of this date left (under the lease, no other run of the date is going on): its
        # staging folder, and files it placed that no manifest names.
        lake.delete_prefix(layout.staging_prefix(zone, date))
        lake.sweep_partition(published)
    workers = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="transform-docs")
    docs_tmp = Path(tempfile.mkdtemp(prefix="retail-gx-docs-"))
    report: dict[str, Any] | None = None
    try:
        gate = quality.run_gate(
            cleaning.clean_rows(scan.flagged, date),
            rows_in=rows_in,
            max_quarantine_ratio=run.options.max_quarantine_ratio,
            rows_returns=scan.returns,
            rows_clean=rows_clean,
            date_window=run.date_window,
        )
        run.clock.lap("gate")
        report = _report(run, scan, gate, rows_clean, by_reason)
        docs = workers.submit(gate.write_data_docs, docs_tmp)  # Python renders while the JVM writes
        try:
            _check_read(report)
            if gate.passed:
                written = _write_staging(run, scan, staged)
                run.clock.lap("write")
                report["rows_written"] = written
                _check_conservation(report)
                meta = {"dataset": layout.DATASET, "ingest_date": date.isoformat(), "run_id": run.run_id}
                figures = {
                    QUARANTINE: {"rows": written["quarantine"]},
                    RETURNS: {"rows": written["returns"], "total_sales": written["returns_total_sales"]},
                    PROCESSED: {"rows": written["processed"], "total_sales": written["total_sales"]},
                }
                for number, zone in enumerate(ZONES):
                    if number:
                        faults.point("transform.between_zones")
                    run.lease.check()
                    lake.promote(
                        staged[zone],
                        layout.zone_prefix(zone, date),
                        generation=run.attempt,
                        meta={**meta, **figures[zone]},
                    )
                report["generation"] = run.attempt
                run.clock.lap("promote")
        except TransformFailed:
            raise
        except BaseException as exc:
            # BaseException: a Ctrl-C (KeyboardInterrupt) or a SystemExit mid-write must not leave a report that
            # says "succeeded" over output it never published.
            report["status"] = FAILED
            if isinstance(exc, PipelineError):
                report["error"] = exc.one_line()
            elif isinstance(exc, KeyboardInterrupt | SystemExit):
                report["error"] = f"interrupted ({type(exc).__name__}): the previous output was kept"
            else:
                report["error"] = repr(exc)[:500]
            raise
        finally:
            quality_prefix = layout.quality_prefix(date)
            try:
                docs.result()
                _publish_docs(lake, docs_tmp, f"{quality_prefix}/{DATA_DOCS_DIR}")
                report["data_docs"] = f"{quality_prefix}/{DATA_DOCS_DIR}/index.html"
            except Exception:  # the docs are a convenience; the report below says what happened
                log.warning("could not write the GX Data Docs", exc_info=True)
            run.clock.lap("docs")
            report["timings_s"] = run.clock.timings()
            report["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            faults.point("transform.before_report")
            lake.write_json(layout.run_report_key(date), report)
            _write_run_page(lake, date, report, run.run_id)
    finally:
        workers.shutdown()
        shutil.rmtree(docs_tmp, ignore_errors=True)
        for zone in staged:
            lake.delete_prefix(layout.staging_prefix(zone, date))
    if not gate.passed:
        raise TransformFailed(
            f"quality gate failed: {gate.failure_line()}",
            lake.uri(layout.run_report_key(date)),
            "the previous processed output was kept; see the report and data_docs/index.html",
            report,
        )
    return TransformResult(
        ingest_date=date,
        report=report,
        rows_in=rows_in,
        rows_clean=rows_clean,
        rows_quarantined=rows_quarantined,
        rows_returns=scan.returns,
        processed_uri=lake.uri(layout.processed_prefix(date)),
        quarantine_uri=lake.uri(layout.quarantine_prefix(date)),
        report_uri=lake.uri(layout.run_report_key(date)),
    )


def _write_run_page(lake: Lake, date: dt.date, report: dict[str, Any], run_id: str) -> None:
    """The run's page beside its report, without gold (the build rewrites it when it publishes): what a run
    whose gate failed leaves for people to read. A page that cannot be written is a warning, not a failed run."""
    try:
        links = run_page.PageLinks(
            data_docs=f"{DATA_DOCS_DIR}/index.html" if report.get("data_docs") else None
        )
        page = run_page.render(report, run_id=run_id, links=links)
        lake.write_bytes(layout.run_page_key(date), page.encode("utf-8"))
    except Exception:  # the report above is what the pipeline reads; the page is for people
        log.warning("could not write the run page", exc_info=True)


def _report(
    run: _Run, scan: _Scan, gate: quality.GateResult, rows_clean: int, by_reason: dict[str, int]
) -> dict[str, Any]:
    rows_in = scan.rows
    return {
        "dataset": layout.DATASET,
        "ingest_date": run.date.isoformat(),
        "status": SUCCEEDED if gate.passed else FAILED_GATE,
        "raw_key": layout.raw_key(run.date),
        "raw_sha256": run.manifest.get("sha256"),
        "manifest_rows": run.manifest.get("rows"),
        "rows_in": rows_in,
        "rows_clean": rows_clean,
        "rows_returns": scan.returns,
        "rows_quarantined": rows_in - rows_clean - scan.returns,
        "quarantined_by_reason": by_reason,
        "total_sales": str(scan.total_sales),
        "returns_total_sales": str(scan.returns_total_sales),
        "quarantine_ratio": (rows_in - rows_clean - scan.returns) / rows_in,
        "gate": gate.as_report(),
        "encoding": {
            "name": scan.encoding,
            "how": run.encoding.how if scan.encoding == run.encoding.name else "fallback",
            "bom": run.encoding.bom,
        },
        "multiline_records": scan.multiline,
        "output_files": run.options.output_files,
        "spark": {
            "shuffle_partitions": run.partitions,
            "cores": run.rt.cores,
            "jvm_flags": run.rt.jvm_flags(),
        },
        "engine": run.rt.engine,
        "run_id": run.run_id,
        "started_at": run.started_at.isoformat(timespec="seconds"),
    }


def _write_staging(run: _Run, scan: _Scan, staged: dict[str, str]) -> dict[str, Any]:
    """The three outputs into their staging folders, counted while written: {processed, returns, quarantine,
    total_sales, returns_total_sales}.

    The three are written at once: the returns and the quarantine are one task each (one file), which would
    leave a core idle if they ran alone; beside the sales' tasks they fill the cores."""
    from pyspark.sql import functions as F

    lake, date = run.lake, run.date
    with_line_no = scan.flagged.select("*", f"{RAW_VALUES}.*", tio.line_numbers(scan.blocks).alias("line_no"))
    writes: dict[str, Callable[[], dict[str, Any]]] = {
        PROCESSED: lambda: tio.write_tsv(
            cleaning.clean_rows(scan.flagged, date),
            lake.uri(staged[PROCESSED]),
            files=run.options.output_files,
            partitions=run.partitions,
            metrics={"total_sales": F.sum("total_sales")},
        ),
        RETURNS: lambda: tio.write_tsv(
            cleaning.return_rows(scan.flagged, date),
            lake.uri(staged[RETURNS]),
            files=1,
            partitions=run.partitions,
            metrics={"total_sales": F.sum("total_sales")},
        ),
        QUARANTINE: lambda: tio.write_tsv(
            cleaning.quarantine_rows(with_line_no, date),
            lake.uri(staged[QUARANTINE]),
            files=1,
            partitions=run.partitions,
        ),
    }
    with concurrent.futures.ThreadPoolExecutor(len(writes), thread_name_prefix="transform-write") as pool:
        # The sales are submitted first: Spark hands out task slots in the order jobs come, theirs are the most.
        futures = {zone: pool.submit(writes[zone]) for zone in (PROCESSED, RETURNS, QUARANTINE)}
        concurrent.futures.wait(futures.values())  # never leave a Spark job writing behind us
        clean, returned, rejected = (futures[zone].result() for zone in (PROCESSED, RETURNS, QUARANTINE))
    return {
        "processed": clean["rows"],
        "returns": returned["rows"],
        "quarantine": rejected["rows"],
        "total_sales": "0.000" if clean["total_sales"] is None else str(clean["total_sales"]),
        "returns_total_sales": "0.000" if returned["total_sales"] is None else str(returned["total_sales"]),
    }


def pick_partition(lake: Lake, requested: dt.date | None, candidates: set[dt.date] | None = None) -> dt.date:
    """``requested`` if its raw partition is complete, else the newest complete one (within ``candidates``)."""
    if requested is not None:
        if not lake.exists(layout.raw_manifest_key(requested)):
            unchanged = layout.raw_unchanged_key(requested)
            if lake.exists(unchanged):
                same_as = lake.read_json(unchanged).get("same_as")
                raise NothingNew(
                    f"the source was unchanged on {requested} (identical to ingest_date={same_as})"
                )
            raise InputError(
                "no complete raw partition for that date",
                lake.uri(layout.zone_prefix(layout.RAW_ZONE, requested)),
                "run `retail-pipeline ingest` first, or pick another --ingest-date",
            )
        return requested
    complete = [d for d in lake.partitions(layout.RAW_ZONE) if lake.exists(layout.raw_manifest_key(d))]
    if candidates is not None:
        complete = [d for d in complete if d in candidates]
        if not complete:
            raise NothingNew()
    if not complete:
        raise InputError(
            "no complete raw partition in the lake",
            lake.uri(f"{layout.RAW_ZONE}/{layout.DATASET}"),
            "run `retail-pipeline ingest` first",
        )
    return complete[-1]


@dataclass(frozen=True)
class RawLines:
    """What the ingest's manifest says about how the raw records lie on lines (ingestion.validate.RecordShape);
    None where it does not say (a producer that knew its rows, or a manifest from before the keys)."""

    multiline_records: int | None = None
    blank_like_lines: int | None = None
    line_ends: dict[str, int] | None = None

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> RawLines:
        return cls(
            manifest.get("multiline_records"), manifest.get("blank_like_lines"), manifest.get("line_ends")
        )

    @property
    def need_record_reader(self) -> bool:
        """A record that is not one line of its own, which the line reader would split or drop while the row
        counts could still agree (a dropped line of spaces cancels a record split in two)."""
        return bool(self.multiline_records or self.blank_like_lines)

    def refuse_mixed_line_ends(self, uri: str) -> None:
        """The record reader takes the file's line end from its first line: another kind later stays in the
        values (a country ending in CR) or joins two records into one. InputError when the ingest saw several."""
        kinds = {kind: n for kind, n in (self.line_ends or {}).items() if n}
        if len(kinds) > 1:
            seen = ", ".join(f"{n:,} {kind.upper()}" for kind, n in sorted(kinds.items()))
            raise InputError(
                f"the raw CSV mixes line ends ({seen}) and has records that are not one line each, which Spark "
                "cannot read together",
                uri,
                "convert its line ends to one kind (dos2unix; mac2unix for CR) and ingest it again",
            )


def _scan_until_sound(
    spark: Any,
    uri: str,
    encoding: tio.Encoding,
    *,
    manifest_rows: int | None,
    attempt: str,
    date_window: tuple[dt.datetime, dt.datetime],
    lines: RawLines | None = None,
) -> _Scan:
    """Scan with the fast settings unless the manifest shows they are wrong; scan again only when the data
    shows they were."""
    lines = lines or RawLines()
    charset, multiline = encoding.spark_charset, lines.need_record_reader
    if multiline:
        lines.refuse_mixed_line_ends(uri)
        log.info("the raw CSV has records that are not one line each: reading it record by record")
    for _ in range(3):
        frame = flagged_frame(
            spark,
            uri,
            charset=charset,
            multiline=multiline,
            attempt=attempt,
            date_window=date_window,
            # Bytes the ingest found valid UTF-8 decode without a replacement character: none to look for.
            find_undecodable=charset == "UTF-8" and not encoding.valid_utf8,
        )
        try:
            scan = _scan(frame, charset=charset, multiline=multiline)
        except Exception as exc:
            # The CSV reader gives up on a line (more than tio.MAX_COLUMNS fields): Spark's job error carries
            # univocity's TextParsingException and pages of Java stack; say what it means instead.
            if "TextParsingException" not in str(exc):
                raise
            raise InputError(
                f"a raw line the CSV reader cannot parse (more than {tio.MAX_COLUMNS:,} fields?)",
                uri,
                "find the line (e.g. awk -F, 'NF > 100' on the file), fix or remove it and ingest again",
            ) from None
        count_differs = manifest_rows is not None and scan.rows != manifest_rows
        if not multiline and (scan.split_records or count_differs):
            log.warning("the raw CSV has quoted fields that span lines: reading it again record by record")
            lines.refuse_mixed_line_ends(uri)
            multiline = True
        elif charset == "UTF-8" and scan.undecodable and not encoding.valid_utf8:
            if encoding.how != "detected":
                raise InputError(
                    f"{scan.undecodable} row(s) hold bytes that are not UTF-8",
                    uri,
                    "rerun with --encoding iso-8859-1 (or --encoding auto)",
                )
            log.warning("bytes that are not UTF-8 past the first MiB: reading the raw CSV as ISO-8859-1")
            charset = "ISO-8859-1"
        else:
            return scan
        scan.flagged.unpersist()
    raise InputError("the raw CSV could not be read consistently", uri, "check its quoting and encoding")


def flagged_frame(
    spark: Any,
    uri: str,
    *,
    charset: str,
    multiline: bool,
    attempt: str,
    date_window: tuple[dt.datetime, dt.datetime],
    find_undecodable: bool = False,
) -> Any:
    """The raw CSV read and flagged, in the columns the scan caches (not cached here)."""
    from pyspark.sql import functions as F

    raw = tio.read_raw(spark, uri, charset=charset, multiline=multiline, attempt=attempt)
    corrupt = F.col(cleaning.CORRUPT_RECORD_COLUMN)
    quotes = F.length(corrupt) - F.length(F.regexp_replace(corrupt, '"', ""))
    undecodable = F.lit(False)
    if find_undecodable:  # the decoder's replacement character: bytes that were not UTF-8
        for c in dialect.RAW_COLUMNS:
            undecodable = undecodable | F.coalesce(F.col(c).contains("\ufffd"), F.lit(False))
    # Both are read from the raw row before the dedupe's shuffle, so that two booleans travel through it
    # instead of the corrupt record's text, and the flagging stage's generated code stays small (see
    # runtime.HUGE_METHOD_LIMIT).
    marked = raw.select("*", (quotes % 2 == 1).alias("_split_record"), undecodable.alias("_undecodable"))
    flagged = cleaning.flag_rows(
        cleaning.rename_columns(marked),
        order_by=(tio.BLOCK_START, tio.ROW_ID),
        date_window=date_window,
        line_breaks=multiline,
    )
    rejected = F.col("reject_reason").isNotNull()
    # What the cache keeps: clean rows need their parsed values only, rejected rows their raw ones too. The raw
    # values go in one struct, NULL for a kept row: the columnar cache stores each NULL as a 4-byte position
    # per column, so eight NULL columns would cost 32 bytes on every kept row, one NULL struct costs 4.
    return flagged.select(
        "line_id",
        "reject_reason",
        *[c for c in flagged.columns if c.startswith(cleaning.PARSED_PREFIX)],
        F.when(rejected, F.struct(*cleaning.SOURCE_COLUMNS)).alias(RAW_VALUES),
        "is_return",
        tio.BLOCK_START,
        tio.ROW_ID,
        "_split_record",
        "_undecodable",
    )


def _scan(frame: Any, *, charset: str, multiline: bool) -> _Scan:
    """``frame`` (:func:`flagged_frame`) cached, and what one aggregate over it says."""
    from pyspark.sql import functions as F

    slim = frame.cache()
    rejected = F.col("reject_reason").isNotNull()
    summary = slim.groupBy(tio.BLOCK_START, "reject_reason", "is_return").agg(
        F.count(F.lit(1)).alias("rows"),
        F.min(tio.ROW_ID).alias("first_row_id"),
        F.count(F.when(F.col("_split_record"), 1)).alias("split_records"),
        F.count(F.when(F.col("_undecodable"), 1)).alias("undecodable"),
        F.sum(F.when(~rejected, cleaning.total_sales())).alias("total_sales"),
    )
    # Adaptive execution (Spark 3.5) would build the cache in a job of its own, then read it whole again for
    # this aggregate; without it the aggregate reads the rows as the cache stores them: one pass.
    with runtime.conf_set(frame.sparkSession, "spark.sql.adaptive.enabled", "false"):
        rows = summary.collect()
    scan = _Scan(flagged=slim, charset=charset, multiline=multiline)
    firsts: dict[int, int] = {}
    counts: dict[int, int] = {}
    for row in rows:
        block, reason, n = row[tio.BLOCK_START], row["reject_reason"], row["rows"]
        scan.rows += n
        if row["is_return"]:  # kept, but not a sale
            scan.returns += n
        else:
            scan.by_reason[reason] = scan.by_reason.get(reason, 0) + n
        counts[block] = counts.get(block, 0) + n
        firsts[block] = min(firsts.get(block, row["first_row_id"]), row["first_row_id"])
        scan.split_records += row["split_records"]
        scan.undecodable += row["undecodable"]
        if reason is None and row["total_sales"] is None:  # kept rows, whose totals are never NULL
            scan.sum_overflow = True
        elif row["total_sales"] is not None:
            with decimal.localcontext(prec=60):  # exact: Python's default 28 digits could round a big sum
                if row["is_return"]:
                    scan.returns_total_sales += row["total_sales"]
                else:
                    scan.total_sales += row["total_sales"]
    scan.blocks = {b: (counts[b], firsts[b]) for b in counts}
    scan.sum_overflow |= max(abs(scan.total_sales), abs(scan.returns_total_sales)) >= _TOTAL_SALES_BOUND
    return scan


def _check_read(report: dict[str, Any]) -> None:
    """As many rows were read as the ingest counted: checked before the gate, whose verdict on a file read
    wrongly would say nothing."""
    manifest_rows, rows_in = report.get("manifest_rows"), report["rows_in"]
    if manifest_rows is not None and manifest_rows != rows_in:
        report["status"] = FAILED_CONSERVATION
        raise TransformFailed(
            f"rows do not reconcile: the manifest counts {manifest_rows} rows, Spark read {rows_in}",
            report["raw_key"],
            "the previous output was kept; check the raw file's quoting and line ends, and the run report",
            report,
        )


def _check_conservation(report: dict[str, Any]) -> None:
    """Every row read is written exactly once (that as many were read as the ingest counted is _check_read's)."""
    rows_in, written = report["rows_in"], report["rows_written"]
    problems = []
    if written["processed"] + written["returns"] + written["quarantine"] != rows_in:
        problems.append(
            f"{rows_in} rows read but {written['processed']} clean + {written['returns']} returns + "
            f"{written['quarantine']} quarantined written"
        )
    if written["returns"] != report["rows_returns"]:
        problems.append(f"{report['rows_returns']} returns counted but {written['returns']} written")
    if Decimal(written["returns_total_sales"]) != Decimal(report["returns_total_sales"]):
        problems.append(
            f"returns total_sales {report['returns_total_sales']} counted but {written['returns_total_sales']} written"
        )
    if written["processed"] != report["rows_clean"]:
        problems.append(f"{report['rows_clean']} clean rows counted but {written['processed']} written")
    if Decimal(written["total_sales"]) != Decimal(report["total_sales"]):
        problems.append(f"total_sales {report['total_sales']} counted but {written['total_sales']} written")
    if problems:
        report["status"] = FAILED_CONSERVATION
        raise TransformFailed(
            "rows do not reconcile: " + "; ".join(problems),
            report["raw_key"],
            "nothing was published; this is a bug or an unreadable CSV, please report it",
            report,
        )


def _publish_docs(lake: Lake, local_dir: Path, prefix: str) -> None:
    lake.delete_prefix(prefix)
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        lake.put_file(f"{prefix}/{path.relative_to(local_dir).as_posix()}", path)


def _shuffle_partitions(size: int, cores: int, options: TransformOptions) -> int:
    """Sized from the input, rounded up to a multiple of the output files so they come out even."""
    n = runtime.shuffle_partitions_for(size, cores, options.shuffle_partitions)
    if options.shuffle_partitions is None:
        files = options.output_files
        n = -(-n // files) * files
    return n


def input_size(lake: Lake, date: dt.date, manifest: dict[str, Any]) -> int:
    """The raw CSV's size in bytes: from the manifest, else from the file (local), else 0 (unknown)."""
    if manifest.get("bytes"):
        return int(manifest["bytes"])
    key = layout.raw_key(date)
    if isinstance(lake, LocalLake) and lake.exists(key):
        return lake.path(key).stat().st_size
    return 0


class _Clock:
    """Wall-clock seconds per phase of the run."""

    def __init__(self, startup: float | None) -> None:
        self._start = time.perf_counter()
        self._last = self._start
        self._phases: dict[str, float] = {} if startup is None else {"startup": round(startup, 3)}

    def lap(self, name: str) -> None:
        """``name`` took the time since the previous lap."""
        now = time.perf_counter()
        self._phases[name] = round(now - self._last, 3)
        self._last = now

    def timings(self) -> dict[str, float]:
        total = time.perf_counter() - self._start + self._phases.get("startup", 0.0)
        return {**self._phases, "total": round(total, 3)}
