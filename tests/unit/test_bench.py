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


def _scale(scale: float, end_to_end: float, transform: float, duckdb: float, peak_gib: float = 1.0):
    result = harness.ScaleResult(scale=scale, rows_in=int(scale * 541_909))
    peak = int(peak_gib * harness.GIB)
    result.stages = {
        "transform": harness.Measured(seconds=transform, rows=1, peak_rss_bytes=peak),
        "end_to_end": harness.Measured(seconds=end_to_end, rows=1, peak_rss_bytes=peak),
    }
    result.references = {"duckdb": harness.Measured(seconds=duckdb, rows=1)}
    return result


def test_targets_are_judged_on_the_scales_they_name_and_left_open_otherwise():
    verdicts = {
        t["target"]: t["met"]
        for t in report.targets([_scale(1, 19.0, 12.0, 1.0), _scale(10, 60.0, 30.0, 6.0, peak_gib=3.0)])
    }
    assert verdicts == {1: True, 2: False, 3: None, 4: None}  # 30 s / 6 s = 5 x DuckDB

    verdicts = {
        t["target"]: t["met"]
        for t in report.targets([_scale(10, 60.0, 20.0, 6.0), _scale(100, 700.0, 210.0, 60.0, peak_gib=5.0)])
    }
    assert verdicts == {1: None, 2: True, 3: True, 4: None}
