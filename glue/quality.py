"""The quality gate: a Great Expectations 1.x suite run on the cleaned (cached) Spark DataFrame.

Cheap by construction. GX bundles every aggregate metric of one domain (the whole batch here) into one
``df.agg(...)``, so the suite is chosen from expectations whose metrics are aggregates: not-null counts,
column minima and maxima, the distinct count of the line key, the row count. On the cached frame that is five
small Spark jobs, whatever the number of expectations (the line key's distinct count has a domain, and so a
query, of its own: see ``line_id_unique``). Nothing asks for unexpected-row samples (which would be one more scan
per expectation): the result format is BASIC without partial lists, and the run report keeps only the observed
values.

The quarantine ratio is checked on the cleaned DataFrame too: with ``rows_in`` rows read, a ratio at most
``max_ratio`` is the same as at least ``rows_in - floor(rows_in * max_ratio)`` clean rows.

``great_expectations`` takes seconds to import; :func:`preload` starts that import on a thread while Spark reads.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame

from retail_core import contract

log = logging.getLogger(__name__)

SUITE_NAME = "online_retail_processed"
DOCS_SITE = "run"
# Columns the contract never leaves empty; description, customer_id (guest sales) and country may be.
NOT_NULL_COLUMNS: tuple[str, ...] = (
    "line_id",
    "invoice_no",
    "stock_code",
    "quantity",
    "invoice_date",
    "unit_price",
    "total_sales",
    "ingest_date",
)

_preload_lock = threading.Lock()
_preload_thread: threading.Thread | None = None


def preload() -> None:
    """Start importing great_expectations in the background (idempotent)."""
    global _preload_thread
    with _preload_lock:
        if _preload_thread is None:
            _preload_thread = threading.Thread(target=_import_gx, name="gx-import", daemon=True)
            _preload_thread.start()


def _import_gx() -> None:
    try:
        import great_expectations  # noqa: F401
    except Exception:  # the gate imports it again in the foreground and reports the real error
        log.debug("background import of great_expectations failed", exc_info=True)


@dataclass(frozen=True)
class ExpectationOutcome:
    name: str
    success: bool
    observed: Any
    expectation: str  # the GX expectation type, e.g. expect_column_min_to_be_between
    note: str | None = None  # why it was not evaluated (NO_ROW_TO_JUDGE)


# A column check over no row has nothing to fail: a batch without clean rows (a day of returns only) is judged by
# the quarantine ratio alone. GX would call each of them failed (the min, or the proportion, of nothing).
NO_ROW_TO_JUDGE = "not evaluated: no clean row to judge"
TABLE_CHECKS = frozenset({"quarantine_ratio"})  # judged on the row count, which an empty batch has


@dataclass
class GateResult:
    passed: bool
    threshold: float
    expectations: list[ExpectationOutcome]
    seconds: float
    _context: Any = field(default=None, repr=False)

    def as_report(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "threshold": self.threshold,
            "expectations": [
                {"name": e.name, "success": e.success, "observed": e.observed, "expectation": e.expectation}
                | ({"note": e.note} if e.note else {})
                for e in self.expectations
            ],
        }

    def failure_line(self) -> str:
        """What failed, for the one-line error: the quarantine ratio as figures, then the other checks by name."""
        failed = [e for e in self.expectations if not e.success]
        ratio = next((e for e in failed if e.name == "quarantine_ratio"), None)
        parts = [e.name for e in failed if e is not ratio]
        if ratio is not None:
            parts.insert(
                0,
                f"{_percent(ratio.observed)} of rows quarantined, more than {_percent(self.threshold)}"
                if isinstance(ratio.observed, int | float)
                else ratio.name,
            )
        return ", ".join(parts)

    def write_data_docs(self, directory: Path) -> Path:
        """Render GX Data Docs (HTML) for this validation into ``directory``; return its index.html."""
        if self._context is None:
            raise RuntimeError("no validation to render")
        directory.mkdir(parents=True, exist_ok=True)
        self._context.add_data_docs_site(DOCS_SITE, _site_config(directory))
        self._context.build_data_docs(site_names=[DOCS_SITE])
        return directory / "index.html"


def _percent(ratio: float) -> str:
    """0.05 -> '5%', 0.125 -> '12.5%', 0.0734 -> '7.34%'."""
    return f"{ratio * 100:.2f}".rstrip("0").rstrip(".") + "%"


def min_clean_rows(rows_in: int, max_quarantine_ratio: float) -> int:
    """The fewest clean rows that keep the quarantine ratio at or under ``max_quarantine_ratio``."""
    # The epsilon keeps 0.05 * 100 at 5, not 4.999999.
    return rows_in - math.floor(rows_in * max_quarantine_ratio + 1e-9)


def run_gate(
    clean: DataFrame,
    *,
    rows_in: int,
    max_quarantine_ratio: float,
    rows_returns: int = 0,
    rows_clean: int | None = None,
    now: dt.datetime | None = None,
    date_window: tuple[dt.datetime, dt.datetime] | None = None,
) -> GateResult:
    """Validate ``clean`` (cache it first) and say whether it may be published.

    ``rows_clean``: the rows in ``clean``, when the caller counted them (None: the gate looks). With none, the
    column checks are reported as not evaluated (:data:`NO_ROW_TO_JUDGE`) and the quarantine ratio decides.
    ``date_window``: the invoice dates the cleaning accepted (default: ``contract.invoice_date_window(now)``);
    rows outside it were quarantined, so the gate's date checks are a safety net over the same window."""
    started = time.perf_counter()
    if _preload_thread is not None:
        _preload_thread.join()
    import great_expectations as gx

    now = now or dt.datetime.now(dt.UTC)
    context = _context()
    # persist=False: the frame is cached already; GX would cache a second copy (and Spark could hand a later
    # run with the same plan this run's cached rows).
    source = context.data_sources.add_spark("lake", persist=False)
    batch = source.add_dataframe_asset("processed").add_batch_definition_whole_dataframe("run")
    named = _expectations(
        rows_in, max_quarantine_ratio, date_window or contract.invoice_date_window(now), rows_returns
    )
    empty = clean.isEmpty() if rows_clean is None else rows_clean == 0
    judged = {name for name, _ in named if not empty or name in TABLE_CHECKS}
    suite = context.suites.add(gx.ExpectationSuite(name=SUITE_NAME))
    for name, expectation in named:
        if name in judged:
            suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="processed_gate", data=batch, suite=suite)
    )
    result = definition.run(
        batch_parameters={"dataframe": clean},
        result_format={"result_format": "BASIC", "partial_unexpected_count": 0},
    )
    by_id = {r.expectation_config.id: r for r in result.results}
    outcomes = []
    for name, expectation in named:
        if name not in judged:
            outcomes.append(
                ExpectationOutcome(name, True, None, expectation.expectation_type, note=NO_ROW_TO_JUDGE)
            )
            continue
        r = by_id[expectation.id]
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise RuntimeError(f"quality check {name} could not run: {r.exception_info['exception_message']}")
        outcomes.append(
            ExpectationOutcome(
                name=name,
                success=bool(r.success),
                observed=_observed(name, r.result, rows_in, rows_returns),
                expectation=r.expectation_config.type,
            )
        )
    return GateResult(
        passed=all(o.success for o in outcomes),
        threshold=max_quarantine_ratio,
        expectations=outcomes,
        seconds=time.perf_counter() - started,
        _context=context,
    )


def _expectations(
    rows_in: int, max_ratio: float, date_window: tuple[dt.datetime, dt.datetime], rows_returns: int = 0
) -> list[tuple[str, Any]]:
    import great_expectations.expectations as gxe

    earliest, latest = (d.strftime("%Y-%m-%d %H:%M:%S") for d in date_window)
    # Returns are neither sales nor rejects: the sales the ratio allows are the rows read, less the quarantine
    # it allows, less the returns.
    floor = min_clean_rows(rows_in, max_ratio) - rows_returns
    named: list[tuple[str, Any]] = [
        (
            "quarantine_ratio",
            gxe.ExpectTableRowCountToBeBetween(
                min_value=floor,
                notes=f"Quarantine ratio <= {max_ratio}: of {rows_in} rows read, at least {floor} are clean.",
            ),
        ),
        (
            "line_id_unique",
            # GX defines the proportion over the non-null values, so the condition changes nothing it observes
            # (line_id_not_null catches a missing key). It gives the distinct count a query of its own: GX
            # bundles every aggregate of one domain into one df.agg(), and beside other aggregates Spark hashes
            # all the keys twice; alone, it streams the cache's keys, which the dedupe left sorted within
            # partitions (spark.sql.execution.replaceHashWithSortAgg): 7.8 -> 2.1 CPU s at scale 10.
            gxe.ExpectColumnProportionOfUniqueValuesToBeBetween(
                column="line_id",
                min_value=1.0,
                max_value=1.0,
                row_condition="line_id IS NOT NULL",
                condition_parser="spark",
                notes="The line key identifies a row.",
            ),
        ),
    ]
    # The proportion form is an aggregate metric (bundled with the others, observed value included); the
    # per-row form would add a query per column for samples of unexpected values.
    named += [
        (
            f"{c}_not_null",
            gxe.ExpectColumnProportionOfNonNullValuesToBeBetween(
                column=c, min_value=1.0, max_value=1.0, notes="Never empty by the contract."
            ),
        )
        for c in NOT_NULL_COLUMNS
    ]
    named += [
        ("quantity_positive", gxe.ExpectColumnMinToBeBetween(column="quantity", min_value=1)),
        (
            "unit_price_positive",
            gxe.ExpectColumnMinToBeBetween(column="unit_price", min_value=0, strict_min=True),
        ),
        (
            "total_sales_positive",
            gxe.ExpectColumnMinToBeBetween(column="total_sales", min_value=0, strict_min=True),
        ),
        (
            "invoice_date_not_before_2000",
            gxe.ExpectColumnMinToBeBetween(column="invoice_date", min_value=earliest),
        ),
        (
            "invoice_date_not_in_future",
            gxe.ExpectColumnMaxToBeBetween(column="invoice_date", max_value=latest),
        ),
    ]
    return named


def _observed(name: str, result: dict[str, Any], rows_in: int, rows_returns: int = 0) -> Any:
    if name == "quarantine_ratio":
        clean = result.get("observed_value")
        return None if clean is None or rows_in == 0 else (rows_in - rows_returns - clean) / rows_in
    if "observed_value" in result:
        value = result["observed_value"]
        return value.isoformat() if isinstance(value, dt.date | dt.datetime) else value
    return {"unexpected_count": result.get("unexpected_count")}


def _context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,  # no usage statistics leave the job
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _site_config(directory: Path) -> dict[str, Any]:
    return {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(directory)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
