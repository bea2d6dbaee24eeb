"""Search engines by name: ``[search] engine = "<name>"``.

An engine proposes a study's trials; everything else (storage, study, MLflow parent run,
signals, failures, the outcome) is the shared :class:`~weightsearch.study.StudyRun`. Each entry
has ``name``, ``check(spec, space)`` (refuse what it cannot run, up front), ``describe(spec)``
and ``run(prepared, options: RunOptions) -> Outcome``; its docstring says what it is. A new
engine is one registry entry here.
"""

from __future__ import annotations

from typing import Any, Protocol

from weightsearch._registry import Registry
from weightsearch.engines.keras_tuner import KerasTunerEngine
from weightsearch.engines.optuna_engine import OptunaEngine
from weightsearch.spec import Spec, SpecError
from weightsearch.study import Outcome, Prepared, RunOptions, check_resume
from weightsearch.study import prepare as prepare_data


class Engine(Protocol):
    name: str

    def check(self, spec: Spec, space: Any) -> None: ...

    def describe(self, spec: Spec) -> str: ...

    def run(self, prepared: Prepared, options: RunOptions) -> Outcome: ...


ENGINES: Registry[Engine] = Registry("engine")
ENGINES.register("optuna")(OptunaEngine())
ENGINES.register("keras-tuner", aliases=("kerastuner", "kt"))(KerasTunerEngine())


def engine_of(spec: Spec) -> Engine:
    """The spec's engine; :class:`SpecError` at ``search.engine`` if there is none."""
    try:
        return ENGINES.get(spec.search.engine)
    except ValueError as exc:
        raise SpecError([f"search.engine: {exc}"], spec.path or spec.name) from None


def prepare(spec: Spec, dataset: Any = None) -> Prepared:
    """The spec resolved against its data (:func:`weightsearch.study.prepare`; ``dataset``:
    data already in memory), checked by its engine too, so nothing starts that cannot run."""
    engine = engine_of(spec)
    if spec.search.final == "fold_ensemble" and not spec.tracking.enabled:
        raise SpecError(
            ["search.final: 'fold_ensemble' needs MLflow tracking (each trial saves its fold "
             "models in its MLflow run), but tracking is off; expected tracking.enabled = "
             "true (no --no-tracking; in search(), a tracking_uri), or search.final = 'refit'."],
            spec.path or spec.name,
        )
    prepared = prepare_data(spec, dataset)
    engine.check(spec, prepared.space)
    return prepared


def validate(spec: Spec) -> Prepared:
    """Everything ``study`` would refuse before training, writing nothing: :func:`prepare`,
    then the resume checks against a study already in the storage
    (:func:`weightsearch.study.check_resume`)."""
    prepared = prepare(spec)
    check_resume(prepared, engine_of(spec).name)
    return prepared


def run_study(prepared: Prepared, **options: Any) -> Outcome:
    """Run the prepared study with its engine; ``options`` are
    :class:`~weightsearch.study.RunOptions`'s fields (a misspelt one is a ``TypeError``)."""
    return engine_of(prepared.spec).run(prepared, RunOptions(**options))


__all__ = ["ENGINES", "Engine", "engine_of", "prepare", "run_study", "validate"]
