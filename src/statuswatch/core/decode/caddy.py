"""Caddy's JSON access log (``log { format json }``; one line, cut here)::

    {"level":"info","ts":1796607789.4139824,"logger":"http.log.access.log0",
     "msg":"handled request","request":{"remote_ip":"10.0.1.2","proto":"HTTP/1.1",
     "method":"GET","host":"api.example.com","uri":"/v1/charges/42?expand=all",
     "headers":{...}},"user_id":"","duration":0.0039,"size":335,"status":403,...}

Fields used (everything else is skipped unparsed)::

    ts            epoch seconds, a JSON number                         required
    status        int; 0: no response was sent (``abort``, a client gone)   required
    request.host  str, the site the request was for                    service
    request.uri   str, path and query: its first segment               route
                  (``decode.route_segments`` more)
    <fields.app>  str, a dotted path (``user_id``: the authenticated   app ("" if unset)
                  user)

>>> from statuswatch.config import DecodeConfig, FieldMap
>>> d = CaddyDecoder(DecodeConfig(format="caddy", fields=FieldMap(app="user_id")))
>>> d.decode_one(b'{"ts":1796607789.4139824,"request":{"host":"api.example.com",'
...              b'"uri":"/v1/charges/42?expand=all"},"user_id":"shop","status":403}')
Parsed(ts_ms=1796607789414, status=403, service='api.example.com', route='/v1', app='shop')
>>> d.decode_one(b'{"ts":1796607789.5,"request":{"host":"api.example.com","uri":"/"},'
...              b'"status":0}').status
0
"""

from __future__ import annotations

from typing import ClassVar, Final

from statuswatch.config import DecodeConfig
from statuswatch.core.decode.json_fields import FieldTable, JsonField
from statuswatch.core.decode.jsondecoder import JsonDecoder
from statuswatch.errors import ConfigError

#: The fields above but the app. Untyped: the full decoder takes ``ts`` as any number
#: (the C scanner reads it as seconds to milliseconds, without an exponent).
CADDY_FIELDS: Final[tuple[JsonField, ...]] = (
    JsonField("timestamp", ("ts",), "int", unit="s"),
    JsonField("status", ("status",), "int"),
    JsonField("service", ("request", "host"), "str"),
    JsonField("route", ("request", "uri"), "str"),
)


def caddy_table(app: str | None) -> FieldTable:
    """``CADDY_FIELDS`` and the app from the dotted path ``app``."""
    fields: tuple[JsonField, ...] = CADDY_FIELDS
    if app is not None:
        path = tuple(app.split("."))
        # one a prefix of the other: the same field, or an object holding one
        if any(f.path[: len(path)] == path[: len(f.path)] for f in CADDY_FIELDS):
            raise ConfigError(f"decode.fields.app: {app!r} is not a string field of its own "
                              "in Caddy's log")
        fields = (*fields, JsonField("app", path, "str"))
    return FieldTable(fields, typed=False)


class CaddyDecoder(JsonDecoder):
    name = "caddy"
    default_route_segments: ClassVar[int | None] = 1

    def __init__(self, cfg: DecodeConfig) -> None:
        super().__init__(cfg, caddy_table(cfg.fields.app), "CaddyRecord")

    def config_key(self, field: str) -> str | None:
        return "decode.fields.app" if field == self.cfg.fields.app else None
