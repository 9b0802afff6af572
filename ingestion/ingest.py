"""Ingest: one source's bytes into ``raw-data/`` with a manifest, atomically and idempotently.

The order of writes is what makes a partition safe to read: the old manifest goes first (the partition is now
incomplete and no stage reads it), then the CSV lands by rename or completed upload, then the new manifest.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingestion.manifest import build_manifest
from ingestion.sources import Progress, Source, kaggle
from ingestion.sources.file import FileSource
from ingestion.sources.synthetic import SyntheticSource
from ingestion.validate import inspect_csv
from retail_core import faults, layout, lease
from retail_core.errors import InputError
from retail_core.lake import Lake, LocalLake

log = logging.getLogger(__name__)

SOURCES = ("kaggle", "synthetic", "file")


@dataclass(frozen=True)
class SourceRequest:
    """What the user asked for on the command line; ``source=None`` means choose for me."""

    source: str | None = None
    path: Path | None = None
    seed: int = 42
    scale: int = 1
    dataset: str | None = None


@dataclass(frozen=True)
class IngestResult:
    source: str
    reason: str
    ingest_date: dt.date
    raw_uri: str
    landed: bool  # False when identical content was already in the lake
    manifest: dict[str, Any]
    already_at: dt.date | None = None


class _AlreadyLanded(Exception):
    def __init__(self, date: dt.date, manifest: dict[str, Any]) -> None:
        self.date = date
        self.manifest = manifest


def choose_source(request: SourceRequest, env: Mapping[str, str] | None = None) -> tuple[Source, str]:
    """The source to use and why: an explicit choice, else Kaggle with credentials, else synthetic."""
    env = os.environ if env is None else env
    name = request.source
    if name is None:
        if request.path is not None:
            name, reason = "file", "--path was given"
        elif request.dataset is not None:
            # A dataset asked for by name is Kaggle's: without credentials that is an error, not the twin.
            name, reason = "kaggle", "--dataset was given"
        else:
            found, why = kaggle.credentials_available(env)
            name, reason = ("kaggle", why) if found else ("synthetic", f"{why}; using the synthetic twin")
    else:
        reason = "--source was given"
    if name not in SOURCES:
        raise InputError(f"unknown source {name!r}", "--source", f"choose one of {', '.join(SOURCES)}")
    if name == "file":
        if request.path is None:
            raise InputError("--source file needs a file", "--path", "pass --path my_export.csv")
        source: Source = FileSource(request.path)
        source.check()
    elif name == "synthetic":
        if request.scale < 1:
            raise InputError(
                "scale must be a positive whole number", f"--scale {request.scale}", "use 1 or more"
            )
        source = SyntheticSource(seed=request.seed, scale=request.scale)
    else:
        source = kaggle.KaggleSource(dataset=request.dataset or kaggle.DATASET)
    return source, reason


def ingest(
    lake: Lake,
    source: Source,
    *,
    run_id: str,
    reason: str = "",
    ingest_date: dt.date | None = None,
    force: bool = False,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
) -> IngestResult:
    """Land ``source``'s CSV at ``raw-data/online_retail/ingest_date=.../`` and its manifest beside it; the
    manifest names the pipeline run ``run_id`` that landed it."""
    now = now or dt.datetime.now(dt.UTC)
    ingest_date = ingest_date or now.date()
    with lease.held(lake, ingest_date, stage="ingest", run_id=run_id) as held:
        return _land(
            lake,
            source,
            run_id=run_id,
            reason=reason,
            ingest_date=ingest_date,
            force=force,
            progress=progress,
            now=now,
            held=held,
        )


def _land(
    lake: Lake,
    source: Source,
    *,
    run_id: str,
    reason: str,
    ingest_date: dt.date,
    force: bool,
    progress: Progress | None,
    now: dt.datetime,
    held: lease.Lease,
) -> IngestResult:
    """The ingest of ``ingest_date``, under its lease."""
    raw_key = layout.raw_key(ingest_date)
    manifest_key = layout.raw_manifest_key(ingest_date)
    if isinstance(lake, LocalLake):
        swept = lake.sweep_temp_files(layout.zone_prefix(layout.RAW_ZONE, ingest_date))
        if swept:
            log.info("removed %d temp file(s) an interrupted ingest left behind", swept)
    log.info("ingest: source %s (%s)", source.describe(), reason or "chosen")

    replaced: bytes | None = None  # the previous landing's manifest, once deleted
    try:
        with lake.writer(raw_key) as tmp:
            produced = source.produce(tmp, progress)
            facts = inspect_csv(tmp, rows=produced.rows, where=source.describe())
            manifest = build_manifest(
                source=source.name,
                facts=facts,
                produced=produced,
                ingest_date=ingest_date,
                fetched_at=now,
                run_id=run_id,
            )
            if not force:
                landed = _find_identical(lake, facts.sha256)
                if landed is not None:
                    raise _AlreadyLanded(*landed)
            # From here the partition is incomplete until the new manifest lands.
            held.check()
            if lake.exists(manifest_key):
                replaced = lake.read_bytes(manifest_key)
                lake.delete(manifest_key)
                faults.point("ingest.after_old_manifest")
    except _AlreadyLanded as same:
        log.info(
            "ingest: identical content (sha256 %s) already landed at ingest_date=%s; nothing to do",
            same.manifest["sha256"][:12],
            same.date.isoformat(),
        )
        if same.date != ingest_date and not lake.exists(manifest_key):
            # Say so at the date asked for, so that the transform of that date knows it has nothing to do (a
            # scheduled run then succeeds as a no-op instead of failing on a missing partition).
            lake.write_json(
                layout.raw_unchanged_key(ingest_date),
                {
                    "ingest_date": ingest_date.isoformat(),
                    "same_as": same.date.isoformat(),
                    "sha256": same.manifest["sha256"],
                    "run_id": run_id,
                    "checked_at": now.isoformat(timespec="seconds"),
                },
            )
        return IngestResult(
            source=source.name,
            reason=reason,
            ingest_date=same.date,
            raw_uri=lake.uri(layout.raw_key(same.date)),
            landed=False,
            manifest=same.manifest,
            already_at=same.date,
        )
    except BaseException:
        if replaced is not None:
            _restore_manifest(lake, raw_key, manifest_key, replaced)
        raise
    faults.point("ingest.before_manifest")
    held.check()  # the upload may have outlasted the lease: publish only while it is still this run's
    lake.write_json(manifest_key, manifest)
    log.info(
        "ingest: landed %s rows, %s bytes at %s", f"{facts.rows:,}", f"{facts.bytes:,}", lake.uri(raw_key)
    )
    return IngestResult(
        source=source.name,
        reason=reason,
        ingest_date=ingest_date,
        raw_uri=lake.uri(raw_key),
        landed=True,
        manifest=manifest,
    )


def complete_partitions(lake: Lake) -> list[dt.date]:
    """Raw partitions whose manifest exists (complete), oldest first."""
    return [d for d in lake.partitions(layout.RAW_ZONE) if lake.exists(layout.raw_manifest_key(d))]


def _find_identical(lake: Lake, sha256: str) -> tuple[dt.date, dict[str, Any]] | None:
    for date in reversed(complete_partitions(lake)):
        manifest = lake.read_json(layout.raw_manifest_key(date))
        if manifest.get("sha256") == sha256:
            return date, manifest
    return None


def _restore_manifest(lake: Lake, raw_key: str, manifest_key: str, manifest: bytes) -> None:
    """After a failed re-delivery: put the previous manifest back if the raw file is still the one it describes
    (an upload S3 refused, a copy that failed), so that the date keeps its last good landing. A file already
    replaced, or a lake that cannot answer, leaves the date without a manifest: incomplete, never described by a
    manifest of other bytes; the next ingest lands it again. Never raises: the failure itself is the news."""
    try:
        described = json.loads(manifest.decode("utf-8")).get("sha256")
        if described and lake.content_sha256(raw_key) == described:
            lake.write_bytes(manifest_key, manifest)
            log.warning("ingest: the new landing failed; the previous one stays, with its manifest")
    except Exception as exc:  # see the docstring
        log.warning("ingest: could not put the previous manifest back (%s); the date is incomplete", exc)
