"""Common checks over every registered component: weighting schemes, losses, archs, metrics,
samplers and pruners (documented, normalised names, one registration rule)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from weightsearch import losses, metrics, models, pruners, samplers, spec, weighting  # noqa: E402
from weightsearch._registry import Registry, entry_doc  # noqa: E402

REGISTRIES: dict[str, Registry] = {
    "scheme": weighting.WEIGHTINGS,
    "loss": losses.LOSSES,
    "arch": models.MODELS,
    "metric": metrics.METRICS,
    "sampler": samplers.SAMPLERS,
    "pruner": pruners.PRUNERS,
}
ENTRIES = [(kind, name) for kind, reg in REGISTRIES.items() for name in reg.names()]
ALIASES = [(kind, a, t) for kind, reg in REGISTRIES.items() for a, t in reg.aliases().items()]
#: What each kind's docstring shows: a scheme's w_c formula, a loss's ℓ, a metric's
#: equation, an arch's layer sequence; samplers and pruners cite their source.
FORMULA = {"scheme": "w_c =", "loss": "ℓ", "metric": "=", "arch": "→"}

#: Each kind's registration decorator, called with a new name, and a name already taken.
DECORATORS = {
    "scheme": (weighting.scheme, {}, "balanced"),
    "loss": (losses.loss, {}, "focal"),
    "arch": (models.arch, {"input_kind": "tabular", "params": {}}, "mlp"),
    "metric": (metrics.metric, {}, "macro_f1"),
    "sampler": (samplers.sampler, {}, "tpe"),
    "pruner": (pruners.pruner, {}, "median"),
}


def _documented(*args, **kwargs):
    """A stand-in entry (never called): w_c = ℓ = 1 → 1."""


def _undocumented(*args, **kwargs):
    pass


def _blank(*args, **kwargs):
    """   """


@pytest.mark.parametrize(("kind", "name"), ENTRIES)
def test_every_entry_is_documented(kind: str, name: str) -> None:
    entry = REGISTRIES[kind].get(name)
    assert entry.name == name  # registered under its normalised name
    assert entry.doc.strip() and entry_doc(entry) == entry.doc.strip()
    assert FORMULA.get(kind, "") in entry.doc, f"{kind} {name!r}: no formula in its docstring"


@pytest.mark.parametrize(("kind", "name"), ENTRIES)
def test_names_are_normalised(kind: str, name: str) -> None:
    reg = REGISTRIES[kind]
    assert reg.canonical(f" {name.upper().replace('_', '-')} ") == name
    assert reg.get(name.title().replace("_", " ")) is reg.get(name)


@pytest.mark.parametrize(("kind", "alias", "target"), ALIASES)
def test_aliases_resolve_to_their_target(kind: str, alias: str, target: str) -> None:
    reg = REGISTRIES[kind]
    assert alias not in reg.names() and target in reg.names()
    assert reg.canonical(alias.upper()) == target and reg.get(alias) is reg.get(target)


def test_f1_macro_spellings() -> None:
    assert metrics.METRICS.canonical("F1-Macro") == "macro_f1"
    assert metrics.METRICS.canonical("f1_macro") == "macro_f1"


def test_spec_accepts_the_metric_alias() -> None:
    raw = {"name": "t", "data": {"source": "builtin:breast-cancer"}, "cv": {"metric": "f1_macro"}}
    assert spec.parse(raw).cv.metric == "macro_f1"


@pytest.mark.parametrize("kind", DECORATORS)
def test_decorator_refuses_an_undocumented_entry(kind: str) -> None:
    decorator, kwargs, _ = DECORATORS[kind]
    reg = REGISTRIES[kind]
    before = reg.names(True)
    for fn in (_undocumented, _blank):
        with pytest.raises(TypeError, match=rf"{reg.kind} 'brand_new' needs a docstring"):
            decorator("Brand-New", **kwargs)(fn)
    assert reg.names(True) == before and "brand_new" not in reg


@pytest.mark.parametrize("kind", DECORATORS)
def test_decorator_refuses_a_taken_name_or_alias(kind: str) -> None:
    decorator, kwargs, taken = DECORATORS[kind]
    reg = REGISTRIES[kind]
    before = reg.names(True)
    entry = reg.get(taken)
    spelt = f" {taken.upper().replace('_', '-')}"  # the same name once normalised
    with pytest.raises(ValueError, match=rf"{reg.kind} '{taken}' is already registered"):
        decorator(spelt, **kwargs)(_documented)
    with pytest.raises(ValueError, match=rf"{reg.kind} '{taken}' is already registered"):
        decorator("brand_new", aliases=(taken,), **kwargs)(_documented)
    assert reg.names(True) == before and reg.get(taken) is entry and "brand_new" not in reg


def test_registry_rules() -> None:
    reg: Registry = Registry("widget")
    reg.register("Big-One", aliases=("large",))(_documented)
    assert reg.names() == ["big_one"] and reg.get("LARGE") is _documented
    with pytest.raises(ValueError, match="widget 'big' is already registered"):
        reg.register("other", aliases=("big", "Big"))(_documented)
    with pytest.raises(ValueError, match="widget 'large' is already registered"):
        reg.register("large")(_documented)
    with pytest.raises(TypeError, match=r"widget 'bare' needs a docstring.*_undocumented"):
        reg.register("bare")(_undocumented)
    reg.register("bare", doc="w = 1 (given explicitly)")(_undocumented)  # doc= stands in
    with pytest.raises(TypeError, match="widget 'blank' needs a docstring"):
        reg.register("blank", doc=" ")(_documented)
    assert reg.names(True) == ["big_one", "bare", "large"]
    with pytest.raises(ValueError, match=r"Unknown widget 'small'; expected one of: big_one"):
        reg.get("small")


def test_decorators_check_their_arguments() -> None:
    with pytest.raises(ValueError, match=r"loss 'x': tasks must be one of .*'regression'"):
        losses.loss("x", tasks=("regression",))
    with pytest.raises(ValueError, match=r"metric 'x': tasks must be one of .*'ranking'"):
        metrics.metric("x", tasks=("ranking",))
    with pytest.raises(ValueError, match=r"arch 'x': input_kind must be one of .*'graph'"):
        models.arch("x", input_kind="graph", params={})
