"""No import cycles among the project's own modules.

Every ``import`` and ``from ... import`` of every module of the project's packages is read with ``ast`` (top-level and
inside functions alike: a deferred import still ties two modules together), resolved to the module it names
(``from a.b import c`` is ``a.b.c`` when that is a module, else ``a.b``), and the graph of the project's own modules is
searched for strongly connected components. The implicit import of a module's parent packages is not an edge:
every module would otherwise sit in a cycle with a package ``__init__`` that names one of its children.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The project's packages: every top-level folder with an ``__init__.py`` (the wheel ships the same set).
PACKAGES = tuple(sorted(path.parent.name for path in ROOT.glob("*/__init__.py")))


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` file under the given package folders."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_modules(module: str, path: Path, modules: set[str] | dict[str, Path]) -> set[str]:
    """The modules among ``modules`` that the import statements of ``module`` (source ``path``) name, relative
    imports resolved: ``import a.b`` names ``a.b``; ``from a import b`` names ``a.b`` when that is a module, else
    ``a``."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                names.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {name for name in names if name in modules and name != module}


def module_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    return {module: imported_modules(module, path, files) for module, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a closed path, first module repeated at the end) per strongly connected component of more than one
    module (Tarjan's algorithm), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(_closed_path(graph, component) for component in components)


def _closed_path(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the first module (by name) of a strongly connected component (breadth first)."""
    start = min(component)
    parent = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    path = [v]
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if w not in parent:
                    parent[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"{sorted(component)} is not strongly connected")


# Cycles known and left for now, each as the set of its modules (none: the last one, rlpr.reporting <->
# cpu_backend.real_stack, went when the smoke command moved to cpu_backend.smoke and the tables to harness.reporting).
KNOWN_CYCLES: tuple[frozenset[str], ...] = ()


def test_the_project_has_no_import_cycles():
    found = [c for c in cycles(module_graph(module_files(ROOT, PACKAGES))) if frozenset(c) not in KNOWN_CYCLES]
    assert not found, "import cycles among the project's modules:\n" + "\n".join(" -> ".join(c) for c in found)


@pytest.mark.parametrize("known", KNOWN_CYCLES, ids=lambda c: "-".join(sorted(c)))
def test_each_known_cycle_is_still_there(known):
    found = [frozenset(c) for c in cycles(module_graph(module_files(ROOT, PACKAGES)))]
    assert known in found, f"the cycle among {sorted(known)} is gone (or changed): remove it from KNOWN_CYCLES"


# --------------------------------------------------------------------------------------------------------------------
# The detector itself, on small made-up packages


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_deferred_import_closes_a_cycle(tmp_path):
    _write(
        tmp_path,
        {
            "p/__init__.py": "",
            "p/a.py": "from p.b import g\n",
            "p/b.py": "def g():\n    from p import c\n",
            "p/c.py": "import p.a\n",
            "p/d.py": "import p.a\n",
        },
    )
    graph = module_graph(module_files(tmp_path, ("p",)))
    assert graph == {"p": set(), "p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert cycles(graph) == [["p.a", "p.b", "p.c", "p.a"]]


def test_relative_imports_resolve_and_parent_packages_are_no_edge(tmp_path):
    _write(
        tmp_path,
        {
            "p/__init__.py": "from .q import x\n",
            "p/q/__init__.py": "from . import r\nfrom .r import y as x\n",
            "p/q/r.py": "from .. import s\nfrom ..s import z\n",
            "p/s.py": "import os\nimport p.q.r as r2\n",
        },
    )
    graph = module_graph(module_files(tmp_path, ("p",)))
    assert graph == {"p": {"p.q"}, "p.q": {"p.q.r"}, "p.q.r": {"p.s"}, "p.s": {"p.q.r"}}
    assert cycles(graph) == [["p.q.r", "p.s", "p.q.r"]]


def test_two_packages_and_no_cycle(tmp_path):
    _write(
        tmp_path,
        {"p/__init__.py": "", "p/a.py": "import q.b\n", "q/__init__.py": "import p.a\n", "q/b.py": "import json\n"},
    )
    graph = module_graph(module_files(tmp_path, ("p", "q")))
    assert graph == {"p": set(), "p.a": {"q.b"}, "q": {"p.a"}, "q.b": set()}
    assert cycles(graph) == []


def test_the_packages_read_are_those_the_wheel_ships():
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert set(PACKAGES) == set(pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    files = module_files(ROOT, PACKAGES)
    assert all(any(name.startswith(package + ".") for name in files) for package in PACKAGES)
