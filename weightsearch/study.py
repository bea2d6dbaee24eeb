"""A study run: what every engine shares, written once.

:func:`prepare` resolves a spec against its data. :class:`StudyRun` then owns one invocation
of a study, whatever proposes its trials (Optuna's samplers, KerasTuner's oracles, or local
worker processes):

- open the storage (before the tracker, so an unreachable storage leaves nothing in MLflow);
- create or load the study (:func:`create_study`, the one call of ``optuna.create_study``),
  under the study's init lock, and write its masked spec;
- start and end the MLflow parent run (or join a coordinator's);
- treat SIGTERM like Ctrl-C, recover lost trials, count consecutive failures;
- build the :class:`Outcome`.

An engine supplies only its loop, inside ``with run.running(...)``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weightsearch.base import application_problem
from weightsearch.interrupts import interrupt_requested, sigterm_as_interrupt
from weightsearch.liveness import (
    recorded_gone,
    recover_lost_trials,
    trials_run_since,
    worker_record,
)
from weightsearch.locks import init_lock
from weightsearch.pruners import make_pruner
from weightsearch.samplers import make_sampler
from weightsearch.spec import Spec, SpecError
from weightsearch.storage import (
    StudyError,
    attach_tracker,
    mask_url,
    open_storage,
    storage_failure,
    store_failed,
)
from weightsearch.tracking import NullTracker, TrackingError

#: The prefix of the parent run's tags that name its process (:func:`worker_record`).
TAG = "weightsearch."


@dataclass
class Prepared:
    """A spec resolved against its data."""

    spec: Spec
    data: Any  # the full Dataset
    train: Any  # the part the search sees
    test_idx: Any
    space: Any


def prepare(spec: Spec, dataset: Any = None) -> Prepared:
    """Load and check the data (or take ``dataset``, a :class:`~weightsearch.data.Dataset`
    already in memory), split off the test part, and resolve the search space.

    Engine-specific checks come on top, in :func:`weightsearch.engines.prepare`."""
    from weightsearch import data as data_mod
    from weightsearch.space import check_space

    where = spec.path or spec.name
    load_plugins(spec)
    ds = dataset if dataset is not None else data_mod.load(
        spec.data.source,
        target=list(spec.data.target) if isinstance(spec.data.target, tuple) else spec.data.target,
        task=spec.data.task,
        seed=spec.seed,
        options=dict(spec.data.options),
        **spec.data.treatment(),
    )
    train_idx, test_idx = data_mod.train_test_split(ds, spec.data.test_size, spec.seed)
    train = ds.subset(train_idx)
    data_mod.check_folds(train, spec.cv.folds)
    if spec.cv.metric == "positive_f1" and ds.task != "binary":
        raise SpecError(
            [f"cv.metric: 'positive_f1' needs a binary task, but the data is {ds.task}."], where
        )
    problem = application_problem(spec.cv.apply_weights, ds.task)
    if problem:
        raise SpecError([f"cv.apply_weights: {problem}"], where)
    if spec.tracking.enabled and spec.tracking.mlflow_uri == spec.search.storage:
        raise SpecError(
            ["tracking.mlflow_uri: must not be the Optuna storage's database "
             f"({mask_url(spec.search.storage)}); both keep an alembic_version table, so give "
             "MLflow a database of its own."],
            where,
        )
    space = check_space(spec, task=ds.task, data_kind=ds.kind, input_shape=ds.input_shape,
                        table=ds.columns is not None)
    return Prepared(spec=spec, data=ds, train=train, test_idx=test_idx, space=space)


def load_plugins(spec: Spec) -> None:
    """Import the spec's ``plugins`` (beside the spec file, then on ``sys.path``);
    :class:`SpecError` at ``plugins`` when one fails."""
    from weightsearch.plugins import PluginError, import_plugins, search_dirs

    try:
        import_plugins(spec.plugins, search_dirs(spec.path, Path.cwd()))
    except PluginError as exc:
        raise SpecError([str(exc)], spec.path or spec.name) from None


# ---- the study itself --------------------------------------------------------------------

#: The study user attribute that records the data a study was run on (:func:`data_record`).
DATA_ATTR = "data"
#: The record's fields, in the order a mismatch is reported.
DATA_FIELDS = ("source", "task", "classes", "features", "fingerprint")


def data_record(prepared: Prepared) -> dict[str, Any]:
    """What a study is run on: the data source, task, classes, feature names, input shape,
    binary positive class (the search part's minority), a content fingerprint (sha256 of
    the search part's ``x`` and ``y``, their shapes and dtypes), the column treatment
    (``data.categorical``/``missing``/``drop``) and a table's
    :class:`~weightsearch.columns.Columns`."""
    import hashlib

    import numpy as np

    train = prepared.train
    digest = hashlib.sha256()
    for arr in (np.ascontiguousarray(train.x), np.ascontiguousarray(train.y)):
        digest.update(f"{arr.dtype.str}{arr.shape};".encode())
        digest.update(arr.data)
    features, positive = train.feature_names, train.positive_class
    return {
        "source": prepared.spec.data.source,
        "task": train.task,
        "classes": list(train.classes),
        "features": None if features is None else list(features),
        "input_shape": list(train.input_shape),
        "positive": None if positive is None else train.classes[int(positive)],
        "rows": len(train),
        "fingerprint": "sha256:" + digest.hexdigest(),
        "treatment": prepared.spec.data.treatment(),
        "columns": None if train.columns is None else train.columns.to_dict(),
    }


def check_same_data(study: Any, record: dict[str, Any], spec: Spec, url: str) -> None:
    """``SpecError`` at ``data.source`` when ``study`` was run on other data than ``record``
    says; a study without a record (made before weightsearch kept one) passes."""
    stored = study.user_attrs.get(DATA_ATTR)
    if not isinstance(stored, dict):
        return
    differ = [k for k in DATA_FIELDS if stored.get(k) != record.get(k)]
    if not differ:
        return

    def shown(value: Any) -> str:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."

    what = "; ".join(
        f"{k} {shown(stored.get(k))} then, {shown(record.get(k))} now" for k in differ
    )
    raise SpecError(
        [f"{'data.source' if 'source' in differ else 'data'}: study {spec.name!r} in "
         f"{mask_url(url)} was run on other data "
         f"({what}); resuming it would mix the two. Keep the study's data, or start a new "
         "study: another `name` in the spec, or another storage (--storage)."],
        spec.path or spec.name,
    )



def study_sampler(spec: Spec, worker_index: int = 0) -> Any:
    """The spec's sampler; each worker of a study gets its own seed (seed + worker index),
    so parallel workers do not propose identical trials."""
    s = spec.search
    return make_sampler(
        s.sampler, seed=spec.seed + worker_index, n_startup_trials=s.n_startup_trials
    )


def study_pruner(spec: Spec) -> Any:
    """The spec's pruner. Its resource is the study's steps: folds side by side report one
    value per epoch (step = epoch); folds in turn report fold k's epoch e at step
    k · epochs + e (see weightsearch.objective)."""
    cv = spec.cv
    steps = cv.folds * cv.epochs if cv.parallel_folds is False else cv.epochs
    return make_pruner(
        spec.search.pruner, epochs=cv.epochs, steps=steps,
        n_startup_trials=spec.search.n_startup_trials,
    )


def create_study(
    spec: Spec,
    store: Any,
    url: str,
    *,
    worker_index: int = 0,
    space: Any = None,
    sampler: Any = None,
    pruner: Any = None,
    engine: str = "optuna",
    baseline: bool = True,
    data: dict[str, Any] | None = None,
) -> Any:
    """Create the spec's study, or load it when it exists (resume, or another worker's).

    The one place weightsearch calls ``optuna.create_study``. ``sampler``/``pruner`` default
    to the spec's. A new study's first trial is the unweighted baseline (scheme ``none``,
    loss ``crossentropy``) when the space holds both and ``search.baseline_first`` is on, so
    ``report`` always has a baseline to compare with (``baseline=False``: never, for an
    engine whose own algorithm picks every trial). A study that already holds trials of
    another engine is refused, so the engines stay comparable. ``data`` (a
    :func:`data_record`) is written once; a study already run on other data is refused
    before anything is written. Callers hold the init lock.
    """
    import optuna

    study = optuna.create_study(
        study_name=spec.name,
        storage=store,
        sampler=sampler if sampler is not None else study_sampler(spec, worker_index),
        pruner=pruner if pruner is not None else study_pruner(spec),
        direction="maximize",
        load_if_exists=True,
    )
    check_resumable(study, spec, url, engine=engine, data=data)
    if data is not None:
        if DATA_ATTR not in study.user_attrs:
            study.set_user_attr(DATA_ATTR, data)
    if baseline and spec.search.baseline_first and not study.trials:
        enqueue_baseline(study, space)
    study.set_user_attr("metric", spec.cv.metric)
    study.set_user_attr("engine", engine)
    as_dict = spec.to_dict()
    as_dict["search"]["storage"] = mask_url(url)
    study.set_user_attr("spec", as_dict)
    return study


#: What a trial's value means: a resume that changes one of these would rank unlike scores.
OBJECTIVE_KEYS = (("cv", "metric"), ("cv", "folds"), (None, "seed"))


def check_resumable(
    study: Any, spec: Spec, url: str, *, engine: str, data: dict[str, Any] | None = None
) -> None:
    """``SpecError`` when resuming ``study`` with ``spec`` would mix unlike trials: trials of
    another engine, other data (:func:`check_same_data`), or another metric, fold count or
    seed than the stored spec's. A study without trials takes anything."""
    if not study.trials:
        return
    where = spec.path or spec.name
    previous = study.user_attrs.get("engine", "optuna")
    if previous != engine:
        raise SpecError(
            [f"search.engine: study {spec.name!r} in {mask_url(url)} already holds "
             f"{len(study.trials)} trial(s) run by the {previous} engine; give the {engine} "
             "run its own study name, so the engines stay comparable."],
            where,
        )
    if data is not None:
        check_same_data(study, data, spec, url)
    stored, now = study.user_attrs.get("spec") or {}, spec.to_dict()
    for section, key in OBJECTIVE_KEYS:
        old = (stored.get(section) or {}).get(key) if section else stored.get(key)
        new = now[section][key] if section else now[key]
        if old is not None and old != new:
            name = f"{section}.{key}" if section else key
            raise SpecError(
                [f"{name}: study {spec.name!r} in {mask_url(url)} was run with {name} = "
                 f"{old!r}, now {new!r}; its trials' scores would not compare. Keep {old!r}, "
                 "or start a new study: another `name` in the spec, or another storage."],
                where,
            )


def check_resume(prepared: Prepared, engine: str) -> None:
    """What :func:`create_study` would refuse, checked without writing anything: for
    ``validate``. A storage that does not exist yet, or holds no such study, passes."""
    import optuna

    from weightsearch.compat import quiet_optuna
    from weightsearch.storage import make_storage, parse_url

    spec = prepared.spec
    url = spec.search.storage
    parsed = parse_url(url)
    if parsed.kind == "memory" or (parsed.path is not None and not parsed.path.is_file()):
        return
    quiet_optuna()
    store = make_storage(url)
    if spec.name not in optuna.get_all_study_names(storage=store):
        return
    study = optuna.load_study(study_name=spec.name, storage=store)
    check_resumable(study, spec, url, engine=engine, data=data_record(prepared))


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


# ---- reading a study ---------------------------------------------------------------------


def best_value(study: Any) -> float | None:
    """The best complete trial's value, or None."""
    import optuna

    values = [t.value for t in study.get_trials(deepcopy=False)
              if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    return max(values) if values else None


def counted_trials(study: Any, *, waiting: bool = True) -> int:
    """Trials that count towards the budget: all of them, except lost trials that were
    re-queued (their retry counts instead); queued (WAITING) ones only with ``waiting``."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    replaced: set[int] = set()
    for t in trials:
        replaced.update(t.system_attrs.get("retry_history", []))
    return sum(
        1
        for t in trials
        if t.number not in replaced and (waiting or t.state != optuna.trial.TrialState.WAITING)
    )


def budget_spent(study: Any, total: int) -> bool:
    """The study counts ``total`` trials and none is queued. A queued trial (an enqueued
    baseline, a lost trial's retry) is already counted, so running it never overshoots."""
    import optuna

    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    return not waiting and counted_trials(study) >= total


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
                "numeric": cfg.get("model", {}).get("numeric"),
                "value": t.value,
                "std": t.user_attrs.get("cv_std", float("nan")),
                "threshold": t.user_attrs.get("threshold"),
                "tuned": t.user_attrs.get("cv_value_tuned"),
            }
        )
    return rows


# ---- one invocation ----------------------------------------------------------------------


class ConsecutiveFailures:
    """Stop the study after ``limit`` failed trials in a row (0 disables the check).

    Optuna engines pass it as a ``study.optimize`` callback; others call :meth:`record`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.tripped = False

    def record(self, state: str) -> bool:
        """Count a finished trial's state (``"FAIL"``, ``"COMPLETE"``, ``"PRUNED"``);
        returns whether the limit is reached."""
        if state == "FAIL":
            self.count += 1
        elif state in ("COMPLETE", "PRUNED"):
            self.count = 0
        if self.limit and self.count >= self.limit:
            self.tripped = True
        return self.tripped

    def __call__(self, study: Any, trial: Any) -> None:
        if self.record(trial.state.name):
            study.stop()


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


@dataclass(frozen=True)
class RunOptions:
    """How one invocation runs, for every engine: ``n_trials`` more trials (default: the
    spec's) or until ``timeout``; ``storage`` (a URL or an opened storage), ``tracker`` and
    ``progress`` as :class:`StudyRun` takes them. Worker mode: ``total`` (run until the study
    holds that many trials), ``parent_run_id`` (the coordinator's MLflow run),
    ``worker_index`` (offsets the sampler's seed) and ``max_trials`` (in this process)."""

    n_trials: int | None = None
    timeout: float | None = None
    storage: Any = None
    tracker: Any = None
    progress: Any = None
    total: int | None = None
    parent_run_id: str | None = None
    worker_index: int = 0
    max_trials: int | None = None

    @property
    def worker_mode(self) -> bool:
        return bool(self.total is not None or self.parent_run_id or self.worker_index
                    or self.max_trials)


class StudyRun:
    """One invocation of a study: its storage, study, tracker, parent run and outcome.

    ``storage`` is a URL or an already opened Optuna storage (the CLI opens it before
    creating the tracker). ``parent_run_id`` joins a coordinator's MLflow parent run instead
    of starting one; the coordinator closes it. ``progress`` receives ``start(total, best)``,
    ``epoch(trial, fold, epoch)`` and ``trial_done(study, trial)``; ``None`` shows nothing.
    """

    def __init__(
        self,
        prepared: Prepared,
        *,
        storage: Any = None,
        tracker: Any = None,
        progress: Any = None,
        parent_run_id: str | None = None,
    ) -> None:
        self.prepared = prepared
        self.spec = spec = prepared.spec
        self.url = storage if isinstance(storage, str) else spec.search.storage
        self.store = (
            open_storage(spec, self.url) if storage is None or isinstance(storage, str)
            else storage
        )
        self.tracker = tracker or NullTracker()
        self.progress = progress
        self.parent_run_id = parent_run_id
        self.failures = ConsecutiveFailures(spec.search.max_consecutive_failures)
        self.study: Any = None
        self.before = self.first_to_run = 0
        self.outcome: Outcome | None = None

    def open(self, **create: Any) -> Any:
        """Create or load the study (keywords go to :func:`create_study`); lost trials'
        MLflow runs are closed through this run's tracker from now on."""
        with init_lock(self.url, self.spec.name):
            self.study = create_study(
                self.spec, self.store, self.url, space=self.prepared.space,
                data=data_record(self.prepared), **create
            )
        attach_tracker(self.store, self.tracker)
        trials = self.study.get_trials(deepcopy=False)
        self.before = len(trials)
        # trials this invocation may run: the queued ones (a baseline, a lost trial's retry)
        # and every one created from now on
        self.first_to_run = next(
            (i for i, t in enumerate(trials) if t.state.name == "WAITING"), len(trials)
        )
        return self.study

    def recover(self, study: Any = None) -> list[int]:
        """Fail and re-queue the trials whose process is provably gone, on any storage."""
        lost = recover_lost_trials(study or self.study, self.tracker)
        if self.outcome is not None:
            self.outcome.lost_trials += lost
        return lost

    def trial_done(self, study: Any, trial: Any) -> None:
        """Count a finished trial and show it."""
        self.failures.record(trial.state.name)
        if self.progress is not None:
            self.progress.trial_done(study, trial)

    @property
    def callbacks(self) -> list[Any]:
        """``study.optimize`` callbacks: the failure counter, then the progress display."""
        shown = [self.progress.trial_done] if self.progress is not None else []
        return [self.failures, *shown]

    @contextmanager
    def running(
        self, *, n_trials: int, params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
    ) -> Iterator[Outcome]:
        """Start the parent run and the progress display, run the engine's loop with SIGTERM
        as Ctrl-C, and fill in the outcome, however the loop ends. First the study's stale
        parent runs (their process is gone) are closed as KILLED, and lost trials recovered.
        An interrupt is caught (``outcome.interrupted``); the run ends KILLED, FAIL (too many
        failures, a store that refused a write) or COMPLETE. A storage that stops accepting
        writes becomes one :class:`StudyError` line with the real cause."""
        if self.study is None:
            self.open()
        spec, tracker = self.spec, self.tracker
        outcome = self.outcome = Outcome(study=self.study)
        if self.progress is not None:
            self.progress.start(n_trials, best=best_value(self.study))
        with sigterm_as_interrupt():  # the runs' closing too: a second Ctrl-C cannot break it
            if self.parent_run_id:
                tracker.parent_run_id = self.parent_run_id
            else:
                tracker.close_stale_studies(spec.name, lambda tags: recorded_gone(tags, TAG))
                tracker.start_study(
                    spec.name,
                    {**study_params(spec, self.url, n_trials), **(params or {})},
                    {"optuna.study": spec.name, **worker_record(TAG), **(tags or {})},
                )
            start = time.perf_counter()
            state, failing = "COMPLETE", False
            try:
                self.recover()  # this machine's lost trials (a SIGKILLed run's), at once
                yield outcome
                if interrupt_requested():  # a Ctrl-C that landed in a finaliser
                    raise KeyboardInterrupt("interrupted")
            except KeyboardInterrupt:
                outcome.interrupted = True
                state = "KILLED"
            except TrackingError:
                state, failing = "FAIL", True
                raise
            except Exception as exc:
                state, failing = "FAIL", True
                if store_failed(exc):  # e.g. a read-only or removed storage file
                    raise storage_failure(self.url, exc) from exc
                raise
            finally:
                outcome.seconds = time.perf_counter() - start
                outcome.stopped_for_failures = self.failures.tripped
                if self.failures.tripped or outcome.failed_workers:
                    state = "FAIL"
                self._close(state, failing)

    def _close(self, state: str, failing: bool) -> None:
        """Count the trials run and close the parent run, where the stores still allow it
        (``failing``: an error is on its way out, and it stands)."""
        outcome, tracker = self.outcome, self.tracker
        assert outcome is not None
        try:
            outcome.ran = trials_run_since(outcome.study, self.first_to_run)
        except Exception:
            if not failing:
                raise
        if self.parent_run_id:
            tracker.parent_run_id = None  # the coordinator owns and closes it
            return
        try:
            tracker.end_study(state)
        except TrackingError:
            if not failing:
                raise

__all__ = [
    "DATA_ATTR",
    "ConsecutiveFailures",
    "Outcome",
    "Prepared",
    "RunOptions",
    "StudyError",
    "StudyRun",
    "best_value",
    "budget_spent",
    "check_resumable",
    "check_resume",
    "counted_trials",
    "check_same_data",
    "create_study",
    "data_record",
    "enqueue_baseline",
    "leaderboard",
    "prepare",
    "study_params",
    "study_pruner",
    "study_sampler",
]
