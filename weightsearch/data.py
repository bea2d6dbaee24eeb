"""Data layer: built-in datasets, CSV/Parquet/NPZ loading, validation and stratified splits.

Imports only numpy, pandas and scikit-learn (plus ``iterstrat`` lazily for multi-label
splits), so it is cheap to import and never touches Keras, Optuna or MLflow.

Conventions: single-label ``y`` is int64 ``(N,)`` with values ``0..C-1``; multi-label ``y``
is int64 0/1 ``(N, L)``. Features ``x`` are float32 ``(N, F)`` (tabular), ``(N, T, F)``
(sequences) or ``(N, H, W, C)`` (images).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from weightsearch._params import Param
from weightsearch._registry import normalise_name
from weightsearch.base import TASKS

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
SUFFIXES = (*TABLE_SUFFIXES, ".npz")
BUILTIN_PREFIX = "builtin:"
DEFAULT_TARGETS = ("label", "target")


class DataError(ValueError):
    """A user-caused data problem; the message names the file and column and what is expected."""


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------


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

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError(
                f"{self.name}: task must be one of {', '.join(TASKS)}, but got {self.task!r}."
            )
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
        )

    def __len__(self) -> int:
        return len(self.y)


# --------------------------------------------------------------------------------------------
# Option checking for built-ins
# --------------------------------------------------------------------------------------------


def _check_options(
    options: dict[str, Any] | None, table: dict[str, Param | None], where: str
) -> dict[str, Any]:
    """Fill defaults and validate built-in options; ``None`` in ``table`` means list-valued."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(table))
    if unknown:
        expected = ", ".join(table) or "no options"
        raise DataError(f"{where} got unknown option(s) {unknown}; expected {expected}.")
    out: dict[str, Any] = {}
    for key, param in table.items():
        if param is None:
            out[key] = options.get(key)
            continue
        value = options.get(key, param.default)
        if isinstance(value, np.generic):
            value = value.item()
        try:
            out[key] = None if value is None else param.check(value, f"{where}: option {key!r}")
        except ValueError as err:
            raise DataError(str(err)) from None
    return out


def _float_list(value: Any, where: str, key: str) -> list[float]:
    """A non-empty list of finite numbers, else ``DataError`` naming the option."""
    bad = DataError(f"{where}: option {key!r} must be a list of numbers, but got {value!r}.")
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise bad
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            raise bad
        if not math.isfinite(float(v)):
            raise bad
        out.append(float(v))
    if not out:
        raise bad
    return out


# --------------------------------------------------------------------------------------------
# Built-in datasets
# --------------------------------------------------------------------------------------------


def _digits_lt(seed: int, options: dict[str, Any] | None) -> Dataset:
    """sklearn digits as (N, 8, 8, 1) float32 images (pixels 0..16), subsampled to a long tail.

    Class ``c`` keeps ``n_c = max(2, round(n_max · r^(−c/9)))`` rows drawn without replacement
    with ``seed``, where ``n_max = 174`` (the smallest digit class) and
    ``r = options["imbalance_ratio"]`` (default 20, must be ≥ 1). With r = 20 the counts for
    classes 0..9 are ``[174, 125, 89, 64, 46, 33, 24, 17, 12, 9]`` (593 rows, ratio 19.3);
    r = 10 gives ``[174, 135, 104, 81, 63, 48, 37, 29, 22, 17]``; r = 1 keeps 174 per class.
    """
    from sklearn.datasets import load_digits

    where = "builtin:digits-lt"
    opts = _check_options(
        options,
        {"imbalance_ratio": Param(20.0, low=1.0, doc="n_max / n_min")},
        where,
    )
    ratio = float(opts["imbalance_ratio"])
    digits = load_digits()
    images = digits.images.astype(np.float32)
    target = digits.target.astype(np.int64)
    n_cls = 10
    n_max = int(np.bincount(target, minlength=n_cls).min())
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(n_cls):
        n_c = max(2, int(round(n_max * ratio ** (-c / (n_cls - 1)))))
        rows = np.flatnonzero(target == c)
        keep.append(rng.choice(rows, size=n_c, replace=False))
    idx = np.sort(np.concatenate(keep))
    return Dataset(
        x=images[idx][..., None],
        y=target[idx],
        classes=[str(c) for c in range(n_cls)],
        task="multiclass",
        name=where,
    )


def _breast_cancer(seed: int, options: dict[str, Any] | None) -> Dataset:
    """sklearn breast cancer: 569 × 30 tabular, binary (0 = malignant: 212, 1 = benign: 357)."""
    from sklearn.datasets import load_breast_cancer

    where = "builtin:breast-cancer"
    _check_options(options, {}, where)
    bunch = load_breast_cancer()
    return Dataset(
        x=bunch.data.astype(np.float32),
        y=bunch.target.astype(np.int64),
        classes=[str(n) for n in bunch.target_names],
        task="binary",
        name=where,
        feature_names=[str(n) for n in bunch.feature_names],
    )


def _synthetic(seed: int, options: dict[str, Any] | None) -> Dataset:
    """``make_classification`` with class distribution ``weights`` (default [0.9, 0.1]).

    Options: ``n_samples`` (2000), ``n_features`` (20), ``n_informative`` (min(10, F)),
    ``weights`` (C numbers summing to 1; C = len(weights)), ``class_sep`` (1.0), ``flip_y``
    (0.0). With ``flip_y = 0`` class c gets ``n_samples · weights[c]`` rows (up to rounding),
    e.g. [0.99, 0.01] of 2000 → 1980 / 20. Feature names are ``x0..x{F-1}``.
    """
    from sklearn.datasets import make_classification

    where = "builtin:synthetic"
    opts = _check_options(
        options,
        {
            "n_samples": Param(2000, low=10, integer=True),
            "n_features": Param(20, low=1, integer=True),
            "n_informative": Param(None, low=1, integer=True),
            "weights": None,
            "class_sep": Param(1.0, low=0.0),
            "flip_y": Param(0.0, low=0.0, high=1.0),
        },
        where,
    )
    n, n_feat = opts["n_samples"], opts["n_features"]
    n_inf = opts["n_informative"]
    if n_inf is None:
        n_inf = min(10, n_feat)
    if n_inf > n_feat:
        raise DataError(
            f"{where}: option 'n_informative' must be at most n_features = {n_feat}, "
            f"but got {n_inf}."
        )
    raw = opts["weights"]
    weights = [0.9, 0.1] if raw is None else _float_list(raw, where, "weights")
    if len(weights) < 2 or any(w <= 0 for w in weights) or abs(sum(weights) - 1.0) > 1e-3:
        raise DataError(
            f"{where}: option 'weights' must list at least 2 positive class fractions "
            f"summing to 1, but got {raw!r}."
        )
    n_cls = len(weights)
    if n_cls > 2**n_inf:
        raise DataError(
            f"{where}: {n_cls} classes need option 'n_informative' ≥ {math.ceil(math.log2(n_cls))}"
            f", but got {n_inf}."
        )
    clusters = 2 if 2 * n_cls <= 2**n_inf and min(weights) * n >= 4 else 1
    x, y = make_classification(
        n_samples=n,
        n_features=n_feat,
        n_informative=n_inf,
        n_redundant=min(2, n_feat - n_inf),
        n_repeated=0,
        n_classes=n_cls,
        n_clusters_per_class=clusters,
        weights=weights,
        flip_y=opts["flip_y"],
        class_sep=opts["class_sep"],
        random_state=seed,
    )
    y = y.astype(np.int64)
    counts = np.bincount(y, minlength=n_cls)
    if counts.min() < 2:
        c = int(counts.argmin())
        raise DataError(
            f"{where}: class {c} gets only {counts[c]} of n_samples = {n} rows with option "
            f"'weights' = {weights}; expected at least 2 (raise n_samples or weights[{c}])."
        )
    return Dataset(
        x=x.astype(np.float32),
        y=y,
        classes=[str(c) for c in range(n_cls)],
        task="binary" if n_cls == 2 else "multiclass",
        name=where,
        feature_names=[f"x{i}" for i in range(n_feat)],
    )


def _synthetic_multilabel(seed: int, options: dict[str, Any] | None) -> Dataset:
    """Multi-hot labels from a latent linear model with per-label positive rates.

    ``x ~ N(0, 1)`` of shape (N, F), ``W ~ N(0, 1/F)`` of shape (F, L),
    ``scores = x @ W + noise · N(0, 1)``; label l is positive on the ``round(rate_l · N)``
    rows with the highest score (its ``1 − rate_l`` quantile), so the rates are exact.
    Options: ``n_samples`` (2000), ``n_features`` (20), ``rates`` ([0.4, 0.2, 0.1, 0.05]),
    ``noise`` (0.5). Label names ``label_0..``; feature names ``x0..``.
    """
    where = "builtin:synthetic-multilabel"
    opts = _check_options(
        options,
        {
            "n_samples": Param(2000, low=10, integer=True),
            "n_features": Param(20, low=1, integer=True),
            "rates": None,
            "noise": Param(0.5, low=0.0),
        },
        where,
    )
    n, n_feat = opts["n_samples"], opts["n_features"]
    raw = opts["rates"]
    rates = [0.4, 0.2, 0.1, 0.05] if raw is None else _float_list(raw, where, "rates")
    for r in rates:
        if not 0.0 < r < 1.0:
            raise DataError(
                f"{where}: option 'rates' must hold numbers in (0, 1), but got {r!r} in {raw!r}."
            )
    positives = [int(round(r * n)) for r in rates]
    for j, k in enumerate(positives):
        if k < 2 or n - k < 2:
            raise DataError(
                f"{where}: option 'rates'[{j}] = {rates[j]} gives {k} positives of "
                f"n_samples = {n}; expected at least 2 positives and 2 negatives."
            )
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n_feat))
    w = rng.standard_normal((n_feat, len(rates))) / math.sqrt(n_feat)
    scores = x @ w + opts["noise"] * rng.standard_normal((n, len(rates)))
    y = np.zeros((n, len(rates)), dtype=np.int64)
    for j, k in enumerate(positives):
        y[np.argsort(-scores[:, j], kind="stable")[:k], j] = 1
    return Dataset(
        x=x.astype(np.float32),
        y=y,
        classes=[f"label_{j}" for j in range(len(rates))],
        task="multilabel",
        name=where,
        feature_names=[f"x{i}" for i in range(n_feat)],
    )


_BUILTINS: dict[str, tuple[Callable[[int, dict[str, Any] | None], Dataset], str]] = {
    "digits-lt": (_digits_lt, "8x8 digit images, 10 classes, long tail (imbalance_ratio=20)"),
    "breast-cancer": (_breast_cancer, "569 x 30 tabular, binary (212 malignant / 357 benign)"),
    "synthetic": (_synthetic, "make_classification, tabular; weights=[0.9, 0.1] by default"),
    "synthetic-multilabel": (
        _synthetic_multilabel,
        "latent linear model, 4 labels with positive rates 0.4/0.2/0.1/0.05",
    ),
}


def list_datasets() -> list[tuple[str, str]]:
    """Built-in datasets as ``[(name, description)]`` (use them as ``"builtin:<name>"``)."""
    return [(name, desc) for name, (_, desc) in _BUILTINS.items()]


# --------------------------------------------------------------------------------------------
# Label encoding and task resolution
# --------------------------------------------------------------------------------------------


def _encode_labels(values: np.ndarray, where: str) -> tuple[np.ndarray, list[str]]:
    """Encode single labels to int64 ``0..C-1`` and return ``(y, class_names)``.

    Integer labels that are exactly ``0..C-1`` keep their order; other integer labels and
    any non-integer labels (strings, floats) are encoded in sorted order.
    """
    values = np.asarray(values)
    if values.dtype.kind in "biuf":
        as_float = values.astype(np.float64)
        if not np.isfinite(as_float).all():
            bad = int((~np.isfinite(as_float)).sum())
            raise DataError(
                f"{where} has {bad} missing or infinite label(s); expected a label in every row."
            )
        if values.dtype.kind == "b":
            uniq = np.unique(values)
            return np.searchsorted(uniq, values).astype(np.int64), [str(u) for u in uniq]
        if np.all(as_float == np.round(as_float)):
            ints = as_float.astype(np.int64)
            uniq = np.unique(ints)
            if np.array_equal(uniq, np.arange(len(uniq))):
                return ints, [str(int(u)) for u in uniq]
            return np.searchsorted(uniq, ints).astype(np.int64), [str(int(u)) for u in uniq]
        uniq = np.unique(as_float)
        return np.searchsorted(uniq, as_float).astype(np.int64), [str(u) for u in uniq]
    missing = pd.isna(values)
    if missing.any():
        raise DataError(
            f"{where} has {int(missing.sum())} missing label(s); expected a label in every row."
        )
    strings = np.array([str(v) for v in values], dtype=object)
    uniq = sorted(set(strings.tolist()))
    lookup = {name: i for i, name in enumerate(uniq)}
    return np.array([lookup[s] for s in strings], dtype=np.int64), uniq


def _check_multihot(col: np.ndarray, where: str) -> np.ndarray:
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


def _resolve_task(
    y: np.ndarray, classes: list[str], detected: str, task: str | None, where: str
) -> tuple[np.ndarray, list[str], str]:
    """Apply a ``task=`` override to the detected task, converting one-hot ``y`` if asked."""
    if task is None:
        return y, classes, detected
    if task not in TASKS:
        raise DataError(f"task must be one of {', '.join(TASKS)}, but got {task!r} (for {where}).")
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
            f"{_short(classes)}."
        )
    return y, classes, task


def _short(items: Sequence[Any], limit: int = 10) -> str:
    shown = ", ".join(repr(i) for i in list(items)[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _single_label(y: np.ndarray, classes: list[str], where: str) -> str:
    """Detected task for encoded labels; ``DataError`` for a single class."""
    if len(classes) < 2:
        raise DataError(
            f"{where} has a single class {classes[0]!r}; expected at least 2 classes."
        )
    return "binary" if len(classes) == 2 else "multiclass"


def _check_label_columns(y: np.ndarray, names: list[str], where: Callable[[str], str]) -> None:
    """Each multi-label column needs both positives and negatives."""
    for j, name in enumerate(names):
        pos = int(y[:, j].sum())
        if pos == 0 or pos == len(y):
            which = "no positives (1s)" if pos == 0 else "no negatives (0s)"
            raise DataError(f"{where(name)} has {which}; expected both 0s and 1s.")


# --------------------------------------------------------------------------------------------
# File reading
# --------------------------------------------------------------------------------------------


def _check_path(source: str) -> Path:
    path = Path(source)
    if not path.exists():
        names = ", ".join(BUILTIN_PREFIX + n for n in _BUILTINS)
        raise DataError(
            f"Data file {source!r} not found; expected an existing .csv, .parquet, .pq or .npz "
            f"file, or one of: {names}."
        )
    if path.is_dir():
        raise DataError(
            f"Data path {source!r} is a directory; expected a .csv, .parquet, .pq or .npz file."
        )
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(
            f"Data file {source!r} has unsupported extension {path.suffix!r}; expected one of "
            f"{', '.join(SUFFIXES)}."
        )
    if path.stat().st_size == 0:
        raise DataError(f"Data file {source!r} is empty; expected a {path.suffix} file with data.")
    return path


def _read_table(path: Path, source: str) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            df = pd.read_csv(path)
        else:
            df = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(
            f"Data file {source!r} is empty; expected a header and data rows."
        ) from None
    except Exception as err:  # noqa: BLE001 - any parser failure is the user's file
        kind = "CSV" if suffix == ".csv" else "Parquet"
        msg = " ".join(str(err).split())[:200]
        raise DataError(
            f"Could not read {source!r} as {kind}: {type(err).__name__}: {msg}"
        ) from None
    if len(df.columns) == 0 or len(df) == 0:
        raise DataError(
            f"Data file {source!r} has no data rows; expected a header and at least one row."
        )
    df.columns = [str(c) for c in df.columns]
    return df


def _table_features(df: pd.DataFrame, columns: list[str], source: str) -> np.ndarray:
    """Numeric, finite feature columns as float32; ``DataError`` naming bad columns."""
    if not columns:
        raise DataError(f"Data file {source!r} has no feature columns besides the target.")
    non_numeric = [
        c for c in columns
        if not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]))
    ]
    if non_numeric:
        raise DataError(
            f"Data file {source!r}: feature column(s) {_short(non_numeric)} are not numeric; "
            "expected numbers only (encode categories first, e.g. pandas.get_dummies)."
        )
    x = df[columns].to_numpy(dtype=np.float64, na_value=np.nan)
    _check_finite(x, source, columns)
    return x.astype(np.float32)


def _check_finite(x: np.ndarray, source: str, columns: list[str] | None) -> None:
    """``DataError`` naming the columns (or array ``x``) with NaN/inf and the bad-row count."""
    flat = x.reshape(len(x), -1)
    bad = ~np.isfinite(flat)
    if not bad.any():
        return
    rows = int(bad.any(axis=1).sum())
    if columns is not None:
        cols = [columns[j] for j in np.flatnonzero(bad.any(axis=0))]
        what = f"feature column(s) {_short(cols)}"
    else:
        what = "array 'x'"
    raise DataError(
        f"Data file {source!r}: {what} contain NaN or infinite values in {rows} row(s); "
        "expected finite numbers (impute or drop those rows)."
    )


def _load_table(
    path: Path, source: str, target: str | list[str] | None, task: str | None
) -> Dataset:
    df = _read_table(path, source)
    available = list(df.columns)
    if target is None:
        found = [c for c in DEFAULT_TARGETS if c in available]
        if not found:
            raise DataError(
                f"Data file {source!r} has no 'label' or 'target' column; pass target=<column> "
                "(or a list of 0/1 columns for multi-label). "
                f"Available columns: {_short(available)}."
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
            f"Data file {source!r} has no target column(s) {_short(missing)}; "
            f"available columns: {_short(available)}."
        )
    features = [c for c in available if c not in targets]
    x = _table_features(df, features, source)

    if isinstance(target, str):
        where = f"Data file {source!r}, target column {target!r}"
        y, classes = _encode_labels(df[target].to_numpy(), where)
        detected = _single_label(y, classes, where)
    else:
        cols = [
            _check_multihot(df[t].to_numpy(), f"Data file {source!r}, target column {t!r},")
            for t in targets
        ]
        y = np.stack(cols, axis=1)
        classes = list(targets)
        detected = "multilabel"
    y, classes, task = _resolve_task(y, classes, detected, task, f"{source!r}")
    if task == "multilabel":
        _check_label_columns(y, classes, lambda t: f"Data file {source!r}, target column {t!r},")
    return Dataset(x=x, y=y, classes=classes, task=task, name=source, feature_names=features)


def _read_npz(path: Path, source: str, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            present = list(npz.files)
            missing = [k for k in required if k not in present]
            if missing:
                raise DataError(
                    f"Data file {source!r} has no array(s) {missing}; expected arrays "
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
            f"Data file {source!r}: array 'x' has dtype {x.dtype}; expected numbers."
        )
    if x.ndim == 1:
        x = x[:, None]
    x = x.astype(np.float64)
    _check_finite(x, source, None)
    return x.astype(np.float32)


def _load_npz(path: Path, source: str, target: Any, task: str | None) -> Dataset:
    if target is not None:
        raise DataError(
            f"target={target!r} is only for CSV/Parquet files; {source!r} is NPZ and uses its "
            "'y' array."
        )
    arrays = _read_npz(path, source, ("x", "y"))
    x, y = arrays["x"], arrays["y"]
    if x.ndim == 0 or y.ndim == 0:
        raise DataError(f"Data file {source!r}: arrays 'x' and 'y' must have a row axis, "
                        f"but got shapes {x.shape} and {y.shape}.")
    if len(x) != len(y):
        raise DataError(
            f"Data file {source!r}: array 'x' has {len(x)} rows but 'y' has {len(y)}; "
            "expected the same number."
        )
    if len(x) == 0:
        raise DataError(f"Data file {source!r} has 0 rows; expected data.")
    if x.ndim > 4:
        raise DataError(
            f"Data file {source!r}: array 'x' has shape {x.shape}; expected 2 (tabular), "
            "3 (sequence) or 4 (image) dimensions."
        )
    x = _npz_x(x, source)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 1:
        where = f"Data file {source!r}, array 'y'"
        y, classes = _encode_labels(y, where)
        detected = _single_label(y, classes, where)
    elif y.ndim == 2:
        cols = [
            _check_multihot(y[:, j], f"Data file {source!r}, array 'y' column {j},")
            for j in range(y.shape[1])
        ]
        y = np.stack(cols, axis=1)
        classes = [f"label_{j}" for j in range(y.shape[1])]
        detected = "multilabel"
    else:
        raise DataError(
            f"Data file {source!r}: array 'y' has shape {y.shape}; expected (N,) labels or "
            "(N, L) 0/1 multi-hot."
        )
    y, classes, task = _resolve_task(y, classes, detected, task, f"{source!r}")
    if task == "multilabel":
        _check_label_columns(
            y, classes, lambda t: f"Data file {source!r}, array 'y' column {t!r},"
        )
    return Dataset(x=x, y=y, classes=classes, task=task, name=source, feature_names=None)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def load(
    source: str,
    *,
    target: str | list[str] | None = None,
    task: str | None = None,
    seed: int = 0,
    options: dict[str, Any] | None = None,
) -> Dataset:
    """Load ``"builtin:<name>"`` or a ``.csv``/``.parquet``/``.pq``/``.npz`` file.

    ``target`` names the label column (default ``"label"`` or ``"target"``) or a list of 0/1
    columns (multi-label); ``task`` overrides the detected task; ``seed`` and ``options`` are
    used by the built-ins only. Every user-caused problem raises :class:`DataError`.
    """
    source = str(source)
    if source.startswith(BUILTIN_PREFIX):
        raw = source[len(BUILTIN_PREFIX):]
        key = normalise_name(raw).replace("_", "-")
        if key not in _BUILTINS:
            raise DataError(
                f"Unknown built-in dataset {raw!r}; expected one of: {', '.join(_BUILTINS)}."
            )
        if target is not None:
            raise DataError(f"target={target!r} is only for CSV/Parquet files, not {source!r}.")
        if options is not None and not isinstance(options, dict):
            raise DataError(f"options for {source!r} must be a dict, but got {options!r}.")
        ds = _BUILTINS[key][0](seed, options)
        y, classes, resolved = _resolve_task(ds.y, ds.classes, ds.task, task, source)
        if resolved != ds.task:
            ds = Dataset(ds.x, y, classes, resolved, ds.name, ds.feature_names)
        return ds
    if options:
        raise DataError(
            f"options {sorted(options)} are only for built-in datasets, not {source!r}."
        )
    path = _check_path(source)
    if path.suffix.lower() in TABLE_SUFFIXES:
        return _load_table(path, source, target, task)
    return _load_npz(path, source, target, task)


def check_folds(ds: Dataset, folds: int) -> None:
    """``DataError`` if a class (or a label's 0s or 1s) has fewer rows than ``folds``."""
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise DataError(f"folds must be an integer ≥ 2, but got {folds!r}.")
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
    if task not in TASKS:
        raise DataError(f"task must be one of {', '.join(TASKS)}, but got {task!r}.")
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise DataError(f"folds must be an integer ≥ 2, but got {folds!r}.")
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


def model_targets(y: np.ndarray, task: str, n_classes: int) -> np.ndarray:
    """Float32 model targets: one-hot ``(N, C)`` (``eye(C)[y]``) or multi-hot ``(N, L)``."""
    y = np.asarray(y)
    if task == "multilabel":
        if y.ndim != 2 or y.shape[1] != n_classes:
            raise ValueError(
                f"multi-label y must have shape (N, {n_classes}), but got {y.shape}."
            )
        return y.astype(np.float32)
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, but got {task!r}.")
    if y.ndim != 1:
        raise ValueError(f"single-label y must have shape (N,), but got {y.shape}.")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(
            f"labels must be in 0..{n_classes - 1}, but got values in {y.min()}..{y.max()}."
        )
    return np.eye(n_classes, dtype=np.float32)[y.astype(np.int64)]


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
                f"Data file {source!r} is a table, but the model was trained on "
                f"{input_shape}-shaped inputs without column names; expected an .npz with "
                "array 'x'."
            )
        df = _read_table(p, source)
        ignored = {str(c) for c in ignore}
        cols = [c for c in df.columns if c not in ignored]
        missing = [f for f in feature_names if f not in cols]
        extra = [c for c in cols if c not in set(feature_names)]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing column(s) {_short(missing)}")
            if extra:
                parts.append(f"unexpected column(s) {_short(extra)}")
            raise DataError(
                f"Data file {source!r} does not match the training features: "
                f"{'; '.join(parts)}; expected exactly {len(feature_names)} columns "
                f"{_short(feature_names)}."
            )
        x = _table_features(df, list(feature_names), source)
    else:
        x = _read_npz(p, source, ("x",))["x"]
        if x.ndim == 1 and input_shape == (1,):
            x = x[:, None]
        if x.ndim == 0 or tuple(x.shape[1:]) != input_shape:
            raise DataError(
                f"Data file {source!r}: array 'x' has shape {tuple(x.shape)}; expected "
                f"(N, {', '.join(str(d) for d in input_shape)}) as in training."
            )
        x = _npz_x(x, source)
    if x.shape[1:] != input_shape:
        raise DataError(
            f"Data file {source!r} gives inputs of shape {x.shape[1:]}; expected {input_shape}."
        )
    return x
