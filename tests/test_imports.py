"""The package's import graph, read from the source (ast), lazy imports included: no cycle
between files, and no core module imports the embedded world (a plugin, found through its
entry point); only the CLI may, for its `world` verb."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "robust_edit"
MAY_IMPORT_WORLD = {"robust_edit.cli"}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                # `from x import y`: the file y when y is a module, else the file x
                targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                            for a in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_files():
    assert _cycle(import_graph()) is None, " -> ".join(_cycle(import_graph()))


def test_the_core_does_not_import_the_world():
    offenders = sorted(f"{m} -> {t}" for m, ts in import_graph().items()
                       if not m.startswith("robust_edit.world") and m not in MAY_IMPORT_WORLD
                       for t in ts if t.startswith("robust_edit.world"))
    assert offenders == []


def test_the_graph_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "robust_edit.world.build" in graph["robust_edit.cli"]  # a lazy import in a function
    assert graph["robust_edit.edit"] >= {"robust_edit.edit.artifact", "robust_edit.config"}


def test_a_cycle_is_found():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
