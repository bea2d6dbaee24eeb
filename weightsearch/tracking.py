"""MLflow tracking: the only module that imports mlflow.

One experiment per study, one parent run per study invocation, and one nested child run
per trial, created when the trial starts. Runs are addressed by id through
``MlflowClient``, never through MLflow's process-global active run, so the code is safe
with threads and several workers.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED", "KILLED": "KILLED"}


def mask_url(url: str) -> str:
    """Hide the password of a URL: ``postgresql://u:secret@h/db`` → ``postgresql://u:***@h/db``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


class TrackingError(RuntimeError):
    """The tracking backend cannot be used (unreachable URI, bad store)."""


class NullTracker:
    """Tracking switched off: every call is a no-op."""

    enabled = False
    parent_run_id: str | None = None

    def start_study(self, name: str, params: dict[str, Any], tags: dict[str, str]) -> None:
        pass

    def start_trial(self, number: int, params: dict[str, Any], tags: dict[str, str]) -> str | None:
        return None

    def log_metrics(
        self, run: str | None, metrics: dict[str, float], step: int | None = None
    ) -> None:
        pass

    def log_params(self, run: str | None, params: dict[str, Any]) -> None:
        pass

    def set_tags(self, run: str | None, tags: dict[str, str]) -> None:
        pass

    def log_text(self, run: str | None, text: str, name: str) -> None:
        pass

    def log_figure(self, run: str | None, figure: Any, name: str) -> None:
        pass

    def log_file(self, run: str | None, path: str, artifact_path: str | None = None) -> None:
        pass

    def end_trial(self, run: str | None, state: str) -> None:
        pass

    def end_study(self, state: str = "COMPLETE") -> None:
        pass


def _quiet_logs() -> None:
    for name in ("mlflow", "alembic", "sqlalchemy", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _artifact_location(uri: str, experiment: str) -> str | None:
    """Keep a local SQLite store's artifacts beside the database file."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri[len("sqlite:///") :]).resolve()
    return (db.parent / "mlartifacts" / experiment).as_uri()


class MlflowTracker(NullTracker):
    """Logs studies and trials to an MLflow tracking store."""

    enabled = True

    def __init__(self, uri: str, experiment: str) -> None:
        from mlflow import MlflowClient

        _quiet_logs()

        self.uri = uri
        self.experiment_name = experiment
        self.client = MlflowClient(tracking_uri=uri)
        self.parent_run_id = None
        try:
            exp = self.client.get_experiment_by_name(experiment)
            if exp is None:
                self.experiment_id = self.client.create_experiment(
                    experiment, artifact_location=_artifact_location(uri, experiment)
                )
            else:
                self.experiment_id = exp.experiment_id
        except Exception as exc:  # mlflow raises many types for a bad store
            raise TrackingError(
                f"cannot use the MLflow tracking URI {mask_url(uri)!r}: {str(exc).splitlines()[0]}"
            ) from exc

    # -- runs ----------------------------------------------------------------------------
    def start_study(self, name: str, params: dict[str, Any], tags: dict[str, str]) -> None:
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}",
            tags={"weightsearch.study": name, "weightsearch.role": "study", **tags},
        )
        self.parent_run_id = run.info.run_id
        self.log_params(self.parent_run_id, params)

    def start_trial(self, number: int, params: dict[str, Any], tags: dict[str, str]) -> str:
        run_tags = {"optuna.trial_number": str(number), "optuna.state": "RUNNING", **tags}
        if self.parent_run_id:
            run_tags["mlflow.parentRunId"] = self.parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=f"trial-{number}", tags=run_tags)
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    def log_metrics(
        self, run: str | None, metrics: dict[str, float], step: int | None = None
    ) -> None:
        if run is None or not metrics:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items() if v is not None]
        for i in range(0, len(items), 1000):
            self.client.log_batch(run, metrics=items[i : i + 1000])

    def log_params(self, run: str | None, params: dict[str, Any]) -> None:
        if run is None or not params:
            return
        from mlflow.entities import Param

        items = [Param(k, _param_str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run, params=items[i : i + 100])

    def set_tags(self, run: str | None, tags: dict[str, str]) -> None:
        if run is None:
            return
        from mlflow.entities import RunTag

        self.client.log_batch(run, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_text(self, run: str | None, text: str, name: str) -> None:
        if run is not None:
            self.client.log_text(run, text, name)

    def log_figure(self, run: str | None, figure: Any, name: str) -> None:
        if run is not None:
            self.client.log_figure(run, figure, name)

    def log_file(self, run: str | None, path: str, artifact_path: str | None = None) -> None:
        if run is not None:
            self.client.log_artifact(run, path, artifact_path)

    def end_trial(self, run: str | None, state: str) -> None:
        if run is None:
            return
        self.set_tags(run, {"optuna.state": state})
        self.client.set_terminated(run, status=STATUS.get(state, "FAILED"))

    def end_study(self, state: str = "COMPLETE") -> None:
        if self.parent_run_id is not None:
            self.client.set_terminated(self.parent_run_id, status=STATUS.get(state, "FAILED"))
            self.parent_run_id = None


def _param_str(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]


def make_tracker(enabled: bool, uri: str, experiment: str) -> NullTracker:
    """An :class:`MlflowTracker`, or a :class:`NullTracker` when tracking is off."""
    if not enabled:
        return NullTracker()
    return MlflowTracker(uri, experiment)


def temp_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="weightsearch-")
