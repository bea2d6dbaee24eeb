"""MacroF1Callback: exact epoch-level scores from one predict pass per epoch."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from unittest import mock  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from weightsearch.callbacks import MacroF1Callback  # noqa: E402
from weightsearch.models import build_model  # noqa: E402

EPOCHS = 2


@pytest.fixture(scope="session")
def data():
    """32 training and 16 validation rows, 4 features; labels for every task."""
    rng = np.random.default_rng(42)
    x = rng.normal(size=(48, 4)).astype(np.float32)
    score = x @ np.array([1.5, -1.0, 0.5, 0.0]) + 0.3 * rng.normal(size=48)
    multiclass = np.digitize(score, [-0.8, 0.6]).astype(np.int64)  # 3 classes
    binary = (score > 0.7).astype(np.int64)  # minority positive class
    multilabel = np.stack([score > 0, x[:, 1] > 0.5, x[:, 2] < -0.5], axis=1).astype(np.int64)
    split = 32
    return {
        "x_tr": x[:split], "x_val": x[split:],
        "y": {
            "multiclass": (multiclass[:split], multiclass[split:]),
            "binary": (binary[:split], binary[split:]),
            "multilabel": (multilabel[:split], multilabel[split:]),
        },
    }


def _targets(y, task, n):
    return y.astype(np.float32) if task == "multilabel" else np.eye(n, dtype=np.float32)[y]


class Recorder(keras.callbacks.Callback):
    """Placed after MacroF1Callback: copies the logs it sees and the model's own output."""

    def __init__(self, x_val, cb):
        super().__init__()
        self.x_val, self.cb = x_val, cb
        self.logs, self.proba, self.cb_proba = [], [], []

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append(dict(logs))
        self.proba.append(np.asarray(self.model(self.x_val, training=False), dtype=np.float64))
        self.cb_proba.append(self.cb.last_proba.copy())


def _fit(data, task, n, callbacks_for, *, params=None, seed=0):
    """Fit a tiny MLP for EPOCHS epochs without validation_data; count predict calls."""
    y_tr, _ = data["y"][task]
    model = build_model("mlp", input_shape=(4,), n_outputs=n, task=task,
                        params=params or {"width": 8}, adapt_x=data["x_tr"], seed=seed)
    loss = "binary_crossentropy" if task == "multilabel" else "categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
    callbacks = callbacks_for(model)
    with mock.patch.object(model, "predict", wraps=model.predict) as predict, \
            mock.patch.object(model, "evaluate", wraps=model.evaluate) as evaluate:
        hist = model.fit(data["x_tr"], _targets(y_tr, task, n), epochs=EPOCHS, batch_size=8,
                         shuffle=False, verbose=0, callbacks=callbacks)
    return model, hist, predict, evaluate


@pytest.fixture(scope="module")
def multiclass_run(data):
    """One multiclass fit: MacroF1Callback → Recorder → EarlyStopping; L2 on, BN on."""
    _, y_val = data["y"]["multiclass"]
    cb = MacroF1Callback(data["x_val"], y_val, task="multiclass", n_classes=3,
                         metric="balanced_accuracy", batch_size=5, class_names=["a", "b", "c"])
    rec = Recorder(data["x_val"], cb)
    es = keras.callbacks.EarlyStopping(monitor="val_macro_f1", mode="max", patience=5)
    model, hist, predict, evaluate = _fit(
        data, "multiclass", 3, lambda m: [cb, rec, es],
        params={"width": 8, "l2": 0.01, "batch_norm": True, "dropout": 0.2},
    )
    return {"cb": cb, "rec": rec, "es": es, "model": model, "hist": hist,
            "predict": predict, "evaluate": evaluate, "y_val": y_val}


def test_val_macro_f1_equals_sklearn_each_epoch(multiclass_run, data):
    run = multiclass_run
    y_val = run["y_val"]
    assert len(run["rec"].logs) == EPOCHS
    for logs, own, seen in zip(run["rec"].logs, run["rec"].proba, run["rec"].cb_proba,
                               strict=True):
        np.testing.assert_allclose(seen, own, atol=1e-5)  # the callback's predictions
        pred = own.argmax(axis=1)
        assert np.array_equal(pred, seen.argmax(axis=1))
        expected = skm.f1_score(y_val, pred, average="macro", labels=[0, 1, 2], zero_division=0)
        assert isinstance(logs["val_macro_f1"], float)
        assert logs["val_macro_f1"] == pytest.approx(expected, abs=1e-9)
        per_class = skm.f1_score(y_val, pred, average=None, labels=[0, 1, 2], zero_division=0)
        for i in range(3):
            assert logs[f"val_f1_{i}"] == pytest.approx(per_class[i], abs=1e-9)
        assert logs["val_balanced_accuracy"] == pytest.approx(
            skm.balanced_accuracy_score(y_val, pred), abs=1e-9
        )


def test_val_loss_equals_evaluate_including_regularisation(multiclass_run, data):
    run = multiclass_run
    model, y_val = run["model"], run["y_val"]
    targets = _targets(y_val, "multiclass", 3)
    val_loss = run["cb"].history[-1]["val_loss"]
    expected = model.evaluate(data["x_val"], targets, batch_size=4, verbose=0)
    assert val_loss == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # The L2 term is really part of it: plain cross-entropy alone is clearly smaller.
    ce = float(np.mean(keras.losses.categorical_crossentropy(targets, run["cb"].last_proba)))
    reg = float(sum(model.losses))
    assert reg > 1e-3
    assert val_loss == pytest.approx(ce + reg, rel=1e-5)


def test_exactly_one_predict_per_epoch_and_no_keras_validation(multiclass_run, data):
    run = multiclass_run
    calls = run["predict"].call_args_list
    assert len(calls) == EPOCHS
    for call in calls:
        assert call.args[0] is data["x_val"]
        assert call.kwargs == {"batch_size": 5, "verbose": 0}
    run["evaluate"].assert_not_called()  # fit had no validation_data
    # History (appended after user callbacks) saw the callback's values.
    assert run["hist"].history["val_macro_f1"] == [h["val_macro_f1"] for h in run["cb"].history]
    assert run["hist"].history["val_loss"] == [h["val_loss"] for h in run["cb"].history]


def test_early_stopping_after_it_sees_the_value(multiclass_run):
    run = multiclass_run
    values = [logs["val_macro_f1"] for logs in run["rec"].logs]
    assert run["es"].best == max(values)
    assert run["es"].wait == EPOCHS - 1 - int(np.argmax(values))


def test_best_epoch_value_and_probabilities(multiclass_run):
    run = multiclass_run
    cb, rec = run["cb"], run["rec"]
    values = [logs["val_balanced_accuracy"] for logs in rec.logs]
    assert cb.best_epoch == int(np.argmax(values))  # first epoch on ties
    assert cb.best_value == max(values)
    np.testing.assert_array_equal(cb.best_proba, rec.cb_proba[cb.best_epoch])
    np.testing.assert_array_equal(cb.last_proba, rec.cb_proba[-1])
    assert [h["epoch"] for h in cb.history] == list(range(EPOCHS))
    best_row = rec.logs[cb.best_epoch]
    assert cb.best_per_class_f1 == {n: best_row[f"val_f1_{i}"] for i, n in enumerate("abc")}
    np.testing.assert_array_equal(
        cb.confusion("best"),
        skm.confusion_matrix(run["y_val"], cb.best_proba.argmax(1), labels=[0, 1, 2]),
    )


def test_binary_threshold_and_positive_class_are_honoured(data):
    _, y_val = data["y"]["binary"]
    n1, n0 = int(y_val.sum()), int((1 - y_val).sum())
    assert n1 > 0 and n0 > 0
    default = MacroF1Callback(data["x_val"], y_val, task="binary", n_classes=2,
                              metric="positive_f1")
    everything = MacroF1Callback(data["x_val"], y_val, task="binary", n_classes=2,
                                 threshold=0.0, compute_loss=False)
    pos0 = MacroF1Callback(data["x_val"], y_val, task="binary", n_classes=2, threshold=0.3,
                           positive=0, compute_loss=False)
    rec = Recorder(data["x_val"], default)
    _, _, predict, _ = _fit(data, "binary", 2, lambda m: [default, everything, pos0, rec])
    assert predict.call_count == 3 * EPOCHS  # one pass per callback per epoch
    for e in range(EPOCHS):
        # threshold 0: everything is predicted positive → F1_1 = 2n1/(2n1+n0), F1_0 = 0.
        assert everything.history[e]["val_macro_f1"] == pytest.approx(
            n1 / (2 * n1 + n0), abs=1e-12
        )
        assert everything.history[e]["val_f1_0"] == 0.0
        proba = rec.cb_proba[e]
        pred = (proba[:, 1] >= 0.5).astype(int)
        assert default.history[e]["val_macro_f1"] == pytest.approx(
            skm.f1_score(y_val, pred, average="macro", labels=[0, 1], zero_division=0), abs=1e-9
        )
        assert default.history[e]["val_positive_f1"] == pytest.approx(
            skm.f1_score(y_val, pred, pos_label=1, zero_division=0), abs=1e-9
        )
        pred0 = np.where(proba[:, 0] >= 0.3, 0, 1)
        assert pos0.history[e]["val_macro_f1"] == pytest.approx(
            skm.f1_score(y_val, pred0, average="macro", labels=[0, 1], zero_division=0), abs=1e-9
        )
        assert "val_loss" in default.history[e] and "val_loss" not in pos0.history[e]


def test_multilabel_per_label_thresholds_and_loss(data):
    _, y_val = data["y"]["multilabel"]
    thr = np.array([0.3, 0.5, 0.7])
    cb = MacroF1Callback(data["x_val"], y_val, task="multilabel", n_classes=3, threshold=thr,
                         metric="weighted_f1")
    rec = Recorder(data["x_val"], cb)
    model, _, _, _ = _fit(data, "multilabel", 3, lambda m: [cb, rec])
    for logs, proba in zip(rec.logs, rec.cb_proba, strict=True):
        pred = (proba >= thr).astype(int)
        assert logs["val_macro_f1"] == pytest.approx(
            skm.f1_score(y_val, pred, average="macro", zero_division=0), abs=1e-9
        )
        assert logs["val_weighted_f1"] == pytest.approx(
            skm.f1_score(y_val, pred, average="weighted", zero_division=0), abs=1e-9
        )
        per_label = skm.f1_score(y_val, pred, average=None, zero_division=0)
        assert [logs[f"val_f1_{i}"] for i in range(3)] == pytest.approx(per_label, abs=1e-9)
    expected = model.evaluate(data["x_val"], y_val.astype(np.float32), verbose=0)
    assert cb.history[-1]["val_loss"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert cb.confusion("last").shape == (3, 2, 2)


def test_manual_epoch_end_without_fit(data):
    """The callback also works when driven by hand (no training loop)."""
    _, y_val = data["y"]["multiclass"]
    model = build_model("mlp", input_shape=(4,), n_outputs=3, task="multiclass", seed=1)
    model.compile(loss="categorical_crossentropy")
    cb = MacroF1Callback(data["x_val"], y_val, task="multiclass", n_classes=3)
    cb.set_model(model)
    logs = {"loss": 1.0}
    cb.on_epoch_end(0, logs)
    assert set(logs) == {"loss", "val_macro_f1", "val_f1_0", "val_f1_1", "val_f1_2", "val_loss"}
    proba = np.asarray(model(data["x_val"], training=False))
    ce = np.mean(-np.log(proba[np.arange(len(y_val)), y_val]))
    assert logs["val_loss"] == pytest.approx(ce, rel=1e-5)
    assert cb.best_epoch == 0 and cb.best_value == logs["val_macro_f1"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task": "multiclass", "n_classes": 3, "y_val": "onehot"},
         r"y_val must be class labels of shape \(N,\) \(not one-hot\).*\(16, 3\)"),
        ({"task": "multiclass", "n_classes": 3, "y_val": "short"},
         "x_val and y_val must have the same number of rows, but got 16 and 15"),
        ({"task": "multiclass", "n_classes": 3, "metric": "positive_f1"},
         "metric 'positive_f1' is defined for binary tasks only"),
        ({"task": "multiclass", "n_classes": 3, "metric": "auc"}, "Unknown metric 'auc'"),
        ({"task": "multiclass", "n_classes": 3, "class_names": ["a"]},
         "class_names must have 3 entries"),
        ({"task": "binary", "n_classes": 3}, "n_classes must be 2 for task 'binary'"),
        ({"task": "binary", "n_classes": 2, "y_val": "binary", "threshold": 1.2},
         r"threshold must lie in \[0, 1\], but got 1.2"),
        ({"task": "multilabel", "n_classes": 3, "y_val": "multilabel", "threshold": [0.5] * 2},
         "array of 3 per-label thresholds, but got 2"),
        ({"task": "multiclass", "n_classes": 3, "batch_size": 0},
         "batch_size must be a positive integer, but got 0"),
        ({"task": "regression", "n_classes": 3}, "task must be one of"),
    ],
)
def test_argument_errors(data, kwargs, match):
    kwargs = dict(kwargs)
    y_val = {
        "onehot": np.eye(3, dtype=int)[data["y"]["multiclass"][1]],
        "short": data["y"]["multiclass"][1][:-1],
        "binary": data["y"]["binary"][1],
        "multilabel": data["y"]["multilabel"][1],
    }.get(kwargs.pop("y_val", None), data["y"]["multiclass"][1])
    with pytest.raises(ValueError, match=match):
        MacroF1Callback(data["x_val"], y_val, **kwargs)


def test_needs_a_compiled_loss_for_val_loss(data):
    model = build_model("mlp", input_shape=(4,), n_outputs=3, task="multiclass")
    cb = MacroF1Callback(data["x_val"], data["y"]["multiclass"][1], task="multiclass",
                         n_classes=3)
    cb.set_model(model)
    with pytest.raises(ValueError, match="compute_loss=True.*needs a model compiled with a loss"):
        cb.on_train_begin()
    with pytest.raises(ValueError, match="no epoch has ended yet"):
        cb.confusion()


# ---- MacroF1Callback(x_val, y_val): task and classes inferred ----------------------------


@pytest.mark.parametrize(("task", "n"), [("binary", 2), ("multiclass", 3)])
def test_with_only_x_val_and_y_val_it_equals_sklearns_macro_f1(data, task, n):
    """Written as a Keras user would, after reading about the batch-wise F1 trap."""
    _, y_val = data["y"][task]
    cb = MacroF1Callback(data["x_val"], y_val)
    assert (cb.task, cb.n_classes) == (task, n)
    rec = Recorder(data["x_val"], cb)
    _fit(data, task, n, lambda m: [cb, rec])
    for logs, proba in zip(rec.logs, rec.proba, strict=True):
        expected = skm.f1_score(y_val, proba.argmax(axis=1), average="macro")
        assert logs["val_macro_f1"] == pytest.approx(expected, abs=1e-9)
        assert logs["val_loss"] > 0


def test_string_labels_one_hot_and_a_single_sigmoid_are_inferred(data):
    _, y_val = data["y"]["multiclass"]
    names = np.array(["cat", "dog", "emu"])[y_val]
    cb = MacroF1Callback(data["x_val"], names)
    assert cb.task == "multiclass" and list(cb.classes_) == ["cat", "dog", "emu"]
    assert cb.class_names == ["cat", "dog", "emu"] and np.array_equal(cb.y_val, y_val)
    onehot = MacroF1Callback(data["x_val"], np.eye(3, dtype=int)[y_val])
    assert onehot.task == "multiclass" and np.array_equal(onehot.y_val, y_val)
    forced = MacroF1Callback(data["x_val"], np.eye(3, dtype=int)[y_val], task="multilabel")
    assert forced.task == "multilabel" and forced.y_val.shape == (16, 3)
    multi = MacroF1Callback(data["x_val"], data["y"]["multilabel"][1])
    assert (multi.task, multi.n_classes) == ("multilabel", 3)
    with pytest.raises(ValueError, match=r"scikit-learn reads it as 'continuous'"):
        MacroF1Callback(data["x_val"], np.linspace(0, 1, 16))

    y_tr, y_bin = data["y"]["binary"]
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(inputs))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    cb = MacroF1Callback(data["x_val"], y_bin)
    model.fit(data["x_tr"], y_tr.astype(np.float32), epochs=1, verbose=0, callbacks=[cb])
    p1 = np.asarray(model(data["x_val"], training=False)).ravel()
    expected = skm.f1_score(y_bin, (p1 >= 0.5).astype(int), average="macro")
    assert cb.history[0]["val_macro_f1"] == pytest.approx(expected, abs=1e-9)
    loss = model.evaluate(data["x_val"], y_bin.astype(np.float32), verbose=0)
    assert cb.history[0]["val_loss"] == pytest.approx(loss, rel=1e-4)
