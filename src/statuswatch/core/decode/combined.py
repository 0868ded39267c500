"""Apache/NGINX "combined" access log lines (and "common", without referer and agent;
and Apache's "vhost_combined", with the virtual host and port first).

::

    1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /presentations/x HTTP/1.1" 200 20 "-" "curl"
    api.example.com:443 1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET /v1/x HTTP/1.1" 200 ...

One compiled regex per line (``access_lines``). The timestamp's zone offset is
honoured; the status must be three digits (``000`` or ``-``: no response was sent,
code 0); anything after the size field (referer, agent, extra fields) is allowed and
ignored; trailing CR/LF is ignored. Dimensions: service the virtual host of a
vhost_combined line (Debian's ``other_vhosts_access.log``), else ``""``; route the first
segment of the request path (``"/presentations"``; ``""`` for ``/``, a query on
``/``, or a malformed request line), app ``""``. The virtual host is looked for only
where the line does not match as it is, so plain lines pay nothing for it.

>>> from statuswatch.config import DecodeConfig
>>> d = CombinedDecoder(DecodeConfig(format="combined"))
>>> d.decode_one(b'1.2.3.4 - - [17/May/2015:12:05:03 +0200] "GET /a/b?c=d HTTP/1.1" 404 7\\r\\n')
Parsed(ts_ms=1431857103000, status=404, service='', route='/a', app='')
>>> d.decode_one(b'1.2.3.4 - - [17/May/2015:10:05:03 +0000] "\\\\x16\\\\x03" 400 0 "-" "-"').route
''
>>> d.decode_one(b'api.example.com:443 10.0.0.1 - - [17/May/2015:10:05:03 +0000] '
...              b'"GET /v1/charges HTTP/1.1" 403 12 "-" "curl"')
Parsed(ts_ms=1431857103000, status=403, service='api.example.com', route='/v1', app='')
>>> d.decode_one(b'hello')
Traceback (most recent call last):
...
statuswatch.errors.DecodeError: unparseable_line
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from statuswatch.core.decode.access_lines import AccessLineDecoder
from statuswatch.core.decode.timestamps import LocalZone, clf_time_ms

_LINE: Final = re.compile(
    rb"""
    \S++\ \S++\ \S++\                      # host ident authuser
    \[(?P<stamp>[^\]]*+)\]\                  # [17/May/2015:10:05:03 +0000]
    "(?:                                    # the request line, either
        [A-Za-z]++\ (?:(?P<path>/(?P<segment>[^/?\#\s"]*+)[^\s"]*+)|[^\s"]*+)(?:\ HTTP/[0-9.]++)?+
        |[^"\\]*+(?:\\.[^"\\]*+)*+          # or anything (escaped quotes allowed)
    )"[ ]
    (?P<status>[0-9]{3}|-)\ (?:[0-9]++|-)  # status ("-": none), size
    (?:\ [^\n]*+)?                          # referer, agent, anything else
    [\r\n]*+\Z                              # trailing CR/LF
    """,
    re.VERBOSE,
)


#: vhost_combined's ``%v:%p `` (the virtual host and its port) before the combined line
_VIRTUAL_HOST: Final = re.compile(rb"([^\s:]++):[0-9]++\ ")


class CombinedDecoder(AccessLineDecoder):
    name = "combined"
    line = _LINE
    no_response = b"-"
    service_prefix = _VIRTUAL_HOST

    @classmethod
    def stamp_reader(cls, zone: LocalZone) -> Callable[[bytes], int | None]:
        return clf_time_ms  # the time always has its offset
