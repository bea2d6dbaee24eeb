"""Export: a finished study's trial (the best by default) → a standalone training config
file that traces back to the study, the trial and its MLflow run."""

from __future__ import annotations

import math
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from weightsearch.production.config import DEFAULT_MLFLOW_URI, TrainConfig, parse_config
from weightsearch.production.files import ExportError, write_text
from weightsearch.storage import DEFAULT_STORAGE


@dataclass
class Exported:
    """The result of :func:`export`."""

    path: Path
    config: TrainConfig
    study: str
    trial: int
    value: float | None


def pick_trial(study: Any, number: int | None) -> Any:
    """Trial ``number`` of ``study``, or its best when ``None``; it must be COMPLETE."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    done = ", ".join(str(t.number) for t in complete[:20]) or "none"
    if number is None:
        if not complete:
            raise ExportError(
                f"--study: study {study.study_name!r} has no completed trial yet "
                f"({len(trials)} trial(s) in all); run the study first."
            )
        return max(complete, key=lambda t: t.value)
    by_number = {t.number: t for t in trials}
    if number not in by_number:
        last = f"0..{max(by_number)}" if by_number else "none"
        raise ExportError(
            f"--trial: study {study.study_name!r} has no trial {number}; its trials are "
            f"numbered {last}."
        )
    trial = by_number[number]
    if trial.state != optuna.trial.TrialState.COMPLETE:
        raise ExportError(
            f"--trial: trial {number} of study {study.study_name!r} is {trial.state.name}, "
            f"not COMPLETE; completed trials: {done}."
        )
    return trial


def median_epochs(best_epochs: Sequence[int], fallback: int) -> int:
    """The final model's epochs: ``max(1, ⌊median(best_epochs) + 0.5⌋)`` (halves round up),
    or ``fallback`` without per-fold best epochs."""
    if not best_epochs:
        return max(1, int(fallback))
    return max(1, int(math.floor(float(np.median(best_epochs)) + 0.5)))


def trial_data(study: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """What the study's trials were run on: the study's data record (source, task, classes,
    features, input shape, positive class), written when the study was created; a study
    from before the record loads its stored spec's data to resolve them, as the search did."""
    from weightsearch import data as data_mod
    from weightsearch.study import DATA_ATTR

    record = study.user_attrs.get(DATA_ATTR)
    if isinstance(record, dict):
        return record
    sd = spec["data"]
    seed = int(spec.get("seed", 0))
    target = sd.get("target")
    target = list(target) if isinstance(target, list | tuple) else target
    treatment = spec_treatment(sd)
    ds = data_mod.load(sd["source"], target=target, task=sd.get("task"), seed=seed,
                       options=dict(sd.get("options") or {}), **treatment)
    train_idx, _ = data_mod.train_test_split(ds, float(sd.get("test_size", 0.2)), seed)
    positive = ds.subset(train_idx).positive_class
    return {
        "source": sd["source"],
        "task": ds.task,
        "classes": list(ds.classes),
        "features": None if ds.feature_names is None else list(ds.feature_names),
        "input_shape": list(ds.input_shape),
        "positive": None if positive is None else ds.classes[int(positive)],
        "treatment": treatment,
        "columns": None if ds.columns is None else ds.columns.to_dict(),
    }


def spec_treatment(sd: dict[str, Any]) -> dict[str, Any]:
    """The column treatment of a stored spec's ``[data]``, defaults filled in."""
    from weightsearch.spec import Checker, check_treatment_keys

    return check_treatment_keys(Checker(), sd)


def config_from_trial(study: Any, trial: Any, storage: str) -> TrainConfig:
    """The training config of a finished trial, describing the data the trial ran on
    (:func:`trial_data`), not whatever the data source holds today."""
    from weightsearch.plugins import PluginError, import_plugins, search_dirs
    from weightsearch.space import check_config
    from weightsearch.storage import mask_url

    spec = study.user_attrs.get("spec")
    config = trial.user_attrs.get("config")
    if not isinstance(spec, dict) or not isinstance(config, dict):
        missing = "study attribute 'spec'" if not isinstance(spec, dict) else "its 'config'"
        raise ExportError(
            f"--study: trial {trial.number} of study {study.study_name!r} has no stored "
            f"{missing}; was the study run by weightsearch?"
        )
    plugins = list(spec.get("plugins") or [])
    try:
        import_plugins(plugins, search_dirs(spec.get("path"), Path.cwd()))
    except PluginError as exc:
        raise ExportError(f"study {study.study_name!r}: {exc}") from None
    sd, cv = spec["data"], spec.get("cv", {})
    seed = int(spec.get("seed", 0))
    target = sd.get("target")
    target = list(target) if isinstance(target, list | tuple) else target
    test_size = float(sd.get("test_size", 0.2))
    options = dict(sd.get("options") or {})
    ran_on = trial_data(study, spec)
    task = ran_on["task"]
    components = check_config(config, task=task, where=f"trial {trial.number}")
    attrs = trial.user_attrs
    best_epochs = [int(e) for e in attrs.get("best_epochs") or []]
    tracking = spec.get("tracking", {})
    source = {
        "study": study.study_name,
        "trial": int(trial.number),
        "storage": mask_url(storage),
        "mlflow_run_id": attrs.get("mlflow_run_id"),
        "metric": attrs.get("metric") or study.user_attrs.get("metric") or cv.get("metric"),
        "cv_value": float(trial.value),
        "cv_std": attrs.get("cv_std"),
        "cv_value_tuned": attrs.get("cv_value_tuned"),
        "cv_folds": cv.get("folds"),
        "fold_ensemble": attrs.get("fold_ensemble"),
        "best_epochs": best_epochs,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    data = {
        "source": ran_on["source"],
        "target": target,
        "task": task,
        "test_size": test_size,
        "seed": seed,
        "options": options,
        "classes": list(ran_on["classes"]),
        "feature_names": ran_on.get("features"),
        "input_shape": list(ran_on["input_shape"]),
        **(ran_on.get("treatment") or spec_treatment(sd)),
    }
    if ran_on.get("columns"):
        from weightsearch.columns import Columns

        data["columns"] = Columns.from_dict(ran_on["columns"]).record()
    decision: dict[str, Any] = {}
    if "threshold" in attrs and task in ("binary", "multilabel"):
        decision["threshold"] = attrs["threshold"]
    if task == "binary":
        decision["positive"] = ran_on["positive"]
    weights = attrs.get("decision_weights")
    tuned = attrs.get("cv_value_tuned")
    if task == "multiclass" and weights and tuned is not None and tuned > trial.value:
        decision["weights"] = [float(w) for w in weights]  # only where cross-fitting beats argmax
    raw = {
        "plugins": plugins,
        "source": source,
        "data": data,
        "weighting": {
            "scheme": components["weighting"]["scheme"],
            "apply_weights": cv.get("apply_weights", "loss"),
            "params": components["weighting"]["params"],
        },
        "loss": components["loss"],
        "model": components["model"],
        "train": {
            "optimizer": components["train"]["optimizer"],
            "learning_rate": components["train"]["learning_rate"],
            "batch_size": int(cv.get("batch_size", 64)),
            "epochs": median_epochs(best_epochs, cv.get("epochs", 10)),
            "seed": seed,
            "final": spec.get("search", {}).get("final", "refit"),
        },
        "decision": decision,
        "tracking": {
            "enabled": bool(tracking.get("enabled", True)),
            "mlflow_uri": tracking.get("mlflow_uri", DEFAULT_MLFLOW_URI),
            "experiment": tracking.get("experiment") or spec["name"],
            "registered_model": study.study_name,
        },
    }
    return parse_config(_drop_none(raw), source=f"trial {trial.number}")


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


def export(
    study: str,
    out: str | Path,
    *,
    storage: str = DEFAULT_STORAGE,
    trial: int | None = None,
) -> Exported:
    """Write the training config of trial ``trial`` (default: the best) of ``study`` to ``out``.

    The file is written only once it is complete and re-reads to the trial's exact
    parameters; :class:`ExportError` names an unknown study or trial.
    """
    from weightsearch.compat import quiet_optuna
    from weightsearch.storage import load_stored_study

    quiet_optuna()
    return export_trial(load_stored_study(study, storage, ExportError), out, storage=storage,
                        trial=trial)


def export_trial(st: Any, out: str | Path, *, storage: str, trial: int | None = None) -> Exported:
    """:func:`export` for a study already open (``st``, an ``optuna.Study``); ``storage``
    is the URL recorded in the config."""
    chosen = pick_trial(st, trial)
    cfg = config_from_trial(st, chosen, storage)
    text = cfg.to_toml()
    back = parse_config(tomllib.loads(text), source=str(out), path=str(out))
    flat = back.params()
    wrong = {
        k: (v, flat.get(k))
        for k, v in chosen.params.items()
        if k not in flat or flat[k] != v or type(flat[k]) is not type(v)
    }
    if wrong:  # a bug, never the user's doing
        raise RuntimeError(f"the exported config does not reproduce trial params: {wrong}")
    write_text(Path(out), text)
    return Exported(Path(out), back, st.study_name, int(chosen.number), chosen.value)
