"""The served model's code, as MLflow's "models from code" logs it: MLflow copies this file
into the model and runs it on load, so nothing is pickled. The loader that reopens the model
directory comes from the model's ``model_config`` (see ``served.log_served_model``)."""

import mlflow.models

from weightsearch.tracking.served import rows_model_class

mlflow.models.set_model(rows_model_class()())
