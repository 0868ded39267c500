"""What every decoder shares: the protocol, the checks, the batch builder.

A decoder turns a batch of raw record values (bytes) into a ``DecodedBatch``.
The good records become columns; every bad record becomes an ``InvalidRecord``
whose reason is one of ``INVALID_REASONS``. ``decode`` never raises for bad
input; ``decode_one`` raises ``DecodeError(reason)`` and nothing else.

The checks live here once, so every format rejects the same way:

==================== ==============================================================
reason               when
==================== ==============================================================
too_large            more than ``max_record_bytes`` bytes (checked first)
invalid_utf8         the bytes are not UTF-8
too_deep             JSON nesting deeper than ``max_depth``
invalid_json         not JSON at all
not_an_object        JSON, but not an object at the top
missing_field        a required field (timestamp, status) is absent
wrong_type           a field has the wrong JSON type (``"abc"``, ``[]``, ``true``)
status_out_of_range  status is not in 100-599 (nor 0, no response)
bad_timestamp        unparseable, or before 2000-01-01 / from 2201-01-01 on
unparseable_line     a text line that does not match the log format
==================== ==============================================================
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final, Generic, NamedTuple, NoReturn, Protocol, TypeVar

import msgspec
import numpy as np
import numpy.typing as npt

from statuswatch.config import DecodeConfig
from statuswatch.core.columns import (
    DIMENSIONS,
    I64,
    INVALID_REASONS,
    MAX_STATUS,
    MIN_STATUS,
    NO_RESPONSE,
    DecodedBatch,
    InvalidRecord,
)
from statuswatch.errors import DecodeError

if TYPE_CHECKING:
    from statuswatch.core.decode._jsonscan import Scanner

#: 2000-01-01T00:00:00Z: earlier event times are rejected as ``bad_timestamp``.
MIN_TS_MS: Final = 946_684_800_000
#: 2201-01-01T00:00:00Z: this and later event times are rejected (year > 2200).
END_TS_MS: Final = 7_289_654_400_000

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class Parsed(NamedTuple):
    """One decoded record."""

    ts_ms: int
    status: int
    service: str
    route: str
    app: str


class Decoder(Protocol):
    """Turns raw record values into columns. Pure: no I/O, no clock."""

    name: str

    @property
    def fast_path(self) -> str:
        """The batch fast path ``decode`` takes: ``"native"`` (the C scanner),
        ``"msgspec"``, or ``"none"`` (record by record)."""
        ...

    def decode(self, values: Sequence[bytes]) -> DecodedBatch:
        """Decode a whole batch; bad records end up in ``.invalid``, never raised."""
        ...

    def decode_one(self, value: bytes) -> Parsed:
        """Decode one record or raise ``DecodeError`` with a reason from ``INVALID_REASONS``
        (and, where one field is to blame, its path as the ``detail``)."""
        ...

    def config_key(self, field: str) -> str | None:
        """The configuration key naming ``field`` (a ``DecodeError.detail``), if any."""
        ...


# -- failing ------------------------------------------------------------------


def fail(reason: str, detail: str = "") -> NoReturn:
    """Raise ``DecodeError(reason)``; ``reason`` must be one of ``INVALID_REASONS``.

    >>> fail("wrong_type")
    Traceback (most recent call last):
    ...
    statuswatch.errors.DecodeError: wrong_type
    """
    assert reason in INVALID_REASONS, reason
    raise DecodeError(reason, detail)


# -- field checks -------------------------------------------------------------


def check_status(status: int, field: str = "") -> int:
    """Return ``status`` if it is an HTTP status code (100-599) or 0 (no response sent).

    >>> check_status(503), check_status(0)
    (503, 0)
    >>> check_status(999)
    Traceback (most recent call last):
    ...
    statuswatch.errors.DecodeError: status_out_of_range
    """
    if MIN_STATUS <= status <= MAX_STATUS or status == NO_RESPONSE:
        return status
    fail("status_out_of_range", field)


def check_ts_ms(ts_ms: int, field: str = "") -> int:
    """Return ``ts_ms`` if it lies in the years 2000-2200 (UTC).

    >>> check_ts_ms(1_680_600_000_123)
    1680600000123
    >>> check_ts_ms(1_680_600_000)   # seconds, not milliseconds: 1970
    Traceback (most recent call last):
    ...
    statuswatch.errors.DecodeError: bad_timestamp
    """
    if MIN_TS_MS <= ts_ms < END_TS_MS:
        return ts_ms
    fail("bad_timestamp", field)


def status_value(value: object) -> int:
    """An HTTP status from a JSON value: an integer, an integral float or a digit string.

    Booleans, fractions, other strings, lists and objects are ``wrong_type``.

    >>> status_value("404"), status_value(200.0), status_value("000")
    (404, 200, 0)
    >>> status_value("abc")
    Traceback (most recent call last):
    ...
    statuswatch.errors.DecodeError: wrong_type
    >>> status_value(-1)
    Traceback (most recent call last):
    ...
    statuswatch.errors.DecodeError: status_out_of_range
    """
    if type(value) is int:
        return check_status(value)
    if type(value) is float:
        if math.isfinite(value) and value.is_integer():
            return check_status(int(value))
        fail("wrong_type")
    if type(value) is str and value.isascii() and value.isdigit():  # [0-9]+
        if len(value) > 9:
            fail("status_out_of_range")
        return check_status(int(value))
    fail("wrong_type")


def dim_value(value: object, *, dash_is_empty: bool = False) -> str:
    """A dimension from a JSON value: a string; absent or ``null`` is ``""``.

    >>> dim_value("billing"), dim_value(None)
    ('billing', '')
    >>> dim_value("-", dash_is_empty=True)
    ''
    """
    if type(value) is str:
        return "" if dash_is_empty and value == "-" else value
    if value is None or value is msgspec.UNSET:
        return ""
    fail("wrong_type")


#: Milliseconds per unit, as a fraction (numerator, denominator).
_MS_PER_UNIT: Final[dict[str, tuple[int, int]]] = {
    "s": (1000, 1),
    "ms": (1, 1),
    "us": (1, 1000),
    "ns": (1, 1_000_000),
}


def _round_div(num: int, den: int) -> int:
    """``num / den`` rounded half up (``den`` > 0)."""
    return (2 * num + den) // (2 * den)


def epoch_to_ms(value: object, unit: str, *, digit_strings: bool = False) -> int:
    """Milliseconds since the epoch from a number in ``unit`` (s, ms, us, ns).

    Integers and floats (not booleans) are accepted; with ``digit_strings`` also
    decimal strings such as nginx's ``$msec``. The result is rounded to the
    nearest millisecond and checked with ``check_ts_ms``.

    >>> epoch_to_ms(1680600000.123, "s")
    1680600000123
    >>> epoch_to_ms("1680600000.123", "s", digit_strings=True)
    1680600000123
    >>> epoch_to_ms(1680600000123456789, "ns")
    1680600000123
    >>> epoch_to_ms("1680600000.123", "s")
    Traceback (most recent call last):
    ...
    statuswatch.errors.DecodeError: wrong_type
    """
    num, den = _MS_PER_UNIT[unit]
    if type(value) is int:
        ms = _round_div(value * num, den)
    elif type(value) is float:
        if not math.isfinite(value):
            fail("bad_timestamp")
        scaled = value * num / den
        if not -1e18 < scaled < 1e18:
            fail("bad_timestamp")
        ms = round(scaled)
    elif type(value) is str and digit_strings:
        whole, _, frac = value.partition(".")
        digits = whole + frac  # [0-9]{1,20}(\.[0-9]{0,20})?
        if not (digits.isascii() and digits.isdigit() and whole and len(digits) <= 40):
            fail("wrong_type")
        ms = _round_div(int(digits) * num, den * 10 ** len(frac))
    else:
        fail("wrong_type")
    return check_ts_ms(ms)


def iso_to_ms(text: str) -> int:
    """Milliseconds since the epoch from an ISO-8601 timestamp (naive means UTC).

    >>> iso_to_ms("2023-04-04T10:00:00.123Z")
    1680602400123
    >>> iso_to_ms("2023-04-04T12:00:00.123+02:00")
    1680602400123
    >>> iso_to_ms("yesterday")
    Traceback (most recent call last):
    ...
    statuswatch.errors.DecodeError: bad_timestamp
    """
    try:
        dt = datetime.fromisoformat(text)
    except (ValueError, TypeError):
        fail("bad_timestamp")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        delta = dt - _EPOCH
    except OverflowError:  # an offset pushing year 1 or 9999 out of range
        fail("bad_timestamp")
    ms = delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000
    if MIN_TS_MS <= ms < END_TS_MS:
        return ms
    fail("bad_timestamp")


def iso_value(value: object) -> int:
    """``iso_to_ms`` for a JSON value: anything but a string is ``wrong_type``."""
    if type(value) is not str:
        fail("wrong_type")
    return iso_to_ms(value)


MONTH_NAMES: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                      "Nov", "Dec")
_CLF_TIME: Final = re.compile(
    rb"([0-9]{2})/([A-Z][a-z]{2})/([0-9]{4})"  # 17/May/2015
    rb":([0-9]{2}):([0-9]{2}):([0-9]{2})"  # :10:05:03
    rb" ([+-])([0-9]{2})([0-9]{2})"  # +0000
)
_MONTH_NUMBER: Final = {m.encode(): n for n, m in enumerate(MONTH_NAMES, 1)}
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


@lru_cache(maxsize=4096)
def clf_time_ms(text: bytes) -> int | None:
    """Milliseconds since the epoch of a common-log-format time, ``None`` if malformed
    or out of range (Apache's ``%t``, nginx's ``$time_local``).

    Pure, so memoised: log lines arrive roughly in time order and share seconds.

    >>> clf_time_ms(b"17/May/2015:10:05:03 +0000")
    1431857103000
    >>> clf_time_ms(b"17/May/2015:03:05:03 -0700")
    1431857103000
    >>> clf_time_ms(b"31/Feb/2015:10:05:03 +0000") is None
    True
    """
    m = _CLF_TIME.fullmatch(text)
    if m is None:
        return None
    day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
    month = _MONTH_NUMBER.get(mon)
    h, mi, s, zh, zm = int(hh), int(mm), int(ss), int(oh), int(om)
    if month is None or h > 23 or mi > 59 or s > 59 or zh > 23 or zm > 59:
        return None
    try:
        days = date(int(year), month, int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    ms = (days * 86400 + h * 3600 + mi * 60 + s - (zh * 3600 + zm * 60) * (
        1 if sign == b"+" else -1)) * 1000
    return ms if MIN_TS_MS <= ms < END_TS_MS else None


def clf_value(value: object) -> int:
    """Milliseconds since the epoch from a JSON string in the common log format's time
    (``timestamp_unit: clf``); other JSON types are ``wrong_type``.

    >>> clf_value("06/Dec/2026:05:30:01 +0000")
    1796535001000
    >>> clf_value("2026-12-06T05:30:01+00:00")
    Traceback (most recent call last):
    ...
    statuswatch.errors.DecodeError: bad_timestamp
    """
    if type(value) is not str:
        fail("wrong_type")
    try:
        ms = clf_time_ms(value.encode("ascii"))
    except UnicodeEncodeError:
        ms = None
    if ms is None:
        fail("bad_timestamp")
    return ms


def timestamp_value(value: object, unit: str, *, digit_strings: bool = False) -> int:
    """Milliseconds since the epoch from a JSON value in ``unit`` (a ``timestamp_unit``).

    >>> timestamp_value("2023-04-04T10:00:00.123Z", "iso8601"), timestamp_value(1680600000, "s")
    (1680602400123, 1680600000000)
    """
    if unit == "iso8601":
        return iso_value(value)
    if unit == "clf":
        return clf_value(value)
    return epoch_to_ms(value, unit, digit_strings=digit_strings)


# -- whole-record checks ------------------------------------------------------


# A JSON string (an unterminated one runs to the end) and everything but brackets.
_JSON_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)', re.DOTALL)
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")
#: ``b | 0x20 == 0x7B`` holds for exactly two bytes: ``[`` (0x5B) and ``{`` (0x7B).
_OPEN_BRACE: Final = 0x7B


def json_depth(value: bytes) -> int:
    """The deepest nesting of ``[`` / ``{`` in ``value``, ignoring brackets inside strings.

    Linear time (regex and numpy, no Python loop per byte); works on invalid JSON.

    >>> json_depth(b'{"a": [1, {"b": "[[[["}]}')
    3
    >>> json_depth(b"[" * 100_000)
    100000
    >>> json_depth(b"1")
    0
    """
    brackets = _JSON_STRING.sub(b"", value).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    is_open = (np.frombuffer(brackets, dtype=np.uint8) | 0x20) == _OPEN_BRACE
    steps = is_open.astype(np.int32) * 2 - 1
    return int(max(0, np.cumsum(steps).max()))


def too_deep(value: bytes, max_depth: int) -> bool:
    """Is ``value`` nested deeper than ``max_depth``? Cheap unless it has many brackets.

    >>> too_deep(b'{"a": {"b": 1}}', 1), too_deep(b'{"a": {"b": 1}}', 2)
    (True, False)
    """
    if value.count(b"{") + value.count(b"[") <= max_depth:
        return False
    return json_depth(value) > max_depth


#: Values checked together by ``precheck_batch``: large enough to amortise the
#: numpy calls, small enough that the joined chunk reuses heap memory (a fresh
#: multi-megabyte buffer per batch costs more in page faults than the scan).
PRECHECK_CHUNK: Final = 512


def precheck_batch(
    values: Sequence[bytes], max_bytes: int, max_depth: int | None
) -> tuple[list[int], dict[int, str]]:
    """Size, UTF-8 and (if ``max_depth`` is given) depth checks for a whole batch.

    Returns the indices that passed and the reasons of those that did not.
    The common case (every value small, UTF-8 and with few brackets) costs a
    few C-level passes over joined chunks of the batch instead of Python work
    per value; only values that might fail are checked one by one with ``precheck``.

    >>> precheck_batch([b"{}", b"\\xff", b"[[[1]]]", b"x" * 9], 8, 2)
    ([0], {1: 'invalid_utf8', 2: 'too_deep', 3: 'too_large'})
    """
    n = len(values)
    check: list[int] = []
    for start in range(0, n, PRECHECK_CHUNK):
        part = values[start : start + PRECHECK_CHUNK]
        lens = np.fromiter(map(len, part), dtype=np.int64, count=len(part))
        joined = b"\n".join(part)
        suspicious = lens > max_bytes
        if max_depth is not None and joined:
            # An upper bound of each value's depth: its number of '[' and '{'.
            # Computed in place (a second chunk-sized temporary is not free) and
            # summed as uint16, so values that could overflow that are suspicious.
            suspicious |= lens > 0xFFFF
            buf = np.frombuffer(joined, dtype=np.uint8) | 0x20
            is_open = np.equal(buf, _OPEN_BRACE, out=buf.view(np.bool_)).view(np.uint8)
            starts = np.cumsum(lens + 1) - (lens + 1)
            # a trailing empty value starts past the end: give it the last separator
            np.minimum(starts, len(buf) - 1, out=starts)
            suspicious |= np.add.reduceat(is_open, starts, dtype=np.uint16) > max_depth
        check.extend((np.flatnonzero(suspicious) + start).tolist())
        # the separator is ASCII, so it cannot complete a UTF-8 sequence left open
        # by the value before it: the joined bytes are UTF-8 exactly when every value is
        if not is_utf8(joined):
            check.extend(start + i for i, v in enumerate(part) if not v.isascii())
    bad: dict[int, str] = {}
    for i in sorted(set(check)):
        reason = precheck(values[i], max_bytes, max_depth)
        if reason is not None:
            bad[i] = reason
    if not bad:
        return list(range(n)), bad
    return [i for i in range(n) if i not in bad], bad


def precheck(value: bytes, max_bytes: int, max_depth: int | None) -> str | None:
    """The reason ``value`` fails the size, UTF-8 or depth check, or ``None``.

    >>> precheck(b'{"a": 1}', 100, 64) is None
    True
    >>> precheck(b"[" * 100_000, 1_000_000, 64)
    'too_deep'
    """
    if len(value) > max_bytes:
        return "too_large"
    if not is_utf8(value):
        return "invalid_utf8"
    if max_depth is not None and too_deep(value, max_depth):
        return "too_deep"
    return None


def is_utf8(value: bytes) -> bool:
    """Is ``value`` UTF-8?

    >>> is_utf8("grüß".encode()), is_utf8(b"\\xff")
    (True, False)
    """
    if value.isascii():
        return True
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


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


# -- building batches ---------------------------------------------------------


class Columns:
    """Collects good and bad records of one batch, then builds the ``DecodedBatch``.

    >>> c = Columns()
    >>> c.add(0, Parsed(1_680_600_000_000, 200, "svc", "", ""))
    >>> c.reject(1, "invalid_json")
    >>> b = c.build()
    >>> (len(b), b.index.tolist(), b.dims["service"], b.invalid)
    (1, [0], ['svc'], [InvalidRecord(index=1, reason='invalid_json')])
    """

    __slots__ = ("good", "index", "invalid")

    def __init__(self) -> None:
        self.good: list[Parsed] = []
        self.index: list[int] = []
        self.invalid: list[InvalidRecord] = []

    def add(self, index: int, parsed: Parsed) -> None:
        self.good.append(parsed)
        self.index.append(index)

    def reject(self, index: int, reason: str) -> None:
        self.invalid.append(InvalidRecord(index, reason))

    def build(self) -> DecodedBatch:
        """The batch; good records must have been added in input order (invalid ones may not)."""
        self.invalid.sort(key=lambda r: r.index)
        if not self.good:
            empty = DecodedBatch.empty()
            return DecodedBatch(empty.ts_ms, empty.status, empty.dims, empty.index, self.invalid)
        ts, status, service, route, app = zip(*self.good, strict=True)
        dims = dict(zip(DIMENSIONS, (list(service), list(route), list(app)), strict=True))
        return DecodedBatch(
            np.array(ts, dtype=np.int64),
            np.array(status, dtype=np.int64),
            dims,
            np.array(self.index, dtype=np.int64),
            self.invalid,
        )


class BaseDecoder(ABC):
    """A decoder whose batch method loops over ``decode_one`` (fine for text lines)."""

    name: str

    def __init__(self, cfg: DecodeConfig) -> None:
        self.cfg = cfg
        self.max_bytes = cfg.max_record_bytes

    @property
    def fast_path(self) -> str:
        return "none"

    @abstractmethod
    def decode_one(self, value: bytes) -> Parsed:
        """Decode one record or raise ``DecodeError``."""

    def config_key(self, field: str) -> str | None:
        """The configuration key naming ``field`` (a ``DecodeError.detail``), if any."""
        return None

    def decode(self, values: Sequence[bytes]) -> DecodedBatch:
        cols = Columns()
        one = self.decode_one
        for i, value in enumerate(values):
            try:
                parsed = one(value)
            except DecodeError as exc:
                cols.reject(i, exc.reason)
            else:
                cols.add(i, parsed)
        return cols.build()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} format={self.name!r}>"


#: What a msgspec decode may raise for bad input (msgspec.ValidationError is a
#: msgspec.DecodeError; UnicodeDecodeError comes from strings it decodes).
JSON_ERRORS: Final = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)


S = TypeVar("S", bound=msgspec.Struct)


class FastColumns(NamedTuple):
    """What a decoder's fast path read from a whole batch of decoded records.

    ``ok[i]`` says the fast path vouches for record ``i``: its fields are all
    present, of the common type and in range, so ``decode_one`` would return
    exactly these values. Records with ``ok[i]`` false go through the full
    decoder, which gives their value or their reason; the other entries of
    such a record are placeholders and never used.
    """

    ts_ms: I64
    status: I64
    service: list[str]
    route: list[str]
    app: list[str]
    ok: npt.NDArray[np.bool_]


def int_column(values: Sequence[object]) -> I64:
    """``values`` (Python ints) as int64; values out of int64 become -1 (fails every
    range check).

    >>> int_column([1, 2**70, -3]).tolist()
    [1, -1, -3]
    """
    try:
        return np.fromiter(values, np.int64, len(values))
    except (OverflowError, TypeError, ValueError):
        return np.array(
            [v if type(v) is int and -(2**62) < v < 2**62 else -1 for v in values], np.int64
        )


def in_ranges(ts_ms: I64, status: I64) -> npt.NDArray[np.bool_]:
    """Which records have a status in 100-599 (or 0) and a timestamp in the accepted years."""
    ok: npt.NDArray[np.bool_] = (
        (((status >= MIN_STATUS) & (status <= MAX_STATUS)) | (status == NO_RESPONSE))
        & (ts_ms >= MIN_TS_MS) & (ts_ms < END_TS_MS)
    )
    return ok


#: Records decoded per msgspec call on the fast path before falling back record by record.
FAST_CHUNK: Final = 256


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
#: it): the msgspec fast path then runs, with the same results.
NATIVE_SCAN: bool = NATIVE_SCANNER is not None
#: The deepest nesting the C scanner vouches for, whatever ``max_depth`` allows:
#: deeper records take the full decoder. Well below msgspec's recursion limit,
#: so that msgspec decodes every record the scanner vouches for.
NATIVE_MAX_DEPTH: Final = 128

#: A field of the C scanner: its key path from the top-level object and its kind
#: (``_jsonscan``: "i" int64, "S" str, "s" optional str, "d" "-" as "", "f" fallback).
NativeField = tuple[Sequence[str], str]

_DAYS_BEFORE_MONTH: Final = np.array(
    [0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334], np.int64
)
_DAYS_IN_MONTH: Final = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)
_DATE_TIME_DIGITS: Final = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
#: ISO-8601 layouts ``iso_column`` parses, by length: (has ``.mmm``, ends in ``Z``).
_ISO_LAYOUTS: Final = {20: (False, True), 24: (True, True), 25: (False, False), 29: (True, False)}


def _same_width(texts: Sequence[str], width: int) -> tuple[I64, npt.NDArray[np.int64] | None]:
    """The indices of the ``texts`` of length ``width`` and their ASCII bytes as
    int64 rows (``None`` if there are none, or one is not ASCII)."""
    lens = np.fromiter(map(len, texts), np.int64, len(texts))
    sel = np.flatnonzero(lens == width)
    if sel.size == 0:
        return sel, None
    chosen = texts if sel.size == len(texts) else [texts[i] for i in sel.tolist()]
    try:
        raw = "".join(chosen).encode("ascii")
    except UnicodeEncodeError:
        return sel, None
    return sel, np.frombuffer(raw, np.uint8).reshape(-1, width).astype(np.int64)


def _digits_ok(d: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    bad = (d < 0) | (d > 9)
    return np.asarray(np.count_nonzero(bad, axis=1) == 0, dtype=np.bool_)


def _offset_minutes(
    sign: npt.NDArray[np.int64], od: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """A zone offset ``+HHMM`` from its sign byte and four digit values; ``ok``."""
    oh, om = od[:, 0] * 10 + od[:, 1], od[:, 2] * 10 + od[:, 3]
    good = _digits_ok(od) & ((sign == 43) | (sign == 45)) & (oh <= 23) & (om <= 59)  # + -
    return np.where(sign == 43, 1, -1) * (oh * 60 + om), good


def _civil_ms(
    year: I64, month: I64, day: I64, hms: tuple[I64, I64, I64], frac: I64 | int, off_min: I64
) -> tuple[I64, npt.NDArray[np.bool_]]:
    """Milliseconds since the epoch of local civil times with a zone offset (minutes),
    and which are real dates and times within the accepted years."""
    hh, mi, ss = hms
    good = (month >= 1) & (month <= 12) & (hh <= 23) & (mi <= 59) & (ss <= 59)
    month_c = np.clip(month, 1, 12)
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    dim = _DAYS_IN_MONTH[month_c] + ((month_c == 2) & leap)
    good &= (day >= 1) & (day <= dim) & (year >= 1)
    y1 = year - 1
    days = (
        y1 * 365 + y1 // 4 - y1 // 100 + y1 // 400
        + _DAYS_BEFORE_MONTH[month_c] + ((month_c > 2) & leap) + day - 719_163
    )  # fmt: skip
    value = ((days * 86_400 + hh * 3600 + mi * 60 + ss) - off_min * 60) * 1000 + frac
    good &= (value >= MIN_TS_MS) & (value < END_TS_MS)
    return value, good


def iso_column(texts: Sequence[str]) -> tuple[I64, npt.NDArray[np.bool_]]:
    """Vectorised ``iso_to_ms`` for the common layouts; ``ok`` false where it cannot vouch.

    Parses ``YYYY-MM-DDTHH:MM:SS[.mmm]Z`` (20 or 24 characters) and
    ``YYYY-MM-DDTHH:MM:SS[.mmm]+HH:MM`` (25, nginx's ``$time_iso8601``, or 29);
    anything else, impossible dates and out-of-range results get ``ok`` false
    (the caller falls back to ``iso_to_ms``).

    >>> ms, ok = iso_column(["2023-04-04T10:00:00.123Z", "2023-04-04T12:00:00.123+02:00",
    ...                      "2023-04-04T12:00:00+02:00", "2023-02-29T10:00:00.000Z",
    ...                      "yesterday"])
    >>> ms[:3].tolist(), ok.tolist()
    ([1680602400123, 1680602400123, 1680602400000], [True, True, True, False, False])
    """
    n = len(texts)
    ms = np.zeros(n, np.int64)
    ok = np.zeros(n, bool)
    if n == 0:
        return ms, ok
    for width, (has_frac, zulu) in _ISO_LAYOUTS.items():
        sel, b = _same_width(texts, width)
        if b is None:
            continue
        d = b - 48
        good = _digits_ok(d[:, _DATE_TIME_DIGITS])
        good &= (b[:, 4] == 45) & (b[:, 7] == 45) & (b[:, 10] == 84)  # - - T
        good &= (b[:, 13] == 58) & (b[:, 16] == 58)  # : :
        frac: I64 | int = 0
        zone = 19
        if has_frac:
            good &= (b[:, 19] == 46) & _digits_ok(d[:, 20:23])  # .
            frac = d[:, 20] * 100 + d[:, 21] * 10 + d[:, 22]
            zone = 23
        if zulu:
            good &= b[:, zone] == 90  # Z
            off_min = np.zeros(len(b), np.int64)
        else:
            good &= b[:, zone + 3] == 58  # :
            off_min, off_ok = _offset_minutes(
                b[:, zone], d[:, [zone + 1, zone + 2, zone + 4, zone + 5]]
            )
            good &= off_ok
        year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
        month = d[:, 5] * 10 + d[:, 6]
        day = d[:, 8] * 10 + d[:, 9]
        hms = (d[:, 11] * 10 + d[:, 12], d[:, 14] * 10 + d[:, 15], d[:, 17] * 10 + d[:, 18])
        value, in_range = _civil_ms(year, month, day, hms, frac, off_min)
        ms[sel] = value
        ok[sel] = good & in_range
    return ms, ok


#: The three letters of each month name as one number (``ord`` big-endian), sorted.
_MONTH_KEYS: Final = np.array(
    sorted((a << 16) | (b << 8) | c for a, b, c in (m.encode() for m in MONTH_NAMES)), np.int64
)
_MONTH_OF_KEY: Final = np.array(
    [
        MONTH_NAMES.index(bytes(((k >> 16) & 255, (k >> 8) & 255, k & 255)).decode()) + 1
        for k in _MONTH_KEYS.tolist()
    ],
    np.int64,
)
_CLF_DIGITS: Final = [0, 1, 7, 8, 9, 10, 12, 13, 15, 16, 18, 19]


def clf_column(texts: Sequence[str]) -> tuple[I64, npt.NDArray[np.bool_]]:
    """Vectorised ``clf_to_ms``; ``ok`` false where it cannot vouch.

    >>> ms, ok = clf_column(["06/Dec/2026:05:30:01 +0000", "06/Dec/2026:06:30:01 +0100",
    ...                      "31/Feb/2026:05:30:01 +0000", "06/Dez/2026:05:30:01 +0000"])
    >>> ms[:2].tolist(), ok.tolist()
    ([1796535001000, 1796535001000], [True, True, False, False])
    """
    n = len(texts)
    ms = np.zeros(n, np.int64)
    ok = np.zeros(n, bool)
    sel, b = _same_width(texts, 26)
    if b is None:
        return ms, ok
    d = b - 48
    good = _digits_ok(d[:, _CLF_DIGITS])
    good &= (b[:, 2] == 47) & (b[:, 6] == 47) & (b[:, 11] == 58)  # / / :
    good &= (b[:, 14] == 58) & (b[:, 17] == 58) & (b[:, 20] == 32)  # : : space
    key = (b[:, 3] << 16) | (b[:, 4] << 8) | b[:, 5]
    at = np.minimum(np.searchsorted(_MONTH_KEYS, key), len(_MONTH_KEYS) - 1)
    good &= _MONTH_KEYS[at] == key
    off_min, off_ok = _offset_minutes(b[:, 21], d[:, 22:26])
    year = d[:, 7] * 1000 + d[:, 8] * 100 + d[:, 9] * 10 + d[:, 10]
    day = d[:, 0] * 10 + d[:, 1]
    hms = (d[:, 12] * 10 + d[:, 13], d[:, 15] * 10 + d[:, 16], d[:, 18] * 10 + d[:, 19])
    value, in_range = _civil_ms(year, _MONTH_OF_KEY[at], day, hms, 0, off_min)
    ms[sel] = value
    ok[sel] = good & off_ok & in_range
    return ms, ok


def decimal_seconds_column(texts: Sequence[str]) -> tuple[I64, npt.NDArray[np.bool_]]:
    """Vectorised ``epoch_to_ms(text, "s", digit_strings=True)`` for nginx's ``$msec``
    (``"1680600000.123"``: ten digits, a dot, three); ``ok`` false for anything else.

    >>> ms, ok = decimal_seconds_column(["1680600000.123", "1680600000.1234", "168060000a.123"])
    >>> ms[0].item(), ok.tolist()
    (1680600000123, [True, False, False])
    """
    n = len(texts)
    ms = np.zeros(n, np.int64)
    ok = np.zeros(n, bool)
    sel, b = _same_width(texts, 14)
    if b is None:
        return ms, ok
    d = b - 48
    digits = d[:, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13]]
    value = (digits * (10 ** np.arange(12, -1, -1, dtype=np.int64))).sum(axis=1)
    ms[sel] = value
    ok[sel] = _digits_ok(digits) & (b[:, 10] == 46) & (value >= MIN_TS_MS) & (value < END_TS_MS)
    return ms, ok


class JsonDecoder(BaseDecoder, Generic[S]):
    """A decoder of JSON objects, driven by a msgspec schema and ``extract``.

    Subclasses pass a ``msgspec.Struct`` type declaring only the fields they
    need (unknown fields are ignored) and implement ``extract``, which turns one
    decoded struct into ``Parsed`` or raises ``DecodeError``.

    The batch path runs the size, UTF-8 and depth checks over the whole batch
    at once (``precheck_batch``). A subclass may add a *fast path*: a stricter
    schema (``fast_schema``: required fields with defaults that fail the range
    checks, no ``null``) and ``fast_columns``, which reads and validates the
    fields of a whole batch of such structs at once (numpy), saying which
    records it vouches for. Every record it does not vouch for (a field absent,
    ``null``, of another type, out of range, or a record the strict schema
    rejects) goes through ``decode_one``'s path, so the fast path can only be
    faster, never different (``tests/unit/test_fast_path.py``).
    (Decoding the batch as one JSON array was measured slower: building the
    array copies the batch, and records that are not complete JSON values
    could merge across their boundaries.)

    When the optional C extension is built, a subclass's ``set_native`` fields
    take the place of the strict schema: the C scanner (``_jsonscan.c``)
    validates each whole record as JSON, checks its size, UTF-8 and depth itself
    (so ``precheck_batch`` is skipped) and reads the fields of the whole batch
    into int64 and str columns, which ``native_columns`` checks like
    ``fast_columns``. Records it does not vouch for take ``precheck`` and the full
    decoder, as above (``NATIVE_SCAN`` says which fast path runs).
    """

    #: The strict schema of the fast path (None: no fast path).
    fast_schema: type[msgspec.Struct] | None = None

    def __init__(self, cfg: DecodeConfig, schema: type[S]) -> None:
        super().__init__(cfg)
        self.max_depth = cfg.max_depth
        self.schema = schema
        self._decoder: msgspec.json.Decoder[S] = msgspec.json.Decoder(schema)
        self._fast_decoder: msgspec.json.Decoder[Any] | None = None
        self._fast_default: Any = None
        self._scanner: Scanner | None = None
        self._skip_fast = 0
        self.init_fast()

    def init_fast(self) -> None:
        """Set up the fast path from ``fast_schema`` (subclasses may build their own)."""
        if self.fast_schema is not None:
            self.set_fast_schema(self.fast_schema)

    def set_fast_schema(self, schema: type[msgspec.Struct]) -> None:
        self._fast_decoder = msgspec.json.Decoder(schema)
        self._fast_default = schema()  # its defaults fail the fast path's checks

    def set_native(self, fields: Sequence[NativeField]) -> None:
        """Set up the C scanner's fast path (if the extension is built) for ``fields``.

        ``native_columns`` gets the int fields as the rows of one int64 array
        and the str fields as lists, each in the order of ``fields``.
        """
        if NATIVE_SCANNER is None:
            return
        paths = tuple(tuple(key.encode() for key in path) for path, _ in fields)
        kinds = "".join(kind for _, kind in fields).encode("ascii")
        depth = min(self.max_depth, NATIVE_MAX_DEPTH)
        self._scanner = NATIVE_SCANNER(paths, kinds, depth, self.max_bytes)

    @property
    def fast_path(self) -> str:
        """The fast path ``decode`` takes: ``"native"`` (C scanner), ``"msgspec"`` or ``"none"``."""
        if self._scanner is not None and NATIVE_SCAN:
            return "native"
        return "none" if self._fast_decoder is None else "msgspec"

    @abstractmethod
    def extract(self, record: S) -> Parsed:
        """Required fields, types and ranges of one decoded record."""

    def fast_columns(self, records: list[Any]) -> FastColumns:
        """The fields of a batch of ``fast_schema`` records and which of them are good."""
        raise NotImplementedError

    def native_columns(
        self, ints: npt.NDArray[np.int64], strs: list[list[str]], ok: npt.NDArray[np.bool_]
    ) -> FastColumns:
        """``fast_columns`` for what the C scanner read (``ok``: the records it vouched for)."""
        raise NotImplementedError

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
            return self.extract(record)
        fail(reason, detail)  # outside the handler: no chained msgspec traceback

    def _full(self, value: bytes) -> Parsed | str:
        """``decode_one`` for a value that passed ``precheck``: the record or the reason."""
        try:
            return self.extract(self._decoder.decode(value))
        except DecodeError as exc:
            return exc.reason
        except JSON_ERRORS as exc:
            return json_failure(value, exc)

    def decode(self, values: Sequence[bytes]) -> DecodedBatch:
        native = NATIVE_SCAN and self._scanner is not None
        if self._skip_fast > 0 or not (native or self._fast_decoder is not None):
            self._skip_fast = max(0, self._skip_fast - 1)
            return self._decode_slow(values)
        if native:
            return self._decode_native(values)
        assert self._fast_decoder is not None
        ok, bad = precheck_batch(values, self.max_bytes, self.max_depth)
        todo = values if not bad else [values[i] for i in ok]
        m = len(todo)
        fast_decode, default = self._fast_decoder.decode, self._fast_default
        records: list[Any] = []
        for start in range(0, m, FAST_CHUNK):
            part = todo[start : start + FAST_CHUNK]
            try:
                decoded = list(map(fast_decode, part))
            except JSON_ERRORS:
                for value in part:
                    try:
                        records.append(fast_decode(value))
                    except JSON_ERRORS:
                        records.append(default)
            else:
                records += decoded
        return self._complete(values, todo, ok, bad, self.fast_columns(records))

    def _decode_native(self, values: Sequence[bytes]) -> DecodedBatch:
        """The fast path on the C scanner: no Python work per record it vouches for."""
        scanner = self._scanner
        assert scanner is not None
        n = len(values)
        ints = np.empty((scanner.n_ints, n), np.int64)
        ok = np.empty(n, np.bool_)
        strs = scanner.scan(values, ints, ok)
        return self._complete(values, values, None, {}, self.native_columns(ints, strs, ok))

    def _complete(
        self,
        values: Sequence[bytes],
        todo: Sequence[bytes],
        ok: list[int] | None,
        bad: dict[int, str],
        fc: FastColumns,
    ) -> DecodedBatch:
        """The batch from a fast path's columns of ``todo``: the records it did not vouch
        for go through the full decoder. ``todo[j]`` is ``values[ok[j]]``; ``ok`` is
        ``None`` when ``todo`` is all of ``values``, not prechecked (the C scanner's
        case), and ``bad`` holds the reasons of the values that failed ``precheck``."""
        ts, status, service, route, app, keep = fc
        m = len(todo)
        slow = np.flatnonzero(~keep).tolist()
        invalid = [InvalidRecord(i, reason) for i, reason in bad.items()]
        if len(slow) > m // 2 and m >= 64:
            self._skip_fast = 16  # this input does not suit the fast path: rest a while
        if slow:
            keep = keep.copy()
            service, route, app = list(service), list(route), list(app)
            max_bytes, max_depth = self.max_bytes, self.max_depth
            for j in slow:
                value = todo[j]
                out: Parsed | str | None = None
                if ok is None:
                    out = precheck(value, max_bytes, max_depth)
                if out is None:
                    out = self._full(value)
                if isinstance(out, str):
                    invalid.append(InvalidRecord(j if ok is None else ok[j], out))
                    continue
                keep[j] = True
                ts[j], status[j], service[j], route[j], app[j] = out
        index = np.arange(len(values), dtype=np.int64) if ok is None or not bad else np.array(
            ok, np.int64
        )
        if len(invalid) > len(bad):  # some records failed the full decoder too
            invalid.sort(key=lambda r: r.index)
            ts, status, index = ts[keep], status[keep], index[keep]
            flags = keep.tolist()
            service = [v for v, k in zip(service, flags, strict=True) if k]
            route = [v for v, k in zip(route, flags, strict=True) if k]
            app = [v for v, k in zip(app, flags, strict=True) if k]
        dims = {"service": service, "route": route, "app": app}
        return DecodedBatch(ts, status, dims, index, invalid)

    def _decode_slow(self, values: Sequence[bytes]) -> DecodedBatch:
        cols = Columns()
        ok, bad = precheck_batch(values, self.max_bytes, self.max_depth)
        for i, reason in bad.items():
            cols.reject(i, reason)
        decode, extract = self._decoder.decode, self.extract
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
