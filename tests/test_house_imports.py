"""The house rules, read from the source with ``ast`` so they stay true (DESIGN.md "Layout: the target house").

1. Arrows go one way: ``service/`` never imports ``worker/`` (the CLI's composition root ``service/cli.py`` aside).
2. SQL lives in ``repository.py`` files (and ``service/db.py``, the keyset helper ``service/pagination.py``,
   migrations): ``select(``/``update(``/``insert(``/``delete(``, ``Row.__table__``, and ``session.add`` & co.
3. No import cycles between modules (module-level imports; a package importing its own submodules is not one).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("service", "worker")
COMPOSITION_ROOT = "service/cli.py"
SQL_HOMES = ("service/db.py", "service/pagination.py")
SQL_CALLS = {"select", "update", "insert", "delete"}
SESSION_METHODS = {"add", "add_all", "query", "get", "delete", "execute", "scalar", "scalars", "merge"}


def _modules(*packages: str) -> Iterator[tuple[str, ast.Module]]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(encoding="utf-8"), str(path))


def _imported(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def _is_session(node: ast.expr) -> bool:
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name == "db" or name.endswith("session")


def sql_statements(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, what) of every SQL statement in a module, by the definition above."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in SQL_CALLS:
                yield node.lineno, f"{func.id}("
            elif isinstance(func, ast.Attribute) and func.attr in SESSION_METHODS and _is_session(func.value):
                yield node.lineno, f"session.{func.attr}("
        elif isinstance(node, ast.Attribute) and node.attr == "__table__":
            yield node.lineno, "__table__"


def test_the_service_never_imports_the_worker() -> None:
    backwards = [
        f"{name}:{line} imports {module}"
        for name, tree in _modules("service")
        if name != COMPOSITION_ROOT
        for line, module in _imported(tree)
        if module == "worker" or module.startswith("worker.")
    ]
    assert not backwards, "service/ must not import worker/ (move the shared code into service/):\n" + "\n".join(
        backwards
    )


def test_sql_lives_only_in_repositories() -> None:
    stray = [
        f"{name}:{line} {what}"
        for name, tree in _modules(*PACKAGES)
        if not name.endswith("/repository.py") and name not in SQL_HOMES
        for line, what in sql_statements(tree)
    ]
    assert not stray, "SQL outside a repository.py (add a named function to the domain's repository):\n" + "\n".join(
        stray
    )


def _module_name(path: str) -> str:
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def _import_graph() -> dict[str, set[str]]:
    trees = {_module_name(name): tree for name, tree in _modules(*PACKAGES)}
    graph: dict[str, set[str]] = {}
    for name, tree in trees.items():
        deps = set()
        for node in tree.body:  # module level: a function-local import does not run at import time
            if isinstance(node, ast.Import):
                deps |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = {d for d in deps if d in trees and d != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert _cycles(_import_graph()) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check works


def test_the_sql_detector_sees_statements() -> None:
    """Guard the guard: the detector finds each kind of statement, so an empty result above means something."""
    source = (
        "select(A)\nupdate(A)\ninsert(A)\ndelete(A)\nA.__table__.update()\n"
        "session.add(r)\ndb.execute(q)\nself.session.get(A, 1)\nsettings.get('x')\n"
    )
    found = [what for _, what in sorted(sql_statements(ast.parse(source)))]
    assert found == [
        "select(", "update(", "insert(", "delete(", "__table__", "session.add(", "session.execute(", "session.get(",
    ]
