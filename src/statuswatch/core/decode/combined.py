"""Apache/NGINX "combined" access log lines (and "common", without referer and agent).

::

    1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /presentations/x HTTP/1.1" 200 20 "-" "curl"

One compiled regex per line. The timestamp's zone offset is honoured; the
status must be three digits (``000`` or ``-``: no response was sent, code 0);
anything after the size field (referer, agent, extra fields) is allowed and
ignored; trailing CR/LF is ignored. Dimensions: service ``""``, route the first
segment of the request path (``"/presentations"``; ``""`` for ``/``, a query on
``/``, or a malformed request line), app ``""``.

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
from functools import lru_cache
from typing import Final

import numpy as np

from statuswatch.core.columns import NO_RESPONSE, DecodedBatch, InvalidRecord
from statuswatch.core.decode.batch import BaseDecoder, precheck, precheck_batch
from statuswatch.core.decode.lines import indexable
from statuswatch.core.decode.protocol import Parsed, check_status, fail
from statuswatch.core.decode.timestamps import clf_time_ms

_LINE: Final = re.compile(
    rb"""
    \S++\ \S++\ \S++\                      # host ident authuser
    \[([^\]]*+)\]\                         # [17/May/2015:10:05:03 +0000]
    "(?:                                    # the request line, either
        [A-Za-z]++\ (?:/([^/?\#\s"]*+)[^\s"]*+|[^\s"]*+)(?:\ HTTP/[0-9.]++)?+  # well formed
        |[^"\\]*+(?:\\.[^"\\]*+)*+          # or anything (escaped quotes allowed)
    )"[ ]
    ([0-9]{3}|-)\ (?:[0-9]++|-)             # status ("-": none), size
    (?:\ [^\n]*+)?                          # referer, agent, anything else
    [\r\n]*+\Z                              # trailing CR/LF
    """,
    re.VERBOSE,
)

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
        status = check_status(NO_RESPONSE if code == b"-" else int(code), "status")
        ts = clf_time_ms(stamp)
        if ts is None:
            fail("bad_timestamp", "time")
        return Parsed(ts, status, "", _route(segment) if segment else "", "")

    def decode(self, values: Sequence[bytes]) -> DecodedBatch:
        """``decode_one`` over the batch, with the size and UTF-8 checks done for the
        whole batch at once and the columns built directly (no ``Parsed`` per line)."""
        values = indexable(values)
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
            # three digits or "-": only 001-099 and 600-999 are out of range
            st = NO_RESPONSE if code == b"-" else int(code)
            if not (100 <= st <= 599 or st == NO_RESPONSE):
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
