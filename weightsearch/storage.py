"""Storage URLs, said once: parse them, mask their passwords, and open them as Optuna
storages or load a stored study.

Three kinds (:func:`parse_url`):

- ``sqlite:///path.db``: one SQLite file (one process at a time);
- ``journal:path``, a path ending in ``.journal``/``.log``, or the plain path of an existing
  journal file (the form Optuna's CLI and optuna-dashboard take): Optuna's journal file,
  safe for several processes on one machine;
- ``postgresql://user@host/db`` (and other SQLAlchemy URLs): a database server, for workers
  on many machines;
- ``memory:``: Optuna's in-memory storage, gone with the process (``weightsearch.search``'s
  default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from weightsearch.base import first_line

JOURNAL_SUFFIXES = (".journal", ".log")
DEFAULT_STORAGE = "sqlite:///weightsearch.db"
DEFAULT_MLFLOW_URI = "sqlite:///mlflow.db"  # MLflow's tracking store, beside the study's
MEMORY = "memory:"
EXPECTED = ("sqlite:///file.db, postgresql://user@host/db, a journal file (study.journal, "
            "journal:path) or memory:")


class StudyError(RuntimeError):
    """A problem that stops a whole study (unreachable storage, too many failures)."""


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, then what it wraps: SQLAlchemy's ``orig`` (the driver's error), ``__cause__``
    and ``__context__``, breadth first, each once."""
    out: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or any(e is seen for seen in out):
            continue
        out.append(e)
        orig = getattr(e, "orig", None)
        todo += [orig if isinstance(orig, BaseException) else None, e.__cause__, e.__context__]
    return out


def store_error_types() -> tuple[type[BaseException], ...]:
    """The exceptions of a database store that refused a write: sqlite3's, SQLAlchemy's and
    Optuna's ``StorageInternalError`` (which wraps SQLAlchemy's)."""
    import sqlite3

    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    return (sqlite3.Error, SQLAlchemyError, optuna.exceptions.StorageInternalError)


def store_failed(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was raised while handling, a store's failure
    (:func:`store_error_types`), e.g. Optuna's ``AssertionError: Should not reach.`` raised
    after its storage refused to record a trial's end."""
    kinds = store_error_types()
    return any(isinstance(e, kinds) for e in _chain(exc))


def store_cause(exc: BaseException) -> str:
    """The real cause of a store's failure, in one line: the driver's or the operating
    system's message (``attempt to write a readonly database``, ``database or disk is full``,
    ``No space left on device``), not a wrapper's (Optuna's "invalid data in the commit",
    MLflow's SQL dump); else :func:`first_line` of ``exc``."""
    import sqlite3

    chain = _chain(exc)
    drivers = [e for e in chain if isinstance(e, sqlite3.Error | OSError)]
    drivers += [e.orig for e in chain if isinstance(getattr(e, "orig", None), BaseException)]
    return first_line(drivers[0]) if drivers else first_line(exc)


def storage_failure(url: str, exc: BaseException) -> StudyError:
    """The one line for an Optuna storage that stopped accepting writes mid-study."""
    return StudyError(
        f"the Optuna storage {mask_url(url)} stopped accepting writes: {store_cause(exc)}; "
        "the study stopped (trials finished before are kept)."
    )


@dataclass(frozen=True)
class StorageURL:
    """A parsed storage URL: ``kind`` is ``"sqlite"``, ``"journal"``, ``"postgresql"``,
    ``"rdb"`` (another SQLAlchemy URL), ``"memory"`` or ``"invalid"``; ``path`` is the file
    of a SQLite or journal storage (``None`` for a server, or in memory)."""

    url: str
    kind: str
    path: Path | None = None

    @property
    def is_file(self) -> bool:
        return self.path is not None

    @property
    def masked(self) -> str:
        return mask_url(self.url)


def parse_url(url: str) -> StorageURL:
    """What kind of storage ``url`` names, and its file if it has one."""
    if url == MEMORY:
        return StorageURL(url, "memory")
    if url.startswith("journal:") or url.endswith(JOURNAL_SUFFIXES) or journal_file(url):
        return StorageURL(url, "journal", Path(url.removeprefix("journal:")))
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        return StorageURL(url, "sqlite", Path(path) if path not in ("", ":memory:") else None)
    if url.startswith(("postgresql", "postgres:")):
        return StorageURL(url, "postgresql")
    if "://" in url:
        return StorageURL(url, "rdb")
    return StorageURL(url, "invalid")


def journal_file(url: str) -> bool:
    """Whether ``url`` is the plain path of an existing file that is not a SQLite database:
    Optuna's CLI and optuna-dashboard open such a path as a journal file."""
    if not url or "://" in url or not Path(url).is_file():
        return False
    try:
        with open(url, "rb") as fh:
            return fh.read(16) != b"SQLite format 3\x00"
    except OSError:
        return False


def is_journal(url: str) -> bool:
    return parse_url(url).kind == "journal"


def mask_url(url: str) -> str:
    """Hide the password of a URL: ``postgresql://u:secret@h/db`` → ``postgresql://u:***@h/db``.

    A database URL's password runs from ``user:`` to the last ``@``, as SQLAlchemy connects
    with it, so raw ``/ ? # [ @`` in it are hidden too; an ``http(s)://`` URL (an MLflow
    server) is read as a web URL."""
    if not url.startswith(("http://", "https://")):
        found = _DB_PASSWORD.match(url)
        return f"{found['head']}:***@{found['rest']}" if found else url
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


_DB_PASSWORD = re.compile(r"^(?P<head>[\w+.-]+://[^:/@]*):(?P<password>.*)@(?P<rest>[^@]*)$")


def make_storage(
    url: str,
    *,
    heartbeat_interval: int = 30,
    grace_period: int = 90,
    stale_trial_handler: Any = None,
) -> Any:
    """An Optuna storage: RDB (SQLite, PostgreSQL) with heartbeats, or a journal file.

    With an RDB storage, a trial whose worker stops sending heartbeats for ``grace_period``
    seconds is handed to ``stale_trial_handler`` (default:
    :class:`weightsearch.liveness.StaleTrialHandler`, which re-queues it at most twice and
    closes its MLflow run)."""
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    from weightsearch.compat import quiet_optuna
    from weightsearch.liveness import StaleTrialHandler

    quiet_optuna()
    parsed = parse_url(url)
    if parsed.kind == "invalid":
        raise StudyError(f"search.storage: {url!r} is not a storage URL; expected {EXPECTED}.")
    if parsed.kind == "memory":
        import optuna

        return optuna.storages.InMemoryStorage()
    try:
        if parsed.kind == "journal":
            return JournalStorage(JournalFileBackend(str(parsed.path)))
        return RDBStorage(
            url,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=stale_trial_handler or StaleTrialHandler(),
            engine_kwargs={"pool_pre_ping": True},
        )
    except Exception as exc:
        raise StudyError(
            f"cannot open the Optuna storage {mask_url(url)!r}: {first_line(exc)}"
        ) from exc


def open_storage(spec: Any, url: str | None = None) -> Any:
    """The spec's storage (or ``url``) with the spec's heartbeat settings."""
    return make_storage(
        url or spec.search.storage,
        heartbeat_interval=spec.search.heartbeat_interval,
        grace_period=spec.search.grace_period,
    )


def attach_tracker(storage: Any, tracker: Any) -> None:
    """Let the storage's stale-trial handler close lost trials' MLflow runs."""
    from weightsearch.liveness import StaleTrialHandler

    handler = getattr(storage, "heartbeat_stale_trial_callback", None)
    if isinstance(handler, StaleTrialHandler):
        handler.tracker = tracker


def load_stored_study(name: str, url: str, error: type[Exception] = StudyError) -> Any:
    """Load an existing study without creating anything: a missing SQLite or journal file,
    or an unknown study name, raises ``error`` naming what is there."""
    import optuna

    parsed = parse_url(url)
    if parsed.path is not None and not parsed.path.is_file():
        what = "Optuna journal file" if parsed.kind == "journal" else "Optuna database"
        raise error(
            f"--storage: no {what} at {parsed.path} (from {mask_url(url)!r}); run the study "
            "first or pass the storage it used."
        )
    store = make_storage(url)
    names = sorted(optuna.get_all_study_names(storage=store))
    if name not in names:
        there = ", ".join(names) if names else "none"
        raise error(f"--study: no study named {name!r} in {mask_url(url)}; studies there: {there}.")
    return optuna.load_study(study_name=name, storage=store)


__all__ = [
    "DEFAULT_MLFLOW_URI",
    "store_cause",
    "store_error_types",
    "store_failed",
    "storage_failure",
    "DEFAULT_STORAGE",
    "MEMORY",
    "StorageURL",
    "StudyError",
    "attach_tracker",
    "is_journal",
    "load_stored_study",
    "make_storage",
    "mask_url",
    "open_storage",
    "parse_url",
]
