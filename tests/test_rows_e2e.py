"""A mixed-type table end to end, as a user runs it: a CSV with a text column, a True/False
column, an integer ID to drop and 10 % missing numbers goes through ``study`` → ``export`` →
``train`` → ``predict``, and the registered MLflow model (a pyfunc ``PythonModel``) serves
raw rows in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

import numpy as np
import pandas as pd
import pytest

from weightsearch.cli import main

SPEC = """
name = "rows"
seed = 0
[data]
source = "{csv}"
target = "outcome"
drop = ["id"]
test_size = 0.25
[cv]
folds = 2
epochs = 2
batch_size = 16
patience = 0
[search]
n_trials = 2
sampler = "random"
pruner = "none"
storage = "sqlite:///{tmp}/optuna.db"
[space.weighting]
scheme = ["none", "balanced"]
[space.loss]
name = "crossentropy"
[space.model]
arch = "mlp"
depth = 1
width = 8
[tracking]
mlflow_uri = "sqlite:///{tmp}/mlflow.db"
"""

#: Rows to predict: an unseen colour, a hole in each kind of column, an unseen flag text.
NEW_ROWS = pd.DataFrame({
    "id": [1000, 1001, 1002, 1003],
    "colour": ["red", "purple", None, "blue"],
    "member": [True, False, True, None],
    "dose": [1.5, np.nan, 0.2, -0.3],
    "age": [40.0, 51.0, np.nan, np.nan],
})


def _table(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], size=n, p=[0.5, 0.3, 0.2])
    member = rng.random(n) < 0.4
    dose = rng.normal(size=n)
    age = rng.normal(50, 10, size=n).round()
    score = 1.5 * (colour == "blue") + member + dose
    outcome = np.where(score > 1.6, "sick", "well")
    for col in (dose, age):  # 10 % holes in each numeric column
        col[rng.choice(n, size=n // 10, replace=False)] = np.nan
    return pd.DataFrame({"id": np.arange(n), "colour": colour, "member": member, "dose": dose,
                         "age": age, "outcome": outcome})


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rows")
    csv = tmp / "patients.csv"
    _table().to_csv(csv, index=False)
    spec = tmp / "rows.toml"
    spec.write_text(SPEC.format(csv=csv, tmp=tmp))
    storage = f"sqlite:///{tmp}/optuna.db"
    assert main(["study", str(spec)]) == 0
    config = tmp / "best.toml"
    assert main(["export", "--study", "rows", "--storage", storage, "--out", str(config)]) == 0
    model_dir = tmp / "model"
    assert main(["train", str(config), "--out", str(model_dir)]) == 0
    new_csv = tmp / "new.csv"
    NEW_ROWS.to_csv(new_csv, index=False)
    predictions = tmp / "predictions.csv"
    assert main(["predict", str(model_dir), "--data", str(new_csv), "--out",
                 str(predictions)]) == 0
    return {"tmp": tmp, "config": config, "model_dir": model_dir, "new_csv": new_csv,
            "predictions": predictions, "mlflow": f"sqlite:///{tmp}/mlflow.db"}


@pytest.mark.slow
def test_the_export_records_the_column_treatment(rows) -> None:
    data = tomllib.loads(rows["config"].read_text())["data"]
    assert data["categorical"] == "auto" and data["missing"] == "impute"
    assert data["drop"] == ["id"]
    assert data["feature_names"] == ["colour", "member", "dose", "age"]
    cols = data["columns"]
    assert cols["colour"] == {"kind": "categorical", "levels": 3, "encoding": "one-hot",
                              "missing": 0}
    assert cols["member"] == {"kind": "categorical", "levels": 2, "encoding": "one-hot",
                              "missing": 0}
    assert cols["dose"] == {"kind": "numeric", "missing": 12}
    assert cols["age"] == {"kind": "numeric", "missing": 12}


@pytest.mark.slow
def test_predict_takes_raw_rows_with_unseen_categories_and_holes(rows) -> None:
    import weightsearch

    out = pd.read_csv(rows["predictions"])
    assert list(out.columns) == ["prediction", "proba_sick", "proba_well"]
    proba = out[["proba_sick", "proba_well"]].to_numpy()
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    tm = weightsearch.load_model(rows["model_dir"])
    threshold = tm.threshold  # binary: tuned on the study's out-of-fold predictions
    positive = tm.classes[tm.positive]
    other = next(c for c in tm.classes if c != positive)
    expected = np.where(out[f"proba_{positive}"] >= threshold, positive, other)
    assert out["prediction"].tolist() == expected.tolist()
    # the Python model takes the same DataFrame (extra `id` column: picked by name)
    frame = pd.read_csv(rows["new_csv"])
    assert tm.predict(frame).tolist() == out["prediction"].tolist()
    np.testing.assert_allclose(tm.predict_proba(frame), proba, rtol=0, atol=1e-6)
    # an unseen colour lands in the out-of-vocabulary bucket: the same prediction as a
    # missing colour, and as any other text never seen in training
    frame2 = frame.assign(colour=["orange", "purple", "teal", "mauve"])
    frame3 = frame.assign(colour=[None] * 4)
    np.testing.assert_allclose(tm.predict_proba(frame2), tm.predict_proba(frame3), atol=1e-6)
    assert tm.meta["columns"]["dropped"] == ["id"]


@pytest.mark.slow
def test_the_registered_pyfunc_serves_raw_rows_in_a_fresh_process(rows) -> None:
    meta = json.loads((rows["model_dir"] / "weightsearch.json").read_text())
    ml = meta["mlflow"]
    assert ml["alias"] == "models:/rows@champion"
    code = (
        "import sys\n"
        "import mlflow\n"
        "import pandas as pd\n"
        "mlflow.set_tracking_uri(sys.argv[1])\n"
        "model = mlflow.pyfunc.load_model('models:/rows@champion')\n"
        "sig = model.metadata.signature\n"
        "print({c.name: c.type.name for c in sig.inputs.inputs})\n"
        "rows = pd.read_csv(sys.argv[2])\n"
        "print(model.predict(rows)['prediction'].tolist())\n"
        "print(model.predict(rows, params={'probabilities': True}).columns.tolist())\n"
        "print(any(m.startswith('weightsearch') for m in sys.modules))\n"
        "print(model.metadata.flavors['python_function'].get('loader_module'))\n"
        # whole numbers as int64 and a text column empty in every row (float64 NaN): MLflow's
        # check refuses the frame; cast by the signature, as the README says, it passes
        "whole = pd.DataFrame({'colour': [float('nan')] * 2, 'member': [True, False],\n"
        "                      'dose': [1, 0], 'age': [40, 62]})\n"
        "try:\n"
        "    model.predict(whole)\n"
        "    print('accepted')\n"
        "except mlflow.exceptions.MlflowException:\n"
        "    print('refused')\n"
        "types = {c.name: c.type.to_pandas() for c in sig.inputs.inputs\n"
        "         if c.type.name in ('double', 'string')}\n"
        "print(model.predict(whole.astype(types))['prediction'].tolist())\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", code, rows["mlflow"], str(rows["new_csv"])],
        capture_output=True, text=True, timeout=300, env=env, cwd=rows["tmp"],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()[-7:]
    assert lines[0] == str({"colour": "string", "member": "boolean", "dose": "double",
                            "age": "double"})
    expected = pd.read_csv(rows["predictions"])["prediction"].tolist()
    assert lines[1] == str(expected)
    assert lines[2] == str(["prediction", "proba_sick", "proba_well"])
    assert lines[3] == "True"  # loaded by MLflow itself: the user imported no weightsearch
    # logged as code (served_code.py), so MLflow neither pickles it nor warns about pickling
    assert lines[4] == "mlflow.pyfunc.loaders.code_model"
    assert lines[5] == "refused"  # MLflow's own rule: int64 → double is not a safe cast
    whole = pd.DataFrame({"colour": [np.nan] * 2, "member": [True, False], "dose": [1, 0],
                          "age": [40, 62]})
    import weightsearch

    assert lines[6] == str(weightsearch.load_model(rows["model_dir"]).predict(whole).tolist())


@pytest.mark.slow
def test_the_fold_ensemble_is_a_final_model_and_is_scored_beside_the_refit(rows, capsys) -> None:
    tmp = rows["tmp"]
    text = rows["config"].read_text()
    assert 'final = "refit"' in text and 'fold_ensemble = "fold_ensemble/model.keras"' in text
    refit = json.loads((rows["model_dir"] / "weightsearch.json").read_text())
    assert refit["final"] == "refit" and refit["test_other"]["final"] == "fold_ensemble"

    ens_cfg = tmp / "ensemble.toml"
    ens_cfg.write_text(text.replace('final = "refit"', 'final = "fold_ensemble"'))
    capsys.readouterr()
    assert main(["train", str(ens_cfg), "--out", str(tmp / "ens")]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "Downloading artifacts" not in captured.err  # MLflow's bar off inside train
    assert "final model: the fold ensemble (train.final), the mean of trial" in printed
    ens = json.loads((tmp / "ens" / "weightsearch.json").read_text())
    assert ens["final"] == "fold_ensemble" and ens["fold_models"] == 2
    assert ens["train_loss"] == [] and ens["test_other"] is None  # nothing was retrained
    # the same ensemble on the same test rows, fetched twice: the same scores
    assert ens["test"]["macro_f1"] == pytest.approx(refit["test_other"]["macro_f1"], abs=1e-12)
    assert ens["test"]["confusion"] == refit["test_other"]["confusion"]

    import weightsearch

    tm = weightsearch.load_model(tmp / "ens")  # serves raw rows like the refit
    frame = pd.read_csv(rows["new_csv"])
    proba = tm.predict_proba(frame)
    assert proba.shape == (4, 2) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)

    # report lists both final models trained from the study, with their test scores
    capsys.readouterr()
    assert main(["report", "--study", "rows", "--storage", f"sqlite:///{tmp}/optuna.db",
                 "--out", str(tmp / "report")]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "Final model: refit (search.final)" in printed
    ens_score, refit_score = f"{ens['test']['macro_f1']:.4f}", f"{refit['test']['macro_f1']:.4f}"
    assert f"fold ensemble │ {ens_score} │ – │ – │" in printed
    assert f"refit │ {refit_score} │ fold ensemble │ {ens_score} │" in printed
    assert "Final models" in (tmp / "report" / "report.html").read_text()

    # a trial without saved fold models: one clear line
    bare = tmp / "bare.toml"
    bare.write_text(
        ens_cfg.read_text().replace('fold_ensemble = "fold_ensemble/model.keras"\n', ""))
    assert main(["train", str(bare), "--out", str(tmp / "bare")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.final: 'fold_ensemble' needs trial" in err[0]
    assert "set train.final = 'refit'" in err[0] and not (tmp / "bare").exists()
