"""The files production writes, and how: a model directory (``model.keras`` +
``weightsearch.json``) and text files (configs, predictions), each written through a temporary
file or directory so that a failure leaves nothing behind.

:class:`ExportError` is the user-caused problem of the whole production API.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MODEL_FILE = "model.keras"
META_FILE = "weightsearch.json"
META_FORMAT = "weightsearch-model"
META_VERSION = 1


class ExportError(ValueError):
    """A user-caused problem: an unknown study or trial, a bad model directory or output."""


def default_mode(base: int) -> int:
    """``base`` permissions less the process umask, as ``open``/``mkdir`` would give."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def write_text(path: Path, text: str) -> None:
    """Write through a temporary file in the same directory, then rename."""
    if path.is_dir():
        raise ExportError(f"--out: {str(path)!r} is a directory; expected a file name.")
    if not path.parent.exists():
        raise ExportError(f"--out: directory {str(path.parent)!r} does not exist.")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, default_mode(0o666))  # mkstemp makes it private (0600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_out_dir(out: Path) -> None:
    """``out`` can take a model: absent, empty, or an earlier model directory."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out: {str(out)!r} is a file; expected a directory for the model.")
    if out.is_dir() and any(out.iterdir()) and not (out / META_FILE).is_file():
        raise ExportError(
            f"--out: {str(out)!r} exists and is not a weightsearch model directory; "
            "refusing to overwrite it (choose a new or empty directory)."
        )


def missing_parents(path: Path) -> list[Path]:
    """The parents of ``path`` that do not exist yet, deepest first."""
    missing = []
    for parent in path.absolute().parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


def install_dir(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` directory to ``out``, replacing an earlier model there."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        os.rmdir(old)
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
