"""No import cycle anywhere in `worker/` (issue 13): every module can be read, tested and moved
without dragging in the modules that import it; and `worker/core` imports nothing outside it.

The graph is grimp's (import-linter's engine): every `import` statement of the package,
including those inside functions (a lazy import hides a cycle, it does not remove one) and
under `TYPE_CHECKING`. A cycle is a strongly connected set of modules (Tarjan's algorithm).
"""

from __future__ import annotations

import grimp

PACKAGE = "worker"


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected sets of two or more modules (and modules importing themselves)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # recursion depth is bounded by the package's ~100 modules
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            members = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.append(member)
                if member == module:
                    break
            if len(members) > 1 or graph.direct_import_exists(importer=module, imported=module):
                cycles.append(sorted(members))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def _described(graph: grimp.ImportGraph, cycle: list[str]) -> str:
    members = set(cycle)
    edges = [
        f"{detail['importer']}:{detail['line_number']} imports {detail['imported']}"
        for importer in cycle
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & members)
        for detail in graph.get_import_details(importer=importer, imported=imported)[:1]
    ]
    return " ; ".join(edges)


def test_worker_has_no_import_cycle() -> None:
    graph = grimp.build_graph(PACKAGE, include_external_packages=False)
    assert len(graph.modules) > 50  # the whole package was read
    cycles = import_cycles(graph)
    assert cycles == [], "\n".join(_described(graph, c) for c in cycles)


def test_core_imports_nothing_outside_core() -> None:
    """`worker/core` is pure (docs/architecture.md): no adapter (store, runtime, kafka, …) in it."""
    graph = grimp.build_graph(PACKAGE, include_external_packages=False)
    outside = sorted(
        f"{module} imports {imported}"
        for module in graph.find_descendants(f"{PACKAGE}.core")
        for imported in graph.find_modules_directly_imported_by(module)
        if not imported.startswith(f"{PACKAGE}.core")
    )
    assert outside == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check can fail: a three-module ring and a self-import are found, a chain is not."""
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c", "p.d", "p.e"):
        graph.add_module(module)
    for importer, imported in (
        ("p.a", "p.b"),
        ("p.b", "p.c"),
        ("p.c", "p.a"),
        ("p.d", "p.a"),
        ("p.e", "p.e"),
    ):
        graph.add_import(importer=importer, imported=imported)
    assert import_cycles(graph) == [["p.a", "p.b", "p.c"], ["p.e"]]
