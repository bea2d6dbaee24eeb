"""CNN defaults that learn a small image (and sequence) set, and a default space that
searches the head (weightsearch.models, weightsearch.space).

The slow tests train the default ``cnn`` / ``cnn1d`` (unweighted cross-entropy, early
stopped on validation macro-F1 by ``MacroF1Callback``) and the same body with the GAP head,
on data that ships with scikit-learn or is generated here: no downloads.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from weightsearch import data, losses, metrics, models  # noqa: E402
from weightsearch import spec as spec_mod  # noqa: E402
from weightsearch.space import DEFAULT_ARCH_SEARCH, check_space  # noqa: E402

SHAPES = {"image": (28, 28, 1), "sequence": (60, 3), "tabular": (5,)}

# Test macro-F1 floors. Measured (split seed 0, model seed 0, 30 epochs, patience 5): the
# default cnn 0.906 on 28×28 long-tailed digits (0.86-0.96 over 3 split × 3 model seeds),
# GAP 0.045 (the majority class; 0.38-0.41 even after 60 epochs without early stopping).
# Default cnn1d on the motif sequences: 0.98-1.0 over 3 model seeds, GAP 0.06-0.16.
DIGITS_FLOOR = 0.75
MOTIFS_FLOOR = 0.85


def _space(kind: str, model: dict | None = None):
    raw = {"name": "t", "data": {"source": "builtin:digits-lt"}}
    if model is not None:
        raw["space"] = {"model": model}
    return check_space(
        spec_mod.parse(raw), task="multiclass", data_kind=kind, input_shape=SHAPES[kind]
    )


@pytest.mark.parametrize(("kind", "arch"), [("image", "cnn"), ("sequence", "cnn1d")])
def test_default_space_searches_the_head(kind, arch):
    space = _space(kind)
    assert space.choices["model"].choices == (arch,)
    head = space.params["model"][arch]["head"]
    assert (head.name, head.kind, head.choices) == (
        f"model.{arch}.head", "categorical", ("gap", "flatten"),
    )
    assert (f"model.{arch}.head", "one of gap, flatten") in space.describe()
    # Only the head: every other parameter keeps its default.
    assert list(space.params["model"][arch]) == ["head"]


def test_default_space_suggests_both_heads():
    import optuna

    space = _space("image")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    heads = set()
    for _ in range(12):
        trial = study.ask()
        config = space.suggest(trial)
        assert trial.params["model.cnn.head"] == config["model"]["params"]["head"]
        heads.add(config["model"]["params"]["head"])
    assert heads == {"gap", "flatten"}


def test_head_stays_as_the_spec_says():
    # The spec fixes the head: it is not searched.
    assert _space("image", {"head": "gap"}).params["model"]["cnn"]["head"].value == "gap"
    # Other model keys without an arch: the default arch still searches its head.
    space = _space("image", {"blocks": [1, 2]})
    assert set(space.params["model"]["cnn"]) == {"blocks", "head"}
    # An explicit arch is the user's space: the head keeps its default (flatten).
    assert _space("image", {"arch": "cnn"}).params["model"]["cnn"] == {}
    assert _space("tabular").params["model"]["mlp"] == {}


def test_default_arch_search_names_choice_params():
    for arch, names in DEFAULT_ARCH_SEARCH.items():
        table = models.arch_params(arch)
        for name in names:
            assert table[name].choices is not None and len(table[name].choices) > 1, name


def test_default_head_is_flatten():
    for arch in ("cnn", "cnn1d"):
        assert models.arch_params(arch)["head"].default == "flatten"
    model = models.build_model("cnn", input_shape=(28, 28, 1), n_outputs=10, task="multiclass")
    assert model.get_layer("flatten").output.shape[1:] == (7 * 7 * 32,)
    assert "gap" not in [layer.name for layer in model.layers]


# --------------------------------------------------------------------------- slow: training


def _digits28() -> tuple[np.ndarray, np.ndarray]:
    """builtin:digits-lt (593 rows, 10 classes, 174 → 9 rows) upsampled to 28×28×1:
    each pixel becomes a 3×3 block (24×24), padded by 2 zeros on every side."""
    ds = data.load("builtin:digits-lt", seed=0)
    x = np.kron(ds.x[..., 0], np.ones((3, 3), dtype=np.float32))
    return np.pad(x, ((0, 0), (2, 2), (2, 2)))[..., None], ds.y


#: Class c is three motifs in order (0: bump on channel 0, 1: bump on channel 1, 2: sine on
#: channel 2, 3: negative plateau on channels 0 and 1); classes pair up as reversals.
WORDS = [(0, 1, 2), (2, 1, 0), (1, 0, 3), (3, 0, 1), (0, 2, 3), (3, 2, 0), (1, 3, 2), (2, 3, 1)]


def _motifs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, 60, 3) sequences: N(0, 0.3²) noise plus class c's three 12-step motifs, one in
    each 20-step slot at a random offset, amplitude U(0.7, 1.3). Class c has
    round(160 · 16^(−c/7)) rows: [160, 108, 72, 49, 33, 22, 15, 10]."""
    rng = np.random.default_rng(seed)
    t = np.arange(12)
    bump = np.exp(-0.5 * ((t - 6) / 2.0) ** 2)
    xs, ys = [], []
    for c, word in enumerate(WORDS):
        for _ in range(int(round(160 * 16 ** (-c / 7)))):
            x = 0.3 * rng.standard_normal((60, 3))
            for k, kind in enumerate(word):
                off = 20 * k + int(rng.integers(0, 9))
                a = rng.uniform(0.7, 1.3)
                seg = x[off:off + 12]
                if kind == 3:
                    seg[:, :2] -= 0.8 * a
                else:
                    seg[:, kind] += a * (np.sin(2 * np.pi * t / 6) if kind == 2 else bump)
            xs.append(x)
            ys.append(c)
    return np.stack(xs).astype(np.float32), np.asarray(ys, dtype=np.int64)


def _test_macro_f1(arch: str, x: np.ndarray, y: np.ndarray, params: dict, seed: int = 0):
    """Stratified 80/20 train/test, one 5-fold split of train for validation; Adam 1e-3,
    batch 32, ≤ 30 epochs, early stopping (patience 5) on val macro-F1, best weights."""
    import keras

    from weightsearch.callbacks import MacroF1Callback

    n = int(y.max()) + 1
    ds = data.Dataset(x, y, [str(c) for c in range(n)], "multiclass", "t")
    train, test = data.train_test_split(ds, 0.2, seed)
    (fit, val), *_ = data.kfold(y[train], "multiclass", folds=5, seed=seed)
    fit, val = train[fit], train[val]
    keras.utils.set_random_seed(seed)
    model = models.build_model(arch, input_shape=x.shape[1:], n_outputs=n, task="multiclass",
                               params=params, adapt_x=x[fit], seed=seed)
    model.compile(keras.optimizers.Adam(1e-3),
                  loss=losses.build_loss("crossentropy", task="multiclass", n_classes=n))
    f1 = MacroF1Callback(x[val], y[val], task="multiclass", n_classes=n)
    stop = keras.callbacks.EarlyStopping("val_macro_f1", mode="max", patience=5,
                                         restore_best_weights=True)
    model.fit(x[fit], data.model_targets(y[fit], "multiclass", n), epochs=30, batch_size=32,
              callbacks=[f1, stop], verbose=0)
    pred = np.asarray(model.predict(x[test], verbose=0)).argmax(axis=1)
    keras.backend.clear_session()
    return metrics.macro_f1(y[test], pred, n)


@pytest.mark.slow
def test_default_cnn_learns_long_tailed_digits_and_gap_does_not():
    x, y = _digits28()
    default = _test_macro_f1("cnn", x, y, {})
    gap = _test_macro_f1("cnn", x, y, {"head": "gap"})
    assert default >= DIGITS_FLOOR > gap, (default, gap)


@pytest.mark.slow
def test_default_cnn1d_learns_ordered_motifs_and_gap_does_not():
    x, y = _motifs()
    default = _test_macro_f1("cnn1d", x, y, {})
    gap = _test_macro_f1("cnn1d", x, y, {"head": "gap"})
    assert default >= MOTIFS_FLOOR > gap, (default, gap)
