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

from operator import attrgetter
from typing import Any, cast

import msgspec
import numpy as np
import numpy.typing as npt
from msgspec import UNSET, UnsetType

from statuswatch.config import DecodeConfig
from statuswatch.core.decode.base import (
    FastColumns,
    JsonDecoder,
    Parsed,
    check_status,
    fail,
    in_ranges,
    int_column,
    iso_column,
    iso_to_ms,
)
from statuswatch.errors import ConfigError, DecodeError


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

    def init_fast(self) -> None:
        # Strict: strings and an int, no nulls; defaults fail the checks (fast path in base).
        fields: list[tuple[str, Any, Any]] = [
            ("start_time", str, ""),
            ("response_code", int, -1),
            ("upstream_cluster", str, ""),
            ("route_name", str, ""),
        ]
        rename: dict[str, str] | None = None
        key = self.cfg.fields.app
        if self._app_attr == "app_" and key is not None:
            fields.append(("app_", str, ""))
            rename = {"app_": key}
        self.set_fast_schema(msgspec.defstruct("FastEnvoy", fields, rename=rename, gc=False))
        names = ["start_time", "response_code", "upstream_cluster", "route_name"]
        self._fast_getters = [attrgetter(name) for name in names]
        self._fast_app = None if self._app_attr is None else attrgetter(self._app_attr)
        # The C scanner: "-" is read as "" ("d"); the app is a column of its own only
        # when it is not one of the dimension fields.
        native: list[tuple[tuple[str, ...], str]] = [
            (("start_time",), "S"),
            (("response_code",), "i"),
            (("upstream_cluster",), "d"),
            (("route_name",), "d"),
        ]
        if self._app_attr == "app_" and key is not None:
            native.append(((key,), "d"))
        self.set_native(native)

    def fast_columns(self, records: list[Any]) -> FastColumns:
        start, code, service, route = (list(map(get, records)) for get in self._fast_getters)
        app = [""] * len(records) if self._fast_app is None else list(map(self._fast_app, records))
        ts, ok = iso_column(start)
        status = int_column(code)
        for column in (service, route, app):
            if "-" in column:  # Envoy's "no value"
                for i, v in enumerate(column):
                    if v == "-":
                        column[i] = ""
        return FastColumns(ts, status, service, route, app, ok & in_ranges(ts, status))

    def native_columns(
        self, ints: npt.NDArray[np.int64], strs: list[list[str]], ok: npt.NDArray[np.bool_]
    ) -> FastColumns:
        start, service, route, *rest = strs
        if rest:
            app = rest[0]
        elif self._app_attr is None:
            app = [""] * len(start)
        else:
            app = list(service if self._app_attr == "upstream_cluster" else route)
        ts, good = iso_column(start)
        status = ints[0]
        return FastColumns(ts, status, service, route, app, ok & good & in_ranges(ts, status))

    def config_key(self, field: str) -> str | None:
        return "decode.fields.app" if field == self.cfg.fields.app else None

    def extract(self, record: EnvoyRecord) -> Parsed:
        start, code = record.start_time, record.response_code
        if start is UNSET:
            fail("missing_field", "start_time")
        if code is UNSET:
            fail("missing_field", "response_code")
        check_status(code, "response_code")
        service, route = record.upstream_cluster, record.route_name
        app = getattr(record, self._app_attr) if self._app_attr is not None else None
        try:
            ts = iso_to_ms(start)
        except DecodeError as exc:
            raise DecodeError(exc.reason, "start_time") from None
        return Parsed(
            ts,
            code,
            "" if service is None or service == "-" else service,
            "" if route is None or route == "-" else route,
            "" if app is None or app == "-" else app,
        )
