"""HAProxy's HTTP log lines (``option httplog``, and ``option httpslog``'s, which add
fields after the request)::

    10.0.1.2:33317 [06/Dec/2026:05:30:01.655] api~ billing/s1 10/0/30/69/109 403 2750 \
        - - ---- 1/1/1/1/0 0/0 "GET /v1/charges HTTP/1.1"

(one line, cut here).

One compiled regex per line (``access_lines``); behind a syslog header (HAProxy's
``log`` to a syslog server) with ``decode.envelope: syslog``. The accept date has no
offset: it is HAProxy's local time, read in ``decode.timezone`` (UTC unless set; or log
``%trl``, which has the offset, in a ``log-format``). The status ``-1`` (the client or
a timeout ended the request before a response, termination state ``C...`` or ``s...``)
is no response, code 0. Dimensions:
service the backend (the frontend's own name where it answered itself), route the first
segment of the request path (an HTTP/2 request's absolute URI included), app ``""``.

>>> from statuswatch.config import DecodeConfig
>>> d = HAProxyDecoder(DecodeConfig(format="haproxy"))
>>> d.decode_one(b'10.0.1.2:33317 [06/Dec/2026:05:30:01.655] api~ billing/s1 '
...              b'10/0/30/69/109 403 2750 - - ---- 1/1/1/1/0 0/0 "GET /v1/charges HTTP/1.1"')
Parsed(ts_ms=1796535001655, status=403, service='billing', route='/v1', app='')
>>> d.decode_one(b'10.0.1.2:33318 [06/Dec/2026:05:30:02.000] api billing/s1 '
...              b'10/0/30/-1/2001 -1 0 - - CD-- 1/1/1/1/0 0/0 {curl/8.0} '
...              b'"GET https://api.example.com/v2/x HTTP/2.0"').status
0
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Final

from statuswatch.core.decode.access_lines import AccessLineDecoder
from statuswatch.core.decode.timestamps import LocalZone, haproxy_time_ms

_LINE: Final = re.compile(
    rb"""
    \S++\                                   # client address:port
    \[(?P<stamp>[^\]]*+)\]\                 # [06/Dec/2026:05:30:01.655]
    \S++\                                   # frontend (~: over TLS)
    (?P<service>[^/\s]++)/\S++\             # backend/server
    \S++\                                   # timers TR/Tw/Tc/Tr/Ta
    (?P<status>-?[0-9]++)\                  # status (-1: none)
    \+?[0-9]++\                             # bytes read (+: option logasap)
    \S++\ \S++\ \S++\                       # captured cookies, termination state
    \S++\ \S++                              # connections, queues
    (?:\ \{[^}]*+\})*+\                     # captured headers, if any
    "(?:                                    # the request line, either
        [A-Za-z]++\ (?:[A-Za-z][A-Za-z0-9+.-]*+://[^/\s"]*+)?+  # method, scheme://authority
        (?:(?P<path>/(?P<segment>[^/?\#\s"]*+)[^\s"]*+)|[^\s"]*+)(?:\ HTTP/[0-9.]++)?+
        |[^"]*+                             # or anything (<BADREQ>)
    )"
    (?:\ [^\n]*+)?                          # httpslog's fields, anything else
    [\r\n]*+\Z                              # trailing CR/LF
    """,
    re.VERBOSE,
)


class HAProxyDecoder(AccessLineDecoder):
    name = "haproxy"
    line = _LINE
    no_response = b"-1"

    @classmethod
    def stamp_reader(cls, zone: LocalZone) -> Callable[[bytes], int | None]:
        return haproxy_time_ms if zone.is_utc else partial(haproxy_time_ms, zone=zone)
