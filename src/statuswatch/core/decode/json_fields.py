"""A JSON format's fields, declared once, and what is derived from them.

Each JSON format declares the fields it reads as one table of ``JsonField``:
the role a field feeds (``timestamp``, ``status`` or a dimension), its key path
from the top-level object, the JSON type of the common record shape, and its
quirks. Several fields of one role are alternatives: the first one a record has
is used (nginx's ``msec``/``time_iso8601``/``time_local``/``time``; Kong's
``consumer.id``, else ``consumer.username``). ``timestamp`` and ``status`` are
required (one of their alternatives must be present); the dimensions are
optional (``""`` when absent or ``null``). A table without a ``status`` field
reads events without a status (format ``json``, ``decode.fields.status: null``).
From the table come:

- ``record_schema``: the full msgspec schema of the reference decoder, with
  exactly the table's paths (everything else in a record is skipped unparsed);
- ``record_values``: reading the table's fields from a decoded record;
- ``scan_plan``: the C scanner's field table (``_jsonscan``) and where each
  field's column comes out.

>>> table = FieldTable((JsonField("timestamp", ("started_at",), "int", unit="ms"),
...                     JsonField("status", ("response", "status"), "int"),
...                     JsonField("app", ("consumer", "id"), "str"),
...                     JsonField("app", ("consumer", "username"), "str")), typed=True)
>>> scan_plan(table).fields
[(('started_at',), 'i'), (('response', 'status'), 'i'), (('consumer', 'id'), 's'), \
(('consumer', 'username'), 'f')]
>>> record = msgspec.json.decode(b'{"started_at": 1, "response": {"status": 200}}',
...                              type=record_schema(table, "Example"))
>>> values, _ = record_values(table)
>>> values(record)
(1, 200, None, None)
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple

import msgspec
from msgspec import UNSET, UnsetType

from statuswatch.config import TimestampUnit
from statuswatch.core.decode.protocol import fail

Role = Literal["timestamp", "status", "service", "route", "app"]
FieldType = Literal["int", "str"]
#: The roles in the order of ``Parsed``'s fields; the first two are required.
ROLES: Final[tuple[Role, ...]] = ("timestamp", "status", "service", "route", "app")
REQUIRED_ROLES: Final[tuple[Role, ...]] = ("timestamp", "status")
DIMENSION_ROLES: Final[tuple[Role, ...]] = ("service", "route", "app")

Getter = Callable[[Any], Any]


class JsonField(NamedTuple):
    """One field a JSON format reads."""

    role: Role
    #: Keys from the top-level object: ``("response", "status")``.
    path: tuple[str, ...]
    #: The JSON type of the common shape, the one the C scanner reads (anything else
    #: takes the full decoder). A typed table's full schema accepts only this type
    #: (and ``null`` for a dimension).
    type: FieldType
    #: A timestamp's unit: s | ms | us | ns (epoch) or iso8601 | clf.
    unit: TimestampUnit | None = None
    #: ``"-"`` means "no value" (Envoy, nginx): a dimension reads it as ``""``; for a
    #: timestamp or status, ``"-"`` and ``""`` count as absent.
    dash_is_empty: bool = False

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


class FieldTable(NamedTuple):
    """A JSON format's fields (see the module docstring)."""

    fields: tuple[JsonField, ...]
    #: The full schema checks each field's JSON type (``wrong_type`` with the field's
    #: path). Untyped, a field takes any JSON value and the decoder checks it (format
    #: ``json`` accepts ``"200"`` and ``200.0`` as a status), and a ``null`` object on
    #: a field's path counts as absent.
    typed: bool
    #: Epoch timestamps may also be decimal strings (nginx's ``$msec``).
    digit_strings: bool = False

    def of(self, role: Role) -> list[tuple[int, JsonField]]:
        """The fields of ``role`` with their positions, in order of precedence."""
        return [(i, f) for i, f in enumerate(self.fields) if f.role == role]


@dataclass
class _Node:
    """One key of the path tree; ``leaf`` if some field's path ends here."""

    leaf: bool = False
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(table: FieldTable) -> _Node:
    """The keys of all paths as a tree; a path that is a prefix of another marks a leaf."""
    root = _Node()
    for f in table.fields:
        node = root
        for key in f.path:
            node = node.children.setdefault(key, _Node())
        node.leaf = True
    return root


def _leaf_type(table: FieldTable, path: tuple[str, ...]) -> tuple[Any, Any]:
    """The type and default of the leaf at ``path`` in the full schema."""
    if not table.typed:
        return Any, UNSET
    fields = [f for f in table.fields if f.path == path]
    types = {f.type for f in fields}
    assert len(types) == 1, f"{'.'.join(path)} is declared with types {sorted(types)}"
    typ = int if types.pop() == "int" else str
    if any(f.role in REQUIRED_ROLES for f in fields):
        return typ | UnsetType, UNSET
    return typ | None, None


def _needs_object(table: FieldTable, prefix: tuple[str, ...]) -> bool:
    """Must the object at ``prefix`` not be ``null``? In a typed table: when a
    required field lies below it (a ``null`` there is ``wrong_type``)."""
    n = len(prefix)
    return table.typed and any(
        f.role in REQUIRED_ROLES and f.path[:n] == prefix for f in table.fields
    )


def _struct(table: FieldTable, node: _Node, name: str, prefix: tuple[str, ...] = ()
            ) -> type[msgspec.Struct]:
    """A Struct with one field per child key: a nested Struct or a leaf.

    A missing leaf is its default (``UNSET``, or ``None`` for a typed dimension); a
    missing inner object is an empty instance (so its leaves read as missing).
    """
    fields: list[tuple[str, Any, Any]] = []
    rename: dict[str, str] = {}
    for n, (key, child) in enumerate(node.children.items()):
        attr = f"f{n}"
        rename[attr] = key
        path = (*prefix, key)
        if child.leaf:
            typ, default = _leaf_type(table, path)
            fields.append((attr, typ, default))
        else:
            sub = _struct(table, child, f"{name}_{n}", path)
            typ = sub if _needs_object(table, path) else sub | None
            fields.append((attr, typ, msgspec.field(default_factory=sub)))
    return msgspec.defstruct(name, fields, rename=rename, gc=False)


def record_schema(table: FieldTable, name: str) -> type[msgspec.Struct]:
    """The full msgspec schema of ``table``: its paths only, unknown keys skipped."""
    return _struct(table, _tree(table), name)


def _attrs(root: _Node, path: Sequence[str]) -> tuple[list[str], list[str]]:
    """Attribute names along ``path`` in the schema, and the keys left below a leaf.

    The keys left are non-empty only when a path runs through another one's leaf
    (e.g. ``service="upstream"`` and ``route="upstream.name"``); the leaf is then
    decoded as a whole and the rest looked up in it.
    """
    attrs: list[str] = []
    node = root
    for depth, key in enumerate(path):
        attrs.append(f"f{list(node.children).index(key)}")
        node = node.children[key]
        if node.leaf:
            return attrs, list(path[depth + 1 :])
    raise AssertionError("every path ends in a leaf")


def _getter(root: _Node, path: Sequence[str]) -> Getter:
    """A function from a decoded record to the value at ``path`` (``UNSET`` if absent),
    for every case, including ``null`` inner objects."""
    attrs, rest = _attrs(root, path)

    def get(record: Any) -> Any:
        obj = record
        for attr in attrs:
            if obj is None:
                return UNSET
            obj = getattr(obj, attr)
        for key in rest:
            if obj is None or obj is UNSET:
                return UNSET
            if type(obj) is not dict:
                fail("wrong_type")
            obj = obj.get(key, UNSET)
        return obj

    return get


def record_values(table: FieldTable) -> tuple[Getter, Getter]:
    """Two functions from a decoded record to the tuple of its values, one per field
    of ``table``: a quick one (one ``attrgetter``; it raises ``AttributeError`` on a
    ``null`` inner object) and one for every case."""
    root = _tree(table)
    getters = [_getter(root, f.path) for f in table.fields]

    def every_case(record: Any) -> tuple[Any, ...]:
        return tuple(get(record) for get in getters)

    dotted: list[str] = []
    for f in table.fields:
        attrs, rest = _attrs(root, f.path)
        if rest:
            return every_case, every_case
        dotted.append(".".join(attrs))
    quick = operator.attrgetter(*dotted)
    if len(dotted) == 1:
        return lambda record: (quick(record),), every_case
    return quick, every_case


class ScanPlan(NamedTuple):
    """The C scanner's fields for a table, and where each table field comes out."""

    #: ``(path, kind)`` per scanner field (``_jsonscan``: "i" int64, "m" epoch seconds
    #: as int64 milliseconds, "S" str, "s" optional str, "d" "-" as "", "f" stands in
    #: for the str field before it where that one is "").
    fields: list[tuple[tuple[str, ...], str]]
    #: Per table field: ``("i", row)`` or ``("m", row)`` of the int64 array (``"m"``:
    #: milliseconds already), ``("s", index)`` of the str columns, or ``None`` (an "f"
    #: field, folded into the field before it).
    columns: list[tuple[str, int] | None]


def _scan_kind(table: FieldTable, f: JsonField, alternative: int) -> str | None:
    """The scanner's kind for ``f``, the ``alternative``-th field of its role."""
    several = len(table.of(f.role)) > 1
    if f.type == "int":  # the scanner's ints are required: one field, a required role
        if f.role not in REQUIRED_ROLES or several:
            return None
        # epoch seconds may have a fraction: the scanner rounds them to milliseconds
        return "m" if f.role == "timestamp" and f.unit == "s" else "i"
    if f.role in REQUIRED_ROLES:
        if not several:
            return "S"
        return "d" if f.dash_is_empty else "s"  # "" marks the absent ones
    if alternative == 0:
        return "d" if f.dash_is_empty else "s"
    return "f" if alternative == 1 and not f.dash_is_empty else None


def scan_plan(table: FieldTable) -> ScanPlan | None:
    """The C scanner's fields for ``table``; ``None`` if it cannot read them (a path
    through another path's leaf, one path with two kinds, an unsupported alternative).
    """
    root = _tree(table)
    if any(_attrs(root, f.path)[1] for f in table.fields):
        return None
    fields: list[tuple[tuple[str, ...], str]] = []
    columns: list[tuple[str, int] | None] = []
    seen: dict[tuple[str, ...], tuple[str, tuple[str, int] | None]] = {}
    n_ints = n_strs = 0
    last_added = -1  # the table field behind the last scanner field
    for i, f in enumerate(table.fields):
        alternative = [g for _, g in table.of(f.role)].index(f)
        kind = _scan_kind(table, f, alternative)
        if kind is None:
            return None
        if f.path in seen:  # one column for both (Envoy's app may be a dimension field)
            seen_kind, shared = seen[f.path]
            if seen_kind != kind or kind == "f":
                return None
            columns.append(shared)
            continue
        if kind == "f" and (last_added != i - 1 or table.fields[last_added].role != f.role):
            return None  # "f" stands in for the scanner field just before it
        column: tuple[str, int] | None = None
        if kind in ("i", "m"):
            column = (kind, n_ints)
            n_ints += 1
        elif kind != "f":
            column = ("s", n_strs)
            n_strs += 1
        fields.append((f.path, kind))
        seen[f.path] = (kind, column)
        columns.append(column)
        last_added = i
    return ScanPlan(fields, columns)
