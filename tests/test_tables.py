"""Tables with categories and holes through the CLI: ``validate`` prints how each column is
treated, ``datasets`` lists the table built-in, and ``study`` runs on text, bools and NaN
(what the bad-input tests refuse with ``data.missing = "error"`` or a categorical list)."""

from __future__ import annotations

from pathlib import Path

import pytest

from weightsearch.cli import main
from weightsearch.columns import Column, Columns
from weightsearch.progress import column_lines

NOTE = ("    (fitted on each training fold: a missing number becomes the fold's median, with a "
        "0/1 was-missing input; a missing or unseen category, the out-of-vocabulary bucket)")


def _table(tmp: Path, n: int = 40) -> Path:
    """id (unique), age (15 values, 2 holes), colour (3 levels, 1 hole), member (True/False),
    city (17 levels: embedded), label."""
    rows = ["id,age,colour,member,city,label"]
    for i in range(n):
        age = "" if i in (4, 9) else str(20 + i % 15)
        colour = "" if i == 7 else ("red", "green", "blue")[i % 3]
        rows.append(f"{1000 + i},{age},{colour},{i % 2 == 0},c{i % 17},{(i // 2) % 2}")
    path = tmp / "people.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _spec(tmp: Path, data: str, n_trials: int = 1) -> Path:
    path = tmp / "spec.toml"
    path.write_text(
        f'name = "tables"\n[data]\n{data}\ntest_size = 0.0\n'
        "[cv]\nfolds = 2\nepochs = 1\n"
        f'[search]\nn_trials = {n_trials}\nstorage = "sqlite:///{tmp}/optuna.db"\n'
        '[space.model]\narch = "mlp"\ndepth = 1\nwidth = 8\n'
        "[tracking]\nenabled = false\n"
    )
    return path


def test_validate_prints_each_column_treatment(tmp_path: Path, capsys) -> None:
    spec = _spec(tmp_path, f'source = "{_table(tmp_path)}"\ndrop = ["id"]')
    assert main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out.splitlines()
    start = out.index("  columns: 1 numeric, 3 categorical, 1 dropped")
    # embedding_dim(17) = min(16, round(1.6 · 18^0.56)) = round(8.07) = 8
    assert out[start + 1:start + 8] == [
        "    age: numeric, 2 missing",
        "    colour: categorical, 3 levels (one-hot), 1 missing",
        "    member: categorical, 2 levels (one-hot)",
        "    city: categorical, 17 levels (embedded in 8)",
        "    id: dropped",
        NOTE,
        "  cv: 2 folds × ≤1 epochs, metric macro_f1, weights applied via loss",
    ]
    assert "input shape (4,)" in out[start - 1]  # the four features' codes
    assert not (tmp_path / "optuna.db").exists()


def test_validate_with_a_categorical_list(tmp_path: Path, capsys) -> None:
    """A list makes the integer codes it names categorical; numbers not listed stay numeric
    (the unique id too: only a categorical is refused for its many levels)."""
    spec = _spec(tmp_path, f'source = "{_table(tmp_path)}"\ndrop = ["member"]\n'
                           'categorical = ["colour", "city", "age"]')
    assert main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out.splitlines()
    start = out.index("  columns: 1 numeric, 3 categorical, 1 dropped")
    assert out[start + 1:start + 6] == [
        "    id: numeric",
        "    age: categorical, 15 levels (one-hot), 2 missing",
        "    colour: categorical, 3 levels (one-hot), 1 missing",
        "    city: categorical, 17 levels (embedded in 8)",
        "    member: dropped",
    ]


def test_column_lines() -> None:
    assert column_lines(None) == []  # arrays: nothing to say per column
    cols = Columns((Column("a", "numeric"), Column("b", "categorical", ("x", "y"))), ("id",))
    assert column_lines(cols) == ["  columns: 1 numeric, 1 categorical, 1 dropped",
                                  "    a: numeric", "    b: categorical, 2 levels (one-hot)",
                                  "    id: dropped"]  # no holes: no note on them


def test_datasets_lists_penguins(capsys) -> None:
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "penguins" in x)
    assert "Palmer penguins, 344 rows, 3 species" in line


def test_the_penguins_spec_treats_its_columns(tmp_path: Path, capsys, monkeypatch) -> None:
    spec = Path(__file__).resolve().parent.parent / "studies" / "penguins.toml"
    monkeypatch.chdir(tmp_path)  # its storage is relative: validate reads, writes nothing
    assert main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out.splitlines()
    start = out.index("  columns: 4 numeric, 2 categorical, 1 dropped")
    assert out[start + 1:start + 8] == [
        "    island: categorical, 3 levels (one-hot)",
        "    bill_length_mm: numeric, 2 missing",
        "    bill_depth_mm: numeric, 2 missing",
        "    flipper_length_mm: numeric, 2 missing",
        "    body_mass_g: numeric, 2 missing",
        "    sex: categorical, 2 levels (one-hot), 11 missing",
        "    year: dropped",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.slow
def test_study_runs_on_text_bools_and_holes(tmp_path: Path, capsys) -> None:
    import optuna

    spec = _spec(tmp_path, f'source = "{_table(tmp_path)}"\ndrop = ["id"]', n_trials=2)
    assert main(["study", str(spec)]) == 0, capsys.readouterr().err
    study = optuna.load_study(study_name="tables", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert study.user_attrs["data"]["features"] == ["age", "colour", "member", "city"]


def test_missing_error_lists_every_column_with_holes_in_one_line() -> None:
    import numpy as np
    import pandas as pd

    from weightsearch import data as data_mod
    from weightsearch.data import DataError

    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0, 4.0] * 5, "b": ["x", "y", None, "x"] * 5,
                          "c": np.arange(20.0), "label": [0, 1] * 10})
    with pytest.raises(DataError) as info:
        data_mod.from_frame(frame, target="label", missing="error")
    assert str(info.value) == (
        "The DataFrame: column 'a' has 5 missing value(s), at data row(s) 2, 6, 10, 14, 18; "
        "column 'b' has 5 missing value(s), at data row(s) 3, 7, 11, 15, 19 (the first data "
        "row is 1), and data.missing is \"error\"; expected a value in every row (or "
        "data.missing = \"impute\").")
