"""Keras architectures: the ``MODELS`` registry and :func:`build_model`.

Every model is ``Input → Normalization (adapted on the training fold) → body →
Dense(n_outputs) → softmax`` (binary, multiclass) or ``sigmoid`` (multilabel), so it
outputs probabilities and a saved ``.keras`` file needs no separate preprocessing. It uses
only built-in Keras layers and reloads with ``keras.models.load_model``.

Adding an architecture is one registry entry: a body function decorated with
:func:`arch` that names its input kind and its parameters (defaults and valid ranges); its
docstring (required) describes the layers. A user's own builder of a whole model
(``build(input_shape, n_outputs, **params) -> keras.Model``) is registered with
:func:`register_arch`; its typed keyword defaults are its parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from weightsearch._params import Param, check_params, params_from_signature
from weightsearch._registry import Registry, normalise_name, same_function
from weightsearch.base import check_task
from weightsearch.columns import Columns

__all__ = [
    "MODELS",
    "Arch",
    "arch",
    "arch_params",
    "build_model",
    "check_input",
    "input_kind",
    "register_arch",
]

#: Input kind → (description, number of feature axes per row, shape pattern).
INPUT_KINDS: dict[str, tuple[str, int, str]] = {
    "tabular": ("tabular features", 1, "(F,)"),
    "image": ("images", 3, "(H, W, C)"),
    "sequence": ("sequences", 2, "(T, F)"),
}


class _Seeds:
    """Distinct per-layer seeds derived from one build seed (``None`` → unseeded)."""

    def __init__(self, seed: int | None) -> None:
        self.seed = seed
        self.count = 0

    def next(self) -> int | None:
        if self.seed is None:
            return None
        self.count += 1
        return int(self.seed) * 1009 + self.count

    def kernel(self) -> Any:
        s = self.next()
        return "glorot_uniform" if s is None else keras.initializers.GlorotUniform(seed=s)


@dataclass(frozen=True)
class Arch:
    """A registered architecture.

    ``body(x, params, seeds, input_shape) -> tensor`` maps the normalised input tensor to
    the features fed to the output layer; ``params`` gives defaults and search ranges.
    With ``whole`` (:func:`register_arch`) ``body(input_shape, n_outputs, **params)`` builds
    the whole model itself; ``input_kind`` ``None`` takes inputs of any shape.
    """

    name: str
    body: Callable[..., Any]
    input_kind: str | None
    params: dict[str, Param]
    whole: bool = False

    @property
    def doc(self) -> str:
        return (self.body.__doc__ or "").strip()


MODELS: Registry[Arch] = Registry("arch")


def arch(
    name: str, *, input_kind: str, params: dict[str, Param], aliases: tuple[str, ...] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated ``body(x, params, seeds, input_shape)`` as architecture
    ``name`` for ``input_kind`` data; its docstring (required) describes the layers."""
    if input_kind not in INPUT_KINDS:
        raise ValueError(
            f"arch {name!r}: input_kind must be one of {', '.join(INPUT_KINDS)}, "
            f"but got {input_kind!r}."
        )

    def decorator(body: Callable[..., Any]) -> Callable[..., Any]:
        entry = Arch(normalise_name(name), body, input_kind, dict(params))
        MODELS.register(name, aliases=aliases)(entry)
        return body

    return decorator


def register_arch(
    name: str, *, input_kind: str | None = None, aliases: tuple[str, ...] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register your own Keras model builder as architecture ``name``::

        @register_arch("my_mlp")
        def build(input_shape, n_outputs, *, width: int = 32, dropout: float = 0.1):
            '''Input → Dense(width) → Dropout → Dense(n_outputs, softmax).'''
            ...
            return keras.Model(inputs, outputs)

    ``build`` returns a ``keras.Model`` from the raw inputs ``(N, *input_shape)`` to
    ``n_outputs`` probabilities (softmax; sigmoid for multi-label: a keyword ``task`` in its
    signature is given ``"binary"``, ``"multiclass"`` or ``"multilabel"``). Its typed keyword
    defaults are its searchable parameters (:func:`~weightsearch._params.params_from_signature`);
    ``input_kind`` (``"tabular"``, ``"image"``, ``"sequence"``; default: any shape) limits the
    data it takes. Registering the same function again (a re-run cell) replaces it.
    """
    if input_kind is not None and input_kind not in INPUT_KINDS:
        raise ValueError(
            f"register_arch({name!r}): input_kind must be one of {', '.join(INPUT_KINDS)} or "
            f"None, but got {input_kind!r}."
        )

    def decorator(build: Callable[..., Any]) -> Callable[..., Any]:
        owner = f"register_arch({name!r})"
        params = params_from_signature(
            build, leading=("input_shape", "n_outputs"), owner=owner, passed=("task",)
        )
        entry = Arch(normalise_name(name), build, input_kind, params, whole=True)
        old = MODELS.get(entry.name) if entry.name in MODELS else None
        same = old is not None and old.whole and old.name == entry.name
        MODELS.register(name, aliases=aliases, replace=same and same_function(old.body, build))(
            entry
        )
        return build

    return decorator


class _ZeroOrLog(Param):
    """A strength that is 0 (off) or positive; searched log-uniformly over [low, high].

    ``check`` accepts any value in [0, high]; ``low`` (> 0) is the lower end of a log search.
    """

    allow_zero = True

    def describe(self) -> str:
        return f"a number in [0, {self.high:g}] (0 = off; log-scale search from {self.low:g})"

    def check(self, value: Any, where: str) -> Any:
        inner = Param(self.default, low=0.0, high=self.high)
        try:
            return inner.check(value, where)
        except ValueError:
            raise ValueError(f"{where} must be {self.describe()}, but got {value!r}.") from None


_DROPOUT = Param(0.1, low=0.0, high=0.5, doc="dropout rate after each hidden layer")

_CONV_PARAMS: dict[str, Param] = {
    "blocks": Param(2, low=1, high=3, integer=True, doc="convolution blocks"),
    "filters": Param(16, low=8, high=64, integer=True, log=True,
                     doc="filters of the first block (doubled per block)"),
    "kernel_size": Param(3, choices=(3, 5), doc="convolution kernel size"),
    "pooling": Param("max", choices=("max", "avg"), doc="pooling after each block"),
    # flatten keeps where a feature is (GAP averages it away): on long-tailed 28×28 digits
    # the default body reaches test macro-F1 0.86-0.96 with flatten and stalls at the
    # majority class with GAP (tests/test_cnn_defaults.py).
    "head": Param("flatten", choices=("gap", "flatten"),
                  doc="flatten the last feature map, or global average pooling (gap)"),
    "dropout": _DROPOUT,
    "dense_width": Param(64, low=8, high=256, integer=True, log=True,
                         doc="units of the dense layer before the output"),
}


# --------------------------------------------------------------------------- architectures


@arch(
    "mlp",
    input_kind="tabular",
    params={
        "depth": Param(2, low=1, high=4, integer=True, doc="hidden layers"),
        # 256 (was 64): +0.012 CV macro-F1 on 4 real tables, +0.015 with lr 3e-3 (B11)
        "width": Param(256, low=8, high=512, integer=True, log=True,
                       doc="units per hidden layer"),
        "dropout": _DROPOUT,
        "batch_norm": Param(False, choices=(True, False), doc="BatchNormalization before act."),
        "activation": Param("relu", choices=("relu", "gelu", "elu", "tanh"), doc="activation"),
        "l2": _ZeroOrLog(0.0, low=1e-6, high=0.01, log=True, doc="L2 penalty on hidden kernels"),
    },
)
def _mlp(x: Any, p: dict[str, Any], seeds: _Seeds, input_shape: tuple[int, ...]) -> Any:
    """Multi-layer perceptron: depth × [Dense(width) → (BatchNorm) → activation → Dropout]."""
    reg = keras.regularizers.L2(float(p["l2"])) if p["l2"] > 0 else None
    for i in range(int(p["depth"])):
        x = keras.layers.Dense(
            int(p["width"]), use_bias=not p["batch_norm"], kernel_initializer=seeds.kernel(),
            kernel_regularizer=reg, name=f"dense_{i}",
        )(x)
        if p["batch_norm"]:
            x = keras.layers.BatchNormalization(name=f"bn_{i}")(x)
        x = keras.layers.Activation(p["activation"], name=f"act_{i}")(x)
        if p["dropout"] > 0:
            x = keras.layers.Dropout(float(p["dropout"]), seed=seeds.next(), name=f"drop_{i}")(x)
    return x


def _conv_body(
    x: Any, p: dict[str, Any], seeds: _Seeds, spatial: list[int], dims: int
) -> Any:
    """Shared body of ``cnn`` (dims=2) and ``cnn1d`` (dims=1).

    The ``flatten`` head feeds ``prod(spatial') · filters · 2^(blocks−1)`` features to the
    dense layer (``spatial'``: each axis after pooling), so its dense kernel grows with the
    input size; ``gap`` feeds ``filters · 2^(blocks−1)`` whatever the size.
    """
    conv = keras.layers.Conv2D if dims == 2 else keras.layers.Conv1D
    if p["pooling"] == "max":
        pool = keras.layers.MaxPooling2D if dims == 2 else keras.layers.MaxPooling1D
    else:
        pool = keras.layers.AveragePooling2D if dims == 2 else keras.layers.AveragePooling1D
    for b in range(int(p["blocks"])):
        x = conv(
            int(p["filters"]) * 2**b, int(p["kernel_size"]), padding="same", activation="relu",
            kernel_initializer=seeds.kernel(), name=f"conv_{b}",
        )(x)
        # Halve each spatial axis that stays >= 2 afterwards; never pool below 2.
        size = tuple(2 if s >= 4 else 1 for s in spatial)
        if any(s == 2 for s in size):
            x = pool(pool_size=size if dims == 2 else size[0], name=f"pool_{b}")(x)
            spatial = [s // k for s, k in zip(spatial, size, strict=True)]
    if p["head"] == "gap":
        kl = keras.layers
        gap = kl.GlobalAveragePooling2D if dims == 2 else kl.GlobalAveragePooling1D
        x = gap(name="gap")(x)
    else:
        x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(
        int(p["dense_width"]), activation="relu", kernel_initializer=seeds.kernel(), name="dense"
    )(x)
    if p["dropout"] > 0:
        x = keras.layers.Dropout(float(p["dropout"]), seed=seeds.next(), name="drop")(x)
    return x


@arch("cnn", input_kind="image", params=_CONV_PARAMS, aliases=("cnn2d",))
def _cnn(x: Any, p: dict[str, Any], seeds: _Seeds, input_shape: tuple[int, ...]) -> Any:
    """2-D CNN: blocks × [Conv2D(filters·2^b, same) → relu → 2×2 pool] → flatten (default)
    or GAP → Dense(dense_width) → Dropout. Pooling is skipped on an axis shorter than 4.
    Defaults (2 blocks, 16 → 32 filters, 3×3, max pool, flatten, dense 64, dropout 0.1):
    a 28×28×1 image gives 7·7·32 = 1568 features to the dense layer (≈100k weights)."""
    return _conv_body(x, p, seeds, list(input_shape[:2]), dims=2)


@arch("cnn1d", input_kind="sequence", params=_CONV_PARAMS)
def _cnn1d(x: Any, p: dict[str, Any], seeds: _Seeds, input_shape: tuple[int, ...]) -> Any:
    """1-D CNN over (T, F) sequences: blocks × [Conv1D(filters·2^b, same) → relu → pool 2]
    → flatten (default) or GAP → Dense(dense_width) → Dropout. Pooling is skipped once
    T < 4. With the defaults a (T, F) sequence, T ≥ 8, gives ⌊⌊T/2⌋/2⌋·32 features to the
    dense layer."""
    return _conv_body(x, p, seeds, [input_shape[0]], dims=1)


# --------------------------------------------------------------------------- public API


def arch_params(arch: str) -> dict[str, Param]:
    """The parameter table (defaults and search ranges) of ``arch``."""
    return dict(MODELS.get(arch).params)


def input_kind(arch: str) -> str | None:
    """``"tabular"``, ``"image"`` or ``"sequence"``: the data ``arch`` takes (``None``: a
    :func:`register_arch` builder that takes any shape)."""
    return MODELS.get(arch).input_kind


def _shape_tuple(input_shape: Any) -> tuple[int, ...]:
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise ValueError(
            f"input_shape must be a tuple of positive integers, but got {input_shape!r}."
        ) from None
    ok = all(
        not isinstance(d, bool) and isinstance(d, int | np.integer) and d > 0 for d in shape
    )
    if not ok or not shape:
        raise ValueError(
            f"input_shape must be a tuple of positive integers, but got {input_shape!r}."
        )
    return tuple(int(d) for d in shape)


def check_input(arch: str, input_shape: Any) -> None:
    """``ValueError`` unless ``input_shape`` (one row, without N) fits ``arch``'s input kind."""
    a = MODELS.get(arch)
    shape = _shape_tuple(input_shape)
    if a.input_kind is None:
        return
    desc, ndim, pattern = INPUT_KINDS[a.input_kind]
    if len(shape) != ndim:
        kinds = {n: MODELS.get(n).input_kind for n in MODELS}
        fits = [n for n, k in kinds.items() if k and INPUT_KINDS[k][1] == len(shape)]
        hint = f"; for data of this shape use arch {' or '.join(map(repr, fits))}" if fits else ""
        raise ValueError(
            f"arch {a.name!r} expects {desc} of shape {pattern}, but the data has shape "
            f"{shape}{hint}."
        )


def build_model(
    arch: str,
    *,
    input_shape: Any,
    n_outputs: int,
    task: str,
    params: dict[str, Any] | None = None,
    adapt_x: np.ndarray | None = None,
    seed: int | None = None,
    columns: Columns | None = None,
    numeric: dict[str, Any] | None = None,
) -> keras.Model:
    """Build an uncompiled model that outputs probabilities.

    A table's ``columns`` (:class:`~weightsearch.columns.Columns`) put a
    :class:`~weightsearch.preprocessing.TableEncoder` first, with the ``numeric`` encoding
    (``{"name": "standardize" | "quantile" | "piecewise_linear", "bins": T}``): even a table
    of complete numbers gets one, so a missing value at prediction time is imputed.
    ``Normalization(axis=-1)`` (z = (x − mean) / sqrt(var), per feature or channel) follows,
    and both are adapted on ``adapt_x`` (the training fold) when given, else the
    normalisation is the identity.
    Binary data uses a 2-way softmax (``n_outputs == 2``), multiclass a C-way softmax and
    multilabel L sigmoids. ``seed`` makes initial weights and dropout masks reproducible.
    """
    a = MODELS.get(arch)
    check_task(task)
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, int | np.integer):
        raise ValueError(f"n_outputs must be a positive integer, but got {n_outputs!r}.")
    low = {"binary": 2, "multiclass": 2, "multilabel": 1}[task]
    if n_outputs < low or (task == "binary" and n_outputs != 2):
        expected = "2 (a 2-way softmax)" if task == "binary" else f">= {low}"
        raise ValueError(f"n_outputs for task {task!r} must be {expected}, but got {n_outputs}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
        raise ValueError(f"seed must be an integer or None, but got {seed!r}.")
    shape = _shape_tuple(input_shape)
    check_input(a.name, shape)
    p = check_params(dict(params or {}), a.params, f"arch {a.name!r}")
    encoder = table_encoder(columns, numeric, shape)
    if a.whole:
        if encoder is None:
            return _user_model(a, shape, int(n_outputs), task, p)
        if adapt_x is not None:
            encoder.adapt(np.asarray(adapt_x, dtype=np.float32))
        inner = _user_model(a, encoder.compute_output_shape((None, *shape))[1:], int(n_outputs),
                            task, p)
        codes = keras.Input(shape=shape, name="x")
        return keras.Model(codes, inner(encoder(codes)), name=f"weightsearch_{a.name}")

    norm = keras.layers.Normalization(axis=-1, name="normalization")
    if adapt_x is not None:
        ax = np.asarray(adapt_x, dtype=np.float32)
        if ax.ndim != len(shape) + 1 or tuple(ax.shape[1:]) != shape or ax.shape[0] == 0:
            raise ValueError(
                f"adapt_x must have shape (N, {', '.join(map(str, shape))}) with N > 0 to "
                f"match input_shape, but got {ax.shape}."
            )
        if encoder is not None:
            encoder.adapt(ax)
            ax = np.asarray(encoder(ax))
        if not np.all(np.isfinite(ax)):
            raise ValueError("adapt_x contains NaN or inf; clean the training data first.")
        adapt_normalization(norm, ax, () if encoder is None else encoder.embedding_slots())

    seeds = _Seeds(None if seed is None else int(seed))
    inputs = keras.Input(shape=shape, name="x")
    x = norm(inputs if encoder is None else encoder(inputs))
    x = a.body(x, p, seeds, shape)
    x = keras.layers.Dense(int(n_outputs), kernel_initializer=seeds.kernel(), name="logits")(x)
    activation = "sigmoid" if task == "multilabel" else "softmax"
    outputs = keras.layers.Activation(activation, dtype="float32", name="proba")(x)
    return keras.Model(inputs, outputs, name=f"weightsearch_{a.name}")


def adapt_normalization(norm: Any, x: np.ndarray, raw: Sequence[int] = ()) -> None:
    """``norm.adapt(x)``, with σ² = 1 for a feature constant in ``x``: Keras would divide by
    ε = 1e-7 there, so a value never seen in training (an out-of-vocabulary category, a
    first missing value) became ~1e7 at validation or prediction time; now it is x − μ.
    Features in ``raw`` (embedding outputs, which train) pass unchanged: μ = 0, σ² = 1."""
    norm.adapt(x)
    mean = np.asarray(norm.adapt_mean.numpy())
    var = np.asarray(norm.adapt_variance.numpy())
    fixed = var == 0
    if len(raw):
        fixed[np.asarray(raw, dtype=int)] = True
        mean[np.asarray(raw, dtype=int)] = 0.0
    if np.any(fixed):
        norm.adapt_mean.assign(mean.astype(mean.dtype))
        norm.adapt_variance.assign(np.where(fixed, 1.0, var).astype(var.dtype))
        norm.finalize_state()


def table_encoder(
    columns: Columns | None, numeric: dict[str, Any] | None, shape: tuple[int, ...]
) -> Any:
    """The :class:`~weightsearch.preprocessing.TableEncoder` a table's model starts with;
    ``None`` for data without ``columns`` (arrays, images)."""
    from weightsearch.preprocessing import DEFAULT_BINS, TableEncoder

    numeric = dict(numeric or {})
    name = numeric.get("name", "standardize")
    if columns is None:
        if name != "standardize":
            raise ValueError(
                f"numeric encoding {name!r} is for tables (CSV/Parquet columns), but the "
                f"data has inputs of shape {shape}."
            )
        return None
    if len(shape) != 1 or shape[0] != len(columns.features):
        raise ValueError(
            f"columns describe {len(columns.features)} features, but input_shape is {shape}."
        )
    return TableEncoder(columns, numeric=name, bins=int(numeric.get("bins", DEFAULT_BINS)),
                        name="table_encoder")


def _user_model(
    a: Arch, shape: tuple[int, ...], n_outputs: int, task: str, params: dict[str, Any]
) -> keras.Model:
    """Call a :func:`register_arch` builder and check its model on one zero row: it must
    output ``(1, n_outputs)``."""
    import inspect

    owner = f"arch {a.name!r} ({getattr(a.body, '__qualname__', 'build')}())"
    kwargs = dict(params)
    if "task" in inspect.signature(a.body).parameters:
        kwargs["task"] = task
    model = a.body(shape, n_outputs, **kwargs)
    if not isinstance(model, keras.Model):
        raise ValueError(f"{owner} must return a keras.Model, but returned {type(model).__name__}.")
    try:
        out = np.asarray(model(np.zeros((1, *shape), dtype=np.float32), training=False))
    except Exception as exc:
        raise ValueError(
            f"{owner}: the model does not take inputs of shape (N, "
            f"{', '.join(map(str, shape))}): {type(exc).__name__}: {exc}"
        ) from None
    if out.shape != (1, n_outputs):
        raise ValueError(
            f"{owner} must output (N, {n_outputs}) probabilities for {task} data, but outputs "
            f"{(None, *out.shape[1:])}."
        )
    return model
