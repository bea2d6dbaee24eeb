"""Many workers, crashes and interrupts, against the real local services.

PostgreSQL tests use conftest's ``pg_urls`` (a fresh database per test on 127.0.0.1:5432, and
the ``postgres`` marker). They skip only when not in CI and the server is unreachable; with
``CI`` or ``WEIGHTSEARCH_REQUIRE_POSTGRES`` set an unreachable server fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from weightsearch import compat

pytestmark = pytest.mark.slow

WORKER_SPEC = """
name = "{name}"
seed = 0
[data]
source = "builtin:synthetic"
test_size = 0.2
options = {{ n_samples = {rows}, n_features = 6, weights = [0.75, 0.25], class_sep = 2.0 }}
[cv]
folds = 2
epochs = {epochs}
batch_size = 16
patience = 0
[search]
n_trials = {n_trials}
sampler = "tpe"
pruner = "none"
storage = "{storage}"
heartbeat_interval = 1
grace_period = 3
[space.model]
arch = "mlp"
depth = 1
width = [8, 16]
[tracking]
mlflow_uri = "{mlflow}"
"""


def write_spec(tmp_path: Path, *, storage: str, mlflow: str, name: str = "w", n_trials: int = 4,
               epochs: int = 2, rows: int = 160) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(WORKER_SPEC.format(name=name, storage=storage, mlflow=mlflow,
                                       n_trials=n_trials, epochs=epochs, rows=rows))
    return path


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "weightsearch", *args]


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path: Path, monkeypatch) -> None:
    """A PostgreSQL-backed MLflow store keeps artifacts in ./mlruns: keep that out of the repo."""
    monkeypatch.chdir(tmp_path)


def child_runs(uri: str, experiment: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if r.data.tags.get("weightsearch.role") == "trial"]


def assert_exact_budget(storage: str, mlflow: str, name: str, n: int) -> None:
    study = optuna.load_study(study_name=name, storage=storage)
    numbers = [t.number for t in study.trials]
    assert numbers == list(range(n)), numbers  # exactly n, no duplicates, none lost
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    children = child_runs(mlflow, name)
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in children) == list(range(n))
    assert all(r.info.status == "FINISHED" for r in children)


def test_two_workers_on_postgres_share_one_budget(tmp_path: Path, pg_urls) -> None:
    storage, mlflow = pg_urls
    spec = write_spec(tmp_path, storage=storage, mlflow=mlflow, name="pg2", n_trials=5)
    procs = [
        subprocess.Popen(cli("worker", str(spec), "--quiet", "--worker-index", str(i)),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert_exact_budget(storage, mlflow, "pg2", 5)
    study = optuna.load_study(study_name="pg2", storage=storage)
    # both worker processes ran trials (one that ran nothing would mean no parallelism)
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2


def test_study_with_workers_on_a_journal_file(tmp_path: Path) -> None:
    storage = f"journal:{tmp_path}/optuna.journal"
    mlflow = f"sqlite:///{tmp_path}/mlflow.db"
    spec = write_spec(tmp_path, storage=storage, mlflow=mlflow, name="journal2", n_trials=4)
    proc = subprocess.run(cli("study", str(spec), "--workers", "2"), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    study = optuna.load_study(study_name="journal2", storage=journal(tmp_path / "optuna.journal"))
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    children = child_runs(mlflow, "journal2")
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in children) == [0, 1, 2, 3]
    parents = {r.data.tags["mlflow.parentRunId"] for r in children}
    assert len(parents) == 1  # every trial nests under the coordinator's parent run


def test_sqlite_is_refused_for_parallel_workers(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, storage=f"sqlite:///{tmp_path}/o.db",
                      mlflow=f"sqlite:///{tmp_path}/m.db", name="sq")
    proc = subprocess.run(cli("study", str(spec), "--workers", "2"), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "SQLite is not safe for 2 parallel workers" in proc.stderr
    assert not (tmp_path / "o.db").exists() and not (tmp_path / "m.db").exists()


def journal(path: Path) -> optuna.storages.JournalStorage:
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _wait_for_running_trial(storage: Any, name: str, proc: subprocess.Popen,
                            limit: float = 120) -> optuna.trial.FrozenTrial:
    """Poll until a trial is RUNNING and has its MLflow run and worker recorded."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the process ended before a trial was under way"
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            time.sleep(0.5)
            continue
        running = [t for t in study.get_trials(deepcopy=False)
                   if t.state == optuna.trial.TrialState.RUNNING
                   and {"mlflow_run_id", "worker"} <= t.user_attrs.keys()]
        if running:
            return running[0]
        time.sleep(0.3)
    raise AssertionError("no trial started in time")


def test_sigkilled_worker_trial_is_failed_and_retried(tmp_path: Path, pg_urls) -> None:
    storage, mlflow = pg_urls
    spec = write_spec(tmp_path, storage=storage, mlflow=mlflow, name="kill", n_trials=2,
                      epochs=60, rows=600)
    first = subprocess.Popen(cli("worker", str(spec), "--quiet"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    victim = _wait_for_running_trial(storage, "kill", first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    # as if the worker ran on another machine: its pid then proves nothing here, and only the
    # stale heartbeat can tell it is lost (on this machine the pid check would come first)
    study = optuna.load_study(study_name="kill", storage=storage)
    compat.study_storage(study).set_trial_user_attr(compat.trial_id(victim), "worker_scope",
                                                   "another-machine")
    time.sleep(4)  # past the 3 s grace period: the heartbeat is stale
    again = subprocess.run(cli("worker", str(spec), "--quiet"), capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    assert_retried_once(optuna.load_study(study_name="kill", storage=storage), victim, mlflow, 2,
                        "no heartbeat")


def assert_retried_once(study: optuna.Study, victim: optuna.trial.FrozenTrial, mlflow: str,
                        n_trials: int, reason: str) -> None:
    """The victim failed, was re-run once with the same params, its MLflow run is closed as
    FAILED, and the budget counts the retry once."""
    by_number = {t.number: t for t in study.trials}
    assert by_number[victim.number].state == optuna.trial.TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].state == optuna.trial.TrialState.COMPLETE
    assert retries[0].params == victim.params
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == n_trials and len(study.trials) == n_trials + 1
    runs = {int(r.data.tags["optuna.trial_number"]): r
            for r in child_runs(mlflow, study.study_name)}
    assert runs[victim.number].info.status == "FAILED"
    assert f"worker lost ({reason})" in runs[victim.number].data.tags["error"]
    assert sorted(runs) == sorted(by_number)  # one MLflow run per trial


def test_sigkilled_journal_worker_trial_is_failed_and_retried_by_the_next_run(
    tmp_path: Path,
) -> None:
    """The journal backend has no heartbeats: the next run sees the worker's process is gone."""
    path = tmp_path / "optuna.journal"
    mlflow = f"sqlite:///{tmp_path}/mlflow.db"
    spec = write_spec(tmp_path, storage=f"journal:{path}", mlflow=mlflow, name="jkill",
                      n_trials=2, epochs=60, rows=600)
    first = subprocess.Popen(cli("worker", str(spec), "--quiet"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    victim = _wait_for_running_trial(journal(path), "jkill", first)
    assert victim.user_attrs["worker"].endswith(f":{first.pid}")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    again = subprocess.run(cli("worker", str(spec)), capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"Recovered lost trial(s) {victim.number}" in again.stdout
    assert_retried_once(optuna.load_study(study_name="jkill", storage=journal(path)), victim,
                        mlflow, 2, "its process is gone")


def test_study_workers_recover_a_sigkilled_workers_trial(tmp_path: Path) -> None:
    """`study --workers 2` on a journal: one worker is SIGKILLed mid-trial; its trial is failed
    and re-queued at once, the other worker runs it, and the exit code says a worker died."""
    path = tmp_path / "optuna.journal"
    mlflow = f"sqlite:///{tmp_path}/mlflow.db"
    spec = write_spec(tmp_path, storage=f"journal:{path}", mlflow=mlflow, name="jk2",
                      n_trials=3, epochs=40, rows=600)
    coordinator = subprocess.Popen(cli("study", str(spec), "--workers", "2"),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = _wait_for_running_trial(journal(path), "jk2", coordinator)
    pid = int(victim.user_attrs["worker"].rpartition(":")[2])
    assert pid != coordinator.pid
    os.kill(pid, signal.SIGKILL)
    out, err = coordinator.communicate(timeout=600)
    assert coordinator.returncode == 1, out + err
    assert "Traceback" not in err
    assert f"1 worker(s) exited with an error. Lost trial(s) {victim.number} were marked " \
        "failed and re-queued, and ran again." in err
    assert_retried_once(optuna.load_study(study_name="jk2", storage=journal(path)), victim,
                        mlflow, 3, "its process is gone")


def test_sigint_marks_the_trial_failed_closes_runs_and_resumes(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/optuna.db"
    mlflow = f"sqlite:///{tmp_path}/mlflow.db"
    spec = write_spec(tmp_path, storage=storage, mlflow=mlflow, name="sigint", n_trials=3,
                      epochs=60, rows=600)
    proc = subprocess.Popen(cli("study", str(spec)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    victim = _wait_for_running_trial(storage, "sigint", proc)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    waited = time.monotonic() - sent
    assert waited < 15, f"did not exit within a few seconds: {waited:.1f} s\n{out}\n{err}"
    assert proc.returncode == 130, err
    assert "Interrupted" in out and "Run the same command to resume" in out
    assert "Traceback" not in err
    study = optuna.load_study(study_name="sigint", storage=storage)
    assert study.trials[victim.number].state == optuna.trial.TrialState.FAIL
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow)
    exp = client.get_experiment_by_name("sigint")
    runs = client.search_runs([exp.experiment_id])
    assert all(r.info.status != "RUNNING" for r in runs)
    trial_run = [r for r in runs if r.data.tags.get("optuna.trial_number") == str(victim.number)]
    assert trial_run[0].info.status == "KILLED"
    # the next invocation resumes the same study
    short = write_spec(tmp_path, storage=storage, mlflow=mlflow, name="sigint", n_trials=1,
                       rows=600)  # the same data: a resume on other data is refused
    again = subprocess.run(cli("study", str(short)), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    study = optuna.load_study(study_name="sigint", storage=storage)
    assert len(study.trials) == victim.number + 2


def test_recycled_worker_processes_share_the_budget(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/optuna.db"
    mlflow = f"sqlite:///{tmp_path}/mlflow.db"
    spec = write_spec(tmp_path, storage=storage, mlflow=mlflow, name="recycle", n_trials=3)
    text = spec.read_text().replace("grace_period = 3", "grace_period = 3\ntrials_per_process = 2")
    spec.write_text(text)
    proc = subprocess.run(cli("study", str(spec)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert_exact_budget(storage, mlflow, "recycle", 3)


def test_passwords_are_masked(tmp_path: Path, pg_urls) -> None:
    storage, mlflow = pg_urls
    secret = "s3cr3t-pw"
    # trust auth accepts any password, so the URL works and we can look for leaks
    with_pw = storage.replace("postgres@", f"postgres:{secret}@")
    spec = write_spec(tmp_path, storage=with_pw, mlflow=mlflow, name="mask", n_trials=1)
    proc = subprocess.run(cli("study", str(spec)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert secret not in proc.stdout + proc.stderr
    assert "postgres:***@" in proc.stdout
    study = optuna.load_study(study_name="mask", storage=storage)
    assert secret not in repr(study.user_attrs)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow)
    exp = client.get_experiment_by_name("mask")
    for run in client.search_runs([exp.experiment_id]):
        assert secret not in repr(run.data.params) + repr(run.data.tags)
