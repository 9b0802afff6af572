"""``retail-pipeline``: one console script, one subcommand per stage.

Each subcommand lives in ``retail_pipeline/commands/<name>.py`` and exposes ``register(subparsers)``, which adds
its parser and sets ``handler`` to a function ``(args, settings) -> int``. This module only wires them up,
reads the configuration once, and turns a :class:`PipelineError` into one line on stderr and its exit code.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from rich.logging import RichHandler

from retail_core import gc_policy, interrupts, metrics
from retail_core.config import Settings
from retail_core.errors import PipelineError, UpstreamError, os_error_line
from retail_pipeline import __version__
from retail_pipeline.commands import bench, build, ingest, reconcile, report, run, transform

# Order is the order of `retail-pipeline --help`. Registering a command imports no heavy dependency (Spark,
# dbt, great_expectations, pandas load when a command runs), so the task image, which has only the task's
# dependencies, builds this same parser.
COMMANDS = (ingest, transform, build, run, report, bench, reconcile)

log = logging.getLogger("retail_pipeline")
# What a shell reports for a process that SIGPIPE ended (128 + 13), as `git log | head` does.
SIGPIPE_EXIT = 141


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retail-pipeline",
        description=(
            "ETL for the Online Retail dataset: land the raw CSV in the lake (ingest), clean it to TSV with "
            "Spark (transform), and model it with dbt (build). `run` does all three."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--lake",
        help="lake root: a folder or s3://bucket/prefix (env RETAIL_LAKE, default data/lake)",
    )
    parser.add_argument(
        "--duckdb-path",
        help="local DuckDB warehouse file (env RETAIL_DUCKDB_PATH, default data/warehouse.duckdb)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    interrupts.install()
    try:
        settings = Settings.from_env(lake=args.lake, duckdb_path=args.duckdb_path, verbose=args.verbose)
        # The run id and the metrics sink are read when a stage ends: a bad one must stop it before it starts.
        metrics.check_env()
        return int(args.handler(args, settings) or 0)
    except BrokenPipeError:
        # The reader of our output went away (`retail-pipeline report | head`): nothing to say, and nowhere to
        # say it. Python would report the pipe again when it flushes stdout at exit, so stdout goes to devnull.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return SIGPIPE_EXIT
    except (PipelineError, OSError) as exc:
        if interrupts.seen():
            # What a signal cut short fails after it: dbt turns a Ctrl-C into a failed node (then "dbt build
            # failed"), a JVM killed with the process group into a refused py4j connection. The signal is the news.
            print(f"retail-pipeline {args.command}: interrupted", file=sys.stderr)
            return interrupts.exit_code()
        if isinstance(exc, PipelineError):
            print(f"retail-pipeline {args.command}: error: {exc.one_line()}", file=sys.stderr)
            return exc.exit_code
        # The machine said no (a full disk, an I/O error, a permission): one line, as for the errors above.
        print(f"retail-pipeline {args.command}: error: {os_error_line(exc)}", file=sys.stderr)
        return UpstreamError.exit_code
    except (KeyboardInterrupt, SystemExit) as exc:
        if isinstance(exc, SystemExit) and not interrupts.seen():
            raise
        print(f"retail-pipeline {args.command}: interrupted", file=sys.stderr)
        return interrupts.exit_code()
    except Exception as exc:
        if interrupts.seen():
            # What a signal cut short fails after it (a py4j call without its answer): the signal is the news.
            print(f"retail-pipeline {args.command}: interrupted", file=sys.stderr)
            return interrupts.exit_code()
        line = _aws_error_line(exc)
        if line is None:
            raise  # a bug: the traceback is what a report needs
        print(f"retail-pipeline {args.command}: error: {line}", file=sys.stderr)
        return UpstreamError.exit_code


def _aws_error_line(exc: Exception) -> str | None:
    """A botocore failure outside an HTTP answer (no credentials, no region, no connection) as one line, else None.
    The lake turns S3's own answers (ClientError) into PipelineErrors where it calls S3; these come from before."""
    exceptions = sys.modules.get("botocore.exceptions")  # loaded only if S3 was used: nothing to import here
    if exceptions is None or not isinstance(exc, exceptions.BotoCoreError):
        return None
    if isinstance(exc, exceptions.NoCredentialsError | exceptions.PartialCredentialsError):
        todo = "set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or use a local folder as the lake"
    elif isinstance(exc, exceptions.NoRegionError):
        todo = "set AWS_DEFAULT_REGION (the AWS SDK for Python does not read AWS_REGION)"
    else:
        todo = "check the network, AWS_ENDPOINT_URL and the credentials, then run again"
    return UpstreamError(f"AWS could not be reached: {exc}", "the s3:// lake", todo).one_line()


def console() -> int:
    """The ``retail-pipeline`` console script (and ``python -m retail_pipeline.cli``): ``main`` in a process of its
    own, with the garbage collector set for a batch process (retail_core/gc_policy.py)."""
    return gc_policy.run_batch(main)


def _configure_logging(verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    if sys.stderr.isatty():
        handler: logging.Handler = RichHandler(show_path=False, rich_tracebacks=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s", datefmt="[%X]"))
    else:
        # Logs read by CI or CloudWatch: one unwrapped line per record.
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if not verbose:
        # After a Ctrl-C, py4j reports each call it cut off (through its loggers and the root one, tracebacks
        # included): the interrupt is reported once, by main. -v keeps them, and so does any run not interrupted.
        handler.addFilter(lambda record: not (interrupts.seen() and "/py4j/" in record.pathname))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Third-party chatter stays out of the user's terminal unless asked for.
    for noisy in ("py4j", "great_expectations"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    # The AWS SDK's debug log prints every request's signed headers, the session token among them: -v stops at
    # its INFO (which credentials were found, never their values), so secrets stay out of the logs.
    for sdk in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(sdk).setLevel(logging.INFO if verbose else logging.WARNING)


if __name__ == "__main__":
    sys.exit(console())
