"""Kong access logs (kafka-log, file-log, http-log plugins): one JSON object per record.

Fields used (everything else is skipped unparsed)::

    started_at        int, ms since the epoch      required
    response.status   int                          required
    service.name      str                          service ("" when absent or null)
    route.name        str                          route   ("" when absent or null)
    consumer.id       str                          app: id, else consumer.username, else ""

>>> from statuswatch.config import DecodeConfig
>>> d = KongDecoder(DecodeConfig(format="kong"))
>>> d.decode_one(b'{"started_at": 1680600000123, "response": {"status": 502},'
...              b' "service": {"name": "billing"}, "consumer": {"username": "shop"}}')
Parsed(ts_ms=1680600000123, status=502, service='billing', route='', app='shop')
>>> d.decode_one(b'{"started_at": 1680600000123, "response": {"status": "502"}}')
Traceback (most recent call last):
...
statuswatch.errors.DecodeError: wrong_type: response.status
"""

from __future__ import annotations

from typing import Final

from statuswatch.config import DecodeConfig
from statuswatch.core.decode.json_fields import FieldTable, JsonField
from statuswatch.core.decode.jsondecoder import JsonDecoder

#: The fields above; typed: a value of another JSON type is ``wrong_type``.
KONG_FIELDS: Final = FieldTable(
    (
        JsonField("timestamp", ("started_at",), "int", unit="ms"),
        JsonField("status", ("response", "status"), "int"),
        JsonField("service", ("service", "name"), "str"),
        JsonField("route", ("route", "name"), "str"),
        JsonField("app", ("consumer", "id"), "str"),
        JsonField("app", ("consumer", "username"), "str"),
    ),
    typed=True,
)


class KongDecoder(JsonDecoder):
    name = "kong"

    def __init__(self, cfg: DecodeConfig) -> None:
        super().__init__(cfg, KONG_FIELDS, "KongRecord")
