"""From a finished study to production: export a trial's config, train, save, predict.

- :func:`export` reads a trial (the best by default) from an Optuna study and writes a
  standalone, human-readable TOML training config (data, weighting, loss, architecture,
  optimiser, batch size, epochs, decision threshold) that traces back to the study, the
  trial and its MLflow run (:mod:`.exporting`).
- :func:`load_config` reads and checks such a file (:mod:`.config`); :func:`build_from_config`
  compiles the model it describes for given data; :func:`train_from_config` trains the final
  model on all training data, evaluates it on the study's held-out test split (:mod:`.train`),
  saves ``model.keras`` and ``weightsearch.json`` and logs and registers the model in MLflow
  (:mod:`.publish`).
- :func:`load_model` reloads a saved model directory; :func:`predict` writes predictions of
  new data to CSV (:mod:`.predict`).
- :mod:`.terminal` holds what the CLI prints; :mod:`.files` the atomic file writes.

Importing this package imports only numpy; Keras, Optuna, MLflow and pandas are imported
when a function needs them.
"""

from weightsearch.production.config import ConfigError, TrainConfig, load_config, parse_config
from weightsearch.production.exporting import (
    Exported,
    config_from_trial,
    export,
    export_trial,
    median_epochs,
)
from weightsearch.production.files import ExportError
from weightsearch.production.predict import PredictResult, TrainedModel, load_model, predict
from weightsearch.production.terminal import (
    export_lines,
    predict_lines,
    train_banner,
    train_renderables,
)
from weightsearch.production.train import (
    TrainFailed,
    TrainResult,
    build_from_config,
    evaluate,
    load_data,
    train_from_config,
)

__all__ = [
    "ConfigError",
    "ExportError",
    "Exported",
    "PredictResult",
    "TrainConfig",
    "TrainFailed",
    "TrainResult",
    "TrainedModel",
    "build_from_config",
    "config_from_trial",
    "evaluate",
    "export",
    "export_trial",
    "export_lines",
    "load_config",
    "load_data",
    "load_model",
    "median_epochs",
    "parse_config",
    "predict",
    "predict_lines",
    "train_banner",
    "train_from_config",
    "train_renderables",
]
