"""TableEncoder and the raw-row front end (weightsearch.preprocessing), with hand-computed
values: one-hot indices and the OOV bucket, median imputation from the training fold only
(and no leak of the validation rows through the CV), embeddings, the stacked form of fold
models, and a round trip through model.keras."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from weightsearch import data as data_mod
from weightsearch import stacking, training
from weightsearch.columns import Column, Columns
from weightsearch.preprocessing import TableEncoder, raw_model, row_inputs

NAN = np.nan
#: v: numeric with holes; c: categorical, levels a, b, c (codes 0, 1, 2).
COLS = Columns((Column("v", "numeric", missing=1), Column("c", "categorical", ("a", "b", "c"))))
CONFIG = {
    "weighting": {"scheme": "none", "params": {}},
    "loss": {"name": "crossentropy", "params": {}},
    "model": {"arch": "mlp", "params": {"depth": 1, "width": 8, "dropout": 0.0}},
    "train": {"optimizer": "adam", "learning_rate": 0.01},
}


def _encoder(columns: Columns, fit: list[list[float]]) -> TableEncoder:
    enc = TableEncoder(columns)
    enc.adapt(np.asarray(fit, dtype=np.float32))
    return enc


def _encoded(enc: TableEncoder, rows: list[list[float]]) -> np.ndarray:
    return np.asarray(enc(np.asarray(rows, dtype=np.float32)))


def _encoder_of(model: keras.Model) -> TableEncoder:
    (enc,) = [layer for layer in model.layers if isinstance(layer, TableEncoder)]
    return enc


# ---- one-hot, OOV, imputation ------------------------------------------------------------


def test_one_hot_indices_and_the_oov_bucket() -> None:
    """Output [v, v missing?, OOV, a, b, c]. The fold saw a and b, not c: c, an unknown code
    (−1) and a missing one (NaN) all land in OOV; v's hole is the fold median, 3."""
    enc = _encoder(COLS, [[1.0, 0], [3.0, 1], [10.0, 0], [NAN, NAN]])
    np.testing.assert_array_equal(np.asarray(enc.state["medians"]), [3.0])
    np.testing.assert_array_equal(np.asarray(enc.state["seen_1"]), [1.0, 1.0, 0.0])
    got = _encoded(enc, [[5.0, 0], [6.0, 1], [7.0, 2], [8.0, -1], [NAN, NAN]])
    np.testing.assert_array_equal(got, [
        [5.0, 0.0, 0.0, 1.0, 0.0, 0.0],  # a → index 1
        [6.0, 0.0, 0.0, 0.0, 1.0, 0.0],  # b → index 2
        [7.0, 0.0, 1.0, 0.0, 0.0, 0.0],  # c: a level, but unseen in the fold → OOV
        [8.0, 0.0, 1.0, 0.0, 0.0, 0.0],  # unknown → OOV
        [3.0, 1.0, 1.0, 0.0, 0.0, 0.0],  # missing: median 3 + indicator; OOV
    ])
    assert enc.compute_output_shape((None, 2)) == (None, 6)


def test_a_column_without_holes_gets_no_indicator() -> None:
    cols = Columns((Column("u", "numeric"), Column("v", "numeric", missing=2)))
    enc = _encoder(cols, [[1.0, 2.0], [2.0, NAN], [4.0, 8.0], [9.0, NAN]])
    np.testing.assert_array_equal(np.asarray(enc.state["medians"]), [3.0, 5.0])
    np.testing.assert_array_equal(_encoded(enc, [[NAN, NAN], [1.0, 1.0]]),
                                  [[3.0, 5.0, 1.0], [1.0, 1.0, 0.0]])  # [u, v, v missing?]


def test_median_imputation_comes_from_the_training_fold_only() -> None:
    """Training rows v = 1, 2, 4, 100 (median 3); with the validation rows 50, 60, 70 the
    full data's median would be 50. A validation row's hole gets 3."""
    fit = [[1.0, 0], [2.0, 1], [4.0, 0], [100.0, 1]]
    full = fit + [[50.0, 0], [60.0, 1], [70.0, 0]]
    assert np.median(np.asarray(full)[:, 0]) == 50.0
    enc = _encoder(COLS, fit)
    assert _encoded(enc, [[NAN, 0]])[0, 0] == 3.0


def test_raw_model_takes_strings_numbers_and_holes() -> None:
    """Raw rows → StringLookup → codes → encoder: an unknown string ('zebra'), None and NaN
    go to OOV / the median as their codes do."""
    enc = _encoder(COLS, [[1.0, 0], [3.0, 1], [10.0, 2]])
    inp = keras.Input(shape=(2,))
    core = keras.Model(inp, enc(inp))
    model = raw_model(COLS, core)
    frame = pd.DataFrame({"c": ["b", "zebra", None, "c", "a"], "v": [1.5, NAN, 2.0, None, 4.0],
                          "ignored": [0, 0, 0, 0, 0]})
    got = np.asarray(model(row_inputs(COLS, frame)))
    np.testing.assert_array_equal(got, [
        [1.5, 0.0, 0.0, 0.0, 1.0, 0.0],
        [3.0, 1.0, 1.0, 0.0, 0.0, 0.0],
        [2.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        [3.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        [4.0, 0.0, 0.0, 1.0, 0.0, 0.0],
    ])


def test_an_embedded_column_has_an_n_plus_one_by_d_table() -> None:
    """17 levels (> 16): a trainable (17 + 1) × d table, d = min(16, round(1.6 · 18^0.56)) = 8;
    level i reads row i + 1, OOV (unseen, unknown, missing) row 0."""
    levels = tuple(f"l{i:02d}" for i in range(17))
    cols = Columns((Column("city", "categorical", levels),))
    enc = _encoder(cols, [[float(i)] for i in range(16)])  # l16 unseen in the fold
    table = enc.state["embed_0"]
    assert tuple(table.shape) == (18, 8) and table.trainable
    assert enc.compute_output_shape((None, 1)) == (None, 8)
    t = np.asarray(table)
    got = _encoded(enc, [[0.0], [5.0], [16.0], [-1.0], [NAN]])
    np.testing.assert_allclose(got, t[[1, 6, 0, 0, 0]], rtol=0, atol=1e-7)


# ---- fold models: no leak, stacked form -------------------------------------------------


def _table(n: int = 24) -> data_mod.Dataset:
    """v = 0..n−1 in a shuffled order with 4 holes; c: a/b in turn, one row 'rare'."""
    rng = np.random.default_rng(3)
    v = rng.permutation(n).astype(float) ** 2  # skewed: fold medians differ from the whole's
    v[[2, 7, 13, 20]] = NAN
    c = np.array(["a", "b"] * (n // 2), dtype=object)
    c[5] = "rare"
    df = pd.DataFrame({"v": v, "c": c, "label": np.arange(n) % 2})
    return data_mod.from_frame(df, target="label")


def _fold_models(ds: data_mod.Dataset, k: int = 2) -> list[tuple[np.ndarray, keras.Model]]:
    """Each CV fold's model as objective.Objective._members builds it: build_member on the
    fold's training rows with the table's columns."""
    out = []
    for i, (tr, _) in enumerate(data_mod.kfold(ds.y, ds.task, k, 0)):
        built = training.build_member(CONFIG, x=ds.x[tr], y=ds.y[tr], task=ds.task,
                                      n_classes=ds.n_classes, seed=i, columns=ds.columns)
        out.append((tr, built.model))
    return out


def test_fold_models_hold_their_own_folds_medians_and_levels() -> None:
    ds = _table()
    v, c = ds.x[:, 0], ds.x[:, 1]
    assert ds.columns.features[1].levels == ("a", "b", "rare")
    full_median = float(np.nanmedian(v))
    seen_somewhere = []
    for tr, model in _fold_models(ds):
        enc = _encoder_of(model)
        fold_median = float(np.nanmedian(v[tr]))
        assert fold_median != full_median  # the data make a leak visible
        assert float(np.asarray(enc.state["medians"])[0]) == pytest.approx(fold_median)
        seen = [float(code in set(c[tr].tolist())) for code in (0, 1, 2)]
        np.testing.assert_array_equal(np.asarray(enc.state["seen_1"]), seen)
        seen_somewhere.append(seen[2])
    assert sorted(seen_somewhere) == [0.0, 1.0]  # 'rare' is in one fold's training rows only


def test_the_stacked_fold_models_equal_the_models_on_holes_and_unseen_codes() -> None:
    ds = _table()
    folds = _fold_models(ds)
    members = [m for _, m in folds]
    rows = np.array([[NAN, 0], [4.0, 2], [NAN, NAN], [9.0, -1], [100.0, 1]], dtype=np.float32)
    stack = stacking.vectorize(members, [keras.losses.CategoricalCrossentropy()] * 2, rows)
    want = np.stack([np.asarray(m(rows, training=False)) for m in members])
    got = np.asarray(stack(np.stack([rows, rows]), training=False))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # the two folds' encoders differ on exactly these rows, so the comparison can fail
    codes = [np.asarray(_encoder_of(m)(rows)) for m in members]
    assert not np.allclose(codes[0], codes[1])


@pytest.mark.slow
def test_a_cv_search_adapts_each_fold_model_on_its_own_fold(monkeypatch) -> None:
    """Through search() (the Objective): every model build_member makes is adapted on its
    fold's training rows, never on the search's whole training part."""
    import weightsearch

    ds = _table(40)
    frame = pd.DataFrame({"v": ds.x[:, 0], "c": np.array(["a", "b", "rare"], dtype=object)[
        np.nan_to_num(ds.x[:, 1], nan=0).astype(int)], "label": ds.y})
    built: list[tuple[np.ndarray, keras.Model]] = []
    real = training.build_member

    def recording(config, **kwargs):
        out = real(config, **kwargs)
        built.append((np.array(kwargs["x"]), out.model))
        return out

    monkeypatch.setattr(training, "build_member", recording)
    result = weightsearch.search(frame, target="label", n_trials=1, folds=2, epochs=1,
                                 progress=False,
                                 space={"model": {"arch": "mlp", "depth": 1, "width": 8}})
    train = result.prepared.train
    folds = data_mod.kfold(train.y, train.task, 2, 0)
    assert len(built) == 2
    whole = float(np.nanmedian(train.x[:, 0]))
    for (x, model), (tr, _) in zip(built, folds, strict=True):
        np.testing.assert_array_equal(x, train.x[tr])  # the fold's rows, NaN included
        median = float(np.asarray(_encoder_of(model).state["medians"])[0])
        assert median == pytest.approx(float(np.nanmedian(train.x[tr, 0])))
        assert median != pytest.approx(whole)


# ---- saving ------------------------------------------------------------------------------


def test_the_encoder_round_trips_through_model_keras(tmp_path: Path) -> None:
    enc = _encoder(COLS, [[1.0, 0], [3.0, 1], [10.0, 0]])
    again = TableEncoder.from_config(enc.get_config())
    assert again.columns == COLS and (again.numeric, again.bins) == ("standardize", 8)
    inp = keras.Input(shape=(2,))
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(enc(inp)))
    rows = np.array([[NAN, 2], [4.0, -1], [5.0, 1]], dtype=np.float32)
    before = np.asarray(model(rows))
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(np.asarray(loaded(rows)), before, rtol=0, atol=1e-7)
    enc2 = _encoder_of(loaded)
    assert enc2.columns == COLS
    np.testing.assert_array_equal(np.asarray(enc2.state["medians"]), [3.0])
    np.testing.assert_array_equal(np.asarray(enc2.state["seen_1"]), [1.0, 1.0, 0.0])


def test_embedding_outputs_pass_the_normalization_unscaled() -> None:
    """Output [v, v missing?, city's 8 embedding dims]: Normalization standardises v (fitted
    on the fold: μ = mean of 0..15 with the hole imputed) but leaves the embedding slots 2..9
    at μ = 0, σ² = 1, since the table trains; its initial values say nothing."""
    from weightsearch.models import build_model

    levels = tuple(f"l{i:02d}" for i in range(17))
    cols = Columns((Column("v", "numeric", missing=1), Column("city", "categorical", levels)))
    fit = np.asarray([[float(i), float(i)] for i in range(16)] + [[NAN, 3.0]], dtype=np.float32)
    model = build_model("mlp", input_shape=(2,), n_outputs=2, task="binary",
                        params={"depth": 1, "width": 8}, columns=cols, adapt_x=fit, seed=0)
    enc = _encoder_of(model)
    assert enc.embedding_slots() == list(range(2, 10))
    norm = model.get_layer("normalization")
    mean = np.asarray(norm.mean).ravel()
    var = np.asarray(norm.variance).ravel()
    np.testing.assert_allclose(mean[2:], 0.0)
    np.testing.assert_allclose(var[2:], 1.0)
    v = np.r_[np.arange(16.0), 7.5]  # the hole is the fold median, 7.5
    assert mean[0] == pytest.approx(v.mean(), rel=1e-6)
    assert var[0] == pytest.approx(v.var(), rel=1e-5)
    assert mean[1] == pytest.approx(1 / 17, rel=1e-6)  # the missing indicator
