"""Study-wide locks shared by every worker of a study.

- PostgreSQL: a session-level advisory lock (released by the server if the worker dies);
- a journal file or SQLite: a ``filelock.FileLock`` on ``<file>.ws-lock`` (an OS lock,
  released by the OS if the worker dies; ``flock`` on POSIX, ``msvcrt`` on Windows);
- anything else: no lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from weightsearch.storage import parse_url


class StudyLock:
    """A cross-process lock for one study; ``release()`` is idempotent."""

    def __init__(self, url: str, study_name: str) -> None:
        self.url = url
        self.key = int.from_bytes(
            hashlib.sha1(study_name.encode()).digest()[:8], "big", signed=True
        )
        self._held = False
        self._file: Any = None  # a filelock.FileLock, made on first acquire
        self._conn: Any = None
        self.kind = "none"
        parsed = parse_url(url)
        if parsed.kind == "postgresql":
            self.kind = "postgres"
        elif parsed.path is not None:
            self.kind = "file"
            self.path = f"{parsed.path}.ws-lock"  # not ".lock": Optuna's journal uses that

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
            if self._held:
                return  # FileLock counts nested acquires; this lock does not
            if self._file is None:
                import filelock

                # thread_local=False: held by the process, as an OS lock is, whichever
                # thread releases it
                self._file = filelock.FileLock(self.path, thread_local=False)
            self._file.acquire()
        self._held = True

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        if self.kind == "postgres":
            import sqlalchemy

            self._conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self._conn.commit()
        elif self.kind == "file" and self._file is not None:
            self._file.release()

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
        self._file = None  # FileLock closes its file on release


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


__all__ = ["StudyLock", "init_lock"]
