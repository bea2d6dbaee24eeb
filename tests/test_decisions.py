"""Multiclass decision weights (issue 15, item 3): the one decision rule ``metrics.decide``,
coordinate-ascent tuning, the cross-fitted estimate, export's keep-or-drop rule, the config's
checks and train's evaluation, against hand-computed values."""

from __future__ import annotations

import copy
import tomllib

import numpy as np
import pandas as pd
import pytest
from conftest import unit_config

from weightsearch import metrics

# Two CV folds of a 3-class problem, 2 rows per class and fold.
# Fold A: class-1 rows lean to class 0 (p1/p0 = 0.8): plain argmax misses them.
# Fold B: class-0 rows lean to class 1 (p1/p0 = 1.25), class-1 rows clearly class 1 (2.6).
FOLD_A = [[.6, .3, .1]] * 2 + [[.5, .4, .1]] * 2 + [[.1, .2, .7]] * 2
FOLD_B = [[.4, .5, .1]] * 2 + [[.25, .65, .1]] * 2 + [[.1, .2, .7]] * 2
Y_FOLD = [0, 0, 1, 1, 2, 2]
#: Predictions [0, 0, 0, 0, 2, 2] (or [1, 1, 1, 1, 2, 2]) against Y_FOLD:
#: F1 = (2·2/(4+2) + 0 + 1) / 3 = 5/9.
FIVE_NINTHS = 5 / 9


def test_decide_applies_per_class_weights_to_the_probabilities() -> None:
    proba = np.array([[0.5, 0.3, 0.2], [0.4, 0.35, 0.25], [0.1, 0.2, 0.7]])
    # w = (1, 2, 1): w·p = [.5, .6, .2], [.4, .7, .25], [.1, .4, .7]
    np.testing.assert_array_equal(metrics.decide(proba, "multiclass", weights=[1, 2, 1]),
                                  [1, 1, 2])
    np.testing.assert_array_equal(metrics.decide(proba, "multiclass"), [0, 0, 2])
    # w = (1, 1, 4): [.5, .3, .8] → 2; [.4, .35, 1.0] → 2; [.1, .2, 2.8] → 2
    np.testing.assert_array_equal(metrics.decide(proba, "multiclass", weights=[1, 1, 4]),
                                  [2, 2, 2])
    # binary and multilabel: the threshold rule, None meaning 0.5
    binary = np.array([[0.7, 0.3], [0.45, 0.55]])
    np.testing.assert_array_equal(metrics.decide(binary, "binary"), [0, 1])
    np.testing.assert_array_equal(metrics.decide(binary, "binary", threshold=0.25), [1, 1])
    np.testing.assert_array_equal(
        metrics.decide(np.array([[0.2, 0.6]]), "multilabel", threshold=[0.1, 0.7]), [[1, 0]])


@pytest.mark.parametrize(
    ("task", "weights", "message"),
    [
        ("binary", [1.0, 2.0], "decision weights are for multiclass tasks"),
        ("multiclass", [1.0, 2.0], "a list of 3 numbers (one per class)"),
        ("multiclass", [1.0, 0.0, 1.0], "positive finite numbers"),
        ("multiclass", [1.0, float("nan"), 1.0], "positive finite numbers"),
    ],
)
def test_decide_refuses_bad_weights(task: str, weights: list[float], message: str) -> None:
    n = 2 if task == "binary" else 3
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        metrics.decide(np.full((1, n), 1.0 / n), task, weights=weights)


def test_tuning_recovers_the_known_optimum() -> None:
    """Fold A alone: argmax scores 5/9. Coordinate ascent tries w_0 first: 1/8 and 1/4 send
    the class-0 rows to class 1 (still 5/9, not better), 1/2 makes the class-0 rows a tie
    (argmax keeps the first, 0) and the class-1 rows 0.25 < 0.4 → 1: all right, 1.0. Nothing
    beats 1.0 afterwards, so w = (1/2, 1, 1)."""
    y, p = np.array(Y_FOLD), np.array(FOLD_A)
    plain = metrics.score("macro_f1", y, metrics.decide(p, "multiclass"), task="multiclass",
                          n_classes=3)
    assert plain == pytest.approx(FIVE_NINTHS)
    w, value = metrics.tune_decision_weights(y, p, n_classes=3)
    np.testing.assert_array_equal(w, [0.5, 1.0, 1.0])
    assert value == 1.0
    # fold B alone: w_0 = 2 turns the class-0 rows (0.8 > 0.5) and keeps class 1 (0.5 < 0.65)
    w_b, value_b = metrics.tune_decision_weights(y, np.array(FOLD_B), n_classes=3)
    np.testing.assert_array_equal(w_b, [2.0, 1.0, 1.0])
    assert value_b == 1.0


def test_no_gain_keeps_plain_argmax() -> None:
    """Probabilities that argmax already decides perfectly: ties keep w = 1."""
    p = np.eye(3)[[0, 1, 2, 0]] * 0.8 + 0.2 / 3
    w, value = metrics.tune_decision_weights([0, 1, 2, 0], p, n_classes=3)
    np.testing.assert_array_equal(w, [1.0, 1.0, 1.0])
    assert value == 1.0


def test_the_cross_fitted_estimate_never_uses_a_folds_own_rows() -> None:
    """Each fold tuned on itself scores 1.0; cross-fitted, fold A gets B's w = (2, 1, 1)
    (class-1 rows 1.0 > 0.4 → 0: 5/9) and fold B gets A's w = (1/2, 1, 1) (class-0 rows
    0.2 < 0.5 → 1: 5/9): the estimate is 5/9, not 1.0."""
    y = np.array(Y_FOLD * 2)
    p = np.array(FOLD_A + FOLD_B)
    folds = [(np.arange(6, 12), np.arange(6)), (np.arange(6), np.arange(6, 12))]
    assert metrics.cross_fit_decision(y, p, folds, n_classes=3) == pytest.approx(FIVE_NINTHS)

    seen: list[np.ndarray] = []

    def recording(y_part, p_part, **kw):  # the rows the tuner is given, by their probabilities
        seen.append(np.asarray(p_part))
        return metrics.tune_decision_weights(y_part, p_part, **kw)

    rng = np.random.default_rng(0)
    q = rng.dirichlet(np.ones(3), size=30)  # every row distinct
    labels = np.arange(30) % 3
    folds3 = [(np.setdiff1d(np.arange(30), va), va) for va in np.array_split(np.arange(30), 3)]
    metrics.cross_fit_decision(labels, q, folds3, n_classes=3, tune=recording)
    assert len(seen) == 3
    for (_tr, va), rows in zip(folds3, seen, strict=True):
        own = {tuple(r) for r in q[va]}
        assert not own & {tuple(r) for r in rows}  # none of fold k's rows
        assert len(rows) == 30 - len(va)  # and every other row


# ---- config, export and train ----------------------------------------------------------------


def _multiclass_config(**decision) -> dict:
    return unit_config(decision=decision)


def test_the_config_checks_and_exposes_decision_weights() -> None:
    from weightsearch.production import ConfigError, parse_config

    cfg = parse_config(_multiclass_config(weights=[1, 2.5, 0.5]))
    assert cfg.decision_weights() == [1.0, 2.5, 0.5]
    again = parse_config(tomllib.loads(cfg.to_toml()))
    assert again.decision_weights() == [1.0, 2.5, 0.5]
    assert parse_config(_multiclass_config()).decision_weights() is None
    for weights, line in [
        ([1.0, 2.0], "decision.weights: expected 3 weights (one per class in data.classes), "
                     "but got 2."),
        ([1.0, -1.0, 1.0], "decision.weights: expected a list of positive numbers"),
        ("high", "decision.weights: expected a list of positive numbers"),
    ]:
        with pytest.raises(ConfigError) as info:
            parse_config(_multiclass_config(weights=weights), source="c.toml")
        assert len(info.value.problems) == 1 and info.value.problems[0].startswith(line)
    binary = _multiclass_config(weights=[1.0, 2.0])
    binary["data"] = {**binary["data"], "task": "binary", "classes": ["a", "b"],
                      "source": "builtin:breast-cancer"}
    with pytest.raises(ConfigError) as info:
        parse_config(binary, source="c.toml")
    assert info.value.problems == [
        "decision.weights: per-class decision weights are for multiclass tasks, but the task "
        "is binary."]


def test_evaluate_applies_the_weights() -> None:
    from weightsearch.production.train import evaluate

    y, p = np.array(Y_FOLD), np.array(FOLD_A)
    kw = {"task": "multiclass", "classes": ["a", "b", "c"], "threshold": None, "positive": 1}
    plain = evaluate(None, p, y, proba=p, **kw)
    tuned = evaluate(None, p, y, proba=p, weights=[0.5, 1.0, 1.0], **kw)
    assert plain["macro_f1"] == pytest.approx(FIVE_NINTHS)
    assert tuned["macro_f1"] == 1.0 and tuned["decision_weights"] == [0.5, 1.0, 1.0]
    assert tuned["confusion"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]


def _table(n: int = 90) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    label = np.arange(n) % 3
    return pd.DataFrame({"a": label + rng.normal(0, 1.0, n), "b": rng.normal(0, 1, n),
                         "label": np.array(["x", "y", "z"])[label]})


@pytest.fixture(scope="module")
def searched():
    import weightsearch

    return weightsearch.search(
        _table(), target="label", n_trials=1, folds=3, epochs=2, progress=False,
        space={"weighting": {"scheme": "none"}, "loss": {"name": "crossentropy"},
               "model": {"arch": "mlp", "depth": 1, "width": 8}},
    )


@pytest.mark.slow
def test_a_multiclass_trial_records_weights_and_a_cross_fitted_score(searched) -> None:
    trial = searched.best_trial
    attrs = trial.user_attrs
    assert len(attrs["decision_weights"]) == 3
    assert all(w in metrics.WEIGHT_GRID for w in attrs["decision_weights"])
    assert 0.0 <= attrs["cv_value_tuned"] <= 1.0
    # ascent starts at w = 1 and only climbs: never below pooled argmax (per_class_f1's mean)
    plain = float(np.mean(list(attrs["per_class_f1"].values())))
    assert attrs["pooled_value_tuned"] >= plain - 1e-12
    # the trial value stays the untuned mean of the folds' scores
    assert trial.value == pytest.approx(float(np.mean(attrs["fold_values"])))


@pytest.mark.slow
def test_export_keeps_the_weights_only_where_cross_fitting_beats_argmax(searched, tmp_path) -> None:
    from weightsearch.production import config_from_trial, parse_config

    frozen = searched.best_trial

    def exported(tuned: float) -> dict:
        trial = copy.deepcopy(frozen)
        trial.set_user_attr("decision_weights", [2.0, 0.5, 1.0])
        trial.set_user_attr("cv_value_tuned", tuned)
        cfg = config_from_trial(searched.study, trial, searched.storage)
        return parse_config(tomllib.loads(cfg.to_toml())).decision

    assert exported(frozen.value + 0.01) == {"weights": [2.0, 0.5, 1.0]}
    assert exported(frozen.value) == {}  # a tie is no gain: plain argmax
    assert exported(frozen.value - 0.01) == {}


@pytest.mark.slow
def test_train_evaluates_with_the_weights_and_stores_them_in_meta(searched) -> None:
    from dataclasses import replace

    from weightsearch.production import train_from_config

    cfg = searched.best_config
    weights = [8.0, 0.125, 0.125]
    result = train_from_config(replace(cfg, decision={"weights": weights}), track=False,
                               dataset=searched.prepared.data)
    assert result.meta["decision_weights"] == weights
    test_y = searched.prepared.data.y[searched.prepared.test_idx]
    pred = metrics.decide(result.test_proba, "multiclass", weights=weights)
    assert not np.array_equal(pred, metrics.decide(result.test_proba, "multiclass"))
    want = metrics.score("macro_f1", test_y, pred, task="multiclass", n_classes=3)
    assert result.test["macro_f1"] == pytest.approx(want)


def test_the_leaderboard_shows_the_tuned_decisions_cross_fitted_cv() -> None:
    from weightsearch.report import leaderboard_cells

    row = {"trial": 3, "scheme": "sqrt", "loss": "focal", "arch": "mlp", "value": 0.71,
           "std": 0.02}
    headers, cells = leaderboard_cells([
        {**row, "threshold": None, "tuned": 0.7345},  # multiclass: class weights
        {**row, "threshold": 0.35, "tuned": 0.75},  # binary: a threshold
        {**row, "threshold": None, "tuned": None},  # untuned
    ])
    assert headers[-1] == "tuned decision → CV"
    assert [c[-1] for c in cells] == ["weights → 0.7345", "0.35 → 0.7500", ""]


def test_the_train_banner_names_the_decision_weights_and_the_fold_ensemble() -> None:
    from weightsearch.production import parse_config
    from weightsearch.production.terminal import describe

    plain = describe(parse_config(_multiclass_config()))
    assert plain[1] == ("adam lr 0.01 · batch 32 · 1 epoch(s) (median of the CV best epochs "
                        "?) · argmax")
    weighted = describe(parse_config(_multiclass_config(weights=[1, 2.5, 0.5])))
    assert weighted[1].endswith(" · argmax of w_c · p_c, w = 1, 2.5, 0.5")
    raw = _multiclass_config()
    raw["train"]["final"] = "fold_ensemble"
    raw["source"]["best_epochs"] = [3, 5]
    ensemble = describe(parse_config(raw))
    assert ensemble[1] == ("the trial's fold models averaged, each at its best epoch [3, 5] "
                           "(nothing retrained) · argmax")
