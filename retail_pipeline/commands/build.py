"""``retail-pipeline build``: model the processed data with dbt (the warehouse stage, warehouse/build.py)."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping

from retail_core import layout, metrics
from retail_core.config import Settings
from retail_core.errors import InputError
from retail_core.selector import parse_selector
from retail_pipeline.commands.ingest import parse_date
from warehouse.build import build, parse

log = logging.getLogger(__name__)

TARGETS = ("dev", "prod")  # the profile's outputs (profiles.yml.example)
# The same variable picks the profile's target for a bare `dbt` (profiles.yml.example), so the CLI follows it too:
# flags win over the environment, the environment over the default.
TARGET_VAR = "RETAIL_DBT_TARGET"


def dbt_target(flag: str | None, env: Mapping[str, str] | None = None) -> str:
    """The dbt target: the flag, else RETAIL_DBT_TARGET, else dev; anything but dev or prod is refused."""
    env = os.environ if env is None else env
    target = flag or env.get(TARGET_VAR) or "dev"
    if target not in TARGETS:
        raise InputError(
            f"unknown dbt target {target!r}", TARGET_VAR, f"set it to {' or '.join(TARGETS)}, or unset it"
        )
    return target


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build",
        help="model processed-data/ with dbt: staging and gold, then the quality gates (dbt build)",
        description=(
            "Run `dbt build` on the project at the repository root: staging and gold models, their contracts, "
            "and every test as a quality gate. A failing test stops the pipeline (exit 3); another build of the "
            "same lake's warehouse going on is exit 5, nothing changed."
        ),
    )
    parser.add_argument(
        "--target",
        choices=TARGETS,
        help=f"dbt target: dev (DuckDB) or prod (Redshift); default {TARGET_VAR}, else dev",
    )
    parser.add_argument("--select", help="dbt node selection, e.g. 'gold' or '+sales_transactions'")
    parser.add_argument(
        "--full-refresh", action="store_true", help="rebuild incremental models from all batches"
    )
    parser.add_argument(
        "--ingest-date",
        type=parse_date,
        help="merge only this batch (YYYY-MM-DD) into an existing warehouse; default: batches not yet loaded",
    )
    parser.add_argument(
        "--docs", action="store_true", help="then generate the dbt docs site (target/index.html)"
    )
    parser.add_argument(
        "--parse-only",
        action="store_true",
        help="only parse the project (no data needed), so that the next build skips parsing; make setup does this",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, settings: Settings) -> int:
    parse_selector(args.select)  # a selector, never dbt options: refused here, before any work
    target = dbt_target(args.target)
    if args.parse_only:
        seconds = parse(settings, target=target)
        log.info("dbt project parsed for target %s in %.1f s: the next build reuses it", target, seconds)
        return 0
    result = build(
        settings,
        run_id=metrics.run_id_from_env(),
        target=target,
        select=args.select,
        full_refresh=args.full_refresh,
        ingest_date=args.ingest_date,
        docs=args.docs,
    )
    rows = ", ".join(f"{layout.GOLD_SCHEMA}.{t}={n:,}" for t, n in result.gold_rows.items())
    if not result.published:
        log.info(
            "nothing new to load and nothing pending: gold unchanged (no-op)%s", f": {rows}" if rows else ""
        )
        return 0
    loaded = ", ".join(d.isoformat() for d in result.loaded) or "none new (pending ones applied)"
    log.info("loaded: %s", loaded)
    log.info(
        "dbt build passed and gold published on %s in %.1f s%s",
        result.target,
        result.seconds,
        f": {rows}" if rows else "",
    )
    if result.test_warnings:
        log.warning("%d dbt test(s) warned; see %s", result.test_warnings, result.run_results)
    if result.docs_path:
        log.info("docs: %s (serve with `dbt docs serve` from the repository root)", result.docs_path)
    return 0
