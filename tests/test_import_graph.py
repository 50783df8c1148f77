"""The import graph of ``reactor/``: dependencies run one way.

Run it as a script to see the graph (``python tests/test_import_graph.py [PACKAGE_DIR]``, by
default this checkout's ``reactor/``): one line per module, the modules it imports at run time,
then any cycle. As a test it fails on a runtime import
cycle, on a module below the loop importing ``reactor.loop``, and on the core importing what the
product design rules out.

"At run time" means every import that executes when the code runs, including one inside a
function (a lazy import still ties the two modules together), and excluding those under
``if TYPE_CHECKING:``, which only the type checker reads. The package itself (``reactor``) is
never counted as a dependency of its modules: Python runs ``reactor/__init__.py`` before any of
them, whoever imports them.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "reactor"

#: Above the loop: the package itself (it re-exports ``Reactor``) and the asyncio layer, which
#: presents a Reactor as an asyncio event loop. They build on ``Reactor`` and may import it.
ABOVE_THE_LOOP = ("reactor", "reactor.aio")
#: What the reactor's core never imports (the product design: one thread, our own loop).
FORBIDDEN_IN_CORE = ("asyncio", "threading", "socketserver")


def module_name(path: Path, package_dir: Path = PACKAGE) -> str:
    parts = path.relative_to(package_dir.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``."""
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def runtime_imports(tree: ast.AST, package: str) -> set[str]:
    """Every module an import statement outside ``if TYPE_CHECKING:`` names."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for branch in node.orelse:  # the else branch does run
                visit(branch)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            found.add(base)
            # ``from reactor import introspect`` imports the submodule reactor.introspect.
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(package_dir: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module of the package and the package's modules it imports at run time."""
    paths = sorted(package_dir.rglob("*.py"))
    modules = {module_name(path, package_dir): path for path in paths}
    root = package_dir.name
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported = runtime_imports(ast.parse(path.read_text(), str(path)), package)
        graph[name] = {other for other in imported
                       if other in modules and other not in (name, root)}
    return graph


def stdlib_imports(name: str) -> set[str]:
    path = PACKAGE.parent.joinpath(*name.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    imported = runtime_imports(ast.parse(path.read_text()), name)
    return {module.split(".")[0] for module in imported}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def is_above_the_loop(name: str) -> bool:
    return name in ABOVE_THE_LOOP or name.startswith("reactor.aio.")


def core_modules(graph: dict[str, set[str]]) -> list[str]:
    return [name for name in graph if not is_above_the_loop(name)]


# -- the tests ---------------------------------------------------------------------------------


def test_the_package_has_no_runtime_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_nothing_below_the_loop_imports_it() -> None:
    graph = import_graph()
    importers = sorted(name for name, imported in graph.items() if "reactor.loop" in imported)
    assert [name for name in importers if not is_above_the_loop(name)] == []


def test_the_base_transport_does_not_import_the_debug_checker() -> None:
    assert "reactor.checker" not in import_graph()["reactor.transport"]


@pytest.mark.parametrize("name", core_modules(import_graph()))
def test_the_core_never_imports_asyncio_threading_or_socketserver(name: str) -> None:
    assert stdlib_imports(name) & set(FORBIDDEN_IN_CORE) == set()


def test_the_checker_finds_a_cycle_when_there_is_one() -> None:
    """The detector itself: a circle of three and a lazy import inside a function."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    tree = ast.parse("def f():\n    from reactor.loop import Reactor\n"
                     "if TYPE_CHECKING:\n    import reactor.timers\n")
    assert runtime_imports(tree, "reactor") == {"reactor.loop", "reactor.loop.Reactor"}


PROTOCOLS = PACKAGE.parent / "protocols"
#: The Redis client's modules: the chat room reaches them only through the bus seam.
REDIS_CLIENT = {"protocols.resp", "protocols.redis", "protocols.redis_client",
                "protocols.redis_url", "protocols.chat_redis"}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    stack = [start]
    while stack:
        for other in graph[stack.pop()]:
            if other not in seen:
                seen.add(other)
                stack.append(other)
    return seen


def test_protocols_have_no_runtime_import_cycle() -> None:
    assert cycles(import_graph(PROTOCOLS)) == []


def test_the_chat_room_never_imports_the_redis_client_even_indirectly() -> None:
    graph = import_graph(PROTOCOLS)
    assert reachable(graph, "protocols.chat") & REDIS_CLIENT == set()
    assert "protocols.chat" not in reachable(graph, "protocols.chat_redis")


def main() -> int:
    graph = import_graph(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else PACKAGE)
    width = max(len(name) for name in graph)
    for name in sorted(graph):
        print(f"{name:<{width}}  -> {', '.join(sorted(graph[name])) or '-'}")
    found = cycles(graph)
    for component in found:
        print("CYCLE:", " <-> ".join(component))
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} runtime imports, "
          f"{len(found)} cycle(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
