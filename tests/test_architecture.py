"""The shape of the package: no import cycle, no lower layer importing a higher one.

The import graph is built from the source with :mod:`ast` (nothing is imported): an
edge ``a -> b`` for each ``import``/``from ... import`` of a nehmap module ``b`` written
in module ``a``. Imports under ``if TYPE_CHECKING:`` are left out (they never run).
The graph holds the imports that run when a module is imported (module level); the
checks marked so also count imports inside functions, so that a circle is broken by
moving code down rather than hidden in a function. The layers are those of
docs/architecture.md; a module belongs to the layer of the longest package prefix
listed in :data:`LAYERS` (``nehmap.io.case`` -> ``nehmap.io``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "nehmap"

LAYERS: tuple[tuple[str, ...], ...] = (
    # lowest first; a module may import its own layer and the layers below it
    ("nehmap._version", "nehmap.errors", "nehmap.labels", "nehmap.spacing", "nehmap.bars"),
    ("nehmap.io",),
    ("nehmap.preprocess", "nehmap.metrics", "nehmap.stats", "nehmap.fusion"),
    ("nehmap.models", "nehmap.infer"),
    ("nehmap.segmentation", "nehmap.segment_settings"),
    ("nehmap.derive", "nehmap.train", "nehmap.synth", "nehmap.evaluate"),
    ("nehmap.validate",),
    ("nehmap.study",),
    ("nehmap.report",),
    # the package itself only re-exports, lazily, what the layers below offer
    ("nehmap.commands", "nehmap.cli", "nehmap"),
)

ALLOWED_UPWARD: Mapping[tuple[str, str], str] = {
    # `python -m nehmap.train` runs the `nehmap train` command: the entry point of a
    # package lives in the package, its argument parsing in the command layer.
    ("nehmap.train.__main__", "nehmap.commands.train"): "python -m entry point",
}
"""Module-level imports of a higher layer that are accepted, each with its reason."""

ALLOWED_UPWARD_IN_FUNCTIONS: Mapping[tuple[str, str], str] = {
    # `run_study` ends by writing the study's report; the report reads the study's
    # config and tables, so the call goes up, made only when a report is asked for.
    ("nehmap.study.pipeline", "nehmap.report"): "the study's last step writes its report",
}
"""Imports of a higher layer made inside functions that are accepted, with their reasons."""

MAX_LINES = 500
"""Longest module, in lines."""

SIZE_CHECKED = ("nehmap",)
"""Folders held to MAX_LINES: the whole package."""


# --------------------------------------------------------------------------- the checker


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(body: Iterable[ast.stmt], *, in_functions: bool) -> Iterator[ast.stmt]:
    """The import statements of ``body``: module level only (the ``if``, ``try`` and
    ``with`` blocks that run on import) or, with ``in_functions``, also those inside
    functions and classes. ``if TYPE_CHECKING:`` blocks are skipped (their ``else``
    runs)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _imports(node.body, in_functions=in_functions)
            yield from _imports(node.orelse, in_functions=in_functions)
        elif isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse):
                yield from _imports(block, in_functions=in_functions)
            yield from _imports(node.finalbody, in_functions=in_functions)
        elif isinstance(node, ast.With):
            yield from _imports(node.body, in_functions=in_functions)
        elif in_functions and isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
        ):
            yield from _imports(node.body, in_functions=True)
        elif in_functions and isinstance(node, ast.For | ast.While):
            yield from _imports([*node.body, *node.orelse], in_functions=True)


def module_files(src: Path, package: str = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, whether it is a package ``__init__``)."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        out[".".join(parts)] = (path, is_package)
    return out


def import_graph(
    src: Path, package: str = PACKAGE, *, in_functions: bool = False
) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (see the module docstring).

    ``from a.b import c`` counts as an import of ``a.b.c`` when that is a module, else
    of ``a.b``; a name that is no module of the package counts as its nearest enclosing
    module. Relative imports are resolved.
    """
    modules = module_files(src, package)

    def nearest(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in modules.items():
        here = module if is_package else module.rpartition(".")[0]
        targets: set[str | None] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _imports(tree.body, in_functions=in_functions):
            if isinstance(node, ast.Import):
                targets.update(nearest(a.name) for a in node.names if _inside(a.name, package))
                continue
            assert isinstance(node, ast.ImportFrom)
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if not _inside(source, package):
                continue
            for alias in node.names:
                full = f"{source}.{alias.name}"
                targets.add(full if full in modules else nearest(source))
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def import_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The groups of modules that import one another (strongly connected components of
    two or more modules, or one that imports itself), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        # iterative Tarjan: (node, iterator over its successors)
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.get(succ, ())))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1 or node in graph.get(node, ()):
                        cycles.append(sorted(group))
    return sorted(cycles)


def layer_of(module: str, layers: Iterable[Iterable[str]] = LAYERS) -> int:
    """Index of the layer of ``module``: the layer naming its longest enclosing prefix."""
    best, best_len = -1, -1
    for i, members in enumerate(layers):
        for prefix in members:
            if _inside(module, prefix) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    if best < 0:
        raise KeyError(f"{module} is in no layer: add its package to LAYERS")
    return best


def upward_imports(
    graph: Mapping[str, Iterable[str]],
    layers: Iterable[Iterable[str]] = LAYERS,
    allowed: Mapping[tuple[str, str], str] = ALLOWED_UPWARD,
) -> list[tuple[str, str]]:
    """Edges ``a -> b`` where ``b`` lies in a higher layer than ``a`` (allowed ones
    left out), sorted."""
    layers = [tuple(m) for m in layers]
    return sorted(
        (a, b)
        for a, targets in graph.items()
        for b in targets
        if layer_of(b, layers) > layer_of(a, layers) and (a, b) not in allowed
    )


def oversized(src: Path, folders: Iterable[str], limit: int = MAX_LINES) -> list[str]:
    """``path: N lines`` for each module under ``src/<folder>`` longer than ``limit``."""
    out = []
    for folder in folders:
        for path in sorted((src / folder).rglob("*.py")):
            n = len(path.read_text(encoding="utf-8").splitlines())
            if n > limit:
                out.append(f"{path.relative_to(src)}: {n} lines")
    return out


# --------------------------------------------------------------------------- the package


def test_no_import_cycle_at_module_level():
    assert import_cycles(import_graph(SRC)) == []


def test_no_import_cycle_even_through_imports_inside_functions():
    # a circle is broken by moving code down, not hidden by importing inside a function
    assert import_cycles(import_graph(SRC, in_functions=True)) == []


def test_no_lower_layer_imports_a_higher_one():
    graph = import_graph(SRC)
    assert upward_imports(graph) == []
    # every module has a layer, and the allow-list holds only edges that exist
    for module in graph:
        layer_of(module)
    assert all(b in graph[a] for a, b in ALLOWED_UPWARD)


def test_no_upward_import_inside_functions_beyond_the_known_ones():
    graph = import_graph(SRC, in_functions=True)
    allowed = {**ALLOWED_UPWARD, **ALLOWED_UPWARD_IN_FUNCTIONS}
    assert upward_imports(graph, allowed=allowed) == []
    assert all(b in graph[a] for a, b in ALLOWED_UPWARD_IN_FUNCTIONS)


def test_the_graph_sees_the_package():
    graph = import_graph(SRC)
    assert "nehmap.io.nnunet_json" in graph["nehmap.io.layouts"]
    assert "nehmap.io.collection" in graph["nehmap.io.case"]
    assert "nehmap.io.case" not in graph["nehmap.io.nnunet_read"]


def test_every_module_fits_the_size_limit():
    assert oversized(SRC, SIZE_CHECKED) == []


# --------------------------------------------------------------------------- the checker fails


def test_checker_finds_a_cycle_and_an_upward_edge_in_a_fake_graph():
    layers = (("p.low",), ("p.mid",), ("p.high",))
    graph = {
        "p.low.a": {"p.low.b"},
        "p.low.b": {"p.low.c"},
        "p.low.c": {"p.low.a"},  # a -> b -> c -> a
        "p.mid.x": {"p.low.a", "p.high.y"},  # mid imports high: upward
        "p.high.y": {"p.mid.x"},  # ... and high imports mid: a second cycle
        "p.high.z": {"p.high.z"},  # imports itself
        "p.low.d": set(),
    }
    assert import_cycles(graph) == [
        ["p.high.y", "p.mid.x"],
        ["p.high.z"],
        ["p.low.a", "p.low.b", "p.low.c"],
    ]
    assert upward_imports(graph, layers, allowed={}) == [("p.mid.x", "p.high.y")]
    assert upward_imports(graph, layers, allowed={("p.mid.x", "p.high.y"): "why"}) == []
    acyclic = {"p.low.a": {"p.low.b"}, "p.low.b": set(), "p.mid.x": {"p.low.a"}}
    assert import_cycles(acyclic) == []
    assert upward_imports(acyclic, layers, allowed={}) == []
    with pytest.raises(KeyError, match="in no layer"):
        layer_of("q.other", layers)


def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_checker_reads_a_fake_package_from_source(tmp_path):
    _write(
        tmp_path,
        {
            "fake/__init__.py": "",
            "fake/low/__init__.py": "from fake.low.a import f\n",
            "fake/low/a.py": (
                "from __future__ import annotations\n"
                "from typing import TYPE_CHECKING\n"
                "import os\n"
                "from . import b\n"  # relative: fake.low.b
                "if TYPE_CHECKING:\n"
                "    from fake.high import Thing\n"  # never runs: not an edge
                "def f():\n"
                "    from fake.high.h import g\n"  # inside a function
                "    return g\n"
            ),
            "fake/low/b.py": "from ..low import a\n",  # fake.low.a: a cycle with a.py
            "fake/high/__init__.py": "Thing = 1\n",
            "fake/high/h.py": (
                "import fake.low.a\n"
                "try:\n"
                "    from fake.low.b import x\n"
                "except ImportError:\n"
                "    x = None\n"
                "def g():\n"
                "    return 1\n"
            ),
        },
    )
    layers = (("fake.low",), ("fake.high", "fake"))
    graph = import_graph(tmp_path, "fake")
    assert graph == {
        "fake": set(),
        "fake.low": {"fake.low.a"},
        "fake.low.a": {"fake.low.b"},
        "fake.low.b": {"fake.low.a"},
        "fake.high": set(),
        "fake.high.h": {"fake.low.a", "fake.low.b"},
    }
    assert import_cycles(graph) == [["fake.low.a", "fake.low.b"]]
    assert upward_imports(graph, layers, allowed={}) == []
    deep = import_graph(tmp_path, "fake", in_functions=True)
    assert deep["fake.low.a"] == {"fake.low.b", "fake.high.h"}
    assert upward_imports(deep, layers, allowed={}) == [("fake.low.a", "fake.high.h")]
    assert import_cycles(deep) == [["fake.high.h", "fake.low.a", "fake.low.b"]]


def test_size_check_names_the_long_module(tmp_path):
    _write(tmp_path, {"pkg/short.py": "x = 1\n" * 500, "pkg/long.py": "x = 1\n" * 501})
    assert oversized(tmp_path, ["pkg"]) == [f"{Path('pkg') / 'long.py'}: 501 lines"]
