"""Study-wide locks shared by every worker of a study.

- PostgreSQL: a session-level advisory lock (released by the server if the worker dies);
- a journal file or SQLite: ``fcntl.flock`` on ``<file>.ws-lock`` (released by the OS);
- anything else: no lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
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
        self._fd: int | None = None
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


__all__ = ["StudyLock", "init_lock"]
