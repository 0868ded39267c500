"""NGINX ``log_format ... escape=json`` logs: the generic JSON decoder plus nginx quirks.

nginx writes every variable as a string, so besides what format ``json``
accepts this format takes numeric timestamps as strings (``$msec`` is
``"1680600000.123"``, seconds) and ``"-"`` (nginx's "no value") as empty: a
missing field for timestamp and status, ``""`` for a dimension.

>>> from statuswatch.config import DecodeConfig, FieldMap
>>> fields = FieldMap(timestamp="msec", timestamp_unit="s", status="status",
...                   service="upstream", route="location")
>>> d = NginxJsonDecoder(DecodeConfig(format="nginx-json", fields=fields))
>>> d.decode_one(b'{"msec": "1680600000.123", "status": "502", "upstream": "-",'
...              b' "location": "/api"}')
Parsed(ts_ms=1680600000123, status=502, service='', route='/api', app='')
>>> d.decode_one(b'{"msec": "1680600000.123", "status": "-"}')
Traceback (most recent call last):
...
statuswatch.errors.DecodeError: missing_field
"""

from __future__ import annotations

from typing import ClassVar

from statuswatch.core.decode.generic_json import GenericJsonDecoder


class NginxJsonDecoder(GenericJsonDecoder):
    name = "nginx-json"
    nginx_quirks: ClassVar[bool] = True
