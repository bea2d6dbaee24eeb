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
        options=d.get("options") or None, **cfg.treatment(),
    )
    return match_config(cfg, ds)


def match_config(cfg: TrainConfig, ds: Any) -> Any:
    """``ds`` checked against the config: same classes in the same order, the training
    features in the training order (reordered by name where they differ only in order), and
    each recorded column (``data.columns``) of the same kind."""
    from weightsearch import data as data_mod

    d = cfg.data
    where = f"Data {ds.name!r}"
    changed = [] if ds.columns is None else ds.columns.kind_changes(d.get("columns") or {})
    if changed:
        raise data_mod.DataError(
            f"{where}: column(s) treated differently than in the study: {'; '.join(changed)} "
            "(data.columns); set data.categorical in the config to match."
        )
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


def refit(
    cfg: TrainConfig, train: Any, on_epoch: Callable[[int, dict[str, float]], None] | None
) -> tuple[Any, list[float], float, Any]:
    """``train.final = "refit"``: the config's model trained on all of ``train`` for
    ``train.epochs`` epochs. Returns ``(model, losses, fit seconds, class weights)``."""
    import keras

    from weightsearch import data as data_mod

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
    return built.model, losses, fit_seconds, built.weights


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

    The study's hold-out split is re-made (``data.test_size``, ``data.seed``). With
    ``train.final = "refit"`` the model is trained on the training part for
    ``train.epochs`` epochs, with class weights recomputed on that part; with
    ``"fold_ensemble"`` the trial's fold models are fetched from its MLflow run instead
    (:mod:`weightsearch.production.ensemble`). The model is evaluated on the test part (if
    any), and so is the other final model where it exists (``meta["test_other"]``).

    ``data`` replaces the config's data source (same columns and classes). With ``out``,
    ``out/model.keras`` and ``out/weightsearch.json`` are written (through a temporary
    directory, so a failure leaves nothing). ``track`` (default: the config's
    ``tracking.enabled``) logs the run and the model to MLflow and registers the model under
    ``tracking.registered_model``; ``tracking_uri`` overrides ``tracking.mlflow_uri``.
    ``on_epoch(epoch, logs)`` is called after every epoch. ``dataset`` (a
    :class:`~weightsearch.data.Dataset` in memory, e.g. from ``weightsearch.search``) replaces
    the data source, checked the same way.
    """

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
    final = cfg.train["final"]
    metric = cfg.source.get("metric") or "macro_f1"
    if metric == "positive_f1" and cfg.task != "binary":
        metric = "macro_f1"

    def scores(proba: np.ndarray) -> dict[str, Any]:
        return evaluate(None, test.x, test.y, task=cfg.task, classes=cfg.classes,
                        threshold=threshold, positive=positive, metric=metric, proba=proba,
                        weights=decision_weights)

    # the trial's fold ensemble: the final model, or (when tracked) scored beside the refit
    from weightsearch.production import ensemble as ens_mod

    ens = (ens_mod.fetch(cfg, uri, required=True) if final == "fold_ensemble"
           else ens_mod.fetch(cfg, uri, required=False) if track and test is not None
           else None)
    test_scores = test_proba = other = None
    losses: list[float] = []
    fit_seconds, weights, columns = 0.0, None, train.columns
    if final == "refit":
        core, losses, fit_seconds, weights = refit(cfg, train, on_epoch)
        served = core
        if train.columns is not None:  # a table's model takes raw rows, by column name
            from weightsearch.preprocessing import raw_model

            served = raw_model(train.columns, core)
        if test is not None:
            test_proba = np.asarray(core.predict(test.x, batch_size=1024, verbose=0))
            test_scores = scores(test_proba)
            if ens is not None:
                other = {"final": "fold_ensemble", "folds": ens.folds,
                         **scores(ens.predict(train.columns, test.x))}
    else:
        served, columns = ens.model, ens.columns
        if test is not None:
            test_proba = ens.predict(train.columns, test.x)
            test_scores = scores(test_proba)
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
        "columns": None if columns is None else columns.to_dict(),
        "final": final,
        "fold_models": None if ens is None else ens.folds,
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
        "test_other": other,  # the other final model, where it exists: its held-out scores
        "source": dict(cfg.source),
        "data_source": cfg.data["source"],
        "config": cfg.to_dict(),
        "mlflow": None,
    }
    result = TrainResult(
        model=served, config=cfg, meta=meta, out=out_dir, test=test_scores,
        test_proba=test_proba,
    )
    example = train.x[:5] if train.columns is None else train.columns.served_rows(train.x[:5])
    if train.columns is None and train.feature_names is not None:
        import pandas as pd

        example = pd.DataFrame(train.x[:5].astype(np.float64), columns=train.feature_names)
    result.mlflow = publish(
        served, cfg, meta, out=out_dir, x_example=example, train=train,
        test_y=None if test is None else test.y, test_proba=test_proba,
        tracker=tracker, uri=uri,
    )
    result.seconds = time.perf_counter() - start
    return result
