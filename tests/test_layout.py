"""Layout of the two packages: imports point one way, form no cycle and keep private names private.

The import graph is read from the source with :mod:`ast` (nothing is imported): every ``import``
and ``from ... import`` statement of every module, at module level and inside functions, relative
or absolute. ``from pkg import name`` is an edge to ``pkg.name`` when that is a module; when
``pkg`` is a package whose ``__init__`` re-exports ``name`` from a submodule, the edge goes to the
module that defines it, so a submodule that imports a sibling's name through its package is no
false cycle with the ``__init__`` that imports both; otherwise the edge goes to ``pkg`` itself.
An ``__init__`` importing its own submodules is an edge downward; a cycle through an ``__init__``
needs a submodule that uses a name the ``__init__`` itself defines, which is a real cycle.

Rules:

(a) ``distributions`` imports nothing from ``manifold_vae``;
(b) no cycle: no strongly connected component of more than one module;
(c) a private name (a dotted path with a component ``_x``) is used only inside the package
    that holds it: ``distributions.circle`` may import ``distributions._series._log_winding``,
    but ``manifold_vae.ensemble`` may not import ``manifold_vae.training._helper`` (nor reach
    it as ``training._helper``), and ``manifold_vae`` may not import ``distributions._series``.
"""

from __future__ import annotations

import ast
import itertools
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("distributions", "manifold_vae")


@dataclass(frozen=True)
class Edge:
    """One import: ``source`` uses ``path`` (written form), resolved to the module ``target``."""

    source: str
    target: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line} -> {self.path}"


@dataclass
class Module:
    """A parsed source file: its dotted name, whether it is a package ``__init__``, its AST."""

    name: str
    is_package: bool
    tree: ast.Module

    @property
    def package(self) -> str:
        """The package that relative imports start from."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


def discover(root: Path, packages: tuple[str, ...]) -> dict[str, Module]:
    """Every module of the packages under ``root``, parsed: dotted name -> module."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            modules[name] = Module(name, is_package, tree)
    return modules


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.package.split(".")
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _raw_imports(module: Module) -> Iterator[tuple[str, str | None, str | None, int]]:
    """``(base, name, bound, line)`` of every import; ``name`` is None for ``import base``."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname if alias.asname else None
                yield alias.name, None, bound, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node)
            for alias in node.names:
                name = None if alias.name == "*" else alias.name
                yield base, name, alias.asname or alias.name, node.lineno


class ImportGraph:
    """The resolved imports among a set of modules."""

    def __init__(self, modules: dict[str, Module], packages: tuple[str, ...]) -> None:
        self.modules = modules
        self.packages = packages
        self.edges: list[Edge] = []
        self.private_uses: list[Edge] = []
        self._reexported: dict[str, dict[str, tuple[str, str]]] = {}
        for module in modules.values():
            self._read(module)

    def _in_project(self, dotted: str) -> bool:
        return dotted.split(".")[0] in self.packages

    def _reexports(self, package: str) -> dict[str, tuple[str, str]]:
        """Names an ``__init__`` imports at its top level: name -> (base, name)."""
        if package in self._reexported:
            return self._reexported[package]
        out = self._reexported[package] = {}
        module = self.modules[package]
        for node in module.tree.body:
            if isinstance(node, ast.ImportFrom):
                base = _absolute(module, node)
                for alias in node.names:
                    out[alias.asname or alias.name] = (base, alias.name)
        return out

    def resolve(self, base: str, name: str | None, seen: frozenset[str] = frozenset()) -> str:
        """The module that ``from base import name`` (or ``import base``) depends on."""
        if name is not None and f"{base}.{name}" in self.modules:
            return f"{base}.{name}"
        module = self.modules.get(base)
        if name is None or module is None or not module.is_package or base in seen:
            return base
        origin = self._reexports(base).get(name)
        if origin is None or not self._in_project(origin[0]):
            return base  # defined in the __init__ itself (or loaded lazily)
        return self.resolve(*origin, seen=seen | {base})

    def _read(self, module: Module) -> None:
        bound_modules: dict[str, str] = {}
        for base, name, bound, line in _raw_imports(module):
            if not self._in_project(base):
                continue
            target = self.resolve(base, name)
            path = base if name is None else f"{base}.{name}"
            edge = Edge(module.name, target, path, line)
            self.edges.append(edge)
            if _private_owner(path) is not None:
                self.private_uses.append(edge)
            if bound is not None and path in self.modules:
                bound_modules[bound] = path
        for node in ast.walk(module.tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound_modules
                and _is_private(node.attr)
            ):
                path = f"{bound_modules[node.value.id]}.{node.attr}"
                self.private_uses.append(Edge(module.name, path, path, node.lineno))

    def adjacency(self) -> dict[str, set[str]]:
        graph: dict[str, set[str]] = {name: set() for name in self.modules}
        for edge in self.edges:
            if edge.target in self.modules and edge.target != edge.source:
                graph[edge.source].add(edge.target)
        return graph


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_owner(path: str) -> str | None:
    """The package or module holding the first private component of ``path`` (None: public)."""
    parts = path.split(".")
    for i, part in enumerate(parts):
        if _is_private(part):
            return ".".join(parts[:i])
    return None


def _within(module: str, owner: str) -> bool:
    return module == owner or module.startswith(owner + ".")


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one node, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def cycle_in(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One cycle through the first module of a strongly connected component."""
    members, start = set(component), component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:  # breadth first: the shortest cycle back to ``start``
        following = []
        for node in frontier:
            for succ in sorted(graph[node] & members):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if succ not in parents:
                    parents[succ] = node
                    following.append(succ)
        frontier = following
    raise AssertionError(f"{component} is not strongly connected")


def cycle_report(graph_: ImportGraph) -> list[str]:
    """Per cycle: the modules in order and the import statements that close it."""
    graph = graph_.adjacency()
    lines = []
    for component in strongly_connected(graph):
        cycle = cycle_in(component, graph)
        lines.append(" -> ".join(cycle))
        for a, b in itertools.pairwise(cycle):
            lines += [f"    {e}" for e in graph_.edges if e.source == a and e.target == b]
    return lines


def private_offenders(graph: ImportGraph) -> list[str]:
    """Uses of a private name outside the package or module that holds it."""
    return sorted(
        {
            str(edge)
            for edge in graph.private_uses
            if not _within(edge.source, _private_owner(edge.path) or "")
        }
    )


def upward_imports(graph: ImportGraph, lower: str, upper: str) -> list[str]:
    """Imports of the package ``upper`` by modules of the package ``lower``."""
    return sorted(
        str(e) for e in graph.edges if _within(e.source, lower) and _within(e.path, upper)
    )


# ---------------------------------------------------------------------------------------------
# The project


@pytest.fixture(scope="module")
def project() -> ImportGraph:
    return ImportGraph(discover(ROOT, PACKAGES), PACKAGES)


def test_the_graph_sees_the_project(project):
    assert {"distributions.circle", "manifold_vae.vae", "manifold_vae.datasets"} <= set(
        project.modules
    )
    # a name re-exported by a package __init__ resolves to the module that defines it
    assert project.resolve("distributions", "CircleHeatKernel") == "distributions.circle"
    assert project.resolve("distributions", "angles") == "distributions.angles"
    assert project.resolve("manifold_vae", "__version__") == "manifold_vae"


def test_distributions_does_not_import_manifold_vae(project):
    offenders = upward_imports(project, "distributions", "manifold_vae")
    assert not offenders, "distributions imports manifold_vae:\n" + "\n".join(offenders)


def test_no_import_cycle(project):
    report = cycle_report(project)
    assert not report, "import cycles:\n" + "\n".join(report)


def test_no_private_name_is_used_outside_its_package(project):
    offenders = private_offenders(project)
    assert not offenders, "private names used outside their package:\n" + "\n".join(offenders)


# ---------------------------------------------------------------------------------------------
# The rules themselves, on a small package written for them


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def _toy(tmp_path: Path, files: dict[str, str]) -> ImportGraph:
    _write(tmp_path, {"low/__init__.py": "", "top/__init__.py": "", **files})
    return ImportGraph(discover(tmp_path, ("low", "top")), ("low", "top"))


def test_a_reexport_through_an_init_is_no_cycle(tmp_path):
    graph = _toy(
        tmp_path,
        {
            "top/sub/__init__.py": "from .a import A\nfrom .b import B\n",
            "top/sub/a.py": "A = 1\n",
            "top/sub/b.py": "from . import A\n\ndef f():\n    from ..sub import A\n",
        },
    )
    assert {e.target for e in graph.edges if e.source == "top.sub.b"} == {"top.sub.a"}
    assert cycle_report(graph) == []


def test_a_cycle_is_found_with_its_imports(tmp_path):
    graph = _toy(
        tmp_path,
        {
            "top/a.py": "from .b import g\n\ndef f():\n    return g()\n",
            "top/b.py": "def g():\n    from . import a\n    return a\n",
            "top/c.py": "from top import a\n",
        },
    )
    assert cycle_report(graph) == [
        "top.a -> top.b -> top.a",
        "    top.a:1 -> top.b.g",
        "    top.b:2 -> top.a",
    ]


def test_a_name_defined_in_an_init_that_imports_the_user_is_a_cycle(tmp_path):
    graph = _toy(
        tmp_path,
        {"top/__init__.py": "from .a import f\nX = 1\n", "top/a.py": "from . import X\n"},
    )
    assert cycle_report(graph)[0] == "top -> top.a -> top"


def test_private_names_stay_in_their_package(tmp_path):
    graph = _toy(
        tmp_path,
        {
            "low/_series.py": "def _fast():\n    pass\n\ndef series():\n    pass\n",
            "low/circle.py": "from ._series import _fast, series\n",
            "top/training.py": "def _step():\n    pass\n",
            "top/ensemble.py": "from .training import _step\nfrom . import training\n"
            "training._step()\n",
            "top/bench.py": "from low._series import series\n",
            "top/sub/__init__.py": "",
            "top/sub/x.py": "from .._geo import load\n",
            "top/_geo.py": "def load():\n    pass\n",
            "low/up.py": "def f():\n    import top.training\n",
        },
    )
    assert private_offenders(graph) == [
        "top.bench:1 -> low._series.series",
        "top.ensemble:1 -> top.training._step",
        "top.ensemble:3 -> top.training._step",
    ]
    assert upward_imports(graph, "low", "top") == ["low.up:2 -> top.training"]
    assert upward_imports(graph, "top", "low") == ["top.bench:1 -> low._series.series"]
