"""weightsearch.search() and SearchResult: the Python entry point, on a DataFrame, on arrays,
on a spec dict and on a file; bad keywords give one clear error naming them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.metrics import f1_score

import weightsearch
from weightsearch.spec import SpecError

TINY = {"n_trials": 2, "folds": 2, "epochs": 2,
        "space": {"model": {"arch": "mlp", "depth": 1, "width": 8}}}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    x, y = make_classification(n_samples=120, n_features=5, weights=[0.8, 0.2],
                               class_sep=2.0, random_state=0)
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)])
    df["label"] = np.where(y == 1, "fraud", "ok")
    return df


@pytest.fixture(scope="module")
def result(frame):
    return weightsearch.search(frame, target="label", progress=False, **TINY)


def test_search_on_a_dataframe_runs_an_in_memory_study(result) -> None:
    study = result.study
    assert isinstance(study, optuna.Study) and study.study_name == "search"
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert result.best_value == max(t.value for t in study.trials)
    assert result.storage == "memory:"
    frame = result.trials_dataframe()
    assert list(frame["number"]) == [0, 1] and frame["value"].max() == result.best_value
    # the baseline comes first, as with the CLI
    assert study.trials[0].params["weighting.scheme"] == "none"


def test_best_config_is_what_export_writes(result, tmp_path: Path) -> None:
    cfg = result.best_config
    assert cfg.classes == ["fraud", "ok"] and cfg.task == "binary"
    assert cfg.data["feature_names"] == [f"f{i}" for i in range(5)]
    assert cfg.source["trial"] == result.best_trial.number
    path = result.export(tmp_path / "best.toml")
    exported = weightsearch.load_config(path)
    assert exported.params() == cfg.params()
    assert exported.to_dict()["weighting"] == cfg.to_dict()["weighting"]


def test_train_returns_a_model_that_predicts_class_names(result, frame, tmp_path) -> None:
    model = result.train(tmp_path / "model", epochs=3)
    rows = frame.drop(columns="label")
    labels = model.predict(rows)
    assert set(labels) <= {"fraud", "ok"}
    # the held-out part of the search's data, re-made as the search made it, scored by sklearn
    meta = model.meta
    assert meta["epochs"] == 3 and meta["test_rows"] == 24 and meta["train_rows"] == 96
    assert (tmp_path / "model" / "model.keras").is_file()
    reloaded = weightsearch.load_model(tmp_path / "model")
    assert list(reloaded.predict(rows)) == list(labels)
    # its held-out score is sklearn's on the search's own test rows, re-made independently
    from weightsearch import data as data_mod

    _, test_idx = data_mod.train_test_split(result.prepared.data, 0.2, 0)
    truth = frame["label"].to_numpy()[test_idx]
    expected = f1_score(truth, labels[test_idx], average="macro")
    assert meta["test"]["macro_f1"] == pytest.approx(expected)


def test_train_refuses_an_unknown_override(result) -> None:
    with pytest.raises(ValueError, match=r"train\(\): unknown override\(s\) \['epoch'\]"):
        result.train(epoch=3)


def test_report_writes_the_html_report(result, tmp_path: Path) -> None:
    rep = result.report(tmp_path / "rep")
    names = {p.name for p in rep.files}
    assert "report.html" in names and "optimization_history.png" in names
    assert "search" in (tmp_path / "rep" / "report.html").read_text()


@pytest.mark.slow
def test_search_on_arrays_and_on_a_spec_dict_and_a_builtin(tmp_path: Path) -> None:
    x, y = make_classification(n_samples=90, n_features=5, n_classes=3, n_informative=3,
                               weights=[0.6, 0.3, 0.1], random_state=1)
    arrays = weightsearch.search((x, y), progress=False, **{**TINY, "n_trials": 1})
    assert arrays.prepared.data.task == "multiclass"
    assert arrays.best_config.classes == ["0", "1", "2"]
    model = arrays.train()
    labels = model.predict(x)  # integers, as y was: they compare with it directly
    assert labels.dtype.kind == "i" and set(labels) <= {0, 1, 2}
    assert list(model.classes_) == [0, 1, 2]
    assert f1_score(y, labels, average="macro") >= 0.0  # sklearn takes them without glue

    spec = {"name": "from-dict", "data": {"source": "builtin:synthetic",
                                          "options": {"n_samples": 80}},
            "cv": {"folds": 2, "epochs": 1}, "search": {"n_trials": 1},
            "space": TINY["space"]}
    url = f"sqlite:///{tmp_path}/o.db"
    from_dict = weightsearch.search(spec, storage=url, progress=False)
    assert from_dict.study.study_name == "from-dict" and len(from_dict.study.trials) == 1
    # the spec's own values stand where no keyword overrides them (folds=2, not 5)
    assert from_dict.spec.cv.folds == 2 and from_dict.spec.cv.epochs == 1
    # stored: a second search on the same storage and name resumes the study
    again = weightsearch.search(spec, storage=url, n_trials=1, progress=False)
    assert [t.number for t in again.study.trials] == [0, 1]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"folds": 1}, "search(): folds= (cv.folds): must be an integer in [2, 50], but got 1."),
        ({"n_trials": 0},
         "search(): n_trials= (search.n_trials): must be an integer >= 1, but got 0."),
        ({"metric": "accuracy"}, "search(): metric= (cv.metric): Unknown metric 'accuracy'"),
        ({"n_trial": 3}, "search(): n_trial: unknown key; expected one of: name, seed"),
        ({"cv": {"patience": -1}}, "search(): cv.patience: must be an integer >= 0"),
    ],
)
def test_a_bad_keyword_is_one_clear_error_naming_it(kwargs, expected) -> None:
    with pytest.raises(SpecError) as err:
        weightsearch.search("builtin:synthetic", progress=False, **kwargs)
    assert isinstance(err.value, ValueError)
    assert len(err.value.problems) == 1
    assert str(err.value).startswith(expected)


def test_bad_data_arguments_are_one_clear_error(frame) -> None:
    with pytest.raises(SpecError, match=r"^search\(\): data: expected a pandas DataFrame"):
        weightsearch.search(42)
    with pytest.raises(ValueError, match=r"^The DataFrame has no target column\(s\) 'nope'"):
        weightsearch.search(frame, target="nope")
    with pytest.raises(ValueError, match=r"^The arrays: array 'x' has 3 rows but 'y' has 2"):
        weightsearch.search((np.zeros((3, 2)), np.zeros(2)))
    with pytest.raises(SpecError, match="target: only for a DataFrame or a file"):
        weightsearch.search((np.zeros((4, 2)), np.zeros(4)), target="y")


def test_search_with_a_user_arch_registered_from_python(frame) -> None:
    import keras

    @weightsearch.register_arch("api_two_layer")
    def build(input_shape, n_outputs, *, width: int = 6, task: str = "binary"):
        """Input → Dense(width, relu) → Dense(n_outputs, softmax)."""
        inputs = keras.Input(shape=input_shape)
        hidden = keras.layers.Dense(width, activation="relu")(inputs)
        return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(hidden))

    result = weightsearch.search(
        frame, target="label", progress=False, n_trials=1, folds=2, epochs=1,
        space={"model": {"arch": "api_two_layer", "width": [4, 8]}},
    )
    (trial,) = result.study.trials
    assert trial.state.name == "COMPLETE"
    assert trial.user_attrs["config"]["model"]["arch"] == "api_two_layer"
    assert trial.params["model.api_two_layer.width"] in range(4, 9)
    assert result.best_config.model["arch"] == "api_two_layer"


def test_a_spec_keeps_its_own_storage_tracking_and_values(tmp_path: Path) -> None:
    from weightsearch import api

    url = f"sqlite:///{tmp_path}/kept.db"
    spec = {"name": "kept", "data": {"source": "builtin:synthetic"},
            "search": {"storage": url, "n_trials": 7}, "cv": {"folds": 3},
            "tracking": {"enabled": True, "mlflow_uri": f"sqlite:///{tmp_path}/m.db"}}
    raw, _, _ = api._raw_spec(spec, None)
    raw.pop("_from_spec")
    defaults = {"n_trials": api.DefaultInt(20), "folds": api.DefaultInt(5),
                "epochs": api.DefaultInt(30), "metric": api.DefaultStr("macro_f1"),
                "seed": api.DefaultInt(0)}
    kept = api._parse(api._merge(raw, api._keyword_spec(
        {}, None, None, None, None, {}, from_spec=True)), None)
    assert (kept.search.storage, kept.search.n_trials, kept.cv.folds) == (url, 7, 3)
    assert kept.tracking.enabled and kept.tracking.mlflow_uri.endswith("m.db")
    # a keyword passed, even equal to search()'s default, overrides the spec
    given = {**defaults, "n_trials": 20}
    over = {k: v for k, v in given.items() if api.passed(v)}
    changed = api._parse(api._merge(raw, api._keyword_spec(
        over, None, None, None, None, {}, from_spec=True)), None)
    assert changed.search.n_trials == 20 and changed.cv.folds == 3


def test_a_dataframe_with_integer_or_repeated_column_names() -> None:
    from weightsearch import data as data_mod

    x, y = make_classification(n_samples=40, n_features=3, n_informative=2, n_redundant=0,
                               random_state=0)
    frame = pd.DataFrame(x)  # columns 0, 1, 2
    frame["label"] = y
    ds = data_mod.from_frame(frame, target="label")
    assert ds.feature_names == ["0", "1", "2"]  # strings, as export and train expect
    twice = pd.concat([frame[[0]], frame], axis=1)
    with pytest.raises(data_mod.DataError, match=r"column\(s\) '0' appear more than once"):
        data_mod.from_frame(twice, target="label")


def test_an_in_memory_export_tells_train_to_take_a_file(result, tmp_path: Path) -> None:
    from weightsearch.data import DataError

    path = result.export(tmp_path / "mem.toml")
    with pytest.raises(DataError, match=r"exported from data in memory \('python:DataFrame'"):
        weightsearch.train_from_config(path)


def _shop_frame(n: int = 40) -> pd.DataFrame:
    """A table with a text column (4 shops, one row missing its shop), holes in a number, an
    ID column and a binary label that follows the shop."""
    rng = np.random.default_rng(0)
    shops = np.array(["a", "b", "c", "d"], dtype=object)[np.arange(n) % 4]
    amount = rng.normal(size=n)
    amount[[3, 17, 29]] = np.nan
    df = pd.DataFrame({"id": np.arange(n), "amount": amount, "shop": shops,
                       "label": np.where(np.isin(shops, ["c", "d"]), "fraud", "ok")})
    df.loc[5, "shop"] = None
    return df


def test_search_on_a_table_with_text_and_holes_takes_the_treatment_keywords() -> None:
    df = _shop_frame()
    result = weightsearch.search(
        df, target="label", categorical="auto", missing="impute", drop=("id",),
        progress=False, n_trials=1, folds=2, epochs=1,
        space={"model": {"arch": "mlp", "depth": 1, "width": 8}},
    )
    (trial,) = result.study.trials
    assert trial.state.name == "COMPLETE" and np.isfinite(trial.value)
    data = result.spec.data
    assert (data.categorical, data.missing, data.drop) == ("auto", "impute", ("id",))
    assert result.prepared.data.columns.describe() == [
        ("amount", "numeric, 3 missing"), ("shop", "categorical, 4 levels (one-hot), 1 missing"),
        ("id", "dropped")]
    # from_frame takes the same keywords: shop listed by name, the same codes
    from weightsearch import data as data_mod

    listed = data_mod.from_frame(df, target="label", categorical=["shop"], drop=["id"])
    np.testing.assert_array_equal(listed.x, result.prepared.data.x)
    np.testing.assert_array_equal(listed.x[:6, 1], [0, 1, 2, 3, 0, np.nan])


def test_bad_treatment_keywords_are_one_clear_error() -> None:
    from weightsearch.data import DataError

    df = _shop_frame()
    with pytest.raises(SpecError, match=r"^search\(\): missing= \(data\.missing\): unknown "
                                        r"value 'drop'; expected one of: impute, error\.$"):
        weightsearch.search(df, target="label", missing="drop", progress=False)
    with pytest.raises(SpecError, match=r"^search\(\): categorical= \(data\.categorical\): "
                                        r"expected \"auto\" or a list of column names"):
        weightsearch.search(df, target="label", categorical=3, progress=False)
    with pytest.raises(DataError, match=r"column 'amount' has 3 missing value\(s\), at data "
                                        r"row\(s\) 4, 18, 30"):
        weightsearch.search(df, target="label", missing="error", progress=False)
    with pytest.raises(DataError, match=r"^The DataFrame: data\.drop names column\(s\) 'ID' "
                                        "that the table does not have"):
        weightsearch.search(df, target="label", drop=["ID"], progress=False)
    with pytest.raises(SpecError, match=r"drop: only for a DataFrame or a table file"):
        weightsearch.search((np.zeros((4, 2)), np.zeros(4)), drop=["a"], progress=False)


def test_a_fold_ensemble_without_tracking_is_refused_before_any_trial(tmp_path) -> None:
    df = _shop_frame()
    url = f"sqlite:///{tmp_path}/o.db"
    with pytest.raises(SpecError, match=r"search\.final: 'fold_ensemble' needs MLflow tracking"):
        weightsearch.search(df, target="label", search={"final": "fold_ensemble"},
                            storage=url, progress=False, n_trials=1, folds=2, epochs=1)
    assert not (tmp_path / "o.db").exists()  # nothing started
