"""Unit tests of the study run (weightsearch.study) and the engine registry, without training:
the engine loops here are plain Python, so each test takes well under a second after the
module's one data preparation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from weightsearch import engines
from weightsearch import spec as spec_mod
from weightsearch.base import CLASS_WEIGHT_MULTILABEL
from weightsearch.liveness import worker_record
from weightsearch.spec import SpecError
from weightsearch.study import (
    TAG,
    ConsecutiveFailures,
    Prepared,
    StudyRun,
    budget_spent,
    counted_trials,
    create_study,
    leaderboard,
    prepare,
)

RAW = {
    "name": "unit",
    "seed": 3,
    "data": {"source": "builtin:synthetic",
             "options": {"n_samples": 60, "n_features": 4, "weights": [0.7, 0.3]}},
    "cv": {"folds": 2, "epochs": 2},
    "search": {"n_trials": 2, "sampler": "random", "pruner": "none"},
    "space": {"weighting": {"scheme": ["none", "balanced"]},
              "loss": {"name": ["crossentropy", "focal"]}, "model": {"arch": "mlp"}},
}


class RecordingTracker:
    """A tracker that writes down what the study run asks of it."""

    enabled = True

    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.calls: list[tuple[str, Any]] = []

    def start_study(self, name: str, params: dict[str, Any], tags: dict[str, str]) -> None:
        self.parent_run_id = "parent-1"
        self.calls.append(("start_study", (name, params, tags)))

    def end_study(self, state: str = "COMPLETE") -> None:
        self.calls.append(("end_study", state))

    def close_stale_studies(self, name: str, gone: Any) -> list[str]:
        return []  # tests/test_tracking.py checks the real one

    def set_tags(self, run: str | None, tags: dict[str, str]) -> None:
        self.calls.append(("set_tags", (run, tags)))

    def end_trial(self, run: str | None, state: str) -> None:
        self.calls.append(("end_trial", (run, state)))


@pytest.fixture(scope="module")
def base_prepared() -> Prepared:
    return prepare(spec_mod.parse(RAW))


def _prepared(base: Prepared, tmp_path: Path, **changes: Any) -> Prepared:
    spec = base.spec.replace(**{"search.storage": f"sqlite:///{tmp_path}/o.db", **changes})
    return Prepared(spec, base.data, base.train, base.test_idx, base.space)


def test_prepare_refuses_class_weight_for_multi_hot_targets() -> None:
    raw = {**RAW, "data": {"source": "builtin:synthetic-multilabel",
                           "options": {"n_samples": 60}},
           "cv": {"folds": 2, "epochs": 2, "apply_weights": "class_weight"},
           "space": {**RAW["space"], "loss": {"name": "weighted_bce"}}}
    with pytest.raises(SpecError) as err:
        prepare(spec_mod.parse(raw))
    assert err.value.problems == [f"cv.apply_weights: {CLASS_WEIGHT_MULTILABEL}"]


def test_open_writes_the_masked_spec_and_queues_the_baseline(base_prepared, tmp_path) -> None:
    run = StudyRun(_prepared(base_prepared, tmp_path))
    study = run.open()
    assert study.user_attrs["metric"] == "macro_f1"
    assert study.user_attrs["engine"] == "optuna"
    assert study.user_attrs["spec"]["search"]["storage"] == f"sqlite:///{tmp_path}/o.db"
    assert study.user_attrs["spec"]["name"] == "unit"
    (queued,) = study.trials
    assert queued.state == optuna.trial.TrialState.WAITING
    assert queued.system_attrs["fixed_params"] == {"weighting.scheme": "none",
                                                   "loss.name": "crossentropy"}
    # opening again (a resume, or another worker) queues nothing more
    assert len(StudyRun(_prepared(base_prepared, tmp_path)).open().trials) == 1


def test_the_password_of_a_storage_url_is_never_stored(base_prepared, tmp_path) -> None:
    store = optuna.storages.InMemoryStorage()
    study = create_study(base_prepared.spec, store, "postgresql://u:secret@h/db")
    assert study.user_attrs["spec"]["search"]["storage"] == "postgresql://u:***@h/db"


def test_a_study_of_another_engine_is_refused(base_prepared, tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/o.db"
    kt = optuna.create_study(study_name="unit", storage=url, direction="maximize")
    kt.set_user_attr("engine", "keras-tuner")
    kt.add_trial(optuna.trial.create_trial(value=0.5))
    with pytest.raises(SpecError, match="already holds 1 trial\\(s\\) run by the keras-tuner"):
        StudyRun(_prepared(base_prepared, tmp_path)).open()


def _other_data(base: Prepared, tmp_path: Path, **data: Any) -> Prepared:
    """The base study's spec on other data (same name, same storage)."""
    raw = {**RAW, "data": {**RAW["data"], **data},
           "search": {**RAW["search"], "storage": f"sqlite:///{tmp_path}/o.db"}}
    return prepare(spec_mod.parse(raw))


def test_the_study_records_its_data_and_refuses_a_resume_on_other_data(
    base_prepared, tmp_path
) -> None:
    study = StudyRun(_prepared(base_prepared, tmp_path)).open()
    record = study.user_attrs["data"]
    assert record["source"] == "builtin:synthetic" and record["task"] == "binary"
    assert record["classes"] == ["0", "1"] and record["features"] == [f"x{i}" for i in range(4)]
    assert record["fingerprint"].startswith("sha256:") and record["rows"] == len(
        base_prepared.train)
    assert record["positive"] == "1"  # the minority class of the search part
    # the same data again (a resume, a worker joining) is welcome
    assert StudyRun(_prepared(base_prepared, tmp_path)).open().user_attrs["data"] == record

    # other rows of the same shape: only the fingerprint tells
    other = _other_data(base_prepared, tmp_path,
                        options={**RAW["data"]["options"], "class_sep": 2.0})
    with pytest.raises(SpecError) as err:
        StudyRun(other).open()
    (line,) = err.value.problems
    assert line.startswith("data: study 'unit' in sqlite:///") and "other data" in line
    assert "fingerprint" in line and "task" not in line and "classes" not in line
    assert "another `name`" in line and "another storage (--storage)" in line
    # three classes: the task and the classes differ too
    three = _other_data(base_prepared, tmp_path, options={
        "n_samples": 60, "n_features": 4, "weights": [0.5, 0.3, 0.2]})
    with pytest.raises(SpecError) as err:
        StudyRun(three).open()
    (line,) = err.value.problems
    assert "task 'binary' then, 'multiclass' now" in line
    assert "classes ['0', '1'] then, ['0', '1', '2'] now" in line
    # nothing of the refused runs was written
    again = optuna.load_study(study_name="unit", storage=f"sqlite:///{tmp_path}/o.db")
    assert again.user_attrs["data"] == record
    assert again.user_attrs["spec"]["data"]["options"] == RAW["data"]["options"]


def test_a_study_made_before_the_record_resumes_and_gets_it(base_prepared, tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/o.db"
    old = optuna.create_study(study_name="unit", storage=url, direction="maximize")
    old.add_trial(optuna.trial.create_trial(value=0.5))
    assert "data" not in old.user_attrs
    study = StudyRun(_prepared(base_prepared, tmp_path)).open()
    assert study.user_attrs["data"]["source"] == "builtin:synthetic"


def test_running_starts_and_ends_the_parent_run(base_prepared, tmp_path) -> None:
    tracker = RecordingTracker()
    run = StudyRun(_prepared(base_prepared, tmp_path), tracker=tracker)
    study = run.open()
    with run.running(n_trials=2, params={"extra": 1}, tags={"t": "v"}) as outcome:
        study.optimize(lambda t: 0.5, n_trials=2, callbacks=run.callbacks)
    name, params, tags = tracker.calls[0][1]
    assert name == "unit" and params["n_trials"] == 2 and params["extra"] == 1
    assert params["storage"] == f"sqlite:///{tmp_path}/o.db" and params["seed"] == 3
    assert tags == {"optuna.study": "unit", "t": "v", **worker_record("weightsearch.")}
    assert tracker.calls[-1] == ("end_study", "COMPLETE")
    assert outcome.ran == 2 and not outcome.interrupted and outcome.seconds > 0


def test_an_interrupt_ends_the_run_killed_and_is_not_raised(base_prepared, tmp_path) -> None:
    tracker = RecordingTracker()
    run = StudyRun(_prepared(base_prepared, tmp_path), tracker=tracker)
    run.open()

    def objective(trial: Any) -> float:
        raise KeyboardInterrupt

    with run.running(n_trials=2) as outcome:
        run.study.optimize(objective, n_trials=2)
    assert outcome.interrupted and tracker.calls[-1] == ("end_study", "KILLED")
    assert [t.state.name for t in run.study.trials] == ["FAIL"]  # the baseline, interrupted


def test_consecutive_failures_stop_the_study_and_fail_the_run(base_prepared, tmp_path) -> None:
    tracker = RecordingTracker()
    prepared = _prepared(base_prepared, tmp_path, **{"search.max_consecutive_failures": 2})
    run = StudyRun(prepared, tracker=tracker)
    run.open()

    def objective(trial: Any) -> float:
        raise ValueError("broken")

    with run.running(n_trials=5) as outcome:
        run.study.optimize(objective, n_trials=5, catch=(ValueError,), callbacks=run.callbacks)
    assert outcome.stopped_for_failures and outcome.ran == 2
    assert tracker.calls[-1] == ("end_study", "FAIL")


def test_a_worker_joins_the_coordinators_parent_run(base_prepared, tmp_path) -> None:
    tracker = RecordingTracker()
    run = StudyRun(_prepared(base_prepared, tmp_path), tracker=tracker, parent_run_id="coord")
    run.open()
    with run.running(n_trials=1):
        assert tracker.parent_run_id == "coord"
    assert tracker.calls == []  # neither started nor ended here
    assert tracker.parent_run_id is None


def test_consecutive_failures_count_hand_made_sequences() -> None:
    f = ConsecutiveFailures(3)
    assert [f.record(s) for s in ["FAIL", "FAIL", "COMPLETE", "FAIL", "PRUNED"]] == [False] * 5
    assert [f.record(s) for s in ["FAIL", "FAIL", "FAIL"]] == [False, False, True]
    off = ConsecutiveFailures(0)
    assert not any(off.record("FAIL") for _ in range(10))


def test_the_budget_counts_a_retried_trial_once() -> None:
    study = optuna.create_study(direction="maximize")
    for _ in range(2):
        study.add_trial(optuna.trial.create_trial(value=0.1))
    lost = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL)
    study.add_trial(lost)
    study.enqueue_trial({}, user_attrs={})
    # the queued trial is the retry of trial 2 (as Optuna's retry callback records it)
    retry = study.get_trials(deepcopy=False)[-1]
    study._storage.set_trial_system_attr(retry._trial_id, "retry_history", [2])
    assert counted_trials(study) == 3  # trials 0, 1 and the retry; lost trial 2 is replaced
    assert counted_trials(study, waiting=False) == 2
    assert not budget_spent(study, 3)  # a queued trial is still to run
    study.optimize(lambda t: 0.2, n_trials=1)
    assert budget_spent(study, 3) and not budget_spent(study, 4)


def test_leaderboard_orders_complete_trials_best_first() -> None:
    study = optuna.create_study(direction="maximize")
    for value, scheme in [(0.4, "none"), (0.9, "balanced"), (0.6, "sqrt")]:
        study.add_trial(optuna.trial.create_trial(
            value=value, user_attrs={"config": {"weighting": {"scheme": scheme}}, "cv_std": 0.1}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    rows = leaderboard(study, top=2)
    assert [(r["trial"], r["scheme"], r["value"]) for r in rows] == [(1, "balanced", 0.9),
                                                                     (2, "sqrt", 0.6)]
    assert rows[0]["loss"] == "?" and rows[0]["std"] == 0.1


def test_engine_names_resolve_through_the_registry(base_prepared) -> None:
    assert set(engines.ENGINES) == {"optuna", "keras_tuner"}
    for spelling in ("keras-tuner", "KerasTuner", "kt"):
        spec = base_prepared.spec.replace(**{"search.engine": spelling})
        assert engines.engine_of(spec).name == "keras-tuner"
    bad = base_prepared.spec.replace(**{"search.engine": "ray"})
    with pytest.raises(SpecError) as err:
        engines.engine_of(bad)
    assert err.value.problems[0].startswith("search.engine: Unknown engine 'ray'; expected")


@pytest.mark.parametrize("name", list(engines.ENGINES))
def test_every_engine_has_the_engine_interface(name: str) -> None:
    engine = engines.ENGINES.get(name)
    assert engine.__doc__ and engine.__doc__.strip()
    assert callable(engine.check) and callable(engine.run) and callable(engine.describe)
    assert engines.ENGINES.canonical(engine.name) == name


def test_the_optuna_engine_refuses_a_sampler_whose_package_is_missing(base_prepared) -> None:
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        pytest.skip("PyTorch is installed here, so the gp sampler can run")
    spec = base_prepared.spec.replace(**{"search.sampler": "gp"})
    with pytest.raises(SpecError) as err:
        engines.engine_of(spec).check(spec, base_prepared.space)
    assert "search.sampler: 'gp' needs torch, which is not installed" in err.value.problems[0]


def test_a_killed_invocations_parent_run_is_closed_when_the_study_next_starts(
    base_prepared, tmp_path
) -> None:
    """A SIGKILLed invocation never closes its parent run: the next start closes it as
    KILLED, with a tag saying why; a live invocation's run, and another study's, are kept."""
    import subprocess
    import sys

    from mlflow import MlflowClient

    from weightsearch.liveness import process_start
    from weightsearch.tracking import MlflowTracker

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MlflowTracker(uri, "exp")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    dead = dict(worker_record("weightsearch."))
    dead["weightsearch.worker"] = f"{dead['weightsearch.worker'].rpartition(':')[0]}:{child.pid}"
    dead["weightsearch.worker_started"] = process_start(child.pid)
    child.wait(timeout=30)
    client = MlflowClient(tracking_uri=uri)
    runs = {}
    for key, study, tags in [("killed", "unit", dead), ("live", "unit", worker_record(TAG)),
                             ("other", "another", dead)]:
        tracker.start_study(study, {}, tags)
        runs[key], tracker.parent_run_id = tracker.parent_run_id, None
    run = StudyRun(_prepared(base_prepared, tmp_path), tracker=tracker)
    run.open()
    with run.running(n_trials=1):
        pass
    status = {k: client.get_run(r).info.status for k, r in runs.items()}
    assert status == {"killed": "KILLED", "live": "RUNNING", "other": "RUNNING"}
    closed = client.get_run(runs["killed"]).data.tags["weightsearch.closed"]
    assert closed.startswith(f"its process ({dead['weightsearch.worker']}) is gone")


@pytest.mark.parametrize(("key", "change"), [("cv.folds", 3), ("cv.metric", "weighted_f1"),
                                             ("seed", 4)])
def test_a_resume_that_changes_what_scores_mean_is_refused(base_prepared, tmp_path, key, change
                                                           ) -> None:
    run = StudyRun(_prepared(base_prepared, tmp_path))
    run.open().optimize(lambda t: 0.5, n_trials=1)  # the study now holds a trial
    changed = _prepared(base_prepared, tmp_path, **{key: change})
    with pytest.raises(SpecError) as err:
        StudyRun(changed).open()
    (line,) = err.value.problems
    assert line.startswith(f"{key}: study 'unit' in sqlite:///") and f"now {change!r}" in line
    # validate refuses it too, writing nothing (engines.validate: prepare, then check_resume)
    from weightsearch.study import check_resume

    with pytest.raises(SpecError) as err:
        check_resume(changed, "optuna")
    assert err.value.problems == [line]
    # more epochs is a longer budget, not another objective: accepted
    StudyRun(_prepared(base_prepared, tmp_path, **{"cv.epochs": 3})).open()


def test_check_resume_passes_a_storage_that_does_not_exist_yet(base_prepared, tmp_path) -> None:
    from weightsearch.study import check_resume

    check_resume(_prepared(base_prepared, tmp_path), "optuna")
    assert not (tmp_path / "o.db").exists()  # nothing was created
