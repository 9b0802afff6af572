"""The build stage: load, then write, audit and publish gold with dbt.

``retail-pipeline build``, ``retail-pipeline run`` and the task image all call :func:`build`, one code path:

1. **load** (warehouse/load.py): every new accepted batch of the lake into the source tables, one transaction per
   date; each joins the pending queue;
2. nothing loaded and nothing pending: a **no-op**, recorded as such (``noop`` = 1); dbt does not run;
3. **write and audit**: ``dbt build`` with the gold models in the audit schema (``gold_audit``): models, contracts,
   every test;
4. **publish**: only when every test passed, the audited tables replace gold's rows in one transaction, which
   also empties the pending queue (macros/publish_gold.sql); of a fact built incrementally, only the pending
   batches' lines. A failing test leaves published gold as it was, and the pending dates for the next build.

The whole of it holds the warehouse's lease in the lake (retail_core/lease.py, ``leases/online_retail/
warehouse.json``): a second build of the same lake meanwhile exits 5 (LeaseHeld) having changed nothing, and a build
whose lease expired and was taken over stops before it publishes (LeaseLost).

The stage's figures (batches loaded, gold rows per table, failed dbt tests, no-op) are recorded once, failures
included. A failing dbt test is a :class:`DbtTestsFailed` naming the test(s); the failing rows are kept in the
``dbt_test__audit`` schema.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retail_core import layout, lease, metrics, run_page
from retail_core.config import Settings
from retail_core.errors import InputError, QualityGateError
from retail_core.lake import open_lake
from retail_core.selector import parse_selector
from warehouse import figures, project
from warehouse import load as loading

log = logging.getLogger(__name__)

TEST_TYPES = ("test", "unit_test")
FACT = "sales_transactions"  # the model that applies the pending batches


class DbtTestsFailed(QualityGateError):
    """dbt tests failed: the build's quality gate said no. ``failed_tests`` names them."""

    def __init__(
        self, failed_tests: list[str], *, where: str, todo: str, loaded: tuple[dt.date, ...] = ()
    ) -> None:
        self.failed_tests = failed_tests
        self.loaded = loaded  # the dates this build loaded before its tests failed: they stay pending
        super().__init__(f"dbt tests failed: {', '.join(failed_tests)}", where=where, todo=todo)


@dataclass(frozen=True)
class BuildResult:
    """What ``dbt build`` did.

    gold_rows: rows per gold table (DuckDB targets only; empty for Redshift).
    test_failures: dbt data and unit tests that failed or errored (0 when the result is returned at all).
    test_warnings: tests over their warn threshold but under the error one.
    docs_path: the generated docs site's index.html, when docs were generated.
    loaded: the ingest dates loaded by this build; published: the gold tables it published (none on a no-op).
    """

    success: bool
    target: str
    seconds: float
    loaded: tuple[dt.date, ...] = ()
    published: tuple[str, ...] = ()
    gold_rows: dict[str, int] = field(default_factory=dict)
    test_failures: int = 0
    test_warnings: int = 0
    docs_path: Path | None = None
    run_results: Path | None = None
    # The dbt build's run_results.json: the operations after it (publish, the run page's figures, docs) each
    # write their own over it, so build() puts this one back last, for the task's artifacts and the bench.
    build_results: bytes | None = field(default=None, repr=False)
    # Published gold's figures as the publish step read them (None: nothing published), for the run page.
    gold: run_page.GoldFigures | None = None


def build(
    settings: Settings,
    *,
    run_id: str,
    target: str = "dev",
    select: str | None = None,
    full_refresh: bool = False,
    ingest_date: dt.date | None = None,
    docs: bool = False,
) -> BuildResult:
    """Load, build, audit and publish (see the module doc); the figures are recorded for run ``run_id``.

    ingest_date narrows the load to that date's batch. full_refresh rebuilds gold from every loaded batch. Raises
    QualityGateError when a dbt test fails (gold unchanged), InputError when a model cannot be built.
    """
    with metrics.measured(settings, "build", run_id=run_id) as record:
        record.ingest_date = ingest_date
        try:
            result = _build(
                settings,
                run_id=run_id,
                target=target,
                select=select,
                full_refresh=full_refresh,
                ingest_date=ingest_date,
                docs=docs,
            )
        except DbtTestsFailed as failed:
            record.figures["dbt_test_failures"] = len(failed.failed_tests)
            record.ingest_date = record.ingest_date or max(failed.loaded, default=None)
            if record.ingest_date is not None:
                write_run_page(
                    settings,
                    None,
                    target=target,
                    run_id=run_id,
                    ingest_date=record.ingest_date,
                    build_error=failed.one_line(),
                )
            raise
        record.figures["dbt_test_failures"] = result.test_failures
        record.figures["batches_loaded"] = len(result.loaded)
        if result.loaded and record.ingest_date is None:
            record.ingest_date = max(result.loaded)
        record.figures["noop"] = 0 if result.published else 1
        for table, rows in result.gold_rows.items():
            record.figures[f"gold_rows_{table}"] = rows
        if record.ingest_date is not None:
            write_run_page(settings, result, target=target, run_id=run_id, ingest_date=record.ingest_date)
        if result.build_results is not None and result.run_results is not None:
            result.run_results.write_bytes(result.build_results)
        return result


def write_run_page(
    settings: Settings,
    result: BuildResult | None,
    *,
    target: str,
    run_id: str,
    ingest_date: dt.date,
    build_error: str | None = None,
) -> str | None:
    """Rewrite the date's run page (quality/.../report.html) with what this build published, or why it did not
    (``build_error``). Returns the page's URI, or None when it could not be written: the page is for people, and a
    build that published gold has succeeded whether or not its page could be written (logged as a warning)."""
    lake = open_lake(settings)
    try:
        report_key = layout.run_report_key(ingest_date)
        if not lake.exists(report_key):
            log.warning("build: no run report for ingest_date=%s, so no run page", ingest_date)
            return None
        report = lake.read_json(report_key)
        gold = None if result is None else result.gold
        if result is not None and gold is None:  # nothing published: gold as the last build left it
            gold = figures.gold_figures(settings, target=target, run_id=run_id, published=False)
        page = run_page.render(
            report,
            run_id=run_id,
            gold=gold,
            links=_page_links(settings, report, result, run_id),
            build_error=build_error,
        )
        key = layout.run_page_key(ingest_date)
        lake.write_bytes(key, page.encode("utf-8"))
    except Exception as exc:  # the page is for people: see the docstring
        log.warning("build: could not write the run page for ingest_date=%s: %s", ingest_date, exc)
        return None
    log.info("build: run page %s", lake.uri(key))
    return lake.uri(key)


def _page_links(
    settings: Settings, report: dict[str, Any], result: BuildResult | None, run_id: str
) -> run_page.PageLinks:
    """The page sits in quality/online_retail/ingest_date=D/: the Data Docs are beside it; the dbt docs are the
    local build's target/ (a file URI), or on AWS the artifacts the task ships to dbt-artifacts/ (relative)."""
    data_docs = report.get("data_docs")
    dbt_docs = None
    if result is not None and result.docs_path is not None:
        if settings.lake_is_s3:
            dbt_docs = f"../../../{layout.ARTIFACTS_ZONE}/{layout.DATASET}/run_id={run_id}/index.html"
        else:
            dbt_docs = result.docs_path.resolve().as_uri()
    return run_page.PageLinks(
        data_docs=f"{layout.DATA_DOCS_DIR}/index.html" if data_docs else None,
        dbt_docs=dbt_docs,
    )


def _build(
    settings: Settings,
    *,
    run_id: str,
    target: str,
    select: str | None,
    full_refresh: bool,
    ingest_date: dt.date | None,
    docs: bool,
) -> BuildResult:
    started = time.perf_counter()
    if target == "dev":
        _check_lake(settings)
        settings.duckdb_path.resolve().parent.mkdir(parents=True, exist_ok=True)
    # One build of the lake's warehouse at a time (a scheduled run and a backfill can overlap): a second one exits
    # 5 at once, having changed nothing. Held until gold is published.
    with lease.held_warehouse(open_lake(settings), stage="build", run_id=run_id) as held:
        loaded = loading.load(settings, target=target, run_id=run_id, ingest_date=ingest_date)
        if not loaded.pending and not loaded.had_batches and loaded.skipped:
            # An empty warehouse and nothing the lake can offer: "gold is current" would be false.
            dates = ", ".join(d.isoformat() for d in loaded.skipped)
            raise InputError(
                f"nothing to load: the latest transform of {dates} did not succeed (or was interrupted)",
                f"{settings.lake} (its run reports)",
                f"run `retail-pipeline transform --ingest-date {loaded.skipped[-1].isoformat()}` again, then build",
            )
        if not loaded.pending and not full_refresh and not select:
            if loaded.skipped:
                log.warning(
                    "build: gold keeps what was loaded for %s: their latest transform did not succeed; transform them "
                    "again to load it",
                    ", ".join(d.isoformat() for d in loaded.skipped),
                )
            log.info("build: no new batch in the lake and none pending: gold is current, nothing to do")
            return BuildResult(
                success=True,
                target=target,
                seconds=time.perf_counter() - started,
                gold_rows=_gold_rows(settings, target),
                # Gold did not change, so neither did its docs: the last build's site still describes it.
            )
        env = project.dbt_env(settings, run_id=run_id)
        # Unit tests check the models' logic on fixtures, not the batch: dbt's advice is to run them in development and
        # CI, not in production builds. `make test` runs every one (tests/integration/test_dbt_build.py), and a bare
        # `dbt build` still does.
        args = ["build", "--target", target, "--exclude-resource-type", "unit_test"]
        if select:
            args += ["--select", *parse_selector(select)]
        if full_refresh:
            args.append("--full-refresh")
        outcome = project.invoke_dbt(args, env)
        run_results = project.target_dir() / "run_results.json"
        build_results = run_results.read_bytes() if run_results.is_file() else None
        failed_tests, failed_nodes, warnings = _failures(outcome.result)

        if failed_tests:
            _store_failures(failed_tests, env, target)
            if build_results is not None:
                run_results.write_bytes(build_results)  # the build's results, not the re-run's
            raise DbtTestsFailed(
                failed_tests,
                where=f"failing rows in schema {project.AUDIT_SCHEMA}; results in {run_results}; gold not published",
                todo="inspect the failing rows, fix the data or the transform, then run retail-pipeline build again",
                loaded=loaded.loaded,
            )
        if failed_nodes or outcome.exception or not outcome.success:
            detail = (
                "; ".join(failed_nodes) or project.first_line(outcome.exception) or "see the dbt log above"
            )
            raise project.dbt_failure("dbt build failed", detail, target, "; gold not published")
        if select and not (getattr(outcome.result, "results", None) or []):
            raise InputError(
                "--select matched nothing to build",
                f"--select {select}",
                "name models, tests or selectors of this project (`dbt ls --select ...` lists what matches)",
            )
        log.info("build: dbt build: %s", node_summary(outcome.result))
        published = _built_gold_tables(outcome.result)
        held.check()  # the build may have outlasted the lease: publish only while the warehouse is still this run's
        gold = (
            publish(settings, target=target, run_id=run_id, tables=published, incremental=not full_refresh)
            if published
            else None
        )

        return BuildResult(
            success=True,
            target=target,
            seconds=time.perf_counter() - started,
            gold_rows=_gold_rows(settings, target),
            test_warnings=warnings,
            docs_path=_docs(settings, target, run_id) if docs else None,
            run_results=run_results,
            build_results=build_results,
            loaded=loaded.loaded,
            published=tuple(published),
            gold=gold,
        )


def _store_failures(failed_tests: Sequence[str], env: dict[str, str], target: str) -> None:
    """Run the failed tests again with --store-failures, so that their failing rows are kept in
    dbt_test__audit for inspection (the build itself stores none: a table per test on every run is slow)."""
    stored = project.invoke_dbt(
        ["test", "--target", target, "--store-failures", "--select", *failed_tests], env
    )
    if stored.exception is not None:  # the tests failing again is the expected outcome, not this
        log.warning("build: could not keep the failing rows: %s", project.first_line(stored.exception))


def publish(
    settings: Settings, *, target: str, run_id: str, tables: Sequence[str], incremental: bool = False
) -> run_page.GoldFigures:
    """Copy the audited gold tables into gold in one transaction and empty the pending queue, which only a build
    of the fact has applied (macros/publish_gold.sql). ``incremental``: the fact was built incrementally, so only
    the pending batches' lines of it are replaced (a full refresh copies it whole). Returns published gold's
    figures, which the same operation reads afterwards (macros/gold_figures.sql), for the run page."""
    args = {
        "tables": list(tables),
        "audit_schema": layout.GOLD_AUDIT_SCHEMA,
        "gold_schema": layout.GOLD_SCHEMA,
        "clear_pending": FACT in tables,
        "figures_of": list(layout.GOLD_PUBLISHED),
        "apply_pending_to": FACT if incremental and FACT in tables else None,
    }
    outcome, messages, _ = project.invoke_dbt_logged(
        ["run-operation", "publish_gold", "--args", json.dumps(args), "--target", target],
        project.dbt_env(settings, run_id=run_id),
    )
    if not outcome.success:
        raise InputError(
            f"publishing gold failed: {project.first_line(outcome.exception) or 'see the dbt log above'}",
            where=f"{project.PROJECT_DIR} (target {target}); gold unchanged",
            todo="fix the cause above and run retail-pipeline build again: the audited tables are rebuilt",
        )
    log.info("build: published %s", ", ".join(f"{layout.GOLD_SCHEMA}.{t}" for t in tables))
    return figures.parse(messages, published=True, where=f"dbt run-operation publish_gold (target {target})")


def node_summary(results: Any) -> str:
    """What a dbt build did, in one line: ``11 models, 1 snapshot, 82 tests, 9 unit tests (2 warned)``."""
    counts: dict[str, int] = {}
    warned = 0
    for result in getattr(results, "results", None) or []:
        kind = result.node.resource_type
        kind = "unit test" if kind == "unit_test" else str(kind)
        counts[kind] = counts.get(kind, 0) + 1
        warned += str(result.status) == "warn"
    parts = [
        f"{n} {kind}{'' if n == 1 else 's'}" for kind, n in sorted(counts.items(), key=lambda kv: -kv[1])
    ]
    return (", ".join(parts) or "nothing") + (f" ({warned} warned)" if warned else "")


def _built_gold_tables(results: Any) -> list[str]:
    """The gold tables this build wrote, in layout order (a --select may build only some)."""
    built = {
        result.node.name
        for result in getattr(results, "results", None) or []
        if result.node.resource_type in ("model", "snapshot") and str(result.status) == "success"
    }
    return [table for table in layout.GOLD_PUBLISHED if table in built]


def _gold_rows(settings: Settings, target: str) -> dict[str, int]:
    return project.gold_row_counts(settings.duckdb_path) if target == "dev" else {}


def _docs(settings: Settings, target: str, run_id: str) -> Path:
    """Generate the docs site against published gold (the models as a bare ``dbt build`` sees them)."""
    generated = project.invoke_dbt(
        ["docs", "generate", "--target", target], project.dbt_env(settings, run_id=run_id, audit=False)
    )
    if not generated.success:
        raise InputError(
            "dbt docs generate failed", where=str(project.PROJECT_DIR), todo="see the dbt log above"
        )
    return project.target_dir() / "index.html"


def parse(settings: Settings, *, target: str = "dev") -> float:
    """``dbt parse`` with the settings a build would use, so that the next build reuses it (partial parsing):
    dbt re-parses from scratch whenever the target, the profile (the DuckDB path) or the dbt version changed.
    Needs no warehouse and no data. Returns the seconds it took."""
    started = time.perf_counter()
    outcome = project.invoke_dbt(["parse", "--target", target], project.dbt_env(settings))
    if not outcome.success:
        detail = project.first_line(outcome.exception) or "see the dbt log above"
        raise InputError(
            f"dbt parse failed: {detail}", where=str(project.PROJECT_DIR), todo="fix the project"
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
            failed_nodes.append(f"{node.name}: {project.first_line(result.message)}")
    return failed_tests, failed_nodes, warnings


def _check_lake(settings: Settings) -> None:
    """A local lake must hold at least one processed batch, or DuckDB fails with a glob error nobody can read."""
    if settings.lake_is_s3:
        return
    processed = Path(settings.lake) / layout.PROCESSED_ZONE / layout.DATASET
    if not any(processed.glob(f"ingest_date=*/{layout.MANIFEST_NAME}")):
        raise InputError(
            "no processed data to build from",
            where=str(processed),
            todo="run `retail-pipeline transform` first (or set RETAIL_LAKE to the lake that has it)",
        )
