"""Where each stage's data lives in the lake. Every stage builds its paths from here and nowhere else.

Keys are relative to the lake root (a local folder or ``s3://bucket/prefix``)::

    raw-data/online_retail/ingest_date=YYYY-MM-DD/online_retail.csv     raw bytes, unchanged
    raw-data/online_retail/ingest_date=YYYY-MM-DD/_manifest.json        written last: the partition is complete
    raw-data/online_retail/ingest_date=YYYY-MM-DD/_unchanged.json       instead, when the source had nothing new
    processed-data/online_retail/ingest_date=YYYY-MM-DD/part-*-<gen>.tsv clean rows
    processed-data/online_retail/ingest_date=YYYY-MM-DD/_manifest.json    written last: the files to read
    returns/online_retail/ingest_date=YYYY-MM-DD/part-*-<gen>.tsv       returns (kept cancellation lines), typed
    quarantine/online_retail/ingest_date=YYYY-MM-DD/part-*-<gen>.tsv    rejected rows with reject_reason
    quarantine/online_retail/ingest_date=YYYY-MM-DD/_manifest.json      as for processed-data
    leases/online_retail/ingest_date=YYYY-MM-DD.json                    who is writing that date (S3 lakes)
    leases/online_retail/warehouse.json                                 who is building the warehouse
    quality/online_retail/ingest_date=YYYY-MM-DD/run_report.json        counts, timings, GX result
    quality/online_retail/ingest_date=YYYY-MM-DD/report.html            the run page: the same, gold, a chart
    runs/online_retail/run_log.jsonl (local) or run_log/*.json (S3)     one record per stage run (metrics)
    dbt-artifacts/online_retail/run_id=ID/                              the task's dbt run results and docs

A zone's ``_staging/`` folder holds a run's output before it is promoted; no reader globs a name starting with
``_``. The warehouse's gold tables are named here too: the metrics, the report and the warehouse driver count
the same three.
"""

from __future__ import annotations

import datetime as dt
import re

DATASET = "online_retail"
RAW_FILE_NAME = f"{DATASET}.csv"
MANIFEST_NAME = "_manifest.json"
# Left by an ingest that found the source identical to an earlier date's: that date has nothing new to process.
UNCHANGED_NAME = "_unchanged.json"
SUCCESS_NAME = "_SUCCESS"
PART_PREFIX = "part-"
RUN_REPORT_NAME = "run_report.json"
# The run page: one self-contained HTML file per run beside the run report (retail_core/run_page.py).
RUN_PAGE_NAME = "report.html"
# The transform's Great Expectations Data Docs, a folder beside the run report.
DATA_DOCS_DIR = "data_docs"

RAW_ZONE = "raw-data"
PROCESSED_ZONE = "processed-data"
QUARANTINE_ZONE = "quarantine"
RETURNS_ZONE = "returns"
QUALITY_ZONE = "quality"
RUNS_ZONE = "runs"
LEASES_ZONE = "leases"
ARTIFACTS_ZONE = "dbt-artifacts"
STAGING = "_staging"

# The gold star schema's tables (models/gold/), in the order the seed's sample queries name them.
GOLD_SCHEMA = "gold"
# Where the pipeline builds and tests gold before publishing it to GOLD_SCHEMA (write-audit-publish).
GOLD_AUDIT_SCHEMA = "gold_audit"
GOLD_TABLES: tuple[str, ...] = ("customers", "products", "sales_transactions")
# Beside the star schema, published with it: the returns, and the marts for what the dataset is used for (RFM,
# cohorts).
GOLD_MARTS: tuple[str, ...] = ("sales_returns", "monthly_revenue", "customer_rfm", "cohort_retention")
# History kept by dbt snapshots, built and published with gold.
GOLD_SNAPSHOTS: tuple[str, ...] = ("customer_history",)
GOLD_PUBLISHED: tuple[str, ...] = GOLD_TABLES + GOLD_MARTS + GOLD_SNAPSHOTS

_PARTITION_RE = re.compile(r"ingest_date=(\d{4}-\d{2}-\d{2})")
_DATE_TEXT_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # fullmatch only


def partition(ingest_date: dt.date) -> str:
    return f"ingest_date={ingest_date.isoformat()}"


def zone_prefix(zone: str, ingest_date: dt.date) -> str:
    """``<zone>/online_retail/ingest_date=YYYY-MM-DD`` (no trailing slash)."""
    return f"{zone}/{DATASET}/{partition(ingest_date)}"


def raw_key(ingest_date: dt.date) -> str:
    return f"{zone_prefix(RAW_ZONE, ingest_date)}/{RAW_FILE_NAME}"


def raw_manifest_key(ingest_date: dt.date) -> str:
    return f"{zone_prefix(RAW_ZONE, ingest_date)}/{MANIFEST_NAME}"


def raw_unchanged_key(ingest_date: dt.date) -> str:
    return f"{zone_prefix(RAW_ZONE, ingest_date)}/{UNCHANGED_NAME}"


def processed_prefix(ingest_date: dt.date) -> str:
    return zone_prefix(PROCESSED_ZONE, ingest_date)


def returns_prefix(ingest_date: dt.date) -> str:
    return zone_prefix(RETURNS_ZONE, ingest_date)


def quarantine_prefix(ingest_date: dt.date) -> str:
    return zone_prefix(QUARANTINE_ZONE, ingest_date)


def quality_prefix(ingest_date: dt.date) -> str:
    return zone_prefix(QUALITY_ZONE, ingest_date)


def run_report_key(ingest_date: dt.date) -> str:
    return f"{quality_prefix(ingest_date)}/{RUN_REPORT_NAME}"


def run_page_key(ingest_date: dt.date) -> str:
    return f"{quality_prefix(ingest_date)}/{RUN_PAGE_NAME}"


def staging_prefix(zone: str, ingest_date: dt.date, run_id: str = "") -> str:
    """Where a run builds a zone's folder before promotion: ``<zone>/online_retail/_staging/ingest_date=D/<run>``."""
    base = f"{zone}/{DATASET}/{STAGING}/{partition(ingest_date)}"
    return f"{base}/{run_id}" if run_id else base


def generation_name(part_name: str, generation: str) -> str:
    """``part-00000.tsv`` of run generation ``g`` -> ``part-00000-g.tsv``: a name no other run writes, so a new
    output is placed beside the old one, never over it."""
    stem, dot, suffix = part_name.partition(".")
    return f"{stem}-{generation}{dot}{suffix}"


def copy_manifest_name(generation: str) -> str:
    """The Redshift COPY manifest of one generation of a partition's files (``_copy_manifest-<gen>.json``)."""
    return f"_copy_manifest-{generation}.json"


def lease_key(ingest_date: dt.date) -> str:
    """``leases/online_retail/ingest_date=YYYY-MM-DD.json``: one writer per dataset and date."""
    return f"{LEASES_ZONE}/{DATASET}/{partition(ingest_date)}.json"


def warehouse_lease_key() -> str:
    """``leases/online_retail/warehouse.json``: one build (load, build, publish) of the lake's warehouse at a time."""
    return f"{LEASES_ZONE}/{DATASET}/warehouse.json"


# The earliest date a flag or job argument may name (ingest dates, the invoice date window).
EARLIEST_DATE = dt.date(1900, 1, 1)


class DateTooEarly(ValueError):
    """A well-formed date before :data:`EARLIEST_DATE`."""


def ingest_date_from_text(text: str) -> dt.date:
    """``YYYY-MM-DD`` and nothing else (no trailing newline, no ``20240131``) as a date, else ValueError.

    An ingest date goes into lake paths and SQL literals: flags and job arguments are read with this.
    """
    if not _DATE_TEXT_RE.fullmatch(text):
        raise ValueError(f"not a YYYY-MM-DD date: {text[:40]!r}")
    date = dt.date.fromisoformat(text)
    if date < EARLIEST_DATE:
        # Older years are typos (0202 for 2024), and Spark's date literal fails on them with a Java stack trace.
        raise DateTooEarly(f"{text} is before {EARLIEST_DATE.isoformat()} (a typo in the year?)")
    return date


def parse_ingest_date(text: str) -> dt.date | None:
    """The date in an ``ingest_date=YYYY-MM-DD`` path segment, or None."""
    match = _PARTITION_RE.search(text)
    if not match:
        return None
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None
