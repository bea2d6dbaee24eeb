"""weightsearch.storage: storage URLs parsed, masked, opened and loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from weightsearch import storage
from weightsearch.liveness import StaleTrialHandler
from weightsearch.storage import (
    EXPECTED,
    StudyError,
    load_stored_study,
    make_storage,
    mask_url,
    parse_url,
)


@pytest.mark.parametrize(
    ("url", "kind", "path"),
    [
        ("sqlite:///weightsearch.db", "sqlite", Path("weightsearch.db")),
        ("sqlite:////abs/dir/x.db", "sqlite", Path("/abs/dir/x.db")),
        ("sqlite:///:memory:", "sqlite", None),
        ("sqlite:///", "sqlite", None),
        ("journal:runs/study.log", "journal", Path("runs/study.log")),
        ("journal:/tmp/x", "journal", Path("/tmp/x")),
        ("runs/x.journal", "journal", Path("runs/x.journal")),
        ("x.log", "journal", Path("x.log")),
        ("postgresql://user@host/db", "postgresql", None),
        ("postgresql://user:pw@host:5432/db", "postgresql", None),
        ("postgresql+psycopg://user:pw@host/db", "postgresql", None),
        ("postgres://user@host/db", "postgresql", None),
        ("mysql+pymysql://root:pw@localhost/optuna", "rdb", None),
        ("garbage", "invalid", None),
        ("study.db", "invalid", None),
        ("", "invalid", None),
    ],
)
def test_parse_url(url: str, kind: str, path: Path | None) -> None:
    parsed = parse_url(url)
    assert (parsed.url, parsed.kind, parsed.path) == (url, kind, path)
    assert parsed.is_file is (path is not None)
    assert storage.is_journal(url) is (kind == "journal")


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:secret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql+psycopg://u:secret@h/db?sslmode=require",
         "postgresql+psycopg://u:***@h/db?sslmode=require"),
        ("postgresql://u:p%40ss%2Fw%3Fd@h/db", "postgresql://u:***@h/db"),  # percent-encoded
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),  # a raw @ in the password
        ("mysql://root:pw!$&*+,;=~@localhost/x", "mysql://root:***@localhost/x"),
        ("postgresql://:secret@h/db", "postgresql://:***@h/db"),  # no user
        ("http://admin:s3cret@mlflow:5000", "http://admin:***@mlflow:5000"),
    ],
)
def test_mask_url_hides_the_password(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert parse_url(url).masked == masked


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@h/db",
        "postgresql://h/db",
        "sqlite:///weightsearch.db",
        "sqlite:///:memory:",
        "journal:x.log",
        "x.journal",
        "http://mlflow:5000",
        "garbage",
        "",
    ],
)
def test_mask_url_leaves_urls_without_a_password_unchanged(url: str) -> None:
    assert mask_url(url) == url


@pytest.mark.parametrize("secret", ["a/b", "a?b", "a#b", "a[b"])
def test_mask_url_hides_a_password_with_url_delimiters(secret: str) -> None:
    assert secret not in mask_url(f"postgresql://u:{secret}@h/db")


@pytest.mark.parametrize("url", ["garbage", "study.db", ""])
def test_make_storage_refuses_what_is_not_a_url(url: str) -> None:
    with pytest.raises(StudyError) as info:
        make_storage(url)
    message = str(info.value)
    assert message == f"search.storage: {url!r} is not a storage URL; expected {EXPECTED}."
    for form in ("sqlite:///", "postgresql://", "journal:"):
        assert form in message


def test_unreachable_postgresql_is_a_study_error_with_the_password_masked() -> None:
    url = "postgresql://u:s3cret@127.0.0.1:1/nowhere"  # port 1: refused at once, no server
    with pytest.raises(StudyError) as info:
        make_storage(url)
    message = str(info.value)
    assert message.startswith(
        "cannot open the Optuna storage 'postgresql://u:***@127.0.0.1:1/nowhere': "
    )
    assert "s3cret" not in message and "\n" not in message


def test_load_stored_study_without_the_sqlite_file_names_the_path(tmp_path: Path) -> None:
    db = tmp_path / "missing.db"
    with pytest.raises(StudyError) as info:
        load_stored_study("s", f"sqlite:///{db}")
    assert f"no Optuna database at {db}" in str(info.value)
    assert not db.exists()  # nothing was created


def test_load_stored_study_without_the_journal_file_names_the_path(tmp_path: Path) -> None:
    log = tmp_path / "missing.journal"
    with pytest.raises(ValueError, match=f"no Optuna journal file at {log}"):
        load_stored_study("s", str(log), error=ValueError)
    assert not log.exists()


@pytest.mark.parametrize("form", ["sqlite:///{dir}/optuna.db", "journal:{dir}/optuna.log",
                                  "{dir}/optuna.journal"])
def test_round_trip_and_unknown_study_names(tmp_path: Path, form: str) -> None:
    url = form.format(dir=tmp_path)
    store = make_storage(url)
    for name in ("beta", "alpha"):
        study = optuna.create_study(study_name=name, storage=store, direction="maximize")
        study.enqueue_trial({"x": 0.25})
        study.optimize(lambda t: t.suggest_float("x", 0, 1) * 2, n_trials=1)
        study.set_user_attr("name", name)

    loaded = load_stored_study("alpha", url)
    assert loaded.study_name == "alpha" and loaded.direction.name == "MAXIMIZE"
    assert [(t.params, t.value) for t in loaded.trials] == [({"x": 0.25}, 0.5)]
    assert loaded.user_attrs == {"name": "alpha"}
    assert load_stored_study("beta", url).user_attrs == {"name": "beta"}

    with pytest.raises(StudyError) as info:
        load_stored_study("gamma", url)
    assert str(info.value) == (
        f"--study: no study named 'gamma' in {url}; studies there: alpha, beta."
    )


def test_a_journal_path_is_a_storage_string_optunas_own_tools_take(tmp_path: Path) -> None:
    journal = tmp_path / "runs.optuna"  # any name: Optuna's tools open an existing file path
    study = optuna.create_study(study_name="j", storage=make_storage(f"journal:{journal}"))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert parse_url(str(journal)) == storage.StorageURL(str(journal), "journal", journal)
    assert load_stored_study("j", str(journal)).trials[0].params == study.trials[0].params
    # Optuna's own CLI (its `optuna` script; optuna-dashboard guesses a storage the same way)
    cli = "import sys, optuna.cli; sys.exit(optuna.cli.main())"
    listed = subprocess.run([sys.executable, "-c", cli, "studies", "--storage", str(journal),
                             "-f", "json"], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert [s["name"] for s in json.loads(listed.stdout)] == ["j"]
    # a plain path to a SQLite database is not a journal; one that does not exist is nothing
    db = tmp_path / "study.db"
    optuna.create_study(storage=make_storage(f"sqlite:///{db}"))
    assert parse_url(str(db)).kind == "invalid"
    assert parse_url(str(tmp_path / "missing")).kind == "invalid"


def test_an_empty_store_lists_no_studies() -> None:
    with pytest.raises(StudyError, match="no study named 's' in sqlite:///:memory:; studies "
                       "there: none."):
        load_stored_study("s", "sqlite:///:memory:")


def test_rdb_storage_gets_heartbeats_and_a_stale_trial_handler(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hb.db"
    store = make_storage(url, heartbeat_interval=7, grace_period=21)
    assert (store.heartbeat_interval, store.grace_period) == (7, 21)
    handler = store.heartbeat_stale_trial_callback
    assert isinstance(handler, StaleTrialHandler)

    tracker = object()
    storage.attach_tracker(store, tracker)
    assert handler.tracker is tracker

    spec = SimpleNamespace(
        search=SimpleNamespace(storage=url, heartbeat_interval=3, grace_period=9)
    )
    opened = storage.open_storage(spec)
    assert (opened.heartbeat_interval, opened.grace_period) == (3, 9)
    other = storage.open_storage(spec, f"{tmp_path}/other.journal")
    assert isinstance(other, optuna.storages.JournalStorage)


@pytest.mark.postgres
def test_postgresql_round_trip(pg_urls) -> None:
    url = pg_urls[0].replace("postgres@", "postgres:pw-not-needed@")  # trust auth
    store = make_storage(url)
    study = optuna.create_study(study_name="pg", storage=store)
    study.optimize(lambda t: (t.suggest_int("n", 3, 3) - 1) ** 2, n_trials=2)

    loaded = load_stored_study("pg", url)
    assert [(t.params, t.value) for t in loaded.trials] == [({"n": 3}, 4.0)] * 2
    with pytest.raises(StudyError) as info:
        load_stored_study("nope", url)
    message = str(info.value)
    assert "studies there: pg." in message
    assert "postgres:***@" in message and "pw-not-needed" not in message
