"""From a configuration dict to a compiled Keras model and its ``fit`` arguments.

Used by the search objective for every CV fold and by ``train`` for the final model, so
what the search measured is exactly what production trains.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_THREADS_SET = False


def configure_threads(threads: int | None = None) -> None:
    """Set TensorFlow's thread pools once per process (before any op runs).

    ``threads`` defaults to ``WEIGHTSEARCH_THREADS`` or the number of cores; inter-op is 1
    because our graphs are small and sequential.
    """
    global _THREADS_SET
    if _THREADS_SET:
        return
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notices across folds are expected
    n = threads or int(os.environ.get("WEIGHTSEARCH_THREADS", "0")) or (os.cpu_count() or 1)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TF already initialised: keep its pools
        pass
    _THREADS_SET = True


_FROZEN = False


def clear(freeze: bool = False) -> None:
    """Free a trial's models: drop their train steps' custom gradients
    (:func:`weightsearch.compat.release_train_step_gradients`),
    ``keras.backend.clear_session()``, then
    ``gc.collect()``.

    A full collection scans every object, ~0.5 s once TensorFlow, Keras and MLflow are loaded.
    After the first one with ``freeze`` (a trial that completed, so no traceback still holds
    its models), the survivors (modules, caches: objects that live as long as the process)
    are moved to the permanent generation with ``gc.freeze()``, so later collections scan only
    what trials create since.
    """
    import gc

    import keras

    from weightsearch.compat import release_train_step_gradients

    global _FROZEN
    release_train_step_gradients()
    keras.backend.clear_session(free_memory=False)
    gc.collect()
    if freeze and not _FROZEN:
        gc.freeze()
        _FROZEN = True


def make_optimizer(name: str, learning_rate: float, global_clipnorm: float = 0.0) -> Any:
    """A Keras optimiser; ``global_clipnorm > 0`` clips all gradients by their joint norm."""
    import keras

    table = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "rmsprop": keras.optimizers.RMSprop,
        "sgd": keras.optimizers.SGD,
    }
    clip = {"global_clipnorm": float(global_clipnorm)} if global_clipnorm else {}
    return table[name](learning_rate=learning_rate, **clip)


def optimizer_of(config: dict[str, Any]) -> Any:
    """The optimiser a configuration's ``train`` section describes."""
    from weightsearch.space import TRAIN_PARAMS

    train = {**{k: p.default for k, p in TRAIN_PARAMS.items()}, **config.get("train", {})}
    return make_optimizer(train["optimizer"], train["learning_rate"], train["global_clipnorm"])


@dataclass
class Built:
    """A compiled model with everything ``fit`` needs."""

    model: Any
    loss: Any
    fit_kwargs: dict[str, Any] = field(default_factory=dict)
    weights: np.ndarray | None = None  # (C,) per class, or (L, 2) per label [w0, w1]


def weights_params(weights: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Flat ``{"class_weight.<name>": w}`` (``.w0``/``.w1`` per label) for logging."""
    w = np.asarray(weights)
    if w.ndim == 1:
        return {f"class_weight.{c}": round(float(v), 6) for c, v in zip(classes, w, strict=True)}
    out: dict[str, float] = {}
    for c, (w0, w1) in zip(classes, w, strict=True):
        out[f"class_weight.{c}.w0"] = round(float(w0), 6)
        out[f"class_weight.{c}.w1"] = round(float(w1), 6)
    return out


def compute_weights(
    y: np.ndarray, task: str, n_classes: int, weighting: dict[str, Any]
) -> np.ndarray:
    """Weights from the training labels only: (C,) for single-label, (L, 2) for multilabel."""
    from weightsearch import weighting as wmod

    params = dict(weighting.get("params", {}))
    if task == "multilabel":
        return wmod.multilabel_weights(y, weighting["scheme"], **params)
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes)
    missing = [c for c in range(n_classes) if counts[c] == 0]
    if missing:
        raise ValueError(f"class(es) {missing} have no rows in this training split.")
    return wmod.weight_vector(counts, weighting["scheme"], **params)


def prior_of(y: np.ndarray, task: str, n_classes: int) -> np.ndarray:
    """Class frequencies π_c (single-label) or positive rates (multilabel)."""
    if task == "multilabel":
        return np.asarray(y, dtype=np.float64).mean(axis=0)
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes)
    return counts / counts.sum()


def build_member(
    config: dict[str, Any],
    *,
    x: np.ndarray,
    y: np.ndarray,
    task: str,
    n_classes: int,
    apply_weights: str = "loss",
    seed: int | None = None,
    columns: Any = None,
) -> Built:
    """The uncompiled model and loss a configuration describes, adapted and weighted on ``(x, y)``.

    ``(x, y)`` is the training data (a CV training fold, or all training data): a table's
    encoder (``columns``, with the config's ``model.numeric``) and the ``Normalization``
    layer are adapted on ``x``, and the class weights come from ``y``.
    """
    import keras

    from weightsearch import losses, models

    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    weights = compute_weights(y, task, n_classes, config["weighting"])
    loss_weights, fit_kwargs = losses.apply_weights(apply_weights, y=y, task=task, weights=weights)
    loss = losses.build_loss(
        config["loss"]["name"],
        task=task,
        n_classes=n_classes,
        weights=loss_weights,
        prior=prior_of(y, task, n_classes),
        **config["loss"].get("params", {}),
    )
    model = models.build_model(
        config["model"]["arch"],
        input_shape=tuple(x.shape[1:]),
        n_outputs=n_classes,
        task=task,
        params=config["model"].get("params", {}),
        adapt_x=x,
        seed=seed,
        columns=columns,
        numeric=config["model"].get("numeric"),
    )
    return Built(model=model, loss=loss, fit_kwargs=fit_kwargs, weights=weights)


def build(config: dict[str, Any], **kwargs: Any) -> Built:
    """:func:`build_member` (same arguments), compiled with the configuration's optimiser."""
    built = build_member(config, **kwargs)
    optimizer = optimizer_of(config)
    built.model.compile(optimizer=optimizer, loss=built.loss)
    # Slot variables created now, not inside fit's first traced step, keep that step smaller
    # (what a caller that never runs ``clear()`` retains per model: ~1.5 MB instead of ~3.7).
    optimizer.build(built.model.trainable_variables)
    return built


def fold_ensemble(models: list[Any], name: str = "weightsearch_fold_ensemble") -> Any:
    """One Keras model: p(x) = (1/K) Σ_k p_k(x), the mean of the K fold models' probabilities
    (each keeps its own encoder and normalisation, fitted on its own training fold)."""
    import keras

    if not models:
        raise ValueError("fold_ensemble needs at least one fold model, but got none.")
    first = models[0]
    inputs = keras.Input(shape=tuple(first.input_shape[1:]), name="x")
    members = []
    for k, model in enumerate(models):
        model.name = f"fold{k}"  # unique names inside the ensemble
        members.append(model(inputs))
    outputs = members[0] if len(members) == 1 else keras.layers.Average(name="mean_proba")(members)
    return keras.Model(inputs, outputs, name=name)
