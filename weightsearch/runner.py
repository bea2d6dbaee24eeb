"""Running a study: data → space → Optuna study → trials, with progress and a leaderboard."""

from __future__ import annotations

import signal
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
    space = check_space(spec, task=ds.task, data_kind=ds.kind, input_shape=ds.input_shape)
    return Prepared(spec=spec, data=ds, train=train, test_idx=test_idx, space=space)


def make_sampler(spec: Spec) -> Any:
    import optuna

    s, seed = spec.search, spec.seed
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
    steps = cv.folds * cv.epochs
    warmup = min(3, cv.epochs - 1)
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


def make_storage(url: str) -> Any:
    """An Optuna storage: RDB (SQLite, PostgreSQL) with heartbeats, or a journal file.

    ``journal:PATH`` (or a path ending in ``.journal``/``.log``) selects the journal file
    backend, which is safe for several processes on one machine.
    """
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    _quiet_optuna()

    try:
        if url.startswith("journal:") or url.endswith((".journal", ".log")):
            path = url.removeprefix("journal:")
            return JournalStorage(JournalFileBackend(path))
        if "://" not in url:
            raise StudyError(
                f"search.storage: {url!r} is not a storage URL; expected sqlite:///file.db, "
                "postgresql://user@host/db or journal:path."
            )
        return RDBStorage(
            url,
            heartbeat_interval=30,
            grace_period=90,
            heartbeat_stale_trial_callback=_retry_callback(),
            engine_kwargs={"pool_pre_ping": True},
        )
    except StudyError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudyError(f"cannot open the Optuna storage {mask_url(url)!r}: {first}") from exc
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)


def _quiet_optuna() -> None:
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _retry_callback() -> Any:
    """Re-queue a trial whose worker died (stale heartbeat) as a new trial, at most twice."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    return RetryHeartbeatStaleTrialCallback(max_retry=2)


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


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C so the running trial is closed cleanly."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class Outcome:
    study: Any
    interrupted: bool = False
    stopped_for_failures: bool = False
    ran: int = 0
    seconds: float = 0.0


def run_study(
    prepared: Prepared,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    storage: Any = None,
    tracker: Any = None,
    progress: Any = None,
) -> Outcome:
    """Create or resume the study and run ``n_trials`` more trials (or until ``timeout``).

    ``storage`` is a URL or an already opened Optuna storage (open it before creating the
    tracker, so an unreachable storage leaves nothing in MLflow).

    ``progress`` receives ``start(total)``, ``epoch(trial, fold, epoch)`` and
    ``trial_done(study, trial)`` calls; ``None`` shows nothing.
    """
    import optuna

    from weightsearch.objective import Objective
    from weightsearch.tracking import NullTracker

    spec = prepared.spec
    tracker = tracker or NullTracker()
    url = storage if isinstance(storage, str) else spec.search.storage
    store = storage if storage is not None and not isinstance(storage, str) else make_storage(url)
    study = optuna.create_study(
        study_name=spec.name,
        storage=store,
        sampler=make_sampler(spec),
        pruner=make_pruner(spec),
        direction="maximize",
        load_if_exists=True,
    )
    study.set_user_attr("metric", spec.cv.metric)
    study.set_user_attr(
        "spec", spec.to_dict() | {"search": {**spec.to_dict()["search"], "storage": mask_url(url)}}
    )
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
        progress.start(n)
        callbacks.append(progress.trial_done)
    before = len(study.trials)
    tracker.start_study(
        spec.name,
        {
            "storage": mask_url(url),
            "n_trials": n,
            "folds": spec.cv.folds,
            "epochs": spec.cv.epochs,
            "metric": spec.cv.metric,
            "data": spec.data.source,
            "sampler": spec.search.sampler,
            "pruner": spec.search.pruner,
            "seed": spec.seed,
        },
        {"optuna.study": spec.name},
    )
    outcome = Outcome(study=study)
    start = time.perf_counter()
    state = "COMPLETE"
    try:
        with _sigterm_as_interrupt():
            study.optimize(
                objective,
                n_trials=n,
                timeout=timeout or spec.search.timeout,
                catch=(Exception,),
                callbacks=callbacks,
            )
    except KeyboardInterrupt:
        outcome.interrupted = True
        state = "KILLED"
    finally:
        outcome.seconds = time.perf_counter() - start
        outcome.ran = len(study.trials) - before
        outcome.stopped_for_failures = failures.tripped
        if failures.tripped:
            state = "FAIL"
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
