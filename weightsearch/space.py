"""The search space: a spec's ``[space.*]`` tables → ``trial.suggest_*`` calls.

This is the only module that calls ``suggest_*``. Parameter names are stable and dotted,
so stored studies stay resumable when a spec grows::

    weighting.scheme, weighting.<scheme>.<param>
    loss.name,        loss.<loss>.<param>
    model.arch,       model.<arch>.<param>
    model.numeric,    model.numeric.<encoding>.bins   (tables only)
    train.<param>

A parameter is suggested only when its parent choice is taken (``loss.focal.gamma`` only for
``focal``). Parameters the spec leaves out keep their defaults, except that a default arch
(no ``model.arch`` given) searches its :data:`DEFAULT_ARCH_SEARCH` parameters over all their
choices (``model.cnn.head``: gap or flatten). A trial's full configuration (suggested and
fixed values) is a plain dict::

    {"weighting": {"scheme": str, "params": {...}},
     "loss": {"name": str, "params": {...}},
     "model": {"arch": str, "params": {...}, "numeric": {"name": str, "bins": int}},
     "train": {"learning_rate": float, "optimizer": str}}

``model.numeric`` is there for a table only (data with columns): the encoding of its numeric
columns (:data:`~weightsearch.preprocessing.NUMERIC_ENCODINGS`), with ``bins`` only for the
binned encodings (:data:`BINNED`); ``model.numeric.<encoding>.bins`` is suggested only when
that encoding is taken. A table's default space keeps :data:`DEFAULT_NUMERIC`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from weightsearch._params import Param
from weightsearch.base import CHOICE_KEYS, COMPONENT_KEYS
from weightsearch.spec import Spec, SpecError, is_range

#: Training hyperparameters that are not part of a component.
TRAIN_PARAMS: dict[str, Param] = {
    # 3e-3 (was 1e-3): +0.009 CV macro-F1 on 4 real tables (B11)
    "learning_rate": Param(
        3e-3, low=0.0, high=1.0, low_open=True, log=True, doc="optimiser learning rate"
    ),
    "optimizer": Param("adam", choices=("adam", "adamw", "rmsprop", "sgd"), doc="optimiser"),
    "global_clipnorm": Param(
        0.0, low=0.0, high=1e6,
        doc="clip all gradients to this global L2 norm (0 = off); it couples the fold "
        "models, so a trial with it trains its folds one after another",
    ),
}

DEFAULT_SCHEMES = ["none", "balanced", "sqrt", "effective_number"]
DEFAULT_LOSSES = {"multilabel": ["crossentropy", "focal"], None: ["crossentropy", "focal"]}
DEFAULT_ARCH = {"tabular": "mlp", "image": "cnn", "sequence": "cnn1d"}
#: Parameters that the default arch searches over all of its choices when the spec gives
#: no ``arch`` and leaves the parameter out: ``model.cnn.head`` and ``model.cnn1d.head`` are
#: ``gap`` or ``flatten`` (GAP can stall a small conv body; see ``models.MODELS["cnn"]``).
DEFAULT_ARCH_SEARCH: dict[str, tuple[str, ...]] = {"cnn": ("head",), "cnn1d": ("head",)}

#: ``space.model.numeric``'s choices (as ``preprocessing.NUMERIC_ENCODINGS``, said here too so
#: that resolving a spec imports no Keras; tests/test_encodings.py checks they agree), the
#: ones that take ``bins``, and a table's default.
NUMERIC_CHOICES = ("standardize", "quantile", "piecewise_linear")
BINNED = ("quantile", "piecewise_linear")
DEFAULT_NUMERIC = "standardize"
BINS = Param(8, low=2, high=256, integer=True, doc="bins T of a binned numeric encoding")
NUMERIC = Param(DEFAULT_NUMERIC, choices=NUMERIC_CHOICES, doc="numeric column encoding")


@dataclass(frozen=True)
class Dim:
    """One dimension: ``fixed`` (a value), ``float``/``int`` (a range) or ``categorical``."""

    name: str
    kind: str
    value: Any = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    step: float | None = None  # a range's grid: low, low + step, ... (never with log)

    def suggest(self, trial: Any) -> Any:
        if self.kind == "fixed":
            return self.value
        if self.kind == "float":
            return trial.suggest_float(
                self.name, self.low, self.high, log=self.log, step=self.step
            )
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return trial.suggest_categorical(self.name, list(self.choices))


@dataclass
class Space:
    """A resolved search space: component choices, and per-component parameter dims."""

    choices: dict[str, Dim] = field(default_factory=dict)  # section → dim of its choice key
    params: dict[str, dict[str, dict[str, Dim]]] = field(default_factory=dict)
    train: dict[str, Dim] = field(default_factory=dict)
    numeric: Dim | None = None  # model.numeric, for a table only
    bins: dict[str, Dim] = field(default_factory=dict)  # binned encoding → its bins dim

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Sample one configuration (see the module docstring for its shape)."""
        config: dict[str, Any] = {}
        for section, key in COMPONENT_KEYS.items():
            chosen = self.choices[section].suggest(trial)
            dims = self.params[section][chosen]
            config[section] = {
                key: chosen,
                "params": {n: d.suggest(trial) for n, d in dims.items()},
            }
        if self.numeric is not None:
            encoding = self.numeric.suggest(trial)
            numeric = {"name": encoding}
            if encoding in self.bins:
                numeric["bins"] = self.bins[encoding].suggest(trial)
            config["model"]["numeric"] = numeric
        config["train"] = {n: d.suggest(trial) for n, d in self.train.items()}
        return config

    def describe(self) -> list[tuple[str, str]]:
        """(name, description) rows for display."""
        rows = [(d.name, _describe_dim(d)) for d in self.choices.values()]
        for comps in self.params.values():
            for dims in comps.values():
                rows += [(d.name, _describe_dim(d)) for d in dims.values()]
        if self.numeric is not None:
            rows.append((self.numeric.name, _describe_dim(self.numeric)))
            rows += [(d.name, _describe_dim(d)) for d in self.bins.values()]
        rows += [(d.name, _describe_dim(d)) for d in self.train.values()]
        return rows


def _describe_dim(d: Dim) -> str:
    if d.kind == "fixed":
        return f"fixed {d.value!r}"
    if d.kind == "categorical":
        return "one of " + ", ".join(map(str, d.choices))
    return f"{d.kind} in [{d.low:g}, {d.high:g}]" + (
        " (log)" if d.log else "" if d.step is None else f" step {d.step:g}"
    )


def _registries() -> dict[str, Any]:
    from weightsearch import losses, models, weighting

    return {
        "weighting": (weighting.WEIGHTINGS, weighting.scheme_params),
        "loss": (losses.LOSSES, losses.loss_params),
        "model": (models.MODELS, models.arch_params),
    }


def _dim(name: str, value: Any, param: Param, where: str, problems: list[str]) -> Dim | None:
    """Turn one spec value into a Dim, checking it against the component's Param."""
    try:
        if isinstance(value, dict) and "choices" in value:
            choices = tuple(param.check(v, where) for v in value["choices"])
            return Dim(name, "categorical", choices=choices)
        if param.choices is None and is_range(value):
            low, high = (value["low"], value["high"]) if isinstance(value, dict) else value
            param.check(low, where + " (low)")
            param.check(high, where + " (high)")
            step = value.get("step") if isinstance(value, dict) else None
            if step is not None and param.integer and step != int(step):
                problems.append(f"{where}.step: expected an integer step for this integer "
                                f"parameter, but got {step!r}.")
                return None
            # a stepped range is linear: a parameter searched on a log scale by default
            # (learning_rate) is not when the spec gives a step
            default_log = param.log and step is None
            log = bool(value.get("log", default_log)) if isinstance(value, dict) else param.log
            if log and low <= 0:
                if isinstance(value, dict) and value.get("log"):
                    problems.append(f"{where}: a log-scale range needs low > 0, but got {low}.")
                    return None
                log = False
            kind = "int" if param.integer else "float"
            return Dim(name, kind, low=low, high=high, log=log, step=step)
        if isinstance(value, list):
            choices = tuple(param.check(v, where) for v in value)
            if len(choices) == 1:
                return Dim(name, "fixed", value=choices[0])
            return Dim(name, "categorical", choices=choices)
        return Dim(name, "fixed", value=param.check(value, where))
    except ValueError as exc:
        problems.append(str(exc).replace(f"{where}: ", f"{where}: ", 1))
        return None


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, dict) and "choices" in value:
        return list(value["choices"])
    return list(value) if isinstance(value, list) else [value]


def _numeric_space(
    space: Space, table: dict[str, Any], table_data: bool, problems: list[str]
) -> None:
    """``space.model.numeric`` and ``space.model.bins`` (popped from ``table``) → the
    space's numeric dims; a table without them keeps :data:`DEFAULT_NUMERIC`."""
    given = {k: table.pop(k) for k in ("numeric", "bins") if k in table}
    if not table_data:
        for key in given:
            problems.append(
                f"space.model.{key}: numeric encodings are for tables (CSV/Parquet or "
                "DataFrame columns), but this data is arrays; remove it."
            )
        return
    where = "space.model.numeric"
    raw = given.get("numeric", DEFAULT_NUMERIC)
    names = _as_list(raw)
    if not names:
        problems.append(f"{where}: empty list; give at least one of "
                        f"{', '.join(NUMERIC_CHOICES)}.")
        return
    bad = [n for n in names if n not in NUMERIC_CHOICES]
    if bad:
        problems.append(f"{where}: expected one of {', '.join(NUMERIC_CHOICES)}, "
                        f"but got {bad[0]!r}.")
        return
    names = list(dict.fromkeys(names))
    space.numeric = (Dim("model.numeric", "fixed", value=names[0]) if len(names) == 1
                     else Dim("model.numeric", "categorical", choices=tuple(names)))
    binned = [n for n in names if n in BINNED]
    if "bins" in given and not binned:
        problems.append(
            f"space.model.bins: only {' and '.join(BINNED)} take bins, but "
            f"space.model.numeric is {', '.join(names)}."
        )
        return
    for name in binned:
        dim = _dim(f"model.numeric.{name}.bins", given.get("bins", BINS.default), BINS,
                   "space.model.bins", problems)
        if dim is None:
            return
        space.bins[name] = dim


def check_space(
    spec: Spec, *, task: str, data_kind: str, input_shape: tuple[int, ...],
    table: bool = False,
) -> Space:
    """Resolve ``spec.space`` against the registries and the data; SpecError lists problems.

    ``table``: the data is a table (it has columns), so ``space.model.numeric`` applies."""
    from weightsearch import losses, models

    problems: list[str] = []
    space = Space()
    table_data = table
    regs = _registries()
    defaults = {
        "weighting": DEFAULT_SCHEMES,
        "loss": DEFAULT_LOSSES.get(task, DEFAULT_LOSSES[None]),
        "model": [DEFAULT_ARCH[data_kind]],
    }
    for section in ("weighting", "loss", "model"):
        key = CHOICE_KEYS[section]
        table = dict(spec.space.get(section, {}))
        if section == "model":
            _numeric_space(space, table, table_data, problems)
        registry, params_of = regs[section]
        defaulted = key not in table
        raw_names = _as_list(table.pop(key, defaults[section]))
        names: list[str] = []
        for raw in raw_names:
            try:
                names.append(registry.canonical(raw))
            except ValueError as exc:
                problems.append(f"space.{section}.{key}: {exc}")
        names = list(dict.fromkeys(names))
        if not names:
            if raw_names == []:
                problems.append(f"space.{section}.{key}: empty list; give at least one.")
            continue
        for name in names:  # task / data compatibility
            if section == "loss":
                tasks = losses.LOSSES.get(name).tasks
                if task not in tasks:
                    problems.append(
                        f"space.loss.name: loss {name!r} supports {', '.join(tasks)} tasks, "
                        f"but the data is {task}."
                    )
            if section == "model":
                try:
                    models.check_input(name, tuple(input_shape))
                except ValueError as exc:
                    problems.append(f"space.model.arch: {exc}")
        space.choices[section] = Dim(f"{section}.{key}", "categorical", choices=tuple(names))
        space.params[section] = {name: {} for name in names}
        for pname, value in table.items():
            where = f"space.{section}.{pname}"
            takers = [n for n in names if pname in params_of(n)]
            if not takers:
                valid = sorted({p for n in names for p in params_of(n)})
                problems.append(
                    f"{where}: unknown key; none of {', '.join(names)} takes {pname!r} "
                    f"(their parameters: {', '.join(valid) or 'none'})."
                )
                continue
            for n in takers:
                dim = _dim(f"{section}.{n}.{pname}", value, params_of(n)[pname], where, problems)
                if dim is not None:
                    space.params[section][n][pname] = dim
        if section == "model" and defaulted:
            for name in names:
                for pname in DEFAULT_ARCH_SEARCH.get(name, ()):
                    if pname not in table:
                        choices = params_of(name)[pname].choices
                        dim = Dim(f"model.{name}.{pname}", "categorical", choices=choices)
                        space.params["model"][name][pname] = dim
    train = dict(spec.space.get("train", {}))
    for pname, value in train.items():
        where = f"space.train.{pname}"
        if pname not in TRAIN_PARAMS:
            problems.append(f"{where}: unknown key; expected one of: {', '.join(TRAIN_PARAMS)}.")
            continue
        dim = _dim(f"train.{pname}", value, TRAIN_PARAMS[pname], where, problems)
        if dim is not None:
            space.train[pname] = dim
    for pname, param in TRAIN_PARAMS.items():
        space.train.setdefault(pname, Dim(f"train.{pname}", "fixed", value=param.default))
    if problems:
        raise SpecError(problems, spec.path or spec.name)
    return space


def check_config(config: dict[str, Any], *, task: str, where: str = "config") -> dict[str, Any]:
    """Validate a full trial configuration (as exported) against the registries."""
    from weightsearch import losses, models, weighting
    from weightsearch._params import check_params

    problems: list[str] = []
    out: dict[str, Any] = {}
    for section, key, registry, params_of in (
        ("weighting", "scheme", weighting.WEIGHTINGS, weighting.scheme_params),
        ("loss", "name", losses.LOSSES, losses.loss_params),
        ("model", "arch", models.MODELS, models.arch_params),
    ):
        part = config.get(section)
        if not isinstance(part, dict) or key not in part:
            problems.append(f"{where}: {section}.{key} is missing.")
            continue
        try:
            name = registry.canonical(part[key])
            params = check_params(
                dict(part.get("params", {})), params_of(name), f"{section}.params ({name})"
            )
            out[section] = {key: name, "params": params}
        except ValueError as exc:
            problems.append(f"{where}: {section}: {exc}")
    model = config.get("model")
    if isinstance(model, dict) and "numeric" in model and "model" in out:
        try:
            out["model"]["numeric"] = check_numeric(model["numeric"], "model.numeric")
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    try:
        out["train"] = check_params_table(config.get("train", {}))
    except ValueError as exc:
        problems.append(f"{where}: train: {exc}")
    if "loss" in out and task not in losses.LOSSES.get(out["loss"]["name"]).tasks:
        problems.append(f"{where}: loss {out['loss']['name']!r} does not support {task} data.")
    if problems:
        raise SpecError(problems, where)
    return out


def check_numeric(value: Any, where: str = "model.numeric") -> dict[str, Any]:
    """A configuration's ``{"name": encoding, "bins": T}`` (``bins`` for :data:`BINNED`
    encodings only, default 8), checked; ``ValueError`` naming ``where``."""
    if not isinstance(value, dict) or "name" not in value:
        raise ValueError(f"{where}: expected a table {{name = ..., bins = ...}}, "
                         f"but got {value!r}.")
    unknown = sorted(set(value) - {"name", "bins"})
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected name and bins.")
    name = value["name"]
    if name not in NUMERIC_CHOICES:
        raise ValueError(f"{where}.name: expected one of {', '.join(NUMERIC_CHOICES)}, "
                         f"but got {name!r}.")
    if name not in BINNED:
        if "bins" in value:
            raise ValueError(f"{where}.bins: only {' and '.join(BINNED)} take bins, "
                             f"but the encoding is {name!r}.")
        return {"name": name}
    return {"name": name, "bins": BINS.check(value.get("bins", BINS.default), f"{where}.bins")}


def check_params_table(train: dict[str, Any]) -> dict[str, Any]:
    from weightsearch._params import check_params

    return check_params(dict(train), TRAIN_PARAMS, "train")


def flatten(config: dict[str, Any]) -> dict[str, Any]:
    """A configuration as flat params named like the search space's Optuna params.

    ``{"loss": {"name": "focal", "params": {"gamma": 2}}}`` →
    ``{"loss.name": "focal", "loss.focal.gamma": 2}``, so a trial's ``params`` are a subset.
    A table's ``model.numeric`` ``{"name": "quantile", "bins": 8}`` →
    ``{"model.numeric": "quantile", "model.numeric.quantile.bins": 8}``.
    """
    out: dict[str, Any] = {}
    for section, part in config.items():
        choice = next((v for k, v in part.items() if k != "params"), None)
        for key, value in part.items():
            if key == "params":
                out.update({f"{section}.{choice}.{k}": v for k, v in value.items()})
            elif section == "model" and key == "numeric":
                out["model.numeric"] = value["name"]
                if "bins" in value:
                    out[f"model.numeric.{value['name']}.bins"] = value["bins"]
            else:
                out[f"{section}.{key}"] = value
    return out
