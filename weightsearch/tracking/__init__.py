"""MLflow tracking: the only module that imports mlflow.

One experiment per study, one parent run per study invocation, and one nested child run
per trial, created when the trial starts. Runs are addressed by id through
``MlflowClient``, never through MLflow's process-global active run, so the code is safe
with threads and several workers. Per-trial figures and reports are logged on one background
thread (:func:`submit_artifact_job`), flushed by ``end_study`` and at interpreter exit.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from weightsearch.base import first_line
from weightsearch.storage import mask_url, parse_url, store_cause

STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED", "KILLED": "KILLED"}


class TrackingError(RuntimeError):
    """The tracking backend cannot be used (unreachable URI, bad store), or it refused a
    write (a full disk, a read-only directory): that stops the study, it is no trial's
    failure."""


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

    def log_metric_rows(self, run: str | None, rows: list[tuple[str, float, int]]) -> None:
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

    def close_stale_studies(self, name: str, gone: Callable[[dict[str, str]], bool]) -> list[str]:
        return []


def quiet_logs() -> None:
    for name in ("mlflow", "alembic", "sqlalchemy", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _artifact_location(uri: str, experiment: str) -> str | None:
    """Keep a local SQLite store's artifacts beside the database file."""
    parsed = parse_url(uri)
    if parsed.kind != "sqlite" or parsed.path is None:
        return None
    return (parsed.path.resolve().parent / "mlartifacts" / experiment).as_uri()


class MlflowTracker(NullTracker):
    """Logs studies and trials to an MLflow tracking store."""

    enabled = True

    def __init__(self, uri: str, experiment: str) -> None:
        from mlflow import MlflowClient

        quiet_logs()

        self.uri = uri
        self.experiment_name = experiment
        self.parent_run_id = None
        if uri.startswith(("http://", "https://")):
            _check_server(uri)
        self._experiment_id: str | None = None
        try:
            self.client = MlflowClient(tracking_uri=uri)
            exp = self.client.get_experiment_by_name(experiment)
        except Exception as exc:  # mlflow raises many types for a bad store
            raise TrackingError(
                f"cannot use the MLflow tracking URI {mask_url(uri)!r}: {store_cause(exc)}"
            ) from exc
        if exp is not None:
            self._experiment_id = exp.experiment_id

    @property
    def experiment_id(self) -> str:
        """The experiment's id; a new experiment is created only here, on the first run, so
        a command that refuses to start leaves no empty experiment behind."""
        if self._experiment_id is None:
            try:
                self._experiment_id = self.client.create_experiment(
                    self.experiment_name,
                    artifact_location=_artifact_location(self.uri, self.experiment_name),
                )
            except Exception:  # noqa: BLE001 - another worker may have created it just now
                with self.writing("create the experiment"):
                    exp = self.client.get_experiment_by_name(self.experiment_name)
                    if exp is None:
                        raise
                    self._experiment_id = exp.experiment_id
        return self._experiment_id

    @contextmanager
    def writing(self, what: str) -> Iterator[None]:
        """Turn a failed write into one :class:`TrackingError` line naming the store, what
        was written and the real cause."""
        try:
            yield
        except TrackingError:
            raise
        except Exception as exc:  # mlflow raises many types for a store that refuses writes
            raise TrackingError(
                f"the MLflow store {mask_url(self.uri)} refused a write ({what}): "
                f"{store_cause(exc)}"
            ) from exc

    # -- runs ----------------------------------------------------------------------------
    def start_study(self, name: str, params: dict[str, Any], tags: dict[str, str]) -> None:
        with self.writing("start the study's run"):
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
        with self.writing(f"start trial {number}'s run"):
            run = self.client.create_run(
                self.experiment_id, run_name=f"trial-{number}", tags=run_tags
            )
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
        with self.writing("log metrics"):
            for i in range(0, len(items), 1000):
                self.client.log_batch(run, metrics=items[i : i + 1000])

    def log_metric_rows(self, run: str | None, rows: list[tuple[str, float, int]]) -> None:
        """``(key, value, step)`` rows in as few ``log_batch`` calls as MLflow allows."""
        if run is None or not rows:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, int(step)) for k, v, step in rows]
        with self.writing("log metrics"):
            for i in range(0, len(items), 1000):
                self.client.log_batch(run, metrics=items[i : i + 1000])

    def log_params(self, run: str | None, params: dict[str, Any]) -> None:
        if run is None or not params:
            return
        from mlflow.entities import Param

        items = [Param(k, _param_str(v)) for k, v in params.items()]
        with self.writing("log parameters"):
            for i in range(0, len(items), 100):
                self.client.log_batch(run, params=items[i : i + 100])

    def set_tags(self, run: str | None, tags: dict[str, str]) -> None:
        if run is None:
            return
        from mlflow.entities import RunTag

        with self.writing("set tags"):
            self.client.log_batch(run, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_text(self, run: str | None, text: str, name: str) -> None:
        if run is not None:
            with self.writing(f"log {name}"):
                self.client.log_text(run, text, name)

    def log_figure(self, run: str | None, figure: Any, name: str) -> None:
        if run is not None:
            with self.writing(f"log {name}"):
                self.client.log_figure(run, figure, name)

    def log_file(self, run: str | None, path: str, artifact_path: str | None = None) -> None:
        if run is not None:
            with self.writing(f"log {Path(path).name}"):
                self.client.log_artifact(run, path, artifact_path)

    def end_trial(self, run: str | None, state: str) -> None:
        if run is None:
            return
        try:
            self.set_tags(run, {"optuna.state": state})
        finally:  # closed wherever the store still allows it
            with self.writing("close a trial's run"):
                self.client.set_terminated(run, status=STATUS.get(state, "FAILED"))

    def end_study(self, state: str = "COMPLETE") -> None:
        """Wait for the trials' queued artifacts (briefly when interrupted), then close the
        study's parent run."""
        left = flush_artifacts(KILLED_FLUSH_S if state == "KILLED" else None)
        if left:
            print(
                f"warning: {left} artifact job(s) still queued; the exit waits for them.",
                file=sys.stderr,
            )
        if self.parent_run_id is not None:
            run, self.parent_run_id = self.parent_run_id, None
            with self.writing("close the study's run"):
                self.client.set_terminated(run, status=STATUS.get(state, "FAILED"))


    def close_stale_studies(self, name: str, gone: Callable[[dict[str, str]], bool]) -> list[str]:
        """Close as KILLED the RUNNING parent runs of study ``name`` whose process is gone
        (``gone(tags)``, e.g. it was SIGKILLed), with a tag saying why; returns their ids.
        A new experiment has none."""
        if self._experiment_id is None:
            return []
        with self.writing("close stale study runs"):
            runs = self.client.search_runs(
                [self._experiment_id],
                filter_string="tags.`weightsearch.role` = 'study' and "
                "attributes.status = 'RUNNING'",
                max_results=1000,
            )
            closed = []
            for r in runs:
                tags = r.data.tags
                if tags.get("weightsearch.study") != name or not gone(tags):
                    continue
                self.client.set_tag(
                    r.info.run_id, "weightsearch.closed",
                    f"its process ({tags.get('weightsearch.worker', '?')}) is gone; closed "
                    "when the study next started",
                )
                self.client.set_terminated(r.info.run_id, status="KILLED")
                closed.append(r.info.run_id)
        return closed


def _check_server(uri: str, timeout: float = 5.0) -> None:
    """Fail fast on an unreachable tracking server (MLflow's client retries for minutes)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"cannot reach the MLflow tracking server {mask_url(uri)!r}: {reason}"
        ) from exc


def _param_str(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]


def make_tracker(enabled: bool, uri: str, experiment: str) -> NullTracker:
    """An :class:`MlflowTracker`, or a :class:`NullTracker` when tracking is off."""
    if not enabled:
        return NullTracker()
    return MlflowTracker(uri, experiment)


# ---- the artifact thread (per-trial figures and reports, off the critical path) ------------

#: Jobs that may wait for the artifact thread; one more ``submit`` waits for a free slot.
QUEUE_SIZE = 4
#: Seconds ``end_study`` waits for queued artifacts after Ctrl-C.
KILLED_FLUSH_S = 5.0
#: Seconds the interpreter waits at exit for queued artifacts (a Ctrl-C stops the wait).
EXIT_FLUSH_S = 60.0

_log = logging.getLogger("weightsearch")


class _ArtifactThread:
    """One daemon thread that runs artifact jobs in order; flushed at interpreter exit."""

    def __init__(self) -> None:
        self.jobs: queue.Queue[tuple[Callable[[], None], str]] = queue.Queue(QUEUE_SIZE)
        self.thread: threading.Thread | None = None
        self.failed = 0
        self._lock = threading.Lock()
        self._exit_hook = False

    def submit(self, job: Callable[[], None], what: str) -> None:
        with self._lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._work, name="weightsearch-artifacts", daemon=True
                )
                self.thread.start()
            if not self._exit_hook:
                import atexit

                atexit.register(self._at_exit)
                self._exit_hook = True
        self.jobs.put((job, what))

    def _work(self) -> None:
        while True:
            job, what = self.jobs.get()
            try:
                job()
            except BaseException as exc:  # noqa: BLE001 - a lost figure must not stop a study
                self.failed += 1
                _log.warning("could not log %s: %s", what, first_line(exc))
            finally:
                self.jobs.task_done()

    def flush(self, timeout: float | None) -> int:
        if threading.current_thread() is self.thread:
            return self.jobs.unfinished_tasks  # a job cannot wait for itself
        deadline = None if timeout is None else time.monotonic() + timeout
        done = self.jobs.all_tasks_done
        with done:
            while self.jobs.unfinished_tasks and self.thread is not None:
                wait = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
                if wait <= 0 or not self.thread.is_alive():
                    break
                done.wait(wait)  # short waits: a Ctrl-C is seen at once
            return self.jobs.unfinished_tasks

    def _at_exit(self) -> None:
        why = f"still running after {EXIT_FLUSH_S:g} s"
        try:
            left = self.flush(EXIT_FLUSH_S)
        except KeyboardInterrupt:
            left, why = self.jobs.unfinished_tasks, "interrupted"
        if left:
            print(f"warning: {left} MLflow artifact job(s) not logged ({why}).", file=sys.stderr)


_ARTIFACTS = _ArtifactThread()


def submit_artifact_job(job: Callable[[], None], what: str) -> None:
    """Run ``job`` (draw and log a trial's artifacts) on the process's artifact thread, in
    submission order. Returns at once unless :data:`QUEUE_SIZE` jobs are already waiting.
    A job that raises is logged as a warning naming ``what``; it does not stop the study."""
    _ARTIFACTS.submit(job, what)


def flush_artifacts(timeout: float | None = None) -> int:
    """Wait until every artifact job submitted so far has finished, or for ``timeout``
    seconds. Returns the number of jobs not finished (0: all done). The study's
    ``end_study`` and the interpreter's exit call it."""
    return _ARTIFACTS.flush(timeout)


def artifact_failures() -> int:
    """How many artifact jobs of this process have raised."""
    return _ARTIFACTS.failed


# ---- report artifacts (used by `weightsearch report`) --------------------------------------


def find_study_run(uri: str, experiment: str, study: str) -> tuple[str | None, str]:
    """The latest MLflow parent run of a study (tag ``weightsearch.role=study``).

    Returns ``(run_id, "")``, or ``(None, why)`` when there is none. A local SQLite store
    that does not exist is not created.
    """
    from mlflow import MlflowClient

    quiet_logs()
    parsed = parse_url(uri)
    if parsed.kind == "sqlite" and parsed.path is not None and not parsed.path.is_file():
        return None, f"no MLflow database at {parsed.path}; nothing logged."
    try:
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return None, f"no MLflow experiment {experiment!r} at {mask_url(uri)}; nothing logged."
        runs = client.search_runs(
            [exp.experiment_id],
            filter_string="tags.`weightsearch.role` = 'study'",
            order_by=["attributes.start_time DESC"],
            max_results=20,
        )
    except Exception as exc:
        raise TrackingError(
            f"cannot use the MLflow tracking URI {mask_url(uri)!r}: {first_line(exc)} "
            "(use --no-tracking to skip MLflow)"
        ) from exc
    runs = [r for r in runs if r.data.tags.get("weightsearch.study", study) == study]
    if not runs:
        return None, f"no parent run of study {study!r} in experiment {experiment!r}."
    return runs[0].info.run_id, ""


def log_report_artifacts(
    uri: str, experiment: str, study: str, directory: str | Path, artifact_path: str = "report"
) -> tuple[str | None, str]:
    """Log every file of ``directory`` under ``artifact_path/`` on the study's latest parent
    run. Returns ``(run_id, note)``; ``run_id`` is ``None`` (and ``note`` says why) when the
    study has no parent run."""
    from mlflow import MlflowClient

    run, why = find_study_run(uri, experiment, study)
    if run is None:
        return None, why
    try:
        MlflowClient(tracking_uri=uri).log_artifacts(run, str(directory), artifact_path)
    except Exception as exc:
        raise TrackingError(
            f"cannot log the report to MLflow run {run}: {first_line(exc)} "
            "(use --no-tracking to skip MLflow)"
        ) from exc
    return run, f"logged under {artifact_path}/ on MLflow parent run {run}."
