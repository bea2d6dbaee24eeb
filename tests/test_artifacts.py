"""Per-trial artifacts: bounded figures, and the artifact thread that keeps them off the
trial's critical path (flushed by ``end_study`` and at exit, never silently lost)."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from weightsearch import artifacts, tracking


def _ticks(axis) -> list[str]:
    return [t.get_text() for t in axis.get_ticklabels()]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


class _RecordingTracker:
    """Keeps what is logged; ``gate`` (if given) holds every call until it is set."""

    enabled = True

    def __init__(self, gate: threading.Event | None = None, fail: bool = False) -> None:
        self.gate, self.fail = gate, fail
        self.logged: dict[str, object] = {}
        self.threads: set[str] = set()

    def _wait(self) -> None:
        self.threads.add(threading.current_thread().name)
        if self.gate is not None:
            assert self.gate.wait(30)
        if self.fail:
            raise OSError("disk full")

    def log_text(self, run, text, name) -> None:
        self._wait()
        self.logged[name] = text

    def log_figure(self, run, figure, name) -> None:
        self._wait()
        buf = io.BytesIO()
        figure.savefig(buf, format="png")
        self.logged[name] = buf.getvalue()


def test_small_matrix_shows_every_count_and_the_class_names() -> None:
    cm = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 9]])
    fig = artifacts.confusion_figure(cm, ["cat", "dog", "eel"], "fold 1")
    ax = fig.axes[0]
    assert sorted(int(t.get_text()) for t in ax.texts) == sorted(cm.ravel().tolist())
    assert _ticks(ax.xaxis) == ["cat", "dog", "eel"] == _ticks(ax.yaxis)
    assert ax.get_title() == "fold 1" and len(fig.axes) == 1  # no colour bar needed

    # multilabel: one row per label, TN FP FN TP columns
    fig = artifacts.confusion_figure(
        np.array([[8, 1, 2, 4], [9, 0, 1, 5]]), ["TN", "FP", "FN", "TP"],
        row_labels=["a", "b"], xlabel="outcome", ylabel="label",
    )
    ax = fig.axes[0]
    assert _ticks(ax.yaxis) == ["a", "b"] and _ticks(ax.xaxis) == ["TN", "FP", "FN", "TP"]
    assert len(ax.texts) == 8 and ax.get_xlabel() == "outcome"


def test_large_matrix_is_a_compact_bounded_heat_map() -> None:
    c = 300
    cm = np.diag(np.arange(1, c + 1))
    start = time.perf_counter()
    fig = artifacts.confusion_figure(cm, [f"class_{i}" for i in range(c)], "fold 0")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    seconds = time.perf_counter() - start
    ax = fig.axes[0]
    assert not ax.texts  # no per-cell labels: they would cost C² ≈ 90,000 text draws
    assert len(fig.axes) == 2  # the colour bar says what the colours count
    assert "class index" in ax.get_xlabel() and "class_0" not in _ticks(ax.xaxis)
    assert max(fig.get_size_inches()) <= artifacts.MAX_SIDE_IN
    width, height = _png_size(buf.getvalue())
    assert width <= 100 * artifacts.MAX_SIDE_IN and height <= 100 * artifacts.MAX_SIDE_IN
    assert seconds < 10, seconds  # about half a second; the C² labels took minutes


def test_300_class_artifacts_reach_an_mlflow_sqlite_store_fast(tmp_path: Path) -> None:
    tracker = tracking.make_tracker(True, f"sqlite:///{tmp_path}/mlflow.db", "artifacts")
    tracker.start_study("artifacts", {}, {})
    run = tracker.start_trial(0, {}, {})
    c, n = 300, 1200
    rng = np.random.default_rng(0)
    y = rng.integers(0, c, n)
    proba = rng.dirichlet(np.ones(c), n)
    proba[np.arange(n), y] += 1.0
    classes = [f"class_{i}" for i in range(c)]
    start = time.perf_counter()
    artifacts.log_fold_artifacts(
        tracker, run, y, proba, task="multiclass", classes=classes, positive=1, title="fold 0"
    )
    submitted = time.perf_counter() - start
    tracker.end_trial(run, "COMPLETE")
    tracker.end_study()  # waits for the artifact thread
    seconds = time.perf_counter() - start
    assert tracking.flush_artifacts(0) == 0
    assert submitted < 1.0, submitted  # the trial did not wait for the drawing
    assert seconds < 20, seconds  # drawing + upload; the C² labels took minutes
    names = {a.path for a in tracker.client.list_artifacts(run)}
    assert {"confusion_matrix.png", "classification_report.txt"} <= names
    local = Path(tracker.client.download_artifacts(run, "confusion_matrix.png", str(tmp_path)))
    assert max(_png_size(local.read_bytes())) <= 100 * artifacts.MAX_SIDE_IN
    report = Path(
        tracker.client.download_artifacts(run, "classification_report.txt", str(tmp_path))
    ).read_text()
    assert report.startswith("fold 0") and "class_299" in report and "class_0" in report


def test_log_fold_artifacts_returns_before_they_are_drawn_and_flush_waits() -> None:
    gate = threading.Event()
    tracker = _RecordingTracker(gate)
    y = np.array([0, 1, 1, 0, 1])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3], [0.1, 0.9]])
    start = time.perf_counter()
    artifacts.log_fold_artifacts(
        tracker, "run-1", y, proba, task="binary", classes=["neg", "pos"], positive=1,
        title="fold 3 (best)",
    )
    y[:] = 0  # the caller may reuse its arrays: the job drew from copies
    assert time.perf_counter() - start < 1.0
    assert tracking.flush_artifacts(timeout=0.3) == 1 and not tracker.logged
    gate.set()
    assert tracking.flush_artifacts() == 0
    assert tracker.threads == {"weightsearch-artifacts"}
    assert tracker.logged["classification_report.txt"].startswith("fold 3 (best)")
    assert "neg" in tracker.logged["classification_report.txt"]
    _png_size(tracker.logged["confusion_matrix.png"])

    # off: nothing is queued
    artifacts.log_fold_artifacts(
        tracking.NullTracker(), "run-1", y, proba, task="binary", classes=["neg", "pos"],
        positive=1, title="x",
    )
    artifacts.log_fold_artifacts(
        tracker, None, y, proba, task="binary", classes=["neg", "pos"], positive=1, title="x"
    )
    assert tracking.flush_artifacts(0) == 0


def test_a_failing_artifact_job_warns_and_the_next_one_still_runs(caplog) -> None:
    before = tracking.artifact_failures()
    done = threading.Event()
    with caplog.at_level(logging.WARNING, logger="weightsearch"):
        tracking.submit_artifact_job(lambda: 1 / 0, "the figure of run r1")
        tracking.submit_artifact_job(done.set, "the figure of run r2")
        assert tracking.flush_artifacts(30) == 0
    assert done.is_set() and tracking.artifact_failures() == before + 1
    assert "could not log the figure of run r1: division by zero" in caplog.text


def test_failing_fold_artifacts_do_not_raise_in_the_trial(caplog) -> None:
    tracker = _RecordingTracker(fail=True)
    with caplog.at_level(logging.WARNING, logger="weightsearch"):
        artifacts.log_fold_artifacts(
            tracker, "run-9", np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]),
            task="binary", classes=["a", "b"], positive=1, title="t",
        )
        assert tracking.flush_artifacts(30) == 0
    assert "fold artifacts of MLflow run run-9: disk full" in caplog.text


def _script(body: str) -> list[str]:
    code = "import sys, time, threading\nfrom weightsearch import tracking\n" + textwrap.dedent(
        body
    )
    return [sys.executable, "-c", code]


def test_artifacts_still_queued_at_a_normal_exit_are_written(tmp_path: Path) -> None:
    out = tmp_path / "late.txt"
    proc = subprocess.run(
        _script(
            f"""
            def job():
                time.sleep(1.0)
                open({str(out)!r}, "w").write("logged")
            tracking.submit_artifact_job(job, "a slow figure")
            print("main is done")
            """
        ),
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == "logged"
    assert "not logged" not in proc.stderr


def test_a_stuck_artifact_job_neither_hangs_the_exit_nor_is_lost_silently() -> None:
    proc = subprocess.run(
        _script(
            """
            tracking.EXIT_FLUSH_S = 0.5
            tracking.submit_artifact_job(threading.Event().wait, "a stuck upload")
            """
        ),
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0
    assert "1 MLflow artifact job(s) not logged (still running after 0.5 s)" in proc.stderr


@pytest.mark.skipif(os.name != "posix", reason="SIGINT")
def test_ctrl_c_during_the_exit_flush_stops_it_at_once() -> None:
    proc = subprocess.Popen(
        _script(
            """
            import signal  # Ctrl-C as in a terminal, even if this run inherited SIG_IGN
            signal.signal(signal.SIGINT, signal.default_int_handler)
            tracking.submit_artifact_job(threading.Event().wait, "a stuck upload")
            print("ready", flush=True)
            """
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # now in the exit flush, which would wait EXIT_FLUSH_S (60 s)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert time.monotonic() - start < 10
    assert "1 MLflow artifact job(s) not logged (interrupted)" in err


def test_the_fold_report_applies_multiclass_decision_weights() -> None:
    # argmax says class a for all three rows; with w = (1, 3, 1) the first two become b
    # (0.4·3 = 1.2 > 0.5, 0.3·3 = 0.9 > 0.6) and the third stays a (0.05·3 < 0.9)
    y = np.array([1, 1, 0])
    proba = np.array([[0.5, 0.4, 0.1], [0.6, 0.3, 0.1], [0.9, 0.05, 0.05]])
    kw = {"task": "multiclass", "classes": ["a", "b", "c"], "positive": 1, "title": "t"}
    fig, plain = artifacts.fold_artifacts(y, proba, **kw)
    fig2, weighted = artifacts.fold_artifacts(y, proba, weights=[1.0, 3.0, 1.0], **kw)
    import matplotlib.pyplot as plt

    plt.close(fig), plt.close(fig2)
    row = {t.split()[0]: t.split()[1:4] for t in weighted.splitlines()[2:6] if t.strip()}
    assert row["b"] == ["1.0000", "1.0000", "1.0000"] and row["a"] == ["1.0000"] * 3
    row = {t.split()[0]: t.split()[1:4] for t in plain.splitlines()[2:6] if t.strip()}
    assert row["b"] == ["0.0000", "0.0000", "0.0000"]
