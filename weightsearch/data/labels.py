"""Labels: encoding raw label values, checking multi-hot columns, detecting and overriding the
task, and the float targets a model trains on."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from weightsearch.base import check_task
from weightsearch.data.dataset import DataError, checked_task, quote_list


def encode_labels(values: np.ndarray, where: str) -> tuple[np.ndarray, list[str]]:
    """Encode single labels to int64 ``0..C-1`` and return ``(y, class_names)``.

    Integer labels that are exactly ``0..C-1`` keep their order; other integer labels and
    any non-integer labels (strings, floats) are encoded in sorted order.
    """
    values = np.asarray(values)
    if values.dtype.kind in "biuf":
        as_float = values.astype(np.float64)
        if not np.isfinite(as_float).all():
            holes, infinite = int(np.isnan(as_float).sum()), int(np.isinf(as_float).sum())
            what = " and ".join(
                f"{k} {kind} label(s)" for k, kind in ((holes, "missing"), (infinite, "infinite"))
                if k
            )
            raise DataError(f"{where} has {what}; expected a label in every row.")
        if values.dtype.kind == "b":
            uniq = np.unique(values)
            return np.searchsorted(uniq, values).astype(np.int64), [str(u) for u in uniq]
        if values.dtype.kind in "iu":  # exact: float64 would merge labels above 2**53
            ints = values
        elif np.all(as_float == np.round(as_float)) and np.all(np.abs(as_float) <= 2**53):
            ints = as_float.astype(np.int64)  # integral floats that int64 holds exactly
        else:
            uniq = np.unique(as_float)
            return np.searchsorted(uniq, as_float).astype(np.int64), [str(u) for u in uniq]
        uniq = np.unique(ints)
        names = [str(int(u)) for u in uniq]
        if np.array_equal(uniq, np.arange(len(uniq))):
            return ints.astype(np.int64), names
        return np.searchsorted(uniq, ints).astype(np.int64), names
    missing = pd.isna(values)
    if missing.any():
        raise DataError(
            f"{where} has {int(missing.sum())} missing label(s); expected a label in every row."
        )
    strings = np.array([str(v) for v in values], dtype=object)
    uniq = sorted(set(strings.tolist()))
    lookup = {name: i for i, name in enumerate(uniq)}
    return np.array([lookup[s] for s in strings], dtype=np.int64), uniq


def check_multihot(col: np.ndarray, where: str) -> np.ndarray:
    """A 0/1 column (numbers or booleans) as int64; ``DataError`` naming ``where`` otherwise."""
    col = np.asarray(col)
    ok = col.dtype.kind in "biuf"
    if ok:
        as_float = col.astype(np.float64)
        bad_mask = ~np.isin(as_float, (0.0, 1.0))
        ok = not bad_mask.any()
    if not ok:
        if col.dtype.kind in "biuf":
            shown = pd.unique(col[bad_mask])[:5]
        else:
            shown = pd.unique(pd.Series(col, dtype=object))[:5]
        raise DataError(
            f"{where} must contain only 0/1 for a multi-label target, but got values "
            f"{[v.item() if isinstance(v, np.generic) else v for v in shown]}."
        )
    return as_float.astype(np.int64)


def resolve_task(
    y: np.ndarray, classes: list[str], detected: str, task: str | None, where: str
) -> tuple[np.ndarray, list[str], str]:
    """Apply a ``task=`` override to the detected task, converting one-hot ``y`` if asked."""
    if task is None:
        return y, classes, detected
    checked_task(task, f"{where}: task")
    if detected == "multilabel":
        if task == "multilabel":
            return y, classes, task
        if not np.all(y.sum(axis=1) == 1):
            raise DataError(
                f"task={task!r} needs one label per row, but {where} is multi-label "
                "(some rows have zero or several 1s)."
            )
        if task == "binary" and y.shape[1] != 2:
            raise DataError(
                f"task='binary' needs 2 classes, but {where} has {y.shape[1]} one-hot columns."
            )
        labels = y.argmax(axis=1).astype(np.int64)
        present = np.unique(labels)
        if len(present) < 2:
            raise DataError(
                f"{where} has a single class {classes[present[0]]!r} after one-hot decoding; "
                "expected at least 2 classes."
            )
        return labels, classes, task
    if task == "multilabel":
        raise DataError(
            f"task='multilabel' needs a 2-D 0/1 y or a list of target columns, "
            f"but {where} holds single labels ({len(classes)} classes)."
        )
    if task == "binary" and len(classes) != 2:
        raise DataError(
            f"task='binary' needs exactly 2 classes, but {where} has {len(classes)}: "
            f"{quote_list(classes)}."
        )
    return y, classes, task


def single_label(y: np.ndarray, classes: list[str], where: str) -> str:
    """Detected task for encoded labels; ``DataError`` for a single class."""
    if len(classes) < 2:
        raise DataError(
            f"{where} has a single class {classes[0]!r}; expected at least 2 classes."
        )
    return "binary" if len(classes) == 2 else "multiclass"


def check_label_columns(y: np.ndarray, names: list[str], where: Callable[[str], str]) -> None:
    """Each multi-label column needs both positives and negatives."""
    for j, name in enumerate(names):
        pos = int(y[:, j].sum())
        if pos == 0 or pos == len(y):
            which = "no positives (1s)" if pos == 0 else "no negatives (0s)"
            raise DataError(f"{where(name)} has {which}; expected both 0s and 1s.")



def model_targets(y: np.ndarray, task: str, n_classes: int) -> np.ndarray:
    """Float32 model targets: one-hot ``(N, C)`` (``eye(C)[y]``) or multi-hot ``(N, L)``."""
    y = np.asarray(y)
    if task == "multilabel":
        if y.ndim != 2 or y.shape[1] != n_classes:
            raise ValueError(
                f"multi-label y must have shape (N, {n_classes}), but got {y.shape}."
            )
        return y.astype(np.float32)
    check_task(task)
    if y.ndim != 1:
        raise ValueError(f"single-label y must have shape (N,), but got {y.shape}.")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(
            f"labels must be in 0..{n_classes - 1}, but got values in {y.min()}..{y.max()}."
        )
    return np.eye(n_classes, dtype=np.float32)[y.astype(np.int64)]


