"""The :class:`Dataset` every loader returns, the :class:`DataError` every user-caused data
problem raises, and the small checks they share.

Conventions: single-label ``y`` is int64 ``(N,)`` with values ``0..C-1``; multi-label ``y``
is int64 0/1 ``(N, L)``. Features ``x`` are float32 ``(N, F)`` (tabular: the code matrix of
:mod:`weightsearch.columns`, NaN where a value is missing), ``(N, T, F)``
(sequences) or ``(N, H, W, C)`` (images).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from weightsearch.base import check_task
from weightsearch.columns import Columns


class DataError(ValueError):
    """A user-caused data problem; the message names the file and column and what is expected."""


@dataclass
class Dataset:
    """Features, labels and their metadata.

    ``x`` is float32 ``(N, F)``, ``(N, T, F)`` or ``(N, H, W, C)``; ``y`` is int64 ``(N,)``
    labels ``0..C-1`` or int64 0/1 ``(N, L)`` for ``task == "multilabel"``. ``classes`` holds
    the class names (index = label) or the label names.
    """

    x: np.ndarray
    y: np.ndarray
    classes: list[str]
    task: str
    name: str
    feature_names: list[str] | None = None
    #: A table's column treatment (:class:`~weightsearch.columns.Columns`); ``None`` for arrays.
    columns: Columns | None = None

    def __post_init__(self) -> None:
        checked_task(self.task, f"{self.name}: task")
        if len(self.x) != len(self.y):
            raise DataError(
                f"{self.name}: x has {len(self.x)} rows but y has {len(self.y)}; "
                "expected the same number."
            )
        want_ndim = 2 if self.task == "multilabel" else 1
        if self.y.ndim != want_ndim:
            raise DataError(
                f"{self.name}: y for task {self.task!r} must be {want_ndim}-D, "
                f"but got shape {self.y.shape}."
            )

    @property
    def kind(self) -> str:
        """``"tabular"`` (x is 2-D), ``"sequence"`` (3-D) or ``"image"`` (4-D)."""
        return {2: "tabular", 3: "sequence", 4: "image"}.get(self.x.ndim, f"{self.x.ndim}-D")

    @property
    def n_classes(self) -> int:
        """Number of classes C (single-label) or labels L (multi-label)."""
        return len(self.classes)

    @property
    def n_outputs(self) -> int:
        """Model output width: C softmax outputs or L sigmoid outputs."""
        return self.n_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``x.shape[1:]``."""
        return tuple(int(d) for d in self.x.shape[1:])

    @property
    def class_counts(self) -> np.ndarray:
        """Rows per class (``np.bincount``) or positives per label (multi-label)."""
        if self.task == "multilabel":
            return self.y.sum(axis=0).astype(np.int64)
        return np.bincount(self.y, minlength=self.n_classes).astype(np.int64)

    @property
    def positive_class(self) -> int | None:
        """Binary: index of the minority class (ties → 1); otherwise ``None``."""
        if self.task != "binary":
            return None
        counts = self.class_counts
        return 0 if counts[0] < counts[1] else 1

    def subset(self, idx: np.ndarray | Sequence[int]) -> Dataset:
        """The rows ``idx`` (integer indices or a boolean mask) with the same metadata."""
        idx = np.asarray(idx)
        return Dataset(
            x=self.x[idx],
            y=self.y[idx],
            classes=list(self.classes),
            task=self.task,
            name=self.name,
            feature_names=None if self.feature_names is None else list(self.feature_names),
            columns=self.columns,
        )

    def __len__(self) -> int:
        return len(self.y)



def checked_task(task: object, where: str = "task") -> str:
    """:func:`weightsearch.base.check_task`, raising :class:`DataError`."""
    try:
        return check_task(task, where)
    except ValueError as err:
        raise DataError(str(err)) from None


IN_MEMORY = {"DataFrame": "The DataFrame", "arrays": "The arrays"}  # from_frame, from_arrays


def where_of(source: str) -> str:
    """How an error names the data: ``Data file 'x.csv'``, or ``The DataFrame`` in memory."""
    return IN_MEMORY.get(source, f"Data file {source!r}")


def quote_list(items: Sequence[Any], limit: int = 10) -> str:
    """``'a', 'b', ... (12 in all)``: the first ``limit`` items, quoted."""
    shown = ", ".join(repr(i) for i in list(items)[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")
