"""Class-weighting schemes for imbalanced classification (numpy only).

Every scheme maps per-class counts ``n_c`` to unnormalised weights ``w_c``; the public
functions normalise them so that ``Σ_c n_c·w_c = n`` (the weighted data set keeps its size,
as scikit-learn's ``compute_class_weight("balanced")`` does).

Adding a scheme is one decorated function::

    @scheme("my_scheme", k=Param(1.0, low=0, high=3, doc="..."))
    def _my_scheme(counts: np.ndarray, k: float) -> np.ndarray:
        '''w_c = n_c^(-k) (reference).'''
        return counts ** -k
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from weightsearch._params import Param, check_params, params_from_signature
from weightsearch._registry import Registry, normalise_name, same_function

__all__ = [
    "WEIGHTINGS",
    "Scheme",
    "class_weights",
    "multilabel_weights",
    "register_scheme",
    "scheme",
    "scheme_params",
    "weight_vector",
]


@dataclass(frozen=True)
class Scheme:
    """A registered weighting scheme: ``raw(counts, **params)`` returns unnormalised positive
    weights per class; ``params`` holds each parameter's default and valid range."""

    name: str
    raw: Callable[..., np.ndarray]
    params: dict[str, Param]

    @property
    def doc(self) -> str:
        """The formula and reference (the registered function's docstring)."""
        return inspect.cleandoc(self.raw.__doc__ or "")


WEIGHTINGS: Registry[Scheme] = Registry[Scheme]("weighting scheme")


def scheme(
    name: str, *, aliases: tuple[str, ...] = (), **params: Param
) -> Callable[[Callable[..., np.ndarray]], Callable[..., np.ndarray]]:
    """Register the decorated ``raw(counts, **params)`` function as weighting scheme ``name``;
    its docstring (required) gives the formula."""

    def decorator(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        WEIGHTINGS.register(name, aliases=aliases)(Scheme(normalise_name(name), fn, params))
        return fn

    return decorator


def register_scheme(
    name: str, *, aliases: tuple[str, ...] = ()
) -> Callable[[Callable[..., np.ndarray]], Callable[..., np.ndarray]]:
    """Register your own weighting scheme: ``raw(counts, **params)`` maps the per-class
    counts (float64 (C,), all > 0) to positive weights (C,), normalised afterwards so that
    ``Σ_c n_c·w_c = n``. Its typed keyword defaults are its searchable parameters; its
    docstring (required) gives the formula. Multi-label data calls it per label with the
    counts ``[n0, n1]``."""

    def decorator(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        owner = f"register_scheme({name!r})"
        params = params_from_signature(fn, leading=("counts",), owner=owner)
        key = normalise_name(name)
        old = WEIGHTINGS.get(key) if key in WEIGHTINGS else None
        same = old is not None and old.name == key and same_function(old.raw, fn)
        WEIGHTINGS.register(name, aliases=aliases, replace=same)(Scheme(key, fn, params))
        return fn

    return decorator


# --------------------------------------------------------------------------- schemes


@scheme("none")
def _none(counts: np.ndarray) -> np.ndarray:
    """w_c = 1 (no weighting)."""
    return np.ones_like(counts)


@scheme("balanced", aliases=("inverse",))
def _balanced(counts: np.ndarray) -> np.ndarray:
    """w_c = 1/n_c; normalised this is n/(C·n_c), scikit-learn's ``"balanced"`` (King & Zeng, 2001).

    ``inverse`` (inverse class frequency) is an alias.
    """
    return 1.0 / counts


@scheme("sqrt")
def _sqrt(counts: np.ndarray) -> np.ndarray:
    """w_c = 1/√n_c (inverse square-root frequency; Mikolov et al., 2013; Mahajan et al., 2018)."""
    return 1.0 / np.sqrt(counts)


@scheme(
    "log",
    mu=Param(0.15, low=0.0, high=1.0, low_open=True, doc="μ, fraction in ln(μ·n/n_c)"),
)
def _log(counts: np.ndarray, mu: float) -> np.ndarray:
    """w_c = max(1, ln(μ·n/n_c)) (the "smoothed log" heuristic of many Kaggle kernels).

    Often a no-op: ln(μ·n/n_c) > 1 only when n_c/n < μ/e, i.e. with μ = 0.15 only for
    classes under about 5.5 % of the data; every other class gets weight 1.
    Parameter ``mu`` in (0, 1], default 0.15.
    """
    n = counts.sum()
    return np.maximum(1.0, np.log(mu * n / counts))


@scheme("squared")
def _squared(counts: np.ndarray) -> np.ndarray:
    """w_c = 1/n_c² (inverse squared frequency; over-corrects, an extreme of ``power``)."""
    return 1.0 / np.square(counts)


@scheme(
    "effective_number",
    beta=Param(
        0.999, low=0.0, high=1.0, low_open=True, high_open=True,
        doc="β of the effective number (1−β^n)/(1−β)",
    ),
)
def _effective_number(counts: np.ndarray, beta: float) -> np.ndarray:
    """w_c = (1−β)/(1−β^{n_c}), the inverse effective number of samples.

    Cui et al., "Class-Balanced Loss Based on Effective Number of Samples", CVPR 2019.
    β → 0 gives uniform weights, β → 1 gives 1/n_c (``balanced``). Parameter ``beta`` in
    (0, 1), default 0.999 (Cui et al. use 0.9 … 0.9999).
    """
    log_beta = np.log(beta)
    # 1 − β^x = −expm1(x·ln β), accurate for β close to 1.
    return -np.expm1(log_beta) / -np.expm1(counts * log_beta)


@scheme("power", p=Param(1.0, low=0.0, high=2.0, doc="exponent p in n_c^(−p)"))
def _power(counts: np.ndarray, p: float) -> np.ndarray:
    """w_c = n_c^(−p), interpolating none (p=0), sqrt (0.5), balanced (1) and squared (2).

    Parameter ``p`` in [0, 2], default 1.
    """
    return np.power(counts, -float(p))


# --------------------------------------------------------------------------- public API


def scheme_params(scheme: str) -> dict[str, Param]:
    """The parameters (with defaults and valid ranges) of weighting scheme ``scheme``."""
    return dict(WEIGHTINGS.get(scheme).params)


def weight_vector(counts: Any, scheme: str = "balanced", **params: Any) -> np.ndarray:
    """Normalised weights ``w = k·raw(counts)`` with ``k = n / Σ_c n_c·raw_c``, so Σ n_c·w_c = n.

    ``counts`` are positive per-class counts, shape (C,). Returns float64 (C,).
    """
    spec = WEIGHTINGS.get(scheme)
    owner = f"weighting scheme {spec.name!r}"
    values = _check_counts(counts, where=f"{owner}: counts")
    kwargs = check_params(params, spec.params, owner)
    raw = np.asarray(spec.raw(values, **kwargs), dtype=np.float64)
    if raw.shape != values.shape or not np.all(np.isfinite(raw)) or not np.all(raw > 0):
        raise ValueError(
            f"{owner} produced invalid weights {raw!r} for counts {values!r}; "
            "expected finite positive numbers, one per class."
        )
    n = values.sum()
    return raw * (n / np.dot(values, raw))


def class_weights(
    y: Any, scheme: str = "balanced", *, n_classes: int | None = None, **params: Any
) -> dict[int, float]:
    """Keras ``class_weight`` dict ``{c: w_c}`` for integer labels ``y`` in 0..C−1.

    ``C = n_classes`` or ``max(y) + 1``; every class must occur in ``y``.
    """
    labels = _check_labels(y)
    if n_classes is None:
        n_classes = int(labels.max()) + 1
    elif isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer):
        raise ValueError(f"n_classes must be an integer >= 2, but got {n_classes!r}.")
    n_classes = int(n_classes)
    if n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2, but got {n_classes}.")
    if labels.max() >= n_classes:
        raise ValueError(
            f"labels y must be in 0..{n_classes - 1} (n_classes={n_classes}), "
            f"but got label {int(labels.max())}."
        )
    counts = np.bincount(labels, minlength=n_classes)
    absent = np.flatnonzero(counts == 0)
    if absent.size:
        raise ValueError(
            f"class {int(absent[0])} of range(n_classes={n_classes}) does not occur in y "
            f"(absent classes: {absent.tolist()}); a class weight needs at least one example."
        )
    w = weight_vector(counts, scheme, **params)
    return {c: float(w[c]) for c in range(n_classes)}


def multilabel_weights(Y: Any, scheme: str = "balanced", **params: Any) -> np.ndarray:
    """Per-label weights of a 0 and of a 1, float64 (L, 2): ``W[l] = weight_vector([n0, n1])``.

    Each label is normalised on its own, ``n0_l·W[l, 0] + n1_l·W[l, 1] = n``.
    """
    arr = np.asarray(Y)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"multi-label targets Y must be a non-empty 2-D array (N, L), "
            f"but got shape {arr.shape}."
        )
    if arr.dtype.kind not in "biuf" or not np.all((arr == 0) | (arr == 1)):
        raise ValueError("multi-label targets Y must contain only 0 and 1.")
    n1 = arr.sum(axis=0).astype(np.float64)
    n0 = arr.shape[0] - n1
    out = np.empty((arr.shape[1], 2), dtype=np.float64)
    for label in range(arr.shape[1]):
        if n1[label] == 0 or n0[label] == 0:
            missing = "positives" if n1[label] == 0 else "negatives"
            raise ValueError(
                f"label {label} of Y has no {missing} ({int(n1[label])} of {arr.shape[0]} "
                "rows are 1); per-label weights need both 0s and 1s."
            )
        out[label] = weight_vector([n0[label], n1[label]], scheme, **params)
    return out


# --------------------------------------------------------------------------- helpers


def _check_counts(counts: Any, where: str) -> np.ndarray:
    try:
        values = np.asarray(counts, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be positive numbers, but got {counts!r}.") from None
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{where} must be a non-empty 1-D array, but got shape {values.shape}.")
    if not np.all(np.isfinite(values)) or not np.all(values > 0):
        raise ValueError(
            f"{where} must be finite and > 0 (every class needs an example), "
            f"but got {values.tolist()}."
        )
    return values


def _check_labels(y: Any) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"labels y must be a non-empty 1-D array of class indices, but got shape {arr.shape}."
        )
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"labels y must be integers 0..C-1, but got dtype {arr.dtype}.")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        bad = arr[~(np.isfinite(arr) & (arr == np.round(arr)))][0]
        raise ValueError(f"labels y must be integers 0..C-1, but got non-integer label {bad}.")
    if arr.min() < 0:
        raise ValueError(f"labels y must be integers 0..C-1, but got negative label {arr.min()}.")
    return arr.astype(np.int64)
