"""Fold-parallel training: the K fold models of a trial side by side, in one Keras model.

Trained one after another, every CV fold pays for its own trace of the train step and a
dispatch per batch, which on small models costs far more than the arithmetic.
:class:`FoldStack` puts the K fold models (which share no weights) side by side in one
Keras model, so one ``fit`` traces one train step and dispatches each epoch once
(``steps_per_execution`` = the steps of an epoch).

Each fold still gets exactly its own training:

- the loss is L = Σ_k L_k and L_k depends on fold k's weights θ_k alone, so
  ∂L/∂θ_k = ∂L_k/∂θ_k;
- Adam, AdamW, RMSprop and SGD update each variable from its own gradient, so fold k's updates
  are those of fold k trained alone. Global-norm clipping couples the folds; a trial that
  uses it trains its folds sequentially (:func:`stacking_blocker` says why);
- each fold has its own rows, its own permutation per epoch, class weights from its own
  training fold and a ``Normalization`` adapted on its own training fold.

**Batches.** Every fold takes S = min(⌈n_max / B⌉, n_min) steps per epoch (n_max, n_min the
largest and smallest training fold, B the batch size). Fold k's permuted rows are split into S
nearly equal batches of b ≤ P = ⌈n_max / S⌉ rows, padded to P with repeats of its own rows
at sample weight 0; its real rows are weighted P / b, so Keras's ``sum_over_batch_size``
reduction gives exactly fold k's mean loss over its b real rows. ``BatchNormalization``
does see the repeats (at most a few rows a batch). Sequential training (``parallel=False``)
uses the same plan, so the two paths agree to float tolerance (tested).

**Early stopping** is per fold: a fold stops when its metric has not improved for
``patience`` epochs. It keeps its best epoch's probabilities and weights (restored at the
end); its later epochs are not scored, logged or reported, and the fit ends when every fold
has stopped. (A stopped fold's weights still receive updates inside the shared step; they are
discarded.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import ops

from weightsearch.callbacks import MacroF1Callback
from weightsearch.stacking import FoldStack, LayerWeights, set_layer_weights

__all__ = [
    "Fold",
    "FoldOutcome",
    "NonFiniteLoss",
    "batch_plan",
    "epoch_batches",
    "stacking_blocker",
    "train_folds",
]

#: Largest number of validation rows predicted in one call.
PREDICT_ROWS = 4096
#: Share of the available memory a stacked trial may plan to use before ``auto`` falls back.
MEMORY_SHARE = 0.5


class NonFiniteLoss(FloatingPointError):
    """A fold's training loss became NaN or inf."""

    def __init__(self, fold: int, epoch: int) -> None:
        self.fold, self.epoch = fold, epoch
        super().__init__(f"loss became NaN or inf at epoch {epoch + 1} of fold {fold}")


@dataclass
class Fold:
    """One CV fold: its row indices, its (uncompiled) model and loss, and its scorer.

    ``row_weights`` are per-row training weights over *all* rows (``(N,)`` or ``(N, L)``),
    used where class weights reach training as sample weights; ``None`` otherwise.
    """

    index: int
    train: np.ndarray
    val: np.ndarray
    model: Any
    loss: Any
    scorer: MacroF1Callback
    row_weights: np.ndarray | None = None


@dataclass
class FoldOutcome:
    """What one fold's training produced: its best epoch (0-based) and what it saw there."""

    index: int
    value: float
    best_epoch: int
    epochs_run: int
    history: list[dict[str, float]]
    best_proba: np.ndarray
    best_weights: LayerWeights = field(default_factory=list)


# --------------------------------------------------------------------------- batch plan


def batch_plan(train_sizes: list[int], batch_size: int) -> tuple[int, int]:
    """``(S, P)``: steps per epoch shared by every fold, and the padded rows per step.

    S = min(⌈n_max / B⌉, n_min), so every fold has at least one real row in every step, and
    P = ⌈n_max / S⌉ ≤ B whenever n_min ≥ ⌈n_max / B⌉.
    """
    if not train_sizes or min(train_sizes) < 1:
        raise ValueError(f"every fold needs training rows, but got sizes {train_sizes}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, but got {batch_size!r}.")
    n_max, n_min = max(train_sizes), min(train_sizes)
    steps = min(math.ceil(n_max / batch_size), n_min)
    return steps, math.ceil(n_max / steps)


def epoch_batches(
    rows: np.ndarray, steps: int, pad: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One fold's epoch: ``(index (S, P), scale (S, P))``.

    The fold's ``rows`` are permuted and split into ``steps`` nearly equal batches; each is
    padded to ``pad`` rows by repeating its own rows with scale 0, and its b real rows get
    scale P / b (so a mean over P padded rows is the mean over the b real ones).
    """
    index = np.empty((steps, pad), dtype=np.int64)
    scale = np.zeros((steps, pad), dtype=np.float32)
    for s, part in enumerate(np.array_split(rng.permutation(rows), steps)):
        b = len(part)
        index[s, :b] = part
        index[s, b:] = part[np.arange(pad - b) % b]
        scale[s, :b] = pad / b
    return index, scale


def _plan(
    folds: list[Fold], epochs: int, steps: int, pad: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Index and scale arrays ``(E·S, K, P)`` for a group of folds, every epoch drawn up front.

    Fold k's permutation in epoch e comes from ``default_rng([seed, k, e])``: the same
    whichever group the fold trains in.
    """
    shape = (epochs, steps, len(folds), pad)
    index = np.empty(shape, dtype=np.int32)
    scale = np.empty(shape, dtype=np.float32)
    for e in range(epochs):
        for j, fold in enumerate(folds):
            rng = np.random.default_rng([seed, fold.index, e])
            index[e, :, j], scale[e, :, j] = epoch_batches(fold.train, steps, pad, rng)
    return index.reshape(epochs * steps, len(folds), pad), scale.reshape(
        epochs * steps, len(folds), pad
    )


def _dataset(
    folds: list[Fold], targets: np.ndarray, index: np.ndarray, scale: np.ndarray
) -> Any:
    """A ``tf.data`` pipeline of ``(rows, rows, w)`` steps: row indices ``(K, P)`` into the
    stack's bound data (for its inputs and its targets) and sample weights ``(K, P[, L])``."""
    import tensorflow as tf

    given = [f.row_weights for f in folds if f.row_weights is not None]
    rw = None
    if given:  # folds without row weights weigh every row 1
        ones = np.ones_like(given[0], dtype=np.float32)
        rw = tf.constant(
            np.stack([ones if f.row_weights is None else f.row_weights for f in folds]),
            dtype=tf.float32,
        )
    # multi-label losses are elementwise (P, L): their weights are too
    labels = targets.shape[1] if folds[0].scorer.task == "multilabel" else None

    def fetch(i: Any, s: Any) -> Any:
        w = s if labels is None else tf.repeat(s[..., None], labels, axis=-1)
        if rw is not None:
            w = w * tf.gather(rw, i, batch_dims=1)  # (K, P) or (K, P, L)
        return i, i, w

    data = tf.data.Dataset.from_tensor_slices((index, scale))
    return data.map(fetch).prefetch(2)


# --------------------------------------------------------------------------- when to stack


def stacking_blocker(config: dict[str, Any]) -> str | None:
    """Why this configuration's folds cannot train side by side, or ``None`` if they can."""
    clip = config.get("train", {}).get("global_clipnorm", 0.0)
    if clip:
        return (
            f"train.global_clipnorm = {clip:g} clips the joint gradient norm of all "
            "weights, which would couple the stacked fold models"
        )
    return None


def memory_blocker(
    models: list[Any], pad: int, x: np.ndarray, plan_rows: int = 0
) -> str | None:
    """``None`` if a stacked fit of ``models`` fits in memory, else why not.

    Estimate: 16 bytes per weight (value, gradient, two optimiser slots) plus 12 bytes per
    activation value for P rows (forward, gradient, workspace), plus a copy of the data and
    16 bytes per entry of the batch plan (``plan_rows`` = E·S·K·P: index and scale, copied
    once into ``tf.data``).
    """
    import psutil

    weights = sum(m.count_params() for m in models)
    acts = 0
    for m in models:
        for layer in m.layers:
            out = getattr(layer, "output", None)
            shape = getattr(out, "shape", None)
            if shape is not None:
                acts += int(np.prod([d for d in shape[1:] if d is not None]))
    need = 16 * weights + 12 * pad * acts + 2 * x.nbytes + 16 * plan_rows
    have = psutil.virtual_memory().available
    if need > MEMORY_SHARE * have:
        return (
            f"the stacked model would need about {need / 2**30:.1f} GiB, more than "
            f"{MEMORY_SHARE:.0%} of the {have / 2**30:.1f} GiB available"
        )
    return None


# --------------------------------------------------------------------------- training

#: ``on_epoch(epoch, scores, bests)``: ``scores`` maps each fold index still training to
#: its logs (``loss``, ``val_loss``, ``val_<metric>``, per-class F1); ``bests`` maps every
#: fold index of the group to its best value so far. Returns True to stop the fit (pruning).
EpochHook = Callable[[int, dict[int, dict[str, float]], dict[int, float]], bool]


class _Monitor(keras.callbacks.Callback):
    """Per epoch: one predict pass for every fold, scoring, per-fold early stopping, hook."""

    def __init__(
        self, group: list[Fold], x: np.ndarray, patience: int, on_epoch: EpochHook | None
    ) -> None:
        super().__init__()
        self.group, self.patience, self.on_epoch = group, patience, on_epoch
        self.sizes = [len(f.val) for f in group]
        v = max(self.sizes)
        # Every fold's validation rows, padded to the longest (padding rows are not scored).
        self.inputs = np.stack([x[np.resize(f.val, v)] for f in group])
        self.stopped = [False] * len(group)
        self.epochs_run = [0] * len(group)
        self.best_weights: list[LayerWeights] = [[] for _ in group]

    def _predict(self) -> np.ndarray:
        v = self.inputs.shape[1]
        parts = [
            np.asarray(self.model.predict_on_batch(self.inputs[:, i : i + PREDICT_ROWS]))
            for i in range(0, v, PREDICT_ROWS)
        ]
        return np.concatenate(parts, axis=1)  # (K, V, C)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        active = [j for j, s in enumerate(self.stopped) if not s]
        for j in active:
            if not math.isfinite(float(logs.get(f"fold{j}_loss", 0.0))):
                raise NonFiniteLoss(self.group[j].index, epoch)
        outputs = self._predict()
        scores: dict[int, dict[str, float]] = {}
        improved = []
        for j in active:
            fold = self.group[j]
            proba = outputs[j, : self.sizes[j]]
            val_loss = fold.loss(fold.scorer.targets, proba)
            reg = self.model.fold_regularization(j)
            if reg is not None:
                val_loss = val_loss + reg
            before = fold.scorer.best_epoch
            values = fold.scorer.update(epoch, proba, float(ops.convert_to_numpy(val_loss)))
            scores[fold.index] = {"loss": float(logs.get(f"fold{j}_loss", 0.0)), **values}
            self.epochs_run[j] = epoch + 1
            if fold.scorer.best_epoch != before:
                improved.append(j)
            elif self.patience and epoch - fold.scorer.best_epoch >= self.patience:
                self.stopped[j] = True
        if improved:
            weights = self.model.fold_weights()
            for j in improved:
                self.best_weights[j] = weights[j]
        bests = {f.index: float(f.scorer.best_value) for f in self.group}
        stop = bool(self.on_epoch(epoch, scores, bests)) if self.on_epoch else False
        if stop or all(self.stopped):
            self.model.stop_training = True


def _fit(
    stack: Any,
    group: list[Fold],
    *,
    x: np.ndarray,
    targets: np.ndarray,
    epochs: int,
    steps: int,
    pad: int,
    optimizer: Any,
    patience: int,
    seed: int,
    on_epoch: EpochHook | None,
) -> list[FoldOutcome]:
    """One ``fit`` of ``stack`` (whose block k is ``group[k]``); the folds end at their best."""
    stack.bind(x, targets)
    stack.compile(optimizer=optimizer, steps_per_execution=steps)
    optimizer.build(stack.trainable_variables)  # slots now, not inside the traced step
    index, scale = _plan(group, epochs, steps, pad, seed)
    monitor = _Monitor(group, x, patience, on_epoch)
    stack.fit(
        _dataset(group, targets, index, scale),
        epochs=epochs,
        steps_per_epoch=steps,
        shuffle=False,  # the plan is already shuffled, per fold and epoch
        verbose=0,
        callbacks=[monitor],
    )
    out = []
    for j, fold in enumerate(group):
        if fold.scorer.best_epoch is None:  # stopped before its first epoch ended
            continue
        set_layer_weights(fold.model, monitor.best_weights[j])
        out.append(
            FoldOutcome(
                index=fold.index,
                value=float(fold.scorer.best_value),
                best_epoch=int(fold.scorer.best_epoch),
                epochs_run=monitor.epochs_run[j],
                history=list(fold.scorer.history),
                best_proba=fold.scorer.best_proba,
                best_weights=monitor.best_weights[j],
            )
        )
    return out


def train_folds(
    folds: list[Fold],
    *,
    x: np.ndarray,
    targets: np.ndarray,
    epochs: int,
    batch_size: int,
    make_optimizer: Callable[[], Any],
    patience: int = 0,
    seed: int = 0,
    stack: Any = None,
    on_epoch: EpochHook | None = None,
    after_fold: Callable[[FoldOutcome], bool] | None = None,
) -> list[FoldOutcome]:
    """Train every fold: all in one ``fit`` of ``stack`` if given, else one after another.

    ``x`` holds all rows the folds index, ``targets`` their one-hot or multi-hot targets;
    ``stack`` is a :class:`~weightsearch.stacking.VectorStack` of the folds' models.
    ``on_epoch`` is called once per epoch of the stack, or of each fold in turn;
    ``after_fold`` after each fold trained in turn (True stops the training). Each fold's
    model ends with its best epoch's weights. Raises :class:`NonFiniteLoss` when a
    training fold's loss is not finite.
    """
    x = np.asarray(x, dtype=np.float32)
    targets = np.asarray(targets, dtype=np.float32)
    steps, pad = batch_plan([len(f.train) for f in folds], batch_size)
    kwargs = dict(
        x=x, targets=targets, epochs=epochs, steps=steps, pad=pad, patience=patience,
        seed=seed, on_epoch=on_epoch,
    )
    if stack is not None:
        return _fit(stack, folds, optimizer=make_optimizer(), **kwargs)
    out: list[FoldOutcome] = []
    for fold in folds:
        alone = FoldStack([fold.model], [fold.loss])
        done = _fit(alone, [fold], optimizer=make_optimizer(), **kwargs)
        out.extend(done)
        if after_fold is not None and done and after_fold(done[0]):
            break
    return out
