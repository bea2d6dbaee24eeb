"""Pure helpers of scripts/bench.py and scripts/bench_quality.py (no timing, no TensorFlow)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

_PATH = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"
_SPEC = importlib.util.spec_from_file_location("ws_bench", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)
sys.path.insert(0, str(_PATH.parent))
import bench_quality as quality  # noqa: E402


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


# ---- B3: replaying the median pruner ------------------------------------------------------
def _flat(value: float, steps: int = 4) -> dict[int, float]:
    return dict.fromkeys(range(steps), value)


# Trials 0-4 are the pruner's startup trials (trial 0 is as bad as trial 5 but comes first,
# so it survives); the median of their values at every step is 0.7. Trial 5 is bad
# throughout; trial 6 is a slow starter that ends best (0.95); trial 7 is good (0.85).
REPLAY_TRIALS = [
    (_flat(0.1), 0.1), (_flat(0.6), 0.6), (_flat(0.7), 0.7), (_flat(0.8), 0.8),
    (_flat(0.9), 0.9), (_flat(0.1), 0.1), ({0: 0.0, 1: 0.0, 2: 0.0, 3: 0.95}, 0.95),
    (_flat(0.85), 0.85),
]


def test_replay_median_pruner_known_answer() -> None:
    out = {r["warmup"]: r for r in bench.replay_median_pruner(REPLAY_TRIALS, (0, 1, 2, 3, 5))}
    # w = 0..2: trials 5 and 6 are stopped at step w (w + 1 of 4 steps run each)
    for w in (0, 1, 2):
        r = out[w]
        assert r["killed"] == 2
        assert r["steps_run"] == 6 * 4 + 2 * (w + 1)
        assert r["saved"] == pytest.approx(2 * (3 - w) / 32)
        assert r["killed_top"] == 1  # the slow starter, the best trial of all
        assert r["best_kept"] == pytest.approx(0.9)
        assert r["best_lost"] == pytest.approx(0.05)
    # w = 3: the first check is at the last step: trial 5 is still killed (saving nothing),
    # the slow starter's 0.95 there beats the median
    assert (out[3]["killed"], out[3]["saved"], out[3]["killed_top"]) == (1, 0.0, 0)
    assert out[3]["best_lost"] == pytest.approx(0.0)
    # w beyond the last step: nothing is pruned
    assert (out[5]["killed"], out[5]["steps_run"], out[5]["best_lost"]) == (0, 32, 0.0)


def test_replay_needs_completed_startup_trials() -> None:
    # with 8 startup trials the pruner never acts on 8 trials
    out = bench.replay_median_pruner(REPLAY_TRIALS, (0,), n_startup_trials=8)
    assert out[0]["killed"] == 0 and out[0]["saved"] == 0.0
    # order matters: with the good trial 7 among the startup trials instead of the bad
    # trial 0, which now comes last, trial 0 is killed too (median of 0.6-0.9 and 0.85)
    t = REPLAY_TRIALS
    moved = [t[1], t[2], t[3], t[4], t[7], t[5], t[6], t[0]]
    out = bench.replay_median_pruner(moved, (0,), n_startup_trials=5)
    assert out[0]["killed"] == 3
    assert out[0]["steps_run"] == 5 * 4 + 3


# ---- B8: FLOP formula, B3/B4/B10: counting epochs -----------------------------------------
def test_mlp_kernel_params_and_flops() -> None:
    # 12 → 64 → 64 → 5: 12·64 + 64·64 + 64·5
    assert bench.mlp_kernel_params(12, 64, 2, 5) == 768 + 4096 + 320
    assert bench.mlp_kernel_params(12, 64, 1, 5) == 768 + 320
    assert bench.train_flops(5184, 48_000, 8) == 6 * 5184 * 48_000 * 8


def _trial(steps: int, **attrs: object) -> SimpleNamespace:
    return SimpleNamespace(intermediate_values=dict.fromkeys(range(steps), 0.5),
                           user_attrs=dict(attrs))


def test_trial_epochs() -> None:
    assert bench.trial_epochs(_trial(0, epochs_run=[3, 4, 5]), folds=3) == 12
    assert bench.trial_epochs(_trial(7), folds=3) == 7  # pruned, folds one after another
    assert bench.trial_epochs(_trial(7, parallel_folds=True), folds=3) == 21  # side by side
    assert bench.trial_epochs(_trial(7, parallel_folds=False), folds=3) == 7
    assert bench.trial_epochs(_trial(7, parallel_folds=True)) == 7  # folds unknown


def test_sub_env_puts_the_tree_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = bench.sub_env(Path("/some/tree"), EXTRA="1")
    assert env["PYTHONPATH"].split(":") == ["/some/tree", "/elsewhere"]
    assert env["EXTRA"] == "1"
    monkeypatch.delenv("PYTHONPATH")
    assert bench.sub_env()["PYTHONPATH"] == str(bench.ROOT)


# ---- BENCHMARKS.md merged from two scripts -------------------------------------------------
_OLD = """# Benchmarks

- Date: old

## Summary

| id | figure | target | result | verdict |
|---|---|---|---|---|
| B1 | one | t | old B1 | **met** |
| B7 | seven | t | old B7 | **not met** |
| B10 | ten | t | old B10 | **met** |

## B1: one

old B1 text

## B7: seven

old B7 text

| a | b |
|---|---|

## B10: ten

old B10 text
"""


def test_merge_report_keeps_other_sections_and_orders_by_number() -> None:
    new = """## Summary

| id | figure | target | result | verdict |
|---|---|---|---|---|
| B9 | nine | t | new B9 | **not assessed** |
| B7 | seven | t | new B7 | **met** |

## B9: nine

new B9 text

## B7: seven

new B7 text
"""
    merged = bench.merge_report(_OLD, new)
    head, rows, sections = bench.split_report(merged)
    assert head == "# Benchmarks\n\n- Date: old"  # new has no head: the old one stays
    assert list(rows) == ["B1", "B7", "B9", "B10"]
    assert rows["B7"] == "| B7 | seven | t | new B7 | **met** |"
    assert rows["B1"] == "| B1 | one | t | old B1 | **met** |"
    assert list(sections) == ["B1", "B7", "B9", "B10"]
    assert sections["B7"] == "## B7: seven\n\nnew B7 text"
    assert sections["B10"] == "## B10: ten\n\nold B10 text"


def test_merge_report_with_nothing_new_is_the_old_text() -> None:
    assert bench.merge_report(_OLD, "") == _OLD


def test_publish_merges_into_the_file_or_prints(tmp_path: Path, capsys) -> None:
    out = tmp_path / "BENCHMARKS.md"
    out.write_text(_OLD)
    new = "## B7: seven\n\nnew B7 text\n"
    bench.publish(new, out, False, "B7", 1.0)
    assert out.read_text() == _OLD and "new B7 text" in capsys.readouterr().out
    bench.publish(new, out, True, "B7", 1.0)
    assert out.read_text() == bench.merge_report(_OLD, new)
    assert "## B7: seven\n\nnew B7 text" in out.read_text() and "old B10 text" in out.read_text()


# ---- scripts/bench_quality.py's pure helpers ------------------------------------------------
def test_gap_closed_and_b7_verdict() -> None:
    # HGB leads the best MLP baseline (0.80) by 0.10; the search closes 0.06 of it
    assert quality.gap_closed(0.86, 0.80, 0.90) == pytest.approx(0.6)
    assert quality.gap_closed(0.86, 0.80, 0.78) is None  # trees do not lead
    v = quality.b7_verdict({"search": 0.84, "none": 0.80, "balanced": 0.78, "hgb": 0.90})
    assert v["above"] and v["closed"] == pytest.approx(0.4) and not v["met"]
    v = quality.b7_verdict({"search": 0.79, "none": 0.80, "balanced": 0.70, "hgb": 0.60})
    assert not v["above"] and v["closed"] is None and not v["met"]
    v = quality.b7_verdict({"search": 0.85, "none": 0.80, "balanced": 0.70, "hgb": 0.60})
    assert v["met"] and not v["tied"]
    tie = quality.b7_verdict({"search": 1.0, "none": 1.0, "balanced": 1.0, "hgb": 0.99})
    assert tie["tied"] and not tie["above"] and not tie["met"]


def test_b7_summary_counts_ties_and_says_when_trees_never_lead() -> None:
    win = quality.b7_verdict({"search": 0.85, "none": 0.80, "balanced": 0.70, "hgb": 0.60})
    tie = quality.b7_verdict({"search": 1.0, "none": 1.0, "balanced": 1.0, "hgb": 0.99})
    assert quality.b7_summary([win, tie], 3) == (
        "targets met on 1 of 3 datasets: the search above both MLP baselines on 1 of 3 "
        "(tied with the better one on 1); HGB leads the MLP baselines on none of them")
    short = quality.b7_verdict({"search": 0.84, "none": 0.80, "balanced": 0.78, "hgb": 0.90})
    assert quality.b7_summary([win, short], 2) == (
        "targets met on 1 of 2 datasets: the search above both MLP baselines on 2 of 2; "
        "at least half of the gap to HGB closed on 0 of the 1 where HGB leads")


def test_b7_why_names_each_missed_dataset_with_its_margin_and_spread() -> None:
    assert quality.b7_why([]) == ""
    why = quality.b7_why([("wine", 0.0, 0.0, 36), ("digits-lt", -0.0131, 0.0541, 119)])
    assert why.startswith("Why, and what would change it:")
    assert "wine +0.000 (std 0.000; 1/36 test rows = 0.028)" in why  # 1/36 = 0.0278
    assert "digits-lt -0.013 (std 0.054; 1/119 test rows = 0.008)" in why  # 1/119 = 0.0084


def test_mean_std_and_pm() -> None:
    assert quality.mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2.0)))
    assert quality.mean_std([0.5]) == (0.5, 0.0)
    assert quality.pm([0.1, 0.3]) == "0.200 ± 0.141"
    assert quality.pm([0.1, None]) == "0.100 ± 0.000 (n=1)"
    assert quality.pm([None]) == "—"


def test_won_row_fills_defaults() -> None:
    config = {"weighting": {"scheme": "sqrt", "params": {}},
              "loss": {"name": "focal", "params": {"gamma": 2.0}},
              "model": {"arch": "mlp", "params": {"width": 32}},
              "train": {"learning_rate": 0.001}}
    row = quality.won_row(config, {"width": 64, "depth": 2, "dropout": 0.1})
    assert row["scheme"] == "sqrt"
    assert row["loss"] == "focal (gamma 2.000)"
    assert (row["width"], row["depth"], row["dropout"]) == (32, 2, 0.1)
    assert row["numeric"] is None and row["learning_rate"] == 0.001


def test_won_row_names_a_tables_numeric_encoding() -> None:
    config = {"weighting": {"scheme": "none", "params": {}},
              "loss": {"name": "crossentropy", "params": {}},
              "model": {"arch": "mlp", "params": {},
                        "numeric": {"name": "piecewise_linear", "bins": 8}},
              "train": {"learning_rate": 0.001}}
    assert quality.won_row(config, {})["numeric"] == "piecewise_linear/8"
    config["model"]["numeric"] = {"name": "standardize"}
    assert quality.won_row(config, {})["numeric"] == "standardize"


# ---- scripts/bench_defaults.py's pure helpers -----------------------------------------------
import bench_defaults as defaults  # noqa: E402


def test_at_default_finds_the_variants_that_would_rerun_the_baseline() -> None:
    width, lr = 256, 3e-3  # the MLP's and the optimiser's defaults since B11
    assert defaults.current_default("model", "width") == width
    assert defaults.current_default("train", "learning_rate") == lr
    assert defaults.current_default("cv", "patience") == 5  # spec.CVSpec
    assert [v.key for v in defaults.VARIANTS if defaults.at_default(v)] == ["width=256", "lr=3e-3"]
    assert defaults.at_default(defaults.Variant("w", "w", {"model": {"width": width}}))
    assert not defaults.at_default(defaults.Variant("w", "w", {"model": {"width": width + 1}}))
    both = {"model": {"width": width}, "train": {"learning_rate": lr * 10}}
    assert not defaults.at_default(defaults.Variant("b", "b", both))  # one change is new
    assert not defaults.at_default(defaults.BY_KEY["baseline"])


def test_run_setup_adds_one_change_to_the_baseline() -> None:
    space, cv = defaults.run_setup(defaults.BY_KEY["width=32"])
    assert space == {"weighting": {"scheme": "sqrt"}, "loss": {"name": "crossentropy"},
                     "model": {"arch": "mlp", "width": 32}}
    assert cv == {"folds": 5, "epochs": 30, "patience": 5}
    space, _ = defaults.run_setup(defaults.BY_KEY["adamw"])
    assert space["train"] == {"optimizer": "adamw"} and space["model"] == {"arch": "mlp"}
    space, cv = defaults.run_setup(defaults.BY_KEY["epochs=60"])
    assert cv == {"folds": 5, "epochs": 60, "patience": 10} and "train" not in space
    assert defaults.BASE_SPACE["model"] == {"arch": "mlp"}  # not mutated by the variants
    with pytest.raises(ValueError, match="expected sections model, train or cv"):
        defaults.run_setup(defaults.Variant("bad", "bad", {"loss": {"name": "focal"}}))


def test_paired_deltas_and_decide() -> None:
    assert defaults.paired_deltas({0: 0.9, 1: 0.8, 2: 0.7}, {0: 0.85, 2: 0.75}) == (
        pytest.approx([0.05, -0.05]))
    # every dataset positive and mean 0.006 > 0.005: change
    assert defaults.decide({"a": 0.002, "b": 0.010})
    # mean 0.004: keep; one dataset negative despite a large mean: keep; a zero: keep
    assert not defaults.decide({"a": 0.002, "b": 0.006})
    assert not defaults.decide({"a": -0.001, "b": 0.050})
    assert not defaults.decide({"a": 0.0, "b": 0.050})
    assert not defaults.decide({})


def test_signed_pm() -> None:
    assert defaults.signed_pm([0.01, 0.03]) == "+0.020 ± 0.014"
    assert defaults.signed_pm([-0.5], 2) == "-0.50 ± 0.00"
