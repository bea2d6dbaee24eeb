"""Study specs: TOML → frozen dataclasses, with every structural check.

This module imports no keras, optuna or mlflow. Names of schemes, losses and archs are
resolved against their registries by :func:`weightsearch.space.check_space`.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from weightsearch._registry import normalise_name
from weightsearch.base import (
    APPLICATIONS,
    CATEGORICAL_AUTO,
    FINAL_MODELS,
    MISSING_MODES,
    SPACE_SECTIONS,
    TASKS,
)
from weightsearch.metrics import METRICS
from weightsearch.pruners import PRUNERS
from weightsearch.samplers import SAMPLERS
from weightsearch.storage import DEFAULT_MLFLOW_URI, DEFAULT_STORAGE


class SpecError(ValueError):
    """One or more problems in a study spec; ``problems`` holds one line each."""

    def __init__(self, problems: list[str], source: str = "spec") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(f"{source}: {p}" for p in self.problems))


@dataclass(frozen=True)
class DataSpec:
    source: str
    target: str | tuple[str, ...] | None = None
    task: str | None = None
    test_size: float = 0.2
    options: dict[str, Any] = field(default_factory=dict)
    categorical: str | tuple[str, ...] = CATEGORICAL_AUTO
    missing: str = "impute"
    drop: tuple[str, ...] = ()

    def treatment(self) -> dict[str, Any]:
        """``categorical``, ``missing`` and ``drop`` as ``data.load`` takes them."""
        return {"categorical": self.categorical if isinstance(self.categorical, str)
                else list(self.categorical), "missing": self.missing, "drop": list(self.drop)}


@dataclass(frozen=True)
class CVSpec:
    folds: int = 5
    epochs: int = 30
    batch_size: int = 64
    patience: int = 5
    metric: str = "macro_f1"
    tune_threshold: bool = True
    apply_weights: str = "loss"
    parallel_folds: str | bool = "auto"


#: The pruner of a spec that names none, by engine (normalised name, aliases included): the
#: keras-tuner engine prunes only with its own Hyperband, so it gets "none".
DEFAULT_PRUNERS = {"optuna": "median", "keras_tuner": "none", "kerastuner": "none", "kt": "none"}


def default_pruner(engine: str) -> str:
    """The pruner a spec gets when ``search.pruner`` is not given (:data:`DEFAULT_PRUNERS`)."""
    return DEFAULT_PRUNERS.get(normalise_name(engine), SearchSpec.pruner)


@dataclass(frozen=True)
class SearchSpec:
    n_trials: int = 20
    timeout: float | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    storage: str = DEFAULT_STORAGE
    engine: str = "optuna"
    n_startup_trials: int = 5
    max_consecutive_failures: int = 5
    heartbeat_interval: int = 30
    grace_period: int = 90
    trials_per_process: int = 0
    baseline_first: bool = True
    final: str = "refit"


@dataclass(frozen=True)
class TrackingSpec:
    enabled: bool = True
    mlflow_uri: str = DEFAULT_MLFLOW_URI
    experiment: str | None = None


@dataclass(frozen=True)
class Spec:
    name: str
    data: DataSpec
    seed: int = 0
    description: str = ""
    cv: CVSpec = field(default_factory=CVSpec)
    search: SearchSpec = field(default_factory=SearchSpec)
    tracking: TrackingSpec = field(default_factory=TrackingSpec)
    # section → {key: value}; values are scalars (fixed), lists (categorical or [low, high])
    # or tables {low, high, log} / {choices}.
    space: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: str | None = None
    # modules imported before the space is checked (weightsearch.plugins)
    plugins: tuple[str, ...] = ()

    @property
    def experiment(self) -> str:
        return self.tracking.experiment or self.name

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> Spec:
        """A copy with top-level fields or dotted ``section.key`` fields changed."""
        import dataclasses

        top: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for key, value in changes.items():
            if "." in key:
                section, sub = key.split(".", 1)
                nested.setdefault(section, {})[sub] = value
            else:
                top[key] = value
        for section, subs in nested.items():
            top[section] = dataclasses.replace(getattr(self, section), **subs)
        return dataclasses.replace(self, **top)


# ---- field checks -------------------------------------------------------------------------

_SECTION_FIELDS: dict[str, type] = {
    "data": DataSpec,
    "cv": CVSpec,
    "search": SearchSpec,
    "tracking": TrackingSpec,
}
_TOP_KEYS = (
    "name", "seed", "description", "plugins", "data", "cv", "search", "tracking", "space"
)


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


class Checker:
    """Collects every problem of a parsed TOML table, one line each: ``key: message``."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def integer(self, key: str, value: Any, low: int, high: int | None = None) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(key, f"expected an integer, but got {_type_name(value)} ({value!r}).")
            return None
        if value < low or (high is not None and value > high):
            rng = f">= {low}" if high is None else f"in [{low}, {high}]"
            self.add(key, f"must be an integer {rng}, but got {value}.")
            return None
        return value

    def number(
        self, key: str, value: Any, low: float, high: float, high_open: bool = False
    ) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add(key, f"expected a number, but got {_type_name(value)} ({value!r}).")
            return None
        if not (
            math.isfinite(value) and low <= value and (value < high if high_open else value <= high)
        ):
            close = ")" if high_open else "]"
            self.add(key, f"must be a number in [{low:g}, {high:g}{close}, but got {value!r}.")
            return None
        return float(value)

    def string(self, key: str, value: Any, choices: tuple[str, ...] | None = None) -> str | None:
        if not isinstance(value, str):
            self.add(key, f"expected a string, but got {_type_name(value)} ({value!r}).")
            return None
        if choices is not None:
            norm = value.strip().lower().replace("-", "_")
            lookup = {c.replace("-", "_"): c for c in choices}
            if norm not in lookup:
                self.add(key, f"unknown value {value!r}; expected one of: {', '.join(choices)}.")
                return None
            return lookup[norm]
        if not value.strip():
            self.add(key, "must not be empty.")
            return None
        return value

    def name(self, key: str, value: Any, registry: Any) -> str | None:
        """``value`` resolved against ``registry`` (normalised, aliases followed)."""
        if not isinstance(value, str):
            self.add(key, f"expected a string, but got {_type_name(value)} ({value!r}).")
            return None
        try:
            return str(registry.canonical(value))
        except ValueError as exc:
            self.add(key, str(exc))
            return None

    def boolean(self, key: str, value: Any) -> bool | None:
        if not isinstance(value, bool):
            self.add(key, f"expected true or false, but got {_type_name(value)} ({value!r}).")
            return None
        return value

    def unknown_keys(self, where: str, table: dict[str, Any], allowed: tuple[str, ...]) -> None:
        for key in table:
            if key not in allowed:
                prefix = f"{where}." if where else ""
                self.add(f"{prefix}{key}", f"unknown key; expected one of: {', '.join(allowed)}.")

    def table(self, key: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.add(key, f"expected a table ([{key}]), but got {_type_name(value)}.")
            return {}
        return value


def _check_data(c: Checker, raw: dict[str, Any]) -> DataSpec | None:
    c.unknown_keys("data", raw, ("source", "target", "task", "test_size", "options",
                                 "categorical", "missing", "drop"))
    if "source" not in raw:
        c.add(
            "data.source",
            "missing; expected 'builtin:<name>' or a path to a CSV, Parquet or NPZ file.",
        )
        return None
    source = c.string("data.source", raw["source"])
    target = raw.get("target")
    if target is not None:
        if isinstance(target, list):
            if not target or not all(isinstance(t, str) for t in target):
                c.add("data.target", "expected a column name or a non-empty list of column names.")
            target = tuple(target)
        elif not isinstance(target, str):
            c.add("data.target", f"expected a column name or a list of them, but got {target!r}.")
    task = raw.get("task")
    if task is not None:
        task = c.string("data.task", task, TASKS)
    test_size = c.number("data.test_size", raw.get("test_size", 0.2), 0.0, 0.9)
    options = c.table("data.options", raw.get("options", {}))
    treatment = check_treatment_keys(c, raw)
    if source is None or test_size is None:
        return None
    return DataSpec(source=source, target=target, task=task, test_size=test_size, options=options,
                    categorical=treatment["categorical"], missing=treatment["missing"],
                    drop=tuple(treatment["drop"]))


def check_treatment_keys(c: Checker, raw: dict[str, Any]) -> dict[str, Any]:
    """``data.categorical`` (``"auto"`` or column names, as a tuple), ``data.missing`` and
    ``data.drop`` of a spec or training config's ``[data]``, defaults filled in."""
    categorical = raw.get("categorical", CATEGORICAL_AUTO)
    if isinstance(categorical, str) and categorical.strip().lower() == CATEGORICAL_AUTO:
        categorical = CATEGORICAL_AUTO  # normalised as data.missing is
    elif isinstance(categorical, list | tuple) and all(isinstance(n, str) for n in categorical):
        categorical = tuple(categorical)
    elif categorical != CATEGORICAL_AUTO:
        c.add("data.categorical",
              f"expected \"auto\" or a list of column names, but got {categorical!r}.")
        categorical = CATEGORICAL_AUTO
    missing = c.string("data.missing", raw.get("missing", "impute"), MISSING_MODES) or "impute"
    drop = raw.get("drop", [])
    if not (isinstance(drop, list | tuple) and all(isinstance(n, str) for n in drop)):
        c.add("data.drop", f"expected a list of column names, but got {drop!r}.")
        drop = []
    return {"categorical": categorical, "missing": missing, "drop": list(drop)}


def _check_cv(c: Checker, raw: dict[str, Any]) -> CVSpec:
    d = CVSpec()
    c.unknown_keys("cv", raw, tuple(asdict(d)))
    folds = c.integer("cv.folds", raw.get("folds", d.folds), 2, 50)
    epochs = c.integer("cv.epochs", raw.get("epochs", d.epochs), 1)
    batch = c.integer("cv.batch_size", raw.get("batch_size", d.batch_size), 1)
    patience = c.integer("cv.patience", raw.get("patience", d.patience), 0)
    metric = c.name("cv.metric", raw.get("metric", d.metric), METRICS)
    tune = c.boolean("cv.tune_threshold", raw.get("tune_threshold", d.tune_threshold))
    apply = c.string("cv.apply_weights", raw.get("apply_weights", d.apply_weights), APPLICATIONS)
    parallel = raw.get("parallel_folds", d.parallel_folds)
    if not isinstance(parallel, bool) and parallel != "auto":
        c.add("cv.parallel_folds", f"expected \"auto\", true or false, but got {parallel!r}.")
        parallel = d.parallel_folds
    return CVSpec(
        folds=folds or d.folds,
        epochs=epochs or d.epochs,
        batch_size=batch or d.batch_size,
        patience=d.patience if patience is None else patience,
        metric=metric or d.metric,
        tune_threshold=d.tune_threshold if tune is None else tune,
        apply_weights=apply or d.apply_weights,
        parallel_folds=parallel,
    )


def _check_search(c: Checker, raw: dict[str, Any]) -> SearchSpec:
    d = SearchSpec()
    c.unknown_keys("search", raw, tuple(asdict(d)))
    n_trials = c.integer("search.n_trials", raw.get("n_trials", d.n_trials), 1)
    timeout = raw.get("timeout")
    if timeout is not None:
        timeout = c.number("search.timeout", timeout, 1e-9, math.inf, high_open=True)
    sampler = c.name("search.sampler", raw.get("sampler", d.sampler), SAMPLERS)
    # the engine's name is checked against weightsearch.engines.ENGINES, which sits above
    # this module (engines run studies); here it only has to be a string
    engine = c.string("search.engine", raw.get("engine", d.engine))
    pruner = c.name(
        "search.pruner", raw.get("pruner", default_pruner(engine or d.engine)), PRUNERS
    )
    storage = c.string("search.storage", raw.get("storage", d.storage))
    startup = c.integer(
        "search.n_startup_trials", raw.get("n_startup_trials", d.n_startup_trials), 0
    )
    max_fail = c.integer(
        "search.max_consecutive_failures",
        raw.get("max_consecutive_failures", d.max_consecutive_failures),
        0,
    )
    heartbeat = c.integer(
        "search.heartbeat_interval", raw.get("heartbeat_interval", d.heartbeat_interval), 1
    )
    grace = c.integer("search.grace_period", raw.get("grace_period", d.grace_period), 1)
    baseline = c.boolean("search.baseline_first", raw.get("baseline_first", d.baseline_first))
    per_process = c.integer(
        "search.trials_per_process", raw.get("trials_per_process", d.trials_per_process), 0
    )
    final = c.string("search.final", raw.get("final", d.final), FINAL_MODELS)
    if heartbeat and grace and grace <= heartbeat:
        c.add("search.grace_period", f"must exceed search.heartbeat_interval ({heartbeat}), "
              f"but got {grace}.")
    return SearchSpec(
        n_trials=n_trials or d.n_trials,
        timeout=timeout,
        sampler=sampler or d.sampler,
        pruner=pruner or d.pruner,
        storage=storage or d.storage,
        engine=engine or d.engine,
        n_startup_trials=d.n_startup_trials if startup is None else startup,
        max_consecutive_failures=d.max_consecutive_failures if max_fail is None else max_fail,
        heartbeat_interval=heartbeat or d.heartbeat_interval,
        grace_period=grace or d.grace_period,
        trials_per_process=per_process or 0,
        baseline_first=d.baseline_first if baseline is None else baseline,
        final=final or d.final,
    )


def _check_tracking(c: Checker, raw: dict[str, Any]) -> TrackingSpec:
    d = TrackingSpec()
    c.unknown_keys("tracking", raw, tuple(asdict(d)))
    enabled = c.boolean("tracking.enabled", raw.get("enabled", d.enabled))
    uri = c.string("tracking.mlflow_uri", raw.get("mlflow_uri", d.mlflow_uri))
    exp = raw.get("experiment")
    if exp is not None:
        exp = c.string("tracking.experiment", exp)
    return TrackingSpec(
        enabled=d.enabled if enabled is None else enabled,
        mlflow_uri=uri or d.mlflow_uri,
        experiment=exp,
    )


def _check_space_value(c: Checker, key: str, value: Any) -> None:
    """Shape checks only: names and ranges are checked against the registries later."""
    if isinstance(value, dict):
        allowed = ("low", "high", "log", "step", "choices")
        c.unknown_keys(key, value, allowed)
        if "choices" in value:
            if not isinstance(value["choices"], list) or not value["choices"]:
                c.add(f"{key}.choices", "expected a non-empty list.")
            if "step" in value:
                c.add(f"{key}.step", "expected a range {low, high, step}, but got choices.")
            return
        if "low" not in value or "high" not in value:
            c.add(key, "a range table needs both low and high, e.g. {low = 0.1, high = 1.0}.")
            return
        _check_range(c, key, [value["low"], value["high"]])
        if "log" in value:
            c.boolean(f"{key}.log", value["log"])
        if "step" in value:
            _check_step(c, key, value)
    elif isinstance(value, list):
        if not value:
            c.add(key, "empty list; give one value, a list of choices, or a [low, high] range.")
        elif len({type(v) for v in value}) > 1 and not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            c.add(key, f"mixed types in list {value!r}.")
    elif not isinstance(value, str | int | float | bool):
        c.add(key, f"expected a value, a list or a table, but got {_type_name(value)}.")


def _check_range(c: Checker, key: str, bounds: list[Any]) -> None:
    low, high = bounds
    if any(isinstance(b, bool) or not isinstance(b, int | float) for b in (low, high)):
        c.add(key, f"a range needs two numbers [low, high], but got {bounds!r}.")
    elif not low < high:
        c.add(key, f"empty range [{low}, {high}]: low must be smaller than high.")


def _check_step(c: Checker, key: str, value: dict[str, Any]) -> None:
    step = value["step"]
    if isinstance(step, bool) or not isinstance(step, int | float) or not 0 < step < math.inf:
        c.add(f"{key}.step", f"expected a number > 0, but got {step!r}.")
    elif value.get("log") is True:
        c.add(key, "expected step or log = true, but got both (a stepped range is sampled "
                   "linearly); drop one.")
    else:
        low, high = value.get("low"), value.get("high")
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
            span = (high - low) / step
            if abs(span - round(span)) > 1e-9 * max(1.0, abs(span)):
                c.add(f"{key}.step", f"expected a step that divides high - low = {high - low:g} "
                      f"(so that high can be drawn), but got {step!r}.")


def is_range(value: Any) -> bool:
    """A two-number list or a {low, high} table is a range; other lists are choices."""
    if isinstance(value, dict):
        return "low" in value and "high" in value
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )


def check_plugins(c: Checker, value: Any) -> tuple[str, ...]:
    """``plugins``: a list of importable module names (``"my_arch"``, ``"pkg.archs"``)."""
    items = value if isinstance(value, list) else None
    bad = [v for v in items or [] if not isinstance(v, str)
           or not all(part.isidentifier() for part in v.split("."))]
    if items is None or bad:
        what = _type_name(value) if items is None else repr(bad[0])
        c.add("plugins", f"expected a list of module names such as [\"my_arch\"], but got {what}.")
        return ()
    return tuple(dict.fromkeys(items))


def _check_space(c: Checker, raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    c.unknown_keys("space", raw, SPACE_SECTIONS)
    space: dict[str, dict[str, Any]] = {}
    for section in SPACE_SECTIONS:
        table = c.table(f"space.{section}", raw.get(section, {}))
        for key, value in table.items():
            where = f"space.{section}.{key}"
            _check_space_value(c, where, value)
            if isinstance(value, list) and len(value) == 2 and is_range(value):
                _check_range(c, where, value)
        space[section] = dict(table)
    return space


def parse(raw: dict[str, Any], source: str = "spec", path: str | None = None) -> Spec:
    """Check a spec mapping and build a :class:`Spec`; :class:`SpecError` lists all problems."""
    c = Checker()
    c.unknown_keys("", raw, _TOP_KEYS)
    name = c.string("name", raw["name"]) if "name" in raw else None
    if "name" not in raw:
        c.add("name", "missing; every study needs a name (the Optuna study and MLflow experiment).")
    seed = c.integer("seed", raw.get("seed", 0), 0)
    description = raw.get("description", "")
    if not isinstance(description, str):
        c.add("description", f"expected a string, but got {_type_name(description)}.")
        description = ""
    data = None
    if "data" not in raw:
        c.add(
            "data", "missing [data] section; it needs at least source = 'builtin:<name>' or a path."
        )
    else:
        data = _check_data(c, c.table("data", raw["data"]))
    cv = _check_cv(c, c.table("cv", raw.get("cv", {})))
    search = _check_search(c, c.table("search", raw.get("search", {})))
    tracking = _check_tracking(c, c.table("tracking", raw.get("tracking", {})))
    space = _check_space(c, c.table("space", raw.get("space", {})))
    plugins = check_plugins(c, raw.get("plugins", []))
    if c.problems or data is None or name is None:
        raise SpecError(c.problems, source)
    return Spec(
        name=name,
        seed=seed or 0,
        description=description,
        data=data,
        cv=cv,
        search=search,
        tracking=tracking,
        space=space,
        path=path,
        plugins=plugins,
    )


def load(path: str | Path) -> Spec:
    """Read and check a TOML spec file."""
    return parse(read(path), source=str(path), path=str(Path(path)))


def read(path: str | Path) -> dict[str, Any]:
    """A TOML spec file's tables, unchecked; :class:`SpecError` if it cannot be read."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(
            ["file not found (expected a TOML study spec, e.g. studies/quickstart.toml)."],
            str(path),
        )
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError([f"malformed TOML: {exc}."], str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([f"cannot read the file: {exc}."], str(path)) from None
    return raw


def dumps_toml(data: dict[str, Any]) -> str:
    """``data`` as TOML, written by tomli-w. TOML has no null: a ``None`` table value is left
    out, and ``None`` in a list is a ValueError naming its key."""
    return tomli_w.dumps(toml_ready(data))


def toml_ready(value: Any, key: str = "") -> Any:
    """``value`` without its ``None`` table values; ValueError for ``None`` in a list."""
    if isinstance(value, dict):
        return {k: toml_ready(v, f"{key}.{k}" if key else str(k))
                for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        if any(v is None for v in value):
            raise ValueError(f"{key}: TOML has no null; expected a list of values, but got "
                             f"None in {list(value)!r}")
        return [toml_ready(v, key) for v in value]
    return value
