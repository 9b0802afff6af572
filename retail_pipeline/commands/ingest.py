"""``retail-pipeline ingest``: land the raw CSV in the lake."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from ingestion.ingest import IngestResult, SourceRequest, choose_source, ingest
from ingestion.sources import Source
from retail_core import layout, metrics
from retail_core.config import Settings
from retail_core.errors import InputError
from retail_core.lake import open_lake
from retail_pipeline.progress import row_progress

SOURCE_HELP = """\
sources:
  kaggle     the real dataset (ulrikthygepedersen/online-retail-dataset) through the official kaggle client;
             credentials from KAGGLE_USERNAME/KAGGLE_KEY, KAGGLE_API_TOKEN or ~/.kaggle/kaggle.json
  synthetic  a deterministic twin of the real file (--seed, --scale); scale 1 matches its published profile
  file       a local CSV with the same header (--path)
The default is kaggle when credentials are configured, else synthetic at scale 1.
Identical content that already landed is not landed again (use --force to land it anyway)."""


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The source flags, shared by `ingest` and `run`."""
    group = parser.add_argument_group("source")
    group.add_argument(
        "--source", choices=("kaggle", "synthetic", "file"), help="where the raw CSV comes from"
    )
    group.add_argument("--path", type=Path, help="the CSV for --source file (implies it)")
    group.add_argument(
        "--seed", type=int, default=42, help="generator seed for --source synthetic (default 42)"
    )
    group.add_argument(
        "--scale",
        type=int,
        default=1,
        help="generator scale: N x 541,909 rows for --source synthetic (default 1)",
    )
    group.add_argument(
        "--dataset",
        help="Kaggle dataset owner/name (implies --source kaggle; default the Online Retail dataset)",
    )
    group.add_argument(
        "--ingest-date",
        type=parse_date,
        help="the partition to land in, YYYY-MM-DD (default today, UTC)",
    )
    group.add_argument("--force", action="store_true", help="land even if identical content already landed")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "ingest",
        help="land the raw CSV in the lake's raw-data/ with a manifest",
        description="Fetch the Online Retail CSV and land it byte for byte, with _manifest.json, at "
        "{lake}/raw-data/online_retail/ingest_date=YYYY-MM-DD/online_retail.csv.",
        epilog=SOURCE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_source_arguments(parser)
    parser.set_defaults(handler=handle)


def parse_date(text: str) -> dt.date:
    try:
        return layout.ingest_date_from_text(text)
    except layout.DateTooEarly as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


def source_from_args(args: argparse.Namespace) -> tuple[Source, str]:
    """The source the flags ask for (or the default one) and why it was chosen."""
    request = SourceRequest(
        source=args.source, path=args.path, seed=args.seed, scale=args.scale, dataset=args.dataset
    )
    return choose_source(request)


def run_ingest(
    args: argparse.Namespace,
    settings: Settings,
    *,
    run_id: str,
    chosen: tuple[Source, str] | None = None,
) -> IngestResult:
    """Shared by `ingest` and `run`: choose the source (unless ``chosen``), land it with progress shown, record
    its figures."""
    with metrics.measured(settings, "ingest", run_id=run_id) as record:
        record.ingest_date = args.ingest_date
        source, reason = chosen or source_from_args(args)
        lake = open_lake(settings)
        with row_progress(f"ingest ({source.name})") as progress:
            result = ingest(
                lake,
                source,
                run_id=run_id,
                reason=reason,
                ingest_date=args.ingest_date,
                force=args.force,
                progress=progress,
            )
        # Unchanged content is recorded under the date asked for, as a no-op; landed content under its date.
        record.ingest_date = result.ingest_date if result.landed else (args.ingest_date or result.ingest_date)
        record.figures["rows_in"] = result.manifest["rows"]
        record.figures["noop"] = 0 if result.landed else 1
        return result


def check_source_flags(args: argparse.Namespace) -> None:
    """Refuse flags of two different sources (``ingest`` and ``run`` take the same ones), before anything runs."""
    if args.path is not None and args.source not in (None, "file"):
        raise InputError("--path only goes with --source file", f"--source {args.source}", "drop one of them")
    if args.dataset is not None and args.source not in (None, "kaggle"):
        raise InputError(
            "--dataset only goes with --source kaggle", f"--source {args.source}", "drop one of them"
        )
    if args.dataset is not None and args.path is not None:
        raise InputError("--dataset and --path name two sources", f"--path {args.path}", "drop one of them")


def handle(args: argparse.Namespace, settings: Settings) -> int:
    check_source_flags(args)
    result = run_ingest(args, settings, run_id=metrics.run_id_from_env())
    verb = "landed" if result.landed else "already landed, nothing to do"
    print(f"ingest: {result.source} ({result.reason}): {verb}: {result.raw_uri}")
    print(
        f"  rows {result.manifest['rows']:,}  bytes {result.manifest['bytes']:,}  sha256 {result.manifest['sha256']}"
    )
    return 0
