"""The AWS Glue job script: Glue 5.0 (Spark 3.5, Python 3.11) runs this file; the work is glue/job.py.

AWS's job skeleton: ``getResolvedOptions``, ``GlueContext``, ``Job.init`` ... ``job.commit()``. The job's own
arguments: ``--lake s3://bucket/prefix`` and optionally ``--ingest_date``, ``--run_id`` (the pipeline run's
id: the state machine passes its execution name), ``--encoding``, ``--output_files``,
``--max_quarantine_ratio``, ``--shuffle_partitions`` and the invoice date window ``--earliest_invoice_date``,
``--latest_invoice_date`` (ISO dates; rows outside are quarantined). With job bookmarks on
(``--job-bookmark-option job-bookmark-enable``) and no ``--ingest_date``, it picks the newest raw partition whose
manifest the bookmark has not seen yet: a run with nothing new is a no-op.

Deployed from ``make package``'s ``dist/glue/``: this script, and ``retail_transform_libs.zip`` (``retail_core``
and ``glue`` without the local runtime) as ``--extra-py-files``. Started without Glue's arguments (``python -m
glue.retail_transform --lake DIR``) it runs on a plain local SparkSession; the tuned local run is
``retail-pipeline transform``.
Exit codes: 0 done or nothing new, 2 bad input, 3 quality gate or row conservation failed, 4 the lake refused a
read or write (S3 errors, a full disk), 5 another run holds the date's lease (nothing was changed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Sequence

from glue import job, runtime
from glue.options import TransformOptions
from retail_core import gc_policy, layout, metrics
from retail_core.config import Settings
from retail_core.errors import InputError, PipelineError, UpstreamError, os_error_line
from retail_core.lake import open_lake

log = logging.getLogger("retail_transform")

GLUE_REQUIRED = ("JOB_NAME", "lake")
GLUE_OPTIONAL = (
    "ingest_date",
    "run_id",
    "encoding",
    "output_files",
    "max_quarantine_ratio",
    "shuffle_partitions",
    "earliest_invoice_date",  # the invoice date window (glue/options.py); rows outside are quarantined
    "latest_invoice_date",
)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv if argv is None else argv)
    rt: runtime.Runtime | None = None
    try:
        # RETAIL_RUN_ID and RETAIL_METRICS are read when the stage records its figures: refuse a bad one now.
        metrics.check_env()
        rt = runtime.start(argv)
        if rt.engine == runtime.GLUE_ENGINE:
            from awsglue.utils import getResolvedOptions  # Glue's own: there only when Glue runs us

            present = [name for name in GLUE_OPTIONAL if f"--{name}" in argv]
            args = getResolvedOptions(argv, [*GLUE_REQUIRED, *present])
            rt.job.init(args["JOB_NAME"], args)
        else:
            args = _local_job_args(argv[1:])
        ingest_date = _date(args.get("ingest_date"))
        given = (args.get("run_id") or "").strip()
        run_id = metrics.check_run_id(given, "--run_id") if given else metrics.run_id_from_env()
        settings = Settings.from_env(lake=args["lake"])
        lake = open_lake(settings)
        try:
            with job.recorded(settings, run_id=run_id, ingest_date=ingest_date) as done:
                result = job.transform(
                    rt,
                    lake,
                    run_id=run_id,
                    ingest_date=ingest_date,
                    options=TransformOptions.from_job_args(args),
                    endpoint_url=settings.aws_endpoint_url,
                    candidates=None if ingest_date else rt.unprocessed_partitions(lake),
                )
                done(result)
        except job.NothingNew as exc:
            log.info("nothing to transform: %s", exc or "every raw partition was processed (job bookmark)")
            rt.commit()
            return 0
        rt.commit()
        log.info(
            "transform: %s",
            json.dumps({k: result.report[k] for k in ("status", "rows_in", "rows_clean", "run_id")}),
        )
        return 0
    except PipelineError as exc:
        log.error("transform failed: %s", exc.one_line())
        return exc.exit_code
    except OSError as exc:
        log.error("transform failed: %s", os_error_line(exc))
        return UpstreamError.exit_code
    finally:
        if rt is not None:
            rt.stop()


def _date(text: str | None) -> dt.date | None:
    if not text:
        return None
    try:
        return layout.ingest_date_from_text(text)
    except layout.DateTooEarly as exc:
        raise InputError("bad job argument", f"--ingest_date {text}", str(exc)) from None
    except ValueError:
        raise InputError("bad job argument", f"--ingest_date {text}", "use YYYY-MM-DD") from None


def _local_job_args(argv: Sequence[str]) -> dict[str, str]:
    parser = argparse.ArgumentParser(prog="retail_transform.py")
    parser.add_argument("--lake", default=Settings.from_env().lake)
    for name in GLUE_OPTIONAL:
        parser.add_argument(f"--{name}")
    return {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}


def console() -> int:
    """What Glue (or ``python -m glue.retail_transform``) runs: ``main`` with the garbage collector set for a batch
    process (retail_core/gc_policy.py): the driver's Python imports great_expectations and runs the gate."""
    return gc_policy.run_batch(main)


if __name__ == "__main__":
    sys.exit(console())
