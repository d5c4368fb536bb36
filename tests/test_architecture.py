"""The shape of the package: a light core, and a public API that changes only on purpose."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import simkit

CORE = [
    "simkit",
    "simkit.rules",
    "simkit.population",
    "simkit.events",
    "simkit.results",
    "simkit.engine",
    "simkit.errors",
    "simkit.schema",
]
OPTIONAL_CORE = ["simkit.columnar", "simkit.scenario", "simkit.generate"]
HEAVY = ("pandas", "matplotlib", "networkx")


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return set(out.split())


@pytest.mark.parametrize("module", CORE + OPTIONAL_CORE)
def test_core_does_not_load_frames_graphs_or_charts(module: str) -> None:
    if module in OPTIONAL_CORE:
        pytest.importorskip(module)
    loaded = _modules_after_import(module)
    assert not [name for name in HEAVY if name in loaded]


def test_public_api_is_pinned() -> None:
    assert sorted(simkit.__all__) == [
        "Action",
        "Answer",
        "Connections",
        "DEFAULT_ENGINE",
        "ENGINES",
        "Engine",
        "Events",
        "InputError",
        "Outcomes",
        "Pod",
        "Policy",
        "Population",
        "Reason",
        "Replay",
        "Run",
        "RunDirError",
        "Scenario",
        "ScenarioError",
        "SimkitError",
        "Status",
        "User",
        "UserConnection",
        "__version__",
        "compare",
        "load_scenario",
        "read_run",
        "replay",
        "replay_run",
        "simulate",
        "sweep",
    ]


def test_every_public_module_declares_all() -> None:
    import pkgutil

    for info in pkgutil.iter_modules(simkit.__path__):
        module = __import__(f"simkit.{info.name}", fromlist=["__all__"])
        assert hasattr(module, "__all__"), info.name
        assert module.__doc__, info.name


# -- the import graph, read from the source -------------------------------------------------------

PACKAGE = Path(simkit.__file__).resolve().parent

# Layers, lowest first: a module imports only from its own layer or lower ones (STYLE.md,
# "Dependency direction"). The package root only re-exports and is left out.
LAYERS: list[set[str]] = [
    {
        "simkit.version",
        "simkit.errors",
        "simkit.memory",
        "simkit.blocks",
        "simkit.rules",
        "simkit.schema",
        "simkit.seeds",
    },
    {"simkit.population", "simkit.events", "simkit.results", "simkit.scenario"},
    {"simkit.engine", "simkit.columnar", "simkit.engines", "simkit.generate", "simkit.metrics"},
    {"simkit.io", "simkit.io.atomic", "simkit.io.commit", "simkit.io.datafeed", "simkit.io.runs"},
    {"simkit.pipeline"},
    {
        "simkit.analysis",
        "simkit.comparison",
        "simkit.drawing",
        "simkit.graph",
        "simkit.plots",
        "simkit.report",
        "simkit.serve",
        "simkit.serve.app",
        "simkit.serve.bdk",
        "simkit.serve.clock",
        "simkit.serve.feeds",
        "simkit.serve.openapi",
        "simkit.serve.pod",
        "simkit.serve.server",
        "simkit.serve.sessions",
        "simkit.serve.wire",
        "simkit.sweeps",
    },
    {"simkit.cli", "simkit.__main__"},
]
# The core: plain Python and numpy, whatever is imported where (functions included).
CORE_MODULES = set().union(*LAYERS[:3])
FORBIDDEN_IN_CORE = ("pandas", "matplotlib", "networkx", "pyarrow")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.Module, *, top_level: bool) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for each import; top-level ones only if asked."""
    found: list[tuple[str, list[str], int]] = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt) and _is_type_checking(child):
                continue
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import) and not (top_level and inner):
                found.extend((alias.name, [], child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not (top_level and inner):
                found.append((child.module, [a.name for a in child.names], child.lineno))
            visit(child, inner)

    visit(tree, False)
    return found


def _internal(target: str, modules: dict[str, ast.Module]) -> str | None:
    """The simkit module that an import of `target` loads, or None outside simkit."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def test_nothing_inside_the_package_imports_the_package_root() -> None:
    modules = _modules()
    bad = [
        f"{name}:{line} imports {target}"
        for name, tree in modules.items()
        if name != "simkit"
        for target, _names, line in _imports(tree, top_level=False)
        if target == "simkit"
    ]
    assert bad == []


def test_no_module_imports_another_modules_private_name() -> None:
    modules = _modules()
    bad = [
        f"{name}:{line} imports {target}.{n}"
        for name, tree in modules.items()
        for target, names, line in _imports(tree, top_level=False)
        if target.startswith("simkit") and target != name
        for n in names
        if n.startswith("_") and not n.startswith("__")
    ]
    bad += [
        f"{name}:{line} imports private module {target}"
        for name, tree in modules.items()
        for target, _names, line in _imports(tree, top_level=False)
        if any(part.startswith("_") and not part.startswith("__") for part in target.split("."))
        and target.startswith("simkit")
    ]
    assert bad == []


def test_the_core_never_imports_frames_graphs_charts_or_arrow() -> None:
    modules = _modules()
    assert set(modules) >= CORE_MODULES, sorted(CORE_MODULES - set(modules))
    bad = [
        f"{name}:{line} imports {target}"
        for name in sorted(CORE_MODULES)
        for target, _names, line in _imports(modules[name], top_level=False)
        if target.split(".")[0] in FORBIDDEN_IN_CORE
    ]
    assert bad == []


def test_imports_point_down_the_layers() -> None:
    modules = _modules()
    layer_of = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    assert set(modules) - {"simkit"} == set(layer_of), "every module belongs to a layer"
    bad = [
        f"{name} (layer {layer_of[name]}) imports {dep} (layer {layer_of[dep]})"
        for name, tree in modules.items()
        if name != "simkit"
        for target, _names, _line in _imports(tree, top_level=False)
        if (dep := _internal(target, modules)) not in (None, "simkit", name)
        and layer_of[dep] > layer_of[name]
    ]
    assert bad == []


def test_there_is_no_import_cycle() -> None:
    modules = _modules()
    graph = {
        name: sorted(
            {
                dep
                for target, _names, _line in _imports(tree, top_level=True)
                if (dep := _internal(target, modules)) not in (None, name)
            }
        )
        for name, tree in modules.items()
    }
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in graph[node]:
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*path[path.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ("from simkit import Engine\n", test_nothing_inside_the_package_imports_the_package_root),
        ("from simkit.engine import _step\n", test_no_module_imports_another_modules_private_name),
        ("import pandas\n", test_the_core_never_imports_frames_graphs_charts_or_arrow),
        ("from simkit.cli import main\n", test_imports_point_down_the_layers),
    ],
)
def test_each_scan_catches_what_it_looks_for(
    source: str, rule: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _modules()

    def planted() -> dict[str, ast.Module]:
        modules = dict(real)
        modules["simkit.rules"] = ast.parse(source + ast.unparse(real["simkit.rules"]))
        return modules

    monkeypatch.setattr(sys.modules[__name__], "_modules", planted)
    with pytest.raises(AssertionError):
        rule()


def test_the_cycle_scan_catches_a_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _modules()

    def planted() -> dict[str, ast.Module]:
        modules = dict(real)
        modules["simkit.rules"] = ast.parse("import simkit.events\n" + ast.unparse(real["simkit.rules"]))
        return modules

    monkeypatch.setattr(sys.modules[__name__], "_modules", planted)
    with pytest.raises(AssertionError, match=r"simkit\.rules"):
        test_there_is_no_import_cycle()
