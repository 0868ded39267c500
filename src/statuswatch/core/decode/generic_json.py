"""JSON logs with configurable fields: formats ``json`` and (via a subclass) ``nginx-json``.

``decode.fields`` names each field by a dotted path (``"request.status"`` is
``{"request": {"status": ...}}``)::

    timestamp   required; timestamp_unit s | ms | us | ns (a JSON number) or
                iso8601 (a string, naive means UTC)
    status      required; an integer, an integral float or a digit string ("200")
    service     optional str ("" when absent, null, or the field is not configured)
    route       optional str
    app         optional str

A schema with exactly these paths is built once per decoder (``msgspec.defstruct``),
so everything else in a record is skipped unparsed.

>>> from statuswatch.config import DecodeConfig, FieldMap
>>> fields = FieldMap(timestamp="ts", timestamp_unit="ms", status="http.status",
...                   service="svc")
>>> d = GenericJsonDecoder(DecodeConfig(format="json", fields=fields))
>>> d.decode_one(b'{"ts": 1680600000123, "http": {"status": "404"}, "svc": "billing"}')
Parsed(ts_ms=1680600000123, status=404, service='billing', route='', app='')
>>> d.decode_one(b'{"ts": 1680600000123, "http": {"status": 404.5}}')
Traceback (most recent call last):
...
statuswatch.errors.DecodeError: wrong_type: http.status
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec
import numpy as np
import numpy.typing as npt
from msgspec import UNSET

from statuswatch.config import DecodeConfig, FieldMap, TimestampUnit
from statuswatch.core.columns import I64
from statuswatch.core.decode.base import (
    _MS_PER_UNIT,
    FastColumns,
    JsonDecoder,
    Parsed,
    clf_column,
    decimal_seconds_column,
    dim_value,
    fail,
    in_ranges,
    int_column,
    iso_column,
    status_value,
    timestamp_value,
)
from statuswatch.errors import ConfigError, DecodeError

Getter = Callable[[Any], Any]


@dataclass
class _Node:
    """One key of the path tree; ``leaf`` if some configured path ends here."""

    leaf: bool = False
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(paths: list[list[str]]) -> _Node:
    """The keys of all paths as a tree; a path that is a prefix of another marks a leaf."""
    root = _Node()
    for path in paths:
        node = root
        for key in path:
            node = node.children.setdefault(key, _Node())
        node.leaf = True
    return root


#: A class attribute (not a decoded field) of every root schema: the value of a
#: dimension that is not configured, so one ``attrgetter`` can read all five roles.
_NOT_CONFIGURED = "not_configured_"


def _struct(node: _Node, name: str, *, root: bool = True) -> type[msgspec.Struct]:
    """A Struct with one field per child key: a nested Struct or, for a leaf, ``Any``.

    A missing leaf is ``UNSET``; a missing inner object is an empty instance (so
    its leaves read as ``UNSET``) and a ``null`` one is ``None``.
    """
    fields: list[tuple[str, Any, Any]] = []
    rename: dict[str, str] = {}
    for n, (key, child) in enumerate(node.children.items()):
        attr = f"f{n}"
        rename[attr] = key
        if child.leaf:
            fields.append((attr, Any, UNSET))
        else:
            sub = _struct(child, f"{name}_{n}", root=False)
            fields.append((attr, sub | None, msgspec.field(default_factory=sub)))
    namespace = {_NOT_CONFIGURED: None} if root else None
    return msgspec.defstruct(name, fields, rename=rename, namespace=namespace, gc=False)


def _attrs(root: _Node, path: list[str]) -> tuple[list[str], list[str]]:
    """Attribute names along ``path`` in the schema, and the keys left below a leaf.

    The keys left are non-empty only when a configured path runs through
    another one's leaf (e.g. ``service="upstream"`` and ``route="upstream.name"``);
    the leaf is then decoded as a whole and the rest looked up in it.
    """
    attrs: list[str] = []
    node = root
    for depth, key in enumerate(path):
        attrs.append(f"f{list(node.children).index(key)}")
        node = node.children[key]
        if node.leaf:
            return attrs, path[depth + 1 :]
    raise AssertionError("a configured path ends in a leaf")


def _getter(root: _Node, path: list[str] | None) -> Getter:
    """A function from a decoded record to the value at ``path`` (``UNSET`` if absent).

    Handles every case, including ``null`` inner objects; ``_fast_getter`` is
    the quick path for records without those.
    """
    if path is None:
        return operator.attrgetter(_NOT_CONFIGURED)
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


def _fast_getter(root: _Node, paths: list[list[str] | None]) -> Getter | None:
    """One ``attrgetter`` for all paths; it raises ``AttributeError`` on a ``null``
    inner object. ``None`` if some path runs through a leaf."""
    dotted: list[str] = []
    for path in paths:
        if path is None:
            dotted.append(_NOT_CONFIGURED)
            continue
        attrs, rest = _attrs(root, path)
        if rest:
            return None
        dotted.append(".".join(attrs))
    return operator.attrgetter(*dotted)


def _fast_struct(node: _Node, name: str, leaf_types: dict[tuple[str, ...], Any],
                 prefix: tuple[str, ...] = ()) -> type[msgspec.Struct]:
    """Like ``_struct`` (same attribute names), but strict: typed leaves with a default
    that fails the fast path's checks, inner objects that must not be ``null``."""
    fields: list[tuple[str, Any, Any]] = []
    rename: dict[str, str] = {}
    for n, (key, child) in enumerate(node.children.items()):
        attr = f"f{n}"
        rename[attr] = key
        path = (*prefix, key)
        if child.leaf:
            typ = leaf_types[path]
            fields.append((attr, typ, -1 if typ is int else ""))
        else:
            sub = _fast_struct(child, f"{name}_{n}", leaf_types, path)
            fields.append((attr, sub, msgspec.field(default_factory=sub)))
    return msgspec.defstruct(name, fields, rename=rename, gc=False)


def _digit_status(texts: list[str]) -> tuple[I64, np.ndarray]:
    """Three-digit status strings as ints; ``ok`` false for anything else."""
    n = len(texts)
    status = np.zeros(n, np.int64)
    ok = np.zeros(n, bool)
    lens = np.fromiter(map(len, texts), np.int64, n)
    sel = np.flatnonzero(lens == 3)
    if sel.size == 0:
        return status, ok
    chosen = texts if sel.size == n else [texts[i] for i in sel.tolist()]
    try:
        raw = "".join(chosen).encode("ascii")
    except UnicodeEncodeError:
        return status, ok
    d = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int64) - 48
    status[sel] = d[:, 0] * 100 + d[:, 1] * 10 + d[:, 2]
    ok[sel] = ((d >= 0) & (d <= 9)).all(axis=1)
    return status, ok


#: The timestamp fields of format ``nginx-json`` when ``decode.fields.timestamp`` is
#: not set, in order of precedence (the first a record has is used): the
#: millisecond ``$msec`` first, then the unambiguous ISO time, then ``$time_local``,
#: then ``time``, the usual name for a hand-picked variable.
NGINX_TIME_FIELDS: tuple[tuple[str, TimestampUnit], ...] = (
    ("msec", "s"),
    ("time_iso8601", "iso8601"),
    ("time_local", "clf"),
    ("time", "iso8601"),
)

_NGINX_UNITS: dict[str, TimestampUnit] = dict(NGINX_TIME_FIELDS)


def timestamp_fields(fields: FieldMap, nginx: bool) -> list[tuple[str, TimestampUnit]]:
    """The timestamp fields to look in, in order, each with its unit.

    >>> timestamp_fields(FieldMap(), nginx=False)
    [('time', 'iso8601')]
    >>> timestamp_fields(FieldMap(timestamp="time_local"), nginx=True)
    [('time_local', 'clf')]
    >>> [name for name, _ in timestamp_fields(FieldMap(), nginx=True)]
    ['msec', 'time_iso8601', 'time_local', 'time']
    """
    if fields.timestamp is not None:
        unit = fields.timestamp_unit
        if unit is None:  # an nginx variable brings its unit
            unit = _NGINX_UNITS.get(fields.timestamp, "iso8601") if nginx else "iso8601"
        return [(fields.timestamp, unit)]
    if not nginx:
        return [("time", fields.timestamp_unit or "iso8601")]
    if fields.timestamp_unit is not None:
        raise ConfigError(
            "decode.fields.timestamp_unit: set decode.fields.timestamp too (unset, format "
            "nginx-json reads msec, time_iso8601, time_local or time, each in its own unit)"
        )
    return list(NGINX_TIME_FIELDS)


#: The unit of a timestamp read from a JSON string by the fast path, and its parser.
_STR_COLUMNS: dict[str, Callable[[Sequence[str]], tuple[I64, npt.NDArray[np.bool_]]]] = {
    "iso8601": iso_column,
    "clf": clf_column,
    "s": decimal_seconds_column,  # nginx's $msec
}


def _str_timestamps(unit: str, texts: Sequence[str]) -> tuple[I64, npt.NDArray[np.bool_]]:
    parse = _STR_COLUMNS.get(unit)
    if parse is None:  # a digit string in ms, us or ns: the full decoder's job
        return np.zeros(len(texts), np.int64), np.zeros(len(texts), np.bool_)
    return parse(texts)


class GenericJsonDecoder(JsonDecoder[msgspec.Struct]):
    name = "json"
    #: nginx-json quirks: numeric strings as timestamps, "-" and "" as no value,
    #: the timestamp from one of several fields.
    nginx_quirks: ClassVar[bool] = False

    def __init__(self, cfg: DecodeConfig) -> None:
        f: FieldMap = cfg.fields
        stamps = timestamp_fields(f, self.nginx_quirks)
        self.ts_names = [name for name, _ in stamps]
        self.ts_units = [unit for _, unit in stamps]
        self.unit = self.ts_units[0]
        self.status_name = f.status
        paths = [name.split(".") for name in self.ts_names] + [
            None if path is None else path.split(".")
            for path in (f.status, f.service, f.route, f.app)
        ]
        self._n_ts = len(stamps)
        root = _tree([p for p in paths if p is not None])
        super().__init__(cfg, _struct(root, "GenericJsonRecord"))
        getters = [_getter(root, p) for p in paths]
        self._slow: Getter = lambda record: tuple(get(record) for get in getters)
        self._fast: Getter = _fast_getter(root, paths) or self._slow
        self._init_fast_path(root, paths)

    def init_fast(self) -> None:
        """Set up by ``_init_fast_path`` once the field map is known."""

    def _init_fast_path(self, root: _Node, paths: list[list[str] | None]) -> None:
        """A strict schema for the common shape: an epoch integer or a string timestamp
        (nginx writes every value as a string), an integer status (a string for nginx),
        string dimensions."""
        quirks, k = self.nginx_quirks, self._n_ts
        configured = [tuple(p) for p in paths if p is not None]
        if len(set(configured)) < len(configured):
            return
        if any(_attrs(root, list(p))[1] for p in configured):
            return  # a path runs through another path's leaf
        self._ts_is_str = quirks or self.unit in ("iso8601", "clf")
        types: dict[tuple[str, ...], Any] = {p: str for p in configured}
        for p in configured[:k]:
            types[p] = str if self._ts_is_str else int
        types[configured[k]] = str if quirks else int  # status
        self.set_fast_schema(_fast_struct(root, "FastGenericJsonRecord", types))
        self._fast_getters = [
            None if p is None else operator.attrgetter(".".join(_attrs(root, p)[0]))
            for p in paths
        ]
        # The C scanner: the same types; nginx's "-" is read as "" ("d") by it. One
        # timestamp field is required; of several, each is optional.
        ts_kind = ("S" if k == 1 else "d") if self._ts_is_str else "i"
        dim_kind = "d" if quirks else "s"
        kinds = [ts_kind] * k + ["S" if quirks else "i"] + [dim_kind] * 3
        self._native_kinds = kinds
        self._native_roles = [role for role, p in enumerate(paths) if p is not None]
        self.set_native([(paths[role] or [], kinds[role]) for role in self._native_roles])

    def fast_columns(self, records: list[Any]) -> FastColumns:
        n = len(records)
        cols: list[list[Any]] = [
            [""] * n if get is None else list(map(get, records)) for get in self._fast_getters
        ]
        k = self._n_ts
        raw_status, service, route, app = cols[k:]
        if self.nginx_quirks:
            for column in (service, route, app, *(cols[:k] if k > 1 else ())):
                if "-" in column:
                    for i, v in enumerate(column):
                        if v == "-":
                            column[i] = ""
        status_ints = None if self.nginx_quirks else int_column(raw_status)
        ts_ints = None if self._ts_is_str else int_column(cols[0])
        ok = np.ones(n, np.bool_)
        return self._columns(cols[:k], ts_ints, raw_status, status_ints, service, route, app, ok)

    def native_columns(
        self, ints: npt.NDArray[np.int64], strs: list[list[str]], ok: npt.NDArray[np.bool_]
    ) -> FastColumns:
        n = len(ok)
        int_cols, str_cols = iter(ints), iter(strs)
        cols: list[Any] = [None] * len(self._native_kinds)  # per role; None: not configured
        for role in self._native_roles:  # in the order set_native got them
            cols[role] = next(int_cols) if self._native_kinds[role] == "i" else next(str_cols)
        k = self._n_ts
        raw_status, *dims = cols[k:]
        service, route, app = ([""] * n if c is None else c for c in dims)
        ts_ints = None if self._ts_is_str else cols[0]
        status_ints = None if self.nginx_quirks else raw_status
        return self._columns(cols[:k], ts_ints, raw_status, status_ints, service, route, app, ok)

    def _columns(
        self,
        raw_ts: list[Any],
        ts_ints: I64 | None,
        raw_status: Any,
        status_ints: I64 | None,
        service: list[str],
        route: list[str],
        app: list[str],
        ok: npt.NDArray[np.bool_],
    ) -> FastColumns:
        """The fast paths' common part: timestamps in ms, statuses, the range checks.
        ``raw_ts`` holds a column per timestamp field (several: "" where absent)."""
        if ts_ints is not None:
            num, den = _MS_PER_UNIT[self.unit]
            limit = (1 << 61) // num
            in_int = (ts_ints > -limit) & (ts_ints < limit)
            ok = ok & in_int
            ts = (2 * np.where(in_int, ts_ints, 0) * num + den) // (2 * den)
        elif len(raw_ts) == 1:
            ts, good = _str_timestamps(self.unit, raw_ts[0])
            ok = ok & good
        else:
            ts, good = self._first_timestamp(raw_ts)
            ok = ok & good
        if status_ints is None:
            status, good = _digit_status(raw_status)
            ok &= good
        else:
            status = status_ints
        return FastColumns(ts, status, service, route, app, ok & in_ranges(ts, status))

    def _first_timestamp(self, columns: list[list[str]]) -> tuple[I64, npt.NDArray[np.bool_]]:
        """Each record's timestamp from the first of the fields it has (not "")."""
        n = len(columns[0])
        ts = np.zeros(n, np.int64)
        ok = np.zeros(n, np.bool_)
        taken = np.zeros(n, np.bool_)
        for column, unit in zip(columns, self.ts_units, strict=True):
            absent = column.count("")  # C speed; usually all or none
            if absent == n:
                continue
            if absent == 0 and not taken.any():  # every record has this field
                return _str_timestamps(unit, column)
            present = np.fromiter(map(bool, column), np.bool_, n) & ~taken
            if not present.any():
                continue
            at = np.flatnonzero(present)
            ms, good = _str_timestamps(unit, [column[i] for i in at.tolist()])
            ts[at], ok[at] = ms, good
            taken |= present
            if taken.all():
                break
        return ts, ok

    def config_key(self, field: str) -> str | None:
        """``decode.fields.<role>`` of a field path (or of the timestamp fields together).

        >>> d = GenericJsonDecoder(DecodeConfig(format="json", fields=FieldMap(app="client")))
        >>> d.config_key("time"), d.config_key("client"), d.config_key("other")
        ('decode.fields.timestamp', 'decode.fields.app', None)
        """
        if field in self.ts_names or field == "/".join(self.ts_names):
            return "decode.fields.timestamp"
        f = self.cfg.fields
        for role, path in (("status", self.status_name), ("service", f.service),
                           ("route", f.route), ("app", f.app)):
            if field == path:
                return f"decode.fields.{role}"
        return None

    def extract(self, record: msgspec.Struct) -> Parsed:
        try:
            values = self._fast(record)
        except AttributeError:  # a null inner object
            values = self._slow(record)
        k, quirks = self._n_ts, self.nginx_quirks
        raw_status, service, route, app = values[k:]
        raw_ts, chosen = UNSET, 0
        for j in range(k):
            value = values[j]
            if value is UNSET or (quirks and value in ("-", "")):
                continue
            raw_ts, chosen = value, j
            break
        if raw_ts is UNSET:
            fail("missing_field", "/".join(self.ts_names))
        if raw_status is UNSET or (quirks and raw_status in ("-", "")):
            fail("missing_field", self.status_name)
        try:
            status = status_value(raw_status)
        except DecodeError as exc:
            raise DecodeError(exc.reason, self.status_name) from None
        try:
            ts = timestamp_value(raw_ts, self.ts_units[chosen], digit_strings=quirks)
        except DecodeError as exc:
            raise DecodeError(exc.reason, self.ts_names[chosen]) from None
        # a string is taken as it is (but for nginx's "-"); dim_value handles the rest
        if type(service) is not str or (quirks and service == "-"):
            service = dim_value(service, dash_is_empty=quirks)
        if type(route) is not str or (quirks and route == "-"):
            route = dim_value(route, dash_is_empty=quirks)
        if type(app) is not str or (quirks and app == "-"):
            app = dim_value(app, dash_is_empty=quirks)
        return Parsed(ts, status, service, route, app)
