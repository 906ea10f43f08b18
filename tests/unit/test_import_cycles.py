"""No import cycles among the modules of `responder`, counting every import the source names.

The graph is read from the source with `ast`, not from `sys.modules`: imports under
`if TYPE_CHECKING:` and inside function bodies count too, because a cycle hidden that way is
still a cycle in the design (and breaks as soon as someone moves the import up).
`from responder.x import y` is an edge to `responder.x.y` when `y` is a submodule, else to
`responder.x`. Cycles are the strongly connected components of more than one module (or a
module importing itself), found with Tarjan's algorithm.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import responder

PACKAGE = Path(responder.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (migrations are alembic scripts, left out)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        if not name.startswith("responder.migrations"):
            found[name] = path
    return found


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, target] if target else base)


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The responder modules `name` imports, anywhere in its source."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _known_prefix(alias.name, known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _resolve_relative(name, is_package, node.level, node.module)
            else:
                base = node.module or ""
            if base != "responder" and not base.startswith("responder."):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:
                    yield sub
                else:
                    yield from _known_prefix(base, known)


def _known_prefix(dotted: str, known: set[str]) -> Iterator[str]:
    """`import responder.a.b` depends on responder.a.b (the longest known prefix)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            yield candidate
            return


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: set(imports_of(name, path, known)) for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components that are cycles (Tarjan), each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found, key=lambda c: (-len(c), c))


def _edges_within(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    members = set(component)
    return [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]


def test_no_import_cycles() -> None:
    """No two responder modules import each other, directly or through others."""
    graph = import_graph()
    found = cycles(graph)
    report = "\n\n".join("\n".join(_edges_within(graph, c)) for c in found)
    assert not found, f"import cycles:\n{report}"


def test_cycle_finder_sees_type_checking_and_function_imports(tmp_path: Path) -> None:
    """The finder reports a cycle made of TYPE_CHECKING and function-local imports."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c"], ["e"]]
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from responder.actions.ports import Ports\n"
        "def f():\n"
        "    from responder.playbooks import runner\n"
        "    import responder.events.schema\n"
    )
    known = {
        "responder.actions.ports",
        "responder.playbooks",
        "responder.playbooks.runner",
        "responder.events.schema",
    }
    assert set(imports_of("responder.x", source, known)) == {
        "responder.actions.ports",
        "responder.playbooks.runner",
        "responder.events.schema",
    }
