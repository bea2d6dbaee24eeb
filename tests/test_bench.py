"""Pure helpers of scripts/bench.py (no timing, no TensorFlow)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"
_SPEC = importlib.util.spec_from_file_location("ws_bench", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def test_ratio() -> None:
    assert bench.ratio(3.0, 2.0) == 1.5
    assert math.isnan(bench.ratio(1.0, 0.0))


def test_fmt_and_table() -> None:
    assert bench.fmt(None) == "—"
    assert bench.fmt(True) == "yes"
    assert bench.fmt(float("nan")) == "n/a"
    assert bench.fmt(0.12345, 2) == "0.12"
    assert bench.table(["a", "b"], [[1, 0.5], ["x", None]]) == (
        "| a | b |\n|---|---|\n| 1 | 0.500 |\n| x | — |"
    )


def test_best_so_far_and_value_at() -> None:
    curve = bench.best_so_far([(10, None), (10, 0.5), (5, 0.4), (10, 0.7)])
    assert curve == [(20, 0.5), (25, 0.5), (35, 0.7)]
    assert bench.value_at(curve, 10) is None
    assert bench.value_at(curve, 30) == 0.5
    assert bench.value_at(curve, 35) == 0.7


def test_median_epoch_time_skips_the_first_epoch() -> None:
    marks = [(0.0, 5.0), (5.0, 6.0), (6.0, 8.0), (8.0, 9.0)]
    assert bench.median_epoch_time(marks) == pytest.approx(1.0)
    assert math.isnan(bench.median_epoch_time(marks[:1]))


def test_verdict() -> None:
    assert bench.verdict(True) == "**met**"
    assert bench.verdict(False) == "**not met**"
    assert bench.verdict(None) == "**not assessed**"
