"""Stratified splits: a train/test split, k folds, and the check that every class (or each
label's 0s and 1s) has enough rows for the folds."""

from __future__ import annotations

from typing import Any

import numpy as np

from weightsearch.data.dataset import DataError, Dataset, checked_task


def _check_fold_count(folds: object) -> None:
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise DataError(f"folds must be an integer ≥ 2, but got {folds!r}.")


def check_folds(ds: Dataset, folds: int) -> None:
    """``DataError`` if a class (or a label's 0s or 1s) has fewer rows than ``folds``."""
    _check_fold_count(folds)
    counts = ds.class_counts
    if ds.task == "multilabel":
        for j, name in enumerate(ds.classes):
            for what, n in (("1s", int(counts[j])), ("0s", len(ds) - int(counts[j]))):
                if n < folds:
                    raise DataError(
                        f"{ds.name}: label {name!r} has {n} {what}, fewer than the {folds} CV "
                        "folds; use fewer folds or more data."
                    )
        return
    for c, name in enumerate(ds.classes):
        if counts[c] < folds:
            raise DataError(
                f"{ds.name}: class {name!r} has {int(counts[c])} row(s), fewer than the "
                f"{folds} CV folds; use fewer folds or more data."
            )


def train_test_split(ds: Dataset, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified ``(train_idx, test_idx)`` (sorted int64); ``test_size == 0`` → (all, empty)."""
    if isinstance(test_size, bool) or not isinstance(test_size, int | float) or not (
        0.0 <= float(test_size) < 1.0
    ):
        raise DataError(f"test_size must be a number in [0, 1), but got {test_size!r}.")
    n = len(ds)
    if test_size == 0:
        return np.arange(n, dtype=np.int64), np.empty(0, dtype=np.int64)
    if ds.task == "multilabel":
        from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

        splitter: Any = MultilabelStratifiedShuffleSplit(
            n_splits=1, test_size=float(test_size), random_state=seed
        )
    else:
        from sklearn.model_selection import StratifiedShuffleSplit

        splitter = StratifiedShuffleSplit(n_splits=1, test_size=float(test_size), random_state=seed)
    try:
        train, test = next(splitter.split(np.zeros((n, 1)), ds.y))
    except ValueError as err:
        raise DataError(
            f"{ds.name}: cannot make a stratified split with test_size={test_size} "
            f"(class counts {ds.class_counts.tolist()}): {err}"
        ) from None
    if len(test) == 0 or len(train) == 0:
        raise DataError(
            f"{ds.name}: test_size={test_size} of {n} rows leaves an empty train or test set."
        )
    return np.sort(train).astype(np.int64), np.sort(test).astype(np.int64)


def kfold(y: np.ndarray, task: str, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified ``[(train_idx, val_idx)] * folds`` (shuffled with ``seed``).

    Single-label uses ``StratifiedKFold``; multi-label uses iterstrat's
    ``MultilabelStratifiedKFold`` (iterative stratification of every label).
    """
    checked_task(task)
    _check_fold_count(folds)
    y = np.asarray(y)
    if task == "multilabel":
        from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

        splitter: Any = MultilabelStratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        from sklearn.model_selection import StratifiedKFold

        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    try:
        splits = list(splitter.split(np.zeros((len(y), 1)), y))
    except ValueError as err:
        raise DataError(f"cannot make {folds} stratified folds: {err}") from None
    return [(np.asarray(tr, dtype=np.int64), np.asarray(va, dtype=np.int64)) for tr, va in splits]

