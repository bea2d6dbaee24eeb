"""Running a study: data → space → Optuna study → trials, with progress and a leaderboard."""

from __future__ import annotations

import signal
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weightsearch.spec import Spec, SpecError
from weightsearch.tracking import mask_url


class StudyError(RuntimeError):
    """A problem that stops a whole study (unreachable storage, too many failures)."""


@dataclass
class Prepared:
    """A spec resolved against its data."""

    spec: Spec
    data: Any  # the full Dataset
    train: Any  # the part the search sees
    test_idx: Any
    space: Any


def prepare(spec: Spec) -> Prepared:
    """Load and check the data, split off the test part, and resolve the search space."""
    from weightsearch import data as data_mod
    from weightsearch.space import check_space

    ds = data_mod.load(
        spec.data.source,
        target=list(spec.data.target) if isinstance(spec.data.target, tuple) else spec.data.target,
        task=spec.data.task,
        seed=spec.seed,
        options=dict(spec.data.options),
    )
    train_idx, test_idx = data_mod.train_test_split(ds, spec.data.test_size, spec.seed)
    train = ds.subset(train_idx)
    data_mod.check_folds(train, spec.cv.folds)
    if spec.cv.metric == "positive_f1" and ds.task != "binary":
        raise SpecError(
            [f"cv.metric: 'positive_f1' needs a binary task, but the data is {ds.task}."],
            spec.path or spec.name,
        )
    if spec.cv.apply_weights == "class_weight" and ds.task == "multilabel":
        raise SpecError(
            [
                "cv.apply_weights: Keras's class_weight cannot weight multi-hot targets "
                "(it takes their argmax); use 'loss' or 'sample_weight'."
            ],
            spec.path or spec.name,
        )
    if spec.tracking.enabled and spec.tracking.mlflow_uri == spec.search.storage:
        raise SpecError(
            ["tracking.mlflow_uri: must not be the Optuna storage's database "
             f"({mask_url(spec.search.storage)}); both keep an alembic_version table, so give "
             "MLflow a database of its own."],
            spec.path or spec.name,
        )
    space = check_space(spec, task=ds.task, data_kind=ds.kind, input_shape=ds.input_shape)
    if spec.search.engine == "keras-tuner":  # reject what KerasTuner cannot run, up front
        from weightsearch.ktengine import check_spec

        check_spec(spec, space)
    return Prepared(spec=spec, data=ds, train=train, test_idx=test_idx, space=space)


def make_sampler(spec: Spec, worker_index: int = 0) -> Any:
    """The spec's sampler; each worker of a study gets its own seed (seed + worker index),
    so parallel workers do not propose identical trials."""
    import optuna

    s, seed = spec.search, spec.seed + worker_index
    _quiet_optuna()
    if s.sampler == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=s.n_startup_trials, multivariate=True, group=True
        )
    if s.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(
            seed=seed, n_startup_trials=s.n_startup_trials, warn_independent_sampling=False
        )
    if s.sampler == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    if s.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if s.sampler == "gp":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise SpecError(
                [
                    "search.sampler: 'gp' needs PyTorch, which is not installed; "
                    "use tpe, random, cmaes, qmc or nsga2."
                ],
                spec.path or spec.name,
            ) from None
        return optuna.samplers.GPSampler(seed=seed)
    raise AssertionError(s.sampler)


def make_pruner(spec: Spec) -> Any:
    import optuna

    s, cv = spec.search, spec.cv
    # Folds side by side report one value per epoch (step = epoch); folds in turn report
    # fold k's epoch e at step k * epochs + e (see weightsearch.objective).
    steps = cv.folds * cv.epochs if cv.parallel_folds is False else cv.epochs
    # Warm-up: a trial is never judged on its first epoch alone. Replays of the median pruner
    # over unpruned studies (BENCHMARKS.md, B3) killed no top-3 trial at any warm-up from 0
    # to 8 steps; the warm-up only decides how early a doomed trial stops.
    warmup = min(1, cv.epochs - 1)
    if s.pruner == "none":
        return optuna.pruners.NopPruner()
    if s.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=s.n_startup_trials, n_warmup_steps=warmup
        )
    if s.pruner == "percentile":
        return optuna.pruners.PercentilePruner(
            25.0, n_startup_trials=s.n_startup_trials, n_warmup_steps=warmup
        )
    if s.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=steps)
    if s.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if s.pruner == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=0.1)
    raise AssertionError(s.pruner)


def is_journal(url: str) -> bool:
    return url.startswith("journal:") or url.endswith((".journal", ".log"))


def make_storage(url: str, *, heartbeat_interval: int = 30, grace_period: int = 90) -> Any:
    """An Optuna storage: RDB (SQLite, PostgreSQL) with heartbeats, or a journal file.

    ``journal:PATH`` (or a path ending in ``.journal``/``.log``) selects the journal file
    backend, which is safe for several processes on one machine. With an RDB storage, a
    trial whose worker stops sending heartbeats for ``grace_period`` seconds is marked
    failed and re-queued (at most twice), and its MLflow run is closed.
    """
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    _quiet_optuna()

    try:
        if is_journal(url):
            path = url.removeprefix("journal:")
            return JournalStorage(JournalFileBackend(path))
        if "://" not in url:
            raise StudyError(
                f"search.storage: {url!r} is not a storage URL; expected sqlite:///file.db, "
                "postgresql://user@host/db or journal:path."
            )
        return RDBStorage(
            url,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=StaleTrialHandler(),
            engine_kwargs={"pool_pre_ping": True},
        )
    except StudyError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudyError(f"cannot open the Optuna storage {mask_url(url)!r}: {first}") from exc


def load_stored_study(name: str, url: str, error: type[Exception] = StudyError) -> Any:
    """Load an existing study without creating anything: a missing SQLite or journal file,
    or an unknown study name, raises ``error`` naming what is there."""
    import optuna

    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if str(path) not in ("", ":memory:") and not path.is_file():
            raise error(
                f"--storage: no Optuna database at {path} (from {mask_url(url)!r}); run the "
                "study first or pass the storage it used."
            )
    elif is_journal(url):
        path = Path(url.removeprefix("journal:"))
        if not path.is_file():
            raise error(f"--storage: no Optuna journal file at {path}.")
    store = make_storage(url)
    names = sorted(optuna.get_all_study_names(storage=store))
    if name not in names:
        there = ", ".join(names) if names else "none"
        raise error(f"--study: no study named {name!r} in {mask_url(url)}; studies there: {there}.")
    return optuna.load_study(study_name=name, storage=store)


def _quiet_optuna() -> None:
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Trial failures are recorded by the objective (user attr, MLflow tag, progress line);
    # Optuna's own warning would print a traceback for each.
    optuna.logging.set_verbosity(optuna.logging.ERROR)


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
        # look like the lost process's trial (see workers.lost_local_trials).
        fresh = copy.copy(trial)
        fresh.user_attrs = {}
        self.retry(study, fresh)
        if self.tracker is not None and run:
            self.tracker.set_tags(run, {"error": f"worker lost ({self.reason}); trial retried"})
            self.tracker.end_trial(run, "FAIL")


def recover_lost_trials(study: Any, tracker: Any = None) -> list[int]:
    """Without heartbeats (the journal backend): fail the RUNNING trials whose worker
    process is gone (:func:`~weightsearch.workers.lost_local_trials`), re-queue them (at most
    twice) and close their MLflow runs, as :class:`StaleTrialHandler` does for stale
    heartbeats. With heartbeats, does nothing. Returns the failed trials' numbers.

    Failing and re-queuing are two writes: if this process dies between them, the trial stays
    failed and is not retried."""
    import copy

    import optuna

    from weightsearch.workers import _heartbeat_enabled, lost_local_trials

    if _heartbeat_enabled(study):
        return []  # Optuna's fail_stale_trials does this
    handler = StaleTrialHandler("its process is gone")
    handler.tracker = tracker
    storage, failed = study._storage, []
    for trial_id in lost_local_trials(study):
        try:
            if not storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process got there first
        trial = copy.deepcopy(storage.get_trial(trial_id))
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


def open_storage(spec: Spec, url: str | None = None) -> Any:
    """The spec's storage with its heartbeat settings."""
    return make_storage(
        url or spec.search.storage,
        heartbeat_interval=spec.search.heartbeat_interval,
        grace_period=spec.search.grace_period,
    )


def attach_tracker(storage: Any, tracker: Any) -> None:
    """Let the storage's stale-trial handler close lost trials' MLflow runs."""
    handler = getattr(storage, "heartbeat_stale_trial_callback", None)
    if isinstance(handler, StaleTrialHandler):
        handler.tracker = tracker


class ConsecutiveFailures:
    """Stop the study after ``limit`` failed trials in a row (0 disables the check)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.tripped = False

    def __call__(self, study: Any, trial: Any) -> None:
        import optuna

        if trial.state == optuna.trial.TrialState.FAIL:
            self.count += 1
        elif trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
            self.count = 0
        if self.limit and self.count >= self.limit:
            self.tripped = True
            study.stop()


_INTERRUPTED: list[int] = []  # signals received inside _sigterm_as_interrupt


def interrupt_requested() -> bool:
    """Whether Ctrl-C or SIGTERM arrived during the study. Checked at every epoch end, so an
    interrupt that Python dropped (raised inside a finaliser during garbage collection,
    where exceptions are only printed) still stops the trial."""
    return bool(_INTERRUPTED)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C so the running trial is closed cleanly, and remember either
    (:func:`interrupt_requested`)."""

    def handler(signum: int, frame: Any) -> None:
        _INTERRUPTED.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _INTERRUPTED.clear()


def create_study(
    spec: Spec, store: Any, url: str, worker_index: int = 0, space: Any = None
) -> Any:
    """Create the spec's study, or load it when it exists (resume, or another worker's).

    A new study's first trial is the unweighted baseline (scheme ``none``, loss
    ``crossentropy``) when the space holds both and ``search.baseline_first`` is on, so
    ``report`` always has a baseline to compare with. Callers hold the study's init lock.
    """
    import optuna

    study = optuna.create_study(
        study_name=spec.name,
        storage=store,
        sampler=make_sampler(spec, worker_index),
        pruner=make_pruner(spec),
        direction="maximize",
        load_if_exists=True,
    )
    if spec.search.baseline_first and not study.trials:
        enqueue_baseline(study, space)
    study.set_user_attr("metric", spec.cv.metric)
    as_dict = spec.to_dict()
    as_dict["search"]["storage"] = mask_url(url)
    study.set_user_attr("spec", as_dict)
    return study


def enqueue_baseline(study: Any, space: Any) -> bool:
    """Queue ``none`` + ``crossentropy`` as the next trial if the space allows it."""
    if space is None:
        return False
    schemes = space.choices["weighting"].choices
    losses = space.choices["loss"].choices
    if "none" not in schemes or "crossentropy" not in losses:
        return False
    study.enqueue_trial({"weighting.scheme": "none", "loss.name": "crossentropy"})
    return True


def best_value(study: Any) -> float | None:
    """The best complete trial's value, or None."""
    import optuna

    values = [t.value for t in study.get_trials(deepcopy=False)
              if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    return max(values) if values else None


def study_params(spec: Spec, url: str, n_trials: int) -> dict[str, Any]:
    """What the MLflow parent run records about a study invocation."""
    return {
        "storage": mask_url(url),
        "n_trials": n_trials,
        "folds": spec.cv.folds,
        "epochs": spec.cv.epochs,
        "metric": spec.cv.metric,
        "data": spec.data.source,
        "sampler": spec.search.sampler,
        "pruner": spec.search.pruner,
        "seed": spec.seed,
    }


@dataclass
class Outcome:
    study: Any
    interrupted: bool = False
    stopped_for_failures: bool = False
    ran: int = 0
    seconds: float = 0.0
    failed_workers: int = 0
    # lost trials failed and re-queued: by this process (with --workers: by any worker)
    lost_trials: list[int] = field(default_factory=list)


def run_study(
    prepared: Prepared,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    storage: Any = None,
    tracker: Any = None,
    progress: Any = None,
    total: int | None = None,
    parent_run_id: str | None = None,
    worker_index: int = 0,
    max_trials: int | None = None,
) -> Outcome:
    """Create or resume the study and run ``n_trials`` more trials (or until ``timeout``).

    Worker mode: with ``total``, run trials until the study holds ``total`` trials across
    all workers (a trial that was lost and retried counts once). Counting and creating a
    trial happen under a study-wide lock, so N workers never overshoot.
    ``parent_run_id`` joins an existing MLflow parent run instead of starting one.

    ``storage`` is a URL or an already opened Optuna storage (open it before creating the
    tracker, so an unreachable storage leaves nothing in MLflow).

    ``progress`` receives ``start(total)``, ``epoch(trial, fold, epoch)`` and
    ``trial_done(study, trial)`` calls; ``None`` shows nothing.
    """
    if prepared.spec.search.engine == "keras-tuner":  # same objective, KerasTuner's search
        from weightsearch import ktengine

        return ktengine.run_study(
            prepared,
            n_trials=n_trials,
            timeout=timeout,
            storage=storage,
            tracker=tracker,
            progress=progress,
            total=total,
            parent_run_id=parent_run_id,
            worker_index=worker_index,
        )

    from weightsearch.objective import Objective
    from weightsearch.tracking import NullTracker

    spec = prepared.spec
    tracker = tracker or NullTracker()
    url = storage if isinstance(storage, str) else spec.search.storage
    if storage is None or isinstance(storage, str):
        store = open_storage(spec, url)
    else:
        store = storage
    from weightsearch.workers import init_lock

    with init_lock(url, spec.name):
        study = create_study(spec, store, url, worker_index, prepared.space)
    objective = Objective(
        spec,
        prepared.train,
        prepared.space,
        tracker,
        status=progress.epoch if progress is not None else None,
    )
    n = n_trials if n_trials is not None else spec.search.n_trials
    failures = ConsecutiveFailures(spec.search.max_consecutive_failures)
    callbacks = [failures]
    if progress is not None:
        progress.start(total if total is not None else n, best=best_value(study))
        callbacks.append(progress.trial_done)
    attach_tracker(store, tracker)
    before = len(study.trials)
    if parent_run_id:
        tracker.parent_run_id = parent_run_id
    else:
        tracker.start_study(
            spec.name,
            study_params(spec, url, total if total is not None else n),
            {"optuna.study": spec.name},
        )
    outcome = Outcome(study=study)
    start = time.perf_counter()
    state = "COMPLETE"
    timeout = timeout or spec.search.timeout

    def recover(s: Any) -> None:
        outcome.lost_trials += recover_lost_trials(s, tracker)

    try:
        with _sigterm_as_interrupt():
            recover(study)
            if total is None:
                study.optimize(
                    objective, n_trials=n, timeout=timeout, catch=(Exception,), callbacks=callbacks
                )
            else:
                from weightsearch.workers import optimize_until

                optimize_until(
                    study, objective, total, url=url, timeout=timeout, callbacks=callbacks,
                    max_trials=max_trials,
                    recover=recover,
                )
    except KeyboardInterrupt:
        outcome.interrupted = True
        state = "KILLED"
    finally:
        outcome.seconds = time.perf_counter() - start
        outcome.ran = trials_run_since(study, before)
        outcome.stopped_for_failures = failures.tripped
        if failures.tripped:
            state = "FAIL"
        if parent_run_id:
            tracker.parent_run_id = None  # the coordinator owns and closes it
        else:
            tracker.end_study(state)
    return outcome


def leaderboard(study: Any, top: int = 10) -> list[dict[str, Any]]:
    """The best finished trials, best first, as plain rows."""
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    done.sort(key=lambda t: t.value, reverse=True)
    rows = []
    for t in done[:top]:
        cfg = t.user_attrs.get("config", {})
        rows.append(
            {
                "trial": t.number,
                "scheme": cfg.get("weighting", {}).get("scheme", "?"),
                "loss": cfg.get("loss", {}).get("name", "?"),
                "arch": cfg.get("model", {}).get("arch", "?"),
                "value": t.value,
                "std": t.user_attrs.get("cv_std", float("nan")),
                "threshold": t.user_attrs.get("threshold"),
                "tuned": t.user_attrs.get("cv_value_tuned"),
            }
        )
    return rows
