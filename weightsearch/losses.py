"""Weighted Keras losses on probabilities, and the three ways of applying class weights.

Single-label models have C softmax outputs and one-hot targets (N, C); multi-label models
have L sigmoid outputs and multi-hot targets (N, L). With per-class weights ``w`` the
single-label loss of row i is ``w[y_i]·ℓ_i`` and Keras's ``sum_over_batch_size`` gives
``Σ_i w[y_i]·ℓ_i / N`` — exactly what ``class_weight={c: w_c}`` or ``sample_weight=w[y]``
give in ``model.fit``. Multi-label losses return the elementwise (N, L) loss with
``W[l, y_il]`` applied per element, identical to a per-element ``sample_weight`` (N, L).

Importing this module registers the loss classes with Keras (package ``"weightsearch"``),
so ``keras.models.load_model`` can rebuild a compiled model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from weightsearch._params import Param, check_params, params_from_signature
from weightsearch._registry import Registry, normalise_name, same_function
from weightsearch.base import APPLICATIONS, TASKS, application_problem, check_task

__all__ = [
    "LOSSES",
    "FocalLoss",
    "LogitAdjustedLoss",
    "LossSpec",
    "WeightedBCE",
    "WeightedCrossentropy",
    "apply_weights",
    "build_loss",
    "loss",
    "loss_params",
    "register_loss",
    "weigh",
]


@dataclass(frozen=True)
class LossSpec:
    """A registered loss: ``factory(multilabel=, weights=, prior=, **params)`` → Keras loss.

    ``needs_prior``: the loss uses ``prior`` (it is checked and required); others ignore it.
    ``user``: a :func:`register_loss` entry, called ``factory(task, n_classes, weights,
    **params)``.
    """

    name: str
    factory: Callable[..., keras.losses.Loss]
    tasks: tuple[str, ...]
    params: dict[str, Param]
    needs_prior: bool = False
    user: bool = False

    @property
    def doc(self) -> str:
        return (self.factory.__doc__ or "").strip()


LOSSES: Registry[LossSpec] = Registry[LossSpec]("loss")


# --------------------------------------------------------------------------- loss classes


class _WeightedLoss(keras.losses.Loss):
    """Shared weight handling: ``weights`` is (C,) for single-label, (L, 2) for multi-label."""

    def __init__(
        self,
        weights: Any = None,
        multilabel: bool = False,
        name: str | None = None,
        reduction: str | None = "sum_over_batch_size",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.multilabel = bool(multilabel)
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)

    def _weigh(self, y_true: Any, losses: Any) -> Any:
        return weigh(y_true, losses, self.weights, self.multilabel)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            weights=None if self.weights is None else self.weights.tolist(),
            multilabel=self.multilabel,
        )
        return config


def weigh(y_true: Any, losses: Any, weights: Any, multilabel: bool) -> Any:
    """Class weights on unreduced losses, as every built-in loss applies them.

    Single-label (``losses`` (N,), ``weights`` (C,)): ``w[argmax y_i]·ℓ_i``, as Keras's
    ``class_weight``; multi-label (``losses`` (N, L), ``weights`` (L, 2)):
    ``(y·W[:, 1] + (1−y)·W[:, 0])·ℓ`` elementwise. ``weights=None`` returns ``losses``.
    """
    if weights is None:
        return losses
    w = ops.convert_to_tensor(np.asarray(weights), dtype=losses.dtype)
    if multilabel:
        return (y_true * w[:, 1] + (1.0 - y_true) * w[:, 0]) * losses
    return ops.take(w, ops.argmax(y_true, axis=-1)) * losses


def _elementwise(fn: Callable[..., Any], y_true: Any, y_pred: Any, **kwargs: Any) -> Any:
    """Apply a Keras binary loss function per element: (N, L) in, (N, L) out."""
    return fn(y_true[..., None], y_pred[..., None], **kwargs)


@keras.saving.register_keras_serializable(package="weightsearch")
class WeightedCrossentropy(_WeightedLoss):
    """Cross-entropy on probabilities, optionally class-weighted and label-smoothed.

    Single-label: ℓ_i = −Σ_c ỹ_ic·log p_ic with ỹ = (1−s)·y + s/C; multi-label (elementwise):
    ℓ_il = −ỹ·log p − (1−ỹ)·log(1−p) with ỹ = (1−s)·y + s/2.
    """

    def __init__(self, label_smoothing: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        if self.multilabel:
            losses = _elementwise(
                keras.losses.binary_crossentropy, y_true, y_pred,
                label_smoothing=self.label_smoothing,
            )
        else:
            losses = keras.losses.categorical_crossentropy(
                y_true, y_pred, label_smoothing=self.label_smoothing
            )
        return self._weigh(y_true, losses)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="weightsearch")
class FocalLoss(_WeightedLoss):
    """Focal loss (Lin et al., ICCV 2017) via Keras's focal cross-entropy functions.

    Single-label: ℓ_i = −Σ_c α·(1−p_ic)^γ·y_ic·log p_ic (α = 1 when ``alpha`` is None);
    multi-label (elementwise): ℓ = α_t·(1−p_t)^γ·BCE(y, p) with p_t = y·p + (1−y)·(1−p)
    and α_t = y·α + (1−y)·(1−α) (no α_t when ``alpha`` is None).
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gamma = float(gamma)
        self.alpha = None if alpha is None else float(alpha)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        if self.multilabel:
            losses = _elementwise(
                keras.losses.binary_focal_crossentropy, y_true, y_pred,
                apply_class_balancing=self.alpha is not None,
                alpha=0.25 if self.alpha is None else self.alpha,
                gamma=self.gamma,
            )
        else:
            losses = keras.losses.categorical_focal_crossentropy(
                y_true, y_pred, alpha=1.0 if self.alpha is None else self.alpha,
                gamma=self.gamma,
            )
        return self._weigh(y_true, losses)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "gamma": self.gamma, "alpha": self.alpha}


@keras.saving.register_keras_serializable(package="weightsearch")
class LogitAdjustedLoss(_WeightedLoss):
    """Logit-adjusted cross-entropy (Menon et al., ICLR 2021) on probabilities.

    Single-label: ℓ_i = CE(y_i, softmax(log p_i + τ·log π)), π the class prior; τ = 1 is the
    balanced softmax (Ren et al., NeurIPS 2020). Multi-label (elementwise):
    ℓ_il = BCE(y_il, σ(logit p_il + τ·log(π_l/(1−π_l)))), π_l the positive rate of label l.
    """

    def __init__(self, prior: Any = None, tau: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if prior is None:
            raise ValueError("LogitAdjustedLoss needs `prior` (class or positive-label rates).")
        self.prior = np.asarray(prior, dtype=np.float64)
        self.tau = float(tau)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        eps = keras.config.epsilon()
        p = ops.clip(y_pred, eps, 1.0 - eps)
        if self.multilabel:
            shift = self.tau * np.log(self.prior / (1.0 - self.prior))
            logits = ops.log(p) - ops.log1p(-p) + ops.convert_to_tensor(shift, dtype=p.dtype)
            losses = _elementwise(
                keras.losses.binary_crossentropy, y_true, logits, from_logits=True
            )
        else:
            shift = self.tau * np.log(self.prior)
            logits = ops.log(p) + ops.convert_to_tensor(shift, dtype=p.dtype)
            losses = keras.losses.categorical_crossentropy(y_true, logits, from_logits=True)
        return self._weigh(y_true, losses)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "prior": self.prior.tolist(), "tau": self.tau}


@keras.saving.register_keras_serializable(package="weightsearch")
class WeightedBCE(_WeightedLoss):
    """Multi-label binary cross-entropy with a weight per label for 0s and for 1s (elementwise).

    ℓ_il = −(W[l, 1]·y_il·log p_il + W[l, 0]·(1−y_il)·log(1−p_il)), the probability-space
    form of ``tf.nn.weighted_cross_entropy_with_logits`` (its pos_weight is W[l, 1]/W[l, 0]).
    Unweighted (``weights=None``) it is plain binary cross-entropy.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs["multilabel"] = True
        super().__init__(**kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        eps = keras.config.epsilon()
        p = ops.clip(y_pred, eps, 1.0 - eps)
        pos = -y_true * ops.log(p)
        neg = -(1.0 - y_true) * ops.log1p(-p)
        if self.weights is None:
            return pos + neg
        w = ops.convert_to_tensor(self.weights, dtype=p.dtype)
        return w[:, 1] * pos + w[:, 0] * neg


# --------------------------------------------------------------------------- registry


def loss(
    name: str,
    *,
    aliases: tuple[str, ...] = (),
    tasks: tuple[str, ...] = TASKS,
    needs_prior: bool = False,
    **params: Param,
) -> Callable[[Callable[..., keras.losses.Loss]], Callable[..., keras.losses.Loss]]:
    """Register ``factory(multilabel=, weights=, prior=, **params)`` as loss ``name`` for
    ``tasks``; its docstring (required) gives the formula."""
    for task in tasks:
        check_task(task, f"loss {name!r}: tasks")

    def decorator(fn: Callable[..., keras.losses.Loss]) -> Callable[..., keras.losses.Loss]:
        spec = LossSpec(normalise_name(name), fn, tuple(tasks), params, needs_prior)
        LOSSES.register(name, aliases=aliases)(spec)
        return fn

    return decorator


def register_loss(
    name: str, *, tasks: tuple[str, ...] = TASKS, aliases: tuple[str, ...] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register your own loss: ``make(task, n_classes, weights, **params)`` returns a Keras
    loss (a ``keras.losses.Loss`` or a ``loss(y_true, y_pred)`` function) on probabilities.

    ``y_true`` is one-hot (N, C), or multi-hot (N, L) for multi-label. ``weights`` is what the
    built-in losses get: ``None`` (unweighted, or the weights reach ``fit`` as sample
    weights) or (C,) class weights, (L, 2) for multi-label; apply them with :func:`weigh`.
    Its typed keyword defaults are its searchable parameters; its docstring (required) gives
    the formula. A loss saved with the model must be Keras-serialisable
    (``keras.saving.register_keras_serializable``).
    """
    for task in tasks:
        check_task(task, f"register_loss({name!r}): tasks")

    def decorator(make: Callable[..., Any]) -> Callable[..., Any]:
        owner = f"register_loss({name!r})"
        params = params_from_signature(
            make, leading=("task", "n_classes", "weights"), owner=owner
        )
        key = normalise_name(name)
        old = LOSSES.get(key) if key in LOSSES else None
        same = old is not None and old.user and old.name == key
        same = same and same_function(old.factory, make)
        spec = LossSpec(key, make, tuple(tasks), params, user=True)
        LOSSES.register(name, aliases=aliases, replace=same)(spec)
        return make

    return decorator


@loss("crossentropy", label_smoothing=Param(0.0, low=0.0, high=0.3, doc="label smoothing s"))
def _crossentropy(*, multilabel: bool, weights: Any, prior: Any, **params: Any):
    """Cross-entropy ℓ_i = −w[y_i]·Σ_c ỹ_ic·log p_ic, ỹ = (1−s)·y + s/C; multi-label:
    elementwise BCE −W[l, y_il]·(ỹ·log p + (1−ỹ)·log(1−p)), ỹ = (1−s)·y + s/2."""
    return WeightedCrossentropy(weights=weights, multilabel=multilabel, **params)


@loss(
    "focal",
    gamma=Param(2.0, low=0.0, high=5.0, doc="focusing parameter γ"),
    alpha=Param(None, low=0.0, high=1.0, doc="balancing α (None: none; a constant factor "
                "for single-label)"),
)
def _focal(*, multilabel: bool, weights: Any, prior: Any, **params: Any):
    """Focal loss ℓ_i = −w[y_i]·α·(1−p_{i,y_i})^γ·log p_{i,y_i} (Lin et al., ICCV 2017);
    multi-label: α_t·(1−p_t)^γ·BCE per element. With ``effective_number`` weights it is the
    class-balanced focal loss of Cui et al. (CVPR 2019)."""
    return FocalLoss(weights=weights, multilabel=multilabel, **params)


@loss(
    "logit_adjusted",
    needs_prior=True,
    tau=Param(1.0, low=0.0, high=2.0, doc="adjustment strength τ (1: balanced softmax)"),
)
def _logit_adjusted(*, multilabel: bool, weights: Any, prior: Any, **params: Any):
    """Logit-adjusted cross-entropy ℓ_i = CE(y_i, softmax(log p_i + τ·log π)), π the class
    prior (Menon et al., ICLR 2021); multi-label: BCE(y, σ(logit p + τ·log(π/(1−π)))).
    Needs ``prior``."""
    return LogitAdjustedLoss(prior=prior, weights=weights, multilabel=multilabel, **params)


@loss("weighted_bce", tasks=("multilabel",))
def _weighted_bce(*, multilabel: bool, weights: Any, prior: Any, **params: Any):
    """Per-label weighted BCE ℓ_il = −(W[l, 1]·y·log p + W[l, 0]·(1−y)·log(1−p))
    (multi-label only)."""
    return WeightedBCE(weights=weights, **params)


# --------------------------------------------------------------------------- public API


def loss_params(name: str) -> dict[str, Param]:
    """The parameters (with defaults and valid ranges) of loss ``name``."""
    return dict(LOSSES.get(name).params)


def build_loss(
    name: str,
    *,
    task: str,
    n_classes: int,
    weights: Any = None,
    prior: Any = None,
    **params: Any,
) -> keras.losses.Loss:
    """Build loss ``name`` for ``task`` with ``n_classes`` outputs (C classes or L labels).

    ``weights``: None, a (C,) class-weight vector (single-label) or an (L, 2) array of
    weights of 0s and 1s (multi-label). ``prior``: (C,) class frequencies or (L,) positive
    rates; required by ``logit_adjusted``, ignored by the other losses.
    """
    spec = LOSSES.get(name)
    owner = f"loss {spec.name!r}"
    task = check_task(task)
    if task not in spec.tasks:
        raise ValueError(
            f"{owner} does not support task {task!r}; it supports: {', '.join(spec.tasks)}."
        )
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer):
        raise ValueError(f"{owner}: n_classes must be an integer, but got {n_classes!r}.")
    multilabel = task == "multilabel"
    low = 1 if multilabel else 2
    if n_classes < low or (task == "binary" and n_classes != 2):
        expected = "2" if task == "binary" else f">= {low}"
        raise ValueError(
            f"{owner}: n_classes for task {task!r} must be {expected}, but got {n_classes}."
        )
    n_classes = int(n_classes)
    # None means "not set" for optional parameters such as focal's alpha.
    given = {
        k: v for k, v in params.items()
        if not (v is None and k in spec.params and spec.params[k].default is None)
    }
    kwargs = check_params(given, spec.params, owner)
    weights = _check_weights(weights, multilabel, n_classes, owner)
    if not spec.needs_prior:
        prior = None
    elif prior is None:
        what = "(L,) positive-label rates" if multilabel else "(C,) class frequencies"
        raise ValueError(f"{owner} needs prior: {what}, but got None.")
    else:
        prior = _check_prior(prior, multilabel, n_classes, owner)
    if spec.user:
        made = spec.factory(task, n_classes, weights, **kwargs)
        if not callable(made):
            raise ValueError(
                f"{owner} ({spec.factory.__qualname__}()) must return a Keras loss, but "
                f"returned {type(made).__name__}."
            )
        return made
    return spec.factory(multilabel=multilabel, weights=weights, prior=prior, **kwargs)


def apply_weights(
    application: str, *, y: Any, task: str, weights: Any
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """How class weights reach training: ``(weights for build_loss, extra model.fit kwargs)``.

    ``"loss"`` → ``(weights, {})``; ``"sample_weight"`` → ``(None, {"sample_weight": s})``
    with ``s_i = w[y_i]`` (N,) for single-label or ``s_il = W[l, y_il]`` (N, L) for
    multi-label; ``"class_weight"`` → ``(None, {"class_weight": {c: w_c}})``, single-label only.
    ``y`` is int labels (N,) (or one-hot (N, C)) for single-label, 0/1 (N, L) for multi-label.
    """
    key = normalise_name(application) if isinstance(application, str) else application
    if key not in APPLICATIONS:
        raise ValueError(
            f"weight application must be one of {', '.join(APPLICATIONS)}, "
            f"but got {application!r}."
        )
    task = check_task(task)
    multilabel = task == "multilabel"
    problem = application_problem(key, task)
    if problem:
        raise ValueError(f"weight application {key!r} for task {task!r}: {problem}")
    if weights is None:
        return None, {}
    arr = np.asarray(y)
    if multilabel:
        if arr.ndim != 2 or not np.all((arr == 0) | (arr == 1)):
            raise ValueError(
                f"multi-label y must be a 0/1 array (N, L), but got shape {arr.shape}."
            )
        w = _check_weights(weights, True, arr.shape[1], "apply_weights")
    else:
        if arr.ndim == 2:
            arr = np.argmax(arr, axis=-1)
        if arr.ndim != 1 or arr.dtype.kind not in "biuf" or (arr.size and arr.min() < 0):
            raise ValueError(
                f"single-label y must be class indices (N,) or one-hot (N, C), "
                f"but got shape {np.asarray(y).shape}."
            )
        w = _check_weights(weights, False, None, "apply_weights")
        arr = arr.astype(np.int64)
        if arr.size and arr.max() >= w.shape[0]:
            raise ValueError(
                f"apply_weights: label {int(arr.max())} has no weight; weights has "
                f"{w.shape[0]} classes."
            )
    if key == "loss":
        return w, {}
    if key == "class_weight":
        return None, {"class_weight": {c: float(v) for c, v in enumerate(w)}}
    if multilabel:
        sample = np.where(arr == 1, w[:, 1], w[:, 0])
    else:
        sample = w[arr]
    return None, {"sample_weight": sample.astype(np.float32)}


# --------------------------------------------------------------------------- helpers


def _check_weights(
    weights: Any, multilabel: bool, n_classes: int | None, owner: str
) -> np.ndarray | None:
    if weights is None:
        return None
    if isinstance(weights, dict):
        weights = [weights[c] for c in sorted(weights)]
    w = np.asarray(weights, dtype=np.float64)
    if multilabel:
        expected = f"({'L' if n_classes is None else n_classes}, 2)"
        ok = w.ndim == 2 and w.shape[1] == 2 and (n_classes is None or w.shape[0] == n_classes)
    else:
        expected = f"({'C' if n_classes is None else n_classes},)"
        ok = w.ndim == 1 and w.size > 0 and (n_classes is None or w.shape[0] == n_classes)
    if not ok:
        raise ValueError(f"{owner}: weights must have shape {expected}, but got {w.shape}.")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"{owner}: weights must be finite and >= 0, but got {w.tolist()}.")
    return w


def _check_prior(prior: Any, multilabel: bool, n_classes: int, owner: str) -> np.ndarray:
    p = np.asarray(prior, dtype=np.float64)
    if p.shape != (n_classes,):
        raise ValueError(f"{owner}: prior must have shape ({n_classes},), but got {p.shape}.")
    if multilabel:
        if not np.all((p > 0) & (p < 1)):
            raise ValueError(
                f"{owner}: prior (positive rate per label) must be in (0, 1), "
                f"but got {p.tolist()}."
            )
        return p
    if not np.all(np.isfinite(p)) or not np.all(p > 0):
        raise ValueError(f"{owner}: prior (class frequencies) must be > 0, but got {p.tolist()}.")
    return p / p.sum()
