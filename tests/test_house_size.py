"""House sizes and the import graph, read from the source with ``ast`` so they stay true.

1. No module under ``service/`` or ``worker/`` is over 300 lines.
2. No function (or method, or nested function) there is over 80 lines, from its ``def`` line to its last line.
3. No import cycle among the first-party modules (``service.*``, ``worker.*``). Every import statement counts:
   module-level, function-local and ``if TYPE_CHECKING:`` ones alike, since each hides a real dependency.
   ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``.

The size tests run once per folder, so a failure names the folder that broke the rule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("service", "worker")
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 80


@cache
def _sources() -> dict[str, Path]:
    """Dotted module name → file, for every .py under the first-party packages (a package is its __init__)."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _folders() -> list[str]:
    return sorted({p.parent.relative_to(ROOT).as_posix() for p in _sources().values()})


def _files_in(folder: str) -> list[Path]:
    return [p for p in _sources().values() if p.parent.relative_to(ROOT).as_posix() == folder]


def long_functions(tree: ast.AST, limit: int = MAX_FUNCTION_LINES) -> Iterator[tuple[int, str, int]]:
    """(line, qualified name, length) of every function longer than ``limit`` lines, nested ones included."""

    def visit(node: ast.AST, prefix: str) -> Iterator[tuple[int, str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    length = (child.end_lineno or child.lineno) - child.lineno + 1
                    if length > limit:
                        yield child.lineno, name, length
                yield from visit(child, name + ".")
            else:
                yield from visit(child, prefix)

    yield from visit(tree, "")


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names (relative imports resolved against ``module``)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _known(name: str, known: Mapping[str, Path] | set[str]) -> str | None:
    """``name`` or its longest prefix that is a first-party module; None for third-party names."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in known:
            return candidate
    return None


def imports_of(module: str, tree: ast.AST, is_package: bool, known: Mapping[str, Path] | set[str]) -> set[str]:
    """First-party modules that ``module`` imports anywhere in its source."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [_known(alias.name, known) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node)
            targets = [_known(f"{base}.{alias.name}", known) or _known(base, known) for alias in node.names]
        else:
            continue
        out.update(t for t in targets if t and t != module)
    return out


def import_graph() -> dict[str, set[str]]:
    sources = _sources()
    return {name: imports_of(name, _tree(path), path.name == "__init__.py", sources) for name, path in sources.items()}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle (a → … → a) per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_a_cycle(graph, set(c), c[0]) for c in sorted(components)]


def _a_cycle(graph: Mapping[str, set[str]], component: set[str], start: str) -> list[str]:
    """The shortest path start → … → start inside ``component`` (breadth first)."""
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start]
                if w not in parent:
                    parent[w] = v
                    following.append(w)
        frontier = following
    return [start]


@pytest.mark.parametrize("folder", _folders())
def test_no_module_is_over_300_lines(folder: str) -> None:
    big = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for p in _files_in(folder)
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert not big, f"modules over {MAX_MODULE_LINES} lines (split by responsibility):\n" + "\n".join(big)


@pytest.mark.parametrize("folder", _folders())
def test_no_function_is_over_80_lines(folder: str) -> None:
    long = [
        f"{p.relative_to(ROOT)}:{line} {name}: {n} lines"
        for p in _files_in(folder)
        for line, name, n in long_functions(_tree(p))
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (extract steps):\n" + "\n".join(long)


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles among first-party modules (make the arrow one-way):\n" + "\n".join(
        " → ".join(c) for c in found
    )


def test_the_detectors_see_what_they_should() -> None:
    """Guard the guards: a long function, relative and function-local imports, and a cycle are all found."""
    source = "def short():\n    pass\n\nclass A:\n    def long(self):\n" + "        x = 1\n" * 80
    assert [(line, name, n) for line, name, n in long_functions(ast.parse(source))] == [(5, "A.long", 81)]

    known = {"worker", "worker.a", "worker.a.b", "worker.a.c", "service.x"}
    tree = ast.parse(
        "from . import c\nfrom .c import thing\nfrom .. import a\nimport numpy\n"
        "def f():\n    from service.x import y\n    import worker.a.c.deep\n"
        "if TYPE_CHECKING:\n    from worker import a\n"
    )
    assert imports_of("worker.a.b", tree, False, known) == {"worker.a.c", "worker.a", "service.x"}
    assert imports_of("worker.a", ast.parse("from . import b\n"), True, known) == {"worker.a.b"}

    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"x": {"y"}, "y": set()}) == []
