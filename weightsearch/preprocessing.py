"""Table preprocessing inside the model: :class:`TableEncoder` and the raw-row front end.

:class:`TableEncoder` takes the code matrix of :mod:`weightsearch.columns` and is fitted
(:meth:`TableEncoder.adapt`) on the training fold only; its state is saved in ``model.keras``.
For the numeric columns (m of them) and each categorical column j with n_j levels:

- **missing numbers**: v = x where observed, else the training fold's median;
  a 0/1 "was missing" indicator follows for every column that has holes in the data;
- **numeric encoding** (``numeric``), from edges e_0 < … < e_T at the training fold's
  quantiles t/T of the observed values (``numpy.quantile``, linear):

  - ``standardize``: v itself (the model's ``Normalization`` then z-scores it);
  - ``piecewise_linear`` (Gorishniy et al., NeurIPS 2022, "On Embeddings for Numerical
    Features in Tabular Deep Learning"): T values r_t = (v − e_{t−1}) / (e_t − e_{t−1}),
    clipped to [0, 1] except r_1 below and r_T above (a zero-width bin gives 1 at or
    above its edge, else 0);
  - ``quantile``: (1/T) Σ_t clip(r_t, 0, 1), the training fold's empirical CDF at v,
    linear between the edges;

- **categoricals**: one-hot over [OOV, level_1 … level_n] where the levels are those seen
  in the training fold; a level not seen there, an unknown value or a missing one lands in
  OOV. Above :data:`~weightsearch.columns.EMBED_ABOVE` levels the one-hot row is multiplied
  by a trainable (n_j + 1) × d_j table: an embedding.

The arithmetic is written once (:func:`encode`) for a single model and for K fold models
stacked along a leading axis (:mod:`weightsearch.stacking`).
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import keras
import numpy as np
from keras import ops

from weightsearch.columns import Columns, embedding_dim, texts

__all__ = ["NUMERIC_ENCODINGS", "TableEncoder", "encode", "encoder_columns", "raw_model",
           "row_inputs"]

#: ``space.model.numeric`` choices, in the order the space lists them.
NUMERIC_ENCODINGS = ("standardize", "quantile", "piecewise_linear")
DEFAULT_BINS = 8


def _ple(v: Any, edges: Any) -> Any:
    """Piecewise-linear r_t of ``v (..., m)`` against ``edges (..., m, T+1)`` → ``(..., m, T)``,
    before clipping."""
    lo, hi = edges[..., :-1], edges[..., 1:]
    width = hi - lo
    z = ops.expand_dims(v, -1)
    ratio = (z - lo) / ops.where(width > 0, width, ops.ones_like(width))
    step = ops.cast(z >= hi, v.dtype)
    return ops.where(width > 0, ratio, step)


def encode(
    x: Any, state: dict[str, Any], columns: Columns, numeric: str, bins: int, stacked: bool = False
) -> Any:
    """The encoded features of codes ``x`` (``(N, F)``, or ``(K, P, F)`` with ``stacked``,
    when every state value carries a leading fold axis K). See the module docstring."""
    def fold(name: str) -> Any:  # state broadcast against the rows
        value = state[name]
        return ops.expand_dims(value, 1) if stacked else value

    x = ops.cast(x, "float32")
    parts = []
    num = columns.numeric
    if num:
        raw = ops.take(x, np.asarray(num, dtype="int32"), axis=-1)
        hole = ops.isnan(raw)
        v = ops.where(hole, fold("medians") + ops.zeros_like(raw), raw)
        if numeric == "standardize":
            parts.append(v)
        else:
            r = _ple(v, fold("edges"))
            t = int(bins)
            if numeric == "quantile":
                parts.append(ops.mean(ops.clip(r, 0.0, 1.0), axis=-1))
            else:
                low = np.zeros(t, dtype="float32")
                high = np.ones(t, dtype="float32")
                low[0], high[-1] = -np.inf, np.inf
                r = ops.minimum(ops.maximum(r, low), high)
                parts.append(ops.reshape(r, (*ops.shape(r)[:-2], len(num) * t)))
        flagged = [k for k, i in enumerate(num) if columns.features[i].missing]
        if flagged:
            parts.append(ops.cast(ops.take(hole, np.asarray(flagged, dtype="int32"), axis=-1),
                                  "float32"))
    for j in columns.categorical:
        col = columns.features[j]
        code = ops.expand_dims(x[..., j], -1)
        levels = np.arange(len(col.levels), dtype="float32")
        hot = ops.cast(ops.equal(code, levels), "float32") * fold(f"seen_{j}")
        oov = 1.0 - ops.sum(hot, axis=-1, keepdims=True)
        row = ops.concatenate([oov, hot], axis=-1)
        parts.append(ops.matmul(row, state[f"embed_{j}"]) if col.embedded else row)
    return ops.concatenate(parts, axis=-1)


def output_blocks(columns: Columns, numeric: str, bins: int) -> list[tuple[int, bool]]:
    """``(width, embedded)`` of each block of :func:`encode`'s output, in order: the numeric
    encodings, the missing indicators, then each categorical (one-hot n + 1, or d wide)."""
    num = columns.numeric
    blocks = [(len(num) * (bins if numeric == "piecewise_linear" else 1), False),
              (sum(1 for i in num if columns.features[i].missing), False)]
    for j in columns.categorical:
        col = columns.features[j]
        n = len(col.levels)
        blocks.append((embedding_dim(n), True) if col.embedded else (n + 1, False))
    return blocks


def encoded_width(columns: Columns, numeric: str, bins: int) -> int:
    """The number of features :func:`encode` returns."""
    return sum(width for width, _ in output_blocks(columns, numeric, bins))


def embedding_slots(columns: Columns, numeric: str, bins: int) -> list[int]:
    """The positions of :func:`encode`'s output that an embedding table fills: trainable, so
    statistics of their initial values describe nothing (the model leaves them unscaled)."""
    slots, start = [], 0
    for width, embedded in output_blocks(columns, numeric, bins):
        if embedded:
            slots.extend(range(start, start + width))
        start += width
    return slots


@keras.saving.register_keras_serializable(package="weightsearch")
class TableEncoder(keras.layers.Layer):
    """Imputation, missing indicators, numeric encoding and one-hot/embedded categoricals of
    a code matrix, fitted on the training fold (see the module docstring)."""

    def __init__(
        self, columns: dict[str, Any] | Columns, numeric: str = "standardize",
        bins: int = DEFAULT_BINS, **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.columns = columns if isinstance(columns, Columns) else Columns.from_dict(columns)
        if numeric not in NUMERIC_ENCODINGS:
            raise ValueError(
                f"numeric encoding must be one of {', '.join(NUMERIC_ENCODINGS)}, "
                f"but got {numeric!r}."
            )
        if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
            raise ValueError(f"bins must be a positive integer, but got {bins!r}.")
        self.numeric, self.bins = numeric, int(bins)
        self.state: dict[str, Any] = {}
        cols, m = self.columns, len(self.columns.numeric)
        self.state["medians"] = self.add_weight(
            shape=(m,), initializer="zeros", trainable=False, name="medians")
        if numeric != "standardize":
            self.state["edges"] = self.add_weight(
                shape=(m, self.bins + 1), initializer="zeros", trainable=False, name="edges")
        for j in cols.categorical:
            col = cols.features[j]
            self.state[f"seen_{j}"] = self.add_weight(
                shape=(len(col.levels),), initializer="ones", trainable=False, name=f"seen_{j}")
            if col.embedded:
                self.state[f"embed_{j}"] = self.add_weight(
                    shape=(len(col.levels) + 1, embedding_dim(len(col.levels))),
                    initializer="uniform", trainable=True, name=f"embed_{j}")
        self.built = True

    def adapt(self, x: np.ndarray) -> None:
        """Fit medians, edges and seen levels on ``x`` (the training fold's codes)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.columns.features) or not len(x):
            raise ValueError(
                f"TableEncoder.adapt expects codes of shape (N, {len(self.columns.features)}) "
                f"with N > 0, but got {x.shape}."
            )
        num = self.columns.numeric
        if num:
            block = x[:, num]
            observed = [col[~np.isnan(col)] for col in block.T]
            medians = [float(np.median(o)) if len(o) else 0.0 for o in observed]
            self.state["medians"].assign(np.asarray(medians, dtype=np.float32))
            if self.numeric != "standardize":
                q = np.linspace(0.0, 1.0, self.bins + 1)
                edges = [np.quantile(o, q) if len(o) else q for o in observed]
                self.state["edges"].assign(np.asarray(edges, dtype=np.float32))
        for j in self.columns.categorical:
            n = len(self.columns.features[j].levels)
            codes = x[:, j]
            codes = codes[~np.isnan(codes) & (codes >= 0)].astype(np.int64)
            seen = (np.bincount(codes, minlength=n)[:n] > 0).astype(np.float32)
            self.state[f"seen_{j}"].assign(seen)

    def call(self, inputs: Any) -> Any:
        return encode(inputs, self.state, self.columns, self.numeric, self.bins)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (*tuple(input_shape)[:-1], encoded_width(self.columns, self.numeric, self.bins))

    def embedding_slots(self) -> list[int]:
        """:func:`embedding_slots` of this encoder's output."""
        return embedding_slots(self.columns, self.numeric, self.bins)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(columns=self.columns.to_dict(), numeric=self.numeric, bins=self.bins)
        return config


def _layer_name(i: int, name: str) -> str:
    return f"col{i}_" + re.sub(r"[^0-9A-Za-z_]", "_", name)[:40]


def raw_model(columns: Columns, core: keras.Model, name: str = "weightsearch_rows") -> keras.Model:
    """``core`` (which takes the code matrix) behind a front end that takes raw columns: a
    dict keyed by column name, numbers as float32 (NaN for missing), categoricals as strings
    (:func:`weightsearch.columns.level_text`; "" for missing). A ``StringLookup`` over the
    column's levels turns a string into its code (unknown → −1, the OOV bucket)."""
    inputs: dict[str, Any] = {}
    codes = []
    for i, col in enumerate(columns.features):
        lname = _layer_name(i, col.name)
        if col.kind == "categorical":
            inp = keras.Input(shape=(1,), dtype="string", name=col.name.replace("/", "_"))
            lookup = keras.layers.StringLookup(
                vocabulary=list(col.levels), num_oov_indices=1, output_mode="int",
                name=f"{lname}_lookup",
            )
            index = lookup(inp)
            codes.append(keras.layers.Rescaling(1.0, offset=-1.0, name=f"{lname}_code")(index))
        else:
            inp = keras.Input(shape=(1,), dtype="float32", name=col.name.replace("/", "_"))
            codes.append(inp)
        inputs[col.name] = inp
    x = codes[0] if len(codes) == 1 else keras.layers.Concatenate(name="codes")(codes)
    with warnings.catch_warnings():  # a name with "/" is keyed as given, named with "_"
        warnings.filterwarnings("ignore", message="When providing `inputs` as a dict")
        return keras.Model(inputs, core(x), name=name)


def encoder_columns(model: keras.Model) -> Columns | None:
    """The :class:`~weightsearch.columns.Columns` of the first :class:`TableEncoder` in
    ``model`` (nested models searched too), or ``None`` without one."""
    stack = list(model.layers)
    while stack:
        layer = stack.pop(0)
        if isinstance(layer, TableEncoder):
            return layer.columns
        stack.extend(getattr(layer, "layers", ()))
    return None


def row_inputs(columns: Columns, frame: Any) -> dict[str, Any]:
    """A DataFrame's feature columns as :func:`raw_model`'s inputs, ``(N, 1)`` float32
    tensors, strings for categoricals (``Model.predict`` takes no NumPy strings)."""
    out: dict[str, Any] = {}
    for col in columns.features:
        values = frame[col.name]
        if col.kind == "categorical":
            text = np.asarray([t if t is not None else "" for t in texts(values)], dtype=object)
            out[col.name] = ops.convert_to_tensor(text[:, None], dtype="string")
        else:
            codes = col.codes(values)
            bad = np.flatnonzero(np.abs(np.nan_to_num(codes)) > np.finfo(np.float32).max)
            if len(bad):  # inf, or beyond float32: refused in training, so here too
                raise ValueError(
                    f"column {col.name!r} holds {float(codes[bad[0]])!r} at data row "
                    f"{int(bad[0]) + 1} (the first data row is 1); expected a finite number "
                    "the model's float32 inputs can hold, or an empty cell."
                )
            out[col.name] = ops.convert_to_tensor(codes[:, None], dtype="float32")
    return out
