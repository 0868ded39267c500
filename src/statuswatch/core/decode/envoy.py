"""Envoy JSON access logs (``json_format`` of a file or gRPC access log sink).

Fields used (everything else is skipped unparsed)::

    start_time        ISO-8601 str, e.g. "2023-04-04T10:00:00.123Z"   required
    response_code     int; 0: no response was sent (a reset, a disconnect)  required
    upstream_cluster  str                                              service
    route_name        str                                              route
    <fields.app>      str, the top-level key named by decode.fields.app app ("" if unset)

Dimensions that are absent, ``null`` or ``"-"`` (Envoy's "no value") are ``""``.

>>> from statuswatch.config import DecodeConfig, FieldMap
>>> d = EnvoyDecoder(DecodeConfig(format="envoy", fields=FieldMap(app="x_app")))
>>> d.decode_one(b'{"start_time": "2023-04-04T10:00:00.123Z", "response_code": 503,'
...              b' "upstream_cluster": "billing", "route_name": "-", "x_app": "shop"}')
Parsed(ts_ms=1680602400123, status=503, service='billing', route='', app='shop')
>>> d.decode_one(b'{"start_time": "2023-04-04T10:00:00.123Z", "response_code": 0}').status
0
"""

from __future__ import annotations

from typing import Final

from statuswatch.config import DecodeConfig
from statuswatch.core.decode.json_fields import FieldTable, JsonField
from statuswatch.core.decode.jsondecoder import JsonDecoder
from statuswatch.errors import ConfigError

#: The fields above but the app; typed: a value of another JSON type is ``wrong_type``.
ENVOY_FIELDS: Final[tuple[JsonField, ...]] = (
    JsonField("timestamp", ("start_time",), "str", unit="iso8601"),
    JsonField("status", ("response_code",), "int"),
    JsonField("service", ("upstream_cluster",), "str", dash_is_empty=True),
    JsonField("route", ("route_name",), "str", dash_is_empty=True),
)


def envoy_table(app: str | None) -> FieldTable:
    """``ENVOY_FIELDS`` and the app from the top-level key ``app`` (may be a dimension's)."""
    fields: tuple[JsonField, ...] = ENVOY_FIELDS
    if app is not None:
        if app in ("start_time", "response_code"):
            raise ConfigError(f"decode.fields.app: {app!r} is not a string field in Envoy logs")
        fields = (*fields, JsonField("app", (app,), "str", dash_is_empty=True))
    return FieldTable(fields, typed=True)


class EnvoyDecoder(JsonDecoder):
    name = "envoy"

    def __init__(self, cfg: DecodeConfig) -> None:
        super().__init__(cfg, envoy_table(cfg.fields.app), "EnvoyRecord")

    def config_key(self, field: str) -> str | None:
        return "decode.fields.app" if field == self.cfg.fields.app else None
