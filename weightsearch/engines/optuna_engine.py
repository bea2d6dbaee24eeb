"""Optuna as the search engine (the default): ``[search] engine = "optuna"``.

The spec's sampler and pruner propose and stop trials; :class:`~weightsearch.objective.Objective`
runs each. Alone, a run optimises ``n_trials`` more trials. As one of many workers (``total``),
it runs trials until the study holds ``total`` across all workers (:func:`optimize_until`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from weightsearch.compat import heartbeat_enabled
from weightsearch.liveness import mark_worker
from weightsearch.locks import StudyLock
from weightsearch.objective import Objective, TrialError
from weightsearch.samplers import check_available
from weightsearch.spec import SpecError
from weightsearch.study import Outcome, Prepared, RunOptions, StudyRun, budget_spent


class OptunaEngine:
    """Optuna's samplers and pruners (``search.sampler``, ``search.pruner``) on the shared
    study run; trials in parallel across worker processes share one budget."""

    name = "optuna"

    def check(self, spec: Any, space: Any) -> None:
        """The sampler's optional packages are installed (``gp`` needs PyTorch)."""
        try:
            check_available(spec.search.sampler)
        except ValueError as exc:
            raise SpecError([f"search.sampler: {exc}"], spec.path or spec.name) from None

    def describe(self, spec: Any) -> str:
        return f"Optuna {spec.search.sampler} sampler, {spec.search.pruner} pruner"

    def run(self, prepared: Prepared, options: RunOptions) -> Outcome:
        """Create or resume the study and run ``n_trials`` more trials (or until
        ``timeout``); with ``total``, run as a worker until the study holds ``total``
        trials (at most ``max_trials`` here)."""
        spec, o, progress = prepared.spec, options, options.progress
        run = StudyRun(
            prepared, storage=o.storage, tracker=o.tracker, progress=progress,
            parent_run_id=o.parent_run_id,
        )
        study = run.open(worker_index=o.worker_index)
        objective = Objective(
            spec, prepared.train, prepared.space, run.tracker,
            status=progress.epoch if progress is not None else None,
        )
        n = o.n_trials if o.n_trials is not None else spec.search.n_trials
        timeout = o.timeout or spec.search.timeout
        total = o.total
        with run.running(n_trials=total if total is not None else n) as outcome:
            if total is None:
                study.optimize(
                    objective, n_trials=n, timeout=timeout, catch=(TrialError,),
                    callbacks=run.callbacks,
                )
            else:
                optimize_until(
                    study, objective, total, url=run.url, timeout=timeout,
                    callbacks=run.callbacks, max_trials=o.max_trials, recover=run.recover,
                )
        return outcome


def optimize_until(
    study: Any,
    objective: Callable[[Any], float],
    total: int,
    *,
    url: str,
    timeout: float | None = None,
    callbacks: Sequence[Callable[[Any, Any], None]] = (),
    max_trials: int | None = None,
    recover: Callable[[Any], Any] | None = None,
) -> int:
    """Run trials until the study counts ``total`` trials
    (:func:`~weightsearch.study.counted_trials`) and none is queued, or until this process
    has run ``max_trials``. Returns the number of trials run here.

    Optuna's ``MaxTrialsCallback`` checks the budget only after a trial ends, so N workers
    could overshoot by N − 1. Here counting and creating a trial happen under the study-wide
    lock (:class:`~weightsearch.locks.StudyLock`); before each trial, lost trials are failed
    and re-queued (``recover(study)``, and Optuna's ``fail_stale_trials`` with heartbeats).
    The lock is released once the new trial records its worker, so trials still run in
    parallel."""
    import optuna

    lock = StudyLock(url, study.study_name)

    def objective_releasing_lock(trial: Any) -> float:
        mark_worker(trial)
        lock.release()  # the trial exists and names its worker: let the other workers go on
        return objective(trial)

    start = time.monotonic()
    ran = 0
    try:
        while timeout is None or time.monotonic() - start < timeout:
            if max_trials is not None and ran >= max_trials:
                break
            lock.acquire()
            try:
                if recover is not None:  # this machine's lost trials, at once
                    recover(study)
                if heartbeat_enabled(study):  # other machines', a grace period later
                    optuna.storages.fail_stale_trials(study)
                if budget_spent(study, total):
                    break
                study.optimize(
                    objective_releasing_lock, n_trials=1, catch=(TrialError,), callbacks=callbacks
                )
                ran += 1
            finally:
                lock.release()
            if any(getattr(cb, "tripped", False) for cb in callbacks):
                break  # e.g. too many failures in a row
    finally:
        lock.close()
    return ran


__all__ = ["OptunaEngine", "optimize_until"]
