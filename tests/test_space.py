"""weightsearch.space: a spec's [space.*] tables → dotted, conditional Optuna params."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from weightsearch import spec as spec_mod
from weightsearch.space import TRAIN_PARAMS, Space, check_space, flatten
from weightsearch.spec import SpecError

SPACE: dict[str, Any] = {
    "weighting": {"scheme": ["none", "effective_number"], "beta": [0.9, 0.999]},
    "loss": {"name": ["crossentropy", "focal"], "gamma": [0.5, 3.0]},
    "model": {
        "arch": "mlp",
        "depth": [1, 3],
        "width": [8, 16],  # an int with a log-scale default
        "dropout": {"choices": [0.0, 0.25]},
        "l2": {"low": 1e-5, "high": 1e-2, "log": False},  # log-scale by default, not here
    },
    "train": {"learning_rate": [1e-4, 1e-2], "optimizer": ["adam", "sgd"]},
}

FOCAL = {
    "weighting.scheme": "effective_number",
    "weighting.effective_number.beta": 0.95,
    "loss.name": "focal",
    "loss.focal.gamma": 2.0,
    "model.arch": "mlp",
    "model.mlp.depth": 2,
    "model.mlp.width": 12,
    "model.mlp.dropout": 0.25,
    "model.mlp.l2": 1e-3,
    "train.learning_rate": 1e-3,
    "train.optimizer": "sgd",
}


def resolve(space: dict[str, Any], task: str = "binary") -> Space:
    raw = {"name": "space-test", "data": {"source": "builtin:synthetic"}, "space": space}
    return check_space(spec_mod.parse(raw), task=task, data_kind="tabular", input_shape=(6,))


@pytest.fixture(scope="module")
def space() -> Space:
    return resolve(SPACE)


def test_fixed_trial_gives_the_configuration(space: Space) -> None:
    config = space.suggest(optuna.trial.FixedTrial(FOCAL))
    assert config == {
        "weighting": {"scheme": "effective_number", "params": {"beta": 0.95}},
        "loss": {"name": "focal", "params": {"gamma": 2.0}},
        "model": {"arch": "mlp", "params": {"depth": 2, "width": 12, "dropout": 0.25, "l2": 1e-3}},
        "train": {"learning_rate": 1e-3, "optimizer": "sgd", "global_clipnorm": 0.0},
    }
    assert flatten(config) == {**FOCAL, "train.global_clipnorm": 0.0}


def test_a_parameter_is_suggested_only_under_its_choice(space: Space) -> None:
    plain = {k: v for k, v in FOCAL.items() if k not in ("loss.focal.gamma",
                                                          "weighting.effective_number.beta")}
    plain.update({"loss.name": "crossentropy", "weighting.scheme": "none"})
    config = space.suggest(optuna.trial.FixedTrial(plain))  # no gamma, no beta asked for
    assert config["loss"] == {"name": "crossentropy", "params": {}}
    assert config["weighting"] == {"scheme": "none", "params": {}}


def test_sampled_trials_have_dotted_conditional_params(space: Space) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    names: set[str] = set()
    for _ in range(30):
        trial = study.ask()
        config = space.suggest(trial)
        params = trial.params
        names |= set(params)
        assert ("loss.focal.gamma" in params) is (params["loss.name"] == "focal")
        assert ("weighting.effective_number.beta" in params) is (
            params["weighting.scheme"] == "effective_number"
        )
        flat = flatten(config)
        assert {k: flat[k] for k in params} == params  # the trial's params, as configured
        assert set(flat) - set(params) == {"train.global_clipnorm"}  # the one fixed value
        study.tell(trial, 0.0)
    assert names == set(FOCAL)  # both branches were sampled, every name dotted


def test_ranges_map_to_optuna_distributions(space: Space) -> None:
    study = optuna.create_study()
    study.enqueue_trial(FOCAL)
    trial = study.ask()
    space.suggest(trial)
    assert trial.distributions == {
        "weighting.scheme": CategoricalDistribution(["none", "effective_number"]),
        "weighting.effective_number.beta": FloatDistribution(0.9, 0.999),
        "loss.name": CategoricalDistribution(["crossentropy", "focal"]),
        "loss.focal.gamma": FloatDistribution(0.5, 3.0),
        "model.arch": CategoricalDistribution(["mlp"]),
        "model.mlp.depth": IntDistribution(1, 3),
        "model.mlp.width": IntDistribution(8, 16, log=True),
        "model.mlp.dropout": CategoricalDistribution([0.0, 0.25]),
        "model.mlp.l2": FloatDistribution(1e-5, 1e-2, log=False),
        "train.learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
        "train.optimizer": CategoricalDistribution(["adam", "sgd"]),
    }
    assert trial.params == FOCAL


def test_a_log_default_with_a_zero_low_is_searched_linearly() -> None:
    resolved = resolve({"model": {"arch": "mlp", "l2": [0.0, 0.01]}})
    dim = resolved.params["model"]["mlp"]["l2"]
    assert (dim.kind, dim.low, dim.high, dim.log) == ("float", 0.0, 0.01, False)


def test_a_stepped_range_yields_only_grid_values() -> None:
    resolved = resolve({
        "model": {"arch": "mlp", "width": {"low": 8, "high": 32, "step": 8},
                  "dropout": {"low": 0.0, "high": 0.5, "step": 0.125}},
        "train": {"learning_rate": {"low": 0.01, "high": 0.05, "step": 0.01}},  # log by default
    })
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen: dict[str, set[float]] = {"width": set(), "dropout": set(), "lr": set()}
    for _ in range(60):
        trial = study.ask()
        config = resolved.suggest(trial)
        params = config["model"]["params"]
        seen["width"].add(params["width"])
        seen["dropout"].add(params["dropout"])
        seen["lr"].add(round(config["train"]["learning_rate"], 12))
        study.tell(trial, 0.0)
    assert seen["width"] <= {8, 16, 24, 32} and len(seen["width"]) > 2
    assert seen["dropout"] <= {0.0, 0.125, 0.25, 0.375, 0.5} and len(seen["dropout"]) > 2
    assert seen["lr"] <= {0.01, 0.02, 0.03, 0.04, 0.05} and len(seen["lr"]) > 2
    assert trial.distributions["model.mlp.width"] == IntDistribution(8, 32, step=8)
    assert trial.distributions["train.learning_rate"] == FloatDistribution(0.01, 0.05, step=0.01)
    assert dict(resolved.describe())["model.mlp.width"] == "int in [8, 32] step 8"


@pytest.mark.parametrize(("value", "expected"), [
    ({"low": 1e-4, "high": 1e-2, "log": True, "step": 1e-3},
     "space.train.learning_rate: expected step or log = true, but got both"),
    ({"low": 1e-4, "high": 1e-2, "step": 0},
     "space.train.learning_rate.step: expected a number > 0"),
    ({"choices": [1e-3, 1e-2], "step": 1e-3},
     "space.train.learning_rate.step: expected a range {low, high, step}, but got choices."),
])
def test_a_bad_step_is_refused_naming_the_key(value: dict, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        resolve({"train": {"learning_rate": value}})
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems


def test_an_integer_parameter_needs_an_integer_step() -> None:
    with pytest.raises(SpecError) as info:
        resolve({"model": {"arch": "mlp", "width": {"low": 8, "high": 32, "step": 1.5}}})
    assert info.value.problems == [
        "space.model.width.step: expected an integer step for this integer parameter, "
        "but got 1.5."
    ]


def test_describe_lists_every_dimension(space: Space) -> None:
    rows = dict(space.describe())
    assert rows == {
        "weighting.scheme": "one of none, effective_number",
        "loss.name": "one of crossentropy, focal",
        "model.arch": "one of mlp",
        "weighting.effective_number.beta": "float in [0.9, 0.999]",
        "loss.focal.gamma": "float in [0.5, 3]",
        "model.mlp.depth": "int in [1, 3]",
        "model.mlp.width": "int in [8, 16] (log)",
        "model.mlp.dropout": "one of 0.0, 0.25",
        "model.mlp.l2": "float in [1e-05, 0.01]",
        "train.learning_rate": "float in [0.0001, 0.01] (log)",
        "train.optimizer": "one of adam, sgd",
        "train.global_clipnorm": "fixed 0.0",
    }
    assert len(space.describe()) == len(rows)  # one row per name


def test_train_params_left_out_keep_their_defaults() -> None:
    resolved = resolve({"model": {"arch": "mlp"}})
    fixed = {"weighting.scheme": "balanced", "loss.name": "focal", "model.arch": "mlp"}
    config = resolved.suggest(optuna.trial.FixedTrial(fixed))
    assert config["train"] == {n: p.default for n, p in TRAIN_PARAMS.items()}
    assert config["loss"] == {"name": "focal", "params": {}}  # gamma keeps the loss's default


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({"loss": {"name": "focal", "bogus": 1}},
         "space.loss.bogus: unknown key; none of focal takes 'bogus'"),
        ({"loss": {"name": "focal", "gamma": [0.5, 9.0]}},
         "space.loss.gamma (high) must be a number in [0, 5], but got 9.0."),
        ({"loss": {"name": "nope"}}, "space.loss.name: Unknown loss 'nope'"),
        ({"loss": {"name": []}}, "space.loss.name: empty list"),
        ({"model": {"arch": "mlp", "l2": {"low": 0.0, "high": 0.01, "log": True}}},
         "space.model.l2: a log-scale range needs low > 0, but got 0.0."),
        ({"model": {"arch": "mlp", "depth": [1, 2, 3.5]}},
         "space.model.depth must be an integer in [1, 4], but got 3.5."),
        ({"weighting": {"scheme": "none", "beta": [0.9, 0.99]}},
         "space.weighting.beta: unknown key; none of none takes 'beta'"),
        ({"train": {"momentum": 0.9}}, "space.train.momentum: unknown key; expected one of: "),
        ({"train": {"optimizer": ["adam", "lion"]}},
         "space.train.optimizer must be one of 'adam', 'adamw', 'rmsprop', 'sgd', but got 'lion'."),
    ],
)
def test_bad_space_entries_name_their_key(space: dict[str, Any], expected: str) -> None:
    with pytest.raises(SpecError) as info:
        resolve(space)
    assert any(expected in problem for problem in info.value.problems), info.value.problems


def test_a_loss_that_does_not_fit_the_task_names_it() -> None:
    with pytest.raises(SpecError) as info:
        resolve({"loss": {"name": ["crossentropy", "weighted_bce"]}}, task="multiclass")
    assert any(p.startswith("space.loss.name: loss 'weighted_bce' supports")
               for p in info.value.problems), info.value.problems


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(SpecError) as info:
        resolve({"loss": {"name": "focal", "bogus": 1}, "train": {"momentum": 0.9}})
    assert [p.split(":")[0] for p in info.value.problems] == [
        "space.loss.bogus", "space.train.momentum"
    ]


@pytest.mark.parametrize(("where", "rng"), [
    ("model", {"arch": "mlp", "width": {"low": 16, "high": 128, "step": 50}}),
    ("train", {"learning_rate": {"low": 0.0001, "high": 0.01, "step": 0.003}}),
])
def test_a_step_that_does_not_divide_the_range_is_refused(where, rng) -> None:
    from weightsearch import spec as spec_mod

    raw = {"name": "s", "data": {"source": "builtin:synthetic"}, "space": {where: rng}}
    with pytest.raises(spec_mod.SpecError) as err:
        spec_mod.parse(raw)
    (line,) = err.value.problems
    assert ".step: expected a step that divides high - low" in line
    key = "width" if where == "model" else "learning_rate"
    assert line.startswith(f"space.{where}.{key}.step: ")
