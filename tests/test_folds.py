"""Fold-parallel training: the batch plan, the vectorised stack, and its equivalence with
training the folds one after another."""

from __future__ import annotations

import numpy as np
import pytest

from weightsearch import folds as F
from weightsearch import stacking

# --------------------------------------------------------------------------- batch plan


def test_batch_plan_hand_computed() -> None:
    # n_max = 10, B = 4: S = min(ceil(10/4), 9) = 3 steps, P = ceil(10/3) = 4 rows.
    assert F.batch_plan([10, 9], 4) == (3, 4)
    # One fold smaller than the step count: S is capped at n_min, so no batch is empty.
    assert F.batch_plan([10, 2], 1) == (2, 5)
    assert F.batch_plan([64], 64) == (1, 64)
    with pytest.raises(ValueError, match="positive integer"):
        F.batch_plan([10], 0)


def test_epoch_batches_cover_each_row_once_with_mean_preserving_scale() -> None:
    rows = np.arange(100, 109)  # 9 rows of a fold
    index, scale = F.epoch_batches(rows, steps=3, pad=4, rng=np.random.default_rng(0))
    assert index.shape == scale.shape == (3, 4)
    real = index[scale > 0]
    assert sorted(real.tolist()) == rows.tolist()  # every row once, at a positive scale
    # 9 rows in 3 batches of 3, each padded with one repeat at scale 0; real rows get 4/3.
    np.testing.assert_allclose(scale, np.tile([4 / 3, 4 / 3, 4 / 3, 0.0], (3, 1)))
    for s in range(3):  # padding repeats the batch's own rows
        assert set(index[s, 3:]) <= set(index[s, :3])
    # mean over the P padded rows of scale·ℓ equals the mean over the real rows of ℓ
    loss = np.random.default_rng(1).random(200)
    for s in range(3):
        np.testing.assert_allclose(
            np.mean(scale[s] * loss[index[s]]), np.mean(loss[index[s, :3]]), rtol=1e-6
        )


# --------------------------------------------------------------------------- training


def _data(n: int = 72, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1, 2], [40, 20, 12])[:n]
    x = rng.normal(size=(len(y), 5)).astype(np.float32) + y[:, None] * 0.8
    return x, y


def _folds(x, y, config, *, apply="loss", k=3, permute_losses=False):
    from weightsearch import training
    from weightsearch.callbacks import MacroF1Callback
    from weightsearch.data import kfold

    out = []
    built = []
    splits = kfold(y, "multiclass", k, 0)
    for i, (tr, va) in enumerate(splits):
        b = training.build_member(
            config, x=x[tr], y=y[tr], task="multiclass", n_classes=3, apply_weights=apply,
            seed=100 + i,
        )
        built.append(b)
        rw = None
        if "sample_weight" in b.fit_kwargs:
            rw = np.zeros(len(y), np.float32)
            rw[tr] = b.fit_kwargs["sample_weight"]
        scorer = MacroF1Callback(x[va], y[va], task="multiclass", n_classes=3)
        out.append(F.Fold(i, tr, va, b.model, b.loss, scorer, rw))
    if permute_losses:  # a deliberate leak: each fold trains with the next fold's weights
        losses = [f.loss for f in out]
        for i, f in enumerate(out):
            f.loss = losses[(i + 1) % len(out)]
    return out


def _train(x, y, config, *, parallel, patience=0, epochs=3, **kw):
    from weightsearch import training
    from weightsearch.data import model_targets

    folds = _folds(x, y, config, **kw)
    stack = None
    if parallel:
        stack = stacking.vectorize([f.model for f in folds], [f.loss for f in folds], x[:8])
    outcomes = F.train_folds(
        folds, x=x, targets=model_targets(y, "multiclass", 3), epochs=epochs, batch_size=16,
        make_optimizer=lambda: training.optimizer_of(config), patience=patience, seed=7,
        stack=stack,
    )
    return outcomes, folds


CONFIG = {
    "weighting": {"scheme": "balanced", "params": {}},
    "loss": {"name": "crossentropy", "params": {}},
    "model": {"arch": "mlp", "params": {"depth": 2, "width": 8, "dropout": 0.0}},
    "train": {"optimizer": "adam", "learning_rate": 0.01},
}


def _histories(outcomes):
    keys = ("val_macro_f1", "val_loss")
    return {o.index: [[h[k] for k in keys] for h in o.history] for o in outcomes}


@pytest.mark.parametrize(
    ("apply", "batch_norm", "l2"), [("loss", False, 0.0), ("sample_weight", True, 1e-3)]
)
def test_stacked_and_sequential_give_the_same_fold_histories(apply, batch_norm, l2) -> None:
    """Same initial weights, same batch order per fold: same per-fold, per-epoch F1 and loss.

    Each fold has its own class weights (``balanced`` on its own training fold), so mixed
    gradients or a fold's weights leaking into another show up as different histories.
    """
    x, y = _data()
    config = {**CONFIG, "model": {"arch": "mlp", "params": {
        "depth": 2, "width": 8, "dropout": 0.0, "batch_norm": batch_norm, "l2": l2}}}
    par, _ = _train(x, y, config, parallel=True, apply=apply)
    seq, _ = _train(x, y, config, parallel=False, apply=apply)
    hp, hs = _histories(par), _histories(seq)
    assert sorted(hp) == sorted(hs) == [0, 1, 2]
    for k in hp:
        np.testing.assert_allclose(hp[k], hs[k], rtol=1e-4, atol=1e-5)
    for a, b in zip(par, seq, strict=True):
        np.testing.assert_allclose(a.best_proba, b.best_proba, rtol=1e-4, atol=1e-5)
    # the folds really differ from each other, so the comparison above is not vacuous
    assert not np.allclose(hp[0], hp[1])


def test_the_equivalence_check_detects_leaked_class_weights() -> None:
    """Negative control: a stack whose folds use each other's weighted losses differs."""
    x, y = _data()
    seq, _ = _train(x, y, CONFIG, parallel=False)
    leak, _ = _train(x, y, CONFIG, parallel=True, permute_losses=True)
    hs, hl = _histories(seq), _histories(leak)
    assert any(not np.allclose(hs[k], hl[k], rtol=1e-4, atol=1e-5) for k in hs)


def test_a_fold_that_stops_early_keeps_its_best_epoch_and_adds_nothing_after() -> None:
    x, y = _data()
    config = {**CONFIG, "train": {"optimizer": "adam", "learning_rate": 0.05}}
    outcomes, folds = _train(x, y, config, parallel=True, patience=1, epochs=25)
    ran = [o.epochs_run for o in outcomes]
    assert min(ran) < 25, f"no fold stopped early: {ran}"
    for o, fold in zip(outcomes, folds, strict=True):
        assert len(o.history) == o.epochs_run  # nothing scored after its stop
        assert o.epochs_run == 25 or o.epochs_run == o.best_epoch + 2  # patience 1
        best = max(h["val_macro_f1"] for h in o.history)
        assert o.value == best == o.history[o.best_epoch]["val_macro_f1"]
        # the fold's model holds its best epoch's weights: it predicts best_proba again
        again = np.asarray(fold.model(x[fold.val], training=False))
        np.testing.assert_allclose(again, o.best_proba, rtol=1e-4, atol=1e-5)


def test_vectorize_refuses_a_layer_it_cannot_stack() -> None:
    import keras

    def model() -> keras.Model:
        inp = keras.Input((4,))
        out = keras.layers.Dense(2, activation="softmax")(keras.layers.LayerNormalization()(inp))
        return keras.Model(inp, out)

    with pytest.raises(stacking.NotStackable, match="LayerNormalization"):
        stacking.vectorize([model(), model()], [None, None], np.zeros((2, 4), np.float32))


def test_vectorised_cnn_matches_its_fold_models() -> None:
    """Conv, pooling and flatten layers stack too: the check in ``vectorize`` passes."""
    from weightsearch import models

    rng = np.random.default_rng(0)
    xi = rng.normal(size=(6, 8, 8, 1)).astype(np.float32)
    members = [
        models.build_model("cnn", input_shape=(8, 8, 1), n_outputs=3, task="multiclass",
                           params={"head": "flatten", "blocks": 2}, adapt_x=xi, seed=s)
        for s in (1, 2)
    ]
    stack = stacking.vectorize(members, [None, None], xi)
    got = np.asarray(stack(np.stack([xi, xi[::-1]]), training=False))
    np.testing.assert_allclose(got[1], np.asarray(members[1](xi[::-1])), rtol=1e-4, atol=1e-5)


def test_global_clipnorm_couples_the_folds() -> None:
    assert F.stacking_blocker(CONFIG) is None
    clipped = {**CONFIG, "train": {**CONFIG["train"], "global_clipnorm": 1.0}}
    assert "global_clipnorm" in F.stacking_blocker(clipped)


# --------------------------------------------------------------------------- the objective


def _objective_trial(
    monkeypatch, cv: dict, train: dict | None = None, pruner: str = "median",
    data: dict | None = None, loss: str = "crossentropy", prune: object = None,
):
    """One in-memory trial of a tiny study; returns (trial, the fold outcomes it trained)."""
    import optuna

    from weightsearch import engines, spec
    from weightsearch.objective import Objective
    from weightsearch.study import study_pruner
    from weightsearch.tracking import NullTracker

    raw = {
        "name": "folds",
        "data": data or {"source": "builtin:synthetic", "test_size": 0.0,
                         "options": {"n_samples": 90, "n_features": 4, "weights": [0.7, 0.3]}},
        "cv": {"folds": 3, "epochs": 3, "batch_size": 16, "patience": 0, **cv},
        "search": {"pruner": pruner, "n_startup_trials": 100},
        "space": {"weighting": {"scheme": "balanced"}, "loss": {"name": loss},
                  "model": {"arch": "mlp", "depth": 1, "width": 8, "dropout": 0.0},
                  "train": train or {}},
    }
    s = spec.parse(raw)
    prepared = engines.prepare(s)
    seen: list = []
    real = getattr(F.train_folds, "real", F.train_folds)  # not an earlier call's spy

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.extend(out)
        return out

    spy.real = real
    monkeypatch.setattr(F, "train_folds", spy)
    study = optuna.create_study(direction="maximize", pruner=prune or study_pruner(s))
    study.optimize(Objective(s, prepared.train, prepared.space, NullTracker()), n_trials=1)
    return study.trials[0], seen


def test_side_by_side_reports_the_mean_of_each_folds_best_so_far(monkeypatch) -> None:
    trial, outcomes = _objective_trial(monkeypatch, {})
    assert trial.state.name == "COMPLETE" and trial.user_attrs["parallel_folds"] is True
    expected = {
        e: float(np.mean([max(h["val_macro_f1"] for h in o.history[: e + 1]) for o in outcomes]))
        for e in range(3)
    }
    assert trial.intermediate_values == pytest.approx(expected, abs=1e-12)
    assert trial.intermediate_values[2] == pytest.approx(trial.value, abs=1e-12)


def test_folds_in_turn_report_per_fold_steps_and_say_why(monkeypatch) -> None:
    trial, outcomes = _objective_trial(monkeypatch, {"parallel_folds": False})
    assert trial.user_attrs["parallel_folds"] is False
    assert trial.user_attrs["parallel_folds_reason"] == "cv.parallel_folds = false"
    expected = {k * 3 + e: outcomes[k].history[e]["val_macro_f1"] for k in range(3)
                for e in range(3)}
    assert trial.intermediate_values == pytest.approx(expected, abs=1e-12)


def test_a_coupling_setting_trains_in_turn_even_when_asked_for_side_by_side(monkeypatch) -> None:
    trial, outcomes = _objective_trial(monkeypatch, {"parallel_folds": True},
                                       train={"global_clipnorm": 1.0})
    assert trial.state.name == "COMPLETE" and trial.user_attrs["parallel_folds"] is False
    assert "global_clipnorm" in trial.user_attrs["parallel_folds_reason"]
    # in a side-by-side study its steps mean what the other trials' mean: epoch, mean of bests
    expected = {
        e: float(np.mean([max(h["val_macro_f1"] for h in o.history[: e + 1]) for o in outcomes]))
        for e in range(3)
    }
    assert trial.intermediate_values == pytest.approx(expected, abs=1e-12)


def test_a_pruned_trial_with_folds_in_turn_trains_no_further_fold(monkeypatch) -> None:
    import optuna

    always = optuna.pruners.ThresholdPruner(lower=1.1)  # F1 never reaches 1.1
    trial, outcomes = _objective_trial(monkeypatch, {"parallel_folds": False}, prune=always)
    assert trial.state.name == "PRUNED"
    assert trial.user_attrs["pruned_at"] == {"epoch": 1, "fold": 0}
    assert [o.index for o in outcomes] == [0] and outcomes[0].epochs_run == 1


@pytest.mark.parametrize(("apply", "loss"), [("loss", "weighted_bce"), ("sample_weight", "focal")])
def test_multilabel_folds_side_by_side_match_folds_in_turn(monkeypatch, apply, loss) -> None:
    """Multi-hot targets: elementwise (N, L) losses and per-label weights, stacked or not.

    (Dropout 0: with dropout the two forms draw different masks, see weightsearch.stacking.)
    """
    data = {"source": "builtin:synthetic-multilabel", "test_size": 0.0,
            "options": {"n_samples": 120, "rates": [0.4, 0.2, 0.1]}}
    par, _ = _objective_trial(monkeypatch, {"apply_weights": apply}, data=data, loss=loss)
    seq, _ = _objective_trial(monkeypatch, {"apply_weights": apply, "parallel_folds": False},
                              data=data, loss=loss)
    assert par.user_attrs["parallel_folds"] is True and seq.user_attrs["parallel_folds"] is False
    assert par.user_attrs["fold_values"] == pytest.approx(seq.user_attrs["fold_values"], abs=1e-6)


def test_a_non_finite_fold_loss_fails_naming_the_fold_and_epoch() -> None:
    """One fold's loss turns NaN: training stops with NonFiniteLoss naming that fold."""
    import keras
    from keras import ops

    from weightsearch import training
    from weightsearch.data import model_targets

    class NanLoss(keras.losses.Loss):
        def call(self, y_true, y_pred):
            return ops.sum(y_true * y_pred, axis=-1) * float("nan")

    x, y = _data()
    folds = _folds(x, y, CONFIG)
    folds[1].loss = NanLoss()
    stack = stacking.vectorize([f.model for f in folds], [f.loss for f in folds], x[:8])
    with pytest.raises(F.NonFiniteLoss, match="at epoch 1 of fold 1"):
        F.train_folds(
            folds, x=x, targets=model_targets(y, "multiclass", 3), epochs=2, batch_size=16,
            make_optimizer=lambda: training.optimizer_of(CONFIG), stack=stack,
        )
