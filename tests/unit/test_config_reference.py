"""The schema, the generated reference, the shipped YAML and the README agree.

``config.py`` is the source. docs/configuration.md must be the generator's output; the
YAML must list every key outside lists (live with its default, or commented under a
section that is off by default) and name no key the schema lacks; the README's key table
must name existing keys with their defaults. Each check returns its problems, so the
tests below also feed it broken inputs and see it fail.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, Field

from statuswatch.cli import main
from statuswatch.config import Settings
from statuswatch.configdoc import COMMAND, Row, reference, reference_rows, render, walk

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "configuration.md"
YAML = REPO / "config" / "statuswatch.yaml"
README = REPO / "README.md"
README_HEADING = "## The config keys that matter"


def reference_problems(text: str) -> list[str]:
    if text == render():
        return []
    return [f"{DOC.relative_to(REPO)} is stale; regenerate it: {COMMAND}"]


def description_problems(settings: type[BaseModel] = Settings) -> list[str]:
    problems = [f"{r.path}: no Field(description=...)" for r in reference_rows(settings)
                if not r.description]
    problems += [f"{s.title}: its model has no docstring"
                 for _, s in walk(reference(settings)) if not s.doc]
    return problems


def _known(rows: dict[str, Row], path: str, problems: list[str], where: str) -> Row | None:
    row = rows.get(path)
    if row is None:
        problems.append(f"{where} names {path}, which is not in the schema")
    return row


def _paths(value: dict[str, Any], prefix: str, rows: dict[str, Row], problems: list[str],
           where: str) -> Iterator[tuple[Row, Any]]:
    """Every key of a YAML mapping at ``prefix``, descending into sections."""
    for key, item in value.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        row = _known(rows, path, problems, where)
        if row is None:
            continue
        yield row, item
        if row.kind == "section" and isinstance(item, dict):
            yield from _paths(item, path, rows, problems, where)
        elif row.kind == "list" and isinstance(item, list):
            for element in item:
                if isinstance(element, dict):
                    yield from _paths(element, f"{path}[]", rows, problems, where)


_KEY_LINE = re.compile(r"^( *)([A-Za-z_]\w*):(.*)$")


def _commented_examples(text: str) -> Iterator[tuple[str, Any]]:
    """(dotted key, parsed example) for each run of comments under a live key.

    ``tls: null`` followed by ``#   ca_file: ...`` lines at the key's indentation is an
    example of the ``tls`` section; ``rules: []`` followed by ``#  - name: ...`` one of
    a ``rules`` item.
    """
    lines = text.splitlines()
    stack: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        match = _KEY_LINE.match(line)
        if match is None:
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(2)))
        block = []
        for following in lines[i + 1:]:
            if not following.startswith(" " * indent + "#"):
                break
            block.append(following[indent + 1:])
        example = yaml.safe_load(textwrap.dedent("\n".join(block))) if block else None
        if isinstance(example, dict | list):
            yield ".".join(k for _, k in stack), example


def yaml_problems(text: str, settings: type[BaseModel] = Settings) -> list[str]:
    rows = {r.path: r for r in reference_rows(settings)}
    problems: list[str] = []
    documented = set()
    for row, value in _paths(yaml.safe_load(text), "", rows, problems, "the YAML"):
        documented.add(row.path)
        if (row.kind == "section" and isinstance(value, dict)) or row.in_list:
            continue  # a list item's keys: checked as the list's value (its default)
        if row.default_text in ("required", "see below") or value != json.loads(row.default_text):
            problems.append(f"the YAML sets {row.path}: {value!r}; the schema's default is "
                            f"{row.default_text}")
    for path, example in _commented_examples(text):
        where = f"the commented example under {path}"
        if isinstance(example, dict):
            documented.update(r.path for r, _ in _paths(example, path, rows, problems, where))
        else:
            for item in example:
                list(_paths(item, f"{path}[]", rows, problems, where))
    problems += [f"the YAML does not list {r.path} (live, or commented under its section)"
                 for r in rows.values() if not r.in_list and r.path not in documented]
    return problems


def _readme_table(text: str) -> list[list[str]]:
    _, found, rest = text.partition(README_HEADING + "\n")
    assert found, f"README.md has no {README_HEADING!r} section"
    section = rest.split("\n## ", 1)[0]
    return [[c.strip() for c in line.strip("|").split(" | ")]
            for line in section.splitlines() if line.startswith("| `")]


def readme_problems(text: str, settings: type[BaseModel] = Settings) -> list[str]:
    """Each row: ``a.b.c`` / ``d`` (a sibling) or ``a.b.*`` keys; ``x`` / ``y`` defaults."""
    rows = {r.path: r for r in reference_rows(settings)}
    problems: list[str] = []
    for cells in _readme_table(text):
        keys = [k.strip("`") for k in cells[0].split(" / ")]
        parent = keys[0].rpartition(".")[0]
        paths = [k if "." in k else f"{parent}.{k}" for k in keys]
        defaults = [d.strip("`") for d in cells[1].split(" / ")]
        for i, path in enumerate(paths):
            if path.endswith(".*"):
                row = _known(rows, path[:-2], problems, "the README's key table")
                if row is not None and row.kind != "section":
                    problems.append(f"the README's key table: {path[:-2]} is not a section")
                continue
            row = _known(rows, path, problems, "the README's key table")
            if row is None or len(defaults) != len(paths):
                continue
            written = None if defaults[i] == "unset" else yaml.safe_load(defaults[i])
            if written != json.loads(row.default_text):
                problems.append(f"the README's key table gives {path} the default "
                                f"{defaults[i]}; the schema's is {row.default_text}")
    return problems


def test_reference_is_the_generators_output(capsys):
    assert main(["config-reference"]) == 0
    printed = capsys.readouterr().out
    assert printed == render()
    assert reference_problems(DOC.read_text(encoding="utf-8")) == []


def test_every_field_and_section_is_described():
    assert description_problems() == []


def test_shipped_yaml_agrees_with_the_schema():
    assert yaml_problems(YAML.read_text(encoding="utf-8")) == []


def test_readme_key_table_names_real_keys_and_defaults():
    assert readme_problems(README.read_text(encoding="utf-8")) == []


def test_readme_links_to_the_reference():
    section = README.read_text(encoding="utf-8").partition(README_HEADING)[2]
    assert "(docs/configuration.md)" in section.split("\n## ", 1)[0]


# The checks fail on broken inputs.


def test_a_stale_reference_names_the_command():
    stale = render().replace("Event-time", "Wall-clock", 1)
    assert reference_problems(stale) == [
        f"docs/configuration.md is stale; regenerate it: {COMMAND}",
    ]


class _Inner(BaseModel):
    """Described."""

    x: int = Field(1, description="Described.")
    y: int = 2


class _Undocumented(BaseModel):
    """Top."""

    inner: _Inner = Field(_Inner(), description="Described.")
    items: list[_Inner] = Field(default_factory=list)


def test_a_field_without_description_is_named():
    assert description_problems(_Undocumented) == [
        "items: no Field(description=...)",
        "inner.y: no Field(description=...)",
        "items[].y: no Field(description=...)",
    ]


def test_a_section_without_docstring_is_named():
    class Bare(BaseModel):
        z: int = Field(0, description="Described.")

    class Top(BaseModel):
        bare: Bare = Field(Bare(), description="Described.")

    assert description_problems(Top) == ["`bare`: its model has no docstring"]


def _shipped() -> str:
    return YAML.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("  size_seconds: 10 ", "  size_seconds: 5 ",
         "the YAML sets window.size_seconds: 5; the schema's default is 10.0"),
        ("  keep: 3 ", "  kept: 3 ", "the YAML names state.kept, which is not in the schema"),
        ("  keep: 3 ", "  #keep: 3 ", "the YAML does not list state.keep"),
        ("#   check_hostname: true", "#   check_hostnames: true",
         "the commented example under kafka.tls names kafka.tls.check_hostnames"),
        ("#   check_hostname: true", "#", "the YAML does not list kafka.tls.check_hostname"),
        ("#    shadow: false", "#    shade: false",
         "the commented example under detect.rules names detect.rules[].shade"),
        ("#    resend_interval_seconds: 60", "#    resend_seconds: 60",
         "the commented example under alerts.sinks names alerts.sinks[].resend_seconds"),
    ],
)
def test_a_yaml_disagreement_is_named(old, new, problem):
    text = _shipped()
    assert old in text
    problems = yaml_problems(text.replace(old, new, 1))
    assert any(p.startswith(problem) for p in problems), problems


_TABLE = """{heading}

| key | default | meaning |
|---|---|---|
{row}

## Next
"""


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("| `detect.fire_scor` | 6 | x |",
         "the README's key table names detect.fire_scor, which is not in the schema"),
        ("| `detect.k` / `n` | 2 / 3 | x |",
         "the README's key table names detect.n, which is not in the schema"),
        ("| `detect.volum.*` | x | x |",
         "the README's key table names detect.volum, which is not in the schema"),
        ("| `detect.fire_score` / `clear_score` | 6 / 4 | x |",
         "the README's key table gives detect.clear_score the default 4; the schema's is 3.0"),
        ("| `state.dir` | `/var/lib` | x |",
         "the README's key table gives state.dir the default /var/lib; the schema's is null"),
    ],
)
def test_a_readme_disagreement_is_named(row, problem):
    assert readme_problems(_TABLE.format(heading=README_HEADING, row=row)) == [problem]


def test_a_good_readme_row_passes():
    row = "| `detect.fire_score` / `clear_score` | 6 / 3 | x |\n| `state.dir` | unset | x |"
    assert readme_problems(_TABLE.format(heading=README_HEADING, row=row)) == []


def test_sink_types_list_their_shared_keys_once():
    sections = {s.title: [r.path for r in s.rows] for _, s in walk(reference())}
    union = sections["`alerts.sinks[]`"]
    webhook = sections["`alerts.sinks[]` with `type: webhook`"]
    assert union[0] == "alerts.sinks[].type"
    assert {"alerts.sinks[].name", "alerts.sinks[].queue_size"} <= set(union)
    assert "alerts.sinks[].url" in webhook
    assert not set(union) & set(webhook)


def test_a_union_of_sections_without_a_key_is_refused():
    class One(BaseModel):
        """One."""

    class Two(BaseModel):
        """Two."""

    class Top(BaseModel):
        either: list[One | Two] = Field(default_factory=list, description="Described.")

    with pytest.raises(TypeError, match=r"either\[\]: a union of sections needs"):
        reference(Top)
