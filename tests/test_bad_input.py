"""Bad input through the CLI: one clear message naming what and where, a non-zero exit, no
traceback, and nothing written to the study or MLflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from weightsearch.cli import main

HEAD = 'name = "bad"\n'
SPACE = '[space.model]\narch = "mlp"\ndepth = 1\nwidth = 8\n'
CV = "[cv]\nfolds = 2\nepochs = 1\n"


def _csv(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def _rows(n: int, label=lambda i: i % 2, extra: str = "") -> str:
    return "a,b,label\n" + "".join(f"{i * 0.1},{i % 7},{label(i)}{extra}\n" for i in range(n))


def _spec(tmp: Path, data: str, body: str = CV + SPACE, head: str = HEAD) -> Path:
    text = head + f"[data]\n{data}\n" + body
    text += f'[search]\nstorage = "sqlite:///{tmp}/optuna.db"\n'
    text += f'[tracking]\nmlflow_uri = "sqlite:///{tmp}/mlflow.db"\n'
    path = tmp / "spec.toml"
    path.write_text(text)
    return path


def _case_files(tmp: Path) -> dict[str, tuple[str, tuple[str, ...], str]]:
    """case → (spec data section, texts expected in one error line (what, where, the
    problem), spec body override or '')."""
    nan = _csv(tmp, "nan.csv", _rows(20).replace("0.5,5,1", "nan,5,1"))
    strings = _csv(tmp, "str.csv", "a,colour,label\n" + "".join(
        f"{i},{'red' if i % 2 else 'blue'},{i % 2}\n" for i in range(20)))
    single = _csv(tmp, "single.csv", _rows(20, label=lambda i: 0))
    few = _csv(tmp, "few.csv", _rows(20, label=lambda i: 1 if i == 3 else 0))
    empty = _csv(tmp, "empty.csv", "")
    notarget = _csv(tmp, "nolabel.csv", "a,b,y\n1,2,0\n3,4,1\n")
    huge = _csv(tmp, "huge.csv", _rows(20).replace("0.5,5,1", "1e39,5,1"))
    dup = _csv(tmp, "dup.csv", _rows(20).replace("a,b,label", "a,a,label"))
    hole = _csv(tmp, "hole.csv", _rows(20).replace("0.5,5,1", "0.5,,1"))
    inf = _csv(tmp, "inf.csv", _rows(20).replace("0.5,5,1", "inf,5,1"))
    empty_col = _csv(tmp, "emptycol.csv", "a,c,label\n" + "".join(
        f"{i},,{i % 2}\n" for i in range(20)))
    ids = _csv(tmp, "ids.csv", "a,user,label\n" + "".join(
        f"{i},u{i % 11},{i % 2}\n" for i in range(20)))
    no_label = _csv(tmp, "nolabels.csv", _rows(20).replace("0.5,5,1", "0.5,5,"))
    imgs = tmp / "seq.npz"
    np.savez(imgs, x=np.random.rand(40, 28, 28).astype("float32"), y=np.arange(40) % 2)
    return {
        "missing file": (f'source = "{tmp}/nope.csv"', ("nope.csv", "not found"), ""),
        "empty file": (f'source = "{empty}"', ("empty.csv", "is empty"), ""),
        "missing target": (f'source = "{notarget}"\ntarget = "label"',
                           ("nolabel.csv", "no target column(s) 'label'", "'y'"), ""),
        "nan, missing = error": (
            f'source = "{nan}"\nmissing = "error"',
            ("nan.csv", "column 'a'", "1 missing value(s)", "data row(s) 6",
             'data.missing is "error"'), ""),
        "hole, missing = error": (
            f'source = "{hole}"\nmissing = "error"',
            ("hole.csv", "column 'b'", "1 missing value(s)", "data row(s) 6"), ""),
        "inf, missing = error": (
            f'source = "{inf}"\nmissing = "error"',
            ("inf.csv", "feature column(s) 'a'", "infinite", "data row(s) 6"), ""),
        "inf, missing = impute": (
            f'source = "{inf}"',
            ("inf.csv", "feature column(s) 'a'", "infinite", "data row(s) 6"), ""),
        "all missing": (f'source = "{empty_col}"',
                        ("emptycol.csv", "column 'c'", "missing in every row", "data.drop"), ""),
        "too many levels": (f'source = "{ids}"',
                            ("ids.csv", "categorical column 'user'", "11 levels in 20 rows",
                             "at most half"), ""),
        "missing labels": (f'source = "{no_label}"',
                           ("nolabels.csv", "target column 'label'", "1 missing label(s)"), ""),
        "unknown categorical": (f'source = "{strings}"\ncategorical = ["colour", "shade"]',
                                ("str.csv", "data.categorical", "'shade'",
                                 "does not have"), ""),
        "unknown drop": (f'source = "{strings}"\ndrop = ["id"]',
                         ("str.csv", "data.drop", "'id'", "does not have", "'a', 'colour'"), ""),
        "drop the target": (f'source = "{strings}"\ndrop = ["label"]',
                            ("str.csv", "data.drop", "target column(s) 'label'"), ""),
        "beyond float32": (f'source = "{huge}"',
                           ("huge.csv", "feature column(s) 'a'", "beyond the float32 range",
                            "data row(s) 6"), ""),
        "duplicate columns": (f'source = "{dup}"',
                              ("dup.csv", "column(s) 'a'", "more than once"), ""),
        "string not listed": (f'source = "{strings}"\ncategorical = []',
                              ("str.csv", "feature column(s) 'colour'", "not numeric",
                               "data.categorical"), ""),
        "single class": (f'source = "{single}"',
                         ("single.csv", "target column 'label'", "single class '0'"), ""),
        "too few rows": (f'source = "{few}"\ntest_size = 0.0',
                         ("few.csv", "class '1' has 1 row(s)", "fewer than the 2 CV folds"), ""),
        "image shape": (f'source = "{imgs}"',
                        ("space.model.arch", "'cnn'", "(H, W, C)", "shape (28, 28)"),
                        CV + '[space.model]\narch = "cnn"\n'),
    }


SPEC_CASES = {
    "malformed toml": ("name = 'x'\n[data\n", "malformed TOML"),
    "unknown key": (HEAD + '[data]\nsource = "builtin:breast-cancer"\ncolour = 1\n',
                    "data.colour: unknown key"),
    "wrong type": (HEAD + '[data]\nsource = "builtin:breast-cancer"\n[cv]\nfolds = "3"\n',
                   "cv.folds: expected an integer"),
    "empty range": (HEAD + '[data]\nsource = "builtin:breast-cancer"\n'
                    "[space.loss]\nname = \"focal\"\ngamma = [3.0, 1.0]\n",
                    "space.loss.gamma: empty range"),
    "unknown scheme": (HEAD + '[data]\nsource = "builtin:breast-cancer"\n'
                       '[space.weighting]\nscheme = ["balanced", "cubic"]\n',
                       "space.weighting.scheme: Unknown weighting scheme 'cubic'; expected one of"),
    "unknown loss": (HEAD + '[data]\nsource = "builtin:breast-cancer"\n'
                     '[space.loss]\nname = "hinge"\n', "space.loss.name: Unknown loss 'hinge'"),
    "categorical type": (HEAD + '[data]\nsource = "builtin:breast-cancer"\ncategorical = 3\n',
                         'data.categorical: expected "auto" or a list of column names, but got 3'),
    "missing mode": (HEAD + '[data]\nsource = "builtin:breast-cancer"\nmissing = "drop"\n',
                     "data.missing: unknown value 'drop'; expected one of: impute, error"),
    "drop type": (HEAD + '[data]\nsource = "builtin:breast-cancer"\ndrop = "id"\n',
                  "data.drop: expected a list of column names, but got 'id'"),
    "unknown arch": (HEAD + '[data]\nsource = "builtin:breast-cancer"\n'
                     '[space.model]\narch = "transformer"\n', "Unknown arch 'transformer'"),
}


def _assert_clean_failure(capsys, code: int, expected: str | tuple[str, ...], tmp: Path) -> None:
    """Exit 2, no traceback, only ``error:`` lines, one holding every ``expected`` text, and
    no study or MLflow store written."""
    parts = (expected,) if isinstance(expected, str) else expected
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [x for x in err.strip().splitlines() if x]
    assert lines and all(x.startswith("error: ") for x in lines), err
    assert any(all(p in x for p in parts) for x in lines), err
    assert not (tmp / "optuna.db").exists() and not (tmp / "mlflow.db").exists()


@pytest.mark.parametrize("case", sorted(SPEC_CASES))
@pytest.mark.parametrize("command", ["validate", "study"])
def test_bad_spec(case: str, command: str, tmp_path: Path, capsys) -> None:
    text, expected = SPEC_CASES[case]
    if "[search]" not in text and "malformed" not in text:
        text += f'[search]\nstorage = "sqlite:///{tmp_path}/optuna.db"\n'
        text += f'[tracking]\nmlflow_uri = "sqlite:///{tmp_path}/mlflow.db"\n'
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    _assert_clean_failure(capsys, main([command, str(spec)]), expected, tmp_path)


TABLE_CASES = ["nan, missing = error", "hole, missing = error", "inf, missing = error",
               "inf, missing = impute", "all missing", "too many levels", "missing labels",
               "unknown categorical", "unknown drop", "drop the target", "string not listed"]


@pytest.mark.parametrize(
    "case",
    ["missing file", "empty file", "missing target", "beyond float32", "duplicate columns",
     "single class", "too few rows", "image shape", *TABLE_CASES],
)
def test_bad_data(case: str, tmp_path: Path, capsys) -> None:
    data, expected, body = _case_files(tmp_path)[case]
    spec = _spec(tmp_path, data, body or CV + SPACE)
    _assert_clean_failure(capsys, main(["study", str(spec)]), expected, tmp_path)


@pytest.mark.parametrize("case", ["beyond float32", "duplicate columns", *TABLE_CASES])
def test_validate_refuses_what_study_refuses(case: str, tmp_path: Path, capsys) -> None:
    data, expected, body = _case_files(tmp_path)[case]
    spec = _spec(tmp_path, data, body or CV + SPACE)
    _assert_clean_failure(capsys, main(["validate", str(spec)]), expected, tmp_path)


def test_bad_flag_exits_2(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["study", "studies/quickstart.toml", "--n-trials", "zero"])
    assert info.value.code == 2
    assert "expected a positive integer, but got 'zero'" in capsys.readouterr().err


@pytest.mark.slow
def test_unreachable_storage(tmp_path: Path, capsys) -> None:
    spec = _spec(tmp_path, 'source = "builtin:breast-cancer"')
    code = main(["study", str(spec), "--storage", "postgresql://u:pw@127.0.0.1:1/nowhere"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "cannot open the Optuna storage 'postgresql://u:***@127.0.0.1:1/nowhere'" in err
    assert "pw@" not in err
    assert not (tmp_path / "mlflow.db").exists()  # the tracker was never created


@pytest.mark.slow
def test_unreachable_tracking_server(tmp_path: Path, capsys) -> None:
    import optuna

    spec = _spec(tmp_path, 'source = "builtin:breast-cancer"')
    code = main(["study", str(spec), "--tracking-uri", "http://127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "cannot reach the MLflow tracking server 'http://127.0.0.1:1'" in err
    storage = f"sqlite:///{tmp_path}/optuna.db"
    assert optuna.get_all_study_names(storage) == []  # nothing half-written to the study


@pytest.mark.slow
def test_study_stops_after_consecutive_failures(tiny_spec, tmp_path: Path, monkeypatch,
                                                capsys) -> None:
    from weightsearch import training

    def broken(*args, **kwargs):
        raise RuntimeError("simulated out of memory")

    monkeypatch.setattr(training, "build_member", broken)
    spec = tiny_spec(name="failing", n_trials=6)
    spec.write_text(spec.read_text().replace("[search]", "[search]\nmax_consecutive_failures = 2"))
    code = main(["study", str(spec)])
    err = capsys.readouterr().err
    assert code == 1
    assert "stopped after 2 failed trials in a row; last error: RuntimeError: simulated out of " \
           "memory" in err
    import optuna

    study = optuna.load_study(study_name="failing", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]


@pytest.mark.slow
def test_resuming_a_study_on_other_data_is_refused(tmp_path: Path, capsys) -> None:
    import optuna
    from mlflow import MlflowClient

    data = tmp_path / "data.csv"
    data.write_text(_rows(24))
    spec = _spec(tmp_path, f'source = "{data}"\ntest_size = 0.0')
    assert main(["study", str(spec), "--n-trials", "1"]) == 0
    storage = f"sqlite:///{tmp_path}/optuna.db"
    before = optuna.load_study(study_name="bad", storage=storage)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("bad").experiment_id])
    data.write_text(_rows(24, label=lambda i: i % 3))  # the same file, now three classes
    capsys.readouterr()
    assert main(["study", str(spec), "--n-trials", "1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.strip()]
    assert line.startswith(f"error: {spec}: data: study 'bad' in {storage} was run on "
                           "other data (")
    assert "task 'binary' then, 'multiclass' now" in line and "fingerprint" in line
    assert "another `name` in the spec, or another storage (--storage)" in line
    after = optuna.load_study(study_name="bad", storage=storage)
    assert [t.number for t in after.trials] == [t.number for t in before.trials]
    assert after.user_attrs == before.user_attrs  # nothing rewritten
    again = client.search_runs([client.get_experiment_by_name("bad").experiment_id])
    assert sorted(r.info.run_id for r in again) == sorted(r.info.run_id for r in runs)
