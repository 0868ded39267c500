"""The JSON decoder: one class for every JSON format, driven by the format's field table.

``decode_one`` (the reference) decodes a record with the full msgspec schema
derived from the table (``json_fields.record_schema``) and checks its values
(``extract``). The batch path (``decode``) takes a fast path when the optional C
extension is built: the C scanner (``_jsonscan.c``) validates each whole record
as JSON, checks its size, UTF-8 and depth itself and reads the table's fields of
the whole batch into int64 and str columns, which ``scanned_columns`` checks
(numpy). Every record it does not vouch for (a field absent, ``null``, of
another type, out of range, anything unusual) goes through the full decoder, so
the fast path can only be faster, never different
(``tests/unit/test_fast_path.py``). A file's block of lines (``Lines``) is
scanned in place (``Scanner.scan_lines``): no bytes object per line it vouches
for (``tests/unit/test_block_scan.py``). Without the extension, ``decode`` runs
the full decoder record by record after batch-wide prechecks (``precheck_batch``).
(Decoding the batch as one JSON array was measured slower: building the array
copies the batch, and records that are not complete JSON values could merge
across their boundaries.)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import msgspec
import numpy as np
from msgspec import UNSET

from statuswatch.config import DecodeConfig
from statuswatch.core.columns import (
    EVENT_CODE,
    MAX_STATUS,
    MIN_STATUS,
    DecodedBatch,
    InvalidRecord,
)
from statuswatch.core.decode.batch import BaseDecoder, Columns, precheck, precheck_batch
from statuswatch.core.decode.json_fields import (
    DIMENSION_ROLES,
    FieldTable,
    JsonField,
    record_schema,
    record_values,
    scan_plan,
)
from statuswatch.core.decode.lines import Lines, indexable
from statuswatch.core.decode.protocol import Parsed, dim_value, fail, path_route, status_value
from statuswatch.core.decode.scanned_columns import FastColumns, scanned_columns
from statuswatch.core.decode.timestamps import (
    END_TS_MS,
    MIN_TS_MS,
    LocalZone,
    timestamp_value,
)
from statuswatch.errors import DecodeError

if TYPE_CHECKING:
    from statuswatch.core.decode._jsonscan import Scanner


def _native_scanner() -> type[Scanner] | None:
    """The C scanner (``_jsonscan.c``), or ``None`` if the optional extension is not built."""
    try:
        from statuswatch.core.decode._jsonscan import Scanner
    except ImportError:
        return None
    return Scanner


#: The C scanner's class; ``None`` when the optional extension is not built.
NATIVE_SCANNER: Final = _native_scanner()
#: Whether the JSON decoders' fast path runs on the C scanner (read at every
#: ``decode``). False when the extension is missing (or a test or benchmark sets
#: it): the full decoder then decodes every record, with the same results.
NATIVE_SCAN: bool = NATIVE_SCANNER is not None
#: The deepest nesting the C scanner vouches for, whatever ``max_depth`` allows:
#: deeper records take the full decoder. Well below msgspec's recursion limit,
#: so that msgspec decodes every record the scanner vouches for.
NATIVE_MAX_DEPTH: Final = 128
#: Batches the fast path rests after one that was mostly records it did not vouch for.
REST_BATCHES: Final = 16

#: What a msgspec decode may raise for bad input (msgspec.ValidationError is a
#: msgspec.DecodeError; UnicodeDecodeError comes from strings it decodes).
JSON_ERRORS: Final = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)


class _AnyObject(msgspec.Struct, gc=False):
    """Accepts any JSON object (all fields are skipped); used to classify failures."""


_OBJECT_CHECK: Final = msgspec.json.Decoder(_AnyObject)


def json_failure(value: bytes, exc: Exception) -> str:
    """The reason for a failed msgspec decode of ``value`` (already size/UTF-8/depth checked).

    A ``ValidationError`` only means the JSON had an unexpected shape; decoding
    again with a schema that accepts every object tells apart invalid JSON,
    a non-object and a field of the wrong type.
    """
    if isinstance(exc, RecursionError):
        return "too_deep"
    if isinstance(exc, UnicodeDecodeError):
        return "invalid_utf8"
    if not isinstance(exc, msgspec.ValidationError):
        return "invalid_json"
    try:
        _OBJECT_CHECK.decode(value)
    except msgspec.ValidationError:
        return "not_an_object"
    except msgspec.DecodeError:
        return "invalid_json"
    except RecursionError:
        return "too_deep"
    return "wrong_type"


_ERROR_PATH: Final = re.compile(r"at `\$\.?([^`]*)`")


def error_path(exc: Exception) -> str:
    """The dotted path of the field a msgspec ``ValidationError`` names ("" if none).

    >>> error_path(msgspec.ValidationError("Expected `int`, got `str` - at `$.response.status`"))
    'response.status'
    """
    m = _ERROR_PATH.search(str(exc))
    return "" if m is None else m.group(1)


_NO_VALUE: Final = ("-", "")


def _no_dimension(value: Any) -> bool:
    return value is UNSET or value is None or value == ""


def _dimension(values: tuple[Any, ...], fields: list[tuple[int, JsonField]]) -> str:
    """A dimension from the first of its fields with a value; ``""`` if none has one."""
    if not fields:
        return ""
    at, f = fields[0]
    if len(fields) > 1 and _no_dimension(values[at]):
        at, f = next((p for p in fields[1:] if not _no_dimension(values[p[0]])), fields[-1])
    value = values[at]
    if type(value) is str and not (f.dash_is_empty and value == "-"):
        return value
    return dim_value(value, dash_is_empty=f.dash_is_empty)


def _extractor(
    table: FieldTable, zone: LocalZone, route_segments: int | None
) -> Callable[[Any], Parsed]:
    """``JsonDecoder.extract`` for ``table`` (``zone``: of ISO-8601 times without an
    offset; ``route_segments``: the route is a path, cut to that many segments): a
    closure over plain locals, since it runs
    once per record the fast path does not vouch for (every record without the C
    scanner). The common case (an int status, an epoch-ms integer or a string
    timestamp, string dimensions) makes no call per value."""
    values_of, every_case = record_values(table)
    stamps = [(at, f.dash_is_empty, f) for at, f in table.of("timestamp")]
    ts_names = "/".join(f.dotted for _, f in table.of("timestamp"))
    # no status field: an event stream, every record counts as EVENT_CODE
    status_fields = table.of("status")
    status_at, status_dash, status_name = -1, False, ""
    if status_fields:
        [(status_at, status_field)] = status_fields
        status_dash, status_name = status_field.dash_is_empty, status_field.dotted
    digit_strings = table.digit_strings
    # per dimension: the first field's position (-1: none), whether "-" is "", whether
    # it has alternatives, and all its fields for the general case
    dims = [table.of(role) for role in DIMENSION_ROLES]
    (sv_at, sv_dash, sv_alt), (rt_at, rt_dash, rt_alt), (ap_at, ap_dash, ap_alt) = (
        (fields[0][0], fields[0][1].dash_is_empty, len(fields) > 1) if fields else (-1, False,
                                                                                   False)
        for fields in dims
    )
    sv_fields, rt_fields, ap_fields = dims

    def extract(record: Any) -> Parsed:
        try:
            values = values_of(record)
        except AttributeError:  # a null inner object
            values = every_case(record)
        raw_ts: Any = UNSET
        chosen: JsonField | None = None
        for at, dash, f in stamps:
            value = values[at]
            if value is not UNSET and not (dash and value in _NO_VALUE):
                raw_ts, chosen = value, f
                break
        if chosen is None:
            fail("missing_field", ts_names)
        raw_status = values[status_at] if status_at >= 0 else EVENT_CODE
        if raw_status is UNSET or (status_dash and raw_status in _NO_VALUE):
            fail("missing_field", status_name)
        if type(raw_status) is int and MIN_STATUS <= raw_status <= MAX_STATUS:
            status = raw_status
        elif status_at < 0:
            status = EVENT_CODE
        else:
            try:
                status = status_value(raw_status)
            except DecodeError as exc:
                raise DecodeError(exc.reason, status_name) from None
        unit = chosen.unit or "iso8601"
        if unit == "ms" and type(raw_ts) is int and MIN_TS_MS <= raw_ts < END_TS_MS:
            ts = raw_ts
        else:
            try:
                ts = timestamp_value(raw_ts, unit, digit_strings=digit_strings, zone=zone)
            except DecodeError as exc:
                raise DecodeError(exc.reason, chosen.dotted) from None
        service = values[sv_at] if sv_at >= 0 else ""
        if type(service) is not str or (sv_dash and service == "-") or (sv_alt and not service):
            service = _dimension(values, sv_fields)
        route = values[rt_at] if rt_at >= 0 else ""
        if type(route) is not str or (rt_dash and route == "-") or (rt_alt and not route):
            route = _dimension(values, rt_fields)
        if route_segments and route:
            route = path_route(route, route_segments)
        app = values[ap_at] if ap_at >= 0 else ""
        if type(app) is not str or (ap_dash and app == "-") or (ap_alt and not app):
            app = _dimension(values, ap_fields)
        return Parsed(ts, status, service, route, app)

    return extract


class JsonDecoder(BaseDecoder):
    """A decoder of JSON objects for the fields of ``table`` (see the module docstring).

    Subclasses build their format's table in ``__init__`` and may name the
    configuration keys of fields (``config_key``).
    """

    def __init__(self, cfg: DecodeConfig, table: FieldTable, schema_name: str) -> None:
        super().__init__(cfg)
        self.max_depth = cfg.max_depth
        self.table = table
        self.schema = record_schema(table, schema_name)
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(self.schema)
        #: The details naming the timestamp and the status (``DecodeError.detail``).
        self.ts_names = [f.dotted for _, f in table.of("timestamp")]
        self.status_name = next((f.dotted for _, f in table.of("status")), None)
        self._extract = _extractor(table, self.zone, self.route_segments)
        self._plan = scan_plan(table)
        self._scanner: Scanner | None = None
        if NATIVE_SCANNER is not None and self._plan is not None:
            paths = tuple(tuple(key.encode() for key in path) for path, _ in self._plan.fields)
            kinds = "".join(kind for _, kind in self._plan.fields).encode("ascii")
            depth = min(self.max_depth, NATIVE_MAX_DEPTH)
            self._scanner = NATIVE_SCANNER(paths, kinds, depth, self.max_bytes)
        self._skip_fast = 0

    @property
    def fast_path(self) -> str:
        """The fast path ``decode`` takes: ``"native"`` (the C scanner) or ``"none"``."""
        return "native" if self._scanner is not None and NATIVE_SCAN else "none"

    @property
    def scanner_missing(self) -> bool:
        return self._plan is not None and self.fast_path != "native"

    def extract(self, record: Any) -> Parsed:
        """Required fields, types and ranges of one record decoded with ``self.schema``."""
        return self._extract(record)

    def decode_one(self, value: bytes) -> Parsed:
        reason = precheck(value, self.max_bytes, self.max_depth)
        if reason is not None:
            fail(reason)
        try:
            record = self._decoder.decode(value)
        except JSON_ERRORS as exc:
            reason = json_failure(value, exc)
            detail = error_path(exc) if reason == "wrong_type" else ""
        else:
            return self._extract(record)
        fail(reason, detail)  # outside the handler: no chained msgspec traceback

    def _full(self, value: bytes) -> Parsed | str:
        """``decode_one`` for a value that passed ``precheck``: the record or the reason."""
        try:
            return self._extract(self._decoder.decode(value))
        except DecodeError as exc:
            return exc.reason
        except JSON_ERRORS as exc:
            return json_failure(value, exc)

    def decode(self, values: Sequence[bytes]) -> DecodedBatch:
        if self._skip_fast > 0 or self._scanner is None or not NATIVE_SCAN:
            self._skip_fast = max(0, self._skip_fast - 1)
            return self._decode_full(indexable(values))
        if isinstance(values, Lines):
            return self._decode_lines(values)
        return self._decode_native(values)

    def _decode_native(self, values: Sequence[bytes]) -> DecodedBatch:
        """The fast path on the C scanner: no Python work per record it vouches for."""
        scanner, plan = self._scanner, self._plan
        assert scanner is not None and plan is not None
        n = len(values)
        ints = np.empty((scanner.n_ints, n), np.int64)
        ok = np.empty(n, np.bool_)
        strs = scanner.scan(values, ints, ok)
        return self._complete(values, scanned_columns(self.table, plan, ints, strs, ok))

    def _decode_lines(self, lines: Lines) -> DecodedBatch:
        """The fast path on a block of lines: the scanner finds the lines itself, and
        only those it does not vouch for are sliced out (as bytes) for the full decoder."""
        scanner, plan = self._scanner, self._plan
        assert scanner is not None and plan is not None
        n = len(lines)
        ints = np.empty((scanner.n_ints, n), np.int64)
        ok = np.empty(n, np.bool_)
        bounds = np.empty((2, n), np.int64)
        strs = scanner.scan_lines(lines.data, ints, ok, bounds, lines.head)
        lines.keep_bounds(bounds)
        return self._complete(lines, scanned_columns(self.table, plan, ints, strs, ok))

    def _complete(self, values: Sequence[bytes], fc: FastColumns) -> DecodedBatch:
        """The batch from the fast path's columns: the records it did not vouch for
        take ``precheck`` and the full decoder."""
        ts, status, service, route, app, keep = fc
        n = len(values)
        segments = self.route_segments
        if segments:
            route = [path_route(r, segments) if r else "" for r in route]
        slow = np.flatnonzero(~keep).tolist()
        invalid: list[InvalidRecord] = []
        if len(slow) > n // 2 and n >= 64:
            self._skip_fast = REST_BATCHES  # this input does not suit the fast path
        if slow:
            keep = keep.copy()
            service, route, app = list(service), list(route), list(app)
            max_bytes, max_depth = self.max_bytes, self.max_depth
            for j in slow:
                value = values[j]
                out = precheck(value, max_bytes, max_depth) or self._full(value)
                if isinstance(out, str):
                    invalid.append(InvalidRecord(j, out))
                    continue
                keep[j] = True
                ts[j], status[j], service[j], route[j], app[j] = out
        index = np.arange(n, dtype=np.int64)
        if invalid:
            ts, status, index = ts[keep], status[keep], index[keep]
            flags = keep.tolist()
            service = [v for v, k in zip(service, flags, strict=True) if k]
            route = [v for v, k in zip(route, flags, strict=True) if k]
            app = [v for v, k in zip(app, flags, strict=True) if k]
        dims = {"service": service, "route": route, "app": app}
        return DecodedBatch(ts, status, dims, index, invalid)

    def _decode_full(self, values: Sequence[bytes]) -> DecodedBatch:
        """Record by record on the full decoder, after the batch-wide prechecks."""
        cols = Columns()
        ok, bad = precheck_batch(values, self.max_bytes, self.max_depth)
        for i, reason in bad.items():
            cols.reject(i, reason)
        decode, extract = self._decoder.decode, self._extract
        good, index, reject = cols.good.append, cols.index.append, cols.reject
        for i in ok:
            value = values[i]
            try:
                parsed = extract(decode(value))
            except DecodeError as exc:
                reject(i, exc.reason)
            except JSON_ERRORS as exc:
                reject(i, json_failure(value, exc))
            else:
                good(parsed)
                index(i)
        return cols.build()
