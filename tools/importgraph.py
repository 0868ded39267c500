"""The house, drawn from the imports: the module import graph of ``src/statuswatch``.

Reads every module with :mod:`ast` (nothing is imported or run), checks the rules the
layout rests on, and renders ``docs/architecture.md``: a mermaid diagram grouped by
package, and each module's first docstring paragraph. The rules:

* no import cycles, counting imports inside functions and under ``TYPE_CHECKING``;
* the core imports no statuswatch package but ``core``, ``config`` and ``errors``
  (so never the shell);
* the core reads no clock and does no I/O: it imports none of :data:`NOT_IN_CORE`
  and calls no ``datetime.now()``, ``utcnow()`` or ``today()``.

From the repository root::

    python -m tools.importgraph           # check the rules, write docs/architecture.md
    python -m tools.importgraph --check   # check the rules and that the page is current

>>> graph = build(SRC)
>>> Edge("statuswatch.shell.runtime", "statuswatch.core.detector", "module") in graph.edges
True
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

REPO: Final = Path(__file__).resolve().parents[1]
SRC: Final = REPO / "src"
PACKAGE: Final = "statuswatch"
ARCHITECTURE: Final = REPO / "docs" / "architecture.md"

#: Where an import statement sits: at module level, inside a function (imported when
#: used), or under ``if TYPE_CHECKING:`` (for the type checker only).
EdgeKind = Literal["module", "function", "typing"]

#: Modules the core must not import: clocks, I/O and the event loop.
NOT_IN_CORE: Final = frozenset({
    "aiokafka", "asyncio", "http", "os", "prometheus_client", "shutil", "socket", "ssl",
    "subprocess", "sys", "threading", "time", "urllib",
})
#: Clock reads through ``datetime`` / ``date``.
CLOCK_CALLS: Final = frozenset({"now", "utcnow", "today"})
#: Besides the core itself, the only statuswatch modules the core may import.
CORE_MAY_IMPORT: Final = ("config", "errors")
#: Imported from every layer; their arrows would hide the rest of the drawing.
HUBS: Final = {
    "errors": "the one exception hierarchy",
    "config": "the settings",
    "core.columns": "the columnar batch types",
}
#: Where the larger jobs live, named on the page (each must exist).
LANDMARKS: Final = (
    ("core.incidents", "incident grouping: one incident, one page; the alerts another "
                       "alert explains are folded into it as contributors"),
    ("shell.checkpoint", "the checkpoint object: flush the sinks, snapshot, wait for the "
                         "dead-letter acks, commit; and restore"),
    ("core.decode", "the decode split: the decoder protocol and field checks, timestamp "
                    "parsing, the batch builder, a JSON format's field table, the JSON "
                    "decoder with the C scanner as its fast path, one module per format"),
)
#: Headings of the packages on the page, in the order of the data flow.
GROUPS: Final = {
    "": "top level",
    "core": "core",
    "core.decode": "core/decode",
    "shell": "shell",
    "simulate": "simulate",
    "localbroker": "localbroker",
}


@dataclass(frozen=True, order=True)
class Edge:
    """``source`` imports ``target`` (dotted module names)."""

    source: str
    target: str
    kind: EdgeKind


@dataclass
class Graph:
    package: str
    #: dotted name -> file (a ``.pyi`` stands for a compiled module)
    modules: dict[str, Path] = field(default_factory=dict)
    edges: set[Edge] = field(default_factory=set)
    #: dotted name -> first paragraph of its docstring
    summaries: dict[str, str] = field(default_factory=dict)
    #: dotted name -> (line, what) of each outside module imported and clock read
    outside: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    clock_reads: dict[str, list[tuple[int, str]]] = field(default_factory=dict)

    def short(self, module: str) -> str:
        """``statuswatch.core.scopes`` -> ``core.scopes``; the package itself -> ``""``."""
        return module.removeprefix(self.package).removeprefix(".")

    def path(self, module: str) -> str:
        """The module's file, relative to the package directory.

        >>> build(SRC).path("statuswatch.core.decode")
        'core/decode/__init__.py'
        """
        file = self.modules[module]
        parts = self.short(module).split(".") if self.short(module) else []
        if file.name.startswith("__init__."):
            parts.append("__init__")
        return "/".join(parts) + file.suffix


@dataclass
class _Import:
    module: str | None
    names: list[str] | None  # None: ``import module``
    level: int
    line: int
    kind: EdgeKind


class _Scanner(ast.NodeVisitor):
    """The import statements of one module, each with where it sits, and its clock reads."""

    def __init__(self) -> None:
        self.imports: list[_Import] = []
        self.clock_reads: list[tuple[int, str]] = []
        self._kind: EdgeKind = "module"

    def _inside(self, kind: EdgeKind, nodes: Sequence[ast.AST]) -> None:
        outer = self._kind
        if outer != "typing":
            self._kind = kind
        for node in nodes:
            self.visit(node)
        self._kind = outer

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._inside("function", [*node.decorator_list, *node.body])

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._inside("function", [*node.decorator_list, *node.body])

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
        if name == "TYPE_CHECKING":
            self._inside("typing", node.body)
            self._inside(self._kind, node.orelse)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.imports.append(_Import(alias.name, None, 0, node.lineno, self._kind))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        names = [alias.name for alias in node.names]
        self.imports.append(_Import(node.module, names, node.level, node.lineno, self._kind))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in CLOCK_CALLS:
            owner = func.value
            owner_name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            if owner_name in ("datetime", "date"):
                self.clock_reads.append((node.lineno, f"{owner_name}.{func.attr}()"))
        self.generic_visit(node)


def _module_files(src: Path, package: str) -> dict[str, Path]:
    """Dotted name -> file of every module of ``package`` under ``src``; a stub (``.pyi``)
    without a ``.py`` beside it stands for a compiled module."""
    root = src / package
    out: dict[str, Path] = {}
    for file in sorted([*root.rglob("*.py"), *root.rglob("*.pyi")]):
        if file.suffix == ".pyi" and file.with_suffix(".py").exists():
            continue
        parts = list(file.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = file
    return out


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest leading part of ``name`` that is one of ``modules``."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _targets(
    importer: str, is_package: bool, imp: _Import, modules: dict[str, Path]
) -> Iterator[str]:
    """The modules one import statement loads (``from p import m`` loads module ``p.m``)."""
    if imp.level:
        base = importer if is_package else importer.rpartition(".")[0]
        for _ in range(imp.level - 1):
            base = base.rpartition(".")[0]
        base = f"{base}.{imp.module}" if imp.module else base
    else:
        base = imp.module or ""
    if imp.names is None:
        found = _known(base, modules)
        if found is not None:
            yield found
        return
    for name in imp.names:
        found = f"{base}.{name}" if f"{base}.{name}" in modules else _known(base, modules)
        if found is not None:
            yield found


def build(src: Path, package: str = PACKAGE) -> Graph:
    """The import graph of ``package`` (a directory under ``src``), read with ``ast``."""
    graph = Graph(package, _module_files(src, package))
    for module, file in graph.modules.items():
        tree = ast.parse(file.read_text(encoding="utf-8"), str(file))
        doc = ast.get_docstring(tree) or ""
        graph.summaries[module] = " ".join(doc.split("\n\n", 1)[0].split())
        scanner = _Scanner()
        scanner.visit(tree)
        is_package = file.name.startswith("__init__.")
        for imp in scanner.imports:
            absolute = imp.module if imp.level == 0 else None
            if absolute is not None and absolute.split(".")[0] != package:
                graph.outside.setdefault(module, []).append((imp.line, absolute))
            for target in _targets(module, is_package, imp, graph.modules):
                if target != module or imp.names is None:
                    graph.edges.add(Edge(module, target, imp.kind))
        if scanner.clock_reads:
            graph.clock_reads[module] = scanner.clock_reads
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The import cycles: each strongly connected set of modules (Tarjan), sorted.

    >>> cycles(build(SRC))
    []
    """
    successors: dict[str, set[str]] = {m: set() for m in graph.modules}
    for edge in graph.edges:
        successors[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # recursion depth: the longest import chain, small
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(successors[node]):
            if nxt not in index:
                visit(nxt)
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
            if len(component) > 1 or node in successors[node]:
                found.append(sorted(component))

    for node in sorted(successors):
        if node not in index:
            visit(node)
    return sorted(found)


def _in_core(graph: Graph, module: str) -> bool:
    short = graph.short(module)
    return short == "core" or short.startswith("core.")


def layer_violations(graph: Graph) -> list[str]:
    """Imports of the core that leave it: anything of the package but core, config, errors."""
    allowed = {f"{graph.package}.{name}" for name in CORE_MAY_IMPORT}
    return [
        f"{graph.path(e.source)} imports {graph.path(e.target)}: the core imports only the "
        f"core, {' and '.join(CORE_MAY_IMPORT)}"
        for e in sorted(graph.edges)
        if _in_core(graph, e.source) and not _in_core(graph, e.target) and e.target not in allowed
    ]


def impurities(graph: Graph) -> list[str]:
    """Clock reads and I/O modules in the core, each with its file and line."""
    out = []
    for module in sorted(graph.modules):
        if not _in_core(graph, module):
            continue
        for line, name in graph.outside.get(module, []):
            if name.split(".")[0] in NOT_IN_CORE:
                out.append(f"{graph.path(module)}:{line} imports {name}: the core does no I/O "
                           "and reads no clock (time is passed in)")
        for line, call in graph.clock_reads.get(module, []):
            out.append(f"{graph.path(module)}:{line} calls {call}: the core reads no clock")
    return out


def problems(graph: Graph) -> list[str]:
    """Every broken rule, as one line each; empty when the house stands."""
    out = [f"import cycle: {' -> '.join(graph.path(m) for m in c)}" for c in cycles(graph)]
    out += layer_violations(graph)
    out += impurities(graph)
    for short, _ in LANDMARKS:
        if f"{graph.package}.{short}" not in graph.modules:
            out.append(f"landmark {short} is not a module of {graph.package}")
    return out


# --- the page ----------------------------------------------------------------------------


def _group(graph: Graph, module: str) -> str:
    """The package a module is drawn in (a package's ``__init__`` in its own)."""
    short = graph.short(module)
    if graph.modules[module].name.startswith("__init__."):
        return short
    return short.rpartition(".")[0]


def _node_id(graph: Graph, module: str) -> str:
    return "m_" + (re.sub(r"\W", "_", graph.short(module)) or "init")


def _label(graph: Graph, module: str) -> str:
    name = graph.path(module).rpartition("/")[2]
    return name.removesuffix(".pyi") + " (C)" if name.endswith(".pyi") else name


def _drawn(graph: Graph) -> tuple[list[str], list[Edge]]:
    hubs = {f"{graph.package}.{short}" for short in HUBS}
    edges = sorted(e for e in graph.edges if e.target not in hubs and e.source not in hubs
                   and e.source != e.target)
    linked = {e.source for e in edges} | {e.target for e in edges}
    modules = sorted(m for m in graph.modules if m not in hubs and (
        m in linked or not graph.modules[m].name.startswith("__init__.")))
    return modules, edges


def mermaid(graph: Graph) -> str:
    """The diagram: one subgraph per package (``core/decode`` inside ``core``), an arrow
    per import, dotted where the import is inside a function or for typing only."""
    modules, edges = _drawn(graph)
    by_group: dict[str, list[str]] = {}
    for module in modules:
        by_group.setdefault(_group(graph, module), []).append(module)
    lines = ["flowchart LR"]

    def draw(group: str, depth: int) -> None:
        pad = "    " * depth
        inner = pad + "    "
        group_id = "g_" + (re.sub(r"\W", "_", group) or "top")
        lines.append(f'{pad}subgraph {group_id}["{GROUPS.get(group, group)}"]')
        for module in by_group.get(group, []):
            lines.append(f'{inner}{_node_id(graph, module)}["{_label(graph, module)}"]')
        if group:  # the top level's subgraph holds its modules only, not the packages
            for child in sorted(g for g in by_group if g.rpartition(".")[0] == group != g):
                draw(child, depth + 1)
        lines.append(f"{pad}end")

    tops = {g.split(".")[0] for g in by_group}
    for top in [g for g in GROUPS if g in tops] + sorted(tops - set(GROUPS)):
        draw(top, 1)
    for e in edges:
        arrow = "-->" if e.kind == "module" else "-.->"
        lines.append(f"    {_node_id(graph, e.source)} {arrow} {_node_id(graph, e.target)}")
    return "\n".join(lines)


def render(graph: Graph) -> str:
    """The whole page, ``docs/architecture.md``."""
    modules, edges = _drawn(graph)
    hubs = ", ".join(f"`{graph.path(f'{graph.package}.{s}')}` ({what})" for s, what in HUBS.items())
    out = [
        "# The house, drawn from the imports",
        "",
        "<!-- Generated by `python -m tools.importgraph` from the imports of "
        "`src/statuswatch`: do not edit. -->",
        "",
        "Every module of `src/statuswatch` and what it imports, read from the source by",
        "`tools/importgraph.py` (`python -m tools.importgraph` rewrites this page;",
        "`tests/unit/test_architecture.py` fails when it is stale). The same run checks",
        "the rules the layout rests on:",
        "",
        "- no import cycles, counting imports inside functions and for type checking;",
        "- the core imports no statuswatch package but the core, "
        + " and ".join(f"`{name}`" for name in CORE_MAY_IMPORT) + " (never the shell);",
        "- the core reads no clock and does no I/O: no "
        + ", ".join(f"`{name}`" for name in sorted(NOT_IN_CORE))
        + ", no `datetime.now()`; time is passed in.",
        "",
        "## Landmarks",
        "",
    ]
    for short, what in LANDMARKS:
        module = f"{graph.package}.{short}"
        where = graph.path(module) if module in graph.modules else short
        if where.endswith("/__init__.py"):
            where = where.removesuffix("__init__.py") + "*"
        out.append(f"- `{where}`: {what}.")
    out += [
        "",
        "## The diagram",
        "",
        f"An arrow `a --> b`: module a imports b ({len(edges)} imports among "
        f"{len(modules)} modules); dotted, the import is inside a function (loaded when "
        f"used) or for type checking only. Every layer imports {hubs}: those arrows are "
        "left out.",
        "",
        "```mermaid",
        mermaid(graph),
        "```",
        "",
        "## The modules",
    ]
    by_group: dict[str, list[str]] = {}
    for module in sorted(graph.modules):
        by_group.setdefault(_group(graph, module), []).append(module)
    order = [g for g in GROUPS if g in by_group] + sorted(set(by_group) - set(GROUPS))
    for group in order:
        out += ["", f"### {GROUPS.get(group, group)}", "", "| module | what it holds |",
                "|---|---|"]
        for module in by_group[group]:
            summary = graph.summaries[module].replace("|", "\\|") or "-"
            out.append(f"| `{graph.path(module)}` | {summary} |")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.importgraph",
        description="Check the import graph of src/statuswatch and draw it.",
    )
    parser.add_argument("--check", action="store_true",
                        help=f"do not write; fail if {ARCHITECTURE.relative_to(REPO)} is stale")
    args = parser.parse_args(argv)
    graph = build(SRC)
    broken = problems(graph)
    for line in broken:
        print(line, file=sys.stderr)
    page = render(graph)
    current = ARCHITECTURE.read_text(encoding="utf-8") if ARCHITECTURE.exists() else ""
    if args.check:
        if page != current:
            print(f"{ARCHITECTURE.relative_to(REPO)} is stale: run python -m tools.importgraph",
                  file=sys.stderr)
            return 1
    elif page != current:
        ARCHITECTURE.write_text(page, encoding="utf-8")
        print(f"wrote {ARCHITECTURE.relative_to(REPO)}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
