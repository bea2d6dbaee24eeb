"""Live progress of a study in the terminal (rich), its leaderboard table, and the column
treatment ``validate`` prints."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table


def tool_path(name: str) -> str:
    """How to call this environment's ``name`` (``python``, ``mlflow``) from the working
    directory, e.g. ``.venv/bin/python`` — so printed hints work without an activated venv."""
    import os
    import sys
    from pathlib import Path

    path = Path(sys.executable).parent / name
    if not path.exists():
        return name
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else str(path)


class StudyProgress:
    """A progress bar: trials done, best value so far, ETA, and the current fold/epoch."""

    def __init__(self, console: Console, metric: str, folds: int, epochs: int) -> None:
        self.console = console
        self.metric = metric
        self.folds, self.epochs = folds, epochs
        self.best = -math.inf
        self.best_trial: int | None = None
        self.counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}
        self.bar = Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"),
            TextColumn("[dim]{task.fields[now]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task: Any = None

    def start(self, total: int, best: float | None = None) -> None:
        """Start the bar; ``best`` is the study's best value so far (a resumed study)."""
        if best is not None:
            self.best = best
        self.bar.start()
        self.task = self.bar.add_task("study", total=total, best=self.best_text(), now="")

    def best_text(self) -> str:
        """``0.9836 (trial 4)``; the value alone for a resumed study's earlier best."""
        if self.best == -math.inf:
            return "–"
        return f"{self.best:.4f}" + (f" (trial {self.best_trial})"
                                     if self.best_trial is not None else "")

    def epoch(self, trial: int, fold: int | None, epoch: int) -> None:
        """Show the running trial's epoch; ``fold`` is None when all folds train together."""
        where = f"{self.folds} folds" if fold is None else f"fold {fold + 1}/{self.folds}"
        now = f"· running trial {trial} · {where} · epoch {epoch + 1}"
        self.bar.update(self.task, now=now)

    def trial_done(self, study: Any, trial: Any) -> None:
        state = trial.state.name
        self.counts[state] = self.counts.get(state, 0) + 1
        if state == "COMPLETE" and trial.value is not None and trial.value > self.best:
            self.best, self.best_trial = trial.value, trial.number
        note = "" if state == "COMPLETE" else f"· last: trial {trial.number} {state.lower()}"
        if state == "FAIL":
            note += f": {trial.user_attrs.get('error', '')}"[:80]
        self.bar.update(self.task, advance=1, best=self.best_text(), now=note)

    def stop(self) -> None:
        self.bar.stop()


def leaderboard_table(rows: list[dict[str, Any]], metric: str, title: str) -> Table:
    """The top trials as a rich table (the same cells as the report's leaderboard)."""
    from weightsearch.report.tables import leaderboard_cells

    headers, cells = leaderboard_cells(rows)
    headers[5] = f"CV {metric} ± std"
    table = Table(title=title, title_justify="left")
    for col in headers:
        table.add_column(col, justify="left" if col in ("scheme", "loss", "arch") else "right")
    for row in cells:
        table.add_row(*row)
    return table


def column_lines(columns: Any) -> list[str]:
    """How ``validate`` shows a table's columns (:class:`~weightsearch.columns.Columns`;
    ``None``, for arrays, shows nothing): a count line, then one line per column,
    ``name: numeric, 2 missing`` / ``name: categorical, 3 levels (one-hot)`` / ``name: dropped``,
    and what a hole becomes when there is one."""
    if columns is None:
        return []
    kinds = [c.kind for c in columns.features]
    counts = [f"{kinds.count('numeric')} numeric", f"{kinds.count('categorical')} categorical"]
    lines = [f"  columns: {', '.join(counts)}, {len(columns.dropped)} dropped"]
    lines += [f"    {name}: {how}" for name, how in columns.describe()]
    if any(c.missing for c in columns.features):
        lines.append(
            "    (fitted on each training fold: a missing number becomes the fold's median, "
            "with a 0/1 was-missing input; a missing or unseen category, the out-of-vocabulary "
            "bucket)"
        )
    return lines
