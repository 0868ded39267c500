"""NGINX ``log_format ... escape=json`` logs: the generic JSON decoder plus nginx quirks.

nginx writes every variable as a string, so besides what format ``json``
accepts this format takes numeric timestamps as strings (``$msec`` is
``"1680600000.123"``, seconds) and ``"-"`` or ``""`` (nginx's "no value") as
empty: a missing field for timestamp and status, ``""`` for a dimension.

Without ``decode.fields.timestamp`` the time comes from the first of these a
record has: ``msec`` (s), ``time_iso8601``, ``time_local`` (``clf``: the common
log format's ``06/Dec/2026:05:30:01 +0000``) and ``time`` (ISO-8601).

>>> from statuswatch.config import DecodeConfig, FieldMap
>>> d = NginxJsonDecoder(DecodeConfig(format="nginx-json",
...                      fields=FieldMap(service="upstream", route="location")))
>>> d.decode_one(b'{"time_local": "04/Apr/2023:10:00:00 +0000", "status": "502",'
...              b' "upstream": "-", "location": "/api"}')
Parsed(ts_ms=1680602400000, status=502, service='', route='/api', app='')
>>> d.decode_one(b'{"msec": "1680600000.123", "time_local": "04/Apr/2023:10:00:00 +0000",'
...              b' "status": "200"}').ts_ms
1680600000123
>>> d.decode_one(b'{"msec": "1680600000.123", "status": "-"}')
Traceback (most recent call last):
...
statuswatch.errors.DecodeError: missing_field: status
"""

from __future__ import annotations

from typing import ClassVar

from statuswatch.core.decode.generic_json import GenericJsonDecoder


class NginxJsonDecoder(GenericJsonDecoder):
    name = "nginx-json"
    nginx_quirks: ClassVar[bool] = True
