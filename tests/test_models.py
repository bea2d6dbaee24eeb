"""Common checks over every registered architecture × task (weightsearch.models)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from weightsearch import models as W  # noqa: E402
from weightsearch._params import Param  # noqa: E402

SHAPES = {"tabular": (5,), "image": (8, 8, 2), "sequence": (12, 3)}
N_OUT = {"binary": 2, "multiclass": 4, "multilabel": 3}
ARCHS = W.MODELS.names()
TASKS = list(N_OUT)


@pytest.fixture(scope="module")
def data():
    """Per input kind: 24 rows far from mean 0 / std 1 so normalisation is visible."""
    rng = np.random.default_rng(0)
    out = {}
    for kind, shape in SHAPES.items():
        scale = np.linspace(1.0, 4.0, shape[-1])  # per-feature / per-channel scale
        out[kind] = (rng.normal(size=(24, *shape)) * scale + 7.0).astype(np.float32)
    return out


def _build(arch, task, data, params=None, seed=0):
    kind = W.input_kind(arch)
    return W.build_model(
        arch, input_shape=SHAPES[kind], n_outputs=N_OUT[task], task=task,
        params=params, adapt_x=data[kind], seed=seed,
    )


def _logits(model, x):
    sub = keras.Model(model.input, model.get_layer("logits").output)
    return np.asarray(sub(x, training=False), dtype=np.float64)


@pytest.fixture(scope="module")
def built(data):
    """Default model for every arch × task, built once."""
    return {(a, t): _build(a, t, data) for a in ARCHS for t in TASKS}


def _extremes(arch):
    """Parameter dicts at all lows, all highs, and each choice value."""
    table = W.arch_params(arch)
    lows, highs = {}, {}
    for name, p in table.items():
        if p.choices is not None:
            lows[name], highs[name] = p.choices[0], p.choices[-1]
        else:
            lows[name] = 0 if getattr(p, "allow_zero", False) else p.low
            highs[name] = p.high
    out = [lows, highs]
    for name, p in table.items():
        for c in p.choices or ():
            out.append({name: c})
    return out


def test_registry_has_the_three_archs():
    assert {"mlp", "cnn", "cnn1d"} <= set(ARCHS)
    assert W.input_kind("mlp") == "tabular"
    assert W.input_kind("CNN") == "image"
    assert W.input_kind("cnn1d") == "sequence"
    with pytest.raises(ValueError, match="Unknown arch 'resnet'; expected one of: mlp"):
        W.build_model("resnet", input_shape=(3,), n_outputs=2, task="binary")


@pytest.mark.parametrize("arch", ARCHS)
def test_params_table_is_searchable(arch):
    """Every Param has a default that passes its own check and a usable search range."""
    for name, p in W.arch_params(arch).items():
        assert isinstance(p, Param)
        assert p.check(p.default, name) == p.default
        if p.choices is None:
            assert p.low is not None and p.high is not None and p.low < p.high, name
            if p.log:
                assert p.low > 0, f"{name}: log search needs low > 0"
            p.check(p.low, name)
            p.check(p.high, name)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("arch", ARCHS)
def test_output_shape_activation_and_normalisation(arch, task, data, built):
    model = built[(arch, task)]
    x = data[W.input_kind(arch)]
    proba = np.asarray(model(x, training=False), dtype=np.float64)
    assert proba.shape == (len(x), N_OUT[task])
    assert model.output.dtype == "float32"
    logits = _logits(model, x)
    if task == "multilabel":
        np.testing.assert_allclose(proba, 1 / (1 + np.exp(-logits)), atol=1e-6)
        assert not np.allclose(proba.sum(axis=1), 1.0, atol=1e-3)
    else:
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        np.testing.assert_allclose(proba, e / e.sum(axis=1, keepdims=True), atol=1e-6)
    # The first layer after the input is the adapted Normalization: z has mean 0 / std 1
    # per feature (or channel) over the adapt data.
    norm = model.layers[1]
    assert isinstance(norm, keras.layers.Normalization)
    z = np.asarray(norm(x), dtype=np.float64).reshape(-1, x.shape[-1])
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-3)
    assert not model.compiled


@pytest.mark.parametrize("arch", ARCHS)
def test_extreme_params_build_and_run(arch, data):
    x = data[W.input_kind(arch)][:4]
    extremes = _extremes(arch)
    # lows and highs with every task; each choice value with one task (cycled).
    cases = [(e, t) for e in extremes[:2] for t in TASKS]
    cases += [(e, TASKS[i % len(TASKS)]) for i, e in enumerate(extremes[2:])]
    for params, task in cases:
        model = _build(arch, task, data, params=params)
        proba = np.asarray(model(x, training=False))
        assert proba.shape == (4, N_OUT[task]), params
        assert np.all(np.isfinite(proba)), params


def test_mlp_params_shape_the_network(data):
    model = _build("mlp", "multiclass", data, params={"depth": 3, "width": 16,
                                                      "batch_norm": True, "l2": 1e-3})
    dense = [lay for lay in model.layers if isinstance(lay, keras.layers.Dense)]
    assert [d.units for d in dense] == [16, 16, 16, 4]
    assert sum(isinstance(lay, keras.layers.BatchNormalization) for lay in model.layers) == 3
    # L2 penalty = 1e-3 · Σ ||W||² over the three hidden kernels (output layer unpenalised).
    expected = sum(1e-3 * float(np.sum(np.square(d.kernel.numpy()))) for d in dense[:3])
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-5)
    assert _build("mlp", "multiclass", data, params={"l2": 0}).losses == []


def test_cnn_pooling_never_goes_below_two(data):
    # 8×8 with 3 blocks: 8 → 4 → 2, the third pooling is skipped.
    model = _build("cnn", "multiclass", data, params={"blocks": 3, "head": "flatten"})
    assert model.get_layer("flatten").output.shape[1:] == (2 * 2 * 64,)
    conv = [lay for lay in model.layers if isinstance(lay, keras.layers.Conv2D)]
    assert [c.filters for c in conv] == [16, 32, 64]
    # A 3×9 image pools only its long axis.
    thin = W.build_model("cnn", input_shape=(3, 9, 1), n_outputs=2, task="binary",
                         params={"blocks": 3, "head": "flatten", "filters": 8})
    assert thin.get_layer("flatten").output.shape[1:] == (3 * 2 * 32,)
    seq = _build("cnn1d", "binary", data, params={"blocks": 3, "head": "flatten"})
    assert seq.get_layer("flatten").output.shape[1:] == (3 * 64,)  # 12 → 6 → 3 → 3


def test_seed_makes_builds_reproducible(data):
    a = _build("mlp", "binary", data, seed=7).get_weights()
    b = _build("mlp", "binary", data, seed=7).get_weights()
    c = _build("mlp", "binary", data, seed=8).get_weights()
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(a, c, strict=True))


def test_without_adapt_x_normalization_is_identity():
    model = W.build_model("mlp", input_shape=(3,), n_outputs=2, task="binary")
    x = np.array([[1.0, -2.0, 30.0]], dtype=np.float32)
    np.testing.assert_allclose(np.asarray(model.layers[1](x)), x)


@pytest.mark.parametrize("arch", ARCHS)
def test_param_validation_names_arch_and_param(arch):
    shape = SHAPES[W.input_kind(arch)]
    for name, p in W.arch_params(arch).items():
        bad = "not-a-choice" if p.choices is not None else p.high * 10 + 1
        with pytest.raises(ValueError, match=rf"arch '{arch}': {name} must be .*but got"):
            W.build_model(arch, input_shape=shape, n_outputs=2, task="binary",
                          params={name: bad})
        if p.choices is None:
            with pytest.raises(ValueError, match=rf"arch '{arch}': {name} must be"):
                W.build_model(arch, input_shape=shape, n_outputs=2, task="binary",
                              params={name: -1})
    with pytest.raises(ValueError, match=rf"arch '{arch}' got unknown parameter\(s\) \['bogus'\]"):
        W.build_model(arch, input_shape=shape, n_outputs=2, task="binary", params={"bogus": 1})


def test_l2_accepts_zero_but_searches_in_log_scale():
    p = W.arch_params("mlp")["l2"]
    assert p.log and p.low == 1e-6 and p.high == 0.01 and p.default == 0
    assert p.check(0, "l2") == 0 and p.check(1e-7, "l2") == 1e-7
    with pytest.raises(ValueError, match=r"l2 must be a number in \[0, 0.01\].*got 0.5"):
        p.check(0.5, "l2")


@pytest.mark.parametrize(
    ("arch", "shape", "expected"),
    [
        ("cnn", (30,), r"arch 'cnn' expects images of shape \(H, W, C\), but the data has "
                       r"shape \(30,\); for data of this shape use arch 'mlp'"),
        ("mlp", (8, 8, 1), r"arch 'mlp' expects tabular features of shape \(F,\), but the "
                           r"data has shape \(8, 8, 1\); .*'cnn'"),
        ("cnn1d", (8, 8, 1), r"arch 'cnn1d' expects sequences of shape \(T, F\), but the "
                             r"data has shape \(8, 8, 1\)"),
        ("cnn", (8, 8), r"arch 'cnn' expects images of shape \(H, W, C\).*\(8, 8\); "
                        r".*'cnn1d'"),
    ],
)
def test_input_shape_mismatch_names_expected_shape(arch, shape, expected):
    with pytest.raises(ValueError, match=expected):
        W.check_input(arch, shape)
    with pytest.raises(ValueError, match=expected):
        W.build_model(arch, input_shape=shape, n_outputs=2, task="binary")


def test_other_argument_errors(data):
    with pytest.raises(ValueError, match=r"n_outputs for task 'binary' must be 2 .*got 3"):
        W.build_model("mlp", input_shape=(5,), n_outputs=3, task="binary")
    with pytest.raises(ValueError, match=r"task must be one of binary, multiclass, multilabel"):
        W.build_model("mlp", input_shape=(5,), n_outputs=3, task="regression")
    with pytest.raises(ValueError, match=r"input_shape must be a tuple of positive integers"):
        W.build_model("mlp", input_shape=(0,), n_outputs=2, task="binary")
    with pytest.raises(ValueError, match=r"adapt_x must have shape \(N, 5\).*got \(24, 8, 8, 2\)"):
        W.build_model("mlp", input_shape=(5,), n_outputs=2, task="binary",
                      adapt_x=data["image"])
    bad = data["tabular"].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="adapt_x contains NaN"):
        W.build_model("mlp", input_shape=(5,), n_outputs=2, task="binary", adapt_x=bad)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("arch", ARCHS)
def test_saved_model_reloads_with_identical_predictions(arch, task, data, built, tmp_path):
    model = built[(arch, task)]
    x = data[W.input_kind(arch)]
    path = tmp_path / f"{arch}_{task}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(
        np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False))
    )
    np.testing.assert_array_equal(
        np.asarray(loaded.layers[1].mean), np.asarray(model.layers[1].mean)
    )
