"""The package's import graph: no cycles, no core module importing a feature package, every module imports.

The graph is read from the source with ``ast``: every ``import`` and ``from ... import`` of a
``curate`` module, at the top of a file or inside a function (a function-level import is still a
dependency, only a later one). Core modules are the files directly in ``curate/``; feature
packages are its sub-packages (one per stage). ``curate.cli``, the ``curate`` command, is the one
core module allowed to import the features: it assembles their commands, and nothing in the
package imports it.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "curate"
ENTRY_POINT = "curate.cli"


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package is its ``__init__.py``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()
FEATURES = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
CORE = sorted(name for name, path in MODULES.items() if path.parent == PACKAGE)


def _resolve(name: str) -> str | None:
    """The module ``name`` refers to (``curate.a.b.func`` -> ``curate.a.b``); None outside the package."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, source: str | None = None) -> list[tuple[str, int]]:
    """(imported curate module, line) of every import statement in ``module`` (its file, or ``source``),
    function-level ones included."""
    path = MODULES.get(module, PACKAGE / "__snippet__.py")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    source = path.read_text(encoding="utf-8") if source is None else source
    found = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from ..a import b
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [f"{origin}.{alias.name}" for alias in node.names]  # a submodule, or a name in origin
        else:
            continue
        for target in targets:
            resolved = _resolve(target) if target.split(".")[0] == "curate" else None
            if resolved is not None and resolved != module:
                found.append((resolved, node.lineno))
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def _feature(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FEATURES else None


def _cycles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w, _ in graph[v]:
            if w not in index:
                visit(w)
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
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_package_and_every_kind_of_import():
    assert {"curate.workspace", "curate.errors", "curate.cli", "curate.audit.registry"} <= set(MODULES)
    assert {"audit", "dedupe", "ingest", "mislabel", "split", "train"} <= set(FEATURES)
    assert "curate.workspace" in CORE and "curate.split.api" not in CORE
    snippet = ("import numpy\nimport curate.errors\nfrom curate.workspace import Workspace\n"
               "def f():\n    from curate.split import store\n    from . import findings\n"
               "    from .dedupe.api import dedupe\n")
    assert sorted(_imports("curate.snippet", snippet), key=lambda t: t[1]) == [("curate.errors", 2), ("curate.workspace", 3),
                                                   ("curate.split.store", 5), ("curate.findings", 6),
                                                   ("curate.dedupe.api", 7)]
    assert _cycles({"a": [("b", 1)], "b": [("c", 2)], "c": [("a", 3)], "d": [("a", 4)]}) == [["a", "b", "c"]]


def test_no_import_cycles():
    problems = []
    for component in _cycles(GRAPH):
        members = set(component)
        edges = [f"  {MODULES[m].relative_to(PACKAGE.parent)}:{line} imports {target}"
                 for m in component for target, line in sorted(GRAPH[m]) if target in members]
        problems.append(f"cycle between {', '.join(component)}:\n" + "\n".join(edges))
    assert not problems, "\n".join(problems)


def test_core_modules_import_no_feature_package():
    problems = [f"{MODULES[m].relative_to(PACKAGE.parent)}:{line} imports {target} (feature package "
                f"{_feature(target)!r}); move the code into the feature package or pass it in"
                for m in CORE if m != ENTRY_POINT for target, line in GRAPH[m] if _feature(target)]
    assert not problems, "\n".join(problems)
    importers = [m for m, deps in GRAPH.items() if ENTRY_POINT in {t for t, _ in deps}]
    assert not importers, f"{ENTRY_POINT} assembles the commands; nothing in the package may import it: {importers}"


@pytest.mark.slow
def test_every_module_imports_first_in_a_fresh_interpreter():
    """Each module is imported as the first ``curate`` module of the process (the others dropped
    from ``sys.modules`` before it), so an import that only works after another module is caught."""
    script = (
        "import importlib, json, sys, traceback\n"
        "failed = {}\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    for loaded in [m for m in sys.modules if m == 'curate' or m.startswith('curate.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except BaseException:\n"
        "        failed[name] = traceback.format_exc(limit=-3)\n"
        "print(json.dumps(failed))\n"
    )
    names = sorted(MODULES)
    done = subprocess.run([sys.executable, "-c", script, json.dumps(names)], cwd=PACKAGE.parent,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    failed = json.loads(done.stdout.strip().splitlines()[-1])
    assert not failed, "\n".join(f"{name}:\n{trace}" for name, trace in failed.items())
