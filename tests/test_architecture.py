"""The package's structure, as docs/architecture.md draws it, read from its own source with ast
(imports inside functions count): no import cycle, no private name taken across modules, no
module over 700 lines, one home for mlflow and for ``optuna.create_study``, and each layer
importing only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "weightsearch"

#: Concept layers, bottom to top (docs/architecture.md). A module may import its own layer's
#: modules and any layer below, never one above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundations", ("weightsearch._registry", "weightsearch._params", "weightsearch.base",
                     "weightsearch.compat", "weightsearch.interrupts")),
    ("components", ("weightsearch.weighting", "weightsearch.losses", "weightsearch.models",
                    "weightsearch.metrics", "weightsearch.samplers", "weightsearch.pruners",
                    "weightsearch.plugins", "weightsearch.columns", "weightsearch.preprocessing")),
    ("services", ("weightsearch.tracking", "weightsearch.storage", "weightsearch.liveness",
                  "weightsearch.locks")),
    ("spec", ("weightsearch.spec",)),
    ("data", ("weightsearch.data",)),
    ("space", ("weightsearch.space",)),
    ("training", ("weightsearch.training", "weightsearch.stacking", "weightsearch.folds",
                  "weightsearch.callbacks", "weightsearch.artifacts")),
    ("objective", ("weightsearch.objective",)),
    ("study run", ("weightsearch.study",)),
    ("engines", ("weightsearch.engines",)),
    ("report, production, console", ("weightsearch.report", "weightsearch.production",
                                     "weightsearch.progress")),
    ("cli and Python API", ("weightsearch.cli", "weightsearch.__main__", "weightsearch.api")),
]
PACKAGE_INIT = "weightsearch"  # lazy re-exports of the production API; it sits outside


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import in the module."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                found.append((full if full in MODULES else base, a.name, node.lineno))
    return found


def _owner(target: str) -> str | None:
    """The package module an import resolves to, or None for a third-party one."""
    while target and target not in MODULES:
        target = target.rsplit(".", 1)[0] if "." in target else ""
    return target or None


GRAPH = {
    m: {o for t, _n, _l in _imports(m, p) if (o := _owner(t)) and o != m}
    for m, p in MODULES.items()
}


def _layer(module: str) -> int:
    for i, (_label, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{module} is in no layer of LAYERS (add it, and to the docs)")


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        if module != PACKAGE_INIT:
            _layer(module)


def test_no_import_cycle() -> None:
    seen: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(m: str, stack: list[str]) -> None:
        seen[m] = 1
        for n in sorted(GRAPH[m]):
            if seen.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack, m, n]))
            if n not in seen:
                visit(n, [*stack, m])
        seen[m] = 2

    for m in MODULES:
        if m not in seen:
            visit(m, [])


def test_each_layer_imports_only_its_own_and_lower_layers() -> None:
    wrong = []
    for m, deps in GRAPH.items():
        if m == PACKAGE_INIT:
            continue
        for d in deps:
            if d != PACKAGE_INIT and _layer(d) > _layer(m):
                wrong.append(f"{m} ({LAYERS[_layer(m)][0]}) imports {d} ({LAYERS[_layer(d)][0]})")
    assert not wrong, "\n".join(wrong)


def test_no_private_name_is_taken_across_modules() -> None:
    taken = [
        f"{MODULES[m].name}:{line} takes {n} from {o}"
        for m, p in MODULES.items()
        for t, n, line in _imports(m, p)
        if n and n.startswith("_") and not n.startswith("__")
        and (o := _owner(t)) and o != m
    ]
    assert not taken, "\n".join(taken)


def test_no_module_attribute_with_a_private_name_is_used_across_modules() -> None:
    """``module._name`` for a weightsearch module bound by ``import``/``from x import module``."""
    found = []
    for m, path in MODULES.items():
        tree = ast.parse(path.read_text())
        aliases = {}
        for t, n, _line in _imports(m, path):
            full = f"{t}.{n}" if n and f"{t}.{n}" in MODULES else t
            if full in MODULES and full != m:
                aliases[(n or t).split(".")[-1]] = full
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                found.append(f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_700_lines(module: str) -> None:
    assert len(MODULES[module].read_text().splitlines()) <= 700


def test_only_tracking_imports_mlflow() -> None:
    users = {m for m, p in MODULES.items() for t, _n, _l in _imports(m, p)
             if t == "mlflow" or t.startswith("mlflow.")}
    assert users and all(m == "weightsearch.tracking" or m.startswith("weightsearch.tracking.")
                         for m in users), users


def test_optuna_create_study_is_called_in_one_place() -> None:
    calls = []
    for m, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "create_study"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "optuna"):
                calls.append(m)
    assert calls == ["weightsearch.study"]


def test_the_architecture_doc_names_every_layer() -> None:
    doc = (ROOT.parent / "docs" / "architecture.md").read_text()
    for label, prefixes in LAYERS:
        assert label in doc, label
        for prefix in prefixes:
            assert prefix.removeprefix("weightsearch.") in doc, prefix
