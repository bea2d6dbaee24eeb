"""weightsearch.compat on the installed versions: no fallback is taken. A failure here
means an upgrade moved an internal that compat reaches into; fix compat, not the test."""

from __future__ import annotations

import atexit
from pathlib import Path

import optuna
import pytest

from weightsearch import compat
from weightsearch.storage import make_storage


@pytest.fixture
def rdb_study(tmp_path: Path) -> optuna.Study:
    store = make_storage(f"sqlite:///{tmp_path}/optuna.db", heartbeat_interval=5)
    return optuna.create_study(study_name="compat", storage=store)


def test_tensorflow_gradient_registry_is_found() -> None:
    table = compat.gradient_registry()
    assert isinstance(table, dict) and table  # TensorFlow registers its ops' gradients
    assert compat.release_train_step_gradients() >= 0


def test_heartbeats_are_seen_on_an_rdb_storage(rdb_study: optuna.Study) -> None:
    assert compat.heartbeat_enabled(rdb_study) is True


def test_a_journal_storage_has_no_heartbeat(tmp_path: Path) -> None:
    study = optuna.create_study(storage=make_storage(f"journal:{tmp_path}/o.log"))
    assert compat.heartbeat_enabled(study) is False


def test_an_rdb_storage_without_an_interval_has_no_heartbeat(tmp_path: Path) -> None:
    store = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/plain.db")
    assert compat.heartbeat_enabled(optuna.create_study(storage=store)) is False


def test_study_storage_and_trial_id(rdb_study: optuna.Study) -> None:
    assert compat.study_storage(rdb_study) is rdb_study._storage
    rdb_study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    store = rdb_study._storage
    for trial in rdb_study.trials:
        expected = store.get_trial_id_from_study_id_trial_number(
            rdb_study._study_id, trial.number
        )
        assert compat.trial_id(trial) == expected
        assert store.get_trial(compat.trial_id(trial)).number == trial.number


def test_atexit_runner_is_cpythons() -> None:
    runner = compat.atexit_runner()
    assert callable(runner) and runner is atexit._run_exitfuncs


def test_quiet_optuna_keeps_errors_only() -> None:
    before = optuna.logging.get_verbosity()
    try:
        compat.quiet_optuna()
        assert optuna.logging.get_verbosity() == optuna.logging.ERROR
    finally:
        optuna.logging.set_verbosity(before)


def test_wraps_looks_through_closures() -> None:
    def outer():
        def inner():
            return 1

        def wrapper():
            return inner()

        return wrapper

    wrapped = outer()
    assert compat.wraps(wrapped, "outer.<locals>.inner")
    assert not compat.wraps(wrapped, "outer.<locals>.inner", depth=0)
    assert not compat.wraps(wrapped, "elsewhere")
