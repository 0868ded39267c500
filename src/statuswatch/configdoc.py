"""The configuration reference, generated from the settings schema.

The schema in ``config.py`` is the one source: each field's ``description``, type,
default and constraints, and each section model's docstring. ``statuswatch
config-reference`` prints the reference; ``docs/configuration.md`` is its output, and
a test fails when the two differ.

>>> rows = {row.path: row for row in reference_rows()}
>>> rows["window.size_seconds"].env
'STATUSWATCH_WINDOW__SIZE_SECONDS'
>>> rows["window.size_seconds"].type_text
'number, > 0, <= 3600'
>>> rows["alerts.sinks[].type"].type_text
'one of `alertmanager`, `webhook`, `kafka`'
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from statuswatch.config import Settings

ENV_PREFIX = "STATUSWATCH_"
ENV_DELIMITER = "__"
COMMAND = "statuswatch config-reference > docs/configuration.md"

Kind = Literal["leaf", "section", "list"]


@dataclass(frozen=True)
class Row:
    """One key of the reference."""

    path: str  # dotted; ``[]`` marks the items of a list, e.g. ``detect.rules[].name``
    kind: Kind  # a value, a nested section, or a list of sections
    type_text: str
    default_text: str
    description: str
    env: str  # empty under a list: a list is set as a whole

    @property
    def in_list(self) -> bool:
        return "[]" in self.path


@dataclass
class Section:
    """A heading of the reference: a model reached at ``path``, with its keys."""

    path: str
    title: str
    doc: str
    rows: list[Row] = field(default_factory=list)
    children: list[Section] = field(default_factory=list)


def _unwrap(tp: Any) -> Any:
    """The type without ``Annotated`` and without ``None`` in a union."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (Union, types.UnionType):
        parts = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(parts) == 1:
            return _unwrap(parts[0])
    return tp


def _is_model(tp: Any) -> bool:
    return inspect.isclass(tp) and issubclass(tp, BaseModel)


def _models_of(tp: Any) -> list[type[BaseModel]]:
    """The models of a model type or of a union of models; [] for anything else."""
    tp = _unwrap(tp)
    if _is_model(tp):
        return [tp]
    if typing.get_origin(tp) in (Union, types.UnionType):
        parts = [_unwrap(a) for a in typing.get_args(tp)]
        if all(_is_model(p) for p in parts):
            return parts
    return []


def _list_item(tp: Any) -> Any | None:
    tp = _unwrap(tp)
    if typing.get_origin(tp) is list:
        return typing.get_args(tp)[0]
    return None


def _discriminator(tp: Any) -> str | None:
    """The discriminator key of an ``Annotated[A | B, Field(discriminator=...)]``."""
    if typing.get_origin(tp) is typing.Annotated:
        for meta in typing.get_args(tp)[1:]:
            if isinstance(meta, FieldInfo) and isinstance(meta.discriminator, str):
                return meta.discriminator
    return None


_NAMES: dict[Any, str] = {
    str: "string", int: "integer", float: "number", bool: "boolean",
    Path: "path", SecretStr: "secret string",
}


def type_name(tp: Any) -> str:
    """A reader's name for a field's type.

    >>> type_name(list[Literal["a", "b"]] | None)
    'list of (one of `a`, `b`) or null'
    """
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        parts = [type_name(a) for a in args if a is not type(None)]
        text = " or ".join(parts)
        return f"{text} or null" if type(None) in args else text
    if origin is Literal:
        return "one of " + ", ".join(f"`{v}`" for v in typing.get_args(tp))
    if origin is list:
        item = type_name(typing.get_args(tp)[0])
        return f"list of ({item})" if " " in item else f"list of {item}"
    if origin is dict:
        key, value = (type_name(a) for a in typing.get_args(tp))
        return f"mapping of {key} to {value}"
    if _is_model(tp):
        return "section"
    return _NAMES.get(tp, getattr(tp, "__name__", str(tp)))


#: The bounds a field's metadata can carry: their class, the attribute holding the limit,
#: and how the reference writes them.
_BOUNDS: tuple[tuple[type[Any], str, str], ...] = (
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.Le, "le", "<="),
    (annotated_types.MinLen, "min_length", "length >="),
    (annotated_types.MaxLen, "max_length", "length <="),
)


def _constraints(info: FieldInfo) -> list[str]:
    out: list[str] = []
    for meta in info.metadata:
        bound = next((f"{sign} {getattr(meta, limit)}" for kind, limit, sign in _BOUNDS
                      if isinstance(meta, kind)), None)
        if bound is not None:
            out.append(bound)
        elif getattr(meta, "pattern", None) is not None:
            out.append(f"matches `{meta.pattern}`")
    return out


def _default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
        # a list of sections: each item's keys that differ from that section's defaults
        return json.dumps([v.model_dump(mode="json", exclude_defaults=True) for v in value])
    return json.dumps(value, default=str)


def _env(path: str) -> str:
    if "[]" in path:
        return ""
    return ENV_PREFIX + ENV_DELIMITER.join(path.split(".")).upper()


def _doc(model: type[BaseModel]) -> str:
    """The model's own docstring (not one inherited), cleaned; '' when it has none."""
    raw = model.__dict__.get("__doc__")
    return inspect.cleandoc(raw) if isinstance(raw, str) else ""


def _row(path: str, info: FieldInfo, kind: Kind, type_text: str | None = None) -> Row:
    annotation = info.annotation
    text = type_text or ", ".join([type_name(annotation), *_constraints(info)])
    return Row(
        path=path, kind=kind, type_text=text, default_text=_default_text(info),
        description=" ".join((info.description or "").split()), env=_env(path),
    )


def _section(model: type[BaseModel], path: str, title: str, qualifier: str = "",
             skip: frozenset[str] = frozenset()) -> Section:
    """The section of ``model`` at ``path``: its rows, then one child per nested model.

    ``qualifier`` follows the titles of nested sections, e.g. `` (`type: webhook`)``.
    """
    section = Section(path=path, title=title, doc=_doc(model))
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        key = f"{path}.{name}" if path else name
        item = _list_item(info.annotation)
        if _models_of(info.annotation):
            section.rows.append(_row(key, info, "section"))
            section.children.append(_models_section(
                info.annotation, key, qualifier, info.description or "", info.discriminator,
            ))
        elif item is not None and _models_of(item):
            section.rows.append(_row(key, info, "list"))
            section.children.append(
                _models_section(item, f"{key}[]", qualifier, info.description or ""),
            )
        else:
            section.rows.append(_row(key, info, "leaf"))
    return section


def _models_section(tp: Any, path: str, qualifier: str, doc: str,
                    discriminator: Any = None) -> Section:
    """The section of one model, or of a union of models told apart by a key.

    A union gets the key and the keys every variant shares, then one child per variant.
    """
    models = _models_of(tp)
    title = f"`{path}`{qualifier}"
    if len(models) == 1:
        return _section(models[0], path, title, qualifier)
    key = _discriminator(tp) or discriminator
    if not isinstance(key, str):
        raise TypeError(f"{path}: a union of sections needs a discriminator key to document")
    variants = [_section(m, path, title, qualifier) for m in models]
    names = [
        v for m in models for v in typing.get_args(_unwrap(m.model_fields[key].annotation))
    ]
    union = Section(path=path, title=title, doc=doc)
    union.rows.append(_row(
        f"{path}.{key}", models[0].model_fields[key], "leaf",
        "one of " + ", ".join(f"`{n}`" for n in names),
    ))
    shared = [
        row for row in variants[0].rows
        if row.path != f"{path}.{key}" and all(row in v.rows for v in variants[1:])
    ]
    union.rows.extend(shared)
    skip = frozenset({key} | {r.path.rsplit(".", 1)[1] for r in shared})
    for model, name in zip(models, names, strict=True):
        union.children.append(_section(
            model, path, f"`{path}` with `{key}: {name}`", f" (`{key}: {name}`)", skip,
        ))
    return union


def reference(settings: type[BaseModel] = Settings) -> list[Section]:
    """One section per top-level key of ``settings``."""
    return _section(settings, "", "").children


def walk(sections: list[Section]) -> Iterator[tuple[int, Section]]:
    """Every section and its depth, parents before children, in document order."""
    def go(section: Section, depth: int) -> Iterator[tuple[int, Section]]:
        yield depth, section
        for child in section.children:
            yield from go(child, depth + 1)

    for section in sections:
        yield from go(section, 0)


def reference_rows(settings: type[BaseModel] = Settings) -> list[Row]:
    """Every key of the reference, the top-level sections first."""
    top = _section(settings, "", "")
    return top.rows + [row for _, section in walk(top.children) for row in section.rows]


def _default_cell(text: str) -> str:
    return text if text in ("required", "see below") else f"`{_cell(text)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else "—"


def render(settings: type[BaseModel] = Settings) -> str:
    """``docs/configuration.md``."""
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated from src/statuswatch/config.py by `{COMMAND}`; do not edit. -->",
        "",
        "statuswatch reads a YAML file (`--config`), overridden by environment variables,",
        "overridden by command-line flags. Every key below is a dotted path into that YAML.",
        "Unknown keys and bad values fail at start, naming the dotted key.",
        "",
        "The environment variable of a key is `STATUSWATCH_` and the path in capitals with",
        "`__` between its parts, e.g. `STATUSWATCH_WINDOW__SIZE_SECONDS=5`. Keys inside a",
        "list (`[]`) have none: set the whole list as JSON, e.g.",
        "`STATUSWATCH_DETECT__RULES='[{\"name\": \"scanners\", \"codes\": [\"404\"]}]'`.",
        "",
        "[`config/statuswatch.yaml`](../config/statuswatch.yaml) holds every default with a",
        "short comment; a test keeps it, this page and the schema in agreement.",
        "",
    ]
    top = _section(settings, "", "")
    lines += ["| section | what it is for |", "|---|---|"]
    lines += [f"| [`{r.path}`](#{r.path}) | {_cell(r.description)} |" for r in top.rows]
    lines.append("")
    for depth, section in walk(top.children):
        lines += [f"{'#' * min(depth + 2, 6)} {section.title}", ""]
        if section.doc:
            lines += [section.doc, ""]
        lines += [
            "| key | type | default | meaning | environment |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| `{r.path}` | {_cell(r.type_text)} | {_default_cell(r.default_text)} "
            f"| {_cell(r.description)} | {f'`{r.env}`' if r.env else '—'} |"
            for r in section.rows
        ]
        lines.append("")
    return "\n".join(lines)
