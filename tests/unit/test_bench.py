"""The benchmark's small parts: its flags, the parity check, the memory
sampler and the target verdicts. (tests/integration/test_bench.py runs the whole thing.)"""

from __future__ import annotations

import argparse
import subprocess
import sys
from decimal import Decimal

import pytest

from retail_pipeline.bench import harness, parity, references, report
from retail_pipeline.commands.bench import parse_scales


def test_scales_are_a_comma_list_of_whole_numbers_or_fractions_below_one():
    assert parse_scales("1,10,100") == (1.0, 10.0, 100.0)
    assert parse_scales("0.01, 1") == (0.01, 1.0)
    for bad in ("1.5", "0", "-1", "x", "1,,10"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_scales(bad)


FIGURES = references.CleanFigures(
    engine="spark",
    rows_in=10,
    rows_clean=8,
    total_sales=Decimal("20.400"),
    line_id_digest="00000000000000ff",
    by_reason={"duplicate": 2},
)


def test_parity_passes_for_equal_figures_whatever_the_timing():
    same = references.CleanFigures.from_json(
        {**FIGURES.to_json(), "engine": "duckdb", "seconds": 3.0, "total_sales": "20.4"}
    )
    parity.check(FIGURES, [same])


def test_parity_names_the_engine_and_every_figure_that_differs():
    tampered = references.CleanFigures(
        engine="pandas",
        rows_in=10,
        rows_clean=8,
        total_sales=Decimal("20.401"),
        line_id_digest="00000000000000fe",
        by_reason={"duplicate": 1, "malformed_row": 1},
    )
    with pytest.raises(parity.ParityError) as failed:
        parity.check(FIGURES, [tampered], where="scale 1")
    message = str(failed.value)
    assert "pandas total_sales 20.401 != spark 20.400" in message
    assert {m.figure for m in failed.value.mismatches} == {"total_sales", "line_id_digest", "by_reason"}
    assert failed.value.exit_code == 3
    assert "\n" not in message


def test_the_line_id_digest_is_the_sum_of_64_bit_prefixes_modulo_2_to_the_64():
    assert references.line_id_digest(2**64 + 5) == "0000000000000005"


def test_the_sampler_counts_the_memory_of_grandchildren_too():
    """The Spark JVM is a child of the Python process the benchmark starts: the tree must be sampled."""
    grandchild = "import time; block = bytearray(300 * 1024 * 1024); sum(range(10**7)); time.sleep(1)"
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}])"
    process = subprocess.Popen([sys.executable, "-c", child])
    with harness.TreeSampler(process.pid, interval=0.05) as sampler:
        process.wait()
    assert sampler.peak > 300 * 1024 * 1024
    assert sampler.samples > 5
    assert sampler.cpu_seconds > 0.1  # the grandchild's loop


def _scale(
    scale: float,
    end_to_end: float,
    transform: float,
    duckdb: float,
    peak_gib: float = 1.0,
    gate: float = 1.0,
    dbt: tuple[float, float] = (1.0, 2.0),
):
    result = harness.ScaleResult(scale=scale, rows_in=int(scale * 541_909))
    peak = int(peak_gib * harness.GIB)
    result.stages = {
        "generate": harness.Measured(seconds=1.0, rows=1, peak_rss_bytes=peak),
        "transform": harness.Measured(seconds=transform, rows=1, peak_rss_bytes=peak),
        "gate": harness.Measured(seconds=gate, rows=1),
        "build": harness.Measured(seconds=end_to_end - transform - 1.0, rows=1, peak_rss_bytes=peak),
        "end_to_end": harness.Measured(seconds=end_to_end, rows=1, peak_rss_bytes=peak),
    }
    result.references = {"duckdb": harness.Measured(seconds=duckdb, rows=1)}
    result.dbt = {"tests_s": dbt[0], "models_s": dbt[1]}
    return result


def test_every_target_is_a_ratio_of_this_run_judged_only_where_measured():
    verdicts = {
        t["name"]: t["met"]
        for t in report.targets(
            [
                _scale(1, 19.0, 12.0, 3.0, gate=1.0, dbt=(3.0, 2.0)),
                _scale(10, 60.0, 30.0, 15.0, peak_gib=3.0, gate=6.0, dbt=(5.0, 9.0)),
            ]
        )
    }
    assert verdicts == {
        "end_to_end": True,  # 19 s / 3 s = 6.3 x <= 8
        "spark_over_duckdb_10": True,  # 30 / 15 = 2 x <= 2.5
        "spark_over_duckdb_100": None,  # not measured
        "gate_share_1": True,  # 1 of 12 s = 8% <= 15%
        "gate_share_10": False,  # 6 of 30 s = 20%
        "dbt_tests_over_models_1": False,  # 3 s of tests for 2 s of models
        "dbt_tests_over_models_10": True,
        "scale_100": None,
        "incremental": None,
    }


def test_the_scale_100_target_needs_both_the_ratio_and_the_memory():
    ten = _scale(10, 60.0, 30.0, 15.0, peak_gib=3.0)
    fits = {t["name"]: t for t in report.targets([ten, _scale(100, 600.0, 300.0, 150.0, peak_gib=5.0)])}
    assert fits["scale_100"]["met"] is True and fits["scale_100"]["peak_gib"] == 5.0
    assert fits["scale_100"]["ratio"] == 10.0  # the three stages summed: 600 / 60
    assert fits["spark_over_duckdb_100"]["met"] is True
    too_big = {t["name"]: t for t in report.targets([ten, _scale(100, 600.0, 300.0, 150.0, peak_gib=6.5)])}
    assert too_big["scale_100"]["met"] is False
    numbered = [t["target"] for t in report.targets([ten])]
    assert numbered == list(range(1, len(numbered) + 1))


def test_the_end_to_end_row_names_what_was_timed():
    """Up to --pipeline-max-scale end to end is one `retail-pipeline run`; above it, the three stages' sum."""
    timed = harness.Measured(seconds=20.0, rows=10).to_json()
    summed = harness.Measured(seconds=90.0, rows=10, note=harness.STAGES_SUMMED_NOTE).to_json()
    assert report.engine_of("end_to_end", timed) == "`retail-pipeline run`"
    assert report.engine_of("end_to_end", summed) == "the three stages summed"
    assert report.engine_of("duckdb", timed) == "DuckDB SQL"
