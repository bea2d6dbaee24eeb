"""A store that stops accepting writes stops the study with one line naming it and the real
cause; finished trials are kept and the runs closed where the store still allows it.

Tests may run as root, which ignores ``chmod``: a read-only store is made with SQLite's
``PRAGMA query_only`` (the same ``attempt to write a readonly database`` as a read-only file),
a removed one by deleting the file (SQLite's own check), and a full disk by a tracker client
that raises what MLflow raises then (its SQLAlchemy error of sqlite3's message)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from weightsearch import objective, training
from weightsearch.cli import main


@pytest.fixture
def fast_cv(monkeypatch):
    """The CV replaced by a fixed score; ``hooks[n]`` runs before trial n's score."""
    hooks: dict[int, object] = {}

    def cross_validate(self, trial, config, run):
        if trial.number in hooks:
            hooks[trial.number]()
        return 0.5

    monkeypatch.setattr(objective.Objective, "_cross_validate", cross_validate)
    monkeypatch.setattr(training, "clear", lambda freeze=False: None)
    return hooks


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def _trials(tmp_path: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/optuna.db").trials


def _runs(tmp_path: Path) -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_a_read_only_optuna_storage_stops_the_study_with_the_real_cause(
    tiny_spec, tmp_path: Path, fast_cv, capsys
) -> None:
    from weightsearch import storage as storage_mod

    opened = []
    real_open = storage_mod.open_storage

    def open_storage(*args, **kwargs):
        opened.append(real_open(*args, **kwargs))
        return opened[-1]

    def read_only() -> None:
        from sqlalchemy import event

        engine = opened[0].engine
        event.listen(engine, "connect", lambda c, r: c.execute("PRAGMA query_only = ON"))
        engine.dispose()  # new connections: read-only

    fast_cv[1] = read_only
    import weightsearch.cli  # noqa: F401 - _start imports open_storage from storage

    storage_mod.open_storage = open_storage
    try:
        spec = tiny_spec(name="ro", n_trials=3)
        assert main(["study", str(spec)]) == 1
    finally:
        storage_mod.open_storage = real_open
    line = _one_error_line(capsys)
    assert line.startswith(f"error: the Optuna storage sqlite:///{tmp_path}/optuna.db ")
    assert "attempt to write a readonly database" in line
    assert "invalid data in the commit" not in line
    trials = _trials(tmp_path, "ro")
    assert trials[0].state == optuna.trial.TrialState.COMPLETE  # kept
    assert all(r.info.status != "RUNNING" for r in _runs(tmp_path))  # MLflow still writable


def test_a_storage_file_removed_mid_study_says_so_not_should_not_reach(
    tiny_spec, tmp_path: Path, fast_cv, capsys
) -> None:
    fast_cv[1] = lambda: (tmp_path / "optuna.db").unlink()
    spec = tiny_spec(name="gone", n_trials=3)
    assert main(["study", str(spec)]) == 1
    line = _one_error_line(capsys)
    assert line.startswith(f"error: the Optuna storage sqlite:///{tmp_path}/optuna.db ")
    assert "readonly database" in line and "Should not reach" not in line
    assert all(r.info.status != "RUNNING" for r in _runs(tmp_path))


def _full_disk(*args, **kwargs):
    """What MLflow's SQLAlchemy store raises when SQLite cannot write (a full disk)."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import OperationalError

    cause = OperationalError("INSERT INTO runs ...", {}, sqlite3.OperationalError(
        "database or disk is full"))
    raise MlflowException(f"{cause}\n[SQL: INSERT INTO runs ...]") from cause


def test_a_tracking_store_that_refuses_writes_stops_the_study_in_one_line(
    tiny_spec, tmp_path: Path, fast_cv, monkeypatch, capsys
) -> None:
    def full() -> None:
        monkeypatch.setattr(MlflowClient, "log_batch", _full_disk)

    fast_cv[1] = full  # trial 1 writes its metrics: refused
    spec = tiny_spec(name="full", n_trials=4)
    assert main(["study", str(spec)]) == 1
    line = _one_error_line(capsys)
    assert line == (
        f"error: the MLflow store sqlite:///{tmp_path}/mlflow.db refused a write "
        "(set tags): database or disk is full"
    )
    trials = _trials(tmp_path, "full")
    assert len(trials) == 2  # stopped at once, not a failed trial after another
    assert trials[0].state == optuna.trial.TrialState.COMPLETE
    assert trials[1].state == optuna.trial.TrialState.FAIL
    assert "TrackingError" in trials[1].user_attrs["error"]
    monkeypatch.undo()
    status = {r.data.tags.get("weightsearch.role"): r.info.status for r in _runs(tmp_path)
              if r.data.tags.get("optuna.trial_number") != "0"}
    assert status == {"study": "FAILED", "trial": "FAILED"}  # closed: set_terminated still works


def test_a_tracking_store_that_refuses_the_first_write(tiny_spec, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(MlflowClient, "create_run", _full_disk)
    spec = tiny_spec(name="ro-mlflow", n_trials=2)
    assert main(["study", str(spec)]) == 1
    line = _one_error_line(capsys)
    assert line == (f"error: the MLflow store sqlite:///{tmp_path}/mlflow.db refused a write "
                    "(start the study's run): database or disk is full")


def test_store_cause_finds_the_driver_message_under_the_wrappers() -> None:
    from sqlalchemy.exc import OperationalError

    from weightsearch.storage import store_cause

    driver = sqlite3.OperationalError("attempt to write a readonly database")
    try:
        try:
            try:
                raise OperationalError("UPDATE trials ...", {}, driver)
            except OperationalError as e:
                raise optuna.exceptions.StorageInternalError(
                    "An exception is raised during the commit. This typically happens due to "
                    "invalid data in the commit, e.g. exceeding max length.") from e
        except optuna.exceptions.StorageInternalError:
            raise AssertionError("Should not reach.")  # noqa: B904 - as Optuna's finally does
    except AssertionError as exc:
        assert store_cause(exc) == "attempt to write a readonly database"
    assert store_cause(ValueError("plain\nsecond line")) == "plain"
