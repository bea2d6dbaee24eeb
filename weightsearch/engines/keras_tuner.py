"""KerasTuner as the search engine: ``[search] engine = "keras-tuner"``.

The same spec, search space, stratified-CV objective and MLflow logging as the Optuna engine;
only the algorithm that proposes configurations changes, so the two engines can be compared
on equal budgets.

How it works:

- The resolved :class:`~weightsearch.space.Space` becomes a ``keras_tuner.HyperParameters``
  with the same dotted names. A component's parameters are conditional on its choice
  (``loss.focal.gamma`` is active only when ``loss.name == "focal"``), through KerasTuner's
  ``parent_name``/``parent_values``, mirroring ``Space.suggest``; so is a table's
  ``model.numeric.<encoding>.bins`` on ``model.numeric``.
- A ``keras_tuner.Tuner`` subclass overrides ``run_trial``. For each KerasTuner trial it opens
  an Optuna trial in the spec's storage (``study.ask()``) whose sampler simply returns the
  KerasTuner values, runs the unchanged :class:`~weightsearch.objective.Objective` on it
  (so the CV loop, the user attrs, the MLflow child run and its metric names are exactly
  the Optuna engine's), then closes it with ``study.tell``. ``report`` therefore works on a
  KerasTuner study unchanged. The trial's value goes back to KerasTuner as
  ``{"val_<metric>": value}``, with the direction set explicitly to ``"max"`` (KerasTuner
  would otherwise infer "min" for a name it does not know).
- The algorithm comes from the existing spec fields (``search.pruner`` / ``search.sampler``):

  - ``none`` / ``tpe`` or ``gp``: ``BayesianOptimizationOracle`` (a Gaussian process;
    KerasTuner has no TPE), with ``n_startup_trials`` random initial points;
  - ``none`` / ``random``: ``RandomSearchOracle``;
  - ``hyperband`` / ``random``: ``HyperbandOracle`` (``max_epochs = cv.epochs``, factor 3;
    it draws its configurations at random).

  Everything else (NSGA-II, CMA-ES, QMC, the median/percentile/successive-halving/Wilcoxon
  pruners, Hyperband with a model-based sampler, parallel workers) is rejected with a
  :class:`~weightsearch.spec.SpecError` naming the key, never silently changed.
- Hyperband trains each configuration with ``tuner/epochs`` epochs per fold. A promoted
  configuration is re-trained from scratch with the larger budget (it is not resumed from a
  checkpoint) and recorded as a new trial; ``kt_epochs`` and ``kt_resumed_from`` user attrs
  say which.
- KerasTuner keeps its own state in a project directory: ``<storage dir>/kt/<study>-<space
  hash>`` for a SQLite or journal storage (so a resumed study resumes the tuner's history, and
  a changed search space starts a fresh one), and a temporary directory, deleted afterwards,
  for a server storage.

``import keras_tuner`` happens only when this engine runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from weightsearch.objective import Objective
from weightsearch.space import Dim, Space
from weightsearch.spec import Spec, SpecError
from weightsearch.storage import parse_url
from weightsearch.study import Outcome, Prepared, RunOptions, StudyRun

#: search.pruner → search.sampler values it accepts → the KerasTuner algorithm.
ALGORITHMS: dict[str, dict[str, str]] = {
    "none": {"tpe": "bayesian", "gp": "bayesian", "random": "random"},
    "hyperband": {"random": "hyperband"},
}
ORACLE_NAMES = {
    "bayesian": "BayesianOptimization (Gaussian process)",
    "random": "RandomSearch",
    "hyperband": "Hyperband",
}


def _where(spec: Spec) -> str:
    return spec.path or spec.name


def algorithm(spec: Spec) -> str:
    """The KerasTuner algorithm a spec asks for; :class:`SpecError` if it has none."""
    s = spec.search
    problems = []
    samplers = {name for table in ALGORITHMS.values() for name in table}
    if s.sampler not in samplers:
        problems.append(
            f"search.sampler: KerasTuner has no {s.sampler!r} sampler; with the keras-tuner "
            "engine use 'tpe' or 'gp' (both run its Gaussian-process Bayesian optimisation; "
            "KerasTuner has no TPE) or 'random'."
        )
    if s.pruner not in ALGORITHMS:
        problems.append(
            f"search.pruner: the keras-tuner engine cannot use the {s.pruner!r} pruner; "
            "use 'none' (Bayesian optimisation or random search) or 'hyperband'."
        )
    elif s.sampler in samplers and s.sampler not in ALGORITHMS[s.pruner]:
        problems.append(
            f"search.sampler: KerasTuner's Hyperband draws configurations at random, so it "
            f'cannot use sampler {s.sampler!r}; set sampler = "random" (or pruner = '
            '"none" for Bayesian optimisation).'
        )
    if problems:
        raise SpecError(problems, _where(spec))
    return ALGORITHMS[s.pruner][s.sampler]


def _all_dims(space: Space) -> list[tuple[Dim, str | None, Any]]:
    """(dim, parent name, parent value) for every searched dimension, in suggest order."""
    out: list[tuple[Dim, str | None, Any]] = []
    for section in ("weighting", "loss", "model"):
        choice = space.choices[section]
        out.append((choice, None, None))
        for comp, dims in space.params[section].items():
            out += [(d, choice.name, comp) for d in dims.values()]
    if space.numeric is not None:  # a table: the encoding, then its bins if it takes them
        out.append((space.numeric, None, None))
        parent = space.numeric.name if space.numeric.kind != "fixed" else None
        out += [(d, parent, enc) for enc, d in space.bins.items()]
    out += [(d, None, None) for d in space.train.values()]
    return [(d, p, v) for d, p, v in out if d.kind != "fixed"]


def kt_choices(dim: Dim, where: str, problems: list[str]) -> list[Any] | None:
    values = list(dim.choices)
    types = {type(v) for v in values}
    if types <= {int, float} and len(types) == 2:
        return [float(v) for v in values]  # KerasTuner wants one type; 1 and 1.0 are equal
    if len(types) > 1 or not types <= {int, float, str, bool}:
        problems.append(
            f"{where}: KerasTuner's Choice needs values of one type (int, float, str or bool), "
            f"but got {values!r}."
        )
        return None
    return values


def check_space(spec: Spec, space: Space) -> None:
    """Check that KerasTuner can express the resolved space (SpecError lists problems)."""
    problems: list[str] = []
    for dim, _parent, _value in _all_dims(space):
        where = f"space.{dim.name.split('.')[0]} ({dim.name})"
        if dim.kind == "categorical":
            kt_choices(dim, where, problems)
        elif dim.log and (dim.low is None or dim.low <= 0):
            problems.append(f"{where}: a log-scale range needs low > 0 in KerasTuner.")
    if problems:
        raise SpecError(problems, _where(spec))


def check_spec(spec: Spec, space: Space | None = None) -> str:
    """Every keras-tuner check of a spec (and its resolved space); returns the algorithm."""
    algo = algorithm(spec)
    if space is not None:
        check_space(spec, space)
    return algo


def hyperparameters(space: Space) -> Any:
    """The space as ``keras_tuner.HyperParameters`` (same names, same conditions)."""
    import keras_tuner as kt

    hp = kt.HyperParameters()
    problems: list[str] = []
    for dim, parent, value in _all_dims(space):
        cond = {"parent_name": parent, "parent_values": [value]} if parent else {}
        if dim.kind == "categorical":
            choices = kt_choices(dim, dim.name, problems)
            if choices is not None:
                hp.Choice(dim.name, choices, **cond)
        elif dim.kind == "int":
            hp.Int(
                dim.name,
                int(dim.low),
                int(dim.high),
                step=None if dim.step is None else int(dim.step),
                sampling="log" if dim.log else "linear",
                **cond,
            )
        else:
            hp.Float(
                dim.name,
                float(dim.low),
                float(dim.high),
                step=dim.step,
                sampling="log" if dim.log else "linear",
                **cond,
            )
    if problems:
        raise SpecError(problems)
    return hp


def space_hash(space: Space) -> str:
    """A short fingerprint of the searched dimensions (names a KerasTuner project)."""
    rows = [
        [d.name, d.kind, d.low, d.high, d.log, list(map(str, d.choices)), p, str(v)]
        + ([] if d.step is None else [d.step])  # unstepped spaces keep their older hash
        for d, p, v in _all_dims(space)
    ]
    return hashlib.sha1(json.dumps(rows, default=str).encode()).hexdigest()[:8]


def params_from(hp: Any, space: Space) -> dict[str, Any]:
    """The active KerasTuner values as Optuna params (plain Python, clipped into range)."""
    dims = {d.name: d for d, _p, _v in _all_dims(space)}
    out: dict[str, Any] = {}
    for name, value in hp.values.items():
        if name.startswith("tuner/") or name not in dims:
            continue
        if not hp.is_active(name):
            continue
        value = value.item() if hasattr(value, "item") else value
        dim = dims[name]
        if dim.kind == "float":
            value = min(max(float(value), float(dim.low)), float(dim.high))
        elif dim.kind == "int":
            value = int(min(max(int(round(value)), int(dim.low)), int(dim.high)))
        out[name] = value
    return out


def project_dir(spec: Spec, url: str, space: Space) -> Path | None:
    """Where KerasTuner keeps its state: beside a file storage, else ``None`` (a temp dir)."""
    path = parse_url(url).path
    if path is None:
        return None
    return path.resolve().parent / "kt" / f"{spec.name}-{space_hash(space)}"


def _fixed_sampler() -> Any:
    import optuna

    class FixedSampler(optuna.samplers.BaseSampler):
        """Returns the values KerasTuner chose for the current trial (set in ``values``)."""

        def __init__(self) -> None:
            self.values: dict[str, Any] = {}

        def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
            return {}

        def sample_relative(self, study: Any, trial: Any, search_space: Any) -> dict[str, Any]:
            return {}

        def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
            if name not in self.values:
                raise RuntimeError(f"KerasTuner gave no value for {name!r}")
            return self.values[name]

    return FixedSampler()


class TrialRunner:
    """Runs KerasTuner trials through the shared objective and records them in Optuna."""

    def __init__(self, run: StudyRun, sampler: Any, algo: str, deadline: float | None) -> None:
        self.run, self.prepared, self.study = run, run.prepared, run.study
        self.sampler, self.tracker, self.progress = sampler, run.tracker, run.progress
        self.algo, self.deadline = algo, deadline
        self.objectives: dict[int, Any] = {}

    @property
    def stop(self) -> bool:
        return self.run.failures.tripped

    def objective(self, epochs: int | None) -> Any:
        spec = self.prepared.spec
        e = int(epochs) if epochs else spec.cv.epochs
        if e not in self.objectives:
            # Pruning is KerasTuner's job (Hyperband's epoch budgets): no Optuna reports.
            run_spec = spec.replace(**{"cv.epochs": e, "search.pruner": "none"})
            self.objectives[e] = Objective(
                run_spec,
                self.prepared.train,
                self.prepared.space,
                self.tracker,
                status=self.progress.epoch if self.progress is not None else None,
            )
        return self.objectives[e]

    def before_trial(self, oracle: Any) -> None:
        late = self.deadline is not None and time.monotonic() >= self.deadline
        if self.stop or late:
            oracle.max_trials = len(oracle.trials)  # the oracle answers STOPPED

    def run_trial(self, kt_trial: Any) -> dict[str, float]:
        import keras_tuner as kt
        import optuna

        hp = kt_trial.hyperparameters
        epochs = hp.values.get("tuner/epochs")
        objective = self.objective(epochs)
        self.sampler.values = params_from(hp, self.prepared.space)
        trial = self.study.ask()
        attrs = {"engine": "keras-tuner", "kt_algorithm": self.algo}
        attrs["kt_trial_id"] = str(kt_trial.trial_id)
        if epochs:
            attrs["kt_epochs"] = int(epochs)
            if hp.values.get("tuner/trial_id") is not None:
                attrs["kt_resumed_from"] = str(hp.values["tuner/trial_id"])
        for key, val in attrs.items():
            trial.set_user_attr(key, val)
        try:
            value = objective(trial)
        except optuna.TrialPruned as exc:
            self._finish(trial, optuna.trial.TrialState.PRUNED)
            raise kt.errors.FailedTrialError(f"pruned: {exc}") from exc
        except Exception as exc:
            self._finish(trial, optuna.trial.TrialState.FAIL)
            raise kt.errors.FailedTrialError(str(exc) or type(exc).__name__) from exc
        except BaseException:  # Ctrl-C, SIGTERM: recorded as failed, as Optuna does
            self._finish(trial, optuna.trial.TrialState.FAIL, callbacks=False)
            raise
        self._finish(trial, optuna.trial.TrialState.COMPLETE, value)
        return {f"val_{self.prepared.spec.cv.metric}": float(value)}

    def _finish(
        self, trial: Any, state: Any, value: float | None = None, callbacks: bool = True
    ) -> None:
        frozen = self.study.tell(trial, value, state=state)
        run = frozen.user_attrs.get("mlflow_run_id")
        if run:
            self.tracker.set_tags(
                run,
                {
                    "weightsearch.engine": "keras-tuner",
                    "keras_tuner.trial_id": frozen.user_attrs.get("kt_trial_id", ""),
                },
            )
        if callbacks:
            self.run.trial_done(self.study, frozen)


def make_oracle(kt: Any, spec: Spec, algo: str, hp: Any) -> Any:
    objective = kt.Objective(f"val_{spec.cv.metric}", direction="max")
    common = {
        "objective": objective,
        "hyperparameters": hp,
        "allow_new_entries": False,
        "tune_new_entries": True,
        "seed": spec.seed + 1,  # KerasTuner treats seed 0 as "no seed"
        "max_consecutive_failed_trials": 10**9,  # search.max_consecutive_failures rules
    }
    if algo == "bayesian":
        return kt.oracles.BayesianOptimizationOracle(
            num_initial_points=spec.search.n_startup_trials or None, **common
        )
    if algo == "random":
        return kt.oracles.RandomSearchOracle(**common)
    return kt.oracles.HyperbandOracle(max_epochs=spec.cv.epochs, factor=3, **common)


class KerasTunerEngine:
    """KerasTuner's oracles (Bayesian optimisation, random search, Hyperband) on the shared
    objective and study run (O'Malley et al., KerasTuner, 2019); one process."""

    name = "keras-tuner"

    def check(self, spec: Spec, space: Space) -> None:
        """Reject what KerasTuner cannot run, up front (:func:`check_spec`)."""
        check_spec(spec, space)

    def describe(self, spec: Spec) -> str:
        return describe(spec)

    def run(self, prepared: Prepared, options: RunOptions) -> Outcome:
        """Run ``n_trials`` KerasTuner trials (or until ``timeout``). Takes the Optuna
        engine's arguments; worker mode (``total``, ``parent_run_id``, ``worker_index``,
        ``max_trials``) is rejected."""
        import optuna

        spec = prepared.spec
        algo = check_spec(spec, prepared.space)
        if options.worker_mode:
            raise SpecError(
                [
                    "search.engine: the keras-tuner engine runs in one process; use "
                    'engine = "optuna" for parallel workers.'
                ],
                _where(spec),
            )
        import keras_tuner as kt

        run = StudyRun(
            prepared, storage=options.storage, tracker=options.tracker, progress=options.progress
        )
        sampler = _fixed_sampler()
        study = run.open(
            sampler=sampler, pruner=optuna.pruners.NopPruner(), engine=self.name,
            baseline=False,
        )
        n = options.n_trials if options.n_trials is not None else spec.search.n_trials
        timeout = options.timeout or spec.search.timeout
        deadline = time.monotonic() + timeout if timeout else None
        runner = TrialRunner(run, sampler, algo, deadline)

        class WeightsearchTuner(kt.Tuner):
            """Runs the weightsearch CV objective for each KerasTuner trial."""

            def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
                return runner.run_trial(trial)

            def pre_create_trial(self) -> None:
                runner.before_trial(self.oracle)

        directory = project_dir(spec, run.url, prepared.space)
        temp = None
        if directory is None:
            temp = tempfile.mkdtemp(prefix="weightsearch-kt-")
            directory = Path(temp) / spec.name
        directory.parent.mkdir(parents=True, exist_ok=True)
        params = {"engine": self.name, "kt_algorithm": ORACLE_NAMES[algo],
                  "kt_directory": str(directory)}
        try:
            with (
                run.running(n_trials=n, params=params, tags={"weightsearch.engine": self.name})
                as outcome,
                warnings.catch_warnings(),
                contextlib.redirect_stdout(io.StringIO()),  # KerasTuner's "Reloading Tuner"
            ):
                warnings.simplefilter("ignore")  # the GP's ConvergenceWarnings on tiny studies
                tuner = WeightsearchTuner(
                    oracle=make_oracle(kt, spec, algo, hyperparameters(prepared.space)),
                    directory=str(directory.parent),
                    project_name=directory.name,
                    overwrite=not study.trials,  # a fresh study gets a fresh tuner history
                )
                tuner.oracle.max_trials = len(tuner.oracle.trials) + n
                tuner.search(verbose=0)
        finally:
            if temp is not None:
                shutil.rmtree(temp, ignore_errors=True)
        return outcome


def describe(spec: Spec) -> str:
    """One line naming the KerasTuner algorithm a spec runs (for the terminal)."""
    algo = algorithm(spec)
    note = ""
    if algo == "bayesian" and spec.search.sampler == "tpe":
        note = " in place of Optuna's TPE (KerasTuner has no TPE)"
    return f"KerasTuner {ORACLE_NAMES[algo]}{note}"


__all__ = [
    "ALGORITHMS",
    "algorithm",
    "check_space",
    "check_spec",
    "describe",
    "hyperparameters",
    "KerasTunerEngine",
    "ORACLE_NAMES",
    "TrialRunner",
    "params_from",
    "project_dir",
    "space_hash",
]
