"""End to end through the CLI: a tiny study, read back through Optuna and MLflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from weightsearch.cli import main

pytestmark = pytest.mark.slow


def _child_runs(uri: str, experiment: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if r.data.tags.get("weightsearch.role") == "trial"], client, runs


def test_tiny_study_is_logged_to_optuna_and_mlflow(tiny_spec, tmp_path: Path, capsys) -> None:
    spec = tiny_spec(n_trials=3)
    assert main(["study", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "Top trials of 'tiny'" in out and "mlflow ui --backend-store-uri" in out

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert len(study.trials) == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    children, client, runs = _child_runs(uri, "tiny")
    parents = [r for r in runs if r.data.tags.get("weightsearch.role") == "study"]
    assert len(parents) == 1 and len(children) == 3
    by_number = {int(r.data.tags["optuna.trial_number"]): r for r in children}
    assert sorted(by_number) == [t.number for t in study.trials]
    for t in study.trials:
        run = by_number[t.number]
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.tags["optuna.state"] == "COMPLETE" and run.info.status == "FINISHED"
        # every sampled hyperparameter is a param of the run, with the same value
        for name, value in t.params.items():
            assert run.data.params[name] == (
                value if isinstance(value, str) else str(value)
            ) or float(run.data.params[name]) == pytest.approx(value)
        assert any(k.startswith("class_weight.") for k in run.data.params)
        # per-epoch curves: one point per epoch run, step = epoch
        for fold, n_epochs in enumerate(t.user_attrs["epochs_run"]):
            hist = client.get_metric_history(run.info.run_id, f"fold{fold}/val_macro_f1")
            assert [m.step for m in hist] == list(range(n_epochs))
            assert len(client.get_metric_history(run.info.run_id, f"fold{fold}/loss")) == n_epochs
        # the trial value is the mean of the per-fold best values logged
        folds = [run.data.metrics[f"fold{i}/best_macro_f1"] for i in range(2)]
        assert t.value == pytest.approx(np.mean(folds), abs=1e-12)
        assert run.data.metrics["cv_macro_f1"] == pytest.approx(t.value)
        assert t.user_attrs["fold_values"] == pytest.approx(folds)
        # threshold tuned for the binary task and recorded
        assert 0.0 < t.user_attrs["threshold"] < 1.0
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"confusion_matrix.png", "classification_report.txt"} <= artifacts


def test_resume_adds_trials_to_the_same_study(tiny_spec, tmp_path: Path) -> None:
    spec = tiny_spec(name="resume", n_trials=2)
    assert main(["study", str(spec), "--no-tracking"]) == 0
    assert main(["study", str(spec), "--no-tracking", "--n-trials", "2"]) == 0
    study = optuna.load_study(study_name="resume", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert [t.number for t in study.trials] == [0, 1, 2, 3]


def test_pruned_trial_stops_at_once_and_is_marked(tiny_spec, tmp_path: Path, monkeypatch) -> None:
    from weightsearch import study as study_mod

    # a pruner that prunes every trial at its first report (F1 can never reach 1.1)
    monkeypatch.setattr(
        study_mod, "study_pruner", lambda spec: optuna.pruners.ThresholdPruner(lower=1.1)
    )
    spec = tiny_spec(name="prune", n_trials=2, pruner="median")
    assert main(["study", str(spec)]) == 1  # no trial completed: a clear non-zero exit
    study = optuna.load_study(study_name="prune", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED"]
    for t in study.trials:
        # folds side by side: the first report is epoch 0 (step 0), for the whole trial
        assert t.user_attrs["parallel_folds"] is True
        assert t.user_attrs["pruned_at"] == {"epoch": 1}  # stopped after epoch 1
        assert list(t.intermediate_values) == [0]
    children, _, _ = _child_runs(f"sqlite:///{tmp_path}/mlflow.db", "prune")
    assert {r.data.tags["optuna.state"] for r in children} == {"PRUNED"}
    assert all(r.info.status == "FINISHED" for r in children)


def test_failed_trial_is_recorded_and_the_study_continues(
    tiny_spec, tmp_path: Path, monkeypatch
) -> None:
    from weightsearch import training

    real_build = training.build_member
    calls = {"n": 0}

    def flaky_build(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:  # the first fold of the first trial
            raise ValueError("boom: simulated build error")
        return real_build(*args, **kwargs)

    monkeypatch.setattr(training, "build_member", flaky_build)
    spec = tiny_spec(name="fail", n_trials=2)
    assert main(["study", str(spec)]) == 0
    study = optuna.load_study(study_name="fail", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE"]
    assert study.trials[0].user_attrs["error"] == "ValueError: boom: simulated build error"
    children, _, _ = _child_runs(f"sqlite:///{tmp_path}/mlflow.db", "fail")
    failed = [r for r in children if r.data.tags["optuna.trial_number"] == "0"][0]
    assert failed.info.status == "FAILED" and failed.data.tags["optuna.state"] == "FAIL"
    assert "boom" in failed.data.tags["error"]


def test_subprocess_cli_bad_spec_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "x"\n[data]\nsource = "builtin:breast-cancer"\n'
        '[space.loss]\nname = ["crossentropy", "hinge"]\n'
        '[space.model]\narch = ["cnn"]\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "weightsearch", "validate", str(bad)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert any("space.loss.name: Unknown loss 'hinge'; expected one of:" in x for x in lines)
    assert any("space.model.arch:" in x and "cnn" in x for x in lines)
    assert not (tmp_path / "weightsearch.db").exists()


def test_ctrl_c_dropped_inside_a_finaliser_still_stops_the_trial(
    tiny_spec, tmp_path: Path, monkeypatch
) -> None:
    """Python only prints an exception raised in ``__del__``: a Ctrl-C that lands while a
    finaliser runs (garbage collection during training) is lost. The epoch-end check of
    ``interrupts.interrupt_requested`` stops the trial anyway."""
    import os
    import signal

    from weightsearch import training

    real_build = training.build_member

    class SendsCtrlCWhenCollected:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(100_000):  # the handler runs here, inside __del__: dropped
                pass

    def build_then_collect(*args, **kwargs):
        built = real_build(*args, **kwargs)
        SendsCtrlCWhenCollected()  # collected at once
        return built

    dropped: list[type] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: dropped.append(u.exc_type))
    monkeypatch.setattr(training, "build_member", build_then_collect)
    spec = tiny_spec(name="dropped", n_trials=2)
    assert main(["study", str(spec)]) == 130
    assert dropped == []  # recorded, not raised where Python could only print it
    study = optuna.load_study(study_name="dropped", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert [t.state.name for t in study.trials] == ["FAIL"]
    assert study.trials[0].user_attrs["error"] == "interrupted"
    children, _, _ = _child_runs(f"sqlite:///{tmp_path}/mlflow.db", "dropped")
    assert [r.info.status for r in children] == ["KILLED"]


def test_a_refused_study_leaves_no_mlflow_experiment(tiny_spec, tmp_path: Path, capsys) -> None:
    """Refused after the tracker exists (the study holds another engine's trials): the
    experiment is created only with the first run, so nothing is left behind."""
    from mlflow import MlflowClient

    url = f"sqlite:///{tmp_path}/optuna.db"
    kt = optuna.create_study(study_name="refused", storage=url, direction="maximize")
    kt.set_user_attr("engine", "keras-tuner")
    kt.add_trial(optuna.trial.create_trial(value=0.5))
    spec = tiny_spec(name="refused")
    assert main(["study", str(spec)]) == 2
    assert "already holds 1 trial(s) run by the keras-tuner engine" in capsys.readouterr().err
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    assert [e.name for e in client.search_experiments()] == ["Default"]
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_five_ctrl_cs_exit_cleanly_and_close_every_run(tiny_spec, tmp_path: Path) -> None:
    """Five SIGINTs 0.3 s apart once a trial runs: exit 130, no traceback and no
    "Exception ignored", no MLflow run and no Optuna trial left RUNNING."""
    import os
    import signal
    import time

    from mlflow import MlflowClient

    spec = tiny_spec(name="ctrlc", n_trials=50)
    spec.write_text(spec.read_text().replace("epochs = 2", "epochs = 200"))  # long trials
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "weightsearch", "study", str(spec)], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = f"sqlite:///{tmp_path}/optuna.db"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # a trial is running and training
            time.sleep(0.5)
            try:
                trials = optuna.load_study(study_name="ctrlc", storage=url).trials
            except Exception:  # noqa: BLE001 - not created yet
                continue
            if any(t.state.name == "RUNNING" and "config" in t.user_attrs for t in trials):
                break
        else:
            pytest.fail("no trial started within 120 s")
        time.sleep(1.0)  # into its epochs
        for _ in range(5):
            os.kill(proc.pid, signal.SIGINT)
            time.sleep(0.3)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Exception ignored" not in err and "Traceback" not in err, err
    assert all(t.state.name != "RUNNING" for t in optuna.load_study(
        study_name="ctrlc", storage=url).trials)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert runs and all(r.info.status in ("FINISHED", "KILLED", "FAILED") for r in runs), [
        (r.info.run_name, r.info.status) for r in runs]


def test_version_prints_the_one_version_and_exits_0() -> None:
    import importlib.metadata
    import re

    import weightsearch

    proc = subprocess.run([sys.executable, "-m", "weightsearch", "--version"],
                          capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        0, f"weightsearch {weightsearch.__version__}\n", "")
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", weightsearch.__version__)
    # the installed metadata reads the same attribute (pyproject: dynamic version)
    assert importlib.metadata.version("weightsearch") == weightsearch.__version__
    pyproject = Path(weightsearch.__file__).parents[1] / "pyproject.toml"
    if pyproject.exists():  # a source checkout: no second version written there
        import tomllib

        project = tomllib.loads(pyproject.read_text())["project"]
        assert "version" not in project and "version" in project["dynamic"]
