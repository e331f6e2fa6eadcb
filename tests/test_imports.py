"""No import circle among fastpool's modules (docs/architecture.md: the layers, bottom to top).

The graph is read from the source, not from ``sys.modules``: every import statement counts,
at module level, inside functions and under ``TYPE_CHECKING`` alike, since each is an
edge a reader has to follow. The Cython files' import lines are Python statements and are
read the same way; a compiled-only module counts with the source it is compiled from.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import fastpool

PACKAGE = Path(fastpool.__file__).resolve().parent

#: Extension modules without a source of their own name: setup.py compiles them from these.
COMPILED_FROM = {"fastpool._pool_state_c": "_pool_state.py"}

#: The one tie allowed: ``AgentError.context`` and ``causal_ids`` build the model's
#: ``ErrorContext`` and ``CausalIds`` on first use, while every model class needs
#: ``errors.InvalidInput`` (through ``_schema``) to exist first. errors.py says so too.
ALLOWED = {("fastpool.errors", "fastpool.model")}

_IMPORT_LINE = re.compile(r"[ \t]*(?:from[ \t]+\S+[ \t]+c?import[ \t]+.+|c?import[ \t]+.+)$")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, Path]:
    found = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    found.update({module_name(path): path for path in PACKAGE.rglob("*.pyx")})
    found.update({name: PACKAGE / source for name, source in COMPILED_FROM.items() if (PACKAGE / source).exists()})
    return found


def statements(path: Path) -> list[ast.stmt]:
    """The import statements of a file: all of its Python's; the import lines of a Cython file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        return [node for node in ast.walk(ast.parse(text)) if isinstance(node, (ast.Import, ast.ImportFrom))]
    # A .pyx and the .pxi files it includes: each import statement (a line, or lines within
    # parentheses) parses on its own, a cimport as an import.
    texts = [text] + [(path.parent / name).read_text("utf-8") for name in re.findall(r'^include "(.+)"', text, re.M)]
    found = []
    for lines in (part.splitlines() for part in texts):
        for number, line in enumerate(lines):
            if _IMPORT_LINE.match(line):
                statement = line.strip()
                while statement.count("(") > statement.count(")"):
                    number += 1
                    statement += " " + lines[number].strip()
                statement = statement.replace(" cimport ", " import ").removeprefix("c")
                found.append(ast.parse(statement).body[0])
    return found


def imported(module: str, is_package: bool, node: ast.stmt, known: set[str]) -> set[str]:
    """The fastpool modules one import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        assert isinstance(node, ast.ImportFrom)
        if node.level:
            base = module.split(".")
            base = base[: len(base) - node.level + (1 if is_package else 0)]
            origin = ".".join(base + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        # ``from . import wire`` loads the submodule; ``from ._compat import engine`` the module itself.
        names = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in known else origin for alias in node.names]
    targets = set()
    for name in names:
        while name and name not in known:  # ``import fastpool.x.y`` as far as it is fastpool's
            name = name.rpartition(".")[0]
        if name.startswith("fastpool"):
            targets.add(name)
    return targets


def import_graph() -> dict[str, set[str]]:
    files = sources()
    known = set(files)
    graph = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        edges = set()
        for node in statements(path):
            edges |= imported(module, is_package, node, known)
        graph[module] = {target for target in edges if target != module and (module, target) not in ALLOWED}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan), shortest found."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_back(graph, group) for group in groups]


def _path_back(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest cycle from the group's first module back to itself (breadth first)."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & group):
                if target == start:
                    return paths[node] + [start]
                if target not in paths:
                    paths[target] = paths[node] + [target]
                    following.append(target)
        frontier = following
    raise AssertionError(group)


def test_the_graph_sees_the_package() -> None:
    graph = import_graph()
    assert {"fastpool._replay", "fastpool._replay_py", "fastpool.model", "fastpool.sqlite"} <= set(graph)
    assert "fastpool._schema" in graph["fastpool.model"]
    assert "fastpool.verify" in graph["fastpool.cli"]  # an import inside a function counts


def test_no_import_circle() -> None:
    found = cycles(import_graph())
    assert not found, "import circles: " + "; ".join(" -> ".join(cycle) for cycle in found)


def test_the_allowed_tie_is_the_documented_deferred_import() -> None:
    """errors -> model stays only as errors.py documents it: inside functions (and for types)."""
    tree = ast.parse((PACKAGE / "errors.py").read_text("utf-8"))
    deferred = {
        id(node) for function in ast.walk(tree) if isinstance(function, ast.FunctionDef) for node in ast.walk(function)
    }
    checking = {
        id(node)
        for block in tree.body
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for node in ast.walk(block)
    }
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module == "model"]
    assert imports, "errors.py no longer imports the model: drop the allowed tie"
    assert all(id(node) in deferred | checking for node in imports), "errors.py imports the model at module level"


ENGINES = ("fastpool._replay", "fastpool._replay_py", "fastpool._pool_state", "fastpool._pool_state_c")
#: What the engines may build on: the model and its machinery, nothing of a store.
BELOW_THE_ENGINES = {
    "fastpool._chunked",
    "fastpool._key_filter",  # the pool state's forgotten keys: plain Python, no store
    "fastpool._schema",
    "fastpool.model",
    "fastpool.enums",
    "fastpool.errors",
    "fastpool.ids",
}


def test_the_engines_know_no_store() -> None:
    """The engines import only the model layer and each other, and word no backend's errors."""
    graph = import_graph()
    graph["fastpool.errors"] |= {"fastpool.model"}  # the allowed tie leads nowhere new, but count it
    reached: set[str] = set()
    pending = [name for name in ENGINES if name in graph]
    while pending:
        name = pending.pop()
        for target in graph[name] - reached:
            reached.add(target)
            pending.append(target)
    assert reached <= BELOW_THE_ENGINES | set(ENGINES), sorted(reached - BELOW_THE_ENGINES - set(ENGINES))
    texts = [sources()[name] for name in ENGINES if name in graph]
    texts += [*PACKAGE.glob("_*.pxi"), *PACKAGE.glob("_*.pxd"), PACKAGE / "_replay.h"]
    for path in texts:
        assert "sqlite" not in path.read_text("utf-8").lower(), f"{path.name} words SQLite"
