"""Many workers, one study: a shared trial budget, a study-wide lock, local worker processes.

Optuna's ``MaxTrialsCallback`` checks the budget only after a trial ends, so N workers can
overshoot it by N − 1 trials. Here, counting the study's trials and creating the next one
happen under one lock, shared by every worker of the study:

- PostgreSQL: a session-level advisory lock (released by the server if the worker dies);
- a journal file or SQLite: ``fcntl.flock`` on ``<file>.ws-lock`` (released by the OS).

The lock is taken before ``study.optimize(n_trials=1)`` and released by the objective as soon
as its trial exists, so trials still run in parallel.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any


class StudyLock:
    """A cross-process lock for one study; ``release()`` is idempotent."""

    def __init__(self, url: str, study_name: str) -> None:
        self.url = url
        self.key = int.from_bytes(
            hashlib.sha1(study_name.encode()).digest()[:8], "big", signed=True
        )
        self._held = False
        self._fd: int | None = None
        self._conn: Any = None
        self.kind = "none"
        if url.startswith(("postgresql", "postgres")):
            self.kind = "postgres"
        else:
            path = _file_of(url)
            if path is not None:
                self.kind = "file"
                self.path = f"{path}.ws-lock"  # not ".lock": Optuna's journal uses that

    def acquire(self) -> None:
        if self.kind == "postgres":
            if self._conn is None:
                import sqlalchemy

                self._engine = sqlalchemy.create_engine(
                    self.url, poolclass=sqlalchemy.pool.NullPool
                )
                self._conn = self._engine.connect()
            import sqlalchemy

            self._conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
            self._conn.commit()
        elif self.kind == "file":
            if self._fd is None:
                self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._held = True

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        if self.kind == "postgres":
            import sqlalchemy

            self._conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self._conn.commit()
        elif self.kind == "file" and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.release()
        if self._conn is not None:
            self._conn.close()
            self._engine.dispose()
            self._conn = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextmanager
def init_lock(url: str, study_name: str) -> Iterator[None]:
    """Serialise first-time set-up (tables, migrations, the MLflow experiment) among workers
    that start at the same moment on a fresh database."""
    lock = StudyLock(url, f"init:{study_name}")
    try:
        lock.acquire()
    except Exception:  # the storage is unreachable: let opening it report that clearly
        lock.close()
        yield
        return
    try:
        yield
    finally:
        lock.close()


def _file_of(url: str) -> str | None:
    if url.startswith("journal:") or url.endswith((".journal", ".log")):
        return url.removeprefix("journal:")
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :]
    return None


def counted_trials(study: Any, *, waiting: bool = True) -> int:
    """Trials that count towards the budget: all of them, except lost trials that were
    re-queued (their retry counts instead); queued (WAITING) ones only with ``waiting``."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    replaced: set[int] = set()
    for t in trials:
        replaced.update(t.system_attrs.get("retry_history", []))
    return sum(
        1
        for t in trials
        if t.number not in replaced and (waiting or t.state != optuna.trial.TrialState.WAITING)
    )


def optimize_until(
    study: Any,
    objective: Callable[[Any], float],
    total: int,
    *,
    url: str,
    timeout: float | None = None,
    callbacks: Sequence[Callable[[Any, Any], None]] = (),
    max_trials: int | None = None,
    recover: Callable[[Any], Any] | None = None,
) -> int:
    """Run trials until the study counts ``total`` trials (see :func:`counted_trials`) and
    none is queued, or until this process has run ``max_trials``. Returns the number of
    trials run here.

    Before each trial, under the lock, lost trials are failed and re-queued: Optuna's
    ``fail_stale_trials`` with heartbeats, else ``recover(study)``. The lock is released once
    the new trial records its worker (:func:`mark_worker`)."""
    import optuna

    lock = StudyLock(url, study.study_name)

    def objective_releasing_lock(trial: Any) -> float:
        mark_worker(trial)
        lock.release()  # the trial exists and names its worker: let the other workers go on
        return objective(trial)

    start = time.monotonic()
    ran = 0
    try:
        while timeout is None or time.monotonic() - start < timeout:
            if max_trials is not None and ran >= max_trials:
                break
            lock.acquire()
            try:
                if _heartbeat_enabled(study):
                    optuna.storages.fail_stale_trials(study)
                elif recover is not None:
                    recover(study)
                if budget_spent(study, total):
                    break
                study.optimize(
                    objective_releasing_lock, n_trials=1, catch=(Exception,), callbacks=callbacks
                )
                ran += 1
            finally:
                lock.release()
            if any(getattr(cb, "tripped", False) for cb in callbacks):
                break  # e.g. too many failures in a row
    finally:
        lock.close()
    return ran


def budget_spent(study: Any, total: int) -> bool:
    """The study counts ``total`` trials and none is queued. A queued trial (an enqueued
    baseline, a lost trial's retry) is already counted, so running it never overshoots."""
    import optuna

    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    return not waiting and counted_trials(study) >= total


# ---- which process runs a trial, and whether it is gone ---------------------------------
# The journal backend has no heartbeats: a trial whose worker was SIGKILLed (or OOM-killed)
# would stay RUNNING forever. Each trial records its process, so any process that can see
# that process's pids (same boot, same PID namespace) can tell that it is gone.
def worker_id() -> str:
    """This process as trials record it (user attribute ``worker``): ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return ""


def worker_scope() -> str:
    """Where this process's pid means this process: boot id and PID namespace (Linux);
    "" elsewhere, and then no trial is judged lost by its pid."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    boot = _read("/proc/sys/kernel/random/boot_id")
    return f"{boot}/{namespace}" if boot else ""


def _stat(pid: int) -> list[str]:
    """``/proc/<pid>/stat`` from field 3 (state) on; [] where unreadable."""
    return _read(f"/proc/{pid}/stat").rpartition(")")[2].split()


def process_start(pid: int | None = None) -> str:
    """When process ``pid`` (default: this one) started, in clock ticks since boot (Linux
    ``/proc/<pid>/stat`` field 22); "" where unknown. With the pid, it names one process even
    after the pid is reused."""
    fields = _stat(pid or os.getpid())
    return fields[19] if len(fields) > 19 else ""


def mark_worker(trial: Any) -> None:
    """Record which process runs ``trial``: user attributes ``worker``, ``worker_started``
    and ``worker_scope``."""
    trial.set_user_attr("worker", worker_id())
    trial.set_user_attr("worker_started", process_start())
    trial.set_user_attr("worker_scope", worker_scope())


def _process_gone(pid: int, started: str) -> bool:
    """Whether process ``pid`` that started at ``started`` (:func:`process_start`) has ended:
    no such pid, a zombie, or the pid now belongs to a process started at another time."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    fields = _stat(pid)
    if not fields:
        return False  # it exists but cannot be read: do not judge
    return fields[0] == "Z" or process_start(pid) not in ("", started)


def lost_local_trials(study: Any) -> list[int]:
    """Ids of RUNNING trials whose worker process is gone, among those recorded in this
    process's scope (:func:`worker_scope`); trials that do not name their worker yet, or ran
    on another machine or in another PID namespace, are never judged."""
    import optuna

    scope = worker_scope()
    if not scope:
        return []
    me = (os.getpid(), process_start())
    lost = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        attrs = t.user_attrs
        pid = str(attrs.get("worker", "")).rpartition(":")[2]
        started = str(attrs.get("worker_started", ""))
        if attrs.get("worker_scope") != scope or not pid.isdigit() or not started:
            continue
        if (int(pid), started) != me and _process_gone(int(pid), started):
            lost.append(t._trial_id)
    return lost


def _heartbeat_enabled(study: Any) -> bool:
    """Whether the study's storage sends heartbeats (an RDB storage with an interval)."""
    try:
        from optuna.storages._heartbeat import is_heartbeat_enabled
    except ImportError:  # a future Optuna: assume none, and judge lost trials by pid
        return False
    return bool(is_heartbeat_enabled(study._storage))


# ---- local worker processes -------------------------------------------------------------


def worker_command(
    spec_path: str,
    index: int,
    *,
    storage: str,
    total: int,
    tracking_uri: str | None,
    parent_run_id: str | None,
    max_trials: int = 0,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``python -m weightsearch worker ...`` command line of local worker ``index``."""
    cmd = [
        sys.executable,
        "-m",
        "weightsearch",
        "worker",
        spec_path,
        "--storage",
        storage,
        "--n-trials",
        str(total),
        "--quiet",
        "--worker-index",
        str(index),
    ]
    cmd += ["--tracking-uri", tracking_uri] if tracking_uri else ["--no-tracking"]
    if parent_run_id:
        cmd += ["--parent-run-id", parent_run_id]
    if max_trials:
        cmd += ["--max-trials", str(max_trials)]
    return [*cmd, *extra]


def worker_env(workers: int) -> dict[str, str]:
    """TF threads divided among the local workers."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    return {**os.environ, "WEIGHTSEARCH_THREADS": str(threads)}


def stop_workers(procs: Sequence[subprocess.Popen[bytes]], grace: float = 20.0) -> None:
    """SIGINT every worker, wait up to ``grace`` seconds, then kill what is left."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_local(
    spec_path: str,
    prepared: Any,
    *,
    storage: Any,
    tracker: Any,
    n_trials: int,
    workers: int,
    timeout: float | None,
    console: Any,
    passthrough: Sequence[str] = (),
) -> Any:
    """Coordinate ``workers`` local processes on one study: ``n_trials`` more trials in all.

    The coordinator owns the MLflow parent run (workers nest their trial runs under it) and
    shows progress by polling the storage. With ``search.trials_per_process`` a worker exits
    after that many trials and a fresh one takes its place, which bounds whatever memory a
    process keeps across trials. Ctrl-C or SIGTERM stops the workers cleanly.
    """
    import optuna

    from weightsearch import runner
    from weightsearch.progress import StudyProgress

    spec = prepared.spec
    url = spec.search.storage
    with init_lock(url, spec.name):
        study = runner.create_study(spec, storage, url, space=prepared.space)
    total = counted_trials(study, waiting=False) + n_trials  # queued trials are part of n
    tracker.start_study(
        spec.name,
        runner.study_params(spec, url, total),
        {"optuna.study": spec.name, "weightsearch.workers": str(workers)},
    )
    before = len(study.trials)
    env = worker_env(workers)

    def spawn(index: int) -> subprocess.Popen[bytes]:
        cmd = worker_command(
            spec_path,
            index,
            storage=url,
            total=total,
            tracking_uri=spec.tracking.mlflow_uri if tracker.enabled else None,
            parent_run_id=tracker.parent_run_id,
            max_trials=spec.search.trials_per_process,
            extra=passthrough,
        )
        return subprocess.Popen(cmd, env=env)

    procs = [spawn(i) for i in range(workers)]
    progress = StudyProgress(console, spec.cv.metric, spec.cv.folds, spec.cv.epochs)
    progress.start(n_trials, best=runner.best_value(study))
    seen: set[int] = {t.number for t in study.trials if t.state.is_finished()}
    outcome = runner.Outcome(study=study)
    state = "COMPLETE"
    start = time.monotonic()
    failed = 0
    try:
        with runner._sigterm_as_interrupt():
            while True:
                for t in study.get_trials(deepcopy=False):
                    if t.state.is_finished() and t.number not in seen:
                        seen.add(t.number)
                        progress.trial_done(study, t)
                for i, p in enumerate(procs):
                    if p.poll() is None:
                        continue
                    if p.returncode != 0:
                        failed += 1
                        procs[i] = _Done()
                        # its trial, if it was killed mid-trial: failed, re-queued for the
                        # other workers (or the next run), its MLflow run closed
                        try:
                            with StudyLock(url, spec.name):
                                runner.recover_lost_trials(study, tracker)
                        except Exception as exc:  # noqa: BLE001 - the others keep running
                            console.print(f"warning: could not recover the lost trial: {exc}")
                    elif not isinstance(p, _Done):
                        in_time = not timeout or time.monotonic() - start < timeout
                        if failed == 0 and in_time and not budget_spent(study, total):
                            procs[i] = spawn(i)  # recycle: a fresh process, fresh memory
                        else:
                            procs[i] = _Done()
                if all(isinstance(p, _Done) for p in procs):
                    break
                time.sleep(1.0)
    except KeyboardInterrupt:
        outcome.interrupted = True
        state = "KILLED"
        stop_workers([p for p in procs if not isinstance(p, _Done)])
    finally:
        progress.stop()
        outcome.failed_workers = failed
        if failed:
            state = "FAIL"
        tracker.end_study(state)
    outcome.study = optuna.load_study(study_name=spec.name, storage=storage)
    outcome.ran = runner.trials_run_since(outcome.study, before)
    outcome.seconds = time.monotonic() - start
    outcome.lost_trials = runner.requeued_since(outcome.study, before)
    return outcome


class _Done:
    """A finished worker slot."""

    returncode = 0

    def poll(self) -> int:
        return 0
