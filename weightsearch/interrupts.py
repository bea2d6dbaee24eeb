"""Ctrl-C and SIGTERM during a study, in one place.

Inside :func:`sigterm_as_interrupt`, SIGTERM is treated like Ctrl-C (a ``KeyboardInterrupt``
in the main thread), so the running trial is closed cleanly, and either signal is
remembered: :func:`interrupt_requested` stays true until the block ends. The objective checks
it at every epoch end, so an interrupt that Python dropped (raised inside a finaliser during
garbage collection, where exceptions are only printed) still stops the trial.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_RECEIVED: list[int] = []  # signals received inside sigterm_as_interrupt


def interrupt_requested() -> bool:
    """Whether Ctrl-C or SIGTERM arrived inside the current :func:`sigterm_as_interrupt`."""
    return bool(_RECEIVED)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, and remember either (:func:`interrupt_requested`).

    Outside the main thread signals cannot be handled; the block then runs unchanged."""

    def handler(signum: int, frame: Any) -> None:
        _RECEIVED.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _RECEIVED.clear()


__all__ = ["interrupt_requested", "sigterm_as_interrupt"]
