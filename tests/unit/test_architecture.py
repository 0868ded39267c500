"""The house, drawn from the imports: no import cycles, a pure core that never imports the
shell or reads a clock, and docs/architecture.md as the import graph draws it today."""

from __future__ import annotations

from pathlib import Path

from tools.importgraph import (
    ARCHITECTURE,
    SRC,
    Edge,
    build,
    cycles,
    impurities,
    layer_violations,
    problems,
    render,
)


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


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
    src = write_package(tmp_path, {
        "__init__.py": "",
        "a.py": "from pkg import b\n",
        "b.py": "from pkg.c import thing\n",
        "c.py": "def thing():\n    from . import a\n    return a\n",
        "d.py": "import pkg.a\n",
    })
    graph = build(src, "pkg")
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert Edge("pkg.c", "pkg.a", "function") in graph.edges
    assert problems(graph)[0] == "import cycle: a.py -> b.py -> c.py"


def test_a_type_checking_import_counts_and_a_stub_is_a_module(tmp_path: Path) -> None:
    src = write_package(tmp_path, {
        "__init__.py": "",
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n",
        "b.py": "from pkg import a, _ext\n",
        "_ext.pyi": "def f() -> int: ...\n",
    })
    graph = build(src, "pkg")
    assert Edge("pkg.a", "pkg.b", "typing") in graph.edges
    assert Edge("pkg.b", "pkg._ext", "module") in graph.edges
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def test_a_core_that_imports_the_shell_or_reads_the_clock_is_found(tmp_path: Path) -> None:
    src = write_package(tmp_path, {
        "__init__.py": "",
        "errors.py": "",
        "shell/__init__.py": "",
        "shell/io.py": "from pkg.core import pure\n",
        "core/__init__.py": "",
        "core/pure.py": "from pkg import errors\nfrom pkg.core import decode\n",
        "core/decode/__init__.py": "",
        "core/decode/x.py": (
            "import time\nfrom datetime import datetime\n\n"
            "def now():\n    from pkg.shell import io\n    return datetime.now(), io\n"
        ),
    })
    graph = build(src, "pkg")
    assert layer_violations(graph) == [
        "core/decode/x.py imports shell/io.py: the core imports only the core, config and errors"
    ]
    assert impurities(graph) == [
        "core/decode/x.py:1 imports time: the core does no I/O and reads no clock "
        "(time is passed in)",
        "core/decode/x.py:6 calls datetime.now(): the core reads no clock",
    ]
    assert cycles(graph) == []
