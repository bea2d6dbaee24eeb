"""Tests for weightsearch.losses: every loss × task, references, and the three weight paths."""

from __future__ import annotations

import math
import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from weightsearch.base import APPLICATIONS, CLASS_WEIGHT_MULTILABEL  # noqa: E402
from weightsearch.losses import (  # noqa: E402
    LOSSES,
    FocalLoss,
    LogitAdjustedLoss,
    WeightedBCE,
    WeightedCrossentropy,
    apply_weights,
    build_loss,
    loss_params,
)
from weightsearch.weighting import WEIGHTINGS, multilabel_weights, weight_vector  # noqa: E402

N_OUT = {"binary": 2, "multiclass": 3, "multilabel": 3}
CASES = [(name, task) for name in LOSSES.names() for task in LOSSES.get(name).tasks]
SINGLE_CASES = [(n, t) for n, t in CASES if t != "multilabel"]
MULTI_CASES = [(n, t) for n, t in CASES if t == "multilabel"]
# a non-default value for each parameter, so the round trips check they are kept
NON_DEFAULT = {"label_smoothing": 0.1, "gamma": 1.5, "alpha": 0.3, "tau": 0.7}


class Batch:
    """A fixed tiny batch for one task: inputs, labels, targets, weights and prior."""

    def __init__(self, task: str, n: int = 12, n_in: int = 4, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        k = N_OUT[task]
        self.task, self.k = task, k
        self.x = rng.normal(size=(n, n_in)).astype("float32")
        if task == "multilabel":
            y = (rng.random((n, k)) < [0.25, 0.5, 0.75]).astype(np.int64)
            y[0], y[1] = 1, 0  # every label has 0s and 1s
            self.y = y
            self.t = y.astype("float32")
            self.weights = multilabel_weights(y, "effective_number", beta=0.9)
            self.prior = y.mean(axis=0)
            self.logits = rng.normal(size=(n, k))
            self.p = (1 / (1 + np.exp(-self.logits))).astype("float32")
        else:
            y = np.concatenate([np.arange(k), rng.choice(k, size=n - k, p=_freqs(k))])
            self.y = y.astype(np.int64)
            self.t = np.eye(k, dtype="float32")[y]
            counts = np.bincount(y, minlength=k)
            self.weights = weight_vector(counts, "effective_number", beta=0.9)
            self.prior = counts / counts.sum()
            z = rng.normal(size=(n, k))
            self.p = (np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)).astype("float32")

    def model(self, seed: int = 1) -> keras.Model:
        """A Dense layer with fixed initial weights (same for every call)."""
        rng = np.random.default_rng(seed)
        act = "sigmoid" if self.task == "multilabel" else "softmax"
        model = keras.Sequential([keras.Input((self.x.shape[1],)),
                                  keras.layers.Dense(self.k, activation=act)])
        model.set_weights([rng.normal(size=(self.x.shape[1], self.k)).astype("float32"),
                           0.1 * rng.normal(size=self.k).astype("float32")])
        return model

    def loss(self, name: str, weights=None, **params) -> keras.losses.Loss:
        return build_loss(name, task=self.task, n_classes=self.k, weights=weights,
                          prior=self.prior, **params)


def _freqs(k: int) -> list[float]:
    f = np.array([0.7, 0.3] if k == 2 else [0.6, 0.3, 0.1])
    return list(f / f.sum())


@pytest.fixture(scope="module")
def batches() -> dict[str, Batch]:
    return {task: Batch(task) for task in N_OUT}


def _params_for(name: str) -> dict[str, float]:
    return {k: v for k, v in NON_DEFAULT.items() if k in loss_params(name)}


# --------------------------------------------------------------------------- common test


def test_registry_contents() -> None:
    assert set(LOSSES.names()) == {"crossentropy", "focal", "logit_adjusted", "weighted_bce"}
    assert LOSSES.get("weighted_bce").tasks == ("multilabel",)
    assert APPLICATIONS == ("loss", "sample_weight", "class_weight")
    for name in LOSSES.names():
        for pname, param in loss_params(name).items():
            if param.default is not None:
                assert param.check(param.default, pname) == param.default


@pytest.mark.parametrize(("name", "task"), CASES)
def test_builds_finite_scalar_and_config_round_trip(batches, name: str, task: str) -> None:
    b = batches[task]
    loss = b.loss(name, weights=b.weights, **_params_for(name))
    assert isinstance(loss, keras.losses.Loss)
    value = float(loss(b.t, b.p))
    assert np.isfinite(value) and value > 0
    config = loss.get_config()
    assert isinstance(config["weights"], list)
    if "prior" in config:
        assert isinstance(config["prior"], list)
    for k, v in _params_for(name).items():
        assert config[k] == v
    again = type(loss).from_config(config)
    assert float(again(b.t, b.p)) == value
    # and through Keras's own (de)serialisation, by registered name
    serialised = keras.saving.serialize_keras_object(loss)
    assert serialised["registered_name"] == f"weightsearch>{type(loss).__name__}"
    assert float(keras.saving.deserialize_keras_object(serialised)(b.t, b.p)) == value


@pytest.mark.parametrize(("name", "task"), CASES)
def test_saved_model_reloads_with_the_loss(batches, tmp_path, name: str, task: str) -> None:
    b = batches[task]
    loss = b.loss(name, weights=b.weights, **_params_for(name))
    model = b.model()
    model.compile(optimizer="sgd", loss=loss)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.loss) is type(loss)
    assert loaded.loss.get_config() == loss.get_config()
    np.testing.assert_array_equal(loaded.predict(b.x, verbose=0), model.predict(b.x, verbose=0))
    assert loaded.evaluate(b.x, b.t, verbose=0) == pytest.approx(
        model.evaluate(b.x, b.t, verbose=0), rel=1e-6
    )


@pytest.mark.parametrize(("name", "task"), CASES)
def test_weighted_loss_is_row_or_element_weighted_mean(batches, name: str, task: str) -> None:
    """Σ w ℓ / (number of loss values), and identical to Keras's sample_weight path."""
    b = batches[task]
    plain = b.loss(name)
    weighted = b.loss(name, weights=b.weights)
    elementwise = np.asarray(plain.call(b.t, b.p))
    if task == "multilabel":
        assert elementwise.shape == b.t.shape
        w = np.where(b.y == 1, b.weights[:, 1], b.weights[:, 0])
    else:
        assert elementwise.shape == (len(b.y),)
        w = b.weights[b.y]
    expected = (w * elementwise).sum() / elementwise.size
    assert float(weighted(b.t, b.p)) == pytest.approx(expected, rel=1e-6)
    _, kwargs = apply_weights("sample_weight", y=b.y, task=task, weights=b.weights)
    assert float(plain(b.t, b.p, sample_weight=kwargs["sample_weight"])) == pytest.approx(
        expected, rel=1e-6
    )


@pytest.mark.parametrize("scheme", WEIGHTINGS.names())
@pytest.mark.parametrize(("name", "task"), CASES)
def test_every_loss_combines_with_every_scheme(batches, scheme, name, task) -> None:
    b = batches[task]
    if task == "multilabel":
        weights = multilabel_weights(b.y, scheme)
    else:
        weights = weight_vector(np.bincount(b.y), scheme)
    value = float(b.loss(name, weights=weights)(b.t, b.p))
    assert np.isfinite(value) and value > 0


# --------------------------------------------------------------------------- field lesson


def _tape(model: keras.Model, x, t, sample_weight=None) -> tuple[float, list[np.ndarray]]:
    """Loss and gradients through ``model.compute_loss`` (what ``train_step`` calls)."""
    with tf.GradientTape() as tape:
        y_pred = model(x, training=True)
        value = model.compute_loss(x=x, y=t, y_pred=y_pred, sample_weight=sample_weight,
                                   training=True)
    return float(value), [g.numpy() for g in tape.gradient(value, model.trainable_variables)]


def _fit(b: Batch, loss, fit_kwargs: dict) -> tuple[float, list[np.ndarray]]:
    """One real ``model.fit`` step, full batch, SGD(lr=1): gradient = before − after."""
    model = b.model()
    before = model.get_weights()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss=loss)
    history = model.fit(b.x, b.t, batch_size=len(b.x), epochs=1, shuffle=False, verbose=0,
                        **fit_kwargs)
    grads = [w0 - w1 for w0, w1 in zip(before, model.get_weights(), strict=True)]
    return history.history["loss"][0], grads


def _assert_same(results: list[tuple[float, list[np.ndarray]]], atol: float = 1e-6) -> None:
    ref_value, ref_grads = results[0]
    assert any(np.abs(g).max() > 1e-3 for g in ref_grads)  # the gradients are not trivial
    for value, grads in results[1:]:
        assert value == pytest.approx(ref_value, rel=1e-6, abs=1e-7)
        for g, ref in zip(grads, ref_grads, strict=True):
            np.testing.assert_allclose(g, ref, rtol=1e-5, atol=atol)


@pytest.mark.parametrize(("name", "task"), SINGLE_CASES)
def test_three_weight_paths_agree_single_label(batches, name: str, task: str) -> None:
    from keras.src.trainers.data_adapters.data_adapter_utils import (
        class_weight_to_sample_weights,
    )

    b = batches[task]
    results = []
    for application in APPLICATIONS:
        loss_weights, kwargs = apply_weights(application, y=b.y, task=task, weights=b.weights)
        model = b.model()
        model.compile(optimizer="sgd", loss=b.loss(name, weights=loss_weights))
        if application == "class_weight":  # what Keras's data adapter does with class_weight
            kwargs = {"sample_weight": class_weight_to_sample_weights(b.t, kwargs["class_weight"])}
        results.append(_tape(model, b.x, b.t, **kwargs))
    _assert_same(results)
    # the weights matter: the unweighted loss differs
    model = b.model()
    model.compile(optimizer="sgd", loss=b.loss(name))
    assert abs(_tape(model, b.x, b.t)[0] - results[0][0]) > 1e-3


@pytest.mark.parametrize(("name", "task"), MULTI_CASES)
def test_weight_paths_agree_multilabel(batches, name: str, task: str) -> None:
    b = batches[task]
    results = []
    for application in ("loss", "sample_weight"):
        loss_weights, kwargs = apply_weights(application, y=b.y, task=task, weights=b.weights)
        if application == "sample_weight":
            assert kwargs["sample_weight"].shape == b.t.shape
        model = b.model()
        model.compile(optimizer="sgd", loss=b.loss(name, weights=loss_weights))
        results.append(_tape(model, b.x, b.t, **kwargs))
    _assert_same(results)
    with pytest.raises(ValueError, match=re.escape(CLASS_WEIGHT_MULTILABEL)):
        apply_weights("class_weight", y=b.y, task=task, weights=b.weights)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "task"), CASES)
def test_three_weight_paths_agree_through_model_fit(batches, name: str, task: str) -> None:
    """The field lesson through real ``model.fit`` (Keras's own class_weight handling)."""
    b = batches[task]
    applications = APPLICATIONS if task != "multilabel" else ("loss", "sample_weight")
    results = []
    for application in applications:
        loss_weights, kwargs = apply_weights(application, y=b.y, task=task, weights=b.weights)
        results.append(_fit(b, b.loss(name, weights=loss_weights), kwargs))
    _assert_same(results)
    if task == "multilabel" and name == "crossentropy":
        # Why class_weight is refused: with Keras's own per-row BCE, Keras silently weights
        # each row by the weight of its argmax label (label 0 for a row with no positive).
        cw = {c: float(w) for c, w in enumerate(b.weights[:, 1])}
        keras_value, _ = _fit(b, keras.losses.BinaryCrossentropy(), {"class_weight": cw})
        row_bce = np.asarray(keras.losses.binary_crossentropy(b.t, b.model()(b.x)))
        argmax_weight = b.weights[np.argmax(b.y, axis=1), 1]
        assert keras_value == pytest.approx((argmax_weight * row_bce).mean(), rel=1e-5)
        assert abs(keras_value - results[0][0]) > 1e-2


# --------------------------------------------------------------------------- references


@pytest.mark.parametrize("task", ["binary", "multiclass"])
@pytest.mark.parametrize(("gamma", "alpha"), [(2.0, None), (0.0, None), (1.5, 0.25), (3.0, 0.6)])
def test_focal_single_label_matches_keras(batches, task, gamma, alpha) -> None:
    b = batches[task]
    ours = b.loss("focal", gamma=gamma, alpha=alpha)
    ref = keras.losses.CategoricalFocalCrossentropy(
        gamma=gamma, alpha=1.0 if alpha is None else alpha
    )
    assert float(ours(b.t, b.p)) == pytest.approx(float(ref(b.t, b.p)), rel=1e-6, abs=1e-7)
    weighted = b.loss("focal", weights=b.weights, gamma=gamma, alpha=alpha)
    np.testing.assert_allclose(float(weighted(b.t, b.p)),
                               float(ref(b.t, b.p, sample_weight=b.weights[b.y])),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("gamma", "alpha"), [(2.0, None), (0.0, None), (1.5, 0.25), (3.0, 0.6)])
def test_focal_multilabel_matches_keras(batches, gamma, alpha) -> None:
    b = batches["multilabel"]
    ours = b.loss("focal", gamma=gamma, alpha=alpha)
    ref = keras.losses.BinaryFocalCrossentropy(
        gamma=gamma, apply_class_balancing=alpha is not None,
        alpha=0.25 if alpha is None else alpha,
    )
    assert float(ours(b.t, b.p)) == pytest.approx(float(ref(b.t, b.p)), rel=1e-6, abs=1e-7)
    # elementwise values against Keras's class on one column at a time
    elementwise = np.asarray(ours.call(b.t, b.p))
    for label in range(b.k):
        column = ref(b.t[:, label:label + 1], b.p[:, label:label + 1])
        assert elementwise[:, label].mean() == pytest.approx(float(column), rel=1e-6)


def test_focal_gamma_zero_is_crossentropy(batches) -> None:
    for task in N_OUT:
        b = batches[task]
        assert float(b.loss("focal", gamma=0.0)(b.t, b.p)) == pytest.approx(
            float(b.loss("crossentropy")(b.t, b.p)), rel=1e-6
        )


TWO_ROWS_T = np.array([[1.0, 0.0], [0.0, 1.0]], dtype="float32")
TWO_ROWS_P = np.array([[0.8, 0.2], [0.4, 0.6]], dtype="float32")


def _binary_loss(name: str, weights=None, prior=None, **params) -> keras.losses.Loss:
    return build_loss(name, task="binary", n_classes=2, weights=weights, prior=prior, **params)


def test_crossentropy_hand_computed() -> None:
    ce = -(math.log(0.8) + math.log(0.6)) / 2
    assert float(_binary_loss("crossentropy")(TWO_ROWS_T, TWO_ROWS_P)) == pytest.approx(ce, 1e-6)
    weighted = _binary_loss("crossentropy", weights=[1.0, 3.0])
    expected = -(math.log(0.8) + 3 * math.log(0.6)) / 2
    assert float(weighted(TWO_ROWS_T, TWO_ROWS_P)) == pytest.approx(expected, rel=1e-6)
    # label smoothing s = 0.2 over C = 2: targets 0.9 / 0.1
    smoothed = _binary_loss("crossentropy", label_smoothing=0.2)
    expected = -(0.9 * math.log(0.8) + 0.1 * math.log(0.2)
                 + 0.1 * math.log(0.4) + 0.9 * math.log(0.6)) / 2
    assert float(smoothed(TWO_ROWS_T, TWO_ROWS_P)) == pytest.approx(expected, rel=1e-6)


def test_crossentropy_matches_keras_classes(batches) -> None:
    b = batches["multiclass"]
    ref = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)
    assert float(b.loss("crossentropy", label_smoothing=0.1)(b.t, b.p)) == pytest.approx(
        float(ref(b.t, b.p)), rel=1e-6
    )
    m = batches["multilabel"]
    ref = keras.losses.BinaryCrossentropy(label_smoothing=0.1)
    assert float(m.loss("crossentropy", label_smoothing=0.1)(m.t, m.p)) == pytest.approx(
        float(ref(m.t, m.p)), rel=1e-6
    )


def test_logit_adjusted_hand_computed() -> None:
    # prior (0.75, 0.25), τ = 1: softmax(log p + log π) ∝ p·π
    # row 1: (0.6, 0.05) → q0 = 12/13; row 2: (0.3, 0.15) → q1 = 1/3
    loss = _binary_loss("logit_adjusted", prior=[0.75, 0.25])
    expected = (math.log(13 / 12) + math.log(3)) / 2  # = ln(13/4) / 2
    assert float(loss(TWO_ROWS_T, TWO_ROWS_P)) == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(math.log(13 / 4) / 2)
    weighted = _binary_loss("logit_adjusted", prior=[3, 1], weights=[1.0, 3.0])  # unnormalised
    expected = (math.log(13 / 12) + 3 * math.log(3)) / 2
    assert float(weighted(TWO_ROWS_T, TWO_ROWS_P)) == pytest.approx(expected, rel=1e-6)
    # τ = 2: ∝ p·π² → row 1: (0.45, 0.0125) → ln(0.4625/0.45); row 2: (0.225, 0.0375) → ln 7
    loss = _binary_loss("logit_adjusted", prior=[0.75, 0.25], tau=2.0)
    expected = (math.log(0.4625 / 0.45) + math.log(7)) / 2
    assert float(loss(TWO_ROWS_T, TWO_ROWS_P)) == pytest.approx(expected, rel=1e-6)


def test_logit_adjusted_multilabel_hand_computed() -> None:
    # p = 0.8, π = 0.25: logit = ln 4 + ln(1/3) → σ = 4/7, y = 1 → ln(7/4)
    # p = 0.5, π = 0.75: logit = 0 + ln 3 → σ = 3/4, y = 0 → ln 4
    loss = build_loss("logit_adjusted", task="multilabel", n_classes=2, prior=[0.25, 0.75])
    t = np.array([[1.0, 0.0]], dtype="float32")
    p = np.array([[0.8, 0.5]], dtype="float32")
    np.testing.assert_allclose(np.asarray(loss.call(t, p)), [[math.log(7 / 4), math.log(4)]],
                               rtol=1e-6)
    assert float(loss(t, p)) == pytest.approx(math.log(7) / 2, rel=1e-6)


@pytest.mark.parametrize("task", list(N_OUT))
def test_logit_adjusted_reduces_to_crossentropy(batches, task: str) -> None:
    b = batches[task]
    ce = float(b.loss("crossentropy")(b.t, b.p))
    tau0 = float(b.loss("logit_adjusted", tau=0.0)(b.t, b.p))
    assert tau0 == pytest.approx(ce, rel=1e-5)
    if task == "multilabel":
        uniform = [0.5] * b.k  # log(π/(1−π)) = 0
    else:
        uniform = [1 / b.k] * b.k
    loss = build_loss("logit_adjusted", task=task, n_classes=b.k, prior=uniform)
    assert float(loss(b.t, b.p)) == pytest.approx(ce, rel=1e-5)
    # and with the data's non-uniform prior it is different
    assert abs(float(b.loss("logit_adjusted")(b.t, b.p)) - ce) > 1e-3


def test_weighted_bce_hand_computed_and_references(batches) -> None:
    loss = build_loss("weighted_bce", task="multilabel", n_classes=2,
                      weights=[[1.0, 2.0], [3.0, 1.0]])
    t = np.array([[1.0, 0.0]], dtype="float32")
    p = np.array([[0.8, 0.5]], dtype="float32")
    # 2·(−ln 0.8) and 3·(−ln 0.5)
    expected = (2 * math.log(1.25) + 3 * math.log(2)) / 2
    assert float(loss(t, p)) == pytest.approx(expected, rel=1e-6)
    b = batches["multilabel"]
    # equals crossentropy with the same per-label weights (hard targets)
    assert float(b.loss("weighted_bce", weights=b.weights)(b.t, b.p)) == pytest.approx(
        float(b.loss("crossentropy", weights=b.weights)(b.t, b.p)), rel=1e-6
    )
    # and tf.nn.weighted_cross_entropy_with_logits with pos_weight = W[:, 1] (W[:, 0] = 1)
    pos_weight = np.array([0.5, 2.0, 4.0])
    weights = np.stack([np.ones(3), pos_weight], axis=1)
    ref = tf.nn.weighted_cross_entropy_with_logits(
        labels=b.t.astype("float64"), logits=b.logits, pos_weight=pos_weight
    )
    ours = b.loss("weighted_bce", weights=weights).call(b.t, b.p)
    np.testing.assert_allclose(np.asarray(ours), ref.numpy(), rtol=2e-5, atol=1e-6)


# --------------------------------------------------------------------------- apply_weights


def test_apply_weights_outputs() -> None:
    y = np.array([0, 1, 1, 2])
    w = np.array([0.5, 1.0, 4.0])
    assert apply_weights("loss", y=y, task="multiclass", weights=w)[1] == {}
    np.testing.assert_array_equal(apply_weights("loss", y=y, task="multiclass", weights=w)[0], w)
    none, kwargs = apply_weights("sample_weight", y=y, task="multiclass", weights=w)
    assert none is None and kwargs["sample_weight"].dtype == np.float32
    np.testing.assert_array_equal(kwargs["sample_weight"], [0.5, 1.0, 1.0, 4.0])
    # one-hot labels give the same
    _, onehot = apply_weights("sample_weight", y=np.eye(3)[y], task="multiclass", weights=w)
    np.testing.assert_array_equal(onehot["sample_weight"], kwargs["sample_weight"])
    none, kwargs = apply_weights("Class-Weight", y=y, task="multiclass", weights=w)
    assert none is None and kwargs == {"class_weight": {0: 0.5, 1: 1.0, 2: 4.0}}
    Y = np.array([[1, 0], [0, 0], [1, 1]])
    W = np.array([[1.0, 2.0], [0.5, 3.0]])
    _, kwargs = apply_weights("sample_weight", y=Y, task="multilabel", weights=W)
    np.testing.assert_array_equal(kwargs["sample_weight"], [[2.0, 0.5], [1.0, 0.5], [2.0, 3.0]])
    assert apply_weights("sample_weight", y=Y, task="multilabel", weights=None) == (None, {})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"application": "focal", "task": "binary"}, r"one of loss, sample_weight.*'focal'"),
        ({"application": "loss", "task": "regression"}, r"task must be one of.*'regression'"),
        ({"application": "class_weight", "task": "multilabel"},
         "'class_weight' for task 'multilabel': " + re.escape(CLASS_WEIGHT_MULTILABEL)),
        ({"application": "loss", "task": "binary", "weights": [[1, 2]]}, r"shape \(C,\)"),
        ({"application": "sample_weight", "task": "multiclass", "weights": [1.0, 2.0]},
         r"label 2 has no weight"),
        ({"application": "loss", "task": "multilabel", "weights": [1.0, 2.0]}, r"0/1 array"),
    ],
)
def test_apply_weights_errors(kwargs, match) -> None:
    args = {"y": np.array([0, 1, 2]), "weights": [1.0, 2.0, 3.0], **kwargs}
    with pytest.raises(ValueError, match=match):
        apply_weights(args.pop("application"), **args)


# --------------------------------------------------------------------------- build errors


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("weighted_bce", {"task": "multiclass", "n_classes": 3},
         r"'weighted_bce' does not support task 'multiclass'; it supports: multilabel"),
        ("hinge", {"task": "binary", "n_classes": 2}, r"Unknown loss 'hinge'.*focal"),
        ("focal", {"task": "binary", "n_classes": 2, "gamma": 6},
         r"loss 'focal': gamma must be a number in \[0, 5\], but got 6"),
        ("focal", {"task": "binary", "n_classes": 2, "alpha": 1.5},
         r"loss 'focal': alpha must be a number in \[0, 1\], but got 1.5"),
        ("crossentropy", {"task": "binary", "n_classes": 2, "label_smoothing": 0.5},
         r"label_smoothing must be a number in \[0, 0.3\]"),
        ("logit_adjusted", {"task": "binary", "n_classes": 2, "tau": -1},
         r"tau must be a number in \[0, 2\]"),
        ("crossentropy", {"task": "binary", "n_classes": 2, "gamma": 2},
         r"loss 'crossentropy' got unknown parameter\(s\) \['gamma'\]"),
        ("logit_adjusted", {"task": "multiclass", "n_classes": 3},
         r"needs prior: \(C,\) class frequencies, but got None"),
        ("logit_adjusted", {"task": "multiclass", "n_classes": 3, "prior": [0.5, 0.5]},
         r"prior must have shape \(3,\), but got \(2,\)"),
        ("logit_adjusted", {"task": "multilabel", "n_classes": 2, "prior": [0.0, 0.5]},
         r"must be in \(0, 1\)"),
        ("crossentropy", {"task": "binary", "n_classes": 3}, r"must be 2, but got 3"),
        ("crossentropy", {"task": "multiclass", "n_classes": 3, "weights": [1, 2]},
         r"weights must have shape \(3,\), but got \(2,\)"),
        ("crossentropy", {"task": "multilabel", "n_classes": 3, "weights": [1, 2, 3]},
         r"weights must have shape \(3, 2\), but got \(3,\)"),
        ("crossentropy", {"task": "binary", "n_classes": 2, "weights": [1, -2]},
         r"finite and >= 0"),
    ],
)
def test_build_loss_errors(name, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        build_loss(name, **kwargs)


def test_prior_is_ignored_by_losses_that_do_not_use_it() -> None:
    # positive rate 0 would be invalid for logit_adjusted, but crossentropy never reads it
    loss = build_loss("crossentropy", task="multilabel", n_classes=2, prior=[0.0, 0.5])
    assert "prior" not in loss.get_config()


def test_loss_classes_are_exported() -> None:
    assert isinstance(_binary_loss("crossentropy"), WeightedCrossentropy)
    assert isinstance(_binary_loss("focal"), FocalLoss)
    assert isinstance(_binary_loss("logit_adjusted", prior=[0.5, 0.5]), LogitAdjustedLoss)
    assert isinstance(build_loss("weighted_bce", task="multilabel", n_classes=2), WeightedBCE)
