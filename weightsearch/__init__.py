"""weightsearch: search class weights, losses and Keras architectures for imbalanced data.

``import weightsearch`` is light (no Keras, TensorFlow, Optuna or MLflow). The production
API is imported on first use::

    cfg = weightsearch.load_config("best.toml")          # an exported training config
    built = weightsearch.build_from_config(cfg, data)   # compiled model, weights, fit kwargs
    result = weightsearch.train_from_config(cfg, out="models/best")
    model = weightsearch.load_model("models/best")     # .predict(x), .predict_proba(x)

Your own components join the search through ``register_arch``, ``register_loss`` and
``register_scheme`` (decorators; typed keyword defaults become searchable parameters, bounded
with ``typing.Annotated[int, weightsearch.Param(low=..., high=...)]``), and a spec's
``plugins = ["module"]`` imports the module that registers them.

Saved models use weightsearch's Keras losses and a table's ``TableEncoder`` layer. They are
registered with Keras as soon as both ``weightsearch`` and ``keras`` are imported (in either
order), so ``keras.models.load_model("model.keras")`` works after ``import weightsearch``.
"""

import os as _os
import sys as _sys

# Quiet TensorFlow's C++ start-up chatter unless the user asked for it.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"

_LAZY = {
    "search": "weightsearch.api",
    "SearchResult": "weightsearch.api",
    "load_config": "weightsearch.production",
    "build_from_config": "weightsearch.production",
    "train_from_config": "weightsearch.production",
    "load_model": "weightsearch.production",
    "register_arch": "weightsearch.models",
    "register_loss": "weightsearch.losses",
    "register_scheme": "weightsearch.weighting",
    "Param": "weightsearch._params",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):  # PEP 562: import the production API on first use
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'weightsearch' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


# ---- Keras object registration ------------------------------------------------------------
# The custom losses are registered by importing weightsearch.losses, which imports Keras (and
# TensorFlow, ~5 s). To keep `import weightsearch` light, that happens only once Keras is
# imported anyway: at once if it already is, else right after `import keras` completes.


def _register_keras_objects() -> None:
    try:
        import weightsearch.losses  # noqa: F401
        import weightsearch.preprocessing  # noqa: F401  (TableEncoder)
    except Exception as exc:  # never break `import keras` for the user
        import warnings

        warnings.warn(
            f"weightsearch could not register its Keras objects ({type(exc).__name__}: {exc}); "
            "import weightsearch.losses and weightsearch.preprocessing before "
            "keras.models.load_model.",
            stacklevel=2,
        )


class _RegisterAfterKeras:
    """A loader wrapper: runs Keras's own loader, then registers weightsearch's objects."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _sys.meta_path[:] = [f for f in _sys.meta_path if not isinstance(f, _KerasImportHook)]
        _register_keras_objects()


class _KerasImportHook:
    """A meta path finder for the top-level ``keras`` package; removed once Keras is loaded.

    It may be asked several times (``importlib.util.find_spec("keras")`` only looks), so it
    stays on ``sys.meta_path`` until the wrapped loader has actually run.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        spec = None
        for finder in list(_sys.meta_path):  # the finder that would have found Keras
            find = getattr(finder, "find_spec", None)
            if finder is self or isinstance(finder, _KerasImportHook) or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _RegisterAfterKeras(spec.loader)
        return spec


if "keras" in _sys.modules:
    _register_keras_objects()
elif not any(isinstance(f, _KerasImportHook) for f in _sys.meta_path):
    _sys.meta_path.insert(0, _KerasImportHook())
