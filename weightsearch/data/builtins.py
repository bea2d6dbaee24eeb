"""Built-in datasets: ``"builtin:<name>"``, one generator ``(seed, options) -> Dataset`` each,
registered in :data:`BUILTINS` with a one-line description."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from weightsearch._params import Param
from weightsearch._registry import normalise_name
from weightsearch.columns import CATEGORICAL_AUTO
from weightsearch.data.dataset import DataError, Dataset
from weightsearch.data.labels import resolve_task
from weightsearch.data.tables import table_dataset

BUILTIN_PREFIX = "builtin:"


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


def _penguins(seed: int, options: dict[str, Any] | None) -> tuple[pd.DataFrame, str]:
    """The Palmer penguins table as the ``palmerpenguins`` package ships it (Horst, Hill &
    Gorman 2020): 344 rows, target ``species`` (Adelie 152, Gentoo 124, Chinstrap 68), string
    columns ``island`` and ``sex``, numeric ``bill_length_mm``, ``bill_depth_mm``,
    ``flipper_length_mm``, ``body_mass_g`` and ``year``; 11 rows miss ``sex``, 2 miss every
    measurement. A table: ``data.categorical``, ``data.missing`` and ``data.drop`` apply."""
    from palmerpenguins import load_penguins

    _check_options(options, {}, "builtin:penguins")
    return load_penguins(), "species"


#: name → (generator ``(seed, options)``, one-line description). A generator returns a
#: Dataset, or a table ``(DataFrame, target column)`` read as a CSV file would be.
Generator = Callable[[int, dict[str, Any] | None], "Dataset | tuple[pd.DataFrame, str]"]
BUILTINS: dict[str, tuple[Generator, str]] = {
    "digits-lt": (_digits_lt, "8x8 digit images, 10 classes, long tail (imbalance_ratio=20)"),
    "breast-cancer": (_breast_cancer, "569 x 30 tabular, binary (212 malignant / 357 benign)"),
    "synthetic": (_synthetic, "make_classification, tabular; weights=[0.9, 0.1] by default"),
    "synthetic-multilabel": (
        _synthetic_multilabel,
        "latent linear model, 4 labels with positive rates 0.4/0.2/0.1/0.05",
    ),
    "penguins": (
        _penguins,
        "Palmer penguins, 344 rows, 3 species; string columns and missing values",
    ),
}


def list_datasets() -> list[tuple[str, str]]:
    """Built-in datasets as ``[(name, description)]`` (use them as ``"builtin:<name>"``)."""
    return [(name, desc) for name, (_, desc) in BUILTINS.items()]



def load_builtin(
    source: str, *, target: Any, task: str | None, seed: int, options: dict[str, Any] | None,
    treatment: dict[str, Any] | None = None,
) -> Dataset:
    """The built-in ``source`` (``"builtin:<name>"``; case, ``_`` and ``-`` are free); a
    table's columns are treated as ``treatment`` (``categorical``, ``missing``, ``drop``)
    says."""
    raw = source[len(BUILTIN_PREFIX):]
    key = normalise_name(raw).replace("_", "-")
    if key not in BUILTINS:
        raise DataError(
            f"Unknown built-in dataset {raw!r}; expected one of: {', '.join(BUILTINS)}."
        )
    if target is not None:
        raise DataError(f"target={target!r} is only for CSV/Parquet files, not {source!r}.")
    if options is not None and not isinstance(options, dict):
        raise DataError(f"options for {source!r} must be a dict, but got {options!r}.")
    made = BUILTINS[key][0](seed, options)
    treatment = dict(treatment or {})
    if isinstance(made, tuple):
        frame, column = made
        return table_dataset(frame, source, column, task, **treatment)
    if treatment.get("drop") or treatment.get("categorical", CATEGORICAL_AUTO) != CATEGORICAL_AUTO:
        raise DataError(
            f"data.categorical and data.drop are for tables; {source!r} is built from arrays."
        )
    ds = made
    y, classes, resolved = resolve_task(ds.y, ds.classes, ds.task, task, source)
    if resolved != ds.task:
        ds = Dataset(ds.x, y, classes, resolved, ds.name, ds.feature_names, ds.columns)
    return ds
