"""Local worker processes on one study: ``weightsearch study --workers K``.

The coordinator opens the study, owns the MLflow parent run (workers nest their trial runs
under it) and shows progress by polling the storage; each worker is a
``python -m weightsearch worker`` process running the Optuna engine until the study holds its
budget. With ``search.trials_per_process`` a worker exits after that many trials and a fresh
one takes its place, which bounds whatever memory a process keeps across trials. A worker
that dies has its trial failed and re-queued for the others. Ctrl-C or SIGTERM stops the
workers cleanly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from weightsearch.interrupts import interrupt_requested
from weightsearch.liveness import recover_lost_trials, requeued_since, trials_run_since
from weightsearch.locks import StudyLock
from weightsearch.study import Outcome, Prepared, StudyRun, budget_spent, counted_trials


def worker_command(
    spec_path: str,
    index: int,
    *,
    storage: str,
    total: int,
    tracking_uri: str | None,
    parent_run_id: str | None,
    max_trials: int = 0,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``python -m weightsearch worker ...`` command line of local worker ``index``."""
    cmd = [
        sys.executable,
        "-m",
        "weightsearch",
        "worker",
        spec_path,
        "--storage",
        storage,
        "--n-trials",
        str(total),
        "--quiet",
        "--worker-index",
        str(index),
    ]
    cmd += ["--tracking-uri", tracking_uri] if tracking_uri else ["--no-tracking"]
    if parent_run_id:
        cmd += ["--parent-run-id", parent_run_id]
    if max_trials:
        cmd += ["--max-trials", str(max_trials)]
    return [*cmd, *extra]


def worker_env(workers: int) -> dict[str, str]:
    """TF threads divided among the local workers."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    return {**os.environ, "WEIGHTSEARCH_THREADS": str(threads)}


def stop_workers(procs: Sequence[subprocess.Popen[bytes]], grace: float = 20.0) -> None:
    """SIGINT every worker, wait up to ``grace`` seconds, then kill what is left."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_local(
    spec_path: str,
    prepared: Prepared,
    *,
    storage: Any,
    tracker: Any,
    n_trials: int,
    workers: int,
    timeout: float | None,
    progress: Any = None,
    warn: Callable[[str], None] | None = None,
    passthrough: Sequence[str] = (),
) -> Outcome:
    """Coordinate ``workers`` local processes on one study: ``n_trials`` more trials in all.

    ``progress`` gets ``start``/``trial_done`` calls as trials finish (polled once a
    second); ``warn`` receives problems that do not stop the study (default: stderr)."""
    import optuna

    spec = prepared.spec
    url = spec.search.storage
    warn = warn or (lambda message: print(message, file=sys.stderr))
    run = StudyRun(prepared, storage=storage, tracker=tracker, progress=progress)
    study = run.open()
    total = counted_trials(study, waiting=False) + n_trials  # queued trials are part of n
    env = worker_env(workers)

    def spawn(index: int) -> subprocess.Popen[bytes]:
        cmd = worker_command(
            spec_path,
            index,
            storage=url,
            total=total,
            tracking_uri=spec.tracking.mlflow_uri if run.tracker.enabled else None,
            parent_run_id=run.tracker.parent_run_id,
            max_trials=spec.search.trials_per_process,
            extra=passthrough,
        )
        return subprocess.Popen(cmd, env=env)

    procs: list[Any] = []
    seen: set[int] = {t.number for t in study.trials if t.state.is_finished()}
    start = time.monotonic()
    with run.running(
        n_trials=n_trials, params={"n_trials": total},
        tags={"weightsearch.workers": str(workers)},
    ) as outcome:
        procs = [spawn(i) for i in range(workers)]
        try:
            while True:
                for t in study.get_trials(deepcopy=False):
                    if t.state.is_finished() and t.number not in seen:
                        seen.add(t.number)
                        if progress is not None:
                            progress.trial_done(study, t)
                for i, p in enumerate(procs):
                    if p.poll() is None:
                        continue
                    if p.returncode != 0:
                        outcome.failed_workers += 1
                        procs[i] = Done()
                        # its trial, if it was killed mid-trial: failed, re-queued for the
                        # other workers (or the next run), its MLflow run closed
                        try:
                            with StudyLock(url, spec.name):
                                recover_lost_trials(study, run.tracker)
                        except Exception as exc:  # noqa: BLE001 - the others keep running
                            warn(f"warning: could not recover the lost trial: {exc}")
                    elif not isinstance(p, Done):
                        in_time = not timeout or time.monotonic() - start < timeout
                        if not outcome.failed_workers and in_time and not budget_spent(
                            study, total
                        ):
                            procs[i] = spawn(i)  # recycle: a fresh process, fresh memory
                        else:
                            procs[i] = Done()
                if all(isinstance(p, Done) for p in procs):
                    break
                if interrupt_requested():  # a signal recorded, not raised (see interrupts)
                    raise KeyboardInterrupt("interrupted")
                time.sleep(1.0)
        except KeyboardInterrupt:
            stop_workers([p for p in procs if not isinstance(p, Done)])
            raise
    outcome.study = optuna.load_study(study_name=spec.name, storage=run.store)
    outcome.ran = trials_run_since(outcome.study, run.first_to_run)
    outcome.seconds = time.monotonic() - start
    outcome.lost_trials = requeued_since(outcome.study, run.before)
    return outcome


class Done:
    """A finished worker slot."""

    returncode = 0

    def poll(self) -> int:
        return 0


__all__ = ["run_local", "stop_workers", "worker_command", "worker_env"]
