"""From a finished study to production: export a trial's config, train, save, predict.

- :func:`export` reads a trial (the best by default) from an Optuna study and writes a
  standalone, human-readable TOML training config (data, weighting, loss, architecture,
  optimiser, batch size, epochs, decision threshold) that traces back to the study, the
  trial and its MLflow run.
- :func:`load_config` reads and checks such a file; :func:`build_from_config` compiles the
  model it describes for given data; :func:`train_from_config` trains the final model on all
  training data, evaluates it on the study's held-out test split, saves ``model.keras`` and
  ``weightsearch.json`` and logs and registers the model in MLflow.
- :func:`load_model` reloads a saved model directory; :func:`predict` writes predictions of
  new data to CSV.

This module imports only numpy (and pandas to write predictions) at import time; Keras,
Optuna and MLflow are imported when a function needs them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from weightsearch.base import APPLICATIONS, TASKS
from weightsearch.spec import Checker, SpecError, dumps_toml

__all__ = [
    "ConfigError",
    "ExportError",
    "Exported",
    "PredictResult",
    "TrainConfig",
    "TrainResult",
    "TrainedModel",
    "build_from_config",
    "export",
    "load_config",
    "load_model",
    "parse_config",
    "predict",
    "train_from_config",
]

MODEL_FILE = "model.keras"
META_FILE = "weightsearch.json"
META_FORMAT = "weightsearch-model"
META_VERSION = 1
DEFAULT_STORAGE = "sqlite:///weightsearch.db"
SECTIONS = ("source", "data", "weighting", "loss", "model", "train", "decision", "tracking")
CHOICE = {"weighting": "scheme", "loss": "name", "model": "arch"}


class ExportError(ValueError):
    """A user-caused problem: an unknown study or trial, a bad model directory or output."""


class ConfigError(SpecError):
    """Problems in a training config; ``problems`` holds one line each, naming the key."""


# --------------------------------------------------------------------------------------------
# The training config
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """A standalone training config (the sections of the TOML file, checked and completed).

    ``components`` is the trial configuration in the shape the search uses
    (``{"weighting": {"scheme", "params"}, "loss": ..., "model": ..., "train": ...}``).
    """

    source: dict[str, Any]
    data: dict[str, Any]
    weighting: dict[str, Any]
    loss: dict[str, Any]
    model: dict[str, Any]
    train: dict[str, Any]
    decision: dict[str, Any] = field(default_factory=dict)
    tracking: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    @property
    def task(self) -> str:
        return str(self.data["task"])

    @property
    def classes(self) -> list[str]:
        return list(self.data["classes"])

    @property
    def components(self) -> dict[str, Any]:
        return {
            "weighting": {
                "scheme": self.weighting["scheme"],
                "params": dict(self.weighting["params"]),
            },
            "loss": {"name": self.loss["name"], "params": dict(self.loss["params"])},
            "model": {"arch": self.model["arch"], "params": dict(self.model["params"])},
            "train": {
                "learning_rate": self.train["learning_rate"],
                "optimizer": self.train["optimizer"],
            },
        }

    def params(self) -> dict[str, Any]:
        """The components as flat, dotted Optuna parameter names (a superset of the trial's
        ``params``: fixed values and defaults are included)."""
        from weightsearch.space import flatten

        return flatten(self.components)

    def to_dict(self) -> dict[str, Any]:
        return {s: _plain(getattr(self, s)) for s in SECTIONS}

    def to_toml(self) -> str:
        return _config_toml(self)

    def with_data(self, source: str) -> TrainConfig:
        """The same config reading its data from ``source`` (same columns and classes)."""
        data = dict(self.data, source=str(source))
        if not str(source).startswith("builtin:"):
            data["options"] = {}
        return replace(self, data=data)


def _plain(value: Any) -> Any:
    """JSON/TOML-ready copies: tuples → lists, numpy scalars → Python scalars."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


_COMMENTS = {
    "source": "Where this config comes from: the study, the trial and its MLflow run.",
    "data": (
        "The data. `train` loads it, re-makes the study's stratified hold-out split\n"
        "(test_size, seed) and trains on the training part only. `--data PATH` replaces\n"
        "source (same columns and classes); test_size = 0.0 trains on every row."
    ),
    "weighting": (
        "Class weights, recomputed on the whole training part with this scheme;\n"
        "apply_weights: loss | sample_weight | class_weight."
    ),
    "loss": "The loss and its parameters.",
    "model": "The architecture and its parameters (defaults filled in).",
    "train": (
        "Optimiser and schedule. There is no validation set to stop on, so epochs is the\n"
        "median of the trial's per-fold best epochs, rounded."
    ),
    "decision": (
        "Decision rule. binary: predict `positive` when P(positive) >= threshold;\n"
        "multilabel: label on when P(label) >= threshold; multiclass: argmax (no threshold)."
    ),
    "tracking": "`train` logs the model to this MLflow store and registers it as registered_model.",
}


def _config_toml(cfg: TrainConfig) -> str:
    src = cfg.source
    what = f"study {src.get('study', '?')!r}, trial {src.get('trial', '?')}"
    header = [
        f"# weightsearch training config: {what}.",
        "# Train the final model with:  python -m weightsearch train THIS_FILE --out DIR",
        "",
    ]
    parts = ["\n".join(header)]
    for section in SECTIONS:
        table = _plain(getattr(cfg, section))
        if section == "decision" and not table:
            table = {}
        comment = "\n".join(f"# {line}" for line in _COMMENTS[section].splitlines())
        text = dumps_toml({section: table})
        for key, value in table.items():  # long lists (feature names): one item a line
            if isinstance(value, list) and value:
                line = f"{key} = {_toml_value(value)}"
                if len(line) > 100 and line in text:
                    items = "".join(f"    {_toml_value(v)},\n" for v in value)
                    text = text.replace(line, f"{key} = [\n{items}]", 1)
        parts.append(comment + "\n" + text)
    return "\n".join(parts)


def _toml_value(value: Any) -> str:
    return dumps_toml({"v": value}).split(" = ", 1)[1].strip()


def load_config(path: str | Path) -> TrainConfig:
    """Read and check a training config written by :func:`export` (or edited by hand).

    Every problem raises :class:`ConfigError` with one line per problem naming the key and
    what is expected, e.g. ``weighting.scheme: Unknown weighting scheme 'foo'; ...``.
    """
    p = Path(path)
    src = str(path)
    if not p.is_file():
        raise ConfigError(
            ["file not found (expected a training config written by `weightsearch export`)."],
            src,
        )
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"malformed TOML: {exc}."], src) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read the file: {exc}."], src) from None
    return parse_config(raw, source=src, path=str(p))


def _string_list(c: Checker, key: str, value: Any) -> list[str] | None:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        c.add(key, f"expected a non-empty list of strings, but got {value!r}.")
        return None
    return list(value)


def parse_config(
    raw: dict[str, Any], source: str = "config", path: str | None = None
) -> TrainConfig:
    """Check a config mapping (the parsed TOML) and build a :class:`TrainConfig`."""
    c = Checker()
    c.unknown_keys("", raw, SECTIONS)
    tables = {s: c.table(s, raw.get(s, {})) for s in SECTIONS}
    for s in ("data", "weighting", "loss", "model", "train"):
        if s not in raw:
            c.add(s, f"missing [{s}] section.")

    # [source]: informational, but typed where it is read
    src = dict(tables["source"])
    if "trial" in src:
        c.integer("source.trial", src["trial"], 0)
    if "study" in src:
        c.string("source.study", src["study"])

    # [data]
    d = tables["data"]
    c.unknown_keys(
        "data",
        d,
        ("source", "target", "task", "test_size", "seed", "options", "classes",
         "feature_names", "input_shape"),
    )
    data: dict[str, Any] = {}
    if "data" in raw:
        if "source" in d:
            data["source"] = c.string("data.source", d["source"])
        else:
            c.add("data.source", "missing; expected 'builtin:<name>' or a path to a data file.")
        target = d.get("target")
        if target is not None and not isinstance(target, str):
            target = _string_list(c, "data.target", target)
        data["target"] = target
        if "task" in d:
            data["task"] = c.string("data.task", d["task"], TASKS)
        else:
            c.add("data.task", f"missing; expected one of: {', '.join(TASKS)}.")
        data["test_size"] = c.number("data.test_size", d.get("test_size", 0.2), 0.0, 0.9)
        data["seed"] = c.integer("data.seed", d.get("seed", 0), 0)
        data["options"] = dict(c.table("data.options", d.get("options", {})))
        if "classes" in d:
            data["classes"] = _string_list(c, "data.classes", d["classes"])
            if data["classes"] and len(set(data["classes"])) != len(data["classes"]):
                c.add("data.classes", f"lists a class twice: {data['classes']}.")
        else:
            c.add("data.classes", "missing; expected the class (or label) names in label order.")
        if d.get("feature_names") is not None:
            data["feature_names"] = _string_list(c, "data.feature_names", d["feature_names"])
        if d.get("input_shape") is not None:
            shape = d["input_shape"]
            ok = isinstance(shape, list) and shape and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape
            )
            if not ok:
                c.add("data.input_shape", f"expected a list of positive integers, got {shape!r}.")
            data["input_shape"] = list(shape) if ok else None
    task = data.get("task")

    # [weighting], [loss], [model]: the names first, so a bad name gives one clear line
    names: dict[str, str] = {}
    for section, key in CHOICE.items():
        table = tables[section]
        allowed = (key, "params", "apply_weights") if section == "weighting" else (key, "params")
        c.unknown_keys(section, table, allowed)
        if section not in raw:
            continue
        if key not in table:
            c.add(f"{section}.{key}", "missing.")
            continue
        try:
            names[section] = _registry(section).canonical(table[key])
        except ValueError as exc:
            c.add(f"{section}.{key}", str(exc))
        c.table(f"{section}.params", table.get("params", {}))
    apply = c.string(
        "weighting.apply_weights", tables["weighting"].get("apply_weights", "loss"), APPLICATIONS
    )
    if apply == "class_weight" and task == "multilabel":
        c.add(
            "weighting.apply_weights",
            "Keras's class_weight cannot weight multi-hot targets (it takes their argmax); "
            "use 'loss' or 'sample_weight'.",
        )

    # [train]
    t = tables["train"]
    c.unknown_keys("train", t, ("optimizer", "learning_rate", "batch_size", "epochs", "seed"))
    train = {
        "batch_size": c.integer("train.batch_size", t.get("batch_size", 64), 1),
        "epochs": c.integer("train.epochs", t.get("epochs", 10), 1),
        "seed": c.integer("train.seed", t.get("seed", data.get("seed") or 0), 0),
    }

    # [decision]
    dec = tables["decision"]
    c.unknown_keys("decision", dec, ("threshold", "positive"))
    decision: dict[str, Any] = {}
    if "threshold" in dec:
        thr = dec["threshold"]
        values = thr if isinstance(thr, list) else [thr]
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int | float)
               or not 0.0 <= float(v) <= 1.0]
        if bad or not values:
            c.add("decision.threshold", f"expected a number in [0, 1] (or a list of them), "
                  f"but got {thr!r}.")
        elif task == "multiclass":
            c.add("decision.threshold", "multiclass decisions use argmax; remove the threshold.")
        elif isinstance(thr, list) and task != "multilabel":
            c.add("decision.threshold", "a list of per-label thresholds needs a multilabel task.")
        elif isinstance(thr, list) and data.get("classes") and len(thr) != len(data["classes"]):
            c.add("decision.threshold", f"expected {len(data['classes'])} per-label thresholds, "
                  f"but got {len(thr)}.")
        else:
            decision["threshold"] = [float(v) for v in thr] if isinstance(thr, list) else float(thr)
    if "positive" in dec:
        pos = c.string("decision.positive", dec["positive"])
        classes = data.get("classes") or []
        if task != "binary":
            c.add("decision.positive", "only a binary task has a positive class.")
        elif pos is not None and classes and pos not in classes:
            c.add("decision.positive", f"unknown class {pos!r}; expected one of: "
                  f"{', '.join(classes)}.")
        else:
            decision["positive"] = pos
    if task == "binary" and "threshold" in decision and "positive" not in decision:
        c.add("decision.positive", "missing; a binary threshold applies to P(positive class).")

    # [tracking]
    tr = tables["tracking"]
    c.unknown_keys("tracking", tr, ("enabled", "mlflow_uri", "experiment", "registered_model"))
    tracking = {
        "enabled": c.boolean("tracking.enabled", tr.get("enabled", True)),
        "mlflow_uri": c.string("tracking.mlflow_uri", tr.get("mlflow_uri", "sqlite:///mlflow.db")),
        "experiment": c.string(
            "tracking.experiment", tr.get("experiment", src.get("study") or "weightsearch")
        ),
        "registered_model": c.string(
            "tracking.registered_model",
            tr.get("registered_model", src.get("study") or "weightsearch"),
        ),
    }

    # component parameters, against the registries (only once the names are known)
    components: dict[str, Any] = {}
    if len(names) == len(CHOICE) and task is not None:
        raw_components = {
            section: {key: names[section], "params": _table_or_empty(tables[section])}
            for section, key in CHOICE.items()
        }
        raw_components["train"] = {
            k: t[k] for k in ("learning_rate", "optimizer") if k in t
        }
        from weightsearch.space import check_config

        try:
            components = check_config(raw_components, task=task, where=source)
        except SpecError as exc:
            for line in exc.problems:
                c.problems.append(_strip_where(line, source))
    if "model" in names and data.get("input_shape"):
        from weightsearch.models import check_input

        try:
            check_input(names["model"], tuple(data["input_shape"]))
        except ValueError as exc:
            c.add("model.arch", str(exc))
    if c.problems:
        raise ConfigError(c.problems, source)
    return TrainConfig(
        source=src,
        data=data,
        weighting={
            "scheme": components["weighting"]["scheme"],
            "apply_weights": apply,
            "params": components["weighting"]["params"],
        },
        loss=dict(components["loss"]),
        model=dict(components["model"]),
        train={
            "optimizer": components["train"]["optimizer"],
            "learning_rate": components["train"]["learning_rate"],
            **train,
        },
        decision=decision,
        tracking=tracking,
        path=path,
    )


def _table_or_empty(table: dict[str, Any]) -> dict[str, Any]:
    params = table.get("params", {})
    return dict(params) if isinstance(params, dict) else {}


def _strip_where(line: str, where: str) -> str:
    """``"best.toml: weighting: weighting.params (x): ..."`` → ``"weighting.params (x): ..."``."""
    line = line.removeprefix(f"{where}: ")
    head, sep, rest = line.partition(": ")
    if sep and rest.startswith((f"{head}.", f"{head}:")):
        return rest
    return line


def _registry(section: str) -> Any:
    if section == "weighting":
        from weightsearch.weighting import WEIGHTINGS

        return WEIGHTINGS
    if section == "loss":
        from weightsearch.losses import LOSSES

        return LOSSES
    from weightsearch.models import MODELS

    return MODELS


# --------------------------------------------------------------------------------------------
# export: study trial → config file
# --------------------------------------------------------------------------------------------


@dataclass
class Exported:
    """The result of :func:`export`."""

    path: Path
    config: TrainConfig
    study: str
    trial: int
    value: float | None


def _open_study(name: str, storage: str) -> Any:
    from weightsearch.storage import load_stored_study

    return load_stored_study(name, storage, ExportError)


def _pick_trial(study: Any, number: int | None) -> Any:
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


def _median_epochs(best_epochs: Sequence[int], fallback: int) -> int:
    if not best_epochs:
        return max(1, int(fallback))
    return max(1, int(math.floor(float(np.median(best_epochs)) + 0.5)))


def config_from_trial(study: Any, trial: Any, storage: str) -> TrainConfig:
    """The training config of a finished trial (loads the study's data to resolve the task,
    classes, features and positive class exactly as the search saw them)."""
    from weightsearch import data as data_mod
    from weightsearch.space import check_config
    from weightsearch.tracking import mask_url

    spec = study.user_attrs.get("spec")
    config = trial.user_attrs.get("config")
    if not isinstance(spec, dict) or not isinstance(config, dict):
        missing = "study attribute 'spec'" if not isinstance(spec, dict) else "its 'config'"
        raise ExportError(
            f"--study: trial {trial.number} of study {study.study_name!r} has no stored "
            f"{missing}; was the study run by weightsearch?"
        )
    sd, cv = spec["data"], spec.get("cv", {})
    seed = int(spec.get("seed", 0))
    target = sd.get("target")
    ds = data_mod.load(
        sd["source"],
        target=list(target) if isinstance(target, list | tuple) else target,
        task=sd.get("task"),
        seed=seed,
        options=dict(sd.get("options") or {}),
    )
    train_idx, _ = data_mod.train_test_split(ds, float(sd.get("test_size", 0.2)), seed)
    train_part = ds.subset(train_idx)
    components = check_config(config, task=ds.task, where=f"trial {trial.number}")
    attrs = trial.user_attrs
    best_epochs = [int(e) for e in attrs.get("best_epochs") or []]
    tracking = spec.get("tracking", {})
    experiment = tracking.get("experiment") or spec["name"]
    metric = attrs.get("metric") or study.user_attrs.get("metric") or cv.get("metric")
    source = {
        "study": study.study_name,
        "trial": int(trial.number),
        "storage": mask_url(storage),
        "mlflow_run_id": attrs.get("mlflow_run_id"),
        "metric": metric,
        "cv_value": float(trial.value),
        "cv_std": attrs.get("cv_std"),
        "cv_value_tuned": attrs.get("cv_value_tuned"),
        "cv_folds": cv.get("folds"),
        "best_epochs": best_epochs,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    data = {
        "source": sd["source"],
        "target": list(target) if isinstance(target, list | tuple) else target,
        "task": ds.task,
        "test_size": float(sd.get("test_size", 0.2)),
        "seed": seed,
        "options": dict(sd.get("options") or {}),
        "classes": list(ds.classes),
        "feature_names": None if ds.feature_names is None else list(ds.feature_names),
        "input_shape": list(ds.input_shape),
    }
    decision: dict[str, Any] = {}
    if "threshold" in attrs and ds.task in ("binary", "multilabel"):
        decision["threshold"] = attrs["threshold"]
    if ds.task == "binary":
        decision["positive"] = ds.classes[int(train_part.positive_class)]
    raw = {
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
            "epochs": _median_epochs(best_epochs, cv.get("epochs", 10)),
            "seed": seed,
        },
        "decision": decision,
        "tracking": {
            "enabled": bool(tracking.get("enabled", True)),
            "mlflow_uri": tracking.get("mlflow_uri", "sqlite:///mlflow.db"),
            "experiment": experiment,
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

    quiet_optuna()
    st = _open_study(study, storage)
    chosen = _pick_trial(st, trial)
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
    _write_text(Path(out), text)
    return Exported(Path(out), back, st.study_name, int(chosen.number), chosen.value)


def _default_mode(base: int) -> int:
    """``base`` permissions less the process umask, as ``open``/``mkdir`` would give."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def _write_text(path: Path, text: str) -> None:
    """Write through a temporary file in the same directory, then rename."""
    if path.is_dir():
        raise ExportError(f"--out: {str(path)!r} is a directory; expected a file name.")
    if not path.parent.exists():
        raise ExportError(f"--out: directory {str(path.parent)!r} does not exist.")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, _default_mode(0o666))  # mkstemp makes it private (0600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------
# build and train
# --------------------------------------------------------------------------------------------


def _as_config(cfg: TrainConfig | str | Path) -> TrainConfig:
    return cfg if isinstance(cfg, TrainConfig) else load_config(cfg)


def load_data(cfg: TrainConfig) -> Any:
    """The config's data as a :class:`~weightsearch.data.Dataset`, checked against the config:
    same classes in the same order, and the training features in the training order."""
    from weightsearch import data as data_mod

    d = cfg.data
    ds = data_mod.load(
        d["source"], target=d.get("target"), task=cfg.task, seed=d["seed"],
        options=d.get("options") or None,
    )
    where = f"Data {d['source']!r}"
    if list(ds.classes) != cfg.classes:
        raise data_mod.DataError(
            f"{where} has classes {ds.classes}; the config (data.classes) expects {cfg.classes} "
            "in that order."
        )
    names = d.get("feature_names")
    if names and ds.feature_names is not None and list(ds.feature_names) != list(names):
        missing = [n for n in names if n not in ds.feature_names]
        extra = [n for n in ds.feature_names if n not in names]
        if missing or extra:
            parts = ([f"missing column(s) {missing}"] if missing else []) + (
                [f"unexpected column(s) {extra}"] if extra else []
            )
            raise data_mod.DataError(
                f"{where} does not match the training features: {'; '.join(parts)}; expected "
                f"the {len(names)} columns in data.feature_names."
            )
        order = [ds.feature_names.index(n) for n in names]
        ds = data_mod.Dataset(
            x=ds.x[:, order], y=ds.y, classes=ds.classes, task=ds.task, name=ds.name,
            feature_names=list(names),
        )
    shape = d.get("input_shape")
    if shape and tuple(ds.input_shape) != tuple(shape):
        raise data_mod.DataError(
            f"{where} has inputs of shape {ds.input_shape}; the config (data.input_shape) "
            f"expects {tuple(shape)}."
        )
    return ds


def build_from_config(cfg: TrainConfig | str | Path, data: Any) -> Any:
    """Compile the model a config describes, adapted and weighted on ``data``.

    ``data`` is a :class:`~weightsearch.data.Dataset` or ``(x, y)`` with ``y`` integer labels
    ``0..C-1`` (or 0/1 multi-hot for multilabel). Returns a
    :class:`~weightsearch.training.Built`: ``.model`` (compiled), ``.loss``, ``.weights``
    (the class weights computed from ``y``) and ``.fit_kwargs`` (``class_weight`` or
    ``sample_weight`` when the config applies the weights that way). Fit with
    ``built.model.fit(x, weightsearch.data.model_targets(y, task, C), **built.fit_kwargs)``.
    """
    from weightsearch import training

    cfg = _as_config(cfg)
    x, y = (data.x, data.y) if hasattr(data, "x") and hasattr(data, "y") else data
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    return training.build(
        cfg.components,
        x=x,
        y=y,
        task=cfg.task,
        n_classes=len(cfg.classes),
        apply_weights=cfg.weighting["apply_weights"],
        seed=cfg.train["seed"],
    )


class TrainFailed(RuntimeError):
    """Training diverged (NaN loss): not the user's input, the run failed."""


@dataclass
class TrainResult:
    """What :func:`train_from_config` did; ``test`` is ``None`` without a test split."""

    model: Any
    config: TrainConfig
    meta: dict[str, Any]
    out: Path | None = None
    test: dict[str, Any] | None = None
    mlflow: dict[str, Any] | None = None
    seconds: float = 0.0
    test_proba: np.ndarray | None = None  # the model's predictions on the test split


def _decision(cfg: TrainConfig) -> tuple[Any, int]:
    """(threshold or None, positive class index) of a config."""
    pos = cfg.decision.get("positive")
    positive = cfg.classes.index(pos) if pos is not None else 1
    return cfg.decision.get("threshold"), positive


def evaluate(
    model: Any, x: np.ndarray, y: np.ndarray, *, task: str, classes: list[str],
    threshold: Any, positive: int, metric: str = "macro_f1", proba: np.ndarray | None = None,
) -> dict[str, Any]:
    """Macro-F1, the study metric, per-class F1 and the confusion matrix on ``(x, y)``
    (``proba``: the model's predictions on ``x``, when already made)."""
    from weightsearch import metrics
    from weightsearch.artifacts import fold_confusion

    n = len(classes)
    if proba is None:
        proba = model.predict(x, batch_size=1024, verbose=0)
    pred = metrics.predict_labels(
        proba, task, threshold=0.5 if threshold is None else threshold, positive=positive
    )
    per_class = metrics.per_class_f1(y, pred, task, n)
    cm, columns = fold_confusion(y, pred, task, n)
    support = (np.asarray(y).sum(axis=0) if task == "multilabel"
               else np.bincount(np.asarray(y), minlength=n))
    out = {
        "rows": int(len(y)),
        "macro_f1": metrics.score("macro_f1", y, pred, task=task, n_classes=n, positive=positive),
        "metric": metric,
        "value": metrics.score(metric, y, pred, task=task, n_classes=n, positive=positive),
        "per_class_f1": {c: float(v) for c, v in zip(classes, per_class, strict=True)},
        "support": {c: int(v) for c, v in zip(classes, support, strict=True)},
        "confusion": np.asarray(cm).tolist(),
        "confusion_columns": columns,
        "threshold": threshold,
    }
    return out


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out: {str(out)!r} is a file; expected a directory for the model.")
    if out.is_dir() and any(out.iterdir()) and not (out / META_FILE).is_file():
        raise ExportError(
            f"--out: {str(out)!r} exists and is not a weightsearch model directory; "
            "refusing to overwrite it (choose a new or empty directory)."
        )


def _missing_parents(path: Path) -> list[Path]:
    missing = []
    for parent in path.absolute().parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


def _install_dir(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` directory to ``out``, replacing an earlier model there."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        os.rmdir(old)
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _versions() -> dict[str, str]:
    from importlib import metadata

    import keras

    import weightsearch

    out = {"weightsearch": weightsearch.__version__, "keras": keras.__version__}
    for dist in ("tensorflow-cpu", "tensorflow"):
        try:
            out["tensorflow"] = metadata.version(dist)
            break
        except metadata.PackageNotFoundError:
            continue
    return out


def train_from_config(
    cfg: TrainConfig | str | Path,
    *,
    data: str | None = None,
    out: str | Path | None = None,
    track: bool | None = None,
    tracking_uri: str | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train the final model a config describes on all of its training data.

    The study's hold-out split is re-made (``data.test_size``, ``data.seed``) and the model
    is trained on the training part for ``train.epochs`` epochs, with class weights
    recomputed on that part; it is then evaluated on the test part (if any).

    ``data`` replaces the config's data source (same columns and classes). With ``out``,
    ``out/model.keras`` and ``out/weightsearch.json`` are written (through a temporary
    directory, so a failure leaves nothing). ``track`` (default: the config's
    ``tracking.enabled``) logs the run and the model to MLflow and registers the model under
    ``tracking.registered_model``; ``tracking_uri`` overrides ``tracking.mlflow_uri``.
    ``on_epoch(epoch, logs)`` is called after every epoch.
    """
    import keras

    from weightsearch import data as data_mod
    from weightsearch import tracking, training

    start = time.perf_counter()
    cfg = _as_config(cfg)
    if data is not None:
        cfg = cfg.with_data(data)
    out_dir = None if out is None else Path(out)
    if out_dir is not None:
        _check_out_dir(out_dir)
    uri = tracking_uri or cfg.tracking["mlflow_uri"]
    track = cfg.tracking["enabled"] if track is None else track
    ds = load_data(cfg)  # user errors in the data surface before MLflow is touched
    # an unusable tracking store stops the command before training, not after
    tracker = (
        tracking.make_tracker(True, uri, cfg.tracking["experiment"])
        if track else tracking.NullTracker()
    )

    train_idx, test_idx = data_mod.train_test_split(ds, cfg.data["test_size"], cfg.data["seed"])
    train, test = ds.subset(train_idx), (ds.subset(test_idx) if len(test_idx) else None)
    threshold, positive = _decision(cfg)

    training.configure_threads()
    training.clear()
    built = build_from_config(cfg, train)
    callbacks = []
    if on_epoch is not None:
        callbacks.append(keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: on_epoch(epoch, dict(logs or {}))
        ))
    fit_start = time.perf_counter()
    history = built.model.fit(
        train.x,
        data_mod.model_targets(train.y, cfg.task, len(cfg.classes)),
        epochs=cfg.train["epochs"],
        batch_size=cfg.train["batch_size"],
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
        **built.fit_kwargs,
    )
    fit_seconds = time.perf_counter() - fit_start
    losses = [float(v) for v in history.history.get("loss", [])]
    bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    if bad:
        raise TrainFailed(f"the loss became NaN or inf at epoch {bad[0] + 1}; nothing was saved.")
    metric = cfg.source.get("metric") or "macro_f1"
    if metric == "positive_f1" and cfg.task != "binary":
        metric = "macro_f1"
    test_scores = test_proba = None
    if test is not None:
        test_proba = built.model.predict(test.x, batch_size=1024, verbose=0)
        test_scores = evaluate(
            built.model, test.x, test.y, task=cfg.task, classes=cfg.classes,
            threshold=threshold, positive=positive, metric=metric, proba=test_proba,
        )
    weights = built.weights
    meta: dict[str, Any] = {
        "format": META_FORMAT,
        "format_version": META_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": _versions(),
        "task": cfg.task,
        "classes": cfg.classes,
        "threshold": threshold,
        "positive": cfg.decision.get("positive"),
        "feature_names": None if train.feature_names is None else list(train.feature_names),
        "input_shape": list(train.input_shape),
        "target": cfg.data.get("target"),
        "weights": {
            "scheme": cfg.weighting["scheme"],
            "params": dict(cfg.weighting["params"]),
            "apply_weights": cfg.weighting["apply_weights"],
            "values": None if weights is None else np.asarray(weights).tolist(),
        },
        "epochs": cfg.train["epochs"],
        "batch_size": cfg.train["batch_size"],
        "train_rows": int(len(train.y)),
        "test_rows": int(len(test_idx)),
        "train_loss": losses,
        "fit_seconds": round(fit_seconds, 3),
        "test": test_scores,
        "source": dict(cfg.source),
        "data_source": cfg.data["source"],
        "config": cfg.to_dict(),
        "mlflow": None,
    }
    result = TrainResult(
        model=built.model, config=cfg, meta=meta, out=out_dir, test=test_scores,
        test_proba=test_proba,
    )
    _save_and_track(result, train, test, tracker=tracker, uri=uri)
    result.seconds = time.perf_counter() - start
    return result


def _run_params(cfg: TrainConfig, meta: dict[str, Any]) -> dict[str, Any]:
    from weightsearch.training import weights_params

    params = dict(cfg.params())
    params.update(
        {
            "apply_weights": cfg.weighting["apply_weights"],
            "epochs": cfg.train["epochs"],
            "batch_size": cfg.train["batch_size"],
            "seed": cfg.train["seed"],
            "data": cfg.data["source"],
            "test_size": cfg.data["test_size"],
            "train_rows": meta["train_rows"],
            "threshold": cfg.decision.get("threshold"),
            "positive": cfg.decision.get("positive"),
            "source.study": cfg.source.get("study"),
            "source.trial": cfg.source.get("trial"),
        }
    )
    values = meta["weights"]["values"]
    if values is not None:
        params.update(weights_params(np.asarray(values), cfg.classes))
    return {k: v for k, v in params.items() if v is not None}


def _inference_copy(model_path: Path) -> Any:
    """The saved model reloaded without its compile state (loss, optimiser): the same
    inference graph and weights, built from Keras layers only, so it loads (and serves from
    MLflow) without weightsearch installed."""
    import keras

    return keras.models.load_model(model_path, compile=False)


def _save_and_track(result: TrainResult, train: Any, test: Any, *, tracker: Any, uri: str) -> None:
    from weightsearch import tracking

    cfg, meta = result.config, result.meta
    out = result.out
    src = cfg.source
    if out is None and not tracker.enabled:
        return
    created = _missing_parents(out) if out is not None else []
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
        os.chmod(tmp, _default_mode(0o777))  # mkdtemp makes it private (0700)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="weightsearch-train-"))
    run = None
    try:
        model_path = tmp / MODEL_FILE
        result.model.save(model_path)
        if tracker.enabled:
            tags = {
                "weightsearch.role": "train",
                "weightsearch.study": str(src.get("study", "")),
                "optuna.study": str(src.get("study", "")),
                "weightsearch.source_trial": str(src.get("trial", "")),
                "weightsearch.source_run_id": str(src.get("mlflow_run_id") or ""),
                "mlflow.note.content": _run_note(cfg, meta),
            }
            name = f"train-trial{src.get('trial', 'x')}-{time.strftime('%Y%m%d-%H%M%S')}"
            run = tracking.start_train_run(tracker, name, tags, _run_params(cfg, meta))
            tracker.log_metric_rows(  # one request, step = epoch
                run, [("loss", v, i) for i, v in enumerate(meta["train_loss"])]
            )
            if result.test is not None:
                t = result.test
                scores = {"test_macro_f1": t["macro_f1"], f"test_{t['metric']}": t["value"]}
                scores.update({f"test_f1.{c}": v for c, v in t["per_class_f1"].items()})
                tracker.log_metrics(run, scores)
            version_tags = {
                "weightsearch.study": str(src.get("study", "")),
                "weightsearch.source_trial": str(src.get("trial", "")),
                "weightsearch.source_run_id": str(src.get("mlflow_run_id") or ""),
            }
            if result.test is not None:
                version_tags["weightsearch.test_macro_f1"] = f"{result.test['macro_f1']:.6f}"
            logged = tracking.log_keras_model(
                tracker,
                run,
                _inference_copy(model_path),
                x_example=np.asarray(train.x[:5], dtype=np.float32),
                registered_model_name=cfg.tracking["registered_model"],
                description=_run_note(cfg, meta),
                version_tags=version_tags,
            )
            meta["mlflow"] = {
                "tracking_uri": tracking.mask_url(uri),
                "experiment": cfg.tracking["experiment"],
                "run_id": run,
                **(logged or {}),
            }
            result.mlflow = meta["mlflow"]
        (tmp / META_FILE).write_text(json.dumps(_plain(meta), indent=2) + "\n", encoding="utf-8")
        if tracker.enabled:
            tracker.log_file(run, str(tmp / META_FILE), "weightsearch")
            tracker.log_text(run, cfg.to_toml(), "weightsearch/train_config.toml")
            if test is not None and result.test is not None:
                from weightsearch.artifacts import write_fold_artifacts

                threshold, positive = _decision(cfg)
                proba = result.test_proba
                write_fold_artifacts(
                    tracker, run, test.y,
                    result.model.predict(test.x, batch_size=1024, verbose=0)
                    if proba is None else proba,
                    task=cfg.task, classes=cfg.classes, positive=positive,
                    threshold=0.5 if threshold is None else threshold,
                    title=f"held-out test set ({len(test.y)} rows)",
                )
            tracking.tag_other_run(
                tracker, src.get("mlflow_run_id"), {"weightsearch.train_run_id": str(run)}
            )
            tracking.end_run(tracker, run, "FINISHED")
        if out is not None:
            _install_dir(tmp, out)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException as exc:
        if run is not None:
            try:
                tracking.end_run(tracker, run, "KILLED" if isinstance(exc, KeyboardInterrupt)
                                 else "FAILED")
            except Exception:  # noqa: BLE001 - the original error matters more
                pass
        shutil.rmtree(tmp, ignore_errors=True)
        for parent in created:
            try:
                parent.rmdir()
            except OSError:
                break
        raise


def _run_note(cfg: TrainConfig, meta: dict[str, Any]) -> str:
    src = cfg.source
    cv = src.get("cv_value")
    std = src.get("cv_std")
    cv_text = "" if cv is None else f"; CV {src.get('metric', 'macro_f1')} {cv:.4f}" + (
        "" if std is None else f" ± {std:.4f}"
    )
    test = meta.get("test")
    test_text = "" if not test else f"; test macro-F1 {test['macro_f1']:.4f}"
    return (
        f"Final model of study {src.get('study')!r}, trial {src.get('trial')} "
        f"(run {src.get('mlflow_run_id') or '-'}): {cfg.weighting['scheme']} / "
        f"{cfg.loss['name']} / {cfg.model['arch']}, {cfg.train['epochs']} epoch(s) on "
        f"{meta['train_rows']} rows{cv_text}{test_text}."
    )


# --------------------------------------------------------------------------------------------
# load and predict
# --------------------------------------------------------------------------------------------


@dataclass
class TrainedModel:
    """A saved model with its metadata: what ``predict`` needs to decide class names."""

    model: Any
    meta: dict[str, Any]
    path: Path

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def task(self) -> str:
        return str(self.meta["task"])

    @property
    def threshold(self) -> Any:
        return self.meta.get("threshold")

    @property
    def positive(self) -> int | None:
        pos = self.meta.get("positive")
        return None if pos is None else self.classes.index(pos)

    @property
    def feature_names(self) -> list[str] | None:
        return self.meta.get("feature_names")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.meta["input_shape"])

    def features(self, x: Any) -> np.ndarray:
        """``x`` as float32 model input: a DataFrame (columns picked by name) or an array."""
        from weightsearch.data import DataError

        if hasattr(x, "columns"):
            names = self.feature_names
            if names is None:
                raise DataError("this model was trained without column names; pass an array.")
            missing = [n for n in names if n not in x.columns]
            if missing:
                raise DataError(f"the data lacks training feature column(s) {missing}.")
            x = x[names].to_numpy(dtype=np.float32)
        arr = np.asarray(x, dtype=np.float32)
        if arr.ndim == 1 and self.input_shape == (1,):
            arr = arr[:, None]
        if arr.shape[1:] != self.input_shape:
            raise DataError(
                f"inputs have shape {arr.shape}; expected (N, "
                f"{', '.join(map(str, self.input_shape))}) as in training."
            )
        return arr

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class (softmax) or label (sigmoid) probabilities, ``(N, C)``."""
        return self.model.predict(self.features(x), batch_size=1024, verbose=0)

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Integer labels ``(N,)`` (or 0/1 ``(N, L)``) with the tuned threshold applied."""
        from weightsearch.metrics import predict_labels

        thr = self.threshold
        return predict_labels(
            proba, self.task, threshold=0.5 if thr is None else thr,
            positive=1 if self.positive is None else self.positive,
        )

    def predict(self, x: Any) -> np.ndarray:
        """Class names ``(N,)`` (object array); multilabel: 0/1 ``(N, L)``."""
        labels = self.decide(self.predict_proba(x))
        if self.task == "multilabel":
            return labels
        return np.asarray(self.classes, dtype=object)[labels]


def load_model(directory: str | Path) -> TrainedModel:
    """Reload a model directory written by ``weightsearch train`` (``model.keras`` +
    ``weightsearch.json``)."""
    import keras

    import weightsearch.losses  # noqa: F401  (registers the custom losses)

    d = Path(directory)
    meta_path, model_path = d / META_FILE, d / MODEL_FILE
    if not d.is_dir() or not meta_path.is_file() or not model_path.is_file():
        raise ExportError(
            f"{str(d)!r} is not a weightsearch model directory: expected {MODEL_FILE} and "
            f"{META_FILE} in it (written by `weightsearch train ... --out DIR`)."
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"{str(meta_path)!r}: cannot read the model metadata: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
        raise ExportError(f"{str(meta_path)!r} is not weightsearch model metadata.")
    model = keras.models.load_model(model_path)
    return TrainedModel(model=model, meta=meta, path=d)


@dataclass
class PredictResult:
    out: Path
    rows: int
    counts: dict[str, int]
    columns: list[str] = field(default_factory=list)


def predict(directory: str | Path, data: str | Path, out: str | Path) -> PredictResult:
    """Predict ``data`` (CSV/Parquet with the training feature columns, or NPZ with array
    ``x``) with a saved model and write ``out`` (CSV): ``prediction`` (class names; for
    multilabel one 0/1 ``pred_<label>`` column per label) and ``proba_<class>`` columns."""
    import pandas as pd

    from weightsearch import data as data_mod

    tm = load_model(directory)
    names = tm.feature_names
    target = tm.meta.get("target")
    targets = [target] if isinstance(target, str) else list(target or data_mod.DEFAULT_TARGETS)
    ignore = [t for t in targets if not names or t not in names]
    x = data_mod.load_features(
        str(data), feature_names=names, input_shape=tm.input_shape, ignore=ignore
    )
    proba = tm.predict_proba(x)
    labels = tm.decide(proba)
    frame: dict[str, Any] = {}
    if tm.task == "multilabel":
        for j, c in enumerate(tm.classes):
            frame[f"pred_{c}"] = labels[:, j]
        counts = {c: int(labels[:, j].sum()) for j, c in enumerate(tm.classes)}
    else:
        frame["prediction"] = np.asarray(tm.classes, dtype=object)[labels]
        counts = {c: int((labels == j).sum()) for j, c in enumerate(tm.classes)}
    for j, c in enumerate(tm.classes):
        frame[f"proba_{c}"] = proba[:, j].astype(np.float64)
    df = pd.DataFrame(frame)
    out_path = Path(out)
    _write_text(out_path, df.to_csv(index=False))
    return PredictResult(out=out_path, rows=len(df), counts=counts, columns=list(df.columns))


# --------------------------------------------------------------------------------------------
# terminal tables (printed by the CLI)
# --------------------------------------------------------------------------------------------


def test_tables(test: dict[str, Any], classes: list[str], task: str) -> list[Any]:
    """Rich tables of a test evaluation: per-class F1 and the confusion matrix."""
    from rich.table import Table

    per = Table(title="F1 per class (test)", title_justify="left")
    per.add_column("label" if task == "multilabel" else "class")
    per.add_column("support", justify="right")
    per.add_column("F1", justify="right")
    for c in classes:
        per.add_row(c, str(test["support"][c]), f"{test['per_class_f1'][c]:.4f}")
    cm = Table(
        title="Confusion (test)" if test["confusion_columns"] is None else "Outcomes (test)",
        title_justify="left",
    )
    columns = test["confusion_columns"] or classes
    cm.add_column("label" if task == "multilabel" else "true \\ pred")
    for col in columns:
        cm.add_column(str(col), justify="right")
    for c, row in zip(classes, test["confusion"], strict=True):
        cm.add_row(c, *(str(v) for v in row))
    return [per, cm]


def _cv_text(src: dict[str, Any]) -> str:
    value, std = src.get("cv_value"), src.get("cv_std")
    if value is None:
        return ""
    return f"CV {src.get('metric') or 'macro_f1'} {value:.4f}" + (
        "" if std is None else f" ± {std:.4f}"
    )


def _decision_text(cfg: TrainConfig) -> str:
    thr, pos = cfg.decision.get("threshold"), cfg.decision.get("positive")
    if cfg.task == "multiclass":
        return "argmax"
    if thr is None:
        return "threshold 0.5 (not tuned)"
    shown = f"{thr:.2f}" if not isinstance(thr, list) else ", ".join(f"{t:.2f}" for t in thr)
    return f"threshold {shown}" + (f" on P({pos!r})" if pos is not None else "")


def describe(cfg: TrainConfig) -> list[str]:
    """Two lines saying what a config trains."""
    w, t = cfg.weighting, cfg.train
    params = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v!r}"
        for k, v in cfg.model["params"].items()
    )
    return [
        f"{w['scheme']} weights via {w['apply_weights']} · {cfg.loss['name']} loss · "
        f"{cfg.model['arch']} ({params})",
        f"{t['optimizer']} lr {t['learning_rate']:g} · batch {t['batch_size']} · "
        f"{t['epochs']} epoch(s) (median of the CV best epochs "
        f"{cfg.source.get('best_epochs', '?')}) · {_decision_text(cfg)}",
    ]


def export_lines(done: Exported) -> list[str]:
    """What ``weightsearch export`` prints."""
    from weightsearch.progress import tool_path

    cv = _cv_text(done.config.source)
    return [
        f"[green]wrote[/green] {done.path}: study {done.study!r}, trial {done.trial}"
        + (f" ({cv})" if cv else ""),
        *(f"  {line}" for line in describe(done.config)),
        f"  next: {tool_path('python')} -m weightsearch train {done.path} "
        f"--out models/{done.study}",
    ]


def train_banner(cfg: TrainConfig, data: str | None = None) -> list[str]:
    src = cfg.source
    return [
        f"[bold]train[/bold] study {src.get('study', '?')!r}, trial {src.get('trial', '?')} "
        f"on {data or cfg.data['source']} ({cfg.task}; hold-out test_size "
        f"{cfg.data['test_size']:g}, seed {cfg.data['seed']})",
        *(f"  {line}" for line in describe(cfg)),
    ]


def train_renderables(result: TrainResult) -> list[Any]:
    """What ``weightsearch train`` prints after training: weights, test scores and tables,
    the saved files and the MLflow run and model version."""
    cfg, meta = result.config, result.meta
    items: list[Any] = []
    values = meta["weights"]["values"]
    if values is not None:
        w = np.asarray(values)
        shown = ", ".join(
            f"{c}: {v:.3g}" if w.ndim == 1 else f"{c}: {v[0]:.3g}/{v[1]:.3g}"
            for c, v in zip(cfg.classes, w, strict=True)
        )
        items.append(f"trained {meta['epochs']} epoch(s) on {meta['train_rows']} rows in "
                     f"{meta['fit_seconds']:.1f} s; class weights {shown}")
    test = result.test
    if test is None:
        items.append("no held-out test split (data.test_size = 0): nothing to evaluate.")
    else:
        extra = ""
        if test["metric"] != "macro_f1":
            extra = f" · {test['metric']} [bold]{test['value']:.4f}[/bold]"
        cv = _cv_text(cfg.source)
        items.append(
            f"held-out test set ({test['rows']} rows): macro-F1 [bold]{test['macro_f1']:.4f}"
            f"[/bold]{extra}" + (f"  ({cv})" if cv else "") + f" · {_decision_text(cfg)}"
        )
        items.extend(test_tables(test, cfg.classes, cfg.task))
    if result.out is not None:
        items.append(f"[green]saved[/green] {result.out}/{MODEL_FILE} and {result.out}/{META_FILE}")
    ml = result.mlflow
    if ml:
        line = f"MLflow: run {ml['run_id']} in experiment {ml['experiment']!r}"
        if ml.get("version") is not None:
            line += f"; registered model {ml['registered_model']!r} version {ml['version']}"
            line += f" ({ml['version_uri']})"
        items.append(line)
    return items


def predict_lines(res: PredictResult) -> list[str]:
    counts = ", ".join(f"{c}: {n}" for c, n in res.counts.items())
    return [f"[green]wrote[/green] {res.out}: {res.rows} row(s); predicted {counts}"]
