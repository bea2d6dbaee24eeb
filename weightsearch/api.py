"""weightsearch from Python: :func:`search` runs a study on your data and returns a
:class:`SearchResult`, which reports, exports and trains like the CLI's commands.

Everything goes through the same spec checks, study run and engines as ``weightsearch
study``; a bad argument raises the spec's :class:`~weightsearch.spec.SpecError` (a
``ValueError``) naming it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weightsearch.spec import CVSpec, SearchSpec, SpecError

SOURCE = "search()"  # where a problem with search()'s arguments is reported
SECTIONS = ("data", "cv", "search", "tracking", "space")


class DefaultInt(int):
    """A keyword's default (the spec's own), told apart from the same value passed."""


class DefaultStr(str):
    """A keyword's default (the spec's own), told apart from the same value passed."""


def passed(value: Any) -> bool:
    """Whether a keyword was given by the caller rather than left at its default."""
    return not isinstance(value, DefaultInt | DefaultStr)


def plain(value: DefaultInt | DefaultStr) -> int | str:
    return int(value) if isinstance(value, int) else str(value)


def search(
    data: Any,
    *,
    target: str | list[str] | None = None,
    space: dict[str, Any] | None = None,
    n_trials: int = DefaultInt(SearchSpec.n_trials),
    folds: int = DefaultInt(CVSpec.folds),
    epochs: int = DefaultInt(CVSpec.epochs),
    metric: str = DefaultStr(CVSpec.metric),
    storage: str | None = None,
    tracking_uri: str | None = None,
    name: str | None = None,
    seed: int = DefaultInt(0),
    progress: bool | None = None,
    categorical: str | list[str] | tuple[str, ...] | None = None,
    missing: str | None = None,
    drop: list[str] | tuple[str, ...] | None = None,
    **spec: Any,
) -> SearchResult:
    """Search class weights, losses and architectures for ``data``; returns a SearchResult.

    ``data``: a pandas DataFrame (its ``target`` column, default ``"label"``/``"target"``,
    holds the labels), an ``(x, y)`` tuple of arrays (``y`` labels or 0/1 multi-hot), a CSV,
    Parquet or NPZ path, ``"builtin:NAME"``, or a study spec (a ``.toml`` path or a dict; then
    the keywords you pass override it).

    ``space`` is shaped like the spec's ``[space.*]`` tables, e.g. ``{"weighting": {"scheme":
    ["none", "sqrt"]}, "model": {"arch": "mlp"}}``. ``storage=None`` keeps the study in memory;
    a URL (``sqlite:///x.db``, ``journal:x.journal``, ``postgresql://…``) stores it and resumes
    it by ``name``. ``tracking_uri=None`` logs nothing to MLflow. ``progress`` shows a
    progress bar (default: when stdout is a terminal). ``categorical`` (``"auto"`` or column
    names), ``missing`` (``"impute"`` or ``"error"``) and ``drop`` (column names) set
    ``data.categorical``, ``data.missing`` and ``data.drop``: how a table's columns are treated
    (``None`` leaves the spec's own, or the defaults). Other keywords are spec sections or
    keys: ``cv={"patience": 3}``, ``search={"sampler": "random"}``, ``description="…"``.
    """
    from weightsearch.compat import import_tensorflow_quietly

    import_tensorflow_quietly()
    from weightsearch import engines, training
    from weightsearch.storage import MEMORY, open_storage
    from weightsearch.tracking import make_tracker

    given = {"n_trials": n_trials, "folds": folds, "epochs": epochs, "metric": metric,
             "seed": seed}
    treatment = {k: list(v) if isinstance(v, tuple) else v for k, v in
                 (("categorical", categorical), ("missing", missing), ("drop", drop))
                 if v is not None}
    raw, make_dataset, path = _raw_spec(data, target, treatment)
    from_spec = raw.pop("_from_spec", False)
    # with a spec, only what the caller passed overrides it; without one, every keyword sets
    overrides = {k: v if passed(v) else plain(v) for k, v in given.items()
                 if passed(v) or not from_spec}
    raw = _merge(raw, _keyword_spec(overrides, space, storage, tracking_uri, name, spec,
                                    from_spec=from_spec))
    parsed = _parse(raw, path)
    dataset = None if make_dataset is None else make_dataset(parsed.data)
    prepared = engines.prepare(parsed, dataset)
    training.configure_threads()
    url = parsed.search.storage
    store = open_storage(parsed)
    tracker = make_tracker(parsed.tracking.enabled, parsed.tracking.mlflow_uri, parsed.experiment)
    bar = _progress(parsed) if (sys.stdout.isatty() if progress is None else progress) else None
    try:
        outcome = engines.run_study(prepared, storage=store, tracker=tracker, progress=bar)
    finally:
        if bar is not None:
            bar.stop()
    if outcome.interrupted:
        raise KeyboardInterrupt(
            f"search interrupted after {outcome.ran} trial(s)"
            + ("" if url == MEMORY else f"; run it again to resume study {parsed.name!r}")
        )
    return SearchResult(study=outcome.study, prepared=prepared, storage=url, outcome=outcome,
                        in_memory=dataset is not None)


@dataclass
class SearchResult:
    """What :func:`search` found. ``study`` is the ``optuna.Study``; ``prepared`` the spec
    and data it ran on; ``storage`` the storage URL (``"memory:"`` for an in-memory study)."""

    study: Any
    prepared: Any
    storage: str
    outcome: Any
    in_memory: bool = False

    @property
    def spec(self) -> Any:
        return self.prepared.spec

    @property
    def _dataset(self) -> Any:
        """The data in memory, for a search on a DataFrame or arrays (else it is reloaded)."""
        return self.prepared.data if self.in_memory else None

    @property
    def best_trial(self) -> Any:
        """The best complete trial (``ValueError`` if none completed)."""
        return self.study.best_trial

    @property
    def best_value(self) -> float:
        """The best trial's cross-validated score (the spec's ``cv.metric``)."""
        return float(self.study.best_value)

    @property
    def best_config(self) -> Any:
        """The best trial as a :class:`~weightsearch.production.TrainConfig`: the same
        content ``export`` writes (``.to_toml()`` is that file's text, ``.to_dict()`` its
        tables)."""
        from weightsearch.production import config_from_trial

        return config_from_trial(self.study, self.best_trial, self.storage)

    def trials_dataframe(self, **kwargs: Any) -> Any:
        """One row per trial (``optuna.Study.trials_dataframe``; keywords go there)."""
        return self.study.trials_dataframe(**kwargs)

    def report(self, out: str | Path | None = None, *, top: int = 10) -> Any:
        """Write the study's report (leaderboard, scheme/loss comparison with paired tests,
        figures, ``report.html``) into ``out`` (default ``reports/<study>``) and log it to
        MLflow when the search tracked; returns the :class:`~weightsearch.report.StudyReport`."""
        from weightsearch.report import build_report

        tr = self.spec.tracking
        return build_report(
            self.study.study_name, self.storage, out, study=self.study, top=top,
            track=tr.enabled, tracking_uri=tr.mlflow_uri if tr.enabled else None,
        )

    def export(self, path: str | Path, *, trial: int | None = None) -> Path:
        """Write the training config of ``trial`` (default: the best) to ``path``, as the
        ``export`` command does; returns the path."""
        from weightsearch.production import export_trial

        return export_trial(self.study, path, storage=self.storage, trial=trial).path

    def train(self, out: str | Path | None = None, **overrides: Any) -> Any:
        """Train the best config on all of the search's training part, evaluate it on the
        held-out test part, and return the :class:`~weightsearch.production.TrainedModel`
        (saved to ``out`` when given). ``overrides`` replace keys of the config's ``train``
        table (``epochs``, ``batch_size``, …)."""
        from dataclasses import replace

        from weightsearch.production import TrainedModel, train_from_config

        cfg = self.best_config
        unknown = sorted(set(overrides) - set(cfg.train))
        if unknown:
            raise ValueError(
                f"train(): unknown override(s) {unknown}; expected keys of the config's "
                f"train table: {', '.join(sorted(cfg.train))}."
            )
        cfg = replace(cfg, train={**cfg.train, **overrides})
        result = train_from_config(
            cfg, out=out, track=self.spec.tracking.enabled,
            dataset=self._dataset,
        )
        return TrainedModel(model=result.model, meta=result.meta, path=result.out)


# ---- building the spec -------------------------------------------------------------------


def _raw_spec(
    data: Any, target: Any, treatment: dict[str, Any] | None = None
) -> tuple[dict[str, Any], Callable[[Any], Any] | None, str | None]:
    """The spec's tables for ``data`` (``treatment``: the ``data.categorical/missing/drop``
    keys passed), a function of the parsed spec's ``data`` table that makes the in-memory
    Dataset if the data is one, and the spec file's path if it is one."""
    from weightsearch import data as data_mod
    from weightsearch import spec as spec_mod

    treatment = dict(treatment or {})
    keys = {"data": treatment} if treatment else {}
    if isinstance(data, dict):
        return _merge({**data, "_from_spec": True}, keys), None, None
    if isinstance(data, str | Path) and str(data).endswith(".toml"):
        return _merge({**spec_mod.read(data), "_from_spec": True}, keys), None, str(data)
    if isinstance(data, str | Path):
        table: dict[str, Any] = {"source": str(data), **treatment}
        if target is not None:
            table["target"] = target
        return {"data": table}, None, None
    if hasattr(data, "columns"):
        def frame(d: Any) -> Any:
            return data_mod.from_frame(data, target=target, name="DataFrame", **d.treatment())

        return {"data": {"source": "python:DataFrame", **treatment}}, frame, None
    if isinstance(data, tuple) and len(data) == 2:
        if target is not None:
            raise SpecError(["target: only for a DataFrame or a file; (x, y) arrays carry "
                             "their labels in y."], SOURCE)
        if treatment:
            raise SpecError([f"{', '.join(treatment)}: only for a DataFrame or a table file; "
                             "(x, y) arrays have no named columns."], SOURCE)
        ds = data_mod.from_arrays(data[0], data[1], name="arrays")
        return {"data": {"source": "python:arrays"}}, lambda d: ds, None
    raise SpecError(
        [f"data: expected a pandas DataFrame, an (x, y) tuple, a file path, 'builtin:NAME' or a "
         f"spec (.toml path or dict), but got {type(data).__name__}."],
        SOURCE,
    )


def _keyword_spec(
    given: dict[str, Any], space: Any, storage: Any, tracking_uri: Any, name: Any,
    spec: dict[str, Any], *, from_spec: bool,
) -> dict[str, Any]:
    """The spec tables the keywords set. Without a spec, ``storage=None`` is in memory and
    ``tracking_uri=None`` is no MLflow; with one, ``None`` leaves the spec's own."""
    from weightsearch.storage import MEMORY

    raw: dict[str, Any] = {"cv": {}, "search": {}}
    for key in ("folds", "epochs", "metric"):
        if key in given:
            raw["cv"][key] = given[key]
    if "n_trials" in given:
        raw["search"]["n_trials"] = given["n_trials"]
    if "seed" in given:
        raw["seed"] = given["seed"]
    if storage is not None or not from_spec:
        raw["search"]["storage"] = MEMORY if storage is None else storage
    if tracking_uri is not None or not from_spec:
        raw["tracking"] = ({"enabled": False} if tracking_uri is None
                           else {"enabled": True, "mlflow_uri": tracking_uri})
    if name is not None:
        raw["name"] = name
    if space is not None:
        raw["space"] = space
    return _merge(raw, spec)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra``'s tables merged key by key into ``base``'s (one level deep)."""
    out = dict(base)
    for key, value in extra.items():
        if key in SECTIONS and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


#: search()'s keywords and the spec keys they set, so an error names both.
KEYWORDS = {"cv.folds": "folds", "cv.epochs": "epochs", "cv.metric": "metric",
            "search.n_trials": "n_trials", "search.storage": "storage",
            "tracking.mlflow_uri": "tracking_uri", "data.target": "target",
            "data.categorical": "categorical", "data.missing": "missing", "data.drop": "drop"}


def _parse(raw: dict[str, Any], path: str | None) -> Any:
    from weightsearch import spec as spec_mod

    try:
        return spec_mod.parse({"name": "search", **raw}, source=path or SOURCE, path=path)
    except SpecError as exc:
        problems = []
        for line in exc.problems:
            key, _, rest = line.partition(":")
            word = KEYWORDS.get(key)
            problems.append(f"{word}= ({key}):{rest}" if word else line)
        raise SpecError(problems, exc.source) from None


def _progress(spec: Any) -> Any:
    from rich.console import Console

    from weightsearch.progress import StudyProgress

    return StudyProgress(Console(highlight=False), spec.cv.metric, spec.cv.folds, spec.cv.epochs)


__all__ = ["SearchResult", "search"]
