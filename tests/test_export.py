"""From study to production: export → train → predict, the Python API and the bad inputs.

The end-to-end tests run one tiny study through the CLI once (a module fixture) and share
its exported config, model directory and predictions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_SPEC

from weightsearch.cli import main

SYNTH = {"n_samples": 160, "n_features": 6, "weights": [0.75, 0.25], "class_sep": 2.0}


def _config_dict(**changes) -> dict:
    """A minimal valid training config (as parsed TOML) on the tiny synthetic data."""
    raw = {
        "source": {"study": "unit", "trial": 0},
        "data": {
            "source": "builtin:synthetic",
            "task": "binary",
            "test_size": 0.2,
            "seed": 0,
            "options": dict(SYNTH),
            "classes": ["0", "1"],
            "feature_names": [f"x{i}" for i in range(6)],
            "input_shape": [6],
        },
        "weighting": {"scheme": "balanced", "apply_weights": "loss", "params": {}},
        "loss": {"name": "focal", "params": {"gamma": 1.5}},
        "model": {"arch": "mlp", "params": {"depth": 1, "width": 8}},
        "train": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 16, "epochs": 1},
        "decision": {"threshold": 0.4, "positive": "1"},
        "tracking": {"enabled": False},
    }
    for key, value in changes.items():
        section, _, name = key.partition(".")
        raw[section][name] = value
    return raw


def _one_error_line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


# ---- fast: config checks and the API ------------------------------------------------------


def test_import_weightsearch_is_light_and_exposes_the_api_lazily() -> None:
    code = (
        "import sys, weightsearch\n"
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules\n"
        "assert 'weightsearch.production' not in sys.modules\n"
        "where = {'load_config': 'config', 'build_from_config': 'train',\n"
        "         'train_from_config': 'train', 'load_model': 'predict'}\n"
        "for name, module in where.items():\n"
        "    fn = getattr(weightsearch, name)  # imports weightsearch.production\n"
        "    assert fn.__module__ == f'weightsearch.production.{module}', (name, fn.__module__)\n"
        "    assert fn is getattr(sys.modules['weightsearch.production'], name)\n"
        "heavy = {'keras', 'tensorflow', 'optuna', 'mlflow', 'pandas'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_cli_exit_skips_teardown_but_keeps_code_output_and_exit_handlers(
    tmp_path: Path,
) -> None:
    """``python -m weightsearch`` ends through ``exit_process``: no 2-3 s of module teardown
    after TensorFlow and MLflow, but atexit handlers (queued MLflow artifacts), non-daemon
    threads, buffered output and the exit code all behave as at a normal exit."""
    flag = tmp_path / "atexit.txt"
    code = (
        "import atexit, threading, time, sys\n"
        "from weightsearch.cli import exit_process\n"
        f"atexit.register(lambda: open({str(flag)!r}, 'a').write('handler;'))\n"
        f"t = threading.Thread(target=lambda: (time.sleep(0.5), "
        f"open({str(flag)!r}, 'a').write('thread;')))\n"
        "t.start()\n"
        "sys.stdout.write('buffered, no newline')\n"
        "exit_process(3)\n"
        "print('not reached')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "buffered, no newline"
    assert flag.read_text() == "thread;handler;"  # threads joined first, then the handlers

    main_py = Path(__file__).parents[1] / "weightsearch" / "__main__.py"
    assert "exit_process(main())" in main_py.read_text()
    proc = subprocess.run(
        [sys.executable, "-m", "weightsearch", "train", str(tmp_path / "missing.toml"),
         "--out", str(tmp_path / "m")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    line = _one_error_line(proc.stderr)
    assert proc.returncode == 2 and f"{tmp_path / 'missing.toml'}: file not found" in line


def test_config_toml_round_trip_keeps_exact_values() -> None:
    from weightsearch.production import parse_config

    raw = _config_dict()
    raw["weighting"] = {"scheme": "effective_number", "params": {"beta": 0.1 + 0.2}}
    raw["train"]["learning_rate"] = 0.0012345678901234567
    cfg = parse_config(raw)
    back = parse_config(tomllib.loads(cfg.to_toml()))
    assert back.to_dict() == cfg.to_dict()
    assert back.weighting["params"]["beta"] == 0.1 + 0.2  # floats are written with repr
    assert back.train["learning_rate"] == 0.0012345678901234567
    # defaults are filled in, so the file is standalone
    assert back.model["params"]["dropout"] == 0.1 and back.weighting["apply_weights"] == "loss"
    assert back.params()["loss.focal.gamma"] == 1.5


def test_config_toml_writes_any_names_and_keeps_its_comments() -> None:
    from weightsearch.production import parse_config
    from weightsearch.production.config import COMMENTS

    names = ["mean radius", 'say "hi"', "two\nlines", "back\\slash", "ünïcode ✓"]
    raw = _config_dict(**{"data.feature_names": [*names, "x5"]})
    raw["source"]["study"] = "my study\nv2"
    text = parse_config(raw).to_toml()
    back = tomllib.loads(text)
    assert back["data"]["feature_names"] == [*names, "x5"]
    assert back["source"]["study"] == "my study\nv2"
    assert text.startswith("# weightsearch training config: study 'my study\\nv2', trial 0.")
    for section, comment in COMMENTS.items():
        first = comment.splitlines()[0]
        assert f"# {first}\n" in text and text.index(f"# {first}") < text.index(f"[{section}]")


def test_unknown_scheme_is_one_clear_line_naming_the_key() -> None:
    from weightsearch.production import ConfigError, parse_config

    with pytest.raises(ConfigError) as info:
        parse_config(_config_dict(**{"weighting.scheme": "balancd"}), source="best.toml")
    assert len(info.value.problems) == 1
    line = str(info.value)
    assert line.startswith("best.toml: weighting.scheme: Unknown weighting scheme 'balancd'")
    assert "expected one of: none, balanced" in line


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"loss.name": "hinge"},
         "loss.name: Unknown loss 'hinge'; expected one of: crossentropy, focal"),
        ({"weighting.params": {"beta": 2.0}},
         "weighting.params (balanced) got unknown parameter(s) ['beta']; expected no param"),
        ({"train.epochs": 0}, "train.epochs: must be an integer >= 1, but got 0."),
        ({"train.optimizer": "adamx"},
         "train: optimizer must be one of 'adam', 'adamw', 'rmsprop', 'sgd', but got 'adamx'."),
        ({"decision.threshold": 1.5},
         "decision.threshold: expected a number in [0, 1] (or a list of them), but got 1.5."),
        ({"decision.positive": "2"},
         "decision.positive: unknown class '2'; expected one of: 0, 1."),
        ({"data.task": "multiclass"},
         "decision.threshold: multiclass decisions use argmax; remove the threshold."),
        ({"model.arch": "cnn"},
         "model.arch: arch 'cnn' expects images of shape (H, W, C), but the data has shape (6,)"),
        ({"train.patience": 3},
         "train.patience: unknown key; expected one of: optimizer, learning_rate, batch_size,"),
        ({"weighting.scheme": 3}, "weighting.scheme: expected a string, but got an integer (3)."),
        ({"data.input_shape": [6, 0]},
         "data.input_shape: expected a list of positive integers, got [6, 0]."),
    ],
)
def test_config_problems_name_the_key(changes: dict, expected: str) -> None:
    from weightsearch.production import ConfigError, parse_config

    with pytest.raises(ConfigError) as info:
        parse_config(_config_dict(**changes), source="cfg.toml")
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems
    assert str(info.value).startswith("cfg.toml: ")  # every line names the file


def test_an_unknown_positive_class_is_one_problem_not_two() -> None:
    from weightsearch.production import ConfigError, parse_config

    with pytest.raises(ConfigError) as info:
        parse_config(_config_dict(**{"decision.positive": "2"}), source="cfg.toml")
    assert info.value.problems == [
        "decision.positive: unknown class '2'; expected one of: 0, 1."]  # not also "missing"


def test_class_weight_on_multilabel_is_refused_in_the_one_shared_wording() -> None:
    from weightsearch.base import CLASS_WEIGHT_MULTILABEL
    from weightsearch.production import ConfigError, parse_config

    raw = _config_dict(**{"data.task": "multilabel", "weighting.apply_weights": "class_weight"})
    raw["decision"] = {}
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert info.value.problems == [f"weighting.apply_weights: {CLASS_WEIGHT_MULTILABEL}"]
    raw["weighting"]["apply_weights"] = "sample_weight"  # the same config, weighted per row
    assert parse_config(raw).weighting["apply_weights"] == "sample_weight"


def test_load_config_reports_missing_and_malformed_files(tmp_path: Path) -> None:
    from weightsearch.production import ConfigError, load_config

    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert str(info.value) == (
        f"{missing}: file not found (expected a training config written by "
        "`weightsearch export`)."
    )
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert str(info.value).startswith(f"{bad}: malformed TOML: ")
    assert "line 1" in str(info.value)  # where in the file
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    with pytest.raises(ConfigError) as info:
        load_config(empty)
    assert info.value.problems == [
        f"{s}: missing [{s}] section." for s in ("data", "weighting", "loss", "model", "train")
    ]


def test_build_from_config_returns_compiled_model_weights_and_fit_kwargs() -> None:
    from weightsearch import data as data_mod
    from weightsearch.losses import FocalLoss
    from weightsearch.production import build_from_config, parse_config
    from weightsearch.weighting import weight_vector

    ds = data_mod.load("builtin:synthetic", seed=0, options=dict(SYNTH, n_samples=40))
    built = build_from_config(parse_config(_config_dict()), ds)
    counts = np.bincount(ds.y, minlength=2)
    np.testing.assert_allclose(built.weights, weight_vector(counts, "balanced"))
    assert isinstance(built.loss, FocalLoss) and built.loss.gamma == 1.5
    np.testing.assert_allclose(built.loss.weights, built.weights)
    assert built.fit_kwargs == {} and built.model.compiled
    assert built.model.output_shape == (None, 2)
    built.model.fit(ds.x, data_mod.model_targets(ds.y, "binary", 2), epochs=1, verbose=0)

    # weights applied per sample instead: the loss is unweighted, fit gets sample_weight
    cfg = parse_config(_config_dict(**{"weighting.apply_weights": "sample_weight"}))
    built = build_from_config(cfg, (ds.x, ds.y))
    assert built.loss.weights is None
    np.testing.assert_allclose(built.fit_kwargs["sample_weight"], built.weights[ds.y], rtol=1e-6)


def test_export_describes_the_data_the_trial_ran_on(tmp_path: Path) -> None:
    """The data file changes after the study: the exported config still describes the
    trial's own data (the study's record): source, task, classes, threshold, positive."""
    import optuna

    from weightsearch import spec as spec_mod
    from weightsearch.production import export
    from weightsearch.study import StudyRun, prepare

    rng = np.random.default_rng(0)
    data = tmp_path / "data.csv"
    frame = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    frame["label"] = [1 if i % 4 == 0 else 0 for i in range(40)]
    frame.to_csv(data, index=False)
    url = f"sqlite:///{tmp_path}/o.db"
    spec = spec_mod.parse({
        "name": "ran", "data": {"source": str(data)}, "cv": {"folds": 2, "epochs": 2},
        "search": {"storage": url, "sampler": "random", "pruner": "none"},
        "space": {"weighting": {"scheme": "balanced"}, "loss": {"name": "crossentropy"},
                  "model": {"arch": "mlp", "depth": 1, "width": 8}},
    })
    prepared = prepare(spec)
    study = StudyRun(prepared).open()

    def objective(trial: optuna.Trial) -> float:  # what the objective records, untrained
        trial.set_user_attr("config", prepared.space.suggest(trial))
        trial.set_user_attr("threshold", 0.3)
        trial.set_user_attr("best_epochs", [1, 2])
        return 0.5

    study.optimize(objective, n_trials=1)
    frame["label"] = [i % 3 for i in range(40)]  # the same file, now three balanced classes
    frame.rename(columns={"c": "d"}).to_csv(data, index=False)
    cfg = export("ran", tmp_path / "best.toml", storage=url).config
    assert cfg.data["source"] == str(data) and cfg.task == "binary"
    assert cfg.classes == ["0", "1"] and cfg.data["feature_names"] == ["a", "b", "c"]
    assert cfg.decision == {"threshold": 0.3, "positive": "1"}


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    """A model directory trained for one epoch from the minimal config (no study)."""
    from weightsearch.production import parse_config, train_from_config

    out = tmp_path_factory.mktemp("small") / "model"
    train_from_config(parse_config(_config_dict()), out=out, track=False)
    return out


def test_predict_refuses_values_beyond_float32(small_model: Path, tmp_path: Path,
                                               capsys) -> None:
    from weightsearch import data as data_mod
    from weightsearch.production import load_model

    ds = data_mod.load("builtin:synthetic", seed=0, options=dict(SYNTH))
    frame = pd.DataFrame(ds.x[:5].astype(np.float64), columns=ds.feature_names)
    frame.loc[3, "x2"] = 1e39  # finite in float64, inf in float32
    new = tmp_path / "huge.csv"
    frame.to_csv(new, index=False)
    out = tmp_path / "p.csv"
    capsys.readouterr()
    assert main(["predict", str(small_model), "--data", str(new), "--out", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "huge.csv" in line and "feature column(s) 'x2'" in line and "data row(s) 4" in line
    assert "beyond the float32 range" in line and not out.exists()
    tm = load_model(small_model)  # the Python API refuses it too, NaN included
    with pytest.raises(data_mod.DataError, match="'x2' hold values beyond the float32 range"):
        tm.predict_proba(frame)
    with pytest.raises(data_mod.DataError, match="array 'x' contain NaN or infinite"):
        tm.predict(np.where(np.arange(6) == 1, np.nan, ds.x[:2]))


def test_predict_without_an_encoder_refuses_text_and_holes_per_column(
    small_model: Path, tmp_path: Path, capsys
) -> None:
    """A model of numbers only (no TableEncoder): a text value names its column and row, and
    a hole is refused (nothing would impute it), instead of advice about training keys."""
    from weightsearch import data as data_mod

    ds = data_mod.load("builtin:synthetic", seed=0, options=dict(SYNTH))
    frame = pd.DataFrame(ds.x[:4].astype(np.float64), columns=ds.feature_names).astype(object)
    frame.loc[2, "x1"] = "abc"
    text = tmp_path / "text.csv"
    frame.to_csv(text, index=False)
    frame.loc[2, "x1"] = np.nan
    hole = tmp_path / "hole.csv"
    frame.to_csv(hole, index=False)
    out = tmp_path / "p.csv"
    capsys.readouterr()
    assert main(["predict", str(small_model), "--data", str(text), "--out", str(out)]) == 2
    assert _one_error_line(capsys.readouterr().err) == (
        f"error: Data file {str(text)!r}: column 'x1' is numeric, but data row 3 (the first "
        "data row is 1) holds 'abc'; expected a number.")
    assert main(["predict", str(small_model), "--data", str(hole), "--out", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "feature column(s) 'x1' contain NaN or infinite values" in line
    assert "data row(s) 3" in line and not out.exists()


def test_a_truncated_model_file_is_named_unreadable(small_model: Path, tmp_path: Path,
                                                    capsys) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(small_model, broken)
    model = broken / "model.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    new = tmp_path / "new.npz"
    np.savez(new, x=np.zeros((2, 6)))
    capsys.readouterr()
    out = tmp_path / "p.csv"
    assert main(["predict", str(broken), "--data", str(new), "--out", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{str(model)!r} is unreadable or corrupt" in line and "not found" not in line
    assert not out.exists()


def test_median_epochs_rounds_half_up() -> None:
    from weightsearch.production import median_epochs

    assert median_epochs([1, 2], 9) == 2  # median 1.5
    assert median_epochs([1, 2, 3, 4], 9) == 3  # median 2.5
    assert median_epochs([3, 1, 8], 9) == 3
    assert median_epochs([], 9) == 9  # no per-fold best epochs: the study's epochs
    assert median_epochs([], 0) == 1  # at least one epoch


# ---- slow: one tiny study through the CLI -------------------------------------------------


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """study → export → train → predict, all through the CLI, in one temporary directory."""
    tmp = tmp_path_factory.mktemp("production")
    spec = tmp / "e2e.toml"
    spec.write_text(TINY_SPEC.format(name="e2e", n_trials=2, pruner="none", tmp=tmp))
    storage = f"sqlite:///{tmp}/optuna.db"
    assert main(["study", str(spec)]) == 0
    config = tmp / "best.toml"
    assert main(["export", "--study", "e2e", "--storage", storage, "--out", str(config)]) == 0
    model_dir = tmp / "models" / "e2e"
    assert main(["train", str(config), "--out", str(model_dir)]) == 0

    from weightsearch import data as data_mod

    ds = data_mod.load("builtin:synthetic", seed=0, options=dict(SYNTH))
    new = pd.DataFrame(ds.x[:12], columns=ds.feature_names)
    new = new[list(reversed(new.columns))]  # column order does not matter
    new.insert(0, "label", ds.y[:12])  # a training target column is ignored
    new_csv = tmp / "new.csv"
    new.to_csv(new_csv, index=False)
    predictions = tmp / "predictions.csv"
    assert main(["predict", str(model_dir), "--data", str(new_csv), "--out", str(predictions)]) == 0
    return {
        "tmp": tmp,
        "storage": storage,
        "mlflow": f"sqlite:///{tmp}/mlflow.db",
        "config": config,
        "model_dir": model_dir,
        "new": new,
        "x": ds.x[:12],
        "predictions": predictions,
    }


@pytest.mark.slow
def test_export_reproduces_the_best_trial_exactly(pipeline) -> None:
    import optuna

    from weightsearch.production import load_config

    study = optuna.load_study(study_name="e2e", storage=pipeline["storage"])
    best = study.best_trial
    cfg = load_config(pipeline["config"])
    assert cfg.source["study"] == "e2e" and cfg.source["trial"] == best.number
    assert cfg.source["mlflow_run_id"] == best.user_attrs["mlflow_run_id"]
    assert cfg.source["cv_value"] == best.value
    flat = cfg.params()
    for name, value in best.params.items():  # exactly, type included
        assert flat[name] == value and type(flat[name]) is type(value), name
    assert cfg.components["weighting"] == {
        "scheme": best.user_attrs["config"]["weighting"]["scheme"],
        "params": best.user_attrs["config"]["weighting"]["params"],
    }
    assert cfg.train["epochs"] == int(np.floor(np.median(best.user_attrs["best_epochs"]) + 0.5))
    assert cfg.train["batch_size"] == 32 and cfg.data["test_size"] == 0.2
    assert cfg.decision["threshold"] == best.user_attrs["threshold"]
    assert cfg.decision["positive"] == "1"  # the minority class of the training part
    assert cfg.tracking["registered_model"] == "e2e"
    text = pipeline["config"].read_text()
    assert text.startswith("# weightsearch training config: study 'e2e'")
    assert not list(pipeline["tmp"].glob(".best.toml*"))  # no temporary files left

    # --trial picks another (complete) trial
    other = next(t for t in study.trials if t.number != best.number)
    out = pipeline["tmp"] / "other.toml"
    args = ["export", "--study", "e2e", "--storage", pipeline["storage"], "--out", str(out)]
    assert main([*args, "--trial", str(other.number)]) == 0
    other_cfg = load_config(out)
    assert other_cfg.source["trial"] == other.number and other_cfg.source["cv_value"] == other.value
    flat = other_cfg.params()
    assert other.params and all(flat[k] == v for k, v in other.params.items())


@pytest.mark.slow
def test_trained_model_is_saved_evaluated_and_registered(pipeline) -> None:
    from mlflow import MlflowClient

    from weightsearch.production import load_config

    model_dir = pipeline["model_dir"]
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.keras", "weightsearch.json"]
    assert not [p for p in model_dir.parent.iterdir() if p.name.startswith(".")]
    meta = json.loads((model_dir / "weightsearch.json").read_text())
    cfg = load_config(pipeline["config"])
    assert meta["classes"] == ["0", "1"] and meta["task"] == "binary"
    assert meta["threshold"] == cfg.decision["threshold"] and meta["positive"] == "1"
    assert meta["feature_names"] == [f"x{i}" for i in range(6)]
    assert meta["epochs"] == cfg.train["epochs"] == len(meta["train_loss"])
    assert meta["train_rows"] == 128 and meta["test_rows"] == 32
    assert meta["config"]["weighting"]["scheme"] == cfg.weighting["scheme"]

    # the study's hold-out split, re-made here: 160 rows at 0.75/0.25, 20 % held out
    import keras
    from sklearn.metrics import confusion_matrix, f1_score

    import weightsearch.losses  # noqa: F401  (the saved model's custom loss)
    from weightsearch import data as data_mod
    from weightsearch.weighting import weight_vector

    ds = data_mod.load("builtin:synthetic", seed=0, options=dict(SYNTH))
    train_idx, test_idx = data_mod.train_test_split(ds, 0.2, 0)
    y_train, y_test = ds.y[train_idx], ds.y[test_idx]
    assert np.bincount(y_train).tolist() == [96, 32] and np.bincount(y_test).tolist() == [24, 8]

    # the class weights: the config's scheme on the training part's counts, Σ n_c·w_c = n
    w = np.asarray(meta["weights"]["values"])
    expected_w = weight_vector([96, 32], cfg.weighting["scheme"], **cfg.weighting["params"])
    np.testing.assert_allclose(w, expected_w, rtol=1e-6)
    assert np.isclose(np.dot(w, [96, 32]), 128)

    # the test scores: sklearn on the reloaded model's thresholded test predictions
    model = keras.models.load_model(model_dir / "model.keras")
    pred = (model.predict(ds.x[test_idx], verbose=0)[:, 1] >= meta["threshold"]).astype(int)
    test = meta["test"]
    assert test["rows"] == 32 and test["support"] == {"0": 24, "1": 8}
    sk_macro_f1 = f1_score(y_test, pred, average="macro")
    assert test["macro_f1"] == pytest.approx(sk_macro_f1)
    assert list(test["per_class_f1"].values()) == pytest.approx(
        f1_score(y_test, pred, average=None)
    )
    assert test["confusion"] == confusion_matrix(y_test, pred, labels=[0, 1]).tolist()
    assert test["metric"] == "macro_f1" and test["value"] == pytest.approx(sk_macro_f1)

    ml = meta["mlflow"]
    client = MlflowClient(tracking_uri=pipeline["mlflow"])
    versions = client.search_model_versions("name='e2e'")
    assert [int(v.version) for v in versions] == [ml["version"]] == [1]
    version = versions[0]
    assert version.run_id == ml["run_id"] and version.status == "READY"
    assert version.tags["weightsearch.source_trial"] == str(cfg.source["trial"])
    run = client.get_run(ml["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["weightsearch.role"] == "train"
    assert run.data.tags["weightsearch.source_trial"] == str(cfg.source["trial"])
    assert run.data.tags["weightsearch.source_run_id"] == cfg.source["mlflow_run_id"]
    assert run.data.metrics["test_macro_f1"] == pytest.approx(sk_macro_f1)
    assert run.data.tags["mlflow.note.content"].startswith(
        f"Final model of study 'e2e', trial {cfg.source['trial']} "
    )
    trial_run = client.get_run(cfg.source["mlflow_run_id"])
    assert trial_run.data.tags["weightsearch.train_run_id"] == ml["run_id"]
    assert run.info.experiment_id == trial_run.info.experiment_id
    logged = client.get_logged_model(ml["model_id"])
    assert logged.source_run_id == ml["run_id"]
    artifacts = {a.path for a in client.list_artifacts(ml["run_id"], "weightsearch")}
    assert {"weightsearch/weightsearch.json", "weightsearch/train_config.toml"} <= artifacts
    top = {a.path for a in client.list_artifacts(ml["run_id"])}
    assert {"confusion_matrix.png", "classification_report.txt"} <= top  # the test split
    history = client.get_metric_history(ml["run_id"], "loss")  # logged in one batch
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(meta["epochs"]))
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
        meta["train_loss"]
    )

    # the registered model (a pyfunc PythonModel, aliased champion) has a signature of named
    # columns and an input example, describes its training data, and serves class names
    # (tuned threshold applied) and, on request, the same probabilities
    import mlflow
    from mlflow.models import Model

    assert int(client.get_model_version_by_alias("e2e", "champion").version) == ml["version"]
    assert ml["alias"] == "models:/e2e@champion"
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.name == "e2e-training"
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "training"
    assert json.loads(inputs[0].dataset.profile)["num_rows"] == 128
    mlflow.set_tracking_uri(pipeline["mlflow"])
    try:
        info = Model.load(ml["version_uri"])
        assert info.signature is not None and info.saved_input_example_info is not None
        assert "python_function" in info.flavors
        pyfunc_flavor = info.flavors["python_function"]  # models from code: nothing pickled
        assert pyfunc_flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
        assert pyfunc_flavor["config"] == {"loader": "weightsearch.production.predict:load_model"}
        cols = info.signature.inputs.inputs
        assert [c.name for c in cols] == [f"x{i}" for i in range(6)]
        assert {c.type.name for c in cols} == {"double"}
        assert [c.name for c in info.signature.outputs.inputs] == [
            "prediction", "proba_0", "proba_1"]
        assert info.signature.params.params[0].name == "probabilities"
        requirements = Path(mlflow.pyfunc.get_model_dependencies(ml["version_uri"])).read_text()
        import keras

        assert f"keras=={keras.__version__}" in requirements.splitlines()
        pyfunc = mlflow.pyfunc.load_model("models:/e2e@champion")
        labels = pyfunc.predict(pipeline["new"])  # by column name; `label` is ignored
        served = pyfunc.predict(pipeline["new"], params={"probabilities": True})
    finally:
        mlflow.set_tracking_uri(None)
    import weightsearch

    mine = weightsearch.load_model(model_dir).predict_proba(pipeline["x"])
    assert list(labels.columns) == ["prediction"]
    expected = np.where(mine[:, 1] >= meta["threshold"], "1", "0")
    assert labels["prediction"].tolist() == expected.tolist()
    np.testing.assert_allclose(served[["proba_0", "proba_1"]].to_numpy(), mine, rtol=0,
                               atol=1e-6)


@pytest.mark.slow
def test_predictions_and_a_fresh_process_reload_agree(pipeline) -> None:
    import weightsearch

    tm = weightsearch.load_model(pipeline["model_dir"])
    proba = tm.predict_proba(pipeline["new"])  # picks the feature columns by name
    assert np.array_equal(proba, tm.predict_proba(pipeline["x"]))
    out = pd.read_csv(pipeline["predictions"], dtype={"prediction": str})
    assert list(out.columns) == ["prediction", "proba_0", "proba_1"]
    assert np.array_equal(out[["proba_0", "proba_1"]].to_numpy().astype(np.float32), proba)
    labels = np.where(proba[:, 1] >= tm.threshold, "1", "0")  # the tuned threshold
    assert out["prediction"].tolist() == labels.tolist()
    # in Python, integer labels come back as integers (classes_), comparable with y
    assert tm.predict(pipeline["x"]).tolist() == [int(v) for v in labels]

    tmp = pipeline["tmp"]
    np.save(tmp / "x.npy", pipeline["x"])
    np.save(tmp / "mine.npy", proba)
    code = (
        "import sys\n"
        "import numpy as np\n"
        "import weightsearch\n"
        "import keras\n"
        "m = keras.models.load_model(sys.argv[1])\n"
        "assert type(m.loss).__module__ == 'weightsearch.losses', type(m.loss)\n"
        "np.save(sys.argv[3], m.predict(np.load(sys.argv[2]), verbose=0))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(pipeline["model_dir"] / "model.keras"),
         str(tmp / "x.npy"), str(tmp / "fresh.npy")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert np.array_equal(np.load(tmp / "fresh.npy"), np.load(tmp / "mine.npy"))


@pytest.mark.slow
def test_bad_input_gives_one_clear_error_and_no_output(pipeline, capsys) -> None:
    tmp, storage = pipeline["tmp"], pipeline["storage"]
    out = tmp / "bad-out.toml"

    def run(args: list[str]) -> str:
        capsys.readouterr()
        assert main(args) == 2
        return _one_error_line(capsys.readouterr().err)

    line = run(["export", "--study", "nope", "--storage", storage, "--out", str(out)])
    assert f"--study: no study named 'nope' in {storage}; studies there: e2e." in line
    line = run(["export", "--study", "e2e", "--storage", storage, "--trial", "99", "--out",
                str(out)])
    assert "--trial: study 'e2e' has no trial 99; its trials are numbered 0..1." in line
    missing_db = f"sqlite:///{tmp}/missing.db"
    line = run(["export", "--study", "e2e", "--storage", missing_db, "--out", str(out)])
    assert f"--storage: no Optuna database at {tmp / 'missing.db'}" in line
    assert not (tmp / "missing.db").exists()
    assert not out.exists()

    edited = tmp / "edited.toml"
    text = pipeline["config"].read_text()
    scheme = tomllib.loads(text)["weighting"]["scheme"]
    edited.write_text(text.replace(f'scheme = "{scheme}"', 'scheme = "inverse_sqrt"'))
    bad_dir = tmp / "models" / "edited"
    line = run(["train", str(edited), "--out", str(bad_dir)])
    assert f"{edited}: weighting.scheme: Unknown weighting scheme 'inverse_sqrt'" in line
    assert "expected one of: none, balanced" in line and not bad_dir.exists()

    new = pipeline["new"]
    preds = tmp / "bad-predictions.csv"
    cases = {
        "missing.csv": (new.drop(columns=["x3"]), "missing column(s) 'x3'"),
        "extra.csv": (new.assign(colour=1.0), "unexpected column(s) 'colour'"),
    }
    for name, (frame, expected) in cases.items():
        frame.to_csv(tmp / name, index=False)
        line = run(["predict", str(pipeline["model_dir"]), "--data", str(tmp / name), "--out",
                    str(preds)])
        assert expected in line and not preds.exists()
    np.savez(tmp / "wrong.npz", x=pipeline["x"][:, :5])
    line = run(["predict", str(pipeline["model_dir"]), "--data", str(tmp / "wrong.npz"),
                "--out", str(preds)])
    assert "has shape (12, 5); expected (N, 6)" in line and not preds.exists()
    line = run(["predict", str(tmp), "--data", str(tmp / "new.csv"), "--out", str(preds)])
    assert f"{str(tmp)!r} is not a weightsearch model directory: expected model.keras and " \
        "weightsearch.json" in line and not preds.exists()
    line = run(["predict", str(pipeline["model_dir"]), "--data", str(tmp / "new.csv"), "--out",
                str(tmp / "no-such-dir" / "p.csv")])
    assert f"--out: directory {str(tmp / 'no-such-dir')!r} does not exist." in line
    assert not [p.name for p in tmp.rglob(".*tmp*")]


@pytest.mark.slow
def test_train_with_replacement_data_in_another_column_order(pipeline, capsys) -> None:
    from weightsearch import data as data_mod
    from weightsearch.production import load_model

    tmp = pipeline["tmp"]
    ds = data_mod.load("builtin:synthetic", seed=0, options=dict(SYNTH))
    frame = pd.DataFrame(ds.x, columns=ds.feature_names)[["x5", "x0", "x3", "x1", "x4", "x2"]]
    frame["label"] = ds.y
    path = tmp / "train.csv"
    frame.to_csv(path, index=False)
    out = tmp / "models" / "from-csv"
    args = ["train", str(pipeline["config"]), "--data", str(path), "--out", str(out)]
    capsys.readouterr()
    assert main([*args, "--no-tracking"]) == 0
    printed = capsys.readouterr().out
    assert "held-out test set (32 rows): macro-F1" in printed
    assert "F1 per class (test)" in printed and "Confusion (test)" in printed
    assert f"saved {out}/model.keras" in printed and "MLflow:" not in printed
    tm = load_model(out)
    assert tm.meta["data_source"] == str(path) and tm.meta["mlflow"] is None
    assert tm.feature_names == [f"x{i}" for i in range(6)]  # the training order, kept
    assert tm.meta["test_rows"] == 32
    # re-training replaces the model directory in place
    assert main([*args, "--no-tracking"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["model.keras", "weightsearch.json"]
