"""A table's feature columns: which are numeric, categorical or dropped (``data.categorical``,
``data.drop``), how holes are met (``data.missing``), and their code matrix
(:mod:`weightsearch.columns`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from weightsearch.columns import CATEGORICAL_AUTO, MISSING_MODES, Column, Columns, texts
from weightsearch.data.dataset import DataError, Dataset, quote_list, where_of
from weightsearch.data.labels import (
    check_label_columns,
    check_multihot,
    encode_labels,
    resolve_task,
    single_label,
)

__all__ = ["DEFAULT_TARGETS", "check_treatment", "table_columns", "table_dataset"]

DEFAULT_TARGETS = ("label", "target")


def check_treatment(categorical: Any, missing: Any, drop: Any, where: str = "data") -> None:
    """``DataError`` unless ``categorical`` is ``"auto"`` or a list of names, ``missing`` one
    of :data:`~weightsearch.columns.MISSING_MODES` and ``drop`` a list of names."""
    if not (categorical == CATEGORICAL_AUTO or _names(categorical)):
        raise DataError(
            f"{where}.categorical: expected \"auto\" or a list of column names, but got "
            f"{categorical!r}."
        )
    if missing not in MISSING_MODES:
        raise DataError(
            f"{where}.missing: expected one of {', '.join(map(repr, MISSING_MODES))}, "
            f"but got {missing!r}."
        )
    if not _names(drop):
        raise DataError(f"{where}.drop: expected a list of column names, but got {drop!r}.")


def _names(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def table_columns(
    df: pd.DataFrame,
    features: list[str],
    source: str,
    *,
    categorical: str | Sequence[str] = CATEGORICAL_AUTO,
    missing: str = "impute",
    drop: Sequence[str] = (),
) -> tuple[Columns, np.ndarray]:
    """The :class:`~weightsearch.columns.Columns` of ``df``'s ``features`` and their float32
    code matrix; every user-caused problem is a one-line ``DataError`` naming the column."""
    check_treatment(categorical, missing, list(drop) if isinstance(drop, tuple) else drop)
    where = where_of(source)
    for key, named in (("data.drop", list(drop)),
                       ("data.categorical", [] if categorical == CATEGORICAL_AUTO
                        else list(categorical))):
        unknown = [n for n in named if n not in features]
        if unknown:
            others = [n for n in unknown if n in df.columns]  # the target, or ignored ones
            problem = (f"names the target column(s) {quote_list(others)}, not features"
                       if others == unknown else
                       f"names column(s) {quote_list(unknown)} that the table does not have")
            raise DataError(
                f"{where}: {key} {problem}; expected some of the feature columns "
                f"{quote_list(features)}."
            )
    kept = [c for c in features if c not in set(drop)]
    if not kept:
        raise DataError(f"{where} has no feature columns left besides the target and data.drop.")
    if categorical == CATEGORICAL_AUTO:
        cats = {c for c in kept if not _is_numeric(df[c])}
    else:
        cats = set(categorical) - set(drop)
        strays = [c for c in kept if c not in cats and not _is_numeric(df[c])]
        if strays:
            raise DataError(
                f"{where}: feature column(s) {quote_list(strays)} are not numeric (text or "
                "True/False), but the data.categorical list leaves them out; expected them in "
                "data.categorical (or data.categorical = \"auto\"), or in data.drop."
            )
    n = len(df)
    columns, holed = [], []
    for name in kept:
        series = df[name]
        holes = int(series.isna().sum()) if name in cats else int(
            pd.to_numeric(series, errors="coerce").isna().sum()
        )
        if holes == n:
            raise DataError(
                f"{where}: column {name!r} is missing in every row ({n} of {n}); expected "
                "some values (or list it in data.drop)."
            )
        if holes and missing == "error":
            rows = np.flatnonzero(series.isna().to_numpy())[:5] + 1
            holed.append(f"column {name!r} has {holes} missing value(s), at data row(s) "
                         f"{quote_list(rows.tolist(), 5)}")
            continue
        if name in cats:
            levels = sorted({t for t in texts(series) if t is not None})
            if len(levels) > n / 2:
                raise DataError(
                    f"{where}: categorical column {name!r} has {len(levels)} levels in {n} "
                    "rows; expected at most half as many levels as rows (an ID column? list it "
                    "in data.drop)."
                )
            columns.append(Column(name, "categorical", tuple(levels), holes, str(series.dtype)))
        else:
            columns.append(Column(name, "numeric", (), holes, str(series.dtype)))
    if holed:  # every column with holes at once, so one run lists them all
        raise DataError(
            f"{where}: {'; '.join(holed)} (the first data row is 1), and data.missing is "
            "\"error\"; expected a value in every row (or data.missing = \"impute\")."
        )
    cols = Columns(tuple(columns), tuple(c for c in features if c in set(drop)))
    x = cols.codes(df)
    num = cols.numeric
    if num:
        block = x[:, num]
        bad = np.isinf(block) | (np.isinf(df[[cols.features[i].name for i in num]]
                                          .to_numpy(dtype=np.float64, na_value=np.nan)))
        if bad.any():
            names = [cols.features[num[j]].name for j in np.flatnonzero(bad.any(axis=0))]
            rows = np.flatnonzero(bad.any(axis=1))
            raise DataError(
                f"{where}: feature column(s) {quote_list(names)} hold infinite values or values "
                f"beyond the float32 range in {len(rows)} row(s), at data row(s) "
                f"{quote_list([int(r) + 1 for r in rows], 5)} (the first data row is 1); "
                "expected finite numbers the model's float32 inputs can hold."
            )
    return cols, x


def table_dataset(
    df: pd.DataFrame, source: str, target: str | list[str] | None, task: str | None,
    **treatment: Any,
) -> Dataset:
    """A table's Dataset: ``target`` (default ``label``/``target``) holds the labels, or is a
    list of 0/1 columns (multi-label); every other column is a feature, treated as
    ``treatment`` (``categorical``, ``missing``, ``drop``: :func:`~weightsearch.data.tables.
    table_columns`) says."""
    available = list(df.columns)
    if target is None:
        found = [c for c in DEFAULT_TARGETS if c in available]
        if not found:
            raise DataError(
                f"{where_of(source)} has no 'label' or 'target' column; pass target=<column> "
                "(or a list of 0/1 columns for multi-label). "
                f"Available columns: {quote_list(available)}."
            )
        target = found[0]
    if isinstance(target, str):
        targets = [target]
    else:
        targets = [str(t) for t in target]
        if not targets:
            raise DataError(f"target for {source!r} is an empty list; expected column name(s).")
        if len(set(targets)) != len(targets):
            raise DataError(f"target for {source!r} lists a column twice: {targets}.")
    missing = [t for t in targets if t not in available]
    if missing:
        raise DataError(
            f"{where_of(source)} has no target column(s) {quote_list(missing)}; "
            f"available columns: {quote_list(available)}."
        )
    features = [c for c in available if c not in targets]
    if not features:
        raise DataError(f"{where_of(source)} has no feature columns besides the target.")
    columns, x = table_columns(df, features, source, **treatment)

    if isinstance(target, str):
        where = f"{where_of(source)}, target column {target!r}"
        y, classes = encode_labels(df[target].to_numpy(), where)
        detected = single_label(y, classes, where)
    else:
        cols = [
            check_multihot(df[t].to_numpy(), f"{where_of(source)}, target column {t!r},")
            for t in targets
        ]
        y = np.stack(cols, axis=1)
        classes = list(targets)
        detected = "multilabel"
    y, classes, task = resolve_task(y, classes, detected, task, f"{source!r}")
    if task == "multilabel":
        check_label_columns(y, classes, lambda t: f"{where_of(source)}, target column {t!r},")
    return Dataset(x=x, y=y, classes=classes, task=task, name=source,
                   feature_names=columns.names, columns=columns)
