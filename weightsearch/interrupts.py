"""Ctrl-C and SIGTERM during a study, in one place.

Inside :func:`sigterm_as_interrupt`, SIGTERM is treated like Ctrl-C (a ``KeyboardInterrupt``
in the main thread), so the running trial is closed cleanly, and either signal is
remembered: :func:`interrupt_requested` stays true until the outermost block ends. Only the
first signal raises: later ones (a second and third Ctrl-C while the trial's and the study's
runs are being closed) are only recorded, so they cannot break that cleanup. A signal that
lands where raising would do harm is recorded, not raised: in a finaliser (``__del__``, where
Python only prints an exception), or inside an import (TensorFlow's C code calls
``__import__`` mid-training, and an exception raised there surfaces as ``SystemError:
<built-in function __import__> returned a result with an exception set``). The objective
checks :func:`interrupt_requested` at every epoch end, so it still stops the trial.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_RECEIVED: list[int] = []  # signals received inside sigterm_as_interrupt
_DEPTH: list[int] = [0]  # nesting of sigterm_as_interrupt blocks


def interrupt_requested() -> bool:
    """Whether Ctrl-C or SIGTERM arrived inside the current :func:`sigterm_as_interrupt`."""
    return bool(_RECEIVED)


def in_finaliser(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside a ``__del__`` method (an exception there is only
    printed, as ``Exception ignored in ...``)."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def in_import(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside Python's import machinery."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _handler(signum: int, frame: Any) -> None:
    first = not _RECEIVED
    _RECEIVED.append(signum)
    if first and not in_finaliser(frame) and not in_import(frame):
        raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, raise on the first signal only, and remember every one
    (:func:`interrupt_requested`). Blocks nest: an inner one leaves the outer one's record.

    Outside the main thread signals cannot be handled; the block then runs unchanged."""
    try:
        previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:  # not the main thread
        yield
        return
    _DEPTH[0] += 1
    try:
        yield
    finally:
        _DEPTH[0] -= 1
        for sig, old in previous.items():
            signal.signal(sig, old)
        if not _DEPTH[0]:
            _RECEIVED.clear()


__all__ = ["in_finaliser", "in_import", "interrupt_requested", "sigterm_as_interrupt"]
