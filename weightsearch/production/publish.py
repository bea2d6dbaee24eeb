"""Where a trained model goes: its model directory (``model.keras`` + ``weightsearch.json``)
and MLflow (a ``train`` run with its parameters, loss curve, test scores and artifacts, and
the model logged and registered)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from weightsearch.production.config import TrainConfig, plain
from weightsearch.production.files import (
    META_FILE,
    MODEL_FILE,
    default_mode,
    install_dir,
    missing_parents,
)


def run_params(cfg: TrainConfig, meta: dict[str, Any]) -> dict[str, Any]:
    """The MLflow parameters of a training run: the trial's params, the schedule, the data
    and the class weights."""
    from weightsearch.training import weights_params

    params = dict(cfg.params())
    params.update(
        {
            "apply_weights": cfg.weighting["apply_weights"],
            "epochs": cfg.train["epochs"],
            "batch_size": cfg.train["batch_size"],
            "seed": cfg.train["seed"],
            "final": cfg.train["final"],
            "data": cfg.data["source"],
            "test_size": cfg.data["test_size"],
            "train_rows": meta["train_rows"],
            "threshold": cfg.decision.get("threshold"),
            "positive": cfg.decision.get("positive"),
            "source.study": cfg.source.get("study"),
            "source.trial": cfg.source.get("trial"),
        }
    )
    values = meta["weights"]["values"]
    if values is not None:
        params.update(weights_params(np.asarray(values), cfg.classes))
    return {k: v for k, v in params.items() if v is not None}


def run_note(cfg: TrainConfig, meta: dict[str, Any]) -> str:
    """The one-paragraph description of a training run and its model version."""
    src = cfg.source
    cv = cfg.cv_summary()
    test = meta.get("test")
    test_text = "" if not test else f"; test macro-F1 {test['macro_f1']:.4f}"
    return (
        f"Final model of study {src.get('study')!r}, trial {src.get('trial')} "
        f"(run {src.get('mlflow_run_id') or '-'}): {cfg.weighting['scheme']} / "
        f"{cfg.loss['name']} / {cfg.model['arch']}, {cfg.train['epochs']} epoch(s) on "
        f"{meta['train_rows']} rows{'; ' + cv if cv else ''}{test_text}."
    )


LOADER = "weightsearch.production.predict:load_model"  # how the served model reloads


def served_model(
    tracker: Any, run: str, model: Any, cfg: TrainConfig, meta: dict[str, Any],
    model_path: Path, *, x_example: Any, train: Any, version_tags: dict[str, str],
) -> dict[str, Any] | None:
    """Log and register the served model: the model directory (``model_path`` and the
    metadata so far) behind :class:`weightsearch.tracking.served.RowsModel`, with a
    signature of the raw columns' real types and the outputs of ``x_example``."""
    from weightsearch.production.predict import TrainedModel
    from weightsearch.tracking import served

    folder = Path(tempfile.mkdtemp(prefix="weightsearch-served-"))
    try:
        shutil.copy2(model_path, folder / MODEL_FILE)
        (folder / META_FILE).write_text(json.dumps(plain(meta), indent=2) + "\n",
                                        encoding="utf-8")
        output = TrainedModel(model, meta, folder).predict_frame(x_example)
        columns = train.columns
        types = None if columns is None else {c.name: c.value_type for c in columns.features}
        return served.log_served_model(
            tracker, run, model_dir=folder, loader=LOADER, example=x_example, output=output,
            column_types=types, registered_model_name=cfg.tracking["registered_model"],
            description=run_note(cfg, meta), version_tags=version_tags,
            training=served.training_input(
                *training_rows(train, cfg), source=str(cfg.data["source"]),
                name=f"{cfg.source.get('study') or 'train'}-training",
            ),
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def training_rows(train: Any, cfg: TrainConfig) -> tuple[Any, Any]:
    """``(data, targets)`` describing the training part for MLflow: a table's raw rows with
    a ``label`` column of class names (one 0/1 column per label for multi-label), else the
    array and its labels."""
    if train.columns is None and train.feature_names is None:
        return np.asarray(train.x), np.asarray(train.y)
    import pandas as pd

    frame = (train.columns.rows(train.x) if train.columns is not None
             else pd.DataFrame(np.asarray(train.x, dtype=np.float64), columns=train.feature_names))
    if cfg.task == "multilabel":
        for j, c in enumerate(cfg.classes):
            frame[f"label_{c}"] = np.asarray(train.y)[:, j]
        return frame, None
    target = "label" if "label" not in frame.columns else "__label__"
    frame[target] = np.asarray(cfg.classes, dtype=object)[np.asarray(train.y)]
    return frame, target


def publish(
    model: Any,
    cfg: TrainConfig,
    meta: dict[str, Any],
    *,
    out: Path | None,
    x_example: Any,
    train: Any,
    test_y: np.ndarray | None,
    test_proba: np.ndarray | None,
    tracker: Any,
    uri: str,
) -> dict[str, Any] | None:
    """Save the model to ``out`` (if given) and log it to ``tracker`` (if enabled); returns
    what MLflow holds (also stored as ``meta["mlflow"]``), ``None`` without tracking.

    MLflow gets the served model (:func:`served_model`), with ``x_example`` (raw rows of
    ``train``, the training part) as its input example and ``train`` described as the run's
    training input.

    Everything is written to a temporary directory first; on any failure the MLflow run is
    ended as FAILED (KILLED on Ctrl-C) and nothing is left in ``out``."""
    from weightsearch.storage import mask_url
    from weightsearch.tracking import served as served_tracking

    src = cfg.source
    if out is None and not tracker.enabled:
        return None
    created = missing_parents(out) if out is not None else []
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
        os.chmod(tmp, default_mode(0o777))  # mkdtemp makes it private (0700)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="weightsearch-train-"))
    run = None
    test = meta.get("test")
    try:
        model_path = tmp / MODEL_FILE
        model.save(model_path)
        if tracker.enabled:
            tags = {
                "weightsearch.role": "train",
                "weightsearch.study": str(src.get("study", "")),
                "optuna.study": str(src.get("study", "")),
                "weightsearch.source_trial": str(src.get("trial", "")),
                "weightsearch.source_run_id": str(src.get("mlflow_run_id") or ""),
                "mlflow.note.content": run_note(cfg, meta),
            }
            name = f"train-trial{src.get('trial', 'x')}-{time.strftime('%Y%m%d-%H%M%S')}"
            run = served_tracking.start_train_run(tracker, name, tags, run_params(cfg, meta))
            tracker.log_metric_rows(  # one request, step = epoch
                run, [("loss", v, i) for i, v in enumerate(meta["train_loss"])]
            )
            if test is not None:
                scores = {"test_macro_f1": test["macro_f1"],
                          f"test_{test['metric']}": test["value"]}
                scores.update({f"test_f1.{c}": v for c, v in test["per_class_f1"].items()})
                other = meta.get("test_other")
                if other:  # the other final model, scored on the same test set
                    scores[f"test_macro_f1.{other['final']}"] = other["macro_f1"]
                tracker.log_metrics(run, scores)
            version_tags = {
                "weightsearch.study": str(src.get("study", "")),
                "weightsearch.source_trial": str(src.get("trial", "")),
                "weightsearch.source_run_id": str(src.get("mlflow_run_id") or ""),
            }
            if test is not None:
                version_tags["weightsearch.test_macro_f1"] = f"{test['macro_f1']:.6f}"
            logged = served_model(
                tracker, run, model, cfg, meta, model_path, x_example=x_example, train=train,
                version_tags=version_tags,
            )
            meta["mlflow"] = {
                "tracking_uri": mask_url(uri),
                "experiment": cfg.tracking["experiment"],
                "run_id": run,
                **(logged or {}),
            }
        (tmp / META_FILE).write_text(json.dumps(plain(meta), indent=2) + "\n", encoding="utf-8")
        if tracker.enabled:
            tracker.log_file(run, str(tmp / META_FILE), "weightsearch")
            tracker.log_text(run, cfg.to_toml(), "weightsearch/train_config.toml")
            if test is not None and test_y is not None and test_proba is not None:
                from weightsearch.artifacts import write_fold_artifacts

                threshold, positive = cfg.decision_rule()
                write_fold_artifacts(
                    tracker, run, test_y, test_proba,
                    task=cfg.task, classes=cfg.classes, positive=positive,
                    threshold=0.5 if threshold is None else threshold,
                    weights=cfg.decision_weights(),
                    title=f"held-out test set ({len(test_y)} rows)",
                )
            served_tracking.tag_other_run(
                tracker, src.get("mlflow_run_id"), {"weightsearch.train_run_id": str(run)}
            )
            served_tracking.end_run(tracker, run, "FINISHED")
        if out is not None:
            install_dir(tmp, out)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException as exc:
        if run is not None:
            try:
                status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
                served_tracking.end_run(tracker, run, status)
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
        shutil.rmtree(tmp, ignore_errors=True)
        for parent in created:
            try:
                parent.rmdir()
            except OSError:
                break
        raise
    return meta["mlflow"]
