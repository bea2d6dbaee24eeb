"""Epoch-level classification metrics from one confusion matrix (numpy only).

Every score is computed on the **whole** validation set from integer counts, never as an
average of per-batch values, so it equals scikit-learn's value on the same predictions.

Conventions:

- **Macro-F1** is the mean of the per-class F1 values,
  ``macro_f1 = (1/C) Σ_c 2·TP_c / (2·TP_c + FP_c + FN_c)`` (the "averaged F1" of
  Opitz & Burst, 2019, "Macro F1 and Macro F1"), *not* the F1 of the macro-averaged
  precision and recall; the two differ and can rank models differently.
- A class that is absent from the fold **and** never predicted has ``2TP + FP + FN = 0``
  and counts as F1 = 0 in the average (``labels=range(C)`` semantics, i.e. scikit-learn's
  ``f1_score(y, p, average="macro", labels=range(C), zero_division=0)``). The number of
  classes is always given explicitly, so a rare class missing from a fold still pulls the
  average down instead of silently disappearing.
- Multi-label inputs are multi-hot ``(N, L)`` arrays; each label is scored as its own binary
  problem from a 2×2 matrix and "per-class" means "per label, F1 of the positive value".
- ``balanced_accuracy`` is scikit-learn's (``adjusted=False``): the mean recall over the
  classes present in ``y_true``; for multi-label data it is the mean over labels of that
  binary score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from weightsearch._registry import Registry, normalise_name
from weightsearch.base import TASKS, check_task

__all__ = [
    "METRICS",
    "Metric",
    "check_labels",
    "check_multi_hot",
    "check_n_classes",
    "check_positive",
    "check_decision_weights",
    "check_threshold",
    "confusion_counts",
    "cross_fit_decision",
    "decide",
    "confusion_matrix",
    "f1_from_confusion",
    "get_metric",
    "macro_f1",
    "metric",
    "multilabel_confusion_matrix",
    "per_class_f1",
    "predict_labels",
    "score",
    "tune_decision_weights",
    "tune_threshold",
]


# --------------------------------------------------------------------------- validation


def _as_int_array(values: object, name: str) -> np.ndarray:
    """``values`` as int64, rejecting non-integral or non-finite entries."""
    arr = np.asarray(values)
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must hold integer labels, but got dtype {arr.dtype}.")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer labels, but got non-integer values.")
    return arr.astype(np.int64)


def check_labels(y: object, name: str, n_classes: int) -> np.ndarray:
    """1-D int64 labels in ``0..n_classes-1``."""
    arr = _as_int_array(y, name)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D class labels of shape (N,), but got shape {arr.shape}."
        )
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        bad = np.unique(arr[(arr < 0) | (arr >= n_classes)])[:5].tolist()
        raise ValueError(
            f"{name} must hold class labels in 0..{n_classes - 1} (n_classes={n_classes}), "
            f"but got {bad}."
        )
    return arr


def check_multi_hot(y: object, name: str, n_labels: int | None = None) -> np.ndarray:
    """2-D int64 0/1 array ``(N, L)``."""
    arr = _as_int_array(y, name)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a multi-hot array of shape (N, L), but got shape {arr.shape}."
        )
    if n_labels is not None and arr.shape[1] != n_labels:
        raise ValueError(
            f"{name} must have {n_labels} label columns (n_classes={n_labels}), "
            f"but got {arr.shape[1]}."
        )
    if arr.size and not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name} must hold only 0 and 1 (multi-hot), but got other values.")
    return arr


def check_n_classes(n_classes: object, task: str | None = None) -> int:
    """``n_classes`` as an int: 2 for binary, >= 2 for multiclass, >= 1 labels otherwise."""
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer):
        raise ValueError(f"n_classes must be a positive integer, but got {n_classes!r}.")
    n = int(n_classes)
    low = 1 if task in (None, "multilabel") else 2
    if n < low:
        raise ValueError(f"n_classes must be >= {low} for task {task!r}, but got {n}.")
    if task == "binary" and n != 2:
        raise ValueError(f"n_classes must be 2 for task 'binary', but got {n}.")
    return n


def _check_pair(
    y_true: object, y_pred: object, *, task: str, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(y_true, y_pred)``: labels ``(N,)`` or multi-hot ``(N, L)``."""
    if task == "multilabel":
        t = check_multi_hot(y_true, "y_true", n_classes)
        p = check_multi_hot(y_pred, "y_pred", n_classes)
    else:
        t = check_labels(y_true, "y_true", n_classes)
        p = check_labels(y_pred, "y_pred", n_classes)
    if t.shape != p.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape, but got {t.shape} and {p.shape}."
        )
    if t.shape[0] == 0:
        raise ValueError("y_true is empty; a score needs at least one row.")
    return t, p


def check_positive(positive: object, n_classes: int = 2) -> int:
    """The positive class index, in ``0..n_classes-1``."""
    if isinstance(positive, bool) or not isinstance(positive, int | np.integer):
        raise ValueError(f"positive must be a class index 0 or 1, but got {positive!r}.")
    if not 0 <= int(positive) < n_classes:
        raise ValueError(
            f"positive must be a class index in 0..{n_classes - 1}, but got {positive!r}."
        )
    return int(positive)


# --------------------------------------------------------------------------- counts


def confusion_matrix(y_true: object, y_pred: object, n_classes: int) -> np.ndarray:
    """int64 ``(C, C)`` counts, rows = true class, columns = predicted class.

    ``cm = bincount(C·t + p, minlength=C²).reshape(C, C)``.
    """
    n = check_n_classes(n_classes)
    t = check_labels(y_true, "y_true", n)
    p = check_labels(y_pred, "y_pred", n)
    if t.shape != p.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape, but got {t.shape} and {p.shape}."
        )
    return np.bincount(n * t + p, minlength=n * n).reshape(n, n).astype(np.int64)


def multilabel_confusion_matrix(y_true: object, y_pred: object) -> np.ndarray:
    """int64 ``(L, 2, 2)``: one ``[[TN, FP], [FN, TP]]`` matrix per label (as scikit-learn)."""
    t = check_multi_hot(y_true, "y_true")
    p = check_multi_hot(y_pred, "y_pred", t.shape[1])
    if t.shape != p.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape, but got {t.shape} and {p.shape}."
        )
    tp = np.sum(t & p, axis=0)
    fp = np.sum((1 - t) & p, axis=0)
    fn = np.sum(t & (1 - p), axis=0)
    tn = t.shape[0] - tp - fp - fn
    return np.stack([np.stack([tn, fp], -1), np.stack([fn, tp], -1)], 1).astype(np.int64)


def f1_from_confusion(cm: object) -> np.ndarray:
    """float64 per-class F1 = 2TP / (2TP + FP + FN), 0 where the denominator is 0.

    ``cm`` is a ``(C, C)`` matrix (rows true) or an ``(L, 2, 2)`` stack of per-label
    matrices, for which the F1 of the positive value of each label is returned.
    """
    m = np.asarray(cm)
    if m.ndim == 3 and m.shape[1:] == (2, 2):
        tp = m[:, 1, 1].astype(np.float64)
        fp = m[:, 0, 1].astype(np.float64)
        fn = m[:, 1, 0].astype(np.float64)
    elif m.ndim == 2 and m.shape[0] == m.shape[1]:
        tp = np.diag(m).astype(np.float64)
        fp = m.sum(axis=0) - tp
        fn = m.sum(axis=1) - tp
    else:
        raise ValueError(
            f"cm must be a square (C, C) matrix or an (L, 2, 2) stack, but got shape {m.shape}."
        )
    denom = 2.0 * tp + fp + fn
    out = np.zeros_like(tp)
    np.divide(2.0 * tp, denom, out=out, where=denom > 0)
    return out


def confusion_counts(t: object, p: object, task: str, n_classes: int) -> np.ndarray:
    """What every metric scores: :func:`multilabel_confusion_matrix` ``(L, 2, 2)`` for task
    ``multilabel``, else :func:`confusion_matrix` ``(C, C)``."""
    if task == "multilabel":
        return multilabel_confusion_matrix(t, p)
    return confusion_matrix(t, p, n_classes)


def _recall_present(m: np.ndarray) -> float:
    """Mean recall over the rows (true classes) with support > 0."""
    support = m.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(m)[present] / support[present]))


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Metric:
    """A score computed from the counts of one validation pass (higher is better).

    ``fn(counts, positive)`` receives a ``(C, C)`` confusion matrix for single-label tasks
    or an ``(L, 2, 2)`` stack for multi-label; ``tasks`` lists the tasks it is defined for.
    """

    name: str
    fn: Callable[[np.ndarray, int], float]
    tasks: tuple[str, ...] = TASKS

    @property
    def doc(self) -> str:
        return (self.fn.__doc__ or "").strip()


METRICS: Registry[Metric] = Registry("metric")


def metric(
    name: str, *, aliases: tuple[str, ...] = (), tasks: tuple[str, ...] = TASKS
) -> Callable[[Callable[[np.ndarray, int], float]], Callable[[np.ndarray, int], float]]:
    """Register ``fn(counts, positive)`` as metric ``name`` for ``tasks``; its docstring
    (required) gives the formula."""
    for task in tasks:
        check_task(task, f"metric {name!r}: tasks")

    def decorator(fn: Callable[[np.ndarray, int], float]) -> Callable[[np.ndarray, int], float]:
        METRICS.register(name, aliases=aliases)(Metric(normalise_name(name), fn, tuple(tasks)))
        return fn

    return decorator


@metric("macro_f1", aliases=("f1_macro",))
def _macro_f1(counts: np.ndarray, positive: int) -> float:
    """macro_f1 = (1/C) Σ_c 2TP_c / (2TP_c + FP_c + FN_c), the unweighted mean of per-class
    F1."""
    return float(np.mean(f1_from_confusion(counts)))


@metric("weighted_f1", aliases=("f1_weighted",))
def _weighted_f1(counts: np.ndarray, positive: int) -> float:
    """weighted_f1 = Σ_c n_c·F1_c / Σ_c n_c, the support-weighted mean of per-class F1
    (n_c = true count).

    For multi-label data n_l is the number of positives of label l; when every support is 0
    the plain mean is used (as scikit-learn).
    """
    f1 = f1_from_confusion(counts)
    support = counts[:, 1, :].sum(axis=1) if counts.ndim == 3 else counts.sum(axis=1)
    if support.sum() == 0:
        return float(np.mean(f1))
    return float(np.sum(f1 * support) / support.sum())


@metric("balanced_accuracy", aliases=("bacc",))
def _balanced_accuracy(counts: np.ndarray, positive: int) -> float:
    """balanced_accuracy = mean of the recalls TP_c / n_c over the classes present in y_true
    (scikit-learn, adjusted=False).

    Multi-label: the mean over labels of that binary score.
    """
    if counts.ndim == 3:
        return float(np.mean([_recall_present(m) for m in counts]))
    return _recall_present(counts)


@metric("positive_f1", aliases=("binary_f1", "f1_positive"), tasks=("binary",))
def _positive_f1(counts: np.ndarray, positive: int) -> float:
    """positive_f1 = 2TP / (2TP + FP + FN) for class ``positive`` only."""
    return float(f1_from_confusion(counts)[positive])


def get_metric(metric: str, task: str) -> Metric:
    """The entry of ``metric`` (a name or alias); ``ValueError`` if it is not defined for
    ``task``."""
    m = METRICS.get(metric)
    if task not in m.tasks:
        raise ValueError(
            f"metric {m.name!r} is defined for {', '.join(m.tasks)} tasks only, "
            f"but the task is {task!r}."
        )
    return m


# --------------------------------------------------------------------------- public scores


def score(
    metric: str,
    y_true: object,
    y_pred: object,
    *,
    task: str,
    n_classes: int,
    positive: int = 1,
) -> float:
    """``metric`` (a name in :data:`METRICS`) of decided labels, as a float64."""
    check_task(task)
    n = check_n_classes(n_classes, task)
    m = get_metric(metric, task)
    pos = check_positive(positive) if task == "binary" else positive
    t, p = _check_pair(y_true, y_pred, task=task, n_classes=n)
    return m.fn(confusion_counts(t, p, task, n), pos)


def macro_f1(y_true: object, y_pred: object, n_classes: int) -> float:
    """Mean over classes of 2TP/(2TP+FP+FN) with ``labels=range(n_classes)``.

    Equals ``sklearn.metrics.f1_score(y_true, y_pred, average="macro",
    labels=range(n_classes), zero_division=0)``. 2-D multi-hot ``(N, L)`` inputs are scored
    as multi-label data (mean over labels of the positive-value F1; ``n_classes = L``).
    """
    task = "multilabel" if np.ndim(y_true) == 2 else "multiclass"
    n = check_n_classes(n_classes)
    t, p = _check_pair(y_true, y_pred, task=task, n_classes=n)
    return float(np.mean(f1_from_confusion(confusion_counts(t, p, task, n))))


def per_class_f1(y_true: object, y_pred: object, task: str, n_classes: int) -> np.ndarray:
    """float64 ``(C,)`` F1 per class (single-label) or per label (multi-label)."""
    check_task(task)
    n = check_n_classes(n_classes, task)
    t, p = _check_pair(y_true, y_pred, task=task, n_classes=n)
    return f1_from_confusion(confusion_counts(t, p, task, n))


def check_threshold(threshold: object, n_labels: int | None) -> float | np.ndarray:
    """A scalar in [0, 1], or (multi-label) an ``(L,)`` array of them."""
    thr = np.asarray(threshold, dtype=np.float64) if not isinstance(threshold, str) else None
    if thr is None or thr.ndim > 1 or (thr.ndim == 1 and n_labels is None):
        expected = "a number in [0, 1]" + (
            f" or an array of {n_labels} numbers in [0, 1]" if n_labels is not None else ""
        )
        raise ValueError(f"threshold must be {expected}, but got {threshold!r}.")
    if thr.ndim == 1 and thr.shape[0] != n_labels:
        raise ValueError(
            f"threshold must be a number or an array of {n_labels} per-label thresholds, "
            f"but got {thr.shape[0]} values."
        )
    if not np.all(np.isfinite(thr)) or np.any(thr < 0) or np.any(thr > 1):
        raise ValueError(f"threshold must lie in [0, 1], but got {threshold!r}.")
    return float(thr) if thr.ndim == 0 else thr


def predict_labels(
    proba: object, task: str, threshold: float | Sequence[float] = 0.5, positive: int = 1
) -> np.ndarray:
    """:func:`decide` with a threshold of 0.5 by default and no multiclass weights."""
    return decide(proba, task, threshold=threshold, positive=positive)


def check_decision_weights(weights: object, n_classes: int) -> np.ndarray:
    """``(C,)`` positive finite per-class decision weights, as float64."""
    w = np.asarray(weights, dtype=np.float64) if not isinstance(weights, str) else None
    if w is None or w.ndim != 1 or w.shape[0] != n_classes:
        raise ValueError(
            f"decision weights must be a list of {n_classes} numbers (one per class), "
            f"but got {weights!r}."
        )
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"decision weights must be positive finite numbers, but got {weights!r}.")
    return w


def decide(
    proba: object,
    task: str,
    *,
    threshold: float | Sequence[float] | None = None,
    positive: int = 1,
    weights: Sequence[float] | None = None,
) -> np.ndarray:
    """The one decision rule: labels from probabilities ``(N, C)`` (softmax) or ``(N, L)``
    (sigmoid); ``threshold`` ``None`` means 0.5.

    multiclass: ``argmax_c w_c · p_c`` (``weights`` ``None``: ``w_c = 1``, plain argmax);
    binary: ``positive`` where ``p[:, positive] >= threshold``, else the other class;
    multilabel: ``p >= threshold`` (scalar or per-label ``(L,)``), as int64 0/1.
    Returns int64 labels ``(N,)`` or ``(N, L)``.
    """
    check_task(task)
    p = np.asarray(proba)
    if p.ndim != 2:
        raise ValueError(f"proba must be a 2-D array (N, C), but got shape {p.shape}.")
    if weights is not None and task != "multiclass":
        raise ValueError(f"decision weights are for multiclass tasks, but the task is {task!r}.")
    if threshold is None:
        threshold = 0.5
    if task == "multiclass":
        if weights is not None:
            p = p * check_decision_weights(weights, p.shape[1])
        return np.argmax(p, axis=1).astype(np.int64)
    if task == "binary":
        if p.shape[1] != 2:
            raise ValueError(
                "binary proba must have 2 columns (a 2-way softmax), "
                f"but got shape {p.shape}."
            )
        pos = check_positive(positive)
        thr = check_threshold(threshold, None)
        return np.where(p[:, pos] >= thr, pos, 1 - pos).astype(np.int64)
    thr = check_threshold(threshold, p.shape[1])
    return (p >= thr).astype(np.int64)


def default_grid() -> np.ndarray:
    """Thresholds 0.05, 0.06, ..., 0.95."""
    return np.round(np.arange(5, 96) / 100.0, 2)


def tune_threshold(
    y_true: object,
    proba: object,
    *,
    task: str,
    metric: str = "macro_f1",
    positive: int = 1,
    grid: Sequence[float] | None = None,
) -> tuple[float, float]:
    """Best single threshold on ``grid`` for ``metric``: ``(threshold, score)``.

    Binary (threshold on ``proba[:, positive]``) and multilabel (one threshold shared by all
    labels) only. Ties go to the threshold closest to 0.5 (then the smaller one). Tune on
    validation predictions, never on the test set.
    """
    check_task(task)
    if task == "multiclass":
        raise ValueError(
            "tune_threshold needs task 'binary' or 'multilabel'; multiclass decisions use "
            "argmax and have no threshold, but got task 'multiclass'."
        )
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"proba must be a 2-D array (N, C), but got shape {p.shape}.")
    n = 2 if task == "binary" else p.shape[1]
    get_metric(metric, task)
    g = default_grid() if grid is None else np.asarray(grid, dtype=np.float64)
    if g.ndim != 1 or g.size == 0 or not np.all(np.isfinite(g)) or g.min() < 0 or g.max() > 1:
        raise ValueError(
            f"grid must be a non-empty 1-D list of numbers in [0, 1], but got {grid!r}."
        )
    if task == "binary":
        t = check_labels(y_true, "y_true", 2)
    else:
        t = check_multi_hot(y_true, "y_true", n)
    if t.shape[0] != p.shape[0]:
        raise ValueError(
            f"y_true and proba must have the same number of rows, but got {t.shape[0]} "
            f"and {p.shape[0]}."
        )
    best: tuple[float, float] | None = None
    for thr in g:
        pred = predict_labels(p, task, float(thr), positive)
        s = score(metric, t, pred, task=task, n_classes=n, positive=positive)
        if best is None or s > best[1] + 1e-12:
            best = (float(thr), s)
        elif abs(s - best[1]) <= 1e-12:
            d_new, d_old = abs(thr - 0.5), abs(best[0] - 0.5)
            if d_new < d_old - 1e-12 or (abs(d_new - d_old) <= 1e-12 and thr < best[0]):
                best = (float(thr), s)
    assert best is not None
    return best


#: The log grid of a per-class decision weight: w_c = 2^k, k = −3..3.
WEIGHT_GRID = tuple(2.0 ** k for k in range(-3, 4))


def tune_decision_weights(
    y_true: object,
    proba: object,
    *,
    n_classes: int,
    metric: str = "macro_f1",
    grid: Sequence[float] = WEIGHT_GRID,
    sweeps: int = 3,
) -> tuple[np.ndarray, float]:
    """Per-class weights w for the multiclass rule ``argmax_c w_c · p_c``, by coordinate
    ascent: starting from w = 1, each sweep sets each w_c in turn to the ``grid`` value that
    maximises ``metric`` with the others held; it stops after ``sweeps`` sweeps or when a
    sweep changes nothing. A change must beat the current score by more than 1e-12 (ties keep
    the current value, so w = 1 stays where tuning gains nothing). Returns ``(w, score)``.
    Tune on validation predictions, never on the test set."""
    n = check_n_classes(n_classes, "multiclass")
    get_metric(metric, "multiclass")
    t = check_labels(y_true, "y_true", n)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape != (t.shape[0], n):
        raise ValueError(f"proba must have shape ({t.shape[0]}, {n}), but got {p.shape}.")

    def value(w: np.ndarray) -> float:
        return score(metric, t, decide(p, "multiclass", weights=w), task="multiclass",
                     n_classes=n)

    w = np.ones(n)
    best = value(w)
    for _ in range(int(sweeps)):
        changed = False
        for c in range(n):
            for g in grid:
                if g == w[c]:
                    continue
                trial = w.copy()
                trial[c] = g
                s = value(trial)
                if s > best + 1e-12:
                    w, best, changed = trial, s, True
        if not changed:
            break
    return w, float(best)


def cross_fit(
    y_true: object,
    proba: object,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    fit: Callable[[np.ndarray, np.ndarray], Any],
    evaluate: Callable[[np.ndarray, np.ndarray, Any], float],
) -> float:
    """The honest estimate of a tuned decision: the mean over folds k of
    ``evaluate(y_k, p_k, fit(y_rest, p_rest))``, where the decision (a threshold, class
    weights) is fitted on the rows of the other folds only, never on fold k's
    (``folds[k][1]``)."""
    t, p = np.asarray(y_true), np.asarray(proba)
    values = []
    for _tr, va in folds:
        rest = np.ones(len(t), dtype=bool)
        rest[va] = False
        values.append(evaluate(t[va], p[va], fit(t[rest], p[rest])))
    return float(np.mean(values))


def cross_fit_decision(
    y_true: object,
    proba: object,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    n_classes: int,
    metric: str = "macro_f1",
    tune: Callable[..., tuple[np.ndarray, float]] | None = None,
) -> float:
    """:func:`cross_fit` of multiclass decision weights: tuned by ``tune`` (default
    :func:`tune_decision_weights`) on the other folds, scored by ``metric`` on fold k."""
    tune = tune_decision_weights if tune is None else tune
    return cross_fit(
        y_true, np.asarray(proba, dtype=np.float64), folds,
        fit=lambda y, p: tune(y, p, n_classes=n_classes, metric=metric)[0],
        evaluate=lambda y, p, w: score(metric, y, decide(p, "multiclass", weights=w),
                                       task="multiclass", n_classes=n_classes),
    )
