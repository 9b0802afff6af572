"""Published gold's figures for the run page, read through dbt so that DuckDB and Redshift answer the same way.

``dbt run-operation gold_figures`` (macros/gold_figures.sql) counts the rows of each gold table and sums
gold.monthly_revenue per month, then logs one JSON line, which :func:`parse` reads: the task image has no DuckDB
and the local warehouse no Redshift driver, so neither side queries the warehouse from Python.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal

from retail_core import layout
from retail_core.config import Settings
from retail_core.errors import InputError
from retail_core.run_page import GoldFigures, MonthlyRevenue
from warehouse import project

MARKER = "retail-gold-figures: "  # macros/gold_figures.sql logs it before the JSON


def gold_figures(settings: Settings, *, target: str, run_id: str, published: bool) -> GoldFigures:
    """Rows per published gold table and net revenue per month, as the warehouse of ``target`` has them."""
    args = {"tables": list(layout.GOLD_PUBLISHED), "gold_schema": layout.GOLD_SCHEMA}
    messages = project.run_operation(
        ["run-operation", "gold_figures", "--args", json.dumps(args)],
        project.dbt_env(settings, run_id=run_id),
        target,
    )
    return parse(messages, published=published, where=f"dbt run-operation gold_figures (target {target})")


def parse(messages: Sequence[str], *, published: bool, where: str = "gold_figures") -> GoldFigures:
    """The figures from the operation's logged line; an InputError when it logged none or a malformed one."""
    found = [m[len(MARKER) :] for m in messages if m.startswith(MARKER)]
    if len(found) != 1:
        raise InputError("the warehouse did not report gold's figures", where, "see the dbt log above")
    try:
        figures = json.loads(found[0])
        rows = {str(table): int(count) for table, count in figures["rows"].items()}
        monthly = tuple(
            MonthlyRevenue(
                month=dt.date.fromisoformat(month),
                gross=Decimal(gross),
                returns=Decimal(returned),
                net=Decimal(net),
                orders=int(orders),
            )
            for month, gross, returned, net, orders in figures["monthly"]
        )
    except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
        raise InputError(f"gold's figures are malformed: {exc}", where, "see the dbt log above") from None
    return GoldFigures(rows=rows, monthly=monthly, published=published)
