"""No import cycle between the modules of flow_jupyter/: every layer can be read, imported and replaced on its own
(the client without the widgets, the toolchain's installer without its plugin builder, the server without a UI).

The graph is read from the source with ``ast``: every ``import`` and ``from ... import``, at module level and
inside functions (a lazy import is still a dependency), relative imports resolved against the importing package.
``from package import name`` depends on the submodule ``package.name`` when there is one, else on the package.
Imports under ``if TYPE_CHECKING:`` are left out: they never run, they only name types for the checker.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "flow_jupyter"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_only(tree: ast.AST) -> set[int]:
    """Ids of the nodes inside ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) blocks."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else None
            if name == "TYPE_CHECKING":
                skipped.update(id(inner) for statement in node.body for inner in ast.walk(statement))
    return skipped


def import_graph() -> dict[str, set[str]]:
    """Each module of flow_jupyter/ → the modules of flow_jupyter/ it imports."""
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        skipped = _type_checking_only(tree)
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = alias.name  # `import a.b.c` depends on the deepest of a.b.c, a.b, a that is ours
                    while target and target not in paths:
                        target = target.rpartition(".")[0]
                    if target:
                        targets.add(target)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    if f"{source}.{alias.name}" in paths:
                        targets.add(f"{source}.{alias.name}")
                    elif source in paths:
                        targets.add(source)
        targets.discard(name)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def shortest_loop(graph: dict[str, set[str]], start: str) -> list[str]:
    """The shortest chain of imports from ``start`` back to itself (breadth first), for a readable failure."""
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph[node]):
            if child == start:
                return paths[node] + [start]
            if child not in paths:
                paths[child] = paths[node] + [child]
                queue.append(child)
    return []


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    graph = import_graph()
    assert "flow_jupyter.client.errors" in graph["flow_jupyter.client.api"]  # from .errors import FlowError
    assert "flow_jupyter.client" in graph["flow_jupyter.widgets.common"]  # lazy: from ..client import connect
    assert "flow_jupyter.widgets" in graph["flow_jupyter.magics"]  # lazy: from .widgets import ReportViewer
    assert "flow_jupyter.client" in graph["flow_jupyter.widgets"]  # the widgets register for client objects


def test_the_client_never_imports_the_widgets() -> None:
    graph = import_graph()
    for module, targets in graph.items():
        if module.startswith("flow_jupyter.client"):
            assert not any(t.startswith("flow_jupyter.widgets") for t in targets), (module, targets)


def test_no_module_of_flow_jupyter_is_in_an_import_cycle() -> None:
    graph = import_graph()
    found = cycles(graph)
    report = [f"{len(component)} modules: {', '.join(component)}\n  e.g. "
              + " → ".join(min((shortest_loop(graph, m) for m in component), key=len)) for component in found]
    assert found == [], "import cycles:\n" + "\n".join(report)
