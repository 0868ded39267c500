"""The house, drawn from the imports: no import cycles, a pure core that never imports the
shell or reads a clock, and docs/architecture.md as the import graph draws it today."""

from __future__ import annotations

from pathlib import Path

from tools.importgraph import (
    ARCHITECTURE,
    SRC,
    Edge,
    Graph,
    build,
    cycles,
    impurities,
    layer_violations,
    problems,
    render,
)


def graph_of(root: Path, package: str) -> Graph:
    """The import graph of a package ``pkg`` written out from ``package``: each file's
    source follows a line ``## path`` (every ``__init__.py`` is written, empty)."""
    path = None
    for line in package.splitlines(keepends=True):
        if line.startswith("## "):
            path = root / "pkg" / line[3:].strip()
            path.parent.mkdir(parents=True, exist_ok=True)
            for parent in [path.parent, *path.parent.parents]:
                if parent == root:
                    break
                (parent / "__init__.py").touch()
            path.touch()
        elif path is not None:
            with path.open("a") as file:
                file.write(line)
    return build(root, "pkg")


def test_statuswatch_has_no_import_cycles() -> None:
    assert cycles(build(SRC)) == []


def test_the_core_imports_neither_the_shell_nor_a_clock() -> None:
    graph = build(SRC)
    assert layer_violations(graph) == []
    assert impurities(graph) == []
    assert problems(graph) == []


def test_the_committed_architecture_page_is_current() -> None:
    # On failure: python -m tools.importgraph, and commit docs/architecture.md.
    assert ARCHITECTURE.read_text(encoding="utf-8") == render(build(SRC))


def test_the_page_names_the_landmarks_and_draws_every_drawn_module() -> None:
    page = ARCHITECTURE.read_text(encoding="utf-8")
    for where in ("`core/incidents.py`", "`shell/checkpoint.py`", "`core/decode/*`"):
        assert where in page
    assert 'm_shell_runtime["runtime.py"]' in page
    assert "m_shell_runtime --> m_shell_checkpoint" in page


def test_a_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, """
## a.py
from pkg import b
## b.py
from pkg.c import thing
## c.py
def thing():
    from . import a
    return a
## d.py
import pkg.a
""")
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert Edge("pkg.c", "pkg.a", "function") in graph.edges
    assert problems(graph)[0] == "import cycle: a.py -> b.py -> c.py"


def test_a_type_checking_import_counts_and_a_stub_is_a_module(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, """
## a.py
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from pkg.b import B
## b.py
from pkg import a, _ext
## _ext.pyi
def f() -> int: ...
""")
    assert Edge("pkg.a", "pkg.b", "typing") in graph.edges
    assert Edge("pkg.b", "pkg._ext", "module") in graph.edges
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def test_a_core_that_imports_the_shell_or_reads_the_clock_is_found(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, """
## errors.py
## shell/io.py
from pkg.core import pure
## core/pure.py
from pkg import errors
from pkg.core import decode
## core/decode/x.py
import time
from datetime import datetime

def now():
    from pkg.shell import io
    return datetime.now(), io
""")
    assert layer_violations(graph) == [
        "core/decode/x.py imports shell/io.py: the core imports only the core, config and errors"
    ]
    assert impurities(graph) == [
        "core/decode/x.py:1 imports time: the core does no I/O and reads no clock "
        "(time is passed in)",
        "core/decode/x.py:6 calls datetime.now(): the core reads no clock",
    ]
    assert cycles(graph) == []
