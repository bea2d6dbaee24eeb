"""Final training: build the model a config describes, train it on all of the study's
training part, evaluate it on the held-out test part, then save and log it
(:mod:`weightsearch.production.publish`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from weightsearch.production.config import TrainConfig, as_config
from weightsearch.production.files import META_FORMAT, META_VERSION, check_out_dir
from weightsearch.production.publish import publish


class TrainFailed(RuntimeError):
    """Training diverged (NaN loss): not the user's input, the run failed."""


@dataclass
class TrainResult:
    """What :func:`train_from_config` did; ``test`` is ``None`` without a test split."""

    model: Any
    config: TrainConfig
    meta: dict[str, Any]
    out: Path | None = None
    test: dict[str, Any] | None = None
    mlflow: dict[str, Any] | None = None
    seconds: float = 0.0
    test_proba: np.ndarray | None = None  # the model's predictions on the test split


def load_data(cfg: TrainConfig) -> Any:
    """The config's data as a :class:`~weightsearch.data.Dataset`, checked against the config
    (:func:`match_config`)."""
    from weightsearch import data as data_mod

    d = cfg.data
    if str(d["source"]).startswith("python:"):
        raise data_mod.DataError(
            f"data.source: this config was exported from data in memory ({d['source']!r}, "
            "weightsearch.search()); pass the same data as a file: train --data FILE, or "
            "result.train() in Python."
        )
    ds = data_mod.load(
        d["source"], target=d.get("target"), task=cfg.task, seed=d["seed"],
        options=d.get("options") or None,
    )
    return match_config(cfg, ds)


def match_config(cfg: TrainConfig, ds: Any) -> Any:
    """``ds`` checked against the config: same classes in the same order, and the training
    features in the training order (reordered by name where they differ only in order)."""
    from weightsearch import data as data_mod

    d = cfg.data
    where = f"Data {ds.name!r}"
    if list(ds.classes) != cfg.classes:
        raise data_mod.DataError(
            f"{where} has classes {ds.classes}; the config (data.classes) expects {cfg.classes} "
            "in that order."
        )
    names = d.get("feature_names")
    if names and ds.feature_names is not None and list(ds.feature_names) != list(names):
        missing = [n for n in names if n not in ds.feature_names]
        extra = [n for n in ds.feature_names if n not in names]
        if missing or extra:
            parts = ([f"missing column(s) {missing}"] if missing else []) + (
                [f"unexpected column(s) {extra}"] if extra else []
            )
            raise data_mod.DataError(
                f"{where} does not match the training features: {'; '.join(parts)}; expected "
                f"the {len(names)} columns in data.feature_names."
            )
        order = [ds.feature_names.index(n) for n in names]
        columns = None if ds.columns is None else replace(
            ds.columns, features=tuple(ds.columns.features[i] for i in order)
        )
        ds = data_mod.Dataset(
            x=ds.x[:, order], y=ds.y, classes=ds.classes, task=ds.task, name=ds.name,
            feature_names=list(names), columns=columns,
        )
    shape = d.get("input_shape")
    if shape and tuple(ds.input_shape) != tuple(shape):
        raise data_mod.DataError(
            f"{where} has inputs of shape {ds.input_shape}; the config (data.input_shape) "
            f"expects {tuple(shape)}."
        )
    return ds


def build_from_config(cfg: TrainConfig | str | Path, data: Any) -> Any:
    """Compile the model a config describes, adapted and weighted on ``data``.

    ``data`` is a :class:`~weightsearch.data.Dataset` (a table's ``columns`` put the
    search's encoder first) or ``(x, y)`` with ``y`` integer labels ``0..C-1`` (or 0/1
    multi-hot for multilabel). Returns a
    :class:`~weightsearch.training.Built`: ``.model`` (compiled), ``.loss``, ``.weights``
    (the class weights computed from ``y``) and ``.fit_kwargs`` (``class_weight`` or
    ``sample_weight`` when the config applies the weights that way). Fit with
    ``built.model.fit(x, weightsearch.data.model_targets(y, task, C), **built.fit_kwargs)``.
    """
    from weightsearch import training

    cfg = as_config(cfg)
    x, y = (data.x, data.y) if hasattr(data, "x") and hasattr(data, "y") else data
    columns = getattr(data, "columns", None)  # a table's encoder, as in the search
    return training.build(
        cfg.components,
        x=np.asarray(x, dtype=np.float32),
        y=np.asarray(y),
        task=cfg.task,
        n_classes=len(cfg.classes),
        apply_weights=cfg.weighting["apply_weights"],
        seed=cfg.train["seed"],
        columns=columns,
    )


def evaluate(
    model: Any, x: np.ndarray, y: np.ndarray, *, task: str, classes: list[str],
    threshold: Any, positive: int, metric: str = "macro_f1", proba: np.ndarray | None = None,
    weights: list[float] | None = None,
) -> dict[str, Any]:
    """Macro-F1, the study metric, per-class F1 and the confusion matrix on ``(x, y)``
    (``proba``: the model's predictions on ``x``, when already made), decided by
    :func:`weightsearch.metrics.decide` (multiclass ``weights``: argmax of w_c · p_c)."""
    from weightsearch import metrics
    from weightsearch.artifacts import fold_confusion

    n = len(classes)
    if proba is None:
        proba = model.predict(x, batch_size=1024, verbose=0)
    pred = metrics.decide(proba, task, threshold=threshold, positive=positive, weights=weights)
    per_class = metrics.per_class_f1(y, pred, task, n)
    cm, columns = fold_confusion(y, pred, task, n)
    support = (np.asarray(y).sum(axis=0) if task == "multilabel"
               else np.bincount(np.asarray(y), minlength=n))
    return {
        "rows": int(len(y)),
        "macro_f1": metrics.score("macro_f1", y, pred, task=task, n_classes=n, positive=positive),
        "metric": metric,
        "value": metrics.score(metric, y, pred, task=task, n_classes=n, positive=positive),
        "per_class_f1": {c: float(v) for c, v in zip(classes, per_class, strict=True)},
        "support": {c: int(v) for c, v in zip(classes, support, strict=True)},
        "confusion": np.asarray(cm).tolist(),
        "confusion_columns": columns,
        "threshold": threshold,
        "decision_weights": weights,
    }


def versions() -> dict[str, str]:
    """The versions of weightsearch, Keras and TensorFlow (saved with a model)."""
    from importlib import metadata

    import keras

    import weightsearch

    out = {"weightsearch": weightsearch.__version__, "keras": keras.__version__}
    for dist in ("tensorflow-cpu", "tensorflow"):
        try:
            out["tensorflow"] = metadata.version(dist)
            break
        except metadata.PackageNotFoundError:
            continue
    return out


def train_from_config(
    cfg: TrainConfig | str | Path,
    *,
    data: str | None = None,
    out: str | Path | None = None,
    track: bool | None = None,
    tracking_uri: str | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    dataset: Any = None,
) -> TrainResult:
    """Train the final model a config describes on all of its training data.

    The study's hold-out split is re-made (``data.test_size``, ``data.seed``) and the model
    is trained on the training part for ``train.epochs`` epochs, with class weights
    recomputed on that part; it is then evaluated on the test part (if any).

    ``data`` replaces the config's data source (same columns and classes). With ``out``,
    ``out/model.keras`` and ``out/weightsearch.json`` are written (through a temporary
    directory, so a failure leaves nothing). ``track`` (default: the config's
    ``tracking.enabled``) logs the run and the model to MLflow and registers the model under
    ``tracking.registered_model``; ``tracking_uri`` overrides ``tracking.mlflow_uri``.
    ``on_epoch(epoch, logs)`` is called after every epoch. ``dataset`` (a
    :class:`~weightsearch.data.Dataset` in memory, e.g. from ``weightsearch.search``) replaces
    the data source, checked the same way.
    """
    import keras

    from weightsearch import data as data_mod
    from weightsearch import tracking, training

    start = time.perf_counter()
    cfg = as_config(cfg)
    if data is not None:
        cfg = cfg.with_data(data)
    out_dir = None if out is None else Path(out)
    if out_dir is not None:
        check_out_dir(out_dir)
    uri = tracking_uri or cfg.tracking["mlflow_uri"]
    track = cfg.tracking["enabled"] if track is None else track
    # user errors in the data surface before MLflow is touched
    ds = load_data(cfg) if dataset is None else match_config(cfg, dataset)
    # an unusable tracking store stops the command before training, not after
    tracker = (
        tracking.make_tracker(True, uri, cfg.tracking["experiment"])
        if track else tracking.NullTracker()
    )

    train_idx, test_idx = data_mod.train_test_split(ds, cfg.data["test_size"], cfg.data["seed"])
    train, test = ds.subset(train_idx), (ds.subset(test_idx) if len(test_idx) else None)
    threshold, positive = cfg.decision_rule()
    decision_weights = cfg.decision_weights()

    training.configure_threads()
    training.clear()
    built = build_from_config(cfg, train)
    callbacks = []
    if on_epoch is not None:
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: on_epoch(epoch, dict(logs or {}))
        ))
    fit_start = time.perf_counter()
    history = built.model.fit(
        train.x,
        data_mod.model_targets(train.y, cfg.task, len(cfg.classes)),
        epochs=cfg.train["epochs"],
        batch_size=cfg.train["batch_size"],
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
        **built.fit_kwargs,
    )
    fit_seconds = time.perf_counter() - fit_start
    losses = [float(v) for v in history.history.get("loss", [])]
    bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    if bad:
        raise TrainFailed(f"the loss became NaN or inf at epoch {bad[0] + 1}; nothing was saved.")
    metric = cfg.source.get("metric") or "macro_f1"
    if metric == "positive_f1" and cfg.task != "binary":
        metric = "macro_f1"
    test_scores = test_proba = None
    if test is not None:
        test_proba = built.model.predict(test.x, batch_size=1024, verbose=0)
        test_scores = evaluate(
            built.model, test.x, test.y, task=cfg.task, classes=cfg.classes,
            threshold=threshold, positive=positive, metric=metric, proba=test_proba,
            weights=decision_weights,
        )
    weights = built.weights
    meta: dict[str, Any] = {
        "format": META_FORMAT,
        "format_version": META_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
        "task": cfg.task,
        "classes": cfg.classes,
        "threshold": threshold,
        "decision_weights": decision_weights,
        "positive": cfg.decision.get("positive"),
        "feature_names": None if train.feature_names is None else list(train.feature_names),
        "input_shape": list(train.input_shape),
        "target": cfg.data.get("target"),
        "weights": {
            "scheme": cfg.weighting["scheme"],
            "params": dict(cfg.weighting["params"]),
            "apply_weights": cfg.weighting["apply_weights"],
            "values": None if weights is None else np.asarray(weights).tolist(),
        },
        "epochs": cfg.train["epochs"],
        "batch_size": cfg.train["batch_size"],
        "train_rows": int(len(train.y)),
        "test_rows": int(len(test_idx)),
        "train_loss": losses,
        "fit_seconds": round(fit_seconds, 3),
        "test": test_scores,
        "source": dict(cfg.source),
        "data_source": cfg.data["source"],
        "config": cfg.to_dict(),
        "mlflow": None,
    }
    result = TrainResult(
        model=built.model, config=cfg, meta=meta, out=out_dir, test=test_scores,
        test_proba=test_proba,
    )
    result.mlflow = publish(
        built.model, cfg, meta, out=out_dir, x_example=train.x[:5],
        test_y=None if test is None else test.y, test_proba=test_proba,
        tracker=tracker, uri=uri,
    )
    result.seconds = time.perf_counter() - start
    return result
