"""weightsearch.tracking on a real (temporary) SQLite MLflow store, read back with an
independent ``MlflowClient``. One store for the module: creating it takes seconds."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from mlflow import MlflowClient

from weightsearch import tracking
from weightsearch.tracking import (
    STATUS,
    MlflowTracker,
    NullTracker,
    TrackingError,
    make_tracker,
    served,
)

EXPERIMENT = "ws-tracking-test"


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite MLflow store with the test experiment already created."""
    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    url = f"sqlite:///{path}"
    MlflowTracker(url, EXPERIMENT)
    return url


@pytest.fixture
def tracker(uri: str) -> MlflowTracker:
    """A fresh tracker (its own parent run) on the module's store."""
    made = make_tracker(True, uri, EXPERIMENT)
    assert isinstance(made, MlflowTracker)
    return made


@pytest.fixture(scope="module")
def reader(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri)


def raise_empty(*args, **kwargs):
    raise RuntimeError()


def test_disabled_tracking_is_a_null_tracker_that_touches_nothing(tmp_path: Path) -> None:
    db = tmp_path / "never.db"
    off = make_tracker(False, f"sqlite:///{db}", EXPERIMENT)
    assert type(off) is NullTracker and off.enabled is False
    off.start_study("s", {"a": 1}, {})
    assert off.start_trial(0, {"a": 1}, {}) is None
    assert off.parent_run_id is None
    assert not db.exists()


def test_enabled_tracking_uses_the_named_experiment(tracker, reader) -> None:
    assert tracker.enabled is True
    assert reader.get_experiment_by_name(EXPERIMENT) is None  # created with the first run
    exp_id = tracker.experiment_id
    exp = reader.get_experiment_by_name(EXPERIMENT)
    assert exp is not None and exp.experiment_id == exp_id
    # artifacts of a local SQLite store live beside the database file
    db = Path(tracker.uri.removeprefix("sqlite:///")).resolve()
    assert exp.artifact_location == (db.parent / "mlartifacts" / EXPERIMENT).as_uri()


def test_study_parent_run_and_nested_trial_run_read_back(tracker, reader) -> None:
    tracker.start_study("study-a", {"n_trials": 3, "space": {"loss": ["focal"]}}, {"who": "me"})
    parent = reader.get_run(tracker.parent_run_id)
    assert parent.data.tags["weightsearch.study"] == "study-a"
    assert parent.data.tags["weightsearch.role"] == "study"
    assert parent.data.tags["who"] == "me"
    assert parent.data.params == {"n_trials": "3", "space": '{"loss": ["focal"]}'}
    assert parent.info.status == "RUNNING"

    run = tracker.start_trial(7, {"loss.name": "focal", "loss.focal.gamma": 2.5}, {"x": "y"})
    child = reader.get_run(run)
    assert child.info.run_name == "trial-7"
    assert child.data.tags["mlflow.parentRunId"] == tracker.parent_run_id
    assert child.data.tags["optuna.trial_number"] == "7"
    assert child.data.tags["optuna.state"] == "RUNNING"
    assert child.data.tags["x"] == "y"
    assert child.data.params == {"loss.name": "focal", "loss.focal.gamma": "2.5"}

    rows = [("fold0/val_macro_f1", 0.5, 0), ("fold0/val_macro_f1", 0.75, 1), ("loss", 1.25, 0)]
    tracker.log_metric_rows(run, rows)
    tracker.log_metrics(run, {"cv_macro_f1": 0.625, "skipped": None})
    tracker.set_tags(run, {"note": 3})
    history = reader.get_metric_history(run, "fold0/val_macro_f1")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.5), (1, 0.75)]
    assert [(m.step, m.value) for m in reader.get_metric_history(run, "loss")] == [(0, 1.25)]
    child = reader.get_run(run)
    assert child.data.metrics["cv_macro_f1"] == 0.625 and "skipped" not in child.data.metrics
    assert child.data.tags["note"] == "3"

    tracker.end_study("COMPLETE")
    assert reader.get_run(parent.info.run_id).info.status == "FINISHED"
    assert tracker.parent_run_id is None


def test_many_metric_rows_are_all_logged(tracker, reader) -> None:
    run = tracker.start_trial(0, {}, {})
    rows = [("curve", float(i), i) for i in range(2500)]  # more than one log_batch
    tracker.log_metric_rows(run, rows)
    history = reader.get_metric_history(run, "curve")
    assert sorted((m.step, m.value) for m in history) == [(s, v) for _, v, s in rows]


@pytest.mark.parametrize("state", [*STATUS, "WAITING"])
def test_end_trial_maps_optuna_states_to_mlflow_statuses(tracker, reader, state: str) -> None:
    run = tracker.start_trial(1, {}, {})
    tracker.end_trial(run, state)
    got = reader.get_run(run)
    assert got.info.status == STATUS.get(state, "FAILED")  # unknown states count as failed
    assert got.data.tags["optuna.state"] == state
    assert got.info.end_time is not None


def test_status_table_covers_every_finished_optuna_state() -> None:
    import optuna

    finished = {s.name for s in optuna.trial.TrialState if s.is_finished()}
    assert finished <= set(STATUS)
    assert {STATUS[s] for s in ("COMPLETE", "PRUNED")} == {"FINISHED"}
    assert STATUS["FAIL"] == "FAILED"


def test_unreachable_tracking_server_is_one_clear_line() -> None:
    with pytest.raises(TrackingError) as info:
        make_tracker(True, "http://user:s3cret@127.0.0.1:1", EXPERIMENT)
    message = str(info.value)
    assert message.startswith("cannot reach the MLflow tracking server 'http://user:***@127.0.0.1:1'")
    assert "\n" not in message and "s3cret" not in message


def test_a_file_that_is_not_a_database_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_text("not a database\n" * 100)
    with pytest.raises(TrackingError) as info:
        make_tracker(True, f"sqlite:///{bad}", EXPERIMENT)
    assert "\n" not in str(info.value)


def test_a_store_error_with_an_empty_message_names_its_type(uri, monkeypatch) -> None:
    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", raise_empty)
    with pytest.raises(TrackingError) as info:
        make_tracker(True, uri, EXPERIMENT)
    assert str(info.value) == f"cannot use the MLflow tracking URI {uri!r}: RuntimeError"

    with pytest.raises(TrackingError) as info:
        tracking.find_study_run(uri, EXPERIMENT, "s")
    assert f"{uri!r}: RuntimeError (use --no-tracking" in str(info.value)


def test_report_and_train_run_errors_with_an_empty_message(tracker, tmp_path, monkeypatch) -> None:
    tracker.start_study("study-r", {}, {})
    tracker.end_study()
    (tmp_path / "a.txt").write_text("x")
    monkeypatch.setattr(MlflowClient, "log_artifacts", raise_empty)
    with pytest.raises(TrackingError, match=r": RuntimeError \(use --no-tracking"):
        tracking.log_report_artifacts(tracker.uri, EXPERIMENT, "study-r", tmp_path)

    monkeypatch.setattr(tracker.client, "create_run", raise_empty)
    with pytest.raises(TrackingError, match=r": RuntimeError \(use --no-tracking"):
        served.start_train_run(tracker, "final", {}, {})


def test_a_failing_artifact_job_with_an_empty_message_is_a_warning(caplog) -> None:
    before = tracking.artifact_failures()
    with caplog.at_level(logging.WARNING, logger="weightsearch"):
        tracking.submit_artifact_job(raise_empty, "the figure of trial 3")
        assert tracking.flush_artifacts(10) == 0
    assert tracking.artifact_failures() == before + 1
    assert "could not log the figure of trial 3: RuntimeError" in caplog.text


def test_tracking_masks_urls_with_the_storage_function() -> None:
    from weightsearch import storage

    assert tracking.mask_url is storage.mask_url


def test_the_served_signature_declares_numbers_double_and_the_example_conforms(tmp_path) -> None:
    """Every numeric feature is ``double`` (integers too), integer codes of a categorical
    ``long``. MLflow's check then passes floats with NaN, refuses an int64 frame column of
    whole numbers (what the README tells Python callers), and REST input, parsed by the
    signature, takes whole numbers and nulls; the input example is in the served types."""
    import json

    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc.scoring_server import infer_and_parse_data

    from weightsearch import data as data_mod

    frame = pd.DataFrame({
        "n": np.arange(40, 80, dtype=np.int64),                  # a complete integer column
        "code": np.arange(40, dtype=np.int64) % 3,               # integer codes, categorical
        "f": np.linspace(0.0, 1.0, 40),
        "b": np.arange(40) % 2 == 0,
        "s": ["a", "b"] * 20,
        "label": [0, 1, 1, 0] * 10,
    })
    ds = data_mod.from_frame(frame, target="label", categorical=["code", "b", "s"])
    types = {c.name: c.value_type for c in ds.columns.features}
    assert types == {"n": "double", "code": "long", "f": "double", "b": "boolean", "s": "string"}
    example = ds.columns.served_rows(ds.x[:2])
    assert example.dtypes.astype(str).to_dict() == {
        "n": "float64", "code": "int64", "f": "float64", "b": "bool", "s": "object"}
    assert example["n"].tolist() == [40.0, 41.0]

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input[["n"]]

    sig = served.signature_of(example, example[["n"]], types)
    mlflow.pyfunc.save_model(str(tmp_path / "echo"), python_model=Echo(), signature=sig,
                             input_example=example)
    model = mlflow.pyfunc.load_model(str(tmp_path / "echo"))
    assert model.predict(example)["n"].tolist() == [40.0, 41.0]  # the example conforms
    holes = example.assign(n=[np.nan, 7.0])
    out = model.predict(holes)
    assert np.isnan(out["n"].iloc[0]) and out["n"].iloc[1] == 7.0
    whole = example.assign(n=np.array([40, 41], dtype=np.int64))
    with pytest.raises(MlflowException, match="Can not safely convert int64 to float64"):
        model.predict(whole)
    body = {"dataframe_split": {"columns": list(example.columns),
                                "data": [[40, 1, 0.5, True, "a"], [None, 2, 0.25, False, None]]}}
    parsed = infer_and_parse_data(json.loads(json.dumps(body)), model.metadata.get_input_schema())
    out = model.predict(parsed)
    assert out["n"].iloc[0] == 40.0 and np.isnan(out["n"].iloc[1])


def test_no_artifact_bar_turns_mlflows_download_bar_off_unless_the_user_chose(monkeypatch) -> None:
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR as bar

    from weightsearch.tracking.served import no_artifact_bar

    monkeypatch.delenv(bar.name, raising=False)
    assert bar.get() is True  # MLflow's default
    with no_artifact_bar():
        assert bar.get() is False
    assert bar.name not in __import__("os").environ  # restored: unset again
    monkeypatch.setenv(bar.name, "true")  # the user's choice wins
    with no_artifact_bar():
        assert bar.get() is True
