"""Unit tests of the cross-validated objective (weightsearch.objective) on tiny data: what a
trial's value is made of, checked against the per-epoch curves it logs; that it sees only
the search part of the data; that a trial is reproducible."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import optuna
import pytest

from weightsearch import engines
from weightsearch import spec as spec_mod
from weightsearch.objective import Objective
from weightsearch.tracking import NullTracker

RAW = {
    "name": "objective-unit",
    "seed": 1,
    "data": {"source": "builtin:synthetic",
             "options": {"n_samples": 90, "n_features": 5, "weights": [0.7, 0.3],
                         "class_sep": 1.5}},
    "cv": {"folds": 3, "epochs": 3, "batch_size": 16, "patience": 0},
    "search": {"sampler": "random", "pruner": "none"},
    "space": {"weighting": {"scheme": "balanced"}, "loss": {"name": "crossentropy"},
              "model": {"arch": "mlp", "depth": 1, "width": 8}},
}


class RowTracker(NullTracker):
    """Keeps every per-epoch metric row and every summary metric a trial logs."""

    enabled = True

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, int]] = []
        self.metrics: dict[str, float] = {}

    def start_trial(self, number: int, params: dict[str, Any], tags: dict[str, str]) -> str:
        return f"run-{number}"

    def log_metric_rows(self, run: str | None, rows: list[tuple[str, float, int]]) -> None:
        self.rows += rows

    def log_metrics(self, run: str | None, metrics: dict[str, float], step: int | None = None
                    ) -> None:
        if step is None:
            self.metrics.update(metrics)


@pytest.fixture(scope="module")
def prepared():
    return engines.prepare(spec_mod.parse(RAW))


def _one_trial(prepared, tracker) -> optuna.trial.FrozenTrial:
    study = optuna.create_study(direction="maximize")
    study.optimize(Objective(prepared.spec, prepared.train, prepared.space, tracker), n_trials=1)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs.get("error")
    return trial


def test_the_value_is_the_mean_of_each_folds_best_epoch(prepared) -> None:
    tracker = RowTracker()
    trial = _one_trial(prepared, tracker)
    curves: dict[int, dict[int, float]] = defaultdict(dict)
    for key, value, step in tracker.rows:
        if key.startswith("fold") and key.endswith("/val_macro_f1"):
            curves[int(key[4:].split("/")[0])][step] = value
    assert sorted(curves) == [0, 1, 2]
    assert all(1 <= len(c) <= 3 for c in curves.values())  # ≤ epochs scored per fold
    bests = [max(curves[k].values()) for k in range(3)]
    assert trial.user_attrs["fold_values"] == pytest.approx(bests)
    assert trial.value == pytest.approx(np.mean(bests))
    assert trial.user_attrs["cv_std"] == pytest.approx(np.std(bests, ddof=1))
    for k in range(3):
        assert tracker.metrics[f"fold{k}/best_macro_f1"] == pytest.approx(bests[k])
        # the best epoch it records is where that fold's curve peaks (1-based)
        peak = max(curves[k], key=lambda e: (curves[k][e], -e))
        assert trial.user_attrs["best_epochs"][k] == peak + 1


def test_the_objective_sees_only_the_search_part(prepared) -> None:
    trial = _one_trial(prepared, NullTracker())
    confusion = np.array(trial.user_attrs["oof_confusion"])
    n_train, n_all = len(prepared.train.y), len(prepared.data.y)
    assert n_train < n_all
    # every search row is predicted out of fold exactly once, and no held-out row is
    assert confusion.sum() == n_train
    assert confusion.sum(axis=1).tolist() == np.bincount(prepared.train.y).tolist()
    assert trial.user_attrs["parallel_folds"] is True


def test_a_trial_is_reproducible(prepared) -> None:
    first = _one_trial(prepared, NullTracker())
    again = _one_trial(prepared, NullTracker())
    assert again.value == pytest.approx(first.value, abs=1e-6)
    assert again.user_attrs["fold_values"] == pytest.approx(first.user_attrs["fold_values"],
                                                            abs=1e-6)
