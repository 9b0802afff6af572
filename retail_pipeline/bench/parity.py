"""Do the references clean exactly as Spark does? Rows in, clean rows, Σ total_sales (exact), the line_id digest
and the quarantine counts by reason, compared engine by engine.

Spark's side is read from what the job published (the processed TSV files, through DuckDB), not from its own
counters; its run report must agree with its files too.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from retail_core import dialect, layout
from retail_core.errors import QualityGateError
from retail_core.lake import LocalLake
from retail_pipeline.bench.references import CleanFigures, line_id_digest

COMPARED: tuple[str, ...] = (
    "rows_in",
    "rows_clean",
    "rows_returns",
    "total_sales",
    "line_id_digest",
    "by_reason",
)


@dataclass(frozen=True)
class Mismatch:
    """One figure on which an engine disagrees with Spark."""

    engine: str
    figure: str
    spark: object
    found: object

    def __str__(self) -> str:
        return f"{self.engine} {self.figure} {self.found} != spark {self.spark}"

    def to_json(self) -> dict[str, str]:
        return {
            "engine": self.engine,
            "figure": self.figure,
            "spark": str(self.spark),
            "found": str(self.found),
        }


class ParityError(QualityGateError):
    """A reference disagrees with Spark: it is no longer an honest baseline (or one of them has a bug)."""

    def __init__(self, mismatches: Sequence[Mismatch], where: str) -> None:
        self.mismatches = list(mismatches)
        super().__init__(
            f"the references do not clean as Spark does: {describe(mismatches)}",
            where,
            "compare the clean rows of each engine (--keep-work keeps them); the rules live in glue/cleaning.py",
        )


def compare(spark: CleanFigures, other: CleanFigures) -> list[Mismatch]:
    """Every compared figure on which ``other`` differs from ``spark``."""
    return [
        Mismatch(other.engine, name, getattr(spark, name), getattr(other, name))
        for name in COMPARED
        if getattr(spark, name) != getattr(other, name)
    ]


def compare_all(spark: CleanFigures, others: Sequence[CleanFigures]) -> list[Mismatch]:
    return [m for other in others for m in compare(spark, other)]


def check(spark: CleanFigures, others: Sequence[CleanFigures], *, where: str = "") -> None:
    """ParityError naming every difference, if there is one."""
    mismatches = compare_all(spark, others)
    if mismatches:
        raise ParityError(mismatches, where)


def describe(mismatches: Sequence[Mismatch]) -> str:
    return "; ".join(str(m) for m in mismatches)


def spark_figures(lake_root: Path, ingest_date: dt.date) -> CleanFigures:
    """What the Spark job published for ``ingest_date`` in the local lake at ``lake_root``.

    Counts and sums are read from the processed part files; the run report gives rows in and the reasons, and
    must agree with the files (a ParityError names it otherwise)."""
    import duckdb

    report = json.loads((lake_root / layout.run_report_key(ingest_date)).read_text(encoding="utf-8"))
    files = LocalLake(lake_root).partition_files(layout.processed_prefix(ingest_date)) or []
    columns = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in dialect.PROCESSED_COLUMNS) + "}"
    paths = ", ".join("'" + str(lake_root / key).replace("'", "''") + "'" for key in files)
    returns = LocalLake(lake_root).partition_files(layout.returns_prefix(ingest_date)) or []
    with duckdb.connect() as con:
        con.execute("set enable_progress_bar = false")
        rows, total, prefixes = con.execute(
            "select count(*), coalesce(sum(cast(total_sales as decimal(38, 3))), 0), "
            "coalesce(sum(('0x' || substr(line_id, 1, 16))::ubigint), 0) "
            f"from read_csv([{paths}], columns = {columns}, {dialect.duckdb_read_options()})"
        ).fetchone()
        returned = 0
        if returns:
            listed = ", ".join("'" + str(lake_root / key).replace("'", "''") + "'" for key in returns)
            (returned,) = con.execute(
                f"select count(*) from read_csv([{listed}], columns = {columns}, {dialect.duckdb_read_options()})"
            ).fetchone()
    figures = CleanFigures(
        engine="spark",
        rows_in=int(report["rows_in"]),
        rows_clean=int(rows),
        total_sales=Decimal(total).quantize(Decimal("0.001")),
        line_id_digest=line_id_digest(int(prefixes)),
        by_reason={r: int(n) for r, n in report.get("quarantined_by_reason", {}).items() if n},
        seconds=float(report.get("timings_s", {}).get("total", 0.0)),
        rows_returns=int(returned),
    )
    reported = CleanFigures(
        engine="spark run report",
        rows_in=figures.rows_in,
        rows_clean=int(report["rows_clean"]),
        total_sales=Decimal(str(report.get("total_sales") or "0")).quantize(Decimal("0.001")),
        line_id_digest=figures.line_id_digest,
        by_reason=figures.by_reason,
        rows_returns=int(report.get("rows_returns", 0)),
    )
    check(figures, [reported], where=str(lake_root / layout.processed_prefix(ingest_date)))
    return figures
