"""``retail-pipeline bench``: time the pipeline stage by stage at several scales, beside DuckDB and pandas
references of the same cleaning contract, and write ``<out>/<timestamp>.json``, ``.md`` and ``.png``."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from pathlib import Path

from retail_core.config import Settings
from retail_core.errors import InputError, PipelineError
from retail_pipeline.bench import harness, parity, report
from retail_pipeline.bench.harness import scale_label
from retail_pipeline.bench.report import measured_summary

log = logging.getLogger(__name__)

DESCRIPTION = """\
Run the pipeline on the synthetic twin at each scale, every stage a subprocess in a fresh lake and warehouse
under OUT/work/ (the global --lake and --duckdb-path are not used), and measure wall seconds, rows per second
and the peak memory of each stage's whole process tree (the Spark JVM included).

Beside the Spark transform, the same cleaning contract runs in DuckDB SQL and in pandas on the same raw CSV;
their clean rows, Σ total_sales and line_id digest must equal Spark's (exit 3 otherwise). With --incremental
(the default), one more ingest date holding about one day of sales is then transformed and built into the
warehouse, with the old partitions moved out of the lake meanwhile.

Writes OUT/<timestamp>.json (everything), OUT/<timestamp>.md (the tables and the targets) and
OUT/<timestamp>.png (seconds against rows, log-log). The benchmark is not a test: timings depend on the
machine and on what else runs on it."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench",
        help="benchmark the pipeline at several scales against DuckDB and pandas references",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--scale",
        type=parse_scales,
        default=(1.0, 10.0),
        metavar="N[,N...]",
        help="scales to run, comma-separated: N x 541,909 rows (whole numbers from 1); below 1, that fraction "
        "of the scale-1 file, e.g. 0.02 (default 1,10)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("data/bench"), help="where results go (default data/bench)"
    )
    parser.add_argument("--seed", type=int, default=42, help="synthetic generator seed (default 42)")
    parser.add_argument(
        "--skip-references", action="store_true", help="do not run the DuckDB and pandas references"
    )
    parser.add_argument(
        "--pandas-max-scale",
        type=float,
        default=10.0,
        metavar="N",
        help="skip pandas above this scale: it holds the whole file in memory (default 10)",
    )
    parser.add_argument(
        "--incremental",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after the full run, ingest, transform and build one more day into it (default on)",
    )
    parser.add_argument(
        "--pipeline-max-scale",
        type=float,
        default=10.0,
        metavar="N",
        help="time end to end as one `retail-pipeline run` up to this scale, in a lake of its own; above it, "
        "end to end is the sum of the stages (default 10)",
    )
    parser.add_argument(
        "--keep-work", action="store_true", help="keep each scale's lake, warehouse and logs under OUT/work/"
    )
    parser.set_defaults(handler=handle)


def parse_scales(text: str) -> tuple[float, ...]:
    """``1,10,100`` -> (1.0, 10.0, 100.0); below 1 any fraction, from 1 whole numbers only."""
    scales = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {part!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"a scale is positive: {part}")
        if value >= 1 and value != int(value):
            raise argparse.ArgumentTypeError(f"scales from 1 up are whole numbers: {part}")
        scales.append(value)
    if not scales:
        raise argparse.ArgumentTypeError("give at least one scale, e.g. 1,10")
    return tuple(dict.fromkeys(scales))


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run."""
    parts = ["retail-pipeline", "bench", "--scale", ",".join(scale_label(s) for s in args.scale)]
    if args.out != Path("data/bench"):
        parts += ["--out", str(args.out)]
    if args.seed != 42:
        parts += ["--seed", str(args.seed)]
    if args.skip_references:
        parts.append("--skip-references")
    if args.pandas_max_scale != 10.0:
        parts += ["--pandas-max-scale", f"{args.pandas_max_scale:g}"]
    if not args.incremental:
        parts.append("--no-incremental")
    if args.pipeline_max_scale != 10.0:
        parts += ["--pipeline-max-scale", f"{args.pipeline_max_scale:g}"]
    return " ".join(parts)


def handle(args: argparse.Namespace, settings: Settings) -> int:
    if not Path("/proc/self/status").exists():
        raise InputError("the benchmark samples memory from /proc", "no /proc here", "run it on Linux")
    config = harness.BenchConfig(
        scales=args.scale,
        out=args.out,
        seed=args.seed,
        references=not args.skip_references,
        pandas_max_scale=args.pandas_max_scale,
        incremental=args.incremental,
        keep_work=args.keep_work,
        pipeline_max_scale=args.pipeline_max_scale,
    )
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    machine = report.machine()
    command = command_line(args)
    results: list[harness.ScaleResult] = []

    def save(error: str | None = None) -> report.Written:
        data = report.to_json(
            results, config, command=command, started_at=started, machine_info=machine, error=error
        )
        return report.write(data, config.out, stamp)

    try:
        harness.run_bench(config, on_scale=lambda r: (results.append(r), save()))
    except PipelineError as exc:
        save(error=exc.one_line())
        raise
    written = save()
    _print_summary(results, written)
    failed = [(r.label, m) for r in results for m in (r.parity or [])]
    if failed:
        raise parity.ParityError([m for _, m in failed], where=str(written.json))
    return 0


def _print_summary(results: list, written) -> None:
    for r in results:
        stages = ", ".join(f"{name} {measured_summary(m)}" for name, m in r.stages.items())
        refs = ", ".join(f"{name} {measured_summary(m)}" for name, m in r.references.items())
        print(f"scale {r.label} ({r.rows_in:,} rows): {stages}")
        if refs:
            verdict = "parity ok" if not r.parity else "PARITY FAILED"
            print(f"  references: {refs}; {verdict}")
        if r.incremental:
            inc = r.incremental
            print(
                f"  incremental day ({inc['batch']['rows']:,} rows): transform + build "
                f"{inc['seconds_transform_build']:.1f} s = {inc['ratio_to_full']:.0%} of the full run"
            )
    print(f"results: {written.json}")
    print(f"table:   {written.markdown}")
    if written.chart:
        print(f"chart:   {written.chart}")
