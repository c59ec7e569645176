"""The layers of ``ml/``: serving (the modules directly in ``ml/``) imports neither training
(``ml.training``) nor packaging (``ml.packaging``); packaging never imports training (training
packages what it trains, with packaging's compilers); and no two modules of ``ml/`` import
each other, directly or round a longer loop."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from tests.helpers import ROOT, run_python

ML = ROOT / "ml"
SERVING = sorted(f"ml.{path.stem}" for path in ML.glob("*.py") if path.stem != "__init__")
TORCH_SERVING = {"ml.audio_cnn", "ml.torch_audio_runtime"}
"""The serving modules of the CNN, which import torch as they are imported."""
OFFLINE = ("ml.training", "ml.packaging")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Every module an import statement of ``path`` names, wherever the statement is (in a
    function, under ``TYPE_CHECKING``): lazy imports are imports too."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # ``from ml import features`` imports the module ml.features.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def ml_import_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in ML.rglob("*.py")}
    return {
        name: (imported_names(path) & modules.keys()) - {name} for name, path in modules.items()
    }


def in_layer(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


def test_serving_modules_never_name_training_or_packaging() -> None:
    graph = ml_import_graph()

    wrong = {
        module: sorted(
            name for name in graph[module] if any(in_layer(name, layer) for layer in OFFLINE)
        )
        for module in SERVING
    }

    assert {module: names for module, names in wrong.items() if names} == {}


def test_packaging_does_not_import_training() -> None:
    graph = ml_import_graph()

    wrong = {
        module: sorted(n for n in names if in_layer(n, "ml.training"))
        for module, names in graph.items()
        if in_layer(module, "ml.packaging")
    }

    assert {module: names for module, names in wrong.items() if names} == {}


def test_no_import_cycle_in_ml() -> None:
    graph = ml_import_graph()
    cycles = []
    # Tarjan's strongly connected components: a component of two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for name in sorted(graph[module]):
            if name not in index:
                visit(name)
                low[module] = min(low[module], low[name])
            elif name in stack:
                low[module] = min(low[module], index[name])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)

    assert cycles == []


_PROGRAM = """
import importlib, json, sys

found = {}
for module, forbidden in json.loads(sys.argv[1]):
    before = set(sys.modules)
    importlib.import_module(module)
    new = set(sys.modules) - before
    # The forbidden packages this import brought in (itself or through what it imports).
    found[module] = sorted({f for f in forbidden
                            if any(m == f or m.startswith(f + ".") for m in new)})
print(json.dumps(found))
"""


def test_importing_each_serving_module_imports_no_training_packaging_or_sklearn() -> None:
    # One fresh interpreter imports them in turn, the torch modules last, so that torch is
    # not yet there while the others are checked for it.
    plan = [
        (module, [*OFFLINE, "sklearn", *([] if module in TORCH_SERVING else ["torch"])])
        for module in sorted(SERVING, key=lambda module: module in TORCH_SERVING)
    ]

    found = run_python(_PROGRAM, json.dumps(plan))

    assert list(found) == [module for module, _ in plan]
    assert {module: names for module, names in found.items() if names} == {}
