"""The load: the lake's accepted batches into the warehouse's source tables, before every build.

A batch is one ingest date of ``processed-data/`` whose run report says ``succeeded`` and whose partition manifest
(``_manifest.json``) belongs to the same transform run; the load reads exactly the files that manifest names. The warehouse remembers, per date, the run id of the report it loaded (``staging.online_retail_run_reports``),
so a batch is new when the lake's run id for that date differs: a first delivery, a corrected re-delivery of a date
already loaded, or a backfill of an older date alike. Each new batch replaces its date in one transaction and joins
the pending queue, which the build applies to gold and the publish step empties (docs/operations.md, "Day
semantics"). A date whose latest transform failed keeps the batch already loaded: the transform left the last good
output in place, and its report no longer says ``succeeded``.

The SQL is the dbt project's (``macros/load_batches.sql``), run with ``dbt run-operation`` on the build's target:
Redshift COPYs from S3; DuckDB inserts from ``read_csv`` over a local folder (an S3 lake's new batches are first
copied to one, since DuckDB here has no S3 extension).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from retail_core import layout
from retail_core.config import Settings
from retail_core.errors import InputError
from retail_core.lake import Lake, LocalLake, open_lake
from warehouse import project

log = logging.getLogger(__name__)

SUCCEEDED = "succeeded"  # the run report's status of an accepted batch (glue/job.py writes it)
STATE_MARKER = "retail-warehouse-state: "  # macros/load_batches.sql, warehouse_state_marker()


@dataclass(frozen=True)
class Batch:
    """An accepted batch in the lake: its date and the run id of the transform that wrote it."""

    ingest_date: dt.date
    run_id: str
    files: tuple[str, ...] = ()  # lake keys, as the partition manifest names them
    copy_manifest: str = ""  # the lake key of the same list for Redshift's COPY
    # The batch's returns (returns/): the same, from that partition's manifest; none for a batch transformed
    # before returns were kept apart (its cancellations were quarantined).
    returns_files: tuple[str, ...] = ()
    returns_copy_manifest: str = ""

    def as_arg(self) -> dict[str, object]:
        """The batch as macros/load_batches.sql takes it."""
        return {
            "ingest_date": self.ingest_date.isoformat(),
            "files": list(self.files),
            "copy_manifest": self.copy_manifest,
            "returns_files": list(self.returns_files),
            "returns_copy_manifest": self.returns_copy_manifest,
        }


@dataclass(frozen=True)
class WarehouseState:
    """What the warehouse holds: the run id loaded per date, and the dates loaded but not yet published."""

    loaded: dict[dt.date, str]
    pending: tuple[dt.date, ...]


@dataclass(frozen=True)
class LoadResult:
    """What a load did: the dates it loaded now, and every date the next build must apply (these included)."""

    loaded: tuple[dt.date, ...]
    pending: tuple[dt.date, ...]
    batches_in_lake: int
    # Dates the lake holds a report for but cannot offer now (the latest transform failed, or its files and report
    # disagree), and whether the warehouse had any batch loaded before this load.
    skipped: tuple[dt.date, ...] = ()
    had_batches: bool = True


def accepted_batches(
    lake: Lake, only: dt.date | None = None, *, skipped: list[dt.date] | None = None
) -> list[Batch]:
    """The lake's accepted batches, oldest first (only ``only``'s, when given); the dates passed over are
    appended to ``skipped``."""
    dates = [only] if only else lake.partitions(layout.QUALITY_ZONE)
    batches = []
    passed_over: list[dt.date] = [] if skipped is None else skipped
    for date in dates:
        report_key = layout.run_report_key(date)
        if not lake.exists(report_key):
            continue
        report = lake.read_json(report_key)
        if report.get("status") != SUCCEEDED:
            log.info(
                "load: ingest_date=%s: the latest transform did not succeed; keeping what is loaded", date
            )
            passed_over.append(date)
            continue
        prefix = layout.processed_prefix(date)
        manifest = lake.read_partition(prefix)
        if manifest is None:
            raise InputError(
                "a succeeded batch has no partition manifest (written by a version before manifests?)",
                lake.uri(prefix),
                f"run `retail-pipeline transform --ingest-date {date}` again",
            )
        if manifest.get("generation") != report.get("generation"):
            # A transform died between publishing its files and writing its report: the report describes other
            # files. Keep what is loaded; the date's next transform makes the two agree again.
            log.warning(
                "load: ingest_date=%s: the run report and the partition manifest are from different runs; "
                "keeping what is loaded until the date is transformed again",
                date,
            )
            passed_over.append(date)
            continue
        returns_prefix = layout.returns_prefix(date)
        returns = lake.read_partition(returns_prefix) if "rows_returns" in report else None
        if returns is not None and returns.get("generation") != manifest.get("generation"):
            log.warning(
                "load: ingest_date=%s: the returns and the sales are from different runs; keeping what is loaded",
                date,
            )
            passed_over.append(date)
            continue
        batches.append(
            Batch(
                date,
                str(report.get("run_id") or report.get("started_at") or ""),
                files=tuple(f"{prefix}/{entry['name']}" for entry in manifest["files"]),
                copy_manifest=f"{prefix}/{manifest['copy_manifest']}",
                returns_files=tuple(
                    f"{returns_prefix}/{e['name']}" for e in (returns or {}).get("files", [])
                ),
                returns_copy_manifest=f"{returns_prefix}/{returns['copy_manifest']}" if returns else "",
            )
        )
    return batches


def to_load(batches: Sequence[Batch], state: WarehouseState) -> list[Batch]:
    """The batches whose run id differs from the one the warehouse loaded for their date."""
    return [b for b in batches if state.loaded.get(b.ingest_date) != b.run_id]


def load(settings: Settings, *, target: str, run_id: str, ingest_date: dt.date | None = None) -> LoadResult:
    """Load every new accepted batch (only ``ingest_date``'s, when given) into ``target``; see the module doc."""
    lake = open_lake(settings)
    env = project.dbt_env(settings, run_id=run_id)
    state = warehouse_state(env, target)
    skipped: list[dt.date] = []
    batches = accepted_batches(lake, ingest_date, skipped=skipped)
    if ingest_date and not batches:
        raise InputError(
            "no accepted batch for that date",
            lake.uri(layout.processed_prefix(ingest_date)),
            "run `retail-pipeline transform --ingest-date` for it first, or leave --ingest-date out",
        )
    new = to_load(batches, state)
    if new:
        with _readable_by(target, lake, new) as lake_root:
            args: dict[str, object] = {"batches": [b.as_arg() for b in new]}
            if lake_root is not None:
                args["lake"] = lake_root
            project.run_operation(["run-operation", "load_batches", "--args", json.dumps(args)], env, target)
        log.info("load: %s", ", ".join(f"ingest_date={b.ingest_date} (run {b.run_id})" for b in new))
    pending = sorted({*state.pending, *(b.ingest_date for b in new)})
    return LoadResult(
        loaded=tuple(b.ingest_date for b in new),
        pending=tuple(pending),
        batches_in_lake=len(batches),
        skipped=tuple(skipped),
        had_batches=bool(state.loaded),
    )


def warehouse_state(env: dict[str, str], target: str) -> WarehouseState:
    """Create the source tables if missing, and read what is loaded and pending (``prepare_sources``)."""
    messages = project.run_operation(["run-operation", "prepare_sources"], env, target)
    found = [m[len(STATE_MARKER) :] for m in messages if m.startswith(STATE_MARKER)]
    if len(found) != 1:
        raise InputError(
            "the warehouse did not say what it has loaded",
            f"dbt run-operation prepare_sources (target {target})",
            "see the dbt log above",
        )
    state = json.loads(found[0])
    return WarehouseState(
        loaded={dt.date.fromisoformat(d): str(r) for d, r in state["loaded"].items()},
        pending=tuple(dt.date.fromisoformat(d) for d in state["pending"]),
    )


@contextmanager
def _readable_by(target: str, lake: Lake, batches: Sequence[Batch]) -> Iterator[str | None]:
    """The lake root the load's SQL reads: None (RETAIL_LAKE as it is) for Redshift and a local lake; for DuckDB
    on an S3 lake, a local folder holding copies of the new batches' files."""
    if target != "dev" or isinstance(lake, LocalLake):
        root = None if target != "dev" else str(Path(lake.root).resolve())
        _check_path(root)
        yield root
        return
    with tempfile.TemporaryDirectory(prefix="retail-load-") as tmp:
        local = LocalLake(tmp)
        for batch in batches:
            keys = [*batch.files, *batch.returns_files, layout.run_report_key(batch.ingest_date)]
            for key in keys:
                local.write_bytes(key, lake.read_bytes(key))
        _check_path(tmp)
        yield tmp


def _check_path(root: str | None) -> None:
    # The path goes into a SQL string literal: refuse what would end it rather than escape it.
    if root is not None and ("'" in root or "\\" in root):
        raise InputError(
            "the lake path holds a quote or backslash", root, "move the lake to a path without them"
        )
