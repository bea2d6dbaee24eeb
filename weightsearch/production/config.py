"""The standalone training config: :class:`TrainConfig`, read (:func:`load_config`), checked
(:func:`parse_config`, one function per section) and written as commented TOML.

Imports only numpy at import time; the component registries (Keras) are imported when a
config's components are checked.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from weightsearch.base import (
    APPLICATIONS,
    COMPONENT_KEYS,
    FINAL_MODELS,
    TASKS,
    application_problem,
)
from weightsearch.spec import Checker, SpecError, check_plugins, check_treatment_keys, dumps_toml
from weightsearch.storage import DEFAULT_MLFLOW_URI

SECTIONS = ("source", "data", "weighting", "loss", "model", "train", "decision", "tracking")
REQUIRED = ("data", "weighting", "loss", "model", "train")
DATA_KEYS = ("source", "target", "task", "test_size", "seed", "options", "classes",
             "feature_names", "input_shape", "categorical", "missing", "drop", "columns")
COLUMN_KINDS = ("numeric", "categorical")
TRAIN_KEYS = ("optimizer", "learning_rate", "batch_size", "epochs", "seed", "final")
TRACKING_KEYS = ("enabled", "mlflow_uri", "experiment", "registered_model")


class ConfigError(SpecError):
    """Problems in a training config; ``problems`` holds one line each, naming the key."""


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
    plugins: tuple[str, ...] = ()  # the study spec's plugins, imported before it is checked

    @property
    def task(self) -> str:
        return str(self.data["task"])

    @property
    def classes(self) -> list[str]:
        return list(self.data["classes"])

    @property
    def components(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            section: {key: getattr(self, section)[key],
                      "params": dict(getattr(self, section)["params"])}
            for section, key in COMPONENT_KEYS.items()
        }
        if "numeric" in self.model:
            out["model"]["numeric"] = dict(self.model["numeric"])
        out["train"] = {k: self.train[k] for k in ("learning_rate", "optimizer")}
        return out

    def params(self) -> dict[str, Any]:
        """The components as flat, dotted Optuna parameter names (a superset of the trial's
        ``params``: fixed values and defaults are included)."""
        from weightsearch.space import flatten

        return flatten(self.components)

    def decision_rule(self) -> tuple[Any, int]:
        """(threshold or ``None``, index of the positive class; 1 when none is named)."""
        pos = self.decision.get("positive")
        return self.decision.get("threshold"), 1 if pos is None else self.classes.index(pos)

    def decision_weights(self) -> list[float] | None:
        """Multiclass per-class weights w of the rule ``argmax_c w_c · p_c``, or ``None``
        (plain argmax)."""
        weights = self.decision.get("weights")
        return None if weights is None else list(weights)

    def cv_summary(self) -> str:
        """The source trial's cross-validated score, e.g. ``"CV macro_f1 0.8123 ± 0.0150"``
        (empty when unknown)."""
        value, std = self.source.get("cv_value"), self.source.get("cv_std")
        if value is None:
            return ""
        return f"CV {self.source.get('metric') or 'macro_f1'} {value:.4f}" + (
            "" if std is None else f" ± {std:.4f}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"plugins": list(self.plugins), **{s: plain(getattr(self, s)) for s in SECTIONS}}

    def to_toml(self) -> str:
        return config_toml(self)

    def treatment(self) -> dict[str, Any]:
        """``categorical``, ``missing`` and ``drop`` as ``data.load`` takes them."""
        return {k: self.data[k] for k in ("categorical", "missing", "drop")}

    def with_data(self, source: str) -> TrainConfig:
        """The same config reading its data from ``source`` (same columns and classes)."""
        data = dict(self.data, source=str(source))
        if not str(source).startswith("builtin:"):
            data["options"] = {}
        return replace(self, data=data)


def plain(value: Any) -> Any:
    """JSON/TOML-ready copies: tuples → lists, numpy scalars and arrays → Python values."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


# ---- writing ------------------------------------------------------------------------------

COMMENTS = {
    "source": "Where this config comes from: the study, the trial and its MLflow run.",
    "data": (
        "The data. `train` loads it, re-makes the study's stratified hold-out split\n"
        "(test_size, seed) and trains on the training part only. `--data PATH` replaces\n"
        "source (same columns and classes); test_size = 0.0 trains on every row.\n"
        "categorical, missing and drop treat a table's columns as the study did; columns\n"
        "records how each was treated (train checks that each keeps its kind)."
    ),
    "weighting": (
        "Class weights, recomputed on the whole training part with this scheme;\n"
        f"apply_weights: {' | '.join(APPLICATIONS)}."
    ),
    "loss": "The loss and its parameters.",
    "model": (
        "The architecture and its parameters (defaults filled in). A table's numeric columns\n"
        "are encoded as model.numeric says (standardize | quantile | piecewise_linear, with\n"
        "bins), fitted on the training data inside the model."
    ),
    "train": (
        "Optimiser and schedule. There is no validation set to stop on, so epochs is the\n"
        "median of the trial's per-fold best epochs, rounded. final: \"refit\" trains one\n"
        "model on the whole training part; \"fold_ensemble\" averages the trial's K fold\n"
        "models (each at its best epoch, saved in the trial's MLflow run): nothing to train."
    ),
    "decision": (
        "Decision rule. binary: predict `positive` when P(positive) >= threshold;\n"
        "multilabel: label on when P(label) >= threshold; multiclass: argmax of w_c * P(c)\n"
        "with the per-class weights (plain argmax without them; exported only where their\n"
        "cross-fitted CV score beat argmax)."
    ),
    "tracking": "`train` logs the model to this MLflow store and registers it as registered_model.",
}


def config_toml(cfg: TrainConfig) -> str:
    """The config as TOML (tomli-w's), each section under its comment."""
    src = cfg.source
    what = f"study {src.get('study', '?')!r}, trial {src.get('trial', '?')}"
    header = [
        f"# weightsearch training config: {what}.",
        "# Train the final model with:  python -m weightsearch train THIS_FILE --out DIR",
        "",
    ]
    if cfg.plugins:
        header += [
            "# Modules that register this config's components (beside this file, or importable).",
            dumps_toml({"plugins": list(cfg.plugins)}),
        ]
    parts = ["\n".join(header)]
    for section in SECTIONS:
        comment = "\n".join(f"# {line}" for line in COMMENTS[section].splitlines())
        parts.append(comment + "\n" + dumps_toml({section: plain(getattr(cfg, section))}))
    return "\n".join(parts)


# ---- reading and checking -----------------------------------------------------------------


def load_config(path: str | Path) -> TrainConfig:
    """Read and check a training config written by ``export`` (or edited by hand).

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


def as_config(cfg: TrainConfig | str | Path) -> TrainConfig:
    """``cfg`` itself, or the config read from that path."""
    return cfg if isinstance(cfg, TrainConfig) else load_config(cfg)


def parse_config(
    raw: dict[str, Any], source: str = "config", path: str | None = None
) -> TrainConfig:
    """Check a config mapping (the parsed TOML) and build a :class:`TrainConfig`."""
    c = Checker()
    c.unknown_keys("", raw, ("plugins", *SECTIONS))
    plugins = check_plugins(c, raw.get("plugins", []))
    _import_plugins(plugins, path, source)
    tables = {s: c.table(s, raw.get(s, {})) for s in SECTIONS}
    for s in REQUIRED:
        if s not in raw:
            c.add(s, f"missing [{s}] section.")
    src = _check_source(c, tables["source"])
    data = _check_data(c, tables["data"]) if "data" in raw else {}
    task = data.get("task")
    names = _check_names(c, tables, present=set(raw))
    apply = c.string(
        "weighting.apply_weights", tables["weighting"].get("apply_weights", "loss"), APPLICATIONS
    )
    problem = None if apply is None or task is None else application_problem(apply, task)
    if problem:
        c.add("weighting.apply_weights", problem)
    train = _check_train(c, tables["train"], seed=data.get("seed") or 0)
    decision = _check_decision(c, tables["decision"], task, data.get("classes") or [])
    tracking = _check_tracking(c, tables["tracking"], default_name=src.get("study"))
    components = _check_components(c, tables, names, data, source)
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
        plugins=plugins,
    )


def _import_plugins(plugins: tuple[str, ...], path: str | None, source: str) -> None:
    """Import ``plugins`` beside the config file (then on ``sys.path``) before its component
    names are looked up; a failure is one :class:`ConfigError` line."""
    from weightsearch.plugins import PluginError, import_plugins, search_dirs

    try:
        import_plugins(plugins, search_dirs(path, Path.cwd()))
    except PluginError as exc:
        raise ConfigError([str(exc)], source) from None


def _string_list(c: Checker, key: str, value: Any) -> list[str] | None:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        c.add(key, f"expected a non-empty list of strings, but got {value!r}.")
        return None
    return list(value)


def _check_source(c: Checker, table: dict[str, Any]) -> dict[str, Any]:
    """[source]: informational, but typed where it is read."""
    src = dict(table)
    if "trial" in src:
        c.integer("source.trial", src["trial"], 0)
    if "study" in src:
        c.string("source.study", src["study"])
    return src


def _check_data(c: Checker, d: dict[str, Any]) -> dict[str, Any]:
    c.unknown_keys("data", d, DATA_KEYS)
    data: dict[str, Any] = {}
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
        classes = _string_list(c, "data.classes", d["classes"])
        if classes and len(set(classes)) != len(classes):
            c.add("data.classes", f"lists a class twice: {classes}.")
        data["classes"] = classes
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
    treatment = check_treatment_keys(c, d)
    categorical = treatment["categorical"]
    data["categorical"] = categorical if isinstance(categorical, str) else list(categorical)
    data["missing"], data["drop"] = treatment["missing"], treatment["drop"]
    if d.get("columns") is not None:
        data["columns"] = _check_columns(c, d["columns"])
    return data


def _check_columns(c: Checker, table: Any) -> dict[str, dict[str, Any]]:
    """``[data.columns]``: ``{column = {kind = "numeric" | "categorical", ...}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, row in c.table("data.columns", table).items():
        key = f"data.columns.{name}"
        if not isinstance(row, dict):
            c.add(key, f"expected a table such as {{kind = \"numeric\"}}, but got {row!r}.")
            continue
        c.string(f"{key}.kind", row.get("kind"), COLUMN_KINDS)
        out[str(name)] = dict(row)
    return out


def _check_names(c: Checker, tables: dict[str, Any], present: set[str]) -> dict[str, str]:
    """The component names of [weighting], [loss] and [model], first, so that a bad name
    gives one clear line."""
    names: dict[str, str] = {}
    for section, key in COMPONENT_KEYS.items():
        table = tables[section]
        allowed = {"weighting": (key, "params", "apply_weights"),
                   "model": (key, "params", "numeric")}.get(section, (key, "params"))
        c.unknown_keys(section, table, allowed)
        if section not in present:
            continue
        if key not in table:
            c.add(f"{section}.{key}", "missing.")
            continue
        name = c.name(f"{section}.{key}", table[key], component_registry(section))
        if name is not None:
            names[section] = name
        c.table(f"{section}.params", table.get("params", {}))
    return names


def _check_train(c: Checker, t: dict[str, Any], *, seed: int) -> dict[str, Any]:
    """[train]'s schedule (its optimiser and learning rate are checked as components)."""
    c.unknown_keys("train", t, TRAIN_KEYS)
    return {
        "batch_size": c.integer("train.batch_size", t.get("batch_size", 64), 1),
        "epochs": c.integer("train.epochs", t.get("epochs", 10), 1),
        "seed": c.integer("train.seed", t.get("seed", seed), 0),
        "final": c.string("train.final", t.get("final", FINAL_MODELS[0]), FINAL_MODELS),
    }


def _check_decision(
    c: Checker, dec: dict[str, Any], task: str | None, classes: list[str]
) -> dict[str, Any]:
    c.unknown_keys("decision", dec, ("threshold", "positive", "weights"))
    decision: dict[str, Any] = {}
    if "weights" in dec:
        w = dec["weights"]
        ok = isinstance(w, list) and w and all(
            isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < float("inf")
            for v in w
        )
        if not ok:
            c.add("decision.weights", f"expected a list of positive numbers (one per class), "
                  f"but got {w!r}.")
        elif task != "multiclass":
            c.add("decision.weights", f"per-class decision weights are for multiclass tasks, "
                  f"but the task is {task}.")
        elif classes and len(w) != len(classes):
            c.add("decision.weights", f"expected {len(classes)} weights (one per class in "
                  f"data.classes), but got {len(w)}.")
        else:
            decision["weights"] = [float(v) for v in w]
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
        elif isinstance(thr, list) and classes and len(thr) != len(classes):
            c.add("decision.threshold", f"expected {len(classes)} per-label thresholds, "
                  f"but got {len(thr)}.")
        else:
            decision["threshold"] = [float(v) for v in thr] if isinstance(thr, list) else float(thr)
    if "positive" in dec:
        pos = c.string("decision.positive", dec["positive"])
        if task != "binary":
            c.add("decision.positive", "only a binary task has a positive class.")
        elif pos is not None and classes and pos not in classes:
            c.add("decision.positive", f"unknown class {pos!r}; expected one of: "
                  f"{', '.join(classes)}.")
        else:
            decision["positive"] = pos
    if task == "binary" and "threshold" in decision and "positive" not in dec:
        c.add("decision.positive", "missing; a binary threshold applies to P(positive class).")
    return decision


def _check_tracking(c: Checker, tr: dict[str, Any], default_name: Any) -> dict[str, Any]:
    c.unknown_keys("tracking", tr, TRACKING_KEYS)
    name = default_name or "weightsearch"
    return {
        "enabled": c.boolean("tracking.enabled", tr.get("enabled", True)),
        "mlflow_uri": c.string("tracking.mlflow_uri", tr.get("mlflow_uri", DEFAULT_MLFLOW_URI)),
        "experiment": c.string("tracking.experiment", tr.get("experiment", name)),
        "registered_model": c.string(
            "tracking.registered_model", tr.get("registered_model", name)
        ),
    }


def _check_components(
    c: Checker, tables: dict[str, Any], names: dict[str, str], data: dict[str, Any], where: str
) -> dict[str, Any]:
    """The component parameters against the registries (once every name and the task are
    known), and the architecture against the input shape."""
    components: dict[str, Any] = {}
    task = data.get("task")
    if len(names) == len(COMPONENT_KEYS) and task is not None:
        raw: dict[str, Any] = {
            section: {key: names[section], "params": _params_table(tables[section])}
            for section, key in COMPONENT_KEYS.items()
        }
        if "numeric" in tables["model"]:
            raw["model"]["numeric"] = tables["model"]["numeric"]
        raw["train"] = {k: tables["train"][k] for k in ("learning_rate", "optimizer")
                        if k in tables["train"]}
        from weightsearch.space import check_config

        try:
            components = check_config(raw, task=task, where=where)
        except SpecError as exc:
            c.problems.extend(_strip_where(line, where) for line in exc.problems)
    if "model" in names and data.get("input_shape"):
        from weightsearch.models import check_input

        try:
            check_input(names["model"], tuple(data["input_shape"]))
        except ValueError as exc:
            c.add("model.arch", str(exc))
    return components


def _params_table(table: dict[str, Any]) -> dict[str, Any]:
    params = table.get("params", {})
    return dict(params) if isinstance(params, dict) else {}


def _strip_where(line: str, where: str) -> str:
    """``"best.toml: weighting: weighting.params (x): ..."`` → ``"weighting.params (x): ..."``."""
    line = line.removeprefix(f"{where}: ")
    head, sep, rest = line.partition(": ")
    if sep and rest.startswith((f"{head}.", f"{head}:")):
        return rest
    return line


def component_registry(section: str) -> Any:
    """The registry of a component section (``weighting``, ``loss`` or ``model``)."""
    if section == "weighting":
        from weightsearch.weighting import WEIGHTINGS

        return WEIGHTINGS
    if section == "loss":
        from weightsearch.losses import LOSSES

        return LOSSES
    from weightsearch.models import MODELS

    return MODELS
