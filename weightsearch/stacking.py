"""K fold models as one Keras model: side by side (:class:`FoldStack`) or vectorised.

Both take a batch ``x`` of shape ``(K, P, ...)`` (row block k is fold k's batch), return
probabilities ``(K, P, C)`` and minimise L = Σ_k [ℓ_k(y_k, ŷ_k; w_k) + R_k], ℓ_k fold k's own
loss and R_k its regularisation; ∂L/∂θ_k = ∂(ℓ_k + R_k)/∂θ_k, since nothing else depends on
fold k's weights θ_k. Each fold's share is logged as ``fold<k>_loss``.

- :class:`FoldStack` calls the K Keras models themselves: any architecture, but K times the
  ops per step, so it saves nothing over K fits once ``steps_per_execution`` has removed
  the per-step dispatch. Fold-by-fold training uses it with K = 1.
- :class:`VectorStack` (:func:`vectorize`) holds each weight of the K models stacked along a
  leading axis of size K, and runs each layer once for all folds: a ``Dense`` layer is one
  batched matmul ``(K, P, in) @ (K, in, out)``, a weightless layer runs on the ``(K·P, ...)``
  view. A step then costs about the ops of one model, so per-op overhead, which dominates
  small models, is paid once instead of K times. It supports ``Normalization``, ``Dense``,
  ``Conv1D``/``Conv2D`` (one convolution per fold), ``BatchNormalization`` (moments per fold)
  and every weightless layer (activations, dropout, pooling, flatten); anything else raises
  :class:`NotStackable` and the folds train one after another.

The per-parameter optimisers (Adam, AdamW, RMSprop, SGD) update a stacked variable
elementwise, so each fold's slice gets exactly the update it would get alone. Dropout masks
are drawn per row from the stack's own generator, so with dropout the two forms agree in
distribution, not draw for draw.
"""

from __future__ import annotations

import inspect
from typing import Any

import keras
import numpy as np
from keras import ops

from weightsearch.preprocessing import TableEncoder, encode

__all__ = ["FoldStack", "NotStackable", "VectorStack", "set_layer_weights", "vectorize"]

#: A fold's weights: for each layer of its model, that layer's ``get_weights()``.
LayerWeights = list[list[np.ndarray]]


def set_layer_weights(model: Any, weights: LayerWeights) -> None:
    """Load ``weights`` (as :meth:`FoldStack.fold_weights` gives them) into ``model``."""
    for layer, values in zip(model.layers, weights, strict=True):
        if values:
            layer.set_weights(values)


class NotStackable(ValueError):
    """The fold models cannot be vectorised; the message says why."""


class _StackBase(keras.Model):
    """The summed per-fold loss, its ``fold<k>_loss`` trackers, and the bound data.

    After :meth:`bind`, ``x`` and ``y`` may be integer row indices ``(K, P)`` into the bound
    rows and targets, gathered inside the step: the input pipeline then moves only indices,
    and the data stays on the device.
    """

    def __init__(self, losses: list[Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fold_losses = list(losses)
        self.fold_trackers = [keras.metrics.Mean(name=f"fold{k}_loss") for k in range(len(losses))]
        self._bound = _Untracked([])

    def bind(self, x: np.ndarray, targets: np.ndarray) -> None:
        """Keep all rows ``x`` and their ``targets`` with the model, for index batches."""
        self._bound = _Untracked([ops.convert_to_tensor(x), ops.convert_to_tensor(targets)])

    def _rows(self, values: Any, which: int) -> Any:
        if "int" in str(values.dtype):
            return ops.take(self._bound.models[which], values, axis=0)
        return values

    def fold_regularization(self, k: int) -> Any:
        """R_k: the regularisation loss of fold k's weights (None if there is none)."""
        raise NotImplementedError

    def fold_weights(self) -> list[LayerWeights]:
        """Every fold's weights, layer by layer of its own model (see ``LayerWeights``)."""
        raise NotImplementedError

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        total = None
        y = self._rows(y, 1)
        for k, loss in enumerate(self.fold_losses):
            weight = None if sample_weight is None else sample_weight[k]
            value = loss(y[k], y_pred[k], sample_weight=weight)
            reg = self.fold_regularization(k)
            if reg is not None:
                value = value + reg
            self.fold_trackers[k].update_state(value)
            total = value if total is None else total + value
        return total


class _Untracked:
    """Holds the fold models without Keras tracking them (their weights are not the stack's)."""

    def __init__(self, models: list[Any]) -> None:
        self.models = list(models)


class FoldStack(_StackBase):
    """The K fold models themselves, side by side (any architecture)."""

    def __init__(self, members: list[Any], losses: list[Any], **kwargs: Any) -> None:
        if len(members) != len(losses) or not members:
            raise ValueError(
                f"FoldStack needs one loss per model, but got {len(members)} model(s) "
                f"and {len(losses)} loss(es)."
            )
        super().__init__(losses, **kwargs)
        self.members = list(members)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = self._rows(inputs, 0)
        return ops.stack([m(x[k], training=training) for k, m in enumerate(self.members)])

    def fold_regularization(self, k: int) -> Any:
        losses = self.members[k].losses
        return ops.sum(ops.stack(losses)) if losses else None

    def fold_weights(self) -> list[LayerWeights]:
        return [[layer.get_weights() for layer in m.layers] for m in self.members]


# --------------------------------------------------------------------------- vectorised


def _expand(v: Any, rank: int) -> Any:
    """A stacked weight ``(K, *s)`` reshaped to broadcast against a ``rank``-D ``(K, P, ...)``."""
    tail = tuple(v.shape[1:])
    return ops.reshape(v, (v.shape[0],) + (1,) * (rank - 1 - len(tail)) + tail)


def _takes_training(layer: Any) -> bool:
    return "training" in inspect.signature(layer.call).parameters


class _Step:
    """One layer of the chain, for all K folds. ``layers`` are the K models' layers."""

    def __init__(self, stack: VectorStack, index: int, layers: list[Any]) -> None:
        self.index, self.layer = index, layers[0]
        self.names = [v.name for v in self.layer.weights]
        self.vars: list[Any] = []
        for i, v in enumerate(self.layer.weights):
            value = np.stack([np.asarray(layer.weights[i].numpy()) for layer in layers])
            var = stack.add_weight(
                shape=value.shape, initializer="zeros", trainable=v.trainable,
                name=f"{self.layer.name}_{v.name}", dtype=v.dtype,
            )
            var.assign(value)
            self.vars.append(var)

    def __call__(self, x: Any, training: bool | None) -> Any:
        raise NotImplementedError

    def regularization(self, k: int) -> Any:
        return None


class _Weightless(_Step):
    """A layer without weights runs once on the ``(K·P, ...)`` view."""

    def __call__(self, x: Any, training: bool | None) -> Any:
        shape = ops.shape(x)
        merged = ops.reshape(x, (-1, *x.shape[2:]))
        kw = {"training": training} if _takes_training(self.layer) else {}
        out = self.layer(merged, **kw)
        return ops.reshape(out, (shape[0], shape[1], *out.shape[1:]))


class _Normalization(_Step):
    """z = (x − μ_k) / max(√σ²_k, ε), as ``keras.layers.Normalization``."""

    def __call__(self, x: Any, training: bool | None) -> Any:
        rank = len(x.shape)
        mean = _expand(self.vars[self.names.index("mean")], rank)
        var = _expand(self.vars[self.names.index("variance")], rank)
        return (x - mean) / ops.maximum(ops.sqrt(var), keras.config.epsilon())


class _Dense(_Step):
    """y = act(x @ W_k + b_k): one batched matmul (K, P, in) @ (K, in, out)."""

    def __call__(self, x: Any, training: bool | None) -> Any:
        y = ops.matmul(x, self.vars[0])
        if self.layer.use_bias:
            y = y + ops.expand_dims(self.vars[1], 1)
        return self.layer.activation(y)

    def regularization(self, k: int) -> Any:
        reg = self.layer.kernel_regularizer
        return None if reg is None else reg(self.vars[0][k])


class _Conv(_Step):
    """y_k = act(conv(x_k, W_k) + b_k), one convolution per fold."""

    def __call__(self, x: Any, training: bool | None) -> Any:
        lay = self.layer
        outs = []
        for k in range(x.shape[0]):
            y = ops.conv(
                x[k], self.vars[0][k], strides=lay.strides, padding=lay.padding,
                data_format=lay.data_format, dilation_rate=lay.dilation_rate,
            )
            if lay.use_bias:
                y = y + self.vars[1][k]
            outs.append(y)
        return lay.activation(ops.stack(outs))

    def regularization(self, k: int) -> Any:
        reg = self.layer.kernel_regularizer
        return None if reg is None else reg(self.vars[0][k])


class _BatchNorm(_Step):
    """Batch moments per fold over its own rows (and positions); moving averages per fold."""

    def _get(self, name: str, rank: int) -> Any:
        return _expand(self.vars[self.names.index(name)], rank)

    def __call__(self, x: Any, training: bool | None) -> Any:
        lay, rank = self.layer, len(x.shape)
        x = ops.cast(x, "float32")
        if training and lay.trainable:
            mean, var = ops.moments(x, axes=list(range(1, rank - 1)), keepdims=True)
            m = lay.momentum
            for name, value in (("moving_mean", mean), ("moving_variance", var)):
                v = self.vars[self.names.index(name)]
                v.assign(v * m + ops.reshape(value, v.shape) * (1.0 - m))
        else:
            mean, var = self._get("moving_mean", rank), self._get("moving_variance", rank)
        inv = ops.rsqrt(var + lay.epsilon)
        if lay.scale:
            inv = inv * self._get("gamma", rank)
        shift = -mean * inv
        if lay.center:
            shift = shift + self._get("beta", rank)
        return x * inv + shift


class _TableEncoder(_Step):
    """:func:`weightsearch.preprocessing.encode` with each fold's fitted state."""

    def __call__(self, x: Any, training: bool | None) -> Any:
        lay = self.layer
        state = dict(zip(self.names, self.vars, strict=True))
        return encode(x, state, lay.columns, lay.numeric, lay.bins, stacked=True)


def _step_for(layer: Any) -> type[_Step]:
    kl = keras.layers
    if isinstance(layer, TableEncoder):
        return _TableEncoder
    if not layer.weights:
        return _Weightless
    others = ("bias_regularizer", "activity_regularizer", "beta_regularizer",
              "gamma_regularizer")
    if any(getattr(layer, name, None) is not None for name in others):
        raise NotStackable(f"layer {layer.name!r} has a regulariser other than its kernel's")
    if isinstance(layer, kl.Normalization) and not layer.invert and layer.axis == (-1,):
        return _Normalization
    if type(layer) is kl.Dense and not layer.lora_enabled:
        return _Dense
    if type(layer) in (kl.Conv1D, kl.Conv2D) and layer.groups == 1:
        return _Conv
    if type(layer) is kl.BatchNormalization and layer.axis in (-1, len(layer.input.shape) - 1):
        if not layer.renorm and not layer.synchronized:
            return _BatchNorm
    raise NotStackable(f"layer {layer.name!r} ({type(layer).__name__}) has no vectorised form")


class VectorStack(_StackBase):
    """K copies of one architecture with stacked weights (see the module docstring)."""

    def __init__(self, members: list[Any], losses: list[Any], **kwargs: Any) -> None:
        super().__init__(losses, **kwargs)
        self._models = _Untracked(members)
        first = members[0]
        self.steps: list[_Step] = []
        for i, layer in enumerate(first.layers):
            if isinstance(layer, keras.layers.InputLayer):
                continue
            layers = [m.layers[i] for m in members]
            self.steps.append(_step_for(layer)(self, i, layers))

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = self._rows(inputs, 0)
        for step in self.steps:
            x = step(x, training)
        return x

    def fold_regularization(self, k: int) -> Any:
        terms = [r for r in (s.regularization(k) for s in self.steps) if r is not None]
        return ops.sum(ops.stack(terms)) if terms else None

    def fold_weights(self) -> list[LayerWeights]:
        n_layers = len(self._models.models[0].layers)
        out: list[LayerWeights] = [[[] for _ in range(n_layers)] for _ in self._models.models]
        for step in self.steps:
            arrays = [np.asarray(v.numpy()) for v in step.vars]
            for k, fold in enumerate(out):
                fold[step.index] = [a[k] for a in arrays]
        return out


def _is_chain(model: Any) -> bool:
    """Whether ``model`` is a functional chain: each layer feeds only the next."""
    config = model.get_config()
    layers = config.get("layers", [])
    for prev, layer in zip(layers, layers[1:], strict=False):
        nodes = layer.get("inbound_nodes", [])
        if len(nodes) != 1:
            return False
        args = nodes[0].get("args", [])
        history = [a.get("config", {}).get("keras_history", [None])[0]
                   for a in args if isinstance(a, dict)]
        if history != [prev["name"]]:
            return False
    return True


def vectorize(members: list[Any], losses: list[Any], check_rows: np.ndarray) -> VectorStack:
    """A :class:`VectorStack` of ``members``, checked against them on ``check_rows``.

    Raises :class:`NotStackable` when the models are not the same chain of supported
    layers, or when the stack's probabilities on ``check_rows`` differ from the models'.
    """
    first = members[0]
    kinds = [[type(layer) for layer in m.layers] for m in members]
    if any(k != kinds[0] for k in kinds):
        raise NotStackable("the fold models do not have the same layers")
    if not _is_chain(first):
        raise NotStackable("the architecture is not a chain of layers")
    stack = VectorStack(members, losses)
    rows = np.asarray(check_rows, dtype=np.float32)
    want = np.stack([np.asarray(m(rows, training=False)) for m in members])
    got = np.asarray(stack(np.stack([rows] * len(members)), training=False))
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-5):
        raise NotStackable("the vectorised model does not reproduce the fold models")
    return stack
