"""Numeric encodings (issue 15, item 1): ``space.model.numeric`` / ``space.model.bins`` as a
search dimension, their checks, KerasTuner's translation, the export round trip, and the
encodings themselves against hand-computed values (edges from the training fold only,
piecewise-linear values at and between edges), saved in ``model.keras`` and reloaded in a
fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from conftest import unit_config

from weightsearch import spec as spec_mod
from weightsearch.columns import Column, Columns
from weightsearch.space import check_space, flatten
from weightsearch.spec import SpecError

ALL = ["standardize", "quantile", "piecewise_linear"]


def resolve(model: dict[str, Any], table: bool = True) -> Any:
    raw = {"name": "enc", "data": {"source": "builtin:synthetic"},
           "space": {"model": {"arch": "mlp", **model}}}
    return check_space(spec_mod.parse(raw), task="multiclass", data_kind="tabular",
                       input_shape=(3,), table=table)


def _problems(model: dict[str, Any], table: bool = True) -> list[str]:
    with pytest.raises(SpecError) as info:
        resolve(model, table)
    return info.value.problems


def test_the_space_lists_the_encoders_encodings() -> None:
    from weightsearch import space
    from weightsearch.preprocessing import DEFAULT_BINS, NUMERIC_ENCODINGS

    assert space.NUMERIC_CHOICES == NUMERIC_ENCODINGS and space.BINS.default == DEFAULT_BINS


# ---- the space ------------------------------------------------------------------------------


def test_bins_are_suggested_only_for_the_binned_encoding_taken() -> None:
    space = resolve({"numeric": ALL, "bins": [4, 16]})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        config = space.suggest(trial)
        enc = config["model"]["numeric"]["name"]
        seen.add(enc)
        bins = {n for n in trial.distributions if n.endswith(".bins")}
        if enc == "standardize":
            assert bins == set() and config["model"]["numeric"] == {"name": "standardize"}
        else:
            assert bins == {f"model.numeric.{enc}.bins"}
            assert 4 <= config["model"]["numeric"]["bins"] <= 16
        assert trial.distributions["model.numeric"].choices == tuple(ALL)
        assert flatten(config).items() >= trial.params.items()  # the names round-trip
        study.tell(trial, 0.0)
    assert seen == set(ALL)


def test_a_fixed_trial_gives_the_numeric_config() -> None:
    space = resolve({"numeric": ALL, "bins": {"low": 2, "high": 32, "log": True}})
    params = {"model.arch": "mlp", "model.numeric": "piecewise_linear",
              "model.numeric.piecewise_linear.bins": 5, "weighting.scheme": "none",
              "loss.name": "crossentropy"}
    config = space.suggest(optuna.trial.FixedTrial(params))
    assert config["model"]["numeric"] == {"name": "piecewise_linear", "bins": 5}
    assert dict(space.describe())["model.numeric.piecewise_linear.bins"] == "int in [2, 32] (log)"


def test_a_tables_default_is_standardize_and_arrays_carry_no_encoding() -> None:
    table = resolve({})
    assert table.numeric.kind == "fixed" and table.numeric.value == "standardize"
    fixed = {"weighting.scheme": "none", "loss.name": "crossentropy", "model.arch": "mlp"}
    config = table.suggest(optuna.trial.FixedTrial(fixed))
    assert config["model"]["numeric"] == {"name": "standardize"}
    arrays = resolve({}, table=False)
    assert arrays.numeric is None
    config = arrays.suggest(optuna.trial.FixedTrial(fixed))
    assert "numeric" not in config["model"]
    one = resolve({"numeric": "quantile"})  # one value: fixed, bins at their default 8
    assert one.numeric.kind == "fixed" and one.bins["quantile"].value == 8


@pytest.mark.parametrize(
    ("model", "table", "line"),
    [
        ({"numeric": "quantile"}, False,
         "space.model.numeric: numeric encodings are for tables (CSV/Parquet or DataFrame "
         "columns), but this data is arrays; remove it."),
        ({"numeric": ["standardize", "zscore"]}, True,
         "space.model.numeric: expected one of standardize, quantile, piecewise_linear, but "
         "got 'zscore'."),
        ({"bins": 4}, True,
         "space.model.bins: only quantile and piecewise_linear take bins, but "
         "space.model.numeric is standardize."),
        ({"numeric": "quantile", "bins": [1, 8]}, True,
         "space.model.bins (low) must be an integer in [2, 256], but got 1."),
    ],
)
def test_bad_numeric_values_give_one_line(model: dict, table: bool, line: str) -> None:
    assert _problems(model, table) == [line]


def test_keras_tuner_conditions_bins_on_the_encoding() -> None:
    from weightsearch.engines import keras_tuner as ktengine

    space = resolve({"numeric": ALL, "bins": [4, 16]})
    hps = {h.name: h for h in ktengine.hyperparameters(space).space}
    assert list(hps["model.numeric"].values) == ALL
    for enc in ("quantile", "piecewise_linear"):
        bins = hps[f"model.numeric.{enc}.bins"]
        assert (bins.min_value, bins.max_value) == (4, 16)
        assert bins.conditions[0].name == "model.numeric"
        assert list(bins.conditions[0].values) == [enc]
    hp = ktengine.hyperparameters(space)
    hp.values.update({"model.numeric": "quantile", "model.numeric.quantile.bins": np.int64(6),
                      "model.numeric.piecewise_linear.bins": 9})
    got = ktengine.params_from(hp, space)
    assert got["model.numeric"] == "quantile" and got["model.numeric.quantile.bins"] == 6
    assert "model.numeric.piecewise_linear.bins" not in got  # inactive
    assert ktengine.space_hash(space) != ktengine.space_hash(resolve({}))


# ---- the exported config ----------------------------------------------------------------------


def _config(numeric: Any) -> dict[str, Any]:
    return unit_config(numeric=numeric)


def test_the_config_round_trips_the_numeric_encoding() -> None:
    from weightsearch.production import parse_config

    cfg = parse_config(_config({"name": "quantile", "bins": 5}))
    back = parse_config(tomllib.loads(cfg.to_toml()))
    assert back.model["numeric"] == {"name": "quantile", "bins": 5}
    assert back.components["model"]["numeric"] == {"name": "quantile", "bins": 5}
    params = back.params()
    assert params["model.numeric"] == "quantile" and params["model.numeric.quantile.bins"] == 5
    assert parse_config(_config({"name": "piecewise_linear"})).model["numeric"] == {
        "name": "piecewise_linear", "bins": 8}


@pytest.mark.parametrize(
    ("numeric", "line"),
    [
        ({"name": "zscore"}, "model.numeric.name: expected one of standardize, quantile, "
                             "piecewise_linear, but got 'zscore'."),
        ({"name": "standardize", "bins": 4},
         "model.numeric.bins: only quantile and piecewise_linear take bins, but the encoding "
         "is 'standardize'."),
        ({"name": "quantile", "bins": 0},
         "model.numeric.bins must be an integer in [2, 256], but got 0."),
        ("quantile", "model.numeric: expected a table {name = ..., bins = ...}, but got "
                     "'quantile'."),
    ],
)
def test_a_bad_numeric_config_is_one_line(numeric: Any, line: str) -> None:
    from weightsearch.production import ConfigError, parse_config

    with pytest.raises(ConfigError) as info:
        parse_config(_config(numeric), source="c.toml")
    assert info.value.problems == [line]


def test_build_from_config_puts_the_configs_encoder_in_front_of_a_table() -> None:
    from weightsearch import data as data_mod
    from weightsearch.preprocessing import TableEncoder
    from weightsearch.production import build_from_config, parse_config

    ds = data_mod.load("builtin:penguins", target=None, task=None, seed=0, options=None)
    cfg = parse_config(_config({"name": "piecewise_linear", "bins": 3}))
    built = build_from_config(cfg, ds)
    (enc,) = [la for la in built.model.layers if isinstance(la, TableEncoder)]
    assert (enc.numeric, enc.bins) == ("piecewise_linear", 3)
    x = ds.x[:, ds.columns.numeric[0]]
    q = np.quantile(x[~np.isnan(x)], [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(np.asarray(enc.state["edges"])[0], q, rtol=1e-6)


# ---- the encodings, by hand -----------------------------------------------------------------

ONE = Columns((Column("v", "numeric"),))


def _encoder(numeric: str, bins: int, fit: list[float]) -> Any:
    from weightsearch.preprocessing import TableEncoder

    enc = TableEncoder(ONE, numeric=numeric, bins=bins)
    enc.adapt(np.asarray(fit, dtype=np.float32)[:, None])
    return enc


def _out(enc: Any, values: list[float]) -> np.ndarray:
    return np.asarray(enc(np.asarray(values, dtype=np.float32)[:, None]))


def test_piecewise_linear_at_and_between_the_edges() -> None:
    """Fold 0, 1, 2, 3, 4 with T = 2: edges at its quantiles 0, 1/2, 1 → [0, 2, 4].
    r_1 = (v − 0)/2 (not clipped below), r_2 = (v − 2)/2 (not clipped above)."""
    enc = _encoder("piecewise_linear", 2, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(np.asarray(enc.state["edges"]), [[0, 2, 4]])
    got = _out(enc, [-1, 0, 1, 2, 3, 4, 6])
    np.testing.assert_allclose(got, [
        [-0.5, 0.0],  # below e_0: r_1 extrapolates
        [0.0, 0.0],   # at e_0
        [0.5, 0.0],   # between e_0 and e_1
        [1.0, 0.0],   # at e_1
        [1.0, 0.5],   # between e_1 and e_2
        [1.0, 1.0],   # at e_2
        [1.0, 2.0],   # above e_2: r_T extrapolates
    ], rtol=0, atol=1e-7)


def test_quantile_is_the_folds_cdf_linear_between_edges() -> None:
    """Same edges [0, 2, 4]: (clip(r_1) + clip(r_2)) / 2."""
    enc = _encoder("quantile", 2, [0, 1, 2, 3, 4])
    got = _out(enc, [-1, 0, 1, 2, 3, 4, 6])[:, 0]
    np.testing.assert_allclose(got, [0, 0, 0.25, 0.5, 0.75, 1, 1], rtol=0, atol=1e-7)


def test_a_zero_width_bin_is_a_step() -> None:
    """Fold 0, 0, 0, 4, T = 2: quantiles [0, 0, 4]; the first bin has zero width, so r_1 is 1
    at or above 0, else 0; r_2 = (v − 0)/4, clipped below at 0 (only r_1 extrapolates down)."""
    enc = _encoder("piecewise_linear", 2, [0, 0, 0, 4])
    np.testing.assert_array_equal(np.asarray(enc.state["edges"]), [[0, 0, 4]])
    np.testing.assert_allclose(_out(enc, [-1, 0, 2, 5]),
                               [[0, 0], [1, 0], [1, 0.5], [1, 1.25]], rtol=0, atol=1e-7)


def test_edges_come_from_the_training_fold_only() -> None:
    """A fold model's edges are the quantiles of its training rows: with v = 0..11 and the
    fold's rows the even ones, T = 2 gives [0, 5, 10]; the whole column would give
    [0, 5.5, 11]."""
    import pandas as pd

    from weightsearch import data as data_mod
    from weightsearch import training
    from weightsearch.preprocessing import TableEncoder

    frame = pd.DataFrame({"v": np.arange(12, dtype=float), "label": np.arange(12) // 2 % 2})
    ds = data_mod.from_frame(frame, target="label")
    config = {"weighting": {"scheme": "none", "params": {}},
              "loss": {"name": "crossentropy", "params": {}},
              "model": {"arch": "mlp", "params": {"depth": 1, "width": 8},
                        "numeric": {"name": "piecewise_linear", "bins": 2}},
              "train": {"optimizer": "adam", "learning_rate": 0.01}}
    tr = np.arange(0, 12, 2)
    built = training.build_member(config, x=ds.x[tr], y=ds.y[tr], task=ds.task, n_classes=2,
                                  seed=0, columns=ds.columns)
    (enc,) = [la for la in built.model.layers if isinstance(la, TableEncoder)]
    np.testing.assert_array_equal(np.asarray(enc.state["edges"]), [[0, 5, 10]])
    assert np.quantile(ds.x[:, 0], [0, 0.5, 1]).tolist() == [0, 5.5, 11]


@pytest.mark.slow
def test_each_encoding_round_trips_through_model_keras_in_a_fresh_process(tmp_path: Path) -> None:
    """Saved with its fitted edges; a new Python that only imports weightsearch and keras
    loads it (the TableEncoder registers itself) and predicts the same."""
    from weightsearch import models

    cols = Columns((Column("u", "numeric", missing=1), Column("c", "categorical", ("a", "b"))))
    rng = np.random.default_rng(0)
    fit = np.column_stack([rng.exponential(3.0, 40), rng.integers(0, 2, 40)]).astype(np.float32)
    fit[3, 0] = np.nan
    rows = np.array([[0.5, 0], [np.nan, 1], [30.0, -1], [2.0, np.nan]], dtype=np.float32)
    want = {}
    for enc in ALL:
        model = models.build_model("mlp", input_shape=(2,), n_outputs=3, task="multiclass",
                                   params={"depth": 1, "width": 8}, adapt_x=fit, seed=0,
                                   columns=cols, numeric={"name": enc, "bins": 4})
        model.save(tmp_path / f"{enc}.keras")
        want[enc] = np.asarray(model(rows)).tolist()
    np.save(tmp_path / "rows.npy", rows)
    code = (
        "import json, sys\n"
        "import numpy as np\n"
        "import weightsearch\n"
        "import keras\n"
        "assert 'weightsearch.preprocessing' in sys.modules  # registered on `import keras`\n"
        f"folder = {str(tmp_path)!r}\n"
        "rows = np.load(folder + '/rows.npy')\n"
        "out = {}\n"
        f"for enc in {ALL!r}:\n"
        "    m = keras.models.load_model(f'{folder}/{enc}.keras')\n"
        "    layer = [la for la in m.layers if type(la).__name__ == 'TableEncoder'][0]\n"
        "    out[enc] = [layer.numeric, layer.bins, np.asarray(m(rows)).tolist()]\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for enc in ALL:
        name, bins, proba = got[enc]
        assert (name, bins) == (enc, 4)
        np.testing.assert_allclose(proba, want[enc], rtol=0, atol=1e-6)
    assert not np.allclose(want["standardize"], want["piecewise_linear"])


@pytest.mark.slow
def test_a_searched_encoding_is_exported_and_trained_with(tmp_path: Path) -> None:
    """search → export (which checks the params round trip) → train: the final model's
    encoder is the trial's."""
    import pandas as pd

    import weightsearch
    from weightsearch.preprocessing import TableEncoder
    from weightsearch.production import load_config, train_from_config

    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame({"a": rng.exponential(2.0, n), "b": rng.normal(0, 1, n),
                          "label": np.arange(n) % 2})
    result = weightsearch.search(
        frame, target="label", n_trials=2, folds=2, epochs=1, progress=False,
        space={"model": {"arch": "mlp", "depth": 1, "width": 8,
                         "numeric": ["quantile", "piecewise_linear"], "bins": [3, 5]}},
    )
    trial = result.best_trial
    numeric = trial.user_attrs["config"]["model"]["numeric"]
    assert trial.params["model.numeric"] == numeric["name"]
    path = result.export(tmp_path / "best.toml")
    cfg = load_config(path)
    assert cfg.model["numeric"] == numeric
    trained = train_from_config(cfg, track=False, dataset=result.prepared.data)
    # the served model takes raw rows; the trained core, one layer of it, holds the encoder
    cores = [la for la in trained.model.layers if hasattr(la, "layers")]
    (enc,) = [la for core in cores for la in core.layers if isinstance(la, TableEncoder)]
    assert {"name": enc.numeric, "bins": enc.bins} == numeric


def test_the_leaderboard_names_a_binned_encoding_beside_the_arch() -> None:
    from weightsearch.report import leaderboard_cells

    row = {"trial": 0, "scheme": "none", "loss": "crossentropy", "arch": "mlp", "value": 0.5,
           "std": 0.0}
    _, cells = leaderboard_cells([{**row, "numeric": {"name": "quantile", "bins": 8}},
                                  {**row, "numeric": {"name": "standardize"}}, row])
    assert [c[4] for c in cells] == ["mlp · quantile/8", "mlp", "mlp"]
