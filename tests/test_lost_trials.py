"""Finding trials whose local worker process is gone (the journal backend has no heartbeats)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import psutil
import pytest

from weightsearch import liveness
from weightsearch.liveness import (
    lost_local_trials,
    mark_worker,
    process_gone,
    process_start,
    worker_id,
    worker_scope,
)
from weightsearch.storage import make_storage
from weightsearch.study import budget_spent

pytestmark = pytest.mark.skipif(not worker_scope(), reason="psutil cannot read processes here")
X = {"x": optuna.distributions.FloatDistribution(0, 1)}


@pytest.fixture
def live_child() -> Iterator[subprocess.Popen]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        deadline = time.monotonic() + 10
        while not process_start(child.pid):  # psutil sees the child once it has started
            assert time.monotonic() < deadline, "psutil never saw the child process"
            time.sleep(0.01)
        yield child
    finally:
        child.kill()
        child.wait()


def _exited_child() -> tuple[int, str]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    started = process_start(child.pid)
    child.wait()
    return child.pid, started


def test_a_live_process_is_not_gone_and_a_reused_pid_is(live_child) -> None:
    started = process_start(live_child.pid)
    process = psutil.Process(live_child.pid)
    assert float(started) == pytest.approx(process.create_time() - psutil.boot_time(), abs=0.01)
    assert not process_gone(live_child.pid, started)
    assert process_gone(live_child.pid, f"{float(started) + 1:.2f}")  # same pid, another process


def test_a_killed_worker_is_gone_while_a_live_one_is_not(live_child) -> None:
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = process_start(victim.pid)
        assert started and not process_gone(victim.pid, started)
        victim.kill()
        victim.wait(timeout=10)
        assert process_gone(victim.pid, started)
    finally:
        victim.kill()
        victim.wait(timeout=10)
    assert not process_gone(live_child.pid, process_start(live_child.pid))
    assert worker_scope().startswith(f"{worker_id().rpartition(':')[0]}/")


@pytest.mark.skipif(not hasattr(os, "waitid"), reason="os.waitid (POSIX) leaves a zombie")
def test_an_exited_process_is_gone_and_so_is_a_zombie() -> None:
    assert process_gone(*_exited_child())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start(child.pid)
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
    try:
        assert process_gone(child.pid, started)
    finally:
        child.wait()


def _running(study: optuna.Study, pid: int, started: str, scope: str | None = None) -> int:
    trial = study.ask(X)
    trial.set_user_attr("worker", f"{worker_id().rpartition(':')[0]}:{pid}")
    trial.set_user_attr("worker_started", started)
    trial.set_user_attr("worker_scope", worker_scope() if scope is None else scope)
    return trial._trial_id


def test_lost_local_trials_are_those_of_gone_processes_in_this_scope(live_child) -> None:
    study = optuna.create_study(direction="maximize")
    dead = _running(study, *_exited_child())
    reused = _running(study, live_child.pid, "1")  # its pid now runs another process
    alive = _running(study, live_child.pid, process_start(live_child.pid))
    ours = study.ask(X)
    mark_worker(ours)
    other_scope = _running(study, *_exited_child(), scope="another-boot/pid:[1]")
    unnamed = study.ask(X)._trial_id  # created, but has not recorded its worker yet
    assert sorted(lost_local_trials(study)) == sorted([dead, reused])
    assert {alive, ours._trial_id, other_scope, unnamed}.isdisjoint(lost_local_trials(study))


def test_recover_fails_and_requeues_a_lost_trial_once_with_a_clean_retry() -> None:
    study = optuna.create_study(direction="maximize")
    lost = study.ask(X)
    mark_worker(lost)
    pid, started = _exited_child()
    lost.set_user_attr("worker", f"{worker_id().rpartition(':')[0]}:{pid}")
    lost.set_user_attr("worker_started", started)
    lost.set_user_attr("mlflow_run_id", "abc")
    assert liveness.recover_lost_trials(study) == [lost.number]
    assert liveness.recover_lost_trials(study) == []  # already failed: nothing more to do
    failed, retry = study.trials
    assert (failed.state, retry.state) == (optuna.trial.TrialState.FAIL,
                                           optuna.trial.TrialState.WAITING)
    assert retry.params == failed.params
    # the retry names no worker until one runs it, so it cannot be taken for the lost one
    assert retry.user_attrs == {}
    assert liveness.requeued_since(study, 0) == [lost.number]
    # a queued retry keeps the budget open although it is already counted
    assert not budget_spent(study, total=1)
    assert liveness.trials_run_since(study, 0) == 1


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_recover_with_heartbeats_takes_this_machines_dead_trials_at_once(tmp_path: Path) -> None:
    """An RDB storage with heartbeats: a trial killed here a moment ago (well inside the
    grace period) is failed and re-queued now, so an immediate re-run cannot finish the study
    with it RUNNING; one of another machine is left to the heartbeats."""
    storage = make_storage(f"sqlite:///{tmp_path}/o.db", heartbeat_interval=60)
    study = optuna.create_study(storage=storage, direction="maximize")
    ours = study.ask(X)
    mark_worker(ours)  # this live process: never judged
    dead = _running(study, *_exited_child())
    elsewhere = _running(study, *_exited_child(), scope="another-boot/pid:[1]")
    assert liveness.recover_lost_trials(study) == [1]
    states = {t._trial_id: t.state for t in study.trials}
    assert states[dead] == optuna.trial.TrialState.FAIL
    assert states[ours._trial_id] == states[elsewhere] == optuna.trial.TrialState.RUNNING
    assert study.trials[-1].state == optuna.trial.TrialState.WAITING  # its retry
    assert liveness.requeued_since(study, 0) == [1]
