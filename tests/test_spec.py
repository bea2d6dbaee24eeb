"""Spec parsing: every structural check gives one line naming its key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from weightsearch import spec as spec_mod
from weightsearch.spec import SpecError

STUDIES = sorted(Path(__file__).resolve().parent.parent.glob("studies/*.toml"))

BASE = {"name": "t", "data": {"source": "builtin:breast-cancer"}}


def problems(raw: dict) -> list[str]:
    with pytest.raises(SpecError) as info:
        spec_mod.parse(raw)
    return info.value.problems


def test_minimal_spec_gets_defaults() -> None:
    spec = spec_mod.parse(BASE)
    assert spec.name == "t" and spec.seed == 0
    assert spec.cv.folds == 5 and spec.cv.apply_weights == "loss"
    assert spec.search.storage == "sqlite:///weightsearch.db"
    assert spec.tracking.mlflow_uri == "sqlite:///mlflow.db"
    assert spec.experiment == "t"


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_shipped_studies_parse(path: Path) -> None:
    spec = spec_mod.load(path)
    assert spec.name and spec.data.source.startswith("builtin:")


def test_all_five_shipped_studies_exist() -> None:
    names = {p.name for p in STUDIES}
    assert {
        "quickstart.toml",
        "digits_lt_cnn.toml",
        "breast_cancer_mlp.toml",
        "multilabel.toml",
        "fraud_like.toml",
    } <= names


def test_unknown_keys_are_named_with_their_path() -> None:
    raw = {**BASE, "colour": "red", "cv": {"foldz": 3}, "space": {"weigthing": {}}}
    got = problems(raw)
    assert any(p.startswith("colour: unknown key") for p in got)
    assert any(p.startswith("cv.foldz: unknown key; expected one of: folds") for p in got)
    assert any(p.startswith("space.weigthing: unknown key") for p in got)


def test_wrong_types_say_expected_and_given() -> None:
    got = problems({**BASE, "cv": {"folds": "five", "tune_threshold": "yes"}, "seed": 1.5})
    assert "cv.folds: expected an integer, but got a string ('five')." in got
    assert any(p.startswith("cv.tune_threshold: expected true or false") for p in got)
    assert any(p.startswith("seed: expected an integer") for p in got)


def test_every_problem_is_reported_at_once() -> None:
    got = problems({**BASE, "cv": {"folds": 1, "epochs": 0}, "search": {"sampler": "bayes"}})
    assert len(got) == 3
    assert "cv.folds: must be an integer in [2, 50], but got 1." in got
    assert any("search.sampler: Unknown sampler 'bayes'; expected one of: tpe" in p for p in got)


def test_empty_range_and_empty_list() -> None:
    raw = {**BASE, "space": {"loss": {"gamma": [5.0, 0.5]}, "weighting": {"scheme": []}}}
    got = problems(raw)
    assert "space.loss.gamma: empty range [5.0, 0.5]: low must be smaller than high." in got
    assert any(p.startswith("space.weighting.scheme: empty list") for p in got)


def test_missing_name_and_data() -> None:
    got = problems({"seed": 0})
    assert any(p.startswith("name: missing") for p in got)
    assert any(p.startswith("data: missing [data] section") for p in got)


def test_malformed_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\n[data\nsource = 1\n")
    with pytest.raises(SpecError) as info:
        spec_mod.load(bad)
    assert str(info.value).startswith(f"{bad}: malformed TOML")
    with pytest.raises(SpecError) as info:
        spec_mod.load(tmp_path / "nope.toml")
    assert "file not found" in str(info.value)


def test_replace_dotted_fields() -> None:
    spec = spec_mod.parse(BASE).replace(seed=3, **{"search.storage": "sqlite:///x.db"})
    assert spec.seed == 3 and spec.search.storage == "sqlite:///x.db"


def test_is_range() -> None:
    assert spec_mod.is_range([0.1, 1.0]) and spec_mod.is_range({"low": 1, "high": 2})
    assert not spec_mod.is_range(["a", "b"]) and not spec_mod.is_range([1, 2, 3])
    assert not spec_mod.is_range([True, False])


def test_dumps_toml_round_trips() -> None:
    import tomllib

    data = {
        "name": "x",
        "threshold": 0.3,
        "flag": True,
        "data": {"source": "a.csv", "target": ["a", "b"]},
        "loss": {"name": "focal", "params": {"gamma": 2.0}},
    }
    assert tomllib.loads(spec_mod.dumps_toml(data)) == data
