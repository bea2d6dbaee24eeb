"""Study-wide locks beside a file storage go through ``filelock`` (no ``fcntl`` import)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import filelock
import pytest

from weightsearch.locks import StudyLock

HOLD = textwrap.dedent("""
    import sys
    from weightsearch.locks import StudyLock
    with StudyLock(sys.argv[1], "s"):
        print("held", flush=True)
        sys.stdin.readline()  # hold it until the parent says so
""")


def _free(path: str) -> bool:
    """Whether another holder could take the lock file ``path`` now."""
    probe = filelock.FileLock(path, thread_local=False)
    try:
        probe.acquire(timeout=0)
    except filelock.Timeout:
        return False
    probe.release()
    return True


def test_two_processes_contend_for_the_file_lock(tmp_path: Path) -> None:
    url = str(tmp_path / "study.log")
    child = subprocess.Popen([sys.executable, "-c", HOLD, url], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        ours = StudyLock(url, "s")
        assert ours.path == f"{url}.ws-lock"
        assert not _free(ours.path)  # the child holds it
        waiter = threading.Thread(target=ours.acquire, daemon=True)
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive()  # blocked while the child holds it
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait(timeout=30) == 0
        waiter.join(10)
        assert not waiter.is_alive()  # ours once the child let go
        assert not _free(ours.path)
        ours.close()
        assert _free(ours.path)
    finally:
        child.kill()
        child.wait(timeout=10)


def test_acquire_does_not_nest_and_release_is_idempotent(tmp_path: Path) -> None:
    lock = StudyLock(f"sqlite:///{tmp_path}/o.db", "s")
    assert lock.kind == "file"
    lock.acquire()
    lock.acquire()
    assert not _free(lock.path)
    lock.release()  # one release frees it, however often it was acquired
    assert _free(lock.path)
    lock.release()
    with lock:  # usable again after a release; the context closes it
        assert not _free(lock.path)
    assert _free(lock.path)


def test_a_lock_taken_in_one_thread_is_released_in_another(tmp_path: Path) -> None:
    lock = StudyLock(str(tmp_path / "study.journal"), "s")
    lock.acquire()
    other = threading.Thread(target=lock.release)
    other.start()
    other.join(10)
    assert _free(lock.path)
    lock.close()


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "mysql://u@h/db"])
def test_no_file_no_lock(url: str) -> None:
    with StudyLock(url, "s") as lock:
        assert lock.kind == "none"


def test_the_study_modules_import_and_lock_without_fcntl(tmp_path: Path) -> None:
    # As on Windows: no fcntl module. filelock then locks by its own means.
    code = textwrap.dedent("""
        import sys
        sys.modules["fcntl"] = None  # import fcntl now raises ImportError
        import weightsearch.engines.local, weightsearch.engines.optuna_engine, weightsearch.cli
        from weightsearch.locks import StudyLock
        with StudyLock(sys.argv[1], "s"):
            print("locked")
    """)
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "study.log")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "locked"
