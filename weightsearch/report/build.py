"""The ``report`` command: load a stored study, analyse it, write its figures and
``report.html``, and log them to the study's MLflow parent run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from weightsearch.report.figures import FIGURES, figure_pngs
from weightsearch.report.html import HTML_NAME, render_html
from weightsearch.report.summary import StudyReport, analyse
from weightsearch.storage import load_stored_study


class ReportError(ValueError):
    """A report cannot be made (unknown study, missing storage): one line saying why."""


def write_files(study: Any, rep: StudyReport, directory: Path) -> list[Path]:
    """Write the PNGs and ``report.html`` into ``directory`` (which must exist)."""
    images = figure_pngs(study, rep)
    paths = []
    for key, data in images.items():
        path = directory / FIGURES[key]
        path.write_bytes(data)
        paths.append(path)
    html_path = directory / HTML_NAME
    html_path.write_text(render_html(rep, images), encoding="utf-8")
    return [*paths, html_path]


def open_study(name: str, storage: str) -> Any:
    """Load a stored study; :class:`ReportError` names the studies there if it is missing."""
    return load_stored_study(name, storage, ReportError)


def build_report(
    study_name: str,
    storage: str,
    out_dir: str | Path | None = None,
    *,
    tracking_uri: str | None = None,
    track: bool = True,
    top: int = 10,
    study: Any = None,
) -> StudyReport:
    """Analyse a stored study, write its report into ``out_dir`` and log it to MLflow.

    ``out_dir`` defaults to ``reports/<study>``. The files are written into a temporary
    directory next to it and moved into place only when complete (so an error leaves no
    partial report). The tracking URI defaults to the one in the study's stored spec; the
    files go under ``report/`` on the study's latest MLflow parent run. ``study`` is an
    ``optuna.Study`` already open (an in-memory one, from ``weightsearch.search``), used
    instead of loading ``study_name`` from ``storage``.
    """
    import shutil
    import tempfile

    from weightsearch import tracking

    study = study if study is not None else open_study(study_name, storage)
    rep = analyse(study, top=top)
    out = Path(out_dir) if out_dir is not None else Path("reports") / study_name
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out: {out} exists and is not a directory.")
    spec = study.user_attrs.get("spec", {}) or {}
    tspec = spec.get("tracking", {}) or {}
    uri = tracking_uri or (tspec.get("mlflow_uri") if tspec.get("enabled", True) else None)
    experiment = tspec.get("experiment") or spec.get("name") or study_name
    if track and uri:
        from weightsearch.tracking.served import train_runs

        rep.final_models = train_runs(uri, experiment, study_name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        files = write_files(study, rep, tmp)
        if not track:
            rep.mlflow_note = "MLflow logging switched off (--no-tracking)."
        elif not uri:
            rep.mlflow_note = "tracking was off for this study; give --tracking-uri to log."
        else:
            rep.mlflow_run_id, rep.mlflow_note = tracking.log_report_artifacts(
                uri, experiment, study_name, tmp, artifact_path="report"
            )
        out.mkdir(exist_ok=True)
        rep.files = []
        for f in files:
            target = out / f.name
            f.replace(target)
            rep.files.append(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rep.out_dir = out
    return rep
