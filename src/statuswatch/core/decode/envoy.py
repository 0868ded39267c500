"""Envoy JSON access logs (``json_format`` of a file or gRPC access log sink).

Fields used (everything else is skipped unparsed)::

    start_time        ISO-8601 str, e.g. "2023-04-04T10:00:00.123Z"   required
    response_code     int (Envoy writes 0 when there was no response) required
    upstream_cluster  str                                              service
    route_name        str                                              route
    <fields.app>      str, the top-level key named by decode.fields.app app ("" if unset)

Dimensions that are absent, ``null`` or ``"-"`` (Envoy's "no value") are ``""``.

>>> from statuswatch.config import DecodeConfig, FieldMap
>>> d = EnvoyDecoder(DecodeConfig(format="envoy", fields=FieldMap(app="x_app")))
>>> d.decode_one(b'{"start_time": "2023-04-04T10:00:00.123Z", "response_code": 503,'
...              b' "upstream_cluster": "billing", "route_name": "-", "x_app": "shop"}')
Parsed(ts_ms=1680602400123, status=503, service='billing', route='', app='shop')
>>> d.decode_one(b'{"start_time": "2023-04-04T10:00:00.123Z", "response_code": 0}')
Traceback (most recent call last):
...
statuswatch.errors.DecodeError: status_out_of_range
"""

from __future__ import annotations

from typing import cast

import msgspec
from msgspec import UNSET, UnsetType

from statuswatch.config import DecodeConfig
from statuswatch.core.decode.base import JsonDecoder, Parsed, check_status, fail, iso_to_ms
from statuswatch.errors import ConfigError


class EnvoyRecord(msgspec.Struct, gc=False):
    """The fields of an Envoy JSON access log statuswatch reads; the rest is skipped."""

    start_time: str | UnsetType = UNSET
    response_code: int | UnsetType = UNSET
    upstream_cluster: str | None = None
    route_name: str | None = None


_DIM_FIELDS = ("upstream_cluster", "route_name")


class EnvoyDecoder(JsonDecoder[EnvoyRecord]):
    name = "envoy"

    def __init__(self, cfg: DecodeConfig) -> None:
        key = cfg.fields.app
        schema: type[EnvoyRecord] = EnvoyRecord
        self._app_attr: str | None = None
        if key is not None:
            if key in _DIM_FIELDS:
                self._app_attr = key
            elif key in EnvoyRecord.__struct_fields__:
                raise ConfigError(f"decode.fields.app: {key!r} is not a string field in Envoy logs")
            else:
                self._app_attr = "app_"
                schema = cast(
                    type[EnvoyRecord],
                    msgspec.defstruct(
                        "EnvoyRecordWithApp",
                        [("app_", str | None, None)],
                        bases=(EnvoyRecord,),
                        rename={"app_": key},
                        gc=False,
                    ),
                )
        super().__init__(cfg, schema)

    def extract(self, record: EnvoyRecord) -> Parsed:
        start, code = record.start_time, record.response_code
        if start is UNSET or code is UNSET:
            fail("missing_field")
        check_status(code)
        service, route = record.upstream_cluster, record.route_name
        app = getattr(record, self._app_attr) if self._app_attr is not None else None
        return Parsed(
            iso_to_ms(start),
            code,
            "" if service is None or service == "-" else service,
            "" if route is None or route == "-" else route,
            "" if app is None or app == "-" else app,
        )
