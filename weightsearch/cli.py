"""Command line: ``python -m weightsearch <command>``. Argument parsing only; each command
returns an exit code. User errors print one line per problem and exit non-zero without a
traceback (``--debug`` shows it)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from weightsearch import __version__
from weightsearch.storage import DEFAULT_STORAGE

EXIT_USER = 2  # a bad spec, bad data or a bad flag
EXIT_FAIL = 1  # the work could not be done (storage down, every trial failed)
EXIT_INTERRUPTED = 130


def _console() -> Any:
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:  # logs and pipes: wide enough for the leaderboard
        console = Console(highlight=False, width=200)
    return console


def exit_process(code: int) -> NoReturn:
    """End the process with ``code`` once non-daemon threads and the atexit handlers are
    done (queued MLflow artifacts are flushed there), skipping the interpreter's teardown of
    its modules, which takes 2-3 s once TensorFlow and MLflow are loaded and does nothing a
    command needs. Used by ``python -m weightsearch``."""
    import os
    import threading

    from weightsearch.compat import atexit_runner

    run_exitfuncs = atexit_runner()  # CPython's own exit step
    if run_exitfuncs is None:
        raise SystemExit(code)
    me = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not me and not thread.daemon:
            thread.join()
    run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code)


def _user_errors() -> tuple[type[BaseException], ...]:
    from weightsearch.data import DataError
    from weightsearch.production import ExportError
    from weightsearch.report import ReportError
    from weightsearch.spec import SpecError

    return (SpecError, DataError, ReportError, ExportError)


def _spec_with_overrides(args: argparse.Namespace) -> Any:
    from weightsearch import spec as spec_mod

    spec = spec_mod.load(args.spec)
    changes: dict[str, Any] = {}
    if getattr(args, "seed", None) is not None:
        changes["seed"] = args.seed
    if getattr(args, "storage", None):
        changes["search.storage"] = args.storage
    if getattr(args, "tracking_uri", None):
        changes["tracking.mlflow_uri"] = args.tracking_uri
    if getattr(args, "no_tracking", False):
        changes["tracking.enabled"] = False
    return spec.replace(**changes) if changes else spec


# ---- commands ----------------------------------------------------------------------------


def cmd_datasets(args: argparse.Namespace) -> int:
    from rich.table import Table

    from weightsearch.data import list_datasets

    table = Table(
        title='Built-in datasets (use as source = "builtin:<name>")', title_justify="left"
    )
    table.add_column("name")
    table.add_column("description")
    for name, description in list_datasets():
        table.add_row(name, description)
    _console().print(table)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from weightsearch import report

    rep = report.build_report(
        args.study,
        args.storage,
        args.out,
        tracking_uri=args.tracking_uri,
        track=not args.no_tracking,
        top=args.top,
    )
    console = _console()
    for item in report.terminal_renderables(rep):
        console.print(item)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from weightsearch.engines import validate

    spec = _spec_with_overrides(args)
    prepared = validate(spec)
    console = _console()
    ds = prepared.data
    console.print(f"[green]ok[/green] {args.spec}: study {spec.name!r}")
    console.print(
        f"  data: {ds.name}, {ds.task}, {len(ds.y)} rows, input shape {ds.input_shape}, "
        f"{ds.n_classes} {'labels' if ds.task == 'multilabel' else 'classes'}; "
        f"search on {len(prepared.train.y)}, held-out test {len(prepared.test_idx)}"
    )
    from weightsearch.progress import column_lines

    for line in column_lines(ds.columns):
        console.print(line, markup=False)
    console.print(
        f"  cv: {spec.cv.folds} folds × ≤{spec.cv.epochs} epochs, metric {spec.cv.metric}, "
        f"weights applied via {spec.cv.apply_weights}"
    )
    from weightsearch.spec import default_pruner

    s = spec.search
    chosen = f" (the {s.engine} engine's default)" if s.pruner == default_pruner(s.engine) else ""
    console.print(
        f"  search: {s.n_trials} trials, engine {s.engine}, sampler {s.sampler}, "
        f"pruner {s.pruner}{chosen}"
    )
    for name, desc in prepared.space.describe():
        console.print(f"    {name}: {desc}")
    return 0


def _start(args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    """Spec → checked data and space → storage → tracker, in that order, so a user error
    or an unreachable service stops the run before anything is written."""
    from weightsearch import engines, training
    from weightsearch.locks import init_lock
    from weightsearch.storage import open_storage, parse_url
    from weightsearch.tracking import make_tracker

    spec = _spec_with_overrides(args)
    prepared = engines.prepare(spec)
    if getattr(args, "workers", 1) > 1 and parse_url(spec.search.storage).kind == "sqlite":
        from weightsearch.spec import SpecError

        raise SpecError(
            [f"search.storage: SQLite is not safe for {args.workers} parallel workers; use "
             "--storage weightsearch.journal (one machine) or a postgresql:// URL."],
            args.spec,
        )
    training.configure_threads()
    with init_lock(spec.search.storage, spec.name):
        storage = open_storage(spec)
        tracker = make_tracker(spec.tracking.enabled, spec.tracking.mlflow_uri, spec.experiment)
    return spec, prepared, storage, tracker


def _tool(name: str) -> str:
    """How to call a console script of this environment from here (``.venv/bin/mlflow``)."""
    from weightsearch.progress import tool_path

    return tool_path(name)


def _announce(console: Any, spec: Any, prepared: Any, what: str, tracker: Any) -> None:
    from weightsearch.storage import mask_url

    ds = prepared.train
    console.print(
        f"[bold]{spec.name}[/bold]: {what} on {spec.data.source} ({ds.task}, "
        f"{len(ds.y)} rows for the search), {spec.cv.folds}-fold CV, metric {spec.cv.metric}"
    )
    console.print(
        f"  storage {mask_url(spec.search.storage)}"
        + (f" · MLflow {mask_url(spec.tracking.mlflow_uri)}" if tracker.enabled else "")
    )


def _finish(console: Any, spec: Any, outcome: Any, tracker: Any, top: int) -> int:
    """Leaderboard, then the exit code."""
    from weightsearch.progress import leaderboard_table
    from weightsearch.storage import mask_url
    from weightsearch.study import leaderboard

    study = outcome.study
    rows = leaderboard(study, top=top or 1)
    states: dict[str, int] = {}
    for t in study.trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    summary = ", ".join(f"{v} {k.lower()}" for k, v in sorted(states.items()))
    if rows and top:
        console.print(
            leaderboard_table(rows, spec.cv.metric, f"Top trials of {spec.name!r} ({summary})")
        )
    if tracker.enabled and top:
        console.print(
            f"MLflow: {_tool('mlflow')} ui --backend-store-uri {mask_url(spec.tracking.mlflow_uri)}"
        )
    lost = outcome.lost_trials
    if lost and top and not outcome.failed_workers:
        console.print(
            f"Recovered lost trial(s) {', '.join(map(str, lost))}: their worker had stopped, "
            "so they were marked failed and re-queued."
        )
    if outcome.interrupted:
        console.print(
            f"[yellow]Interrupted[/yellow] after {outcome.ran} trial(s) this run; finished "
            "trials are kept and the running one is marked failed. Run the same command "
            "to resume."
        )
        return EXIT_INTERRUPTED
    if outcome.stopped_for_failures:
        last = [t for t in study.trials if t.state.name == "FAIL"][-1:]
        reason = last[0].user_attrs.get("error", "unknown error") if last else "unknown error"
        print(
            f"error: stopped after {spec.search.max_consecutive_failures} failed trials in a row; "
            f"last error: {reason}",
            file=sys.stderr,
        )
        return EXIT_FAIL
    if outcome.failed_workers:
        waiting = any(
            t.state.name == "WAITING" and t.system_attrs.get("retry_history", [None])[-1] in lost
            for t in study.trials
        )
        retried = (
            f" Lost trial(s) {', '.join(map(str, lost))} were marked failed and re-queued"
            + ("; they run first when the study next runs." if waiting else ", and ran again.")
            if lost else ""
        )
        print(f"error: {outcome.failed_workers} worker(s) exited with an error.{retried}",
              file=sys.stderr)
        return EXIT_FAIL
    if not rows:
        print("error: no trial completed in this study.", file=sys.stderr)
        return EXIT_FAIL
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from weightsearch import engines
    from weightsearch.engines.local import run_local
    from weightsearch.progress import StudyProgress

    spec, prepared, storage, tracker = _start(args)
    console = _console()
    n = args.n_trials or spec.search.n_trials
    local = args.workers > 1 or spec.search.trials_per_process
    where = f" on {args.workers} workers" if local else ""
    _announce(console, spec, prepared, f"{n} trial(s){where}", tracker)
    progress = StudyProgress(console, spec.cv.metric, spec.cv.folds, spec.cv.epochs)
    try:
        if local:
            outcome = run_local(
                args.spec, prepared, storage=storage, tracker=tracker, n_trials=n,
                workers=args.workers, timeout=args.timeout, progress=progress,
                warn=console.print, passthrough=_passthrough(args),
            )
        else:
            outcome = engines.run_study(
                prepared, n_trials=n, timeout=args.timeout, storage=storage, tracker=tracker,
                progress=progress,
            )
    finally:
        progress.stop()
    return _finish(console, spec, outcome, tracker, args.top)


def cmd_worker(args: argparse.Namespace) -> int:
    from weightsearch import engines
    from weightsearch.progress import StudyProgress

    spec, prepared, storage, tracker = _start(args)
    console = _console()
    total = args.n_trials or spec.search.n_trials
    progress = None
    if not args.quiet:
        _announce(console, spec, prepared, f"worker until the study holds {total} trials", tracker)
        progress = StudyProgress(console, spec.cv.metric, spec.cv.folds, spec.cv.epochs)
    try:
        outcome = engines.run_study(
            prepared, timeout=args.timeout, storage=storage, tracker=tracker, progress=progress,
            total=total, parent_run_id=args.parent_run_id, worker_index=args.worker_index,
            max_trials=args.max_trials,
        )
    finally:
        if progress is not None:
            progress.stop()
    code = _finish(console, spec, outcome, tracker, 0 if args.quiet else args.top)
    # a worker that found the budget already spent has done its job
    return 0 if code == EXIT_FAIL and not outcome.stopped_for_failures and outcome.ran == 0 \
        else code


def _passthrough(args: argparse.Namespace) -> list[str]:
    """Flags a coordinator hands on to its worker processes."""
    out: list[str] = []
    if args.seed is not None:
        out += ["--seed", str(args.seed)]
    if args.no_tracking:
        out += ["--no-tracking"]
    if args.timeout:
        out += ["--timeout", str(args.timeout)]
    return out


NEEDS_TENSORFLOW = {"study", "validate", "worker"}

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "study": cmd_study,
    "worker": cmd_worker,
    "validate": cmd_validate,
    "datasets": cmd_datasets,
    "report": cmd_report,
}


# ---- production: export, train, predict (weightsearch.production) -----------------------------


def cmd_export(args: argparse.Namespace) -> int:
    from weightsearch import production

    done = production.export(args.study, args.out, storage=args.storage, trial=args.trial)
    console = _console()
    for line in production.export_lines(done):
        console.print(line)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from weightsearch import production

    cfg = production.load_config(args.config)
    console = _console()
    for line in production.train_banner(cfg, args.data):
        console.print(line)
    bar = Progress(
        TextColumn("[bold]epochs"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"), console=console, transient=True,
    )
    with bar:
        task = bar.add_task("train", total=cfg.train["epochs"], loss="–")
        result = production.train_from_config(
            cfg,
            data=args.data,
            out=args.out,
            track=False if args.no_tracking else None,
            tracking_uri=args.tracking_uri,
            on_epoch=lambda epoch, logs: bar.update(
                task, advance=1, loss=f"{logs.get('loss', float('nan')):.4f}"
            ),
        )
    for item in production.train_renderables(result):
        console.print(item)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from weightsearch import production

    res = production.predict(args.model_dir, args.data, args.out)
    for line in production.predict_lines(res):
        _console().print(line)
    return 0


def _production_parsers(sub: Any) -> None:
    p = sub.add_parser("export", help="write a trial's config as a standalone training TOML")
    p.add_argument("--study", required=True, help="the study name")
    p.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help=f"Optuna storage URL (default: {DEFAULT_STORAGE})",
    )
    p.add_argument("--trial", type=_nonneg_int, help="trial number (default: the best trial)")
    p.add_argument("--out", required=True, help="config file to write, e.g. best.toml")

    p = sub.add_parser(
        "train", help="train the final model from an exported config; evaluate, save, register"
    )
    p.add_argument("config", help="training config written by `export`, e.g. best.toml")
    p.add_argument("--data", help="replace the config's data source (same columns and classes)")
    p.add_argument("--out", required=True, help="model directory (model.keras, weightsearch.json)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: the config's)")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")

    p = sub.add_parser("predict", help="predict new data with a trained model directory")
    p.add_argument("model_dir", help="directory written by `train --out`")
    p.add_argument("--data", required=True, help="CSV/Parquet with the training columns, or NPZ")
    p.add_argument("--out", required=True, help="predictions CSV to write")


NEEDS_TENSORFLOW |= {"export", "train", "predict"}
COMMANDS.update(export=cmd_export, train=cmd_train, predict=cmd_predict)


class _Parser(argparse.ArgumentParser):
    """No abbreviated flags: ``--n-trial`` is an error, not a silent ``--n-trials``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="weightsearch",
        description="Search class weights, losses and Keras architectures for imbalanced data.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"weightsearch {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    p = sub.add_parser("study", help="run (or resume) an Optuna study from a TOML spec")
    _run_flags(p)
    p.add_argument("--n-trials", type=_positive_int, help="trials to run now (default: the spec's)")
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="local worker processes (needs a journal: or postgresql:// storage)")

    p = sub.add_parser(
        "worker", help="join a study and run trials until it holds n_trials in total"
    )
    _run_flags(p)
    p.add_argument("--n-trials", type=_positive_int,
                   help="the study's total trial budget, across all workers (default: the spec's)")
    p.add_argument("--parent-run-id", help="MLflow parent run to nest trial runs under")
    p.add_argument("--worker-index", type=_nonneg_int, default=0,
                   help="offsets the sampler seed so workers do not propose the same trials")
    p.add_argument("--quiet", action="store_true", help="no progress bar or leaderboard")
    p.add_argument("--max-trials", type=_positive_int,
                   help="exit after running this many trials in this process")

    p = sub.add_parser("validate", help="check a spec and its data without running anything")
    p.add_argument("spec")

    sub.add_parser("datasets", help="list the built-in datasets")

    p = sub.add_parser(
        "report", help="leaderboard, scheme/loss comparison with paired tests, plots, HTML"
    )
    p.add_argument("--study", required=True, help="the study name")
    p.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help=f"Optuna storage URL (default: {DEFAULT_STORAGE})",
    )
    p.add_argument("--out", help="output directory (default: reports/<study>)")
    p.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: the one the study was run with)"
    )
    p.add_argument("--no-tracking", action="store_true", help="do not log the report to MLflow")
    p.add_argument("--top", type=_positive_int, default=10, help="leaderboard rows (default 10)")
    _production_parsers(sub)
    return parser


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="study spec (TOML), e.g. studies/quickstart.toml")
    p.add_argument("--timeout", type=_positive_float, help="stop starting trials after S seconds")
    p.add_argument("--storage", help="Optuna storage URL (overrides [search] storage)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (overrides [tracking] mlflow_uri)")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.add_argument("--seed", type=_nonneg_int, help="override the spec's seed")
    p.add_argument("--top", type=_positive_int, default=10, help="leaderboard rows (default 10)")


def _number_type(
    convert: Callable[[str], Any], ok: Callable[[Any], bool], expected: str
) -> Callable[[str], Any]:
    """An argparse type: ``convert`` the text and check it, else say what was expected."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, but got {text!r}")
        return value

    return parse


_positive_int = _number_type(int, lambda v: v >= 1, "a positive integer")
_nonneg_int = _number_type(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _number_type(float, lambda v: v > 0, "a positive number")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted before or after the command
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    from weightsearch.compat import import_tensorflow_quietly

    try:
        if args.command in NEEDS_TENSORFLOW:
            import_tensorflow_quietly()
        if args.command not in ("study", "worker"):
            return COMMANDS[args.command](args)
        from weightsearch.interrupts import sigterm_as_interrupt

        with sigterm_as_interrupt():  # after a first Ctrl-C, later ones are only recorded
            return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        from weightsearch.storage import StudyError
        from weightsearch.tracking import TrackingError

        if args.debug:
            raise
        if isinstance(exc, _user_errors()):
            lines = getattr(exc, "problems", None)
            source = getattr(exc, "source", None)
            for line in [f"{source}: {p}" for p in lines] if lines else [str(exc)]:
                print(f"error: {line}", file=sys.stderr)
            return EXIT_USER
        if isinstance(exc, StudyError | TrackingError):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAIL
        print(
            f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAIL


def run() -> NoReturn:
    """The ``weightsearch`` console script: :func:`main`, then :func:`exit_process`."""
    exit_process(main())


if __name__ == "__main__":
    run()
