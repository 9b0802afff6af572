"""The raw partition's manifest: written last, so its presence means the partition is complete."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ingestion.sources import Produced
from ingestion.validate import CsvFacts
from retail_core import layout

MANIFEST_VERSION = 1


def build_manifest(
    *,
    source: str,
    facts: CsvFacts,
    produced: Produced,
    ingest_date: dt.date,
    fetched_at: dt.datetime,
    run_id: str,
) -> dict[str, Any]:
    """Everything a later stage or an auditor needs about the landed bytes. Never holds a credential."""
    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "dataset": layout.DATASET,
        "source": source,
        "sha256": facts.sha256,
        "bytes": facts.bytes,
        "rows": facts.rows,
        # Every byte is valid UTF-8: the transform then reads it as UTF-8 whatever characters it holds (a literal
        # U+FFFD included) instead of guessing ISO-8859-1.
        "utf8": facts.utf8,
        "header": list(facts.header),
        # How the records lie on lines (ingestion.validate.RecordShape), which tells the transform whether it
        # may read the file line by line; null when the producer wrote it and knew the rows without reading.
        "multiline_records": facts.shape.multiline if facts.shape else None,
        "blank_like_lines": facts.shape.blank_like if facts.shape else None,
        "line_ends": facts.shape.line_ends if facts.shape else None,
        "fetched_at": fetched_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "run_id": run_id,
        "ingest_date": ingest_date.isoformat(),
        "raw_key": layout.raw_key(ingest_date),
        # The generator's parameters are top-level keys so a run can be reproduced from the manifest alone.
        "seed": produced.details.get("seed"),
        "scale": produced.details.get("scale"),
        "source_details": {k: v for k, v in produced.details.items() if k not in ("seed", "scale")},
    }
    return manifest
