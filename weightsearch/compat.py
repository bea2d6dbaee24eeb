"""Every use of a TensorFlow, Optuna or CPython internal, in one place, each guarded.

Each function here reaches into a private attribute that has no public equivalent. When a
future version moves it, the function degrades to a documented fallback instead of
failing; ``tests/test_compat.py`` fails loudly on the installed versions if any fallback is
taken, so an upgrade that breaks one is seen at once.
"""

from __future__ import annotations

import warnings
from typing import Any

# The gradient Keras's TF optimiser registers for every traced train step (see
# release_train_step_gradients); matched by qualified name in the entry's closures.
ALL_REDUCE_GRAD = "all_reduce.<locals>.grad_wrapper.<locals>.<lambda>"


# ---- Optuna ------------------------------------------------------------------------------


def quiet_optuna() -> None:
    """Hide Optuna's experimental-feature warnings and its per-trial failure logs.

    Trial failures are recorded by the objective (user attr, MLflow tag, progress line);
    Optuna's own warning would print a traceback for each."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.ERROR)


def study_storage(study: Any) -> Any:
    """The storage object behind ``study`` (``Study._storage``; Optuna has no public getter).

    Without that attribute (a future Optuna) there is no fallback that writes: a clear
    ``RuntimeError`` names the version, and ``tests/test_compat.py`` fails first."""
    storage = getattr(study, "_storage", None)
    if storage is None:
        import optuna

        raise RuntimeError(f"optuna {optuna.__version__}: Study has no _storage; weightsearch "
                           "needs an Optuna with it (see weightsearch.compat).")
    return storage


def trial_id(trial: Any) -> int:
    """A trial's storage id (``FrozenTrial._trial_id``), which storage calls take; a clear
    ``RuntimeError`` if Optuna renamed it."""
    found = getattr(trial, "_trial_id", None)
    if found is None:
        raise RuntimeError("this Optuna's FrozenTrial has no _trial_id (see weightsearch.compat).")
    return int(found)


def heartbeat_enabled(study: Any) -> bool:
    """Whether the study's storage sends heartbeats (an RDB storage with an interval).

    Fallback when Optuna moves ``optuna.storages._heartbeat``: ``False``, so lost trials are
    judged by their process instead (weightsearch.liveness)."""
    try:
        from optuna.storages._heartbeat import is_heartbeat_enabled
    except ImportError:
        return False
    return bool(is_heartbeat_enabled(study_storage(study)))


# ---- TensorFlow --------------------------------------------------------------------------


def gradient_registry() -> dict[str, Any] | None:
    """TensorFlow's global op-name → gradient table, or ``None`` if its layout changed."""
    from tensorflow.python.framework import ops

    table = getattr(getattr(ops, "gradient_registry", None), "_registry", None)
    return table if isinstance(table, dict) else None


def wraps(fn: Any, qualname: str, depth: int = 3) -> bool:
    """Whether ``qualname`` is ``fn``'s or, ``depth`` closures deep, a closed-over function's."""
    if qualname in getattr(fn, "__qualname__", ""):
        return True
    for cell in (getattr(fn, "__closure__", None) or ()) if depth else ():
        try:
            inner = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if callable(inner) and wraps(inner, qualname, depth - 1):
            return True
    return False


def release_train_step_gradients() -> int:
    """Unregister the custom gradients that Keras train steps left in TensorFlow's registry.

    Keras's TF optimiser sums gradients with ``replica_context.all_reduce``, whose graph-mode
    ``tf.custom_gradient`` registers a ``CustomGradient-<n>`` entry in a global registry that
    nothing ever removes. Its closure holds the traced train step, so every trained model
    keeps its whole ``FuncGraph`` alive after ``clear_session``: 1.5-4.3 MB per small MLP
    (tensorflow/tensorflow#97697, #80895; keras-team/tf-keras#898 proposes a purge too).
    Only entries whose gradient is that all-reduce lambda are dropped: it is looked up only to
    differentiate through a train step, which nothing does, so live models keep working and
    other custom gradients (yours) are untouched. Returns how many were dropped.

    Fallback when TensorFlow's table moves: drop nothing (memory grows per trial again,
    which ``tests/test_memory.py`` catches)."""
    table = gradient_registry()
    if table is None:
        return 0
    stale = [
        key for key, entry in list(table.items())
        if key.startswith("CustomGradient-") and isinstance(entry, dict)
        and wraps(entry.get("type"), ALL_REDUCE_GRAD)
    ]
    for key in stale:
        table.pop(key, None)
    return len(stale)


# ---- CPython -----------------------------------------------------------------------------


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up banner (oneDNN, CPU features) hidden.

    The banner is written to file descriptor 2 before logging is configured, so no
    environment variable silences it. If the import fails, what it printed is shown.
    """
    import os
    import sys
    import tempfile

    if os.environ.get("WEIGHTSEARCH_TF_BANNER") or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)




def atexit_runner() -> Any:
    """CPython's ``atexit._run_exitfuncs`` (runs the registered exit handlers now), or
    ``None`` on an interpreter without it (then callers exit the normal way)."""
    import atexit

    return getattr(atexit, "_run_exitfuncs", None)


__all__ = [
    "ALL_REDUCE_GRAD",
    "atexit_runner",
    "gradient_registry",
    "heartbeat_enabled",
    "import_tensorflow_quietly",
    "quiet_optuna",
    "release_train_step_gradients",
    "study_storage",
    "trial_id",
    "wraps",
]
