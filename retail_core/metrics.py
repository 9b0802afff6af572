"""Each stage's figures: to CloudWatch on AWS, and always to a run log in the lake for ``retail-pipeline report``.

Every stage calls :func:`emit` once when it ends. Where the figures go:

* The run log, in the lake, always. A local lake appends one JSON line per call to
  ``runs/online_retail/run_log.jsonl``. S3 cannot append, so an S3 lake gets one object per call under
  ``runs/online_retail/run_log/``, named so that listing order is time order.
* CloudWatch, when the lake is on S3 (the stages run on AWS) or ``RETAIL_METRICS=cloudwatch``;
  ``RETAIL_METRICS=lake`` keeps an S3 lake's figures out of CloudWatch. boto3 honours ``AWS_ENDPOINT_URL``.

CloudWatch layout (the alarms in infra/template.yaml watch exactly these; tests/integration/test_infra.py
checks it):

* Namespace ``OnlineRetailPipeline``.
* Dimensions, on every datum: ``Dataset`` = ``online_retail`` and ``Stage`` = ``ingest`` | ``transform`` |
  ``build`` | ``pipeline``.
* Metric names are the figure names, listed with their units in :data:`FIGURES`.

A metric that cannot be delivered is logged as a warning and does not fail the stage: the data is already
written, and the "no successful run in 26 hours" alarm notices a pipeline whose metrics stop arriving.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retail_core import faults, layout, lease
from retail_core.config import Settings
from retail_core.errors import InputError

log = logging.getLogger(__name__)

NAMESPACE = "OnlineRetailPipeline"
STAGES: tuple[str, ...] = ("ingest", "transform", "build", "pipeline")

# Figure name -> CloudWatch unit.
FIGURES: dict[str, str] = {
    "rows_in": "Count",
    "rows_clean": "Count",
    "rows_quarantined": "Count",
    "rows_returns": "Count",  # kept cancellation lines: neither sales nor rejects
    "quarantine_ratio": "None",
    "duration_seconds": "Seconds",
    **{f"gold_rows_{table}": "Count" for table in layout.GOLD_TABLES},
    "dbt_test_failures": "Count",
    "batches_loaded": "Count",
    # 1 when the stage found nothing new and did nothing (an unchanged source): a success, not a failure.
    "noop": "Count",
    "success": "Count",
}

RUN_LOG_KEY = f"{layout.RUNS_ZONE}/{layout.DATASET}/run_log.jsonl"
RUN_LOG_PREFIX = f"{layout.RUNS_ZONE}/{layout.DATASET}/run_log"

ENV_SINK = "RETAIL_METRICS"  # auto (default) | cloudwatch | lake
ENV_RUN_ID = "RETAIL_RUN_ID"

SINKS: tuple[str, ...] = ("auto", "cloudwatch", "lake")

# fullmatch only: with match, "$" also accepts a trailing newline.
_RUN_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def dimensions(stage: str) -> list[dict[str, str]]:
    """The CloudWatch dimensions of every datum ``stage`` emits."""
    return [{"Name": "Dataset", "Value": layout.DATASET}, {"Name": "Stage", "Value": stage}]


def new_run_id(now: dt.datetime | None = None) -> str:
    """A run id for a run that was not given one: sortable time, then a random suffix."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def run_id_from_env(env: Mapping[str, str] | None = None) -> str:
    """``RETAIL_RUN_ID`` (the state machine sets it to the execution name), else a new id.

    Call it once at the entry point; every stage of one run must report the same id.
    """
    env = os.environ if env is None else env
    given = (env.get(ENV_RUN_ID) or "").strip()
    if given:
        check_run_id(given)
    return given if given else new_run_id()


def check_run_id(run_id: str, given_as: str = ENV_RUN_ID) -> str:
    """``run_id`` when it is 1-128 letters, digits or ``_.:-``, else an InputError (exit 2) naming ``given_as``."""
    if not _RUN_ID_RE.fullmatch(run_id):
        raise InputError(
            "bad run id", f"{given_as}={run_id[:140]!r}", "use 1-128 letters, digits or _.:- characters"
        )
    return run_id


def check_env(env: Mapping[str, str] | None = None) -> None:
    """Refuse a bad ``RETAIL_RUN_ID``, ``RETAIL_METRICS``, ``RETAIL_LEASE_TTL_S`` or ``RETAIL_FAULT`` before a
    stage does any work (InputError, exit 2).

    Both are otherwise read when the stage records its figures, after it has written its data.
    """
    env = os.environ if env is None else env
    given = (env.get(ENV_RUN_ID) or "").strip()
    if given:
        check_run_id(given)
    sink_choice(env)
    # The other settings every stage reads from the environment: the lease expiry and the fault hook.
    lease.ttl_from_env(env)
    try:
        faults.check_env(dict(env))
    except ValueError as exc:
        raise InputError("bad fault injection setting", faults.ENV, str(exc)) from None


def sink_choice(env: Mapping[str, str]) -> str:
    """``RETAIL_METRICS`` (auto when unset), or an InputError naming the accepted values."""
    choice = (env.get(ENV_SINK) or "auto").strip().lower()
    if choice not in SINKS:
        raise InputError("bad metrics sink", f"{ENV_SINK}={choice[:40]!r}", "use auto, cloudwatch or lake")
    return choice


def emit(
    settings: Settings,
    stage: str,
    figures: Mapping[str, float],
    *,
    run_id: str,
    ingest_date: dt.date,
    env: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
    cloudwatch: Any = None,
) -> None:
    """Record ``stage``'s figures for run ``run_id``: in the lake's run log, and in CloudWatch on AWS.

    ``figures`` maps names from :data:`FIGURES` to numbers; an unknown stage or figure is a bug and raises
    ValueError, so that no stage emits a metric the alarms and the report do not know.
    """
    record = _record(stage, figures, run_id=run_id, ingest_date=ingest_date, now=now)
    sink = _sink(settings, os.environ if env is None else env)
    try:
        _append_to_run_log(settings, record)
    except Exception as exc:  # the run log is for people; a stage that did its work still succeeded
        log.warning("metrics: could not write the run log in %s: %s", settings.lake, exc)
    if sink == "cloudwatch":
        _put_metric_data(settings, record, cloudwatch)


@dataclass
class StageRecord:
    """What a stage fills in while :func:`measured` times it."""

    figures: dict[str, float] = field(default_factory=dict)
    ingest_date: dt.date | None = None


@contextlib.contextmanager
def measured(settings: Settings, stage: str, *, run_id: str) -> Iterator[StageRecord]:
    """Time the block and emit its figures when it ends, with ``success`` 1, or 0 if it raised.

    The block sets ``record.ingest_date`` once it knows it; a stage that fails before then is recorded under
    today's date (UTC), so the failure still shows in the run log and CloudWatch.
    """
    record = StageRecord()
    started = time.perf_counter()
    succeeded = False
    try:
        yield record
        succeeded = True
    finally:
        record.figures["duration_seconds"] = round(time.perf_counter() - started, 3)
        record.figures["success"] = 1 if succeeded else 0
        emit(
            settings,
            stage,
            record.figures,
            run_id=run_id,
            ingest_date=record.ingest_date or dt.datetime.now(dt.UTC).date(),
        )


def metric_data(stage: str, figures: Mapping[str, float], timestamp: dt.datetime) -> list[dict[str, Any]]:
    """The ``MetricData`` of a ``put_metric_data`` call for one stage's figures."""
    return [
        {
            "MetricName": name,
            "Dimensions": dimensions(stage),
            "Timestamp": timestamp,
            "Value": float(value),
            "Unit": FIGURES[name],
        }
        for name, value in sorted(figures.items())
    ]


def read_runs(settings: Settings, limit: int = 20) -> list[dict[str, Any]]:
    """The last ``limit`` runs in the run log, oldest first, each with its stages' figures merged.

    Each run: ``run_id``, ``ingest_date``, ``started_at``, ``finished_at`` (ISO strings), ``stages``
    (stage -> figures), ``status`` (succeeded | failed | incomplete), ``noop`` (it succeeded and every stage
    found nothing new), and the headline figures ``rows_in``,
    ``rows_clean``, ``rows_quarantined``, ``quarantine_ratio``, ``duration_seconds``, ``dbt_test_failures``
    and ``gold_rows`` (table -> rows), each None when no stage reported it.
    """
    if limit < 1:
        return []
    records = _read_records(settings, limit)
    runs: dict[str, dict[str, Any]] = {}
    for rec in sorted(records, key=lambda r: r["at"]):
        run = runs.setdefault(
            rec["run_id"],
            {
                "run_id": rec["run_id"],
                "ingest_date": rec["ingest_date"],
                "started_at": rec["at"],
                "finished_at": rec["at"],
                "stages": {},
            },
        )
        run["finished_at"] = rec["at"]
        run["stages"].setdefault(rec["stage"], {}).update(rec["figures"])
    ordered = sorted(runs.values(), key=lambda r: r["started_at"])[-limit:]
    return [_summarise(run) for run in ordered]


# --- internals --------------------------------------------------------------------------------------------


def _record(
    stage: str,
    figures: Mapping[str, float],
    *,
    run_id: str,
    ingest_date: dt.date,
    now: dt.datetime | None,
) -> dict[str, Any]:
    if stage not in STAGES:
        raise ValueError(f"unknown metrics stage {stage!r}; use one of {', '.join(STAGES)}")
    unknown = sorted(set(figures) - set(FIGURES))
    if unknown:
        raise ValueError(f"unknown figure(s) {', '.join(unknown)}; add them to metrics.FIGURES first")
    if not _RUN_ID_RE.fullmatch(run_id):
        raise ValueError(f"run id {run_id!r} must be 1-128 letters, digits or _.:-")
    clean: dict[str, float] = {}
    for name, value in figures.items():
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"figure {name} is {value!r}; CloudWatch takes finite numbers only")
        clean[name] = number
    at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return {
        "at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "run_id": run_id,
        "ingest_date": ingest_date.isoformat(),
        "stage": stage,
        "figures": clean,
    }


def _sink(settings: Settings, env: Mapping[str, str]) -> str:
    choice = sink_choice(env)
    if choice == "auto":
        return "cloudwatch" if settings.lake_is_s3 else "lake"
    return choice


def _append_to_run_log(settings: Settings, record: dict[str, Any]) -> None:
    line = json.dumps(record, sort_keys=True)
    if settings.lake_is_s3:
        from retail_core.lake import open_lake

        stamp = re.sub(r"[^0-9TZ]", "", record["at"])
        key = f"{RUN_LOG_PREFIX}/{stamp}_{record['run_id']}_{record['stage']}.json"
        open_lake(settings).write_bytes(key, (line + "\n").encode())
        return
    path = Path(settings.lake) / RUN_LOG_KEY
    path.parent.mkdir(parents=True, exist_ok=True)
    # One write of one line to a file opened for appending: concurrent stages cannot interleave their lines.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _put_metric_data(settings: Settings, record: dict[str, Any], client: Any) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    timestamp = dt.datetime.fromisoformat(record["at"].replace("Z", "+00:00"))
    data = metric_data(record["stage"], record["figures"], timestamp)
    try:
        if client is None:
            import boto3

            # Inside the try: a machine with no AWS region configured must not fail a stage that did its work.
            client = boto3.client("cloudwatch", endpoint_url=settings.aws_endpoint_url)
        for start in range(0, len(data), 1000):
            client.put_metric_data(Namespace=NAMESPACE, MetricData=data[start : start + 1000])
    except (BotoCoreError, ClientError) as exc:
        log.warning("metrics: CloudWatch did not take the %s figures: %s", record["stage"], exc)


def _read_records(settings: Settings, limit: int) -> list[dict[str, Any]]:
    # A run writes at most one record per stage in the usual case; read generously, then trim by run.
    wanted = limit * len(STAGES) * 4
    lines: list[str] = []
    if settings.lake_is_s3:
        from retail_core.lake import open_lake

        lake = open_lake(settings)
        for key in lake.list_keys(RUN_LOG_PREFIX)[-wanted:]:
            lines.append(lake.read_bytes(key).decode("utf-8", errors="replace"))
    else:
        path = Path(settings.lake) / RUN_LOG_KEY
        if not path.exists():
            return []
        # A damaged byte spoils its own entry (skipped below), not the whole log.
        lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()[-wanted:]
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not {"at", "run_id", "ingest_date", "stage", "figures"} <= rec.keys():
                raise ValueError("missing fields")
        except ValueError:
            log.warning(
                "metrics: skipping an unreadable run log entry (%d from the end)", len(lines) - number
            )
            continue
        records.append(rec)
    return records


def _summarise(run: dict[str, Any]) -> dict[str, Any]:
    stages: dict[str, dict[str, float]] = run["stages"]

    def first(name: str, *order: str) -> float | None:
        for stage in order:
            if name in stages.get(stage, {}):
                return stages[stage][name]
        return None

    rows_in = first("rows_in", "transform", "pipeline", "ingest")
    quarantined = first("rows_quarantined", "transform", "pipeline")
    ratio = first("quarantine_ratio", "transform", "pipeline")
    if ratio is None and rows_in and quarantined is not None:
        ratio = quarantined / rows_in
    duration = first("duration_seconds", "pipeline")
    if duration is None:
        parts = [
            s["duration_seconds"] for k, s in stages.items() if k != "pipeline" and "duration_seconds" in s
        ]
        duration = sum(parts) if parts else None
    successes = [s["success"] for s in stages.values() if "success" in s]
    if any(value < 1 for value in successes):
        status = "failed"
    elif stages.get("pipeline", {}).get("success", 0) >= 1:
        status = "succeeded"
    else:
        status = "incomplete"
    # A run whose stages all found nothing new (an unchanged source): it succeeded, and changed nothing.
    noops = [s["noop"] for s in stages.values() if "noop" in s]
    return {
        **run,
        "status": status,
        "noop": status == "succeeded" and bool(noops) and all(value >= 1 for value in noops),
        "rows_in": rows_in,
        "rows_clean": first("rows_clean", "transform", "pipeline"),
        "rows_returns": first("rows_returns", "transform", "pipeline"),
        "rows_quarantined": quarantined,
        "quarantine_ratio": ratio,
        "duration_seconds": duration,
        "dbt_test_failures": first("dbt_test_failures", "build", "pipeline"),
        "gold_rows": {t: first(f"gold_rows_{t}", "build", "pipeline") for t in layout.GOLD_TABLES},
    }
