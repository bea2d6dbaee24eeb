"""Your own components: register_arch / register_loss / register_scheme, and spec plugins."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pytest  # noqa: E402

import weightsearch  # noqa: E402
from weightsearch import Param, engines, losses, models, weighting  # noqa: E402
from weightsearch import spec as spec_mod  # noqa: E402
from weightsearch.spec import SpecError  # noqa: E402
from weightsearch.study import load_plugins, prepare  # noqa: E402

REGISTRIES = (models.MODELS, losses.LOSSES, weighting.WEIGHTINGS)


@pytest.fixture(autouse=True)
def _restore_registries():
    """Entries a test registers do not outlive it (the common tests list the built-ins)."""
    saved = [(dict(r._items), dict(r._aliases)) for r in REGISTRIES]
    path, mods = list(sys.path), set(sys.modules)
    yield
    for reg, (items, aliases) in zip(REGISTRIES, saved, strict=True):
        reg._items, reg._aliases = items, aliases
    sys.path[:] = path
    for name in set(sys.modules) - mods:
        if name.startswith("wsplug_"):
            del sys.modules[name]


def _dense(input_shape, n_outputs, width, act="relu"):
    x = inputs = keras.Input(input_shape)
    x = keras.layers.Dense(width, activation=act)(x)
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(x))


@keras.saving.register_keras_serializable(package="wstest")
class Scale(keras.layers.Layer):
    """x · s, one trainable s per feature (a layer fold stacking has no form for)."""

    def build(self, shape):
        self.s = self.add_weight(shape=(shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.s


def test_typed_keyword_defaults_become_checked_params() -> None:
    @weightsearch.register_arch("U-Params")
    def build(input_shape, n_outputs, *,
              width: Annotated[int, Param(low=4, high=64, log=True, doc="units")] = 8,
              dropout: float = 0.1, act: str = "relu", bn: bool = False,
              head: Annotated[str, Param(choices=("a", "b"))] = "a", task: str = "binary"):
        """Input → Dense(width) → Dense(n_outputs)."""
        return _dense(input_shape, n_outputs, width, act)

    p = models.arch_params("u_params")
    assert list(p) == ["width", "dropout", "act", "bn", "head"]  # task is given, not searched
    assert (p["width"].default, p["width"].low, p["width"].high) == (8, 4, 64)
    assert p["width"].integer and p["width"].log and p["width"].doc == "units"
    assert p["dropout"].check(1e3, "w") == 1e3 and not p["dropout"].integer
    assert p["act"].check("gelu", "w") == "gelu" and p["bn"].choices == (True, False)
    with pytest.raises(ValueError, match=r"arch 'u_params': width must be an integer in \[4, 64\]"):
        models.build_model("u_params", input_shape=(3,), n_outputs=2, task="binary",
                           params={"width": 2})
    with pytest.raises(ValueError, match=r"arch 'u_params': act must be a string, but got 3"):
        models.build_model("u_params", input_shape=(3,), n_outputs=2, task="binary",
                           params={"act": 3})
    with pytest.raises(ValueError, match=r"head must be one of 'a', 'b', but got 'c'"):
        models.build_model("u_params", input_shape=(3,), n_outputs=2, task="binary",
                           params={"head": "c"})


def _no_default(input_shape, n_outputs, *, width: int):
    """x → y."""


def _no_type(input_shape, n_outputs, *, width=3):
    """x → y."""


def _wrong_default(input_shape, n_outputs, *, width: int = 0.5):
    """x → y."""


def _outside(input_shape, n_outputs, *, width: Annotated[int, Param(low=4)] = 2):
    """x → y."""


def _kwargs(input_shape, n_outputs, **params):
    """x → y."""


def _optional(input_shape, n_outputs, *, width: int | None = None):
    """x → y."""


def _too_few(input_shape):
    """x → y."""


@pytest.mark.parametrize(("fn", "message"), [
    (_no_default, "parameter 'width' of _no_default() has no default; expected a typed keyword "
                  "default such as `width: int = 32`."),
    (_no_type, "parameter 'width' of _no_type() has no type annotation; expected int, float, "
               "bool or str"),
    (_wrong_default, "parameter 'width' of _wrong_default(): its default 0.5 is not of its "
                     "type int."),
    (_outside, "parameter 'width' of _outside(): its default must be an integer in [4, inf], "
               "but got 2."),
    (_kwargs, "parameter 'params' of _kwargs(): *args/**kwargs cannot be searched"),
    (_optional, "parameter 'width' of _optional() has type int | None; expected int, float"),
    (_too_few, "_too_few() must take (input_shape, n_outputs, ...) positionally first"),
])
def test_bad_user_parameters_give_one_line_naming_function_and_parameter(fn, message) -> None:
    with pytest.raises(TypeError) as err:
        weightsearch.register_arch("bad")(fn)
    text = str(err.value)
    assert text.startswith("register_arch('bad'): ") and message in text and "\n" not in text
    assert "bad" not in models.MODELS


def test_the_builder_is_called_and_its_model_checked() -> None:
    seen = {}

    @weightsearch.register_arch("u_tagged", input_kind="tabular")
    def build(input_shape, n_outputs, *, width: int = 4, task: str = ""):
        """Input → Dense(width) → Dense(n_outputs, sigmoid or softmax)."""
        seen.update(shape=input_shape, n=n_outputs, task=task)
        return _dense(input_shape, n_outputs, width)

    model = models.build_model("u_tagged", input_shape=(5,), n_outputs=3, task="multilabel",
                               params={"width": 6})
    assert seen == {"shape": (5,), "n": 3, "task": "multilabel"}
    assert model.layers[1].units == 6 and model.output_shape == (None, 3)
    with pytest.raises(ValueError, match=r"arch 'u_tagged' expects tabular features of shape"):
        models.check_input("u_tagged", (4, 4, 1))

    @weightsearch.register_arch("u_wrong")
    def wrong(input_shape, n_outputs):
        """Input → Dense(1, sigmoid)."""
        inputs = keras.Input(input_shape)
        return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(inputs))

    with pytest.raises(ValueError, match=r"arch 'u_wrong' \(.*wrong\(\)\) must output \(N, 2\) "
                                         r"probabilities for binary data, but outputs \(None, 1\)"):
        models.build_model("u_wrong", input_shape=(3,), n_outputs=2, task="binary")

    @weightsearch.register_arch("u_none")
    def nothing(input_shape, n_outputs):
        """Nothing → nothing."""
        return None

    with pytest.raises(ValueError, match=r"must return a keras.Model, but returned NoneType"):
        models.build_model("u_none", input_shape=(3,), n_outputs=2, task="binary")


def test_registering_the_same_function_again_replaces_it_but_a_new_one_is_refused() -> None:
    def build(input_shape, n_outputs, *, width: int = 4):
        """Input → Dense(width) → Dense(n_outputs)."""
        return _dense(input_shape, n_outputs, width)

    weightsearch.register_arch("u_again")(build)
    weightsearch.register_arch("u_again")(build)  # a re-run notebook cell
    assert models.MODELS.get("u_again").body is build
    with pytest.raises(ValueError, match="arch 'u_again' is already registered"):
        weightsearch.register_arch("u_again")(_dense_other)
    with pytest.raises(ValueError, match="arch 'mlp' is already registered"):
        weightsearch.register_arch("mlp")(build)


def _dense_other(input_shape, n_outputs):
    """Input → Dense(n_outputs)."""
    return _dense(input_shape, n_outputs, 2)


def test_user_scheme_and_loss_apply_weights_as_the_built_ins() -> None:
    @weightsearch.register_scheme("u_power")
    def power(counts, *, p: Annotated[float, Param(low=0.0, high=3.0)] = 1.0):
        """w_c = n_c^(-p)."""
        return counts ** -p

    counts = np.array([60.0, 30.0, 10.0])
    w = weighting.weight_vector(counts, "u_power", p=0.5)
    np.testing.assert_allclose(w, weighting.weight_vector(counts, "power", p=0.5))
    with pytest.raises(ValueError, match=r"weighting scheme 'u_power': p must be a number in "):
        weighting.weight_vector(counts, "u_power", p=4.0)

    seen = {}

    @weightsearch.register_loss("u_ce", tasks=("binary", "multiclass"))
    def ce(task, n_classes, weights, *, smoothing: float = 0.0):
        """ℓ_i = −w[y_i]·Σ_c y_ic·log p_ic."""
        seen.update(task=task, n=n_classes)

        def loss(y_true, y_pred):
            per_row = keras.losses.categorical_crossentropy(y_true, y_pred, smoothing)
            return losses.weigh(y_true, per_row, weights, multilabel=False)

        return loss

    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 2]]
    p = np.array([[.7, .2, .1], [.2, .5, .3], [.1, .1, .8], [.3, .3, .4]], dtype=np.float32)
    mine = losses.build_loss("u_ce", task="multiclass", n_classes=3, weights=w)
    ours = losses.build_loss("crossentropy", task="multiclass", n_classes=3, weights=w)
    assert seen == {"task": "multiclass", "n": 3}
    np.testing.assert_allclose(np.mean(np.asarray(mine(y, p))), float(ours(y, p)), rtol=1e-6)
    with pytest.raises(ValueError, match=r"loss 'u_ce' does not support task 'multilabel'"):
        losses.build_loss("u_ce", task="multilabel", n_classes=3)


def _raw(arch: str, storage: str, **space) -> dict:
    return {
        "name": f"user-{arch}", "seed": 0,
        "data": {"source": "builtin:synthetic",
                 "options": {"n_samples": 80, "n_features": 4, "weights": [0.7, 0.3]}},
        "cv": {"folds": 2, "epochs": 1, "batch_size": 16, "patience": 0},
        "search": {"n_trials": 1, "sampler": "random", "pruner": "none", "storage": storage},
        "tracking": {"enabled": False},
        "space": {"model": {"arch": arch}, **space},
    }


def test_a_user_arch_runs_in_a_tiny_study_folds_stacked_or_in_turn(tmp_path) -> None:
    @weightsearch.register_arch("u_plain")
    def plain(input_shape, n_outputs, *, width: int = 4):
        """Input → Dense(width, relu) → Dense(n_outputs, softmax)."""
        return _dense(input_shape, n_outputs, width)

    @weightsearch.register_arch("u_scaled")
    def scaled(input_shape, n_outputs, *, width: int = 4):
        """Input → Scale → Dense(width, relu) → Dense(n_outputs, softmax)."""
        x = inputs = keras.Input(input_shape)
        x = keras.layers.Dense(width, activation="relu")(Scale()(x))
        return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(x))

    @weightsearch.register_scheme("u_sqrt")
    def u_sqrt(counts):
        """w_c = n_c^(-1/2)."""
        return counts ** -0.5

    storage = f"sqlite:///{tmp_path}/u.db"
    for arch, stacked in (("u_plain", True), ("u_scaled", False)):
        raw = _raw(arch, storage, model={"arch": arch, "width": [3, 6]},
                   weighting={"scheme": "u_sqrt"})
        out = engines.run_study(engines.prepare(spec_mod.parse(raw)), n_trials=1)
        (trial,) = out.study.trials
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.user_attrs["config"]["model"]["arch"] == arch
        assert trial.user_attrs["config"]["weighting"]["scheme"] == "u_sqrt"
        assert 3 <= trial.params[f"model.{arch}.width"] <= 6
        assert trial.user_attrs["parallel_folds"] is stacked
        if not stacked:
            assert "has no vectorised form" in trial.user_attrs["parallel_folds_reason"]


def test_a_bad_user_value_in_the_space_names_the_spec_key(tmp_path) -> None:
    @weightsearch.register_arch("u_spaced")
    def build(input_shape, n_outputs, *, width: Annotated[int, Param(low=2, high=8)] = 4):
        """Input → Dense(width) → Dense(n_outputs)."""
        return _dense(input_shape, n_outputs, width)

    raw = _raw("u_spaced", f"sqlite:///{tmp_path}/u.db", model={"arch": "u_spaced",
                                                                 "width": [2, 20]})
    with pytest.raises(SpecError) as err:
        prepare(spec_mod.parse(raw))
    assert err.value.problems == [
        "space.model.width (high) must be an integer in [2, 8], but got 20."
    ]


# ---------------------------------------------------------------------------- plugins

PLUGIN = '''
import keras
import weightsearch


@weightsearch.register_arch("{arch}")
def build(input_shape, n_outputs, *, width: int = 4):
    """Input → Dense(width, relu) → Dense(n_outputs, softmax)."""
    x = inputs = keras.Input(input_shape)
    x = keras.layers.Dense(width, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(n_outputs, activation="softmax")(x))
'''


def _write(tmp_path: Path, plugins: list[str], arch: str, storage: str) -> Path:
    raw = _raw(arch, storage)
    text = textwrap.dedent(f"""
        name = "{raw['name']}"
        plugins = {plugins!r}
        [data]
        source = "builtin:synthetic"
        options = {{ n_samples = 80, n_features = 4, weights = [0.7, 0.3] }}
        [cv]
        folds = 2
        epochs = 1
        batch_size = 16
        patience = 0
        [search]
        n_trials = 2
        sampler = "random"
        pruner = "none"
        storage = "{storage}"
        [space.model]
        arch = "{arch}"
        width = [3, 6]
    """).replace("'", '"')
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def test_plugins_are_imported_from_the_spec_directory_not_only_cwd(tmp_path, monkeypatch) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "specs" / "wsplug_beside.py").write_text(PLUGIN.format(arch="u_beside"))
    spec = _write(tmp_path / "specs", ["wsplug_beside"], "u_beside", "sqlite:///x.db")
    monkeypatch.chdir(tmp_path / "elsewhere")
    loaded = spec_mod.load(spec)
    assert loaded.plugins == ("wsplug_beside",) and "u_beside" not in models.MODELS
    load_plugins(loaded)
    assert models.MODELS.get("u_beside").whole


def test_a_bad_plugin_gives_one_line_naming_the_key_and_module(tmp_path) -> None:
    (tmp_path / "wsplug_broken.py").write_text(PLUGIN.format(arch="u_broken").replace(
        "width: int = 4", "width: int"))
    for module, error in (
        ("wsplug_missing", "ModuleNotFoundError: No module named 'wsplug_missing'"),
        ("wsplug_broken", "TypeError: register_arch('u_broken'): parameter 'width' of build() "
                          "has no default"),
    ):
        spec = spec_mod.load(_write(tmp_path, [module], "mlp", "sqlite:///x.db"))
        with pytest.raises(SpecError) as err:
            prepare(spec)
        (line,) = err.value.problems
        assert line.startswith(f"plugins: module {module!r} failed to import: {error}"), line
    with pytest.raises(SpecError, match=r"plugins: expected a list of module names such as "
                                        r"\[\"my_arch\"\], but got 'my-arch'"):
        spec_mod.parse({**_raw("mlp", "sqlite:///x.db"), "plugins": ["my-arch"]})


def _cli(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "weightsearch", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_the_cli_says_a_bad_plugin_in_one_line(tmp_path) -> None:
    spec = _write(tmp_path, ["wsplug_nowhere"], "mlp", "sqlite:///x.db")
    proc = _cli("validate", str(spec), cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: {spec}: plugins: module 'wsplug_nowhere' failed to import: "
        "ModuleNotFoundError: No module named 'wsplug_nowhere'"
    ]


@pytest.mark.slow
def test_a_plugin_arch_is_used_by_study_workers_and_export_train_predict(tmp_path) -> None:
    """Two worker processes (each re-reading the spec) import the plugin beside the spec;
    export records it, and train and predict (fresh processes) import it again."""
    specs, run = tmp_path / "specs", tmp_path / "run"
    specs.mkdir()
    run.mkdir()
    plugin = PLUGIN.format(arch="u_worker").replace(
        "x = keras.layers.Dense(width", "x = Scale()(x)\n    x = keras.layers.Dense(width"
    ) + textwrap.dedent('''

        @keras.saving.register_keras_serializable(package="wsplug")
        class Scale(keras.layers.Layer):
            """x · s per feature."""

            def build(self, shape):
                self.s = self.add_weight(shape=(shape[-1],), initializer="ones")

            def call(self, x):
                return x * self.s
    ''')
    (specs / "wsplug_worker.py").write_text(plugin)
    journal = tmp_path / "optuna.journal"
    spec = _write(specs, ["wsplug_worker"], "u_worker", f"journal:{journal}")
    proc = _cli("study", str(spec), "--workers", "2", "--no-tracking", cwd=run)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(journal)))
    study = optuna.load_study(study_name="user-u_worker", storage=storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert {t.user_attrs["config"]["model"]["arch"] for t in study.trials} == {"u_worker"}

    best = run / "best.toml"
    proc = _cli("export", "--study", "user-u_worker", "--storage", f"journal:{journal}",
                "--out", str(best), cwd=run)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    import tomllib

    assert tomllib.loads(best.read_text())["plugins"] == ["wsplug_worker"]
    (run / "wsplug_worker.py").write_text(plugin)  # train and predict look beside best.toml
    proc = _cli("train", str(best), "--out", str(run / "model"), "--no-tracking", cwd=run)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    rows = np.random.default_rng(0).normal(size=(5, 4))
    (run / "new.csv").write_text("x0,x1,x2,x3\n" + "\n".join(",".join(map(str, r)) for r in rows))
    proc = _cli("predict", str(run / "model"), "--data", str(run / "new.csv"), "--out",
                str(run / "pred.csv"), cwd=run)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert len((run / "pred.csv").read_text().strip().splitlines()) == 6


def test_trained_model_classes_feed_sklearn_metrics_without_glue(tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from sklearn.metrics import ConfusionMatrixDisplay, classification_report

    from weightsearch.production.predict import TrainedModel

    inputs = keras.Input((2,))
    net = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    net.layers[1].set_weights([np.array([[4.0, -4.0, 0.0], [0.0, 0.0, 4.0]]), np.zeros(3)])
    tm = TrainedModel(net, {"classes": ["ant", "bee", "cow"], "task": "multiclass",
                            "input_shape": [2]}, tmp_path)
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    y_true = np.array(["ant", "bee", "cow", "ant"], dtype=object)
    pred = tm.predict(x)
    assert list(pred) == ["ant", "bee", "cow", "cow"]
    assert isinstance(tm.classes_, np.ndarray) and list(tm.classes_) == ["ant", "bee", "cow"]
    report = classification_report(y_true, pred, labels=tm.classes_, output_dict=True,
                                   zero_division=0)
    assert report["ant"]["recall"] == 0.5 and report["cow"]["precision"] == 0.5
    disp = ConfusionMatrixDisplay.from_predictions(y_true, pred, labels=tm.classes_)
    assert disp.confusion_matrix.tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 1]]
    assert list(disp.display_labels) == ["ant", "bee", "cow"]
