"""The fold ensemble as the final model (``train.final = "fold_ensemble"``): the chosen
trial's K fold models, each at its best epoch, averaged, p(x) = (1/K) Σ_k p_k(x). The CV
trained them and saved them in the trial's MLflow run, so nothing is trained again."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from weightsearch.production.config import ConfigError, TrainConfig


@dataclass
class Ensemble:
    """The fetched ensemble: ``model`` (the served one: raw rows in, for a table) and the
    ``columns`` it takes (the study's, as its encoders were fitted), ``None`` for arrays."""

    model: Any
    columns: Any
    folds: int

    def inputs(self, columns: Any, x: np.ndarray) -> Any:
        """Model inputs for rows ``x`` (codes of ``columns``, the data loaded now)."""
        if self.columns is None:
            return x
        from weightsearch.preprocessing import row_inputs

        return row_inputs(self.columns, columns.rows(x))

    def predict(self, columns: Any, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(self.inputs(columns, x), batch_size=1024, verbose=0))


def fetch(cfg: TrainConfig, uri: str, *, required: bool) -> Ensemble | None:
    """The config's trial's fold ensemble from its MLflow run at ``uri``; ``None`` when it
    is not there (a :class:`ConfigError` at ``train.final`` when ``required``)."""
    import keras

    import weightsearch.preprocessing  # noqa: F401  (registers TableEncoder)
    from weightsearch.preprocessing import encoder_columns, raw_model
    from weightsearch.tracking import TrackingError
    from weightsearch.tracking.served import fetch_artifact

    run, path = cfg.source.get("mlflow_run_id"), cfg.source.get("fold_ensemble")
    trial = cfg.source.get("trial", "?")
    if not run or not path:
        if not required:
            return None
        raise ConfigError([
            f"train.final: 'fold_ensemble' needs trial {trial}'s fold models, saved in its "
            "MLflow run when the study is tracked, but this trial has none (source."
            "fold_ensemble); set train.final = 'refit'."
        ], cfg.path or "the training config")
    folder = tempfile.mkdtemp(prefix="weightsearch-ensemble-")
    try:
        try:
            local = fetch_artifact(uri, run, path, folder)
        except TrackingError as exc:
            if not required:
                return None
            raise ConfigError([f"train.final: {exc}"], cfg.path or "the training config") from None
        model = keras.models.load_model(local, compile=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    folds = sum(1 for layer in model.layers if isinstance(layer, keras.Model))
    columns = encoder_columns(model)
    served = model if columns is None else raw_model(columns, model)
    return Ensemble(model=served, columns=columns, folds=max(folds, 1))
