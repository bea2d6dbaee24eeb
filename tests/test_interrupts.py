"""Ctrl-C and SIGTERM (weightsearch.interrupts): the first signal raises where that is safe, every
signal is remembered, and a signal inside a finaliser or an import is only recorded."""

from __future__ import annotations

import importlib
import os
import signal
import sys
from pathlib import Path

import pytest

from weightsearch.interrupts import interrupt_requested, sigterm_as_interrupt


def _signal_self(sig: int = signal.SIGINT) -> None:
    os.kill(os.getpid(), sig)
    for _ in range(1000):  # the handler runs at the next bytecode boundaries
        pass


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_first_signal_raises_and_is_remembered_until_the_block_ends(sig: int) -> None:
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN under nohup
    with sigterm_as_interrupt():
        with pytest.raises(KeyboardInterrupt):
            _signal_self(sig)
        assert interrupt_requested()
        _signal_self(sig)  # a second one, while cleaning up: recorded, not raised
        assert interrupt_requested()
    assert not interrupt_requested()
    assert signal.getsignal(signal.SIGINT) is before


def test_a_signal_inside_an_import_is_recorded_not_raised(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "ws_signal_on_import.py").write_text(
        "import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n"
        "total = sum(range(10000))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with sigterm_as_interrupt():
        module = importlib.import_module("ws_signal_on_import")  # must not raise
        assert module.total == sum(range(10000))
        assert interrupt_requested()  # the epoch-end check stops the trial
    sys.modules.pop("ws_signal_on_import", None)


def test_a_signal_inside_a_finaliser_is_recorded_not_raised() -> None:
    class SignalsWhenCollected:
        def __del__(self) -> None:
            _signal_self()

    with sigterm_as_interrupt():
        obj = SignalsWhenCollected()
        del obj  # __del__ runs here; a raise would only be printed as "Exception ignored"
        assert interrupt_requested()
