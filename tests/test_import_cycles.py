"""No import cycle anywhere in ``src/forgather``, lazy imports included.

Every module is parsed with :mod:`ast` (nothing is imported) and every import
statement in it becomes an edge of the module graph: at module level, inside
functions (lazy imports), under ``if TYPE_CHECKING:``. Two kinds of import by
name count too: a package ``__init__``'s lazy exports (a dict whose values name
modules, ``lazy_exports(__name__, {"Project": "forgather.project"})``) and the
CLI's command table, whose modules ``registry.load_command`` imports.

Decisions a reader may question:

* ``from a.b import c`` is an edge to ``a.b.c`` when that module exists and to
  ``a.b`` otherwise; importing ``a.b.c`` is *not* also counted as importing the
  packages ``a`` and ``a.b``. Every submodule imports its parents that way, so
  counting it would make each package that re-exports a submodule's names a
  cycle, which is how packages are meant to work.
* Imports under ``if __name__ == "__main__":`` are left out: that code runs
  only when the file is the program (``python -m forgather.cli.inference``),
  as a module named ``__main__``, not as the module the graph holds.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

Graph = dict[str, dict[str, int]]  # module -> {imported module: line of the first import}


def _module_files(src: Path, package: str) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``) for every module below ``src``."""
    modules = {}
    for path in sorted((src / package.replace(".", "/")).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _is_main_guard(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    )


def import_graph(src: Path, package: str, named_imports: Graph | None = None) -> Graph:
    """The import graph of every module of ``package`` under ``src``.

    Args:
        src: the directory holding the package.
        package: the top-level package (``"forgather"``).
        named_imports: more edges, for imports by a name the source does not
            spell as an import (``{"forgather.cli.registry": {"forgather.cli.ls": 0}}``).

    Returns:
        For each module, the modules of ``package`` it imports and the line of
        the first such import.
    """
    modules = _module_files(src, package)
    graph: Graph = {}
    for name, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        here = name if is_package else name.rpartition(".")[0]
        edges: dict[str, int] = {}

        def add(target: str, line: int, edges=edges, name=name) -> None:
            if target != name and target in modules:
                edges.setdefault(target, line)

        for statement in tree.body:
            if _is_main_guard(statement):
                continue
            for node in ast.walk(statement):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        add(alias.name, node.lineno)
                elif isinstance(node, ast.ImportFrom):
                    if node.level:  # from . import x, from ..a import b
                        base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                        source = ".".join(base + ([node.module] if node.module else []))
                    else:
                        source = node.module or ""
                    for alias in node.names:
                        submodule = f"{source}.{alias.name}"
                        add(submodule if submodule in modules else source, node.lineno)
                elif is_package and isinstance(node, ast.Dict):  # lazy exports
                    for value in node.values:
                        if isinstance(value, ast.Constant) and isinstance(value.value, str):
                            for target in (value.value, f"{here}.{value.value}"):
                                add(target, value.lineno)
        for target, line in (named_imports or {}).get(name, {}).items():
            add(target, line)
        graph[name] = edges
    return graph


def find_cycles(graph: Graph) -> list[list[str]]:
    """One cycle per strongly connected component of ``graph`` that has one.

    Returns:
        Each cycle as the modules along it, first module repeated at the end
        (``["a", "b", "a"]``), starting from its alphabetically first module.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm; the graph is ~150 modules deep at most
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(_one_cycle(graph, component) for component in components)


def _one_cycle(graph: Graph, component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first)."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node]):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if target in component and target not in parents:
                    parents[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def format_cycle(graph: Graph, cycle: list[str]) -> str:
    """``a (line 3) -> b (line 9) -> a``: each module with the line that imports the next."""
    steps = [
        f"{a} (line {graph[a][b]})" if graph[a][b] else f"{a} (by name)"
        for a, b in zip(cycle, cycle[1:], strict=False)
    ]
    return " -> ".join([*steps, cycle[-1]])


def _command_table_imports() -> Graph:
    """The CLI's command table as edges: ``registry.load_command`` imports each module by name."""
    from forgather.cli.registry import COMMANDS

    return {"forgather.cli.registry": {module: 0 for module, _ in COMMANDS.values()}}


# -- the source tree ---------------------------------------------------------------


def test_no_import_cycle_in_src():
    graph = import_graph(SRC, "forgather", _command_table_imports())
    cycles = [format_cycle(graph, cycle) for cycle in find_cycles(graph)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_graph_sees_lazy_type_checking_and_named_imports():
    # Guards against a graph too sparse to hold a cycle: one edge of each kind.
    graph = import_graph(SRC, "forgather", _command_table_imports())
    assert len(graph) > 100
    assert "forgather.cli.shell" in graph["forgather.cli.main"]  # inside main()
    assert "forgather.cli.context" in graph["forgather.cli.command"]  # under TYPE_CHECKING
    assert "forgather.project" in graph["forgather"]  # a lazy export
    assert "forgather.cli.listing" in graph["forgather.cli.registry"]  # the command table
    assert "forgather.cli.main" not in graph["forgather.cli.inference"]  # its __main__ block


# -- the detector, on packages written here ---------------------------------------


def _write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_cycle_through_a_function_level_import_is_reported_with_its_lines(tmp_path):
    _write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "import pkg.b\n",
            "pkg/b.py": "def f():\n    from . import c\n",
            "pkg/c.py": "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from pkg.a import thing\n",
            "pkg/d.py": "from pkg import a\n",  # imports into the cycle, is not part of it
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert [format_cycle(graph, c) for c in find_cycles(graph)] == [
        "pkg.a (line 1) -> pkg.b (line 2) -> pkg.c (line 3) -> pkg.a"
    ]


def test_main_blocks_parent_packages_and_lazy_exports(tmp_path):
    _write_package(
        tmp_path,
        {
            # A package re-exporting its submodule is no cycle, nor is a
            # __main__ block that runs the package's entry point.
            "pkg/__init__.py": "from pkg.tool import run\n",
            "pkg/tool.py": "def run(): ...\nif __name__ == '__main__':\n    import pkg.main\n",
            "pkg/main.py": "from pkg.tool import run\n",
            # A lazy export is an import: sub.x -> sub (its __init__) -> sub.y -> sub.x.
            "pkg/sub/__init__.py": "_LAZY = {'Y': 'y'}\n",
            "pkg/sub/x.py": "def f():\n    from pkg.sub import Y\n",
            "pkg/sub/y.py": "import pkg.sub.x\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert find_cycles(graph) == [["pkg.sub", "pkg.sub.y", "pkg.sub.x", "pkg.sub"]]
