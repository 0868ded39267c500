"""What every decoder shares: the decoder protocol, ``Parsed``, failing and field checks.

A decoder turns a batch of raw record values (bytes) into a ``DecodedBatch``.
The good records become columns; every bad record becomes an ``InvalidRecord``
whose reason is one of ``INVALID_REASONS``. ``decode`` never raises for bad
input; ``decode_one`` raises ``DecodeError(reason)`` and nothing else.

The checks live in this package once, so every format rejects the same way:

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

Data flow: ``protocol`` (this module) and ``timestamps`` hold the checks of one
value; ``batch`` the checks of a whole record (size, UTF-8, depth) and the batch
builder; ``json_fields`` turns a format's table of fields into the full msgspec
schema and the C scanner's fields; ``jsondecoder`` decodes a JSON format from
its table (the scanner as the fast path, the full decoder as the reference).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple, NoReturn, Protocol

import msgspec

from statuswatch.core.columns import (
    INVALID_REASONS,
    MAX_STATUS,
    MIN_STATUS,
    NO_RESPONSE,
    DecodedBatch,
)
from statuswatch.errors import DecodeError


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
        """The batch fast path ``decode`` takes: ``"native"`` (the C scanner) or
        ``"none"`` (record by record on the full decoder)."""
        ...

    @property
    def scanner_missing(self) -> bool:
        """Whether this decoder has a C scanner fast path that is not running
        (the optional extension is not built)."""
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


@lru_cache(maxsize=8192)
def path_route(uri: str, segments: int) -> str:
    """The route of a request path or URI: its first ``segments`` path segments,
    without scheme, authority, query or fragment (``""`` for ``/`` or no path).

    >>> path_route("/v1/charges/42?expand=all", 1), path_route("/v1/charges/42", 2)
    ('/v1', '/v1/charges')
    >>> path_route("https://api.example.com/v2/apps?x=1", 1), path_route("/?q=1", 1)
    ('/v2', '')
    >>> path_route("/v1", 3), path_route("*", 1)
    ('/v1', '')
    """
    path = uri
    scheme = path.find("://")
    if 0 < scheme < 16:  # an absolute URI (a proxy's request line)
        start = path.find("/", scheme + 3)
        path = "" if start < 0 else path[start:]
    for mark in "?#":
        path = path.partition(mark)[0]
    if not path.startswith("/"):
        return ""
    parts = path.split("/", segments + 1)[1 : segments + 1]
    while parts and not parts[-1]:
        parts.pop()
    return "/" + "/".join(parts) if parts else ""


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

