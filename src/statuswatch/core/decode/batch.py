"""Whole-record checks (size, UTF-8, JSON depth), for one value and for a batch, and the
batch builder that decoders without a fast path use."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Final

import numpy as np

from statuswatch.config import DecodeConfig
from statuswatch.core.columns import DIMENSIONS, DecodedBatch, InvalidRecord
from statuswatch.core.decode.protocol import Parsed
from statuswatch.core.decode.timestamps import LocalZone
from statuswatch.errors import DecodeError

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
    #: ``decode.route_segments`` when unset: None, the route is a name taken as it is
    default_route_segments: ClassVar[int | None] = None

    def __init__(self, cfg: DecodeConfig) -> None:
        self.cfg = cfg
        self.max_bytes = cfg.max_record_bytes
        #: the zone of times written without an offset (``decode.timezone``)
        self.zone = LocalZone(cfg.timezone)
        #: the route is a path: its first this many segments (None: as it is)
        self.route_segments = cfg.route_segments or self.default_route_segments

    @property
    def fast_path(self) -> str:
        return "none"

    @property
    def scanner_missing(self) -> bool:
        return False

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

