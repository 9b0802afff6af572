"""The run page: one self-contained HTML file per run, beside the run report in the lake's ``quality/`` zone.

Figures in, a string out; the stages do the I/O. The transform writes the page when its run report is written (a
run whose gate failed has nothing else to show); the build rewrites it once gold is published, adding gold's rows
and the monthly net revenue chart.

Self-contained means it renders with no network: the CSS is inline, the chart is inline SVG, there is no script,
font or image from elsewhere. The only links are to the run's other artifacts (Data Docs, dbt docs, the JSON run
report), which a reader follows by choice. Every value that comes from data is escaped.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from html import escape
from typing import Any

from retail_core import layout

# The run report's status -> (tone, what the badge says); an unknown status keeps its own word.
_STATUS = {
    "succeeded": ("ok", "succeeded"),
    "failed_gate": ("bad", "quality gate failed"),
    "failed": ("bad", "failed"),
    "failed_conservation": ("bad", "counts do not reconcile"),
}


@dataclass(frozen=True)
class MonthlyRevenue:
    """One month of gold.monthly_revenue, summed over countries. Returns are negative."""

    month: dt.date
    gross: Decimal
    returns: Decimal
    net: Decimal
    orders: int


@dataclass(frozen=True)
class GoldFigures:
    """Published gold as a build left it: rows per table and net revenue per month.

    published: this build published gold (False: nothing new, gold is as the last build left it)."""

    rows: Mapping[str, int]
    monthly: Sequence[MonthlyRevenue] = ()
    published: bool = True


@dataclass(frozen=True)
class PageLinks:
    """Where the run's other artifacts are, as the page links them (relative to the page, or absolute URIs)."""

    data_docs: str | None = None
    dbt_docs: str | None = None
    run_report: str | None = layout.RUN_REPORT_NAME
    extra: Mapping[str, str] = field(default_factory=dict)


def render(
    report: Mapping[str, Any],
    *,
    run_id: str,
    gold: GoldFigures | None = None,
    links: PageLinks | None = None,
    generated_at: dt.datetime | None = None,
    build_error: str | None = None,
) -> str:
    """The page for one run: ``report`` is the transform's run report (``run_report.json``), ``gold`` what the
    build published (None: the build has not run yet, or the run stopped before it), ``build_error`` why the
    build did not publish (its dbt tests failed)."""
    links = links or PageLinks()
    generated_at = generated_at or dt.datetime.now(dt.UTC)
    status = str(report.get("status", "unknown"))
    tone, word = _STATUS.get(status, ("warn", status))
    title = f"Online Retail run {report.get('ingest_date', '?')}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f'<h1>{escape(title)} <span class="badge {tone}">{escape(word)}</span></h1>',
        '<p class="meta">',
        f"dataset <b>{escape(str(report.get('dataset', layout.DATASET)))}</b> · ingest date "
        f"<b>{escape(str(report.get('ingest_date', '?')))}</b> · run <code>{escape(run_id)}</code> · "
        f"transform run <code>{escape(str(report.get('run_id', '?')))}</code> · written "
        f"{escape(generated_at.isoformat(timespec='seconds'))}</p>",
    ]
    if report.get("error"):
        parts.append(f'<p class="error">error: {escape(str(report["error"]))}</p>')
    parts += _rows_section(report)
    parts += _gate_section(report.get("gate") or {})
    parts += _gold_section(gold, build_error)
    parts += _links_section(links)
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


# --- sections ----------------------------------------------------------------------------------------------------


def _rows_section(report: Mapping[str, Any]) -> list[str]:
    rows_in = int(report.get("rows_in") or 0)
    clean = int(report.get("rows_clean") or 0)
    returns = int(report.get("rows_returns") or 0)
    quarantined = int(report.get("rows_quarantined") or 0)
    reconciled = clean + returns + quarantined == rows_in
    out = [
        '<section id="rows"><h2>Rows</h2>',
        _split_bar(rows_in, [("clean", clean), ("returns", returns), ("quarantined", quarantined)]),
        "<table>",
        _tr("rows in", _count(rows_in)),
        _tr("clean (processed-data/)", _count(clean), _share(clean, rows_in)),
        _tr("returns (returns/)", _count(returns), _share(returns, rows_in)),
        _tr("quarantined (quarantine/)", _count(quarantined), _share(quarantined, rows_in)),
    ]
    for reason, count in sorted(
        (report.get("quarantined_by_reason") or {}).items(), key=lambda item: (-item[1], item[0])
    ):
        out.append(_tr(f"&nbsp;&nbsp;{escape(str(reason))}", _count(count), _share(count, rows_in), raw=True))
    out.append("</table>")
    verdict = '<span class="ok">ok</span>' if reconciled else '<span class="bad">MISMATCH</span>'
    out.append(
        f'<p id="reconcile">rows in = clean + returns + quarantined: {_count(rows_in)} = {_count(clean)} + '
        f"{_count(returns)} + {_count(quarantined)} ({verdict})</p>"
    )
    if report.get("total_sales") is not None:
        out.append(
            f"<p>Σ total_sales of the clean rows {_gbp(report.get('total_sales'))}; of the returns "
            f"{_gbp(report.get('returns_total_sales'))}.</p>"
        )
    out.append("</section>")
    return out


def _gate_section(gate: Mapping[str, Any]) -> list[str]:
    out = ['<section id="gate"><h2>Quality gate</h2>']
    if not gate:
        return [*out, "<p>The gate did not run.</p></section>"]
    passed = bool(gate.get("passed"))
    verdict = '<span class="ok">passed</span>' if passed else '<span class="bad">failed</span>'
    out.append(
        f"<p>{verdict}: every expectation must hold; the largest quarantined share allowed is "
        f"{_percent(gate.get('threshold'))}.</p>"
    )
    out.append("<table><tr><th>expectation</th><th>result</th><th>observed</th><th>check</th></tr>")
    for item in gate.get("expectations") or []:
        ok = bool(item.get("success"))
        # A check the gate did not evaluate (a column check on a batch without clean rows) passed nothing.
        note = item.get("note")
        result, css = ("– not evaluated", "na") if note else ("✓ pass", "ok") if ok else ("✗ fail", "bad")
        observed = str(note).removeprefix("not evaluated: ") if note else _observed(item.get("observed"))
        out.append(
            f"<tr><td>{escape(str(item.get('name', '')))}</td>"
            f'<td class="{css}">{result}</td>'
            f"<td><code>{escape(observed)}</code></td>"
            f"<td><code>{escape(str(item.get('expectation', '')))}</code></td></tr>"
        )
    out.append("</table></section>")
    return out


def _gold_section(gold: GoldFigures | None, build_error: str | None) -> list[str]:
    out = ['<section id="gold"><h2>Gold</h2>']
    if build_error:
        out.append(f'<p class="error">build: {escape(build_error)}</p>')
        out.append("<p>Gold was not published: it stays as the last good build left it.</p></section>")
        return out
    if gold is None:
        out.append(
            "<p>Not built by this run yet: the build rewrites this page when it publishes gold. A run whose "
            "transform failed publishes nothing, and gold stays as the last good build left it.</p></section>"
        )
        return out
    out.append(
        "<p>Published by this run.</p>"
        if gold.published
        else "<p>Nothing new to publish: gold is as the last build left it.</p>"
    )
    out.append("<table><tr><th>table</th><th>rows</th></tr>")
    for table in [t for t in layout.GOLD_PUBLISHED if t in gold.rows] + sorted(
        set(gold.rows) - set(layout.GOLD_PUBLISHED)
    ):
        out.append(f'<tr><td>gold.{escape(table)}</td><td class="num">{_count(gold.rows[table])}</td></tr>')
    out.append("</table></section>")
    out += _revenue_section(gold.monthly)
    return out


def _revenue_section(monthly: Sequence[MonthlyRevenue]) -> list[str]:
    out = ['<section id="revenue"><h2>Monthly net revenue</h2>']
    if not monthly:
        return [*out, "<p>gold.monthly_revenue has no rows.</p></section>"]
    gross = sum((m.gross for m in monthly), Decimal(0))
    returned = sum((m.returns for m in monthly), Decimal(0))
    out.append(
        f"<p>From gold.monthly_revenue, all countries: gross {_gbp(gross)}, returns {_gbp(returned)}, "
        f"net {_gbp(gross + returned)}.</p>"
    )
    out.append(revenue_chart(monthly))
    out.append(
        "<details><summary>the figures</summary><table><tr><th>month</th><th>gross £</th><th>returns £</th>"
        "<th>net £</th><th>orders</th></tr>"
    )
    for m in monthly:
        out.append(
            f'<tr><td>{m.month:%Y-%m}</td><td class="num">{_money(m.gross)}</td>'
            f'<td class="num">{_money(m.returns)}</td><td class="num">{_money(m.net)}</td>'
            f'<td class="num">{_count(m.orders)}</td></tr>'
        )
    out.append("</table></details></section>")
    return out


def _links_section(links: PageLinks) -> list[str]:
    items = []
    named = [
        ("Great Expectations Data Docs of the gate", links.data_docs),
        ("dbt docs (the warehouse's map; `dbt docs serve` serves them)", links.dbt_docs),
        ("the run report (JSON)", links.run_report),
        *links.extra.items(),
    ]
    for label, href in named:
        if href:
            items.append(f'<li><a href="{escape(href, quote=True)}">{escape(label)}</a></li>')
    if not items:
        return []
    return ['<section id="links"><h2>Links</h2><ul>', *items, "</ul></section>"]


# --- the chart ---------------------------------------------------------------------------------------------------

_W, _H = 860, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 10, 16, 46


def revenue_chart(monthly: Sequence[MonthlyRevenue]) -> str:
    """Inline SVG: per month a bar of gross sales up, a bar of returns down, and the net as a line of dots.

    Each bar and dot carries a ``<title>``, which browsers show on hover with no script."""
    top = max([m.gross for m in monthly] + [m.net for m in monthly] + [Decimal(0)])
    bottom = min([m.returns for m in monthly] + [m.net for m in monthly] + [Decimal(0)])
    span = float(top - bottom) or 1.0
    plot_h = _H - _TOP - _BOTTOM
    plot_w = _W - _LEFT - _RIGHT
    step = plot_w / len(monthly)
    bar = max(2.0, step * 0.6)

    def y(value: Decimal) -> float:
        return _TOP + plot_h * float(top - value) / span

    zero = y(Decimal(0))
    out = [
        f'<svg id="revenue-chart" role="img" viewBox="0 0 {_W} {_H}" width="100%" '
        'xmlns="http://www.w3.org/2000/svg" aria-label="gross sales, returns and net revenue per month">'
    ]
    for tick in _ticks(float(bottom), float(top)):
        ty = y(Decimal(str(tick)))
        out.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" class="grid"/>'
            f'<text x="{_LEFT - 6}" y="{ty + 4:.1f}" class="axis" text-anchor="end">{_short_money(tick)}</text>'
        )
    label_every = max(1, round(len(monthly) / 14))
    points = []
    for i, m in enumerate(monthly):
        x = _LEFT + step * i + (step - bar) / 2
        centre = x + bar / 2
        gross_y = y(m.gross)
        returns_y = y(m.returns)
        label = f"{m.month:%Y-%m}"
        out.append(
            f'<rect class="gross" x="{x:.1f}" y="{gross_y:.1f}" width="{bar:.1f}" '
            f'height="{max(0.0, zero - gross_y):.1f}"><title>{label} gross {_gbp(m.gross)}</title></rect>'
            f'<rect class="returns" x="{x:.1f}" y="{zero:.1f}" width="{bar:.1f}" '
            f'height="{max(0.0, returns_y - zero):.1f}"><title>{label} returns {_gbp(m.returns)}</title></rect>'
        )
        points.append((centre, y(m.net), f"{label} net {_gbp(m.net)}"))
        if i % label_every == 0:
            out.append(
                f'<text x="{centre:.1f}" y="{_H - _BOTTOM + 16}" class="axis" text-anchor="middle">{label}</text>'
            )
    out.append(f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{zero:.1f}" y2="{zero:.1f}" class="zero"/>')
    out.append(
        '<polyline class="net" points="' + " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points) + '"/>'
    )
    for px, py, tip in points:
        out.append(f'<circle class="net" cx="{px:.1f}" cy="{py:.1f}" r="3.5"><title>{tip}</title></circle>')
    legend_y = _H - 10
    out.append(
        f'<rect class="gross" x="{_LEFT}" y="{legend_y - 9}" width="12" height="10"/>'
        f'<text x="{_LEFT + 16}" y="{legend_y}" class="axis">gross sales</text>'
        f'<rect class="returns" x="{_LEFT + 110}" y="{legend_y - 9}" width="12" height="10"/>'
        f'<text x="{_LEFT + 126}" y="{legend_y}" class="axis">returns</text>'
        f'<circle class="net" cx="{_LEFT + 206}" cy="{legend_y - 4}" r="4"/>'
        f'<text x="{_LEFT + 216}" y="{legend_y}" class="axis">net revenue</text>'
    )
    out.append("</svg>")
    return "".join(out)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round gridline values from ``low`` to ``high`` (1, 2 or 5 times a power of ten apart), zero included."""
    span = high - low
    if span <= 0:
        return [0.0]
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = int(low // step) * step
    ticks = []
    value = first
    while value <= high + 1e-9:
        if value >= low - 1e-9:
            ticks.append(round(value, 6))
        value += step
    return ticks


# --- pieces ------------------------------------------------------------------------------------------------------


def _split_bar(total: int, parts: Sequence[tuple[str, int]]) -> str:
    """One horizontal bar split by share; a part too thin to see still gets its title."""
    if total <= 0:
        return ""
    cells = []
    for name, count in parts:
        width = 100 * count / total
        cells.append(
            f'<span class="{name}" style="width:{width:.3f}%" title="{name} {_count(count)}"></span>'
        )
    return f'<div class="split">{"".join(cells)}</div>'


def _tr(label: str, value: str, share: str = "", *, raw: bool = False) -> str:
    shown = label if raw else escape(label)
    return f'<tr><td>{shown}</td><td class="num">{value}</td><td class="num">{share}</td></tr>'


def _count(value: Any) -> str:
    return f"{int(value):,}"


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.2%}" if whole else "-"


def _percent(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2%}"


def _money(value: Any) -> str:
    if value is None:
        return "-"
    return f"{Decimal(str(value)):,.2f}"


def _gbp(value: Any) -> str:
    """An amount in pounds, the sign before the symbol: -£1,234.50."""
    text = _money(value)
    return f"-£{text[1:]}" if text.startswith("-") else f"£{text}"


def _short_money(value: float) -> str:
    sign = "-" if value < 0 else ""
    for limit, suffix in ((1e9, "bn"), (1e6, "m"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{sign}£{abs(value) / limit:g}{suffix}"
    return f"{sign}£{abs(value):g}"


def _observed(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= 120 else text[:119] + "…"


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;background:#f6f7f9;margin:0}
main{max-width:920px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:0 0 10px}
section{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:16px 20px;margin:16px 0}
.meta{color:#5b6474;margin:0}code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace}
table{border-collapse:collapse;width:100%}td,th{padding:4px 8px;border-bottom:1px solid #eef0f3;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{font-size:13px;padding:2px 8px;border-radius:10px;vertical-align:middle;color:#fff}
span.ok,td.ok{color:#1a7f37;font-weight:600}span.bad,td.bad{color:#cf222e;font-weight:600}
span.badge.ok{background:#1a7f37;color:#fff}span.badge.bad{background:#cf222e;color:#fff}
span.badge.warn{background:#9a6700;color:#fff}
td.na{color:#5b6474}td code{word-break:break-all}td.ok,td.bad,td.na{white-space:nowrap}
.error{background:#ffebe9;border:1px solid #ff8182;padding:8px 12px;border-radius:6px}
.split{display:flex;height:18px;border-radius:4px;overflow:hidden;margin:0 0 12px;background:#eef0f3}
.split .clean{background:#2f81f7}.split .returns{background:#d4a72c}.split .quarantined{background:#cf222e}
svg .grid{stroke:#eef0f3}svg .zero{stroke:#5b6474}svg .axis{font-size:11px;fill:#5b6474}
svg rect.gross{fill:#9ec5fe}svg rect.returns{fill:#f4a6a6}
svg polyline.net{fill:none;stroke:#1d2330;stroke-width:1.5}svg circle.net{fill:#1d2330}
"""
