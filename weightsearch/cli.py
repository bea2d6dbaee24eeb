"""Command line: ``python -m weightsearch <command>``. Argument parsing only; each command
returns an exit code. User errors print one line per problem and exit non-zero without a
traceback (``--debug`` shows it)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

EXIT_USER = 2  # a bad spec, bad data or a bad flag
EXIT_FAIL = 1  # the work could not be done (storage down, every trial failed)
EXIT_INTERRUPTED = 130


def _console() -> Any:
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:  # logs and pipes: wide enough for the leaderboard
        console = Console(highlight=False, width=140)
    return console


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up banner (oneDNN, CPU features) hidden.

    The banner is written to file descriptor 2 before logging is configured, so no
    environment variable silences it. If the import fails, what it printed is shown.
    """
    import os
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


def _user_errors() -> tuple[type[BaseException], ...]:
    from weightsearch.data import DataError
    from weightsearch.spec import SpecError

    return (SpecError, DataError)


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


def cmd_validate(args: argparse.Namespace) -> int:
    from weightsearch.runner import prepare

    spec = _spec_with_overrides(args)
    prepared = prepare(spec)
    console = _console()
    ds = prepared.data
    console.print(f"[green]ok[/green] {args.spec}: study {spec.name!r}")
    console.print(
        f"  data: {ds.name}, {ds.task}, {len(ds.y)} rows, input shape {ds.input_shape}, "
        f"{ds.n_classes} {'labels' if ds.task == 'multilabel' else 'classes'}; "
        f"search on {len(prepared.train.y)}, held-out test {len(prepared.test_idx)}"
    )
    console.print(
        f"  cv: {spec.cv.folds} folds × ≤{spec.cv.epochs} epochs, metric {spec.cv.metric}, "
        f"weights applied via {spec.cv.apply_weights}"
    )
    console.print(
        f"  search: {spec.search.n_trials} trials, sampler {spec.search.sampler}, "
        f"pruner {spec.search.pruner}"
    )
    for name, desc in prepared.space.describe():
        console.print(f"    {name}: {desc}")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from weightsearch import runner, training
    from weightsearch.progress import StudyProgress, leaderboard_table
    from weightsearch.tracking import make_tracker, mask_url

    spec = _spec_with_overrides(args)
    prepared = runner.prepare(spec)  # every spec/data error surfaces before anything is written
    console = _console()
    training.configure_threads()
    storage = runner.make_storage(spec.search.storage)
    tracker = make_tracker(spec.tracking.enabled, spec.tracking.mlflow_uri, spec.experiment)
    n = args.n_trials or spec.search.n_trials
    ds = prepared.train
    console.print(
        f"[bold]{spec.name}[/bold]: {n} trial(s) on {spec.data.source} ({ds.task}, "
        f"{len(ds.y)} rows for the search), {spec.cv.folds}-fold CV, metric {spec.cv.metric}"
    )
    console.print(
        f"  storage {mask_url(spec.search.storage)}"
        + (f" · MLflow {mask_url(spec.tracking.mlflow_uri)}" if tracker.enabled else "")
    )
    progress = StudyProgress(console, spec.cv.metric, spec.cv.folds, spec.cv.epochs)
    try:
        outcome = runner.run_study(
            prepared,
            n_trials=n,
            timeout=args.timeout,
            storage=storage,
            tracker=tracker,
            progress=progress,
        )
    finally:
        progress.stop()
    study = outcome.study
    rows = runner.leaderboard(study, top=args.top)
    states = {}
    for t in study.trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    summary = ", ".join(f"{v} {k.lower()}" for k, v in sorted(states.items()))
    if rows:
        console.print(
            leaderboard_table(rows, spec.cv.metric, f"Top trials of {spec.name!r} ({summary})")
        )
    if tracker.enabled:
        console.print(f"MLflow: mlflow ui --backend-store-uri {mask_url(spec.tracking.mlflow_uri)}")
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
    if not rows:
        print("error: no trial completed in this study.", file=sys.stderr)
        return EXIT_FAIL
    return 0


NEEDS_TENSORFLOW = {"study", "validate"}

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "study": cmd_study,
    "validate": cmd_validate,
    "datasets": cmd_datasets,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="weightsearch",
        description="Search class weights, losses and Keras architectures for imbalanced data.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("study", help="run (or resume) an Optuna study from a TOML spec")
    p.add_argument("spec", help="study spec (TOML), e.g. studies/quickstart.toml")
    p.add_argument("--n-trials", type=_positive_int, help="trials to run now (default: the spec's)")
    p.add_argument("--timeout", type=_positive_float, help="stop starting trials after S seconds")
    p.add_argument("--storage", help="Optuna storage URL (overrides [search] storage)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (overrides [tracking] mlflow_uri)")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.add_argument("--seed", type=_nonneg_int, help="override the spec's seed")
    p.add_argument("--top", type=_positive_int, default=10, help="leaderboard rows (default 10)")

    p = sub.add_parser("validate", help="check a spec and its data without running anything")
    p.add_argument("spec")

    sub.add_parser("datasets", help="list the built-in datasets")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, but got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, but got {text!r}")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, but got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, but got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, but got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, but got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in NEEDS_TENSORFLOW:
            _import_tensorflow_quietly()
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        from weightsearch.runner import StudyError
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


if __name__ == "__main__":
    raise SystemExit(main())
