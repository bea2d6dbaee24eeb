"""The KerasTuner engine: spec checks, the space mapping, the search loop, and a real study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from weightsearch import engines
from weightsearch.cli import main
from weightsearch.engines import keras_tuner as ktengine
from weightsearch.spec import SpecError, parse
from weightsearch.study import Prepared


def _kt_spec(tiny_spec, name: str = "kt", **search: str) -> Path:
    """The shared tiny spec, switched to the keras-tuner engine (search keys replaced)."""
    path = tiny_spec(name=name, n_trials=2)
    text = path.read_text().replace(
        'sampler = "random"\npruner = "none"',
        "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in search.items()),
    )
    path.write_text(text.replace("[search]", '[search]\nengine = "keras-tuner"'))
    return path


def _spec(**search) -> object:
    raw = {"name": "s", "data": {"source": "builtin:synthetic"}, "search": search}
    return parse({**raw, "search": {"engine": "keras-tuner", **search}})


# ---------------------------------------------------------------------------- spec checks


@pytest.mark.parametrize(
    ("sampler", "pruner", "algo"),
    [
        ("tpe", "none", "bayesian"),
        ("gp", "none", "bayesian"),
        ("random", "none", "random"),
        ("random", "hyperband", "hyperband"),
    ],
)
def test_algorithm_from_the_existing_spec_fields(sampler: str, pruner: str, algo: str) -> None:
    assert ktengine.algorithm(_spec(sampler=sampler, pruner=pruner)) == algo


def test_what_kerastuner_cannot_express_is_rejected_by_key() -> None:
    with pytest.raises(SpecError) as err:
        ktengine.algorithm(_spec(sampler="nsga2", pruner="median"))
    problems = err.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("search.sampler: KerasTuner has no 'nsga2' sampler")
    assert problems[1].startswith("search.pruner: the keras-tuner engine cannot use the 'median'")
    for sampler in ("cmaes", "qmc"):
        with pytest.raises(SpecError, match=f"search.sampler: KerasTuner has no '{sampler}'"):
            ktengine.algorithm(_spec(sampler=sampler, pruner="none"))
    for pruner in ("percentile", "successive_halving", "wilcoxon"):
        with pytest.raises(SpecError, match="search.pruner"):
            ktengine.algorithm(_spec(sampler="random", pruner=pruner))
    with pytest.raises(SpecError, match="Hyperband draws configurations at random"):
        ktengine.algorithm(_spec(sampler="tpe", pruner="hyperband"))


def test_study_rejects_a_bad_keras_tuner_spec_before_writing_anything(
    tiny_spec, tmp_path: Path, capsys
) -> None:
    spec = _kt_spec(tiny_spec, sampler="tpe", pruner="median")
    assert main(["study", str(spec)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {spec}: search.pruner: the keras-tuner engine cannot use the 'median' pruner; "
        "use 'none' (Bayesian optimisation or random search) or 'hyperband'."
    ]
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()


def test_the_default_pruner_follows_the_engine(tiny_spec, capsys) -> None:
    from weightsearch.spec import DEFAULT_PRUNERS, default_pruner

    # every engine name (aliases too) has its default, so a new engine cannot miss one
    assert {n for n in engines.ENGINES.names(with_aliases=True)} <= set(DEFAULT_PRUNERS)
    for engine in ("keras-tuner", "kerastuner", "KT"):
        spec = parse({"name": "s", "data": {"source": "builtin:synthetic"},
                      "search": {"engine": engine}})
        assert spec.search.pruner == "none" == default_pruner(engine)
        assert ktengine.algorithm(spec) == "bayesian"  # engine = "keras-tuner" alone is valid
    optuna_spec = parse({"name": "s", "data": {"source": "builtin:synthetic"}})
    assert optuna_spec.search.pruner == "median"
    chosen = _spec(pruner="hyperband", sampler="random")
    assert chosen.search.pruner == "hyperband"  # a pruner given is kept
    path = _kt_spec(tiny_spec)  # engine = "keras-tuner", no sampler and no pruner
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "engine keras-tuner, sampler tpe, pruner none (the keras-tuner engine's default)" in out


# ---------------------------------------------------------------------------- space mapping


@pytest.fixture
def prepared(tiny_spec):
    """A prepared tiny keras-tuner study (data loaded, space resolved; nothing trained)."""
    from weightsearch.spec import load

    path = _kt_spec(tiny_spec, sampler="random", pruner="none")
    extra = "\n[space.train]\nlearning_rate = { low = 0.0001, high = 0.01, log = true }\n"
    path.write_text(path.read_text() + extra)
    return engines.prepare(load(path))


def test_hyperparameters_mirror_the_space_with_conditions(prepared) -> None:
    hp = ktengine.hyperparameters(prepared.space)
    by_name = {h.name: h for h in hp.space}
    assert set(by_name) == {
        "weighting.scheme",
        "weighting.effective_number.beta",
        "loss.name",
        "loss.focal.gamma",
        "model.arch",
        "model.mlp.width",
        "train.learning_rate",
    }
    assert list(by_name["weighting.scheme"].values) == ["none", "balanced", "effective_number"]
    beta = by_name["weighting.effective_number.beta"]
    assert [(c.name, list(c.values)) for c in beta.conditions] == [
        ("weighting.scheme", ["effective_number"])
    ]
    assert (beta.min_value, beta.max_value) == (0.9, 0.999)
    gamma = by_name["loss.focal.gamma"]
    assert [(c.name, list(c.values)) for c in gamma.conditions] == [("loss.name", ["focal"])]
    assert by_name["model.mlp.width"].__class__.__name__ == "Int"
    assert by_name["train.learning_rate"].sampling == "log"
    assert not by_name["train.learning_rate"].conditions


def test_a_stepped_range_is_a_stepped_kerastuner_hyperparameter() -> None:
    from weightsearch.space import check_space

    spec = parse({"name": "s", "data": {"source": "builtin:synthetic"}, "space": {
        "model": {"arch": "mlp", "width": {"low": 8, "high": 32, "step": 8},
                  "dropout": {"low": 0.0, "high": 0.5, "step": 0.125}},
    }})
    space = check_space(spec, task="binary", data_kind="tabular", input_shape=(6,))
    by_name = {h.name: h for h in ktengine.hyperparameters(space).space}
    width, dropout = by_name["model.mlp.width"], by_name["model.mlp.dropout"]
    assert (width.step, width.sampling) == (8, "linear")  # width is log-scale by default
    assert dropout.step == 0.125
    rng = np.random.default_rng(0)
    widths = {width.prob_to_value(p) for p in rng.random(50)}
    dropouts = {dropout.prob_to_value(p) for p in rng.random(50)}
    assert widths <= {8, 16, 24, 32} and len(widths) > 2
    assert dropouts <= {0.0, 0.125, 0.25, 0.375, 0.5} and len(dropouts) > 2
    def dropout_space(**step: float) -> object:
        model = {"arch": "mlp", "dropout": {"low": 0.0, "high": 0.5, **step}}
        return check_space(spec.replace(space={"model": model}), task="binary",
                           data_kind="tabular", input_shape=(6,))

    # another grid is another KerasTuner project
    assert ktengine.space_hash(dropout_space()) != ktengine.space_hash(dropout_space(step=0.1))


def test_params_from_keeps_active_values_as_plain_python_in_range(prepared) -> None:
    hp = ktengine.hyperparameters(prepared.space)
    hp.values.update(
        {
            "weighting.scheme": "effective_number",
            "weighting.effective_number.beta": np.float64(0.9990000000001),  # float error
            "loss.name": "crossentropy",
            "loss.focal.gamma": 2.0,  # inactive: loss is crossentropy
            "model.arch": "mlp",
            "model.mlp.width": 12,
            "train.learning_rate": 1e-3,
            "tuner/epochs": 2,
        }
    )
    params = ktengine.params_from(hp, prepared.space)
    assert params == {
        "weighting.scheme": "effective_number",
        "weighting.effective_number.beta": 0.999,
        "loss.name": "crossentropy",
        "model.arch": "mlp",
        "model.mlp.width": 12,
        "train.learning_rate": 1e-3,
    }
    assert type(params["weighting.effective_number.beta"]) is float


def test_mixed_int_float_choices_become_floats_and_the_objective_is_max(prepared) -> None:
    import keras_tuner as kt

    from weightsearch.space import Dim

    problems: list[str] = []
    dim = Dim("loss.focal.gamma", "categorical", choices=(1, 2.5))
    assert ktengine.kt_choices(dim, "w", problems) == [1.0, 2.5] and not problems
    hp = ktengine.hyperparameters(prepared.space)
    oracle = ktengine.make_oracle(kt, prepared.spec, "random", hp)
    assert oracle.objective.name == "val_macro_f1" and oracle.objective.direction == "max"


# ---------------------------------------------------------------------------- the search loop


@pytest.fixture
def fast_cv(monkeypatch):
    """Replace the CV (training) by a deterministic score, so the loop runs in a second."""
    from weightsearch import objective, training

    calls: list[dict] = []

    def cross_validate(self, trial, config, run):
        calls.append({"epochs": self.spec.cv.epochs, "config": config})
        if getattr(self, "fail", False):
            raise objective.TrialFailed("simulated NaN loss")
        value = 0.5 + 0.1 * (config["weighting"]["scheme"] == "balanced")
        value += 0.01 * self.spec.cv.epochs
        trial.set_user_attr("fold_values", [value, value])
        return value

    monkeypatch.setattr(objective.Objective, "_cross_validate", cross_validate)
    monkeypatch.setattr(training, "clear", lambda freeze=False: None)  # no gc.collect: fast
    return calls


def _run(prepared, tmp_path: Path, n: int, **changes):
    spec = prepared.spec.replace(**{"search.storage": f"sqlite:///{tmp_path}/kt.db", **changes})
    prepared = Prepared(
        spec, prepared.data, prepared.train, prepared.test_idx, prepared.space
    )
    return engines.run_study(prepared, n_trials=n)


def test_bayesian_loop_records_kerastuner_trials_in_optuna(prepared, fast_cv, tmp_path) -> None:
    out = _run(prepared, tmp_path, 3, **{"search.sampler": "tpe"})
    study = out.study
    assert out.ran == 3 and [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert study.user_attrs["engine"] == "keras-tuner"
    assert study.user_attrs["spec"]["search"]["engine"] == "keras-tuner"
    for t, call in zip(study.trials, fast_cv, strict=True):
        assert t.user_attrs["kt_trial_id"] == str(t.number)
        assert t.user_attrs["kt_algorithm"] == "bayesian"
        assert t.user_attrs["config"] == call["config"]
        # the Optuna params are exactly the active dims of the configuration
        from weightsearch.space import flatten

        flat = flatten(call["config"])
        assert t.params == {k: flat[k] for k in t.params}
        assert "train.learning_rate" in t.params
    # resume: two more trials continue the numbering and the tuner's history
    more = _run(prepared, tmp_path, 2, **{"search.sampler": "tpe"})
    assert [t.number for t in more.study.trials] == [0, 1, 2, 3, 4]
    assert [t.user_attrs["kt_trial_id"] for t in more.study.trials][-2:] == ["3", "4"]
    assert len(list((tmp_path / "kt").iterdir())) == 1


def test_hyperband_trains_with_its_epoch_budgets(prepared, fast_cv, tmp_path) -> None:
    out = _run(
        prepared,
        tmp_path,
        6,
        **{"search.sampler": "random", "search.pruner": "hyperband", "cv.epochs": 4},
    )
    trials = out.study.trials
    assert len(trials) == 6
    epochs = [t.user_attrs["kt_epochs"] for t in trials]
    assert [c["epochs"] for c in fast_cv] == epochs
    assert set(epochs) == {2, 4}  # max_epochs 4, factor 3
    promoted = [t for t in trials if "kt_resumed_from" in t.user_attrs]
    assert promoted and all(t.user_attrs["kt_epochs"] == 4 for t in promoted)


def test_failures_stop_the_search_and_are_recorded(prepared, fast_cv, tmp_path, monkeypatch):
    from weightsearch import objective

    monkeypatch.setattr(objective.Objective, "fail", True, raising=False)
    out = _run(prepared, tmp_path, 5, **{"search.max_consecutive_failures": 2})
    assert out.stopped_for_failures and out.ran == 2
    assert [t.state.name for t in out.study.trials] == ["FAIL", "FAIL"]
    assert out.study.trials[0].user_attrs["error"] == "TrialFailed: simulated NaN loss"


def test_a_study_of_the_other_engine_is_not_mixed_in(prepared, fast_cv, tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/kt.db"
    other = optuna.create_study(study_name="kt", storage=url, direction="maximize")
    other.add_trial(optuna.trial.create_trial(value=0.5))
    with pytest.raises(SpecError, match="already holds 1 trial\\(s\\) run by the optuna engine"):
        _run(prepared, tmp_path, 1)
    with pytest.raises(SpecError, match="runs in one process"):
        engines.run_study(prepared, n_trials=1, total=4)


# ---------------------------------------------------------------------------- a real study


@pytest.mark.slow
def test_tiny_keras_tuner_study_end_to_end(tiny_spec, tmp_path: Path, capsys) -> None:
    """2 KerasTuner trials through the CLI, and 1 Optuna trial for the metric names."""
    from mlflow import MlflowClient

    spec = _kt_spec(tiny_spec, sampler="tpe", pruner="none")
    assert main(["study", str(spec)]) == 0
    assert "Top trials of 'kt'" in capsys.readouterr().out
    optuna_spec = tiny_spec(name="opt", n_trials=1)
    assert main(["study", str(optuna_spec)]) == 0

    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.load_study(study_name="kt", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    for t in study.trials:
        assert t.user_attrs["engine"] == "keras-tuner" and "oof_confusion" in t.user_attrs

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")

    def runs(experiment: str) -> tuple[list, list]:
        exp = client.get_experiment_by_name(experiment)
        found = client.search_runs([exp.experiment_id])
        roles = [r.data.tags.get("weightsearch.role") for r in found]
        return (
            [r for r, role in zip(found, roles, strict=True) if role == "study"],
            [r for r, role in zip(found, roles, strict=True) if role == "trial"],
        )

    parents, children = runs("kt")
    assert len(parents) == 1 and len(children) == 2
    assert parents[0].data.tags["weightsearch.engine"] == "keras-tuner"
    assert parents[0].data.params["kt_algorithm"].startswith("BayesianOptimization")
    by_number = {int(r.data.tags["optuna.trial_number"]): r for r in children}
    assert sorted(by_number) == [0, 1]
    for t in study.trials:
        run = by_number[t.number]
        assert run.info.run_id == t.user_attrs["mlflow_run_id"]
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.tags["optuna.state"] == "COMPLETE" and run.info.status == "FINISHED"
        assert run.data.tags["keras_tuner.trial_id"] == t.user_attrs["kt_trial_id"]
        assert run.data.metrics["cv_macro_f1"] == pytest.approx(t.value)
        # independently of the objective's own summary: each fold's best epoch, read back
        # from its per-epoch MLflow curve, and their mean is the trial's value
        curves = [client.get_metric_history(run.info.run_id, f"fold{k}/val_macro_f1")
                  for k in range(2)]
        bests = [max(m.value for m in curve) for curve in curves]
        assert t.user_attrs["fold_values"] == pytest.approx(bests)
        assert t.value == pytest.approx(np.mean(bests))

    _, optuna_children = runs("opt")
    kt_names = {frozenset(r.data.metrics) for r in children}
    opt_names = {frozenset(r.data.metrics) for r in optuna_children}
    assert kt_names == opt_names  # the same metric names as the Optuna engine's
    assert {"cv_macro_f1", "fold0/val_macro_f1", "fold1/best_macro_f1"} <= next(iter(kt_names))
