"""The whole analysis of a stored study (:class:`StudyReport`): what ``report`` prints and
writes, before any file or MLflow run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weightsearch.report.analysis import (
    BASELINE,
    NO_BASELINE,
    ClassRow,
    ComparisonRow,
    best_trial,
    comparison_rows,
    find_baseline,
    fold_values,
    per_class_rows,
    state_name,
)
from weightsearch.report.tables import folds_cell


@dataclass
class StudyReport:
    """What ``report`` prints and writes (see :func:`analyse`)."""

    study_name: str
    description: str
    metric: str
    engine: str
    folds: int | None
    states: dict[str, int]
    leaderboard: list[dict[str, Any]]
    best: Any | None
    baseline: Any | None
    schemes: list[ComparisonRow]
    losses: list[ComparisonRow]
    per_class: list[ClassRow]
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)
    mlflow_run_id: str | None = None
    mlflow_note: str = ""
    final: str = "refit"  # search.final: the final model export writes into the config
    final_models: list[dict[str, Any]] = field(default_factory=list)  # the train runs

    @property
    def final_note(self) -> str:
        """Which final model ``export`` configures (``search.final``) and what it means."""
        how = ("the best trial's fold models, averaged (nothing retrained)"
               if self.final == "fold_ensemble" else "retrained on the whole training part")
        return (f"Final model: {self.final.replace('_', ' ')} (search.final): {how}; "
                "train.final in the exported config chooses, and `train` scores the other "
                "on the same test set where it exists.")

    def final_rows(self) -> tuple[list[str], list[list[str]]]:
        """The final models ``train`` made from this study (newest first), with the held-out
        test macro-F1 of each and of the other final model where train scored both."""
        def cell(v: Any) -> str:
            return "–" if v is None else f"{v:.4f}"

        headers = ["trial", "final model", "test macro-F1", "other final model", "its test"]
        rows = []
        for m in self.final_models:
            other = next(iter(m["other"].items()), (None, None))
            rows.append([str(m["trial"]), m["final"].replace("_", " "),
                         cell(m["test_macro_f1"]),
                         "–" if other[0] is None else other[0].replace("_", " "),
                         cell(other[1])])
        return headers, rows

    @property
    def baseline_note(self) -> str:
        if self.baseline is None:
            return NO_BASELINE + ": no paired tests."
        return (
            f"baseline: trial {self.baseline.number} ({BASELINE}), "
            f"CV {self.metric} {self.baseline.value:.4f}, "
            f"folds {folds_cell(fold_values(self.baseline))}"
        )

    @property
    def states_line(self) -> str:
        """``"5 complete, 1 fail, 1 pruned"`` (or ``"no trials"``)."""
        return ", ".join(f"{v} {k.lower()}" for k, v in sorted(self.states.items())) or "no trials"


def engine_name(spec: dict[str, Any], trials: list[Any]) -> str:
    """The search engine as the report names it, with its sampler and pruner (Optuna) or the
    oracles its trials ran under (KerasTuner)."""
    search = spec.get("search", {})
    engine = search.get("engine", "optuna")
    algos = {t.user_attrs.get("kt_algorithm") for t in trials} - {None}
    if engine == "keras-tuner" and algos:
        from weightsearch.engines.keras_tuner import ORACLE_NAMES

        return f"{engine} ({', '.join(ORACLE_NAMES.get(a, a) for a in sorted(algos))})"
    if engine == "optuna":
        return f"optuna ({search.get('sampler', '?')} sampler, {search.get('pruner', '?')} pruner)"
    return engine


def analyse(study: Any, top: int = 10) -> StudyReport:
    """Tables and statistics of a study (no files, no MLflow)."""
    from weightsearch.study import leaderboard

    trials = list(study.trials)
    spec = study.user_attrs.get("spec", {}) or {}
    states: dict[str, int] = {}
    for t in trials:
        states[state_name(t)] = states.get(state_name(t), 0) + 1
    best, baseline = best_trial(trials), find_baseline(trials)
    return StudyReport(
        study_name=study.study_name,
        description=str(spec.get("description", "") or ""),
        metric=study.user_attrs.get("metric", spec.get("cv", {}).get("metric", "macro_f1")),
        engine=engine_name(spec, trials),
        folds=spec.get("cv", {}).get("folds"),
        states=states,
        leaderboard=leaderboard(study, top=top),
        best=best,
        baseline=baseline,
        schemes=comparison_rows(trials, "scheme", baseline),
        losses=comparison_rows(trials, "loss", baseline),
        per_class=per_class_rows(best, baseline) if best is not None else [],
        final=str(spec.get("search", {}).get("final", "refit")),
    )
