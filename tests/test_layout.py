"""The layout keeps its promises: layer contracts (import-linter), no import cycles (function-local and
``TYPE_CHECKING`` imports count), and no ``_private`` name taken from another module."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PACKAGES = ("hrnet_core", "analysis", "app")
# Private modules of other projects that are their documented extension point (nothing public offers it).
ALLOWED_PRIVATE = {
    "torch.utils._python_dispatch": "TorchDispatchMode, PyTorch's documented way to see every ATen call",
}


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            mods[".".join(parts)] = path
    return mods


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def scan() -> tuple[dict[str, set[str]], list[str]]:
    """``(edges, private)``: every project module's imports of project modules anywhere in the file, and each
    ``_private`` name (or ``_private`` module) it imports or reads from an imported module."""
    mods = _modules()
    edges: dict[str, set[str]] = {}
    private: list[str] = []
    for module, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        out = edges.setdefault(module, set())
        bound: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in mods:
                        out.add(a.name)
                    bound[(a.asname or a.name).split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
                    if any(_private(p) for p in a.name.split(".")):
                        private.append(f"{module}: import {a.name}")
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(module, path, node)
                if any(_private(p) for p in source.split(".")) and source not in ALLOWED_PRIVATE:
                    private.append(f"{module}: from {source}")
                for a in node.names:
                    sub = f"{source}.{a.name}"
                    if sub in mods:
                        out.add(sub)
                        bound[a.asname or a.name] = sub
                    elif source in mods:
                        out.add(source)
                    if _private(a.name):
                        private.append(f"{module}: from {source} import {a.name}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                    and node.value.id in bound):
                private.append(f"{module}: {bound[node.value.id]}.{node.attr}")
    return edges, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_scan_sees_function_local_imports_and_cycles():
    # The scanner itself: a cycle through a function-local import is found, a private name is reported.
    edges = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert cycles(edges) == [["a", "b"]]
    scanned, _ = scan()
    assert "analysis.complexity.analytic" in scanned["analysis.complexity"]
    assert scanned["analysis.cli.entry"], "the CLI's imports were not seen"


def test_no_import_cycles():
    edges, _ = scan()
    assert cycles(edges) == []


def test_no_private_name_from_another_module():
    _, private = scan()
    assert private == []


def test_import_contracts():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is not installed (pip install '.[dev]')"
    proc = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    summary = [line for line in proc.stdout.splitlines() if line.startswith("Contracts:")]
    assert summary and " 0 broken" in summary[0], proc.stdout[-4000:]
