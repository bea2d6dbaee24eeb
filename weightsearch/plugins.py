"""``plugins = ["module", ...]``: user modules that register components, imported before a
spec's space, an exported config or a saved model is read.

A plugin is an ordinary module that calls :func:`weightsearch.register_arch` (or
``register_loss``/``register_scheme``) at import. It is looked up beside the file that names
it (the spec, the training config, the model directory), then on ``sys.path``; workers, which
re-read the spec, import it the same way.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["PluginError", "import_plugins", "search_dirs"]


class PluginError(ImportError):
    """A plugin module failed to import; the message is one line naming the key and module."""


def search_dirs(*files: str | Path | None) -> list[Path]:
    """The directories of ``files`` (absolute, each once) where plugins are looked up."""
    dirs: list[Path] = []
    for f in files:
        if f:
            d = Path(f).resolve()
            d = d if d.is_dir() else d.parent
            if d not in dirs:
                dirs.append(d)
    return dirs


def import_plugins(
    modules: Sequence[str], dirs: Iterable[str | Path] = (), *, key: str = "plugins"
) -> None:
    """Import each module of ``modules`` with ``dirs`` first on ``sys.path`` (they stay there,
    so a module imported later from a plugin resolves the same way).

    A failure raises :class:`PluginError`: ``plugins: module 'x' failed to import: ...``.
    """
    for d in reversed([str(Path(d)) for d in dirs]):
        if d not in sys.path:
            sys.path.insert(0, d)
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # any error in the user's module is theirs: one line
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise PluginError(
                f"{key}: module {name!r} failed to import: {type(exc).__name__}: {detail}"
            ) from exc
