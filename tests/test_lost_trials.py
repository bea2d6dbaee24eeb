"""Finding trials whose local worker process is gone (the journal backend has no heartbeats)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import optuna
import pytest

from weightsearch import runner
from weightsearch.workers import _process_gone, lost_local_trials, process_start, worker_id

linux_only = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")


def _exited_child() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@linux_only
def test_a_live_process_is_not_gone_and_a_reused_pid_is() -> None:
    started = process_start()
    assert started.isdigit()
    assert not _process_gone(os.getpid(), started)
    assert not _process_gone(os.getpid())  # no start time recorded: the pid alone decides
    assert _process_gone(os.getpid(), str(int(started) + 1))  # same pid, another process


@linux_only
def test_an_exited_process_is_gone_and_so_is_a_zombie() -> None:
    assert _process_gone(_exited_child())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
    try:
        assert _process_gone(child.pid)
    finally:
        child.wait()


def _running_trial(study: optuna.Study, worker: str, started: str = "") -> int:
    trial = study.ask()
    trial.set_user_attr("worker", worker)
    trial.set_user_attr("worker_started", started)
    return trial._trial_id


@linux_only
def test_lost_local_trials_are_those_of_gone_processes_on_this_host() -> None:
    study = optuna.create_study(direction="maximize")
    host = socket.gethostname()
    dead = _running_trial(study, f"{host}:{_exited_child()}")
    ours = _running_trial(study, worker_id(), process_start())
    elsewhere = _running_trial(study, f"another-host:{_exited_child()}")
    unknown = _running_trial(study, "")
    lost = lost_local_trials(study)
    assert lost == [dead]
    assert {ours, elsewhere, unknown}.isdisjoint(lost)


@linux_only
def test_recover_fails_and_requeues_a_lost_trial_once() -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.set_user_attr("worker", f"{socket.gethostname()}:{_exited_child()}")
    assert runner.recover_lost_trials(study) == [trial.number]
    assert runner.recover_lost_trials(study) == []  # already failed: nothing more to do
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]
    assert study.trials[1].params == study.trials[0].params
    assert runner.requeued_since(study, 0) == [trial.number]
