"""Apache/NGINX "combined" access log lines (and "common", without referer and agent).

::

    1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /presentations/x HTTP/1.1" 200 20 "-" "curl"

One compiled regex per line. The timestamp's zone offset is honoured; the
status must be three digits; anything after the size field (referer, agent,
extra fields) is allowed and ignored; trailing CR/LF is ignored. Dimensions:
service ``""``, route the first segment of the request path (``"/presentations"``;
``""`` for ``/``, a query on ``/``, or a malformed request line), app ``""``.

>>> from statuswatch.config import DecodeConfig
>>> d = CombinedDecoder(DecodeConfig(format="combined"))
>>> d.decode_one(b'1.2.3.4 - - [17/May/2015:12:05:03 +0200] "GET /a/b?c=d HTTP/1.1" 404 7\\r\\n')
Parsed(ts_ms=1431857103000, status=404, service='', route='/a', app='')
>>> d.decode_one(b'1.2.3.4 - - [17/May/2015:10:05:03 +0000] "\\\\x16\\\\x03" 400 0 "-" "-"').route
''
>>> d.decode_one(b'hello')
Traceback (most recent call last):
...
statuswatch.errors.DecodeError: unparseable_line
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from functools import lru_cache
from typing import Final

import numpy as np

from statuswatch.core.columns import DecodedBatch, InvalidRecord
from statuswatch.core.decode.base import (
    BaseDecoder,
    Parsed,
    check_status,
    check_ts_ms,
    fail,
    precheck,
    precheck_batch,
)
from statuswatch.errors import DecodeError

_LINE: Final = re.compile(
    rb"""
    \S++\ \S++\ \S++\                      # host ident authuser
    \[([^\]]*+)\]\                         # [17/May/2015:10:05:03 +0000]
    "(?:                                    # the request line, either
        [A-Za-z]++\ (?:/([^/?\#\s"]*+)[^\s"]*+|[^\s"]*+)(?:\ HTTP/[0-9.]++)?+  # well formed
        |[^"\\]*+(?:\\.[^"\\]*+)*+          # or anything (escaped quotes allowed)
    )"[ ]
    ([0-9]{3})\ (?:[0-9]++|-)               # status, size
    (?:\ [^\n]*+)?                          # referer, agent, anything else
    [\r\n]*+\Z                              # trailing CR/LF
    """,
    re.VERBOSE,
)

_TIME: Final = re.compile(
    rb"([0-9]{2})/([A-Z][a-z]{2})/([0-9]{4})"  # 17/May/2015
    rb":([0-9]{2}):([0-9]{2}):([0-9]{2})"  # :10:05:03
    rb" ([+-])([0-9]{2})([0-9]{2})"  # +0000
)
_MONTHS: Final = {
    m.encode(): n
    for n, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


@lru_cache(maxsize=4096)
def clf_time_ms(text: bytes) -> int | None:
    """Milliseconds since the epoch of a log timestamp, ``None`` if malformed or out of range.

    Pure, so memoised: log lines arrive roughly in time order and share seconds.

    >>> clf_time_ms(b"17/May/2015:10:05:03 +0000")
    1431857103000
    >>> clf_time_ms(b"17/May/2015:03:05:03 -0700")
    1431857103000
    >>> clf_time_ms(b"31/Feb/2015:10:05:03 +0000") is None
    True
    """
    m = _TIME.fullmatch(text)
    if m is None:
        return None
    day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
    month = _MONTHS.get(mon)
    h, mi, s, zh, zm = int(hh), int(mm), int(ss), int(oh), int(om)
    if month is None or h > 23 or mi > 59 or s > 59 or zh > 23 or zm > 59:
        return None
    try:
        days = date(int(year), month, int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    offset = (zh * 3600 + zm * 60) * (1 if sign == b"+" else -1)
    try:
        return check_ts_ms((days * 86400 + h * 3600 + mi * 60 + s - offset) * 1000)
    except DecodeError:
        return None


@lru_cache(maxsize=4096)
def _route(segment: bytes) -> str:
    return "/" + segment.decode("utf-8", "replace")


class CombinedDecoder(BaseDecoder):
    name = "combined"

    def decode_one(self, value: bytes) -> Parsed:
        reason = precheck(value, self.max_bytes, None)  # size and UTF-8
        if reason is not None:
            fail(reason)
        m = _LINE.match(value)
        if m is None:
            fail("unparseable_line")
        stamp, segment, code = m.groups()
        status = check_status(int(code))
        ts = clf_time_ms(stamp)
        if ts is None:
            fail("bad_timestamp")
        return Parsed(ts, status, "", _route(segment) if segment else "", "")

    def decode(self, values: Sequence[bytes]) -> DecodedBatch:
        """``decode_one`` over the batch, with the size and UTF-8 checks done for the
        whole batch at once and the columns built directly (no ``Parsed`` per line)."""
        ok, bad = precheck_batch(values, self.max_bytes, None)
        invalid = [InvalidRecord(i, reason) for i, reason in bad.items()]
        match, stamp_ms, route_of = _LINE.match, clf_time_ms, _route
        ts: list[int] = []
        status: list[int] = []
        route: list[str] = []
        index: list[int] = []
        add_ts, add_status = ts.append, status.append
        add_route, add_index = route.append, index.append
        late_invalid = False
        for i in ok:
            m = match(values[i])
            if m is None:
                invalid.append(InvalidRecord(i, "unparseable_line"))
                late_invalid = True
                continue
            stamp, segment, code = m.groups()
            st = int(code)  # three digits: only 000-099 and 600-999 are out of range
            if not 100 <= st <= 599:
                invalid.append(InvalidRecord(i, "status_out_of_range"))
                late_invalid = True
                continue
            ms = stamp_ms(stamp)
            if ms is None:
                invalid.append(InvalidRecord(i, "bad_timestamp"))
                late_invalid = True
                continue
            add_ts(ms)
            add_status(st)
            add_route(route_of(segment) if segment else "")
            add_index(i)
        if late_invalid:
            invalid.sort(key=lambda r: r.index)
        n = len(ts)
        return DecodedBatch(
            np.array(ts, dtype=np.int64),
            np.array(status, dtype=np.int64),
            {"service": [""] * n, "route": route, "app": [""] * n},
            np.array(index, dtype=np.int64),
            invalid,
        )
