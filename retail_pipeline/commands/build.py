"""``retail-pipeline build``: model the processed data with dbt (``dbt build``: models, then their tests).

The run command calls :func:`build`. A failing dbt test is a :class:`QualityGateError` naming the test(s); the
failing rows are kept in the ``dbt_test__audit`` schema for inspection.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retail_pipeline import dialect, layout, warehouse
from retail_pipeline.config import Settings
from retail_pipeline.errors import InputError, QualityGateError

log = logging.getLogger(__name__)

TEST_TYPES = ("test", "unit_test")


class DbtTestsFailed(QualityGateError):
    """dbt tests failed: the build's quality gate said no. ``failed_tests`` names them."""

    def __init__(self, failed_tests: list[str], *, where: str, todo: str) -> None:
        self.failed_tests = failed_tests
        super().__init__(f"dbt tests failed: {', '.join(failed_tests)}", where=where, todo=todo)


@dataclass(frozen=True)
class BuildResult:
    """What ``dbt build`` did.

    gold_rows: rows per gold table (DuckDB targets only; empty for Redshift).
    test_failures: dbt data and unit tests that failed or errored (0 when the result is returned at all).
    test_warnings: tests over their warn threshold but under the error one.
    docs_path: the generated docs site's index.html, when docs were generated.
    """

    success: bool
    target: str
    seconds: float
    gold_rows: dict[str, int] = field(default_factory=dict)
    test_failures: int = 0
    test_warnings: int = 0
    docs_path: Path | None = None
    run_results: Path | None = None


def build(
    settings: Settings,
    *,
    target: str = "dev",
    select: str | None = None,
    full_refresh: bool = False,
    ingest_date: dt.date | None = None,
    docs: bool = False,
) -> BuildResult:
    """Run ``dbt build`` on the project and return what it built.

    ingest_date narrows an incremental build to that batch (ignored by a first build and by full_refresh, which
    read every batch). Raises QualityGateError when a dbt test fails, InputError when a model cannot be built.
    """
    started = time.perf_counter()
    if target == "dev":
        _check_lake(settings)
        settings.duckdb_path.resolve().parent.mkdir(parents=True, exist_ok=True)
    env = warehouse.dbt_env(settings, ingest_date=None if full_refresh else ingest_date)
    args = ["build", "--target", target]
    if select:
        args += ["--select", *select.split()]
    if full_refresh:
        args.append("--full-refresh")
    outcome = warehouse.invoke_dbt(args, env)
    run_results = warehouse.target_dir() / "run_results.json"
    failed_tests, failed_nodes, warnings = _failures(outcome.result)

    if failed_tests:
        raise DbtTestsFailed(
            failed_tests,
            where=f"failing rows in schema {warehouse.AUDIT_SCHEMA}; results in {run_results}",
            todo="inspect the failing rows, fix the data or the transform, then run retail-pipeline build again",
        )
    if failed_nodes or outcome.exception or not outcome.success:
        detail = "; ".join(failed_nodes) or _first_line(outcome.exception) or "see the dbt log above"
        raise InputError(
            f"dbt build failed: {detail}",
            where=f"{warehouse.PROJECT_DIR} (target {target})",
            todo="fix the cause above and run retail-pipeline build again",
        )

    docs_path = None
    if docs:
        generated = warehouse.invoke_dbt(["docs", "generate", "--target", target], env)
        if not generated.success:
            raise InputError(
                "dbt docs generate failed", where=str(warehouse.PROJECT_DIR), todo="see the dbt log above"
            )
        docs_path = warehouse.target_dir() / "index.html"

    gold_rows = warehouse.gold_row_counts(settings.duckdb_path) if target == "dev" else {}
    return BuildResult(
        success=True,
        target=target,
        seconds=time.perf_counter() - started,
        gold_rows=gold_rows,
        test_warnings=warnings,
        docs_path=docs_path,
        run_results=run_results,
    )


def parse(settings: Settings, *, target: str = "dev") -> float:
    """``dbt parse`` with the settings a build would use, so that the next build reuses it (partial parsing):
    dbt re-parses from scratch whenever the target, the profile (the DuckDB path) or the dbt version changed.
    Needs no warehouse and no data. Returns the seconds it took."""
    started = time.perf_counter()
    outcome = warehouse.invoke_dbt(["parse", "--target", target], warehouse.dbt_env(settings))
    if not outcome.success:
        detail = _first_line(outcome.exception) or "see the dbt log above"
        raise InputError(
            f"dbt parse failed: {detail}", where=str(warehouse.PROJECT_DIR), todo="fix the project"
        )
    return time.perf_counter() - started


def _failures(results: Any) -> tuple[list[str], list[str], int]:
    """(failed tests, failed other nodes as "name: first line of the message", tests that warned)."""
    failed_tests: list[str] = []
    failed_nodes: list[str] = []
    warnings = 0
    for result in getattr(results, "results", None) or []:
        node = result.node
        status = str(result.status)
        if node.resource_type in TEST_TYPES:
            if status in ("fail", "error"):
                failed_tests.append(node.name)
            elif status == "warn":
                warnings += 1
        elif status == "error":
            failed_nodes.append(f"{node.name}: {_first_line(result.message)}")
    return failed_tests, failed_nodes, warnings


def _first_line(message: object) -> str:
    lines = [line.strip() for line in str(message or "").splitlines() if line.strip()]
    return lines[0] if lines else ""


def _check_lake(settings: Settings) -> None:
    """A local lake must hold at least one processed batch, or DuckDB fails with a glob error nobody can read."""
    if settings.lake_is_s3:
        return
    processed = Path(settings.lake) / layout.PROCESSED_ZONE / layout.DATASET
    if not any(processed.glob(f"ingest_date=*/part-*{dialect.FILE_SUFFIX}")):
        raise InputError(
            "no processed data to build from",
            where=str(processed),
            todo="run `retail-pipeline transform` first (or set RETAIL_LAKE to the lake that has it)",
        )


def _iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build",
        help="model processed-data/ with dbt: staging and gold, then the quality gates (dbt build)",
        description=(
            "Run `dbt build` on the project at the repository root: staging and gold models, their contracts, "
            "and every test as a quality gate. A failing test stops the pipeline (exit 3)."
        ),
    )
    parser.add_argument(
        "--target", default="dev", help="dbt target: dev (DuckDB, default) or prod (Redshift)"
    )
    parser.add_argument("--select", help="dbt node selection, e.g. 'gold' or '+sales_transactions'")
    parser.add_argument(
        "--full-refresh", action="store_true", help="rebuild incremental models from all batches"
    )
    parser.add_argument(
        "--ingest-date",
        type=_iso_date,
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
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, settings: Settings) -> int:
    if args.parse_only:
        seconds = parse(settings, target=args.target)
        log.info("dbt project parsed for target %s in %.1f s: the next build reuses it", args.target, seconds)
        return 0
    from retail_pipeline import metrics
    from retail_pipeline.stages import run_build

    result = run_build(
        settings,
        run_id=metrics.run_id_from_env(),
        target=args.target,
        select=args.select,
        full_refresh=args.full_refresh,
        ingest_date=args.ingest_date,
        docs=args.docs,
    )
    rows = ", ".join(f"{warehouse.GOLD_SCHEMA}.{t}={n:,}" for t, n in result.gold_rows.items())
    log.info("dbt build passed on %s in %.1f s%s", result.target, result.seconds, f": {rows}" if rows else "")
    if result.test_warnings:
        log.warning("%d dbt test(s) warned; see %s", result.test_warnings, result.run_results)
    if result.docs_path:
        log.info("docs: %s (serve with `dbt docs serve` from the repository root)", result.docs_path)
    return 0
