"""The transform and build stages as the CLI runs them: timed, and their figures recorded for monitoring.

`transform`, `build` and `run` all go through here, so a stage reports the same figures whichever command ran it.
(Ingest does the same in ``commands/ingest.py``, beside its source flags.)
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from retail_pipeline import metrics
from retail_pipeline.config import Settings

if TYPE_CHECKING:
    from concurrent.futures import Future

    from glue.options import TransformOptions
    from glue.retail_transform import TransformResult
    from glue.runtime import Runtime
    from retail_pipeline.commands.build import BuildResult


def run_transform(
    settings: Settings,
    *,
    ingest_date: dt.date | None,
    options: TransformOptions,
    run_id: str,
    started: Future[Runtime] | None = None,
) -> TransformResult:
    """Clean one raw partition with local Spark; figures: rows in, clean, quarantined, quarantine ratio.

    ``started``: a Spark being started beforehand (see glue.retail_transform.run_local)."""
    from glue.retail_transform import TransformFailed, metric_figures, run_local

    with metrics.measured(settings, "transform", run_id=run_id) as record:
        record.ingest_date = ingest_date
        try:
            result = run_local(settings, ingest_date=ingest_date, options=options, started=started)
        except TransformFailed as failed:
            # A failed gate still has figures, and the quarantine-ratio alarm needs exactly those.
            record.figures.update(metric_figures(failed.report))
            raise
        record.ingest_date = result.ingest_date
        record.figures.update(metric_figures(result.report))
        return result


def run_build(
    settings: Settings,
    *,
    ingest_date: dt.date | None,
    run_id: str,
    target: str = "dev",
    select: str | None = None,
    full_refresh: bool = False,
    docs: bool = False,
) -> BuildResult:
    """``dbt build``; figures: gold rows per table and failed dbt tests (recorded on failure too)."""
    from retail_pipeline.commands.build import DbtTestsFailed, build

    with metrics.measured(settings, "build", run_id=run_id) as record:
        record.ingest_date = ingest_date
        try:
            result = build(
                settings,
                target=target,
                select=select,
                full_refresh=full_refresh,
                ingest_date=ingest_date,
                docs=docs,
            )
        except DbtTestsFailed as failed:
            record.figures["dbt_test_failures"] = len(failed.failed_tests)
            raise
        record.figures["dbt_test_failures"] = result.test_failures
        for table, rows in result.gold_rows.items():
            record.figures[f"gold_rows_{table}"] = rows
        return result
