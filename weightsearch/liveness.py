"""Which process runs a trial, whether it is gone, and what happens to its lost trials.

The journal backend has no heartbeats: a trial whose worker was SIGKILLed (or OOM-killed)
would stay RUNNING forever. Each trial records its process (:func:`mark_worker`), so any
process that can see that process's pids (same host and boot, same PID namespace) can tell,
through psutil, that it is gone (:func:`lost_local_trials`), on any storage. With heartbeats
(an RDB storage), Optuna also finds stale trials of other machines, a grace period later, and
hands them to :class:`StaleTrialHandler`. Either way a lost trial is failed, re-queued at most
twice, and its MLflow run closed. A study's MLflow parent run records its process the same
way (:func:`worker_record`), so a killed invocation's run is closed too (:func:`recorded_gone`).
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Mapping
from typing import Any

import psutil

from weightsearch.compat import study_storage, trial_id


def worker_id() -> str:
    """This process as trials record it (user attribute ``worker``): ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_scope() -> str:
    """Where this process's pid means this process: host and boot time, plus the PID
    namespace where ``/proc/self/ns/pid`` exists (Linux); "" where psutil cannot tell, and
    then no trial is judged lost by its pid."""
    try:
        boot = psutil.boot_time()
    except (OSError, RuntimeError, psutil.Error):
        return ""
    scope = f"{socket.gethostname()}/{boot:.0f}"
    try:
        return f"{scope}/{os.readlink('/proc/self/ns/pid')}"
    except (OSError, AttributeError):  # no PID namespaces here (macOS, Windows)
        return scope


def process_start(pid: int | None = None) -> str:
    """When process ``pid`` (default: this one) started, in seconds after boot to 1/100 s
    (psutil's ``create_time() - boot_time()``, so a clock change does not move it); "" where
    unknown. With the pid, it names one process even after the pid is reused."""
    try:
        started = psutil.Process(pid or os.getpid()).create_time() - psutil.boot_time()
    except (OSError, RuntimeError, psutil.Error):
        return ""
    return f"{started:.2f}"


def worker_record(prefix: str = "") -> dict[str, str]:
    """This process as a trial (user attributes) or an MLflow run (tags, ``prefix``
    ``"weightsearch."``) records it: ``worker``, ``worker_started`` and ``worker_scope``."""
    return {
        f"{prefix}worker": worker_id(),
        f"{prefix}worker_started": process_start(),
        f"{prefix}worker_scope": worker_scope(),
    }


def mark_worker(trial: Any) -> None:
    """Record which process runs ``trial`` (:func:`worker_record`, as user attributes)."""
    for key, value in worker_record().items():
        trial.set_user_attr(key, value)


def process_gone(pid: int, started: str) -> bool:
    """Whether process ``pid`` that started at ``started`` (:func:`process_start`) has ended:
    no such pid, a zombie, or the pid now belongs to a process started at another time."""
    if not psutil.pid_exists(pid):
        return True
    try:
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
    except psutil.NoSuchProcess:  # ZombieProcess included
        return True
    except psutil.Error:
        return False  # it exists but cannot be read: do not judge
    return process_start(pid) not in ("", started)


def lost_local_trials(study: Any) -> list[int]:
    """Ids of RUNNING trials whose worker process is gone, among those recorded in this
    process's scope (:func:`worker_scope`); trials that do not name their worker yet, or ran
    on another machine or in another PID namespace, are never judged."""
    import optuna

    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return [trial_id(t) for t in running if recorded_gone(t.user_attrs)]


def recorded_gone(record: Mapping[str, Any], prefix: str = "") -> bool:
    """Whether the process a :func:`worker_record` names (keys with ``prefix``) is provably
    gone: it was recorded in this process's scope, is not this process, and has ended. A
    record from another machine or PID namespace, or an incomplete one, is never judged."""
    scope = worker_scope()
    pid = str(record.get(f"{prefix}worker", "")).rpartition(":")[2]
    started = str(record.get(f"{prefix}worker_started", ""))
    if not scope or record.get(f"{prefix}worker_scope") != scope or not pid.isdigit():
        return False
    if not started or (int(pid), started) == (os.getpid(), process_start()):
        return False
    return process_gone(int(pid), started)


class StaleTrialHandler:
    """Re-queue a trial whose worker died, at most twice, and close its MLflow run as FAILED
    through ``tracker`` (set once the tracker exists)."""

    def __init__(self, reason: str = "no heartbeat") -> None:
        import optuna
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.retry = RetryHeartbeatStaleTrialCallback(max_retry=2)
        self.tracker: Any = None
        self.reason = reason

    def __call__(self, study: Any, trial: Any) -> None:
        import copy

        run = trial.user_attrs.get("mlflow_run_id")
        # The retry starts clean: until it names its own worker and MLflow run it must not
        # look like the lost process's trial (see lost_local_trials).
        fresh = copy.copy(trial)
        fresh.user_attrs = {}
        self.retry(study, fresh)
        if self.tracker is not None and run:
            self.tracker.set_tags(run, {"error": f"worker lost ({self.reason}); trial retried"})
            self.tracker.end_trial(run, "FAIL")


def recover_lost_trials(study: Any, tracker: Any = None) -> list[int]:
    """Fail the RUNNING trials whose worker process is provably gone
    (:func:`lost_local_trials`), re-queue them (at most twice) and close their MLflow runs,
    as :class:`StaleTrialHandler` does for stale heartbeats. On any storage: with heartbeats
    (an RDB storage) a trial killed on this machine is recovered at once, not a grace period
    later; heartbeats still find those of other machines. Returns the failed trials' numbers.

    Failing and re-queuing are two writes: if this process dies between them, the trial stays
    failed and is not retried."""
    import copy

    import optuna

    handler = StaleTrialHandler("its process is gone")
    handler.tracker = tracker
    storage, failed = study_storage(study), []
    for lost in lost_local_trials(study):
        try:
            if not storage.set_trial_state_values(lost, state=optuna.trial.TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process got there first
        trial = copy.deepcopy(storage.get_trial(lost))
        handler(study, trial)
        failed.append(trial.number)
    return failed


def requeued_since(study: Any, before: int) -> list[int]:
    """Numbers of the lost trials whose retries are trial ``before`` or later (re-queued by
    any process: a heartbeat check or :func:`recover_lost_trials`)."""
    return sorted(
        t.system_attrs["retry_history"][-1] for t in study.get_trials(deepcopy=False)[before:]
        if t.system_attrs.get("retry_history")
    )


def trials_run_since(study: Any, before: int) -> int:
    """Trials created as trial ``before`` or later that have started (queued retries have
    not)."""
    import optuna

    return sum(t.state != optuna.trial.TrialState.WAITING
               for t in study.get_trials(deepcopy=False)[before:])


__all__ = [
    "StaleTrialHandler",
    "lost_local_trials",
    "mark_worker",
    "process_gone",
    "process_start",
    "recorded_gone",
    "recover_lost_trials",
    "requeued_since",
    "trials_run_since",
    "worker_id",
    "worker_record",
    "worker_scope",
]
