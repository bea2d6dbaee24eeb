"""Loading: :func:`load` (a built-in or a CSV/Parquet/NPZ file) and :func:`load_features` (new
data for prediction), with the file readers and their checks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from weightsearch.columns import CATEGORICAL_AUTO, Column
from weightsearch.data.builtins import BUILTIN_PREFIX, BUILTINS, load_builtin
from weightsearch.data.dataset import DataError, Dataset, quote_list, where_of
from weightsearch.data.labels import (
    check_label_columns,
    check_multihot,
    encode_labels,
    resolve_task,
    single_label,
)
from weightsearch.data.tables import DEFAULT_TARGETS, table_columns, table_dataset  # noqa: F401 - re-exported

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
SUFFIXES = (*TABLE_SUFFIXES, ".npz")


def _check_path(source: str) -> Path:
    path = Path(source)
    if not path.exists():
        names = ", ".join(BUILTIN_PREFIX + n for n in BUILTINS)
        raise DataError(
            f"{where_of(source)} not found; expected an existing .csv, .parquet, .pq or .npz "
            f"file, or one of: {names}."
        )
    if path.is_dir():
        raise DataError(
            f"Data path {source!r} is a directory; expected a .csv, .parquet, .pq or .npz file."
        )
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(
            f"{where_of(source)} has unsupported extension {path.suffix!r}; expected one of "
            f"{', '.join(SUFFIXES)}."
        )
    if path.stat().st_size == 0:
        raise DataError(f"{where_of(source)} is empty; expected a {path.suffix} file with data.")
    return path


def _read_table(path: Path, source: str) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix != ".csv":  # pyarrow reads repeated names only to fail with its schema dump
        _check_unique_columns(_parquet_names(path), source)
    try:
        if suffix == ".csv":
            df = pd.read_csv(path)
        else:
            df = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{where_of(source)} is empty; expected a header and data rows."
        ) from None
    except Exception as err:  # noqa: BLE001 - any parser failure is the user's file
        kind = "CSV" if suffix == ".csv" else "Parquet"
        msg = " ".join(str(err).split())[:200]
        raise DataError(
            f"Could not read {source!r} as {kind}: {type(err).__name__}: {msg}"
        ) from None
    if len(df.columns) == 0 or len(df) == 0:
        raise DataError(
            f"{where_of(source)} has no data rows; expected a header and at least one row."
        )
    names = _csv_header(path) if suffix == ".csv" else [str(c) for c in df.columns]
    _check_unique_columns(names, source)
    df.columns = [str(c) for c in df.columns]
    return df


def _csv_header(path: Path) -> list[str]:
    """The CSV header as written (``pandas.read_csv`` renames a repeated name ``f1`` to
    ``f1.1``), read by the same parser; empty names are left out."""
    head = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    return [str(c) for c in head.iloc[0].tolist() if str(c) != ""]


def _parquet_names(path: Path) -> list[str]:
    """The Parquet schema's column names; none when the file is unreadable (reading it
    then says why)."""
    try:
        import pyarrow.parquet as pq

        return [str(n) for n in pq.read_schema(path).names]
    except Exception:  # noqa: BLE001 - pandas' own read reports the problem
        return []


def _check_unique_columns(names: list[str], source: str) -> None:
    """``DataError`` naming a column that appears more than once."""
    repeated = sorted(n for n, count in Counter(names).items() if count > 1)
    if repeated:
        raise DataError(
            f"{where_of(source)}: column(s) {quote_list(repeated)} appear more "
            "than once in the header; expected unique column names (rename or drop the copies)."
        )


def as_float32(x: np.ndarray, where: str, columns: list[str] | None) -> np.ndarray:
    """``x`` as float32, every value finite *after* the cast; else ``DataError`` naming
    ``where`` (the file), the columns (or array ``x``) and the rows: NaN/inf, or beyond
    float32's range, which the cast would turn into inf."""
    _check_finite(x, where, columns, "contain NaN or infinite values",
                  "expected finite numbers (impute or drop those rows)")
    with np.errstate(over="ignore"):
        x32 = np.asarray(x).astype(np.float32)
    _check_finite(
        x32, where, columns,
        f"hold values beyond the float32 range (|x| > {float(np.finfo(np.float32).max):.4g})",
        "expected numbers the model's float32 inputs can hold (rescale that column)",
    )
    return x32


def _check_finite(
    x: np.ndarray, where: str, columns: list[str] | None, problem: str, expected: str
) -> None:
    """``DataError`` naming the columns (or array ``x``) and rows with non-finite values."""
    if x.size == 0:
        return
    flat = x.reshape(len(x), -1)
    bad = ~np.isfinite(flat)
    if not bad.any():
        return
    rows = np.flatnonzero(bad.any(axis=1))
    if columns is not None:
        cols = [columns[j] for j in np.flatnonzero(bad.any(axis=0))]
        what = f"feature column(s) {quote_list(cols)}"
        at = f"data row(s) {quote_list([int(r) + 1 for r in rows], 5)} (the first data row is 1)"
    else:
        what = "array 'x'"
        at = f"row index(es) {quote_list([int(r) for r in rows], 5)}"
    raise DataError(f"{where}: {what} {problem} in {len(rows)} row(s), at {at}; {expected}.")


def _read_npz(path: Path, source: str, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            present = list(npz.files)
            missing = [k for k in required if k not in present]
            if missing:
                raise DataError(
                    f"{where_of(source)} has no array(s) {missing}; expected arrays "
                    f"{list(required)}, found {present}."
                )
            return {k: npz[k] for k in required}
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure to parse is the user's file
        msg = " ".join(str(err).split())[:200]
        raise DataError(f"Could not read {source!r} as NPZ: {type(err).__name__}: {msg}") from None


def _npz_x(x: np.ndarray, source: str) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise DataError(
            f"{where_of(source)}: array 'x' has dtype {x.dtype}; expected numbers."
        )
    if x.ndim == 1:
        x = x[:, None]
    return as_float32(x.astype(np.float64), where_of(source), None)


def _load_npz(path: Path, source: str, target: Any, task: str | None) -> Dataset:
    if target is not None:
        raise DataError(
            f"target={target!r} is only for CSV/Parquet files; {source!r} is NPZ and uses its "
            "'y' array."
        )
    arrays = _read_npz(path, source, ("x", "y"))
    return array_dataset(arrays["x"], arrays["y"], source, task)


def array_dataset(x: np.ndarray, y: np.ndarray, source: str, task: str | None) -> Dataset:
    """Arrays' Dataset: ``x`` with 2-4 dimensions, ``y`` labels ``(N,)`` or 0/1 ``(N, L)``."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or y.ndim == 0:
        raise DataError(f"{where_of(source)}: arrays 'x' and 'y' must have a row axis, "
                        f"but got shapes {x.shape} and {y.shape}.")
    if len(x) != len(y):
        raise DataError(
            f"{where_of(source)}: array 'x' has {len(x)} rows but 'y' has {len(y)}; "
            "expected the same number."
        )
    if len(x) == 0:
        raise DataError(f"{where_of(source)} has 0 rows; expected data.")
    if x.ndim > 4:
        raise DataError(
            f"{where_of(source)}: array 'x' has shape {x.shape}; expected 2 (tabular), "
            "3 (sequence) or 4 (image) dimensions."
        )
    x = _npz_x(x, source)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 1:
        where = f"{where_of(source)}, array 'y'"
        y, classes = encode_labels(y, where)
        detected = single_label(y, classes, where)
    elif y.ndim == 2:
        cols = [
            check_multihot(y[:, j], f"{where_of(source)}, array 'y' column {j},")
            for j in range(y.shape[1])
        ]
        y = np.stack(cols, axis=1)
        classes = [f"label_{j}" for j in range(y.shape[1])]
        detected = "multilabel"
    else:
        raise DataError(
            f"{where_of(source)}: array 'y' has shape {y.shape}; expected (N,) labels or "
            "(N, L) 0/1 multi-hot."
        )
    y, classes, task = resolve_task(y, classes, detected, task, f"{source!r}")
    if task == "multilabel":
        check_label_columns(
            y, classes, lambda t: f"{where_of(source)}, array 'y' column {t!r},"
        )
    return Dataset(x=x, y=y, classes=classes, task=task, name=source, feature_names=None)


def load(
    source: str,
    *,
    target: str | list[str] | None = None,
    task: str | None = None,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    categorical: str | Sequence[str] = CATEGORICAL_AUTO,
    missing: str = "impute",
    drop: Sequence[str] = (),
) -> Dataset:
    """Load ``"builtin:<name>"`` or a ``.csv``/``.parquet``/``.pq``/``.npz`` file.

    ``target`` names the label column (default ``"label"`` or ``"target"``) or a list of 0/1
    columns (multi-label); ``task`` overrides the detected task; ``seed`` and ``options`` are
    used by the built-ins only. A table's columns are treated as ``categorical``, ``missing``
    and ``drop`` say (:func:`~weightsearch.data.tables.table_columns`). Every user-caused
    problem raises :class:`DataError`.
    """
    treatment = {"categorical": categorical, "missing": missing, "drop": tuple(drop)}
    source = str(source)
    if source.startswith(BUILTIN_PREFIX):
        return load_builtin(source, target=target, task=task, seed=seed, options=options,
                            treatment=treatment)
    if options:
        raise DataError(
            f"options {sorted(options)} are only for built-in datasets, not {source!r}."
        )
    path = _check_path(source)
    if path.suffix.lower() in TABLE_SUFFIXES:
        return table_dataset(_read_table(path, source), source, target, task, **treatment)
    if drop or categorical != CATEGORICAL_AUTO:
        raise DataError(
            f"data.categorical and data.drop are for CSV/Parquet tables; {source!r} is NPZ."
        )
    return _load_npz(path, source, target, task)


def load_rows(path: str, *, feature_names: Sequence[str], ignore: Sequence[str] = ()
              ) -> pd.DataFrame:
    """The raw feature columns of a CSV/Parquet table, in training order: it must hold
    exactly ``feature_names`` (any order; columns in ``ignore``, e.g. the training target
    columns, are dropped)."""
    source = str(path)
    p = _check_path(source)
    if p.suffix.lower() not in TABLE_SUFFIXES:
        raise DataError(
            f"{where_of(source)}: expected a table ({', '.join(TABLE_SUFFIXES)}) with the "
            "training columns."
        )
    df = _read_table(p, source)
    ignored = {str(c) for c in ignore}
    cols = [c for c in df.columns if c not in ignored]
    missing = [f for f in feature_names if f not in cols]
    extra = [c for c in cols if c not in set(feature_names)]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {quote_list(missing)}")
        if extra:
            parts.append(f"unexpected column(s) {quote_list(extra)}")
        raise DataError(
            f"{where_of(source)} does not match the training features: "
            f"{'; '.join(parts)}; expected exactly {len(feature_names)} columns "
            f"{quote_list(list(feature_names))}."
        )
    return df[list(feature_names)]


def load_features(
    path: str,
    *,
    feature_names: list[str] | None,
    input_shape: tuple[int, ...],
    ignore: Sequence[str] = (),
) -> np.ndarray:
    """Features of new data for prediction, validated against the training data.

    CSV/Parquet must hold exactly ``feature_names`` (any order; columns in ``ignore``, e.g.
    the training target columns, are dropped); NPZ array ``x`` must have shape
    ``(N, *input_shape)``. Returns float32 ``(N, *input_shape)``.
    """
    source = str(path)
    p = _check_path(source)
    input_shape = tuple(int(d) for d in input_shape)
    if p.suffix.lower() in TABLE_SUFFIXES:
        if feature_names is None:
            raise DataError(
                f"{where_of(source)} is a table, but the model was trained on "
                f"{input_shape}-shaped inputs without column names; expected an .npz with "
                "array 'x'."
            )
        df = load_rows(source, feature_names=feature_names, ignore=ignore)
        try:  # a model without an encoder: numbers only, and no holes
            x = np.column_stack([Column(n, "numeric").codes(df[n]) for n in feature_names])
        except ValueError as exc:
            raise DataError(f"{where_of(source)}: {exc}") from None
        x = as_float32(x, where_of(source), list(feature_names))
    else:
        x = _read_npz(p, source, ("x",))["x"]
        if x.ndim == 1 and input_shape == (1,):
            x = x[:, None]
        if x.ndim == 0 or tuple(x.shape[1:]) != input_shape:
            raise DataError(
                f"{where_of(source)}: array 'x' has shape {tuple(x.shape)}; expected "
                f"(N, {', '.join(str(d) for d in input_shape)}) as in training."
            )
        x = _npz_x(x, source)
    if x.shape[1:] != input_shape:
        raise DataError(
            f"{where_of(source)} gives inputs of shape {x.shape[1:]}; expected {input_shape}."
        )
    return x


def from_frame(
    df: pd.DataFrame, *, target: str | list[str] | None = None, task: str | None = None,
    name: str = "DataFrame", categorical: str | Sequence[str] = CATEGORICAL_AUTO,
    missing: str = "impute", drop: Sequence[str] = (),
) -> Dataset:
    """A pandas DataFrame in memory as a Dataset, checked as a CSV file is; its columns are
    treated as ``categorical``, ``missing`` and ``drop`` say, as for :func:`load`."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{name}: expected a pandas DataFrame, but got {type(df).__name__}.")
    names = [str(c) for c in df.columns]
    _check_unique_columns(names, name)
    if names != list(df.columns):  # e.g. pd.DataFrame(x): 0, 1, 2 … become "0", "1", "2" …
        df = df.set_axis(names, axis=1)
    return table_dataset(df, name, target, task, categorical=categorical, missing=missing,
                         drop=drop)


def from_arrays(x: Any, y: Any, *, task: str | None = None, name: str = "arrays") -> Dataset:
    """``(x, y)`` arrays in memory as a Dataset, checked as an NPZ file is."""
    return array_dataset(np.asarray(x), np.asarray(y), name, task)
