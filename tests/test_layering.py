"""The layering of the package, read from its source (no imports run): data flows frontend ->
IR -> passes -> backend -> runtime, so the compiler imports no frontend, backend or runtime
module, the IR imports nothing outside itself, no backend imports another backend or the
CLI/API, and no two modules import each other, directly or through others."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# the distribution's package layout (pyproject.toml: package-dir)
PACKAGES = {"snnc": ROOT / "snnc", "snnc.compiler": ROOT / "compiler",
            "snnc.frontends": ROOT / "frontends", "snnc.backends": ROOT / "backends",
            "snnc.runtime": ROOT / "runtime"}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join((package, *parts))
            if not any(name.startswith(other + ".") and other != package
                       for other in PACKAGES if other.startswith(package + ".")):
                found[name] = path
    return found


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")
    base = base[:len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, top_level_only: bool) -> set[str]:
    """The snnc modules that `module` imports (with top_level_only, only those its body
    imports when it is imported, not inside functions; never those under TYPE_CHECKING,
    which are for the type checker only)."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    found: set[str] = set()

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                 ast.Lambda))
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if not (top_level_only and inner):
                names: list[str] = []
                if isinstance(child, ast.Import):
                    names = [a.name for a in child.names]
                elif isinstance(child, ast.ImportFrom):
                    target = _resolve(module, child)
                    names = [target] + [f"{target}.{a.name}" for a in child.names]
                for name in names:
                    while name and name not in MODULES:
                        name = name.rpartition(".")[0]
                    if name.startswith("snnc") and name != module:
                        found.add(name)
            visit(child, inner)

    visit(tree, False)
    return found


def _violations(rule: str, sources: str, banned: tuple[str, ...],
                allowed: tuple[str, ...] = ()) -> list[str]:
    bad = []
    for module in MODULES:
        if module != sources and not module.startswith(sources + "."):
            continue
        for target in _imports(module, top_level_only=False):
            if any(target == b or target.startswith(b + ".") for b in banned) and not any(
                    target == a or target.startswith(a + ".") for a in allowed):
                bad.append(f"{module} imports {target} ({rule})")
    return bad


def test_the_scan_sees_the_package() -> None:
    assert {"snnc.api", "snnc.compiler.ir.graph", "snnc.backends.numpy.simulator",
            "snnc.frontends.onnx.importer", "snnc.runtime.network"} <= set(MODULES)
    assert "snnc.compiler.ir.graph" in _imports("snnc.compiler.ir.printer", True) \
        or "snnc.compiler.ir" in _imports("snnc.compiler.ir.printer", True)


def test_the_ir_imports_nothing_above_it() -> None:
    """The IR and its op definitions (compiler/ops, the dialect its verifier and printer
    read) are the bottom layer."""
    assert _violations("the IR is the bottom layer", "snnc.compiler.ir", ("snnc",),
                       ("snnc.compiler.ir", "snnc.compiler.ops", "snnc.compiler.errors")) == []


def test_importing_the_ir_loads_no_frontend_backend_or_runtime() -> None:
    code = ("import sys, snnc.compiler.ir.graph, snnc.compiler.ir; print(' '.join(m for m in "
            "sys.modules if m.startswith('snnc')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    loaded = done.stdout.split()
    assert "snnc.compiler.ir.graph" in loaded
    assert [m for m in loaded if m.split(".")[1:2] and m.split(".")[1] in (
        "frontends", "backends", "runtime", "api", "cli")] == []


def test_the_compiler_imports_no_frontend_backend_runtime_or_api() -> None:
    assert _violations("the compiler knows no frontend, backend or runtime",
                       "snnc.compiler", ("snnc",), ("snnc.compiler", "snnc.version")) == []


def test_frontends_import_only_the_compiler() -> None:
    assert _violations("a frontend produces IR and nothing else", "snnc.frontends",
                       ("snnc.backends", "snnc.runtime", "snnc.api", "snnc.cli")) == []


@pytest.mark.parametrize("backend", sorted(
    m for m in MODULES if m.count(".") == 2 and m.startswith("snnc.backends.")))
def test_no_backend_imports_another_backend_or_the_cli(backend: str) -> None:
    others = tuple(m for m in MODULES if m.count(".") == 2
                   and m.startswith("snnc.backends.") and m != backend)
    assert _violations("backends are independent", backend,
                       (*others, "snnc.cli", "snnc.api", "snnc.evaluate")) == []


def test_no_import_cycles() -> None:
    """Cycles among the imports that run at import time (a function-level import that
    closes a cycle is reported too: it is the same dependency, only deferred)."""
    graph = {m: _imports(m, top_level_only=False) for m in MODULES}
    # a package's __init__ re-exporting its own submodules is not a cycle
    for module, targets in graph.items():
        graph[module] = {t for t in targets if not module.startswith(t + ".")}
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in index:
            connect(module)
    assert cycles == []


def test_no_test_imports_benchmarks() -> None:
    """The tests import the package and tests/ only, never benchmarks/: neither by a module
    that only benchmarks/ has nor by putting a benchmarks folder on sys.path."""
    tests = ROOT / "tests"
    ours = [p for p in (ROOT / "benchmarks").rglob("*.py")  # not in a .venv of theirs
            if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)]
    only_there = {p.stem for p in ours} - {p.stem for p in tests.glob("*.py")}
    found = []
    for path in sorted(tests.glob("*.py")):
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                names = []
            found += [f"{path.name}: import {name}" for name in names
                      if name.split(".")[0] in only_there | {"benchmarks"}]
            if (isinstance(node, ast.Call) and "sys.path" in ast.unparse(node.func)
                    and "benchmarks" in ast.unparse(node)):
                found.append(f"{path.name}: {ast.unparse(node)}")
    assert found == []
