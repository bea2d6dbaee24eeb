"""Keras callbacks: exact epoch-level macro-F1 (and friends) on a validation set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from weightsearch import metrics as M
from weightsearch.base import check_task

__all__ = ["MacroF1Callback", "infer_target"]


def infer_target(y: Any, task: str | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    """``(task, labels, classes)`` of targets ``y``, after ``sklearn``'s ``type_of_target``.

    ``labels`` are indices 0..C−1 (N,) for single-label or the 0/1 array (N, L) for
    multilabel; ``classes`` are the integers 0..max for integer labels (they index the model's
    outputs), else the sorted distinct labels; for 2-D targets, the column indices. A 2-D 0/1
    array with exactly one 1 per row is one-hot single-label unless ``task`` is multilabel.
    """
    from sklearn.utils.multiclass import type_of_target

    arr = np.asarray(y)
    try:
        kind = type_of_target(arr, input_name="y_val")
    except ValueError as exc:
        raise ValueError(f"y_val: {exc}") from None
    if kind == "multilabel-indicator":
        arr = arr.astype(np.int64)
        classes = np.arange(arr.shape[1])
        if task != "multilabel" and np.all(arr.sum(axis=1) == 1):
            labels = np.argmax(arr, axis=1)
            return ("binary" if arr.shape[1] == 2 else "multiclass"), labels, classes
        return "multilabel", arr, classes
    if kind not in ("binary", "multiclass") or arr.ndim != 1:
        raise ValueError(
            "y_val must be class labels (N,), one-hot or multi-hot 0/1 (N, C), but "
            f"scikit-learn reads it as {kind!r} (shape {arr.shape}); pass task= and n_classes=."
        )
    if arr.dtype.kind in "biu" or (
        arr.dtype.kind == "f" and np.all(arr == np.round(arr)) and arr.min() >= 0
    ):
        labels = arr.astype(np.int64)
        if labels.min() < 0:
            raise ValueError(f"y_val: integer labels must be >= 0, but got {labels.min()}.")
        classes = np.arange(labels.max() + 1)
    else:
        classes, labels = np.unique(arr, return_inverse=True)
    n = len(classes)
    if n < 2:
        raise ValueError(
            f"y_val holds a single class {classes.tolist()}; pass n_classes= (and task=)."
        )
    return ("binary" if n == 2 else "multiclass"), labels, classes


class MacroF1Callback(keras.callbacks.Callback):
    """Score the whole validation set once per epoch from ONE forward pass.

    At each epoch end it runs ``model.predict(x_val)`` once and, from those probabilities,
    writes into ``logs``:

    - ``"val_macro_f1"``: macro-F1, the mean of per-class F1 over ``range(n_classes)``
      (float64, equal to scikit-learn's ``f1_score(average="macro", labels=range(C),
      zero_division=0)``; see :mod:`weightsearch.metrics`);
    - ``f"val_{metric}"`` when ``metric`` is not ``"macro_f1"``;
    - ``"val_f1_<i>"``: the F1 of class (or label) ``i``;
    - ``"val_loss"`` (if ``compute_loss``): the compiled loss on the same predictions plus
      ``sum(model.losses)`` (weight regularisation), i.e. what ``model.evaluate`` reports.

    This replaces Keras's own validation pass: fit **without** ``validation_data`` and the
    F1 costs no second pass over the data.

    Decisions: argmax (multiclass), ``proba[:, positive] >= threshold`` (binary) or
    ``proba >= threshold`` per label (multilabel; a scalar or an ``(L,)`` array).

    **Order matters**: Keras passes one ``logs`` dict through the callbacks in list order,
    so put this callback *before* ``EarlyStopping`` / ``ModelCheckpoint`` / pruning
    callbacks that monitor ``"val_macro_f1"`` (with ``mode="max"``).

    After training: ``history`` (one dict per epoch), ``best_epoch`` and ``best_value``
    (by ``metric``, first epoch on ties), ``best_proba`` (probabilities at the best epoch,
    for threshold tuning and confusion matrices) and ``last_proba``.

    ``MacroF1Callback(x_val, y_val)`` alone infers the task and the classes from ``y_val``
    as scikit-learn's ``type_of_target`` does (:func:`infer_target`): 1-D labels are
    binary (2 classes) or multiclass; a 2-D 0/1 array is multilabel, except that one with
    exactly one 1 per row is read as one-hot single-label (pass ``task="multilabel"`` to
    score it per label). Integer labels 0..C−1 index the model's outputs; other labels
    (strings) are sorted, as ``LabelEncoder`` does, and ``classes_`` holds them. A binary
    model may output one sigmoid column (P(class 1)) or two softmax columns.
    """

    def __init__(
        self,
        x_val: Any,
        y_val: Any,
        *,
        task: str | None = None,
        n_classes: int | None = None,
        threshold: float | Sequence[float] = 0.5,
        positive: int = 1,
        metric: str = "macro_f1",
        batch_size: int = 256,
        compute_loss: bool = True,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.classes_: np.ndarray | None = None
        if task is None or n_classes is None:
            inferred, y_val, classes = infer_target(y_val, task)
            task = task or inferred
            n_classes = len(classes) if n_classes is None else n_classes
            self.classes_ = classes
            if class_names is None and classes.dtype.kind not in "biu":
                class_names = [str(c) for c in classes]
        task = check_task(task)
        n = M.check_n_classes(n_classes, task)
        self.metric = M.get_metric(metric, task).name
        if task == "multilabel":
            y = M.check_multi_hot(y_val, "y_val", n)
        else:
            if np.ndim(y_val) != 1:
                raise ValueError(
                    "y_val must be class labels of shape (N,) (not one-hot) for task "
                    f"{task!r}, but got shape {np.shape(y_val)}."
                )
            y = M.check_labels(y_val, "y_val", n)
        try:
            n_rows = len(next(iter(x_val.values())) if isinstance(x_val, dict) else x_val)
        except TypeError:
            raise ValueError(
                f"x_val must be an array of validation inputs, but got {type(x_val).__name__}."
            ) from None
        if n_rows != y.shape[0]:
            raise ValueError(
                f"x_val and y_val must have the same number of rows, but got {n_rows} "
                f"and {y.shape[0]}."
            )
        if y.shape[0] == 0:
            raise ValueError("x_val is empty; the callback needs at least one validation row.")
        if task == "binary":
            self.positive = M.check_positive(positive)
            self.threshold: float | np.ndarray = M.check_threshold(threshold, None)
        else:
            self.positive = int(positive)
            self.threshold = M.check_threshold(threshold, n if task == "multilabel" else None)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, but got {batch_size!r}.")
        if class_names is not None:
            class_names = [str(c) for c in class_names]
            if len(class_names) != n:
                raise ValueError(
                    f"class_names must have {n} entries (n_classes), but got {len(class_names)}."
                )
        self.x_val = x_val
        self.y_val = y
        self.task = task
        self.n_classes = n
        self.batch_size = batch_size
        self.compute_loss = bool(compute_loss)
        self.class_names = class_names or [str(i) for i in range(n)]
        if task == "multilabel":
            self._targets = y.astype(np.float32)
        else:
            self._targets = np.eye(n, dtype=np.float32)[y]
        self._reset()

    @property
    def targets(self) -> np.ndarray:
        """The validation targets as the model's loss takes them (one-hot or multi-hot)."""
        return self._targets

    def _reset(self) -> None:
        self.history: list[dict[str, float]] = []
        self.best_epoch: int | None = None
        self.best_value: float = -np.inf
        self.best_proba: np.ndarray | None = None
        self.last_proba: np.ndarray | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._reset()
        if self.compute_loss and getattr(self.model, "loss", None) is None:
            raise ValueError(
                "MacroF1Callback(compute_loss=True) needs a model compiled with a loss; "
                "compile it with one or pass compute_loss=False."
            )

    def predict_labels(self, proba: np.ndarray) -> np.ndarray:
        """Decide labels from probabilities with this callback's threshold and positive class."""
        return M.predict_labels(proba, self.task, self.threshold, self.positive)

    def evaluate(self, proba: np.ndarray) -> dict[str, float]:
        """The F1 entries of ``logs`` computed from validation probabilities ``proba``."""
        pred = self.predict_labels(proba)
        counts = M.confusion_counts(self.y_val, pred, self.task, self.n_classes)
        per_class = M.f1_from_confusion(counts)
        out = {"val_macro_f1": float(np.mean(per_class))}
        if self.metric != "macro_f1":
            out[f"val_{self.metric}"] = M.METRICS.get(self.metric).fn(counts, self.positive)
        for i, f1 in enumerate(per_class):
            out[f"val_f1_{i}"] = float(f1)
        return out

    def _loss(self, proba: np.ndarray, targets: np.ndarray) -> float:
        loss = self.model.compute_loss(
            x=None, y=targets, y_pred=proba, sample_weight=None, training=False
        )
        return float(np.asarray(keras.ops.convert_to_numpy(loss), dtype=np.float64))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        out = np.asarray(self.model.predict(self.x_val, batch_size=self.batch_size, verbose=0))
        proba, targets = out, self._targets
        if self.task == "binary" and (out.ndim == 1 or out.shape[-1] == 1):  # one sigmoid
            out, targets = out.reshape(-1, 1), self._targets[:, 1:]
            proba = np.concatenate([1.0 - out, out], axis=1)
        loss = self._loss(out, targets) if self.compute_loss else None
        values = self.update(epoch, proba, loss)
        if logs is not None:
            logs.update(values)

    def update(
        self, epoch: int, proba: np.ndarray, val_loss: float | None = None
    ) -> dict[str, float]:
        """Score one epoch's validation probabilities: append to ``history``, keep the best.

        Returns the ``logs`` entries (``val_loss`` too when given). Used by
        :meth:`on_epoch_end`, and by fold-parallel training, which predicts every fold's
        validation rows in one pass and scores each fold with its own callback.
        """
        values = self.evaluate(proba)
        if val_loss is not None:
            values["val_loss"] = float(val_loss)
        self.history.append({"epoch": int(epoch), **values})
        self.last_proba = proba
        value = values[f"val_{self.metric}"]
        if self.best_epoch is None or value > self.best_value:
            self.best_epoch, self.best_value, self.best_proba = int(epoch), value, proba
        return values

    @property
    def best_per_class_f1(self) -> dict[str, float]:
        """F1 per class name at the best epoch (empty before the first epoch)."""
        if self.best_epoch is None:
            return {}
        row = next(h for h in self.history if h["epoch"] == self.best_epoch)
        return {name: row[f"val_f1_{i}"] for i, name in enumerate(self.class_names)}

    def confusion(self, which: str = "best") -> np.ndarray:
        """Confusion matrix ``(C, C)`` (or ``(L, 2, 2)``) at the ``"best"`` or ``"last"`` epoch."""
        proba = {"best": self.best_proba, "last": self.last_proba}.get(which, ...)
        if proba is ...:
            raise ValueError(f"which must be 'best' or 'last', but got {which!r}.")
        if proba is None:
            raise ValueError("no epoch has ended yet; train the model with this callback first.")
        return M.confusion_counts(self.y_val, self.predict_labels(proba), self.task, self.n_classes)
