"""JSON logs with configurable fields: formats ``json`` and (via a subclass) ``nginx-json``.

``decode.fields`` names each field by a dotted path (``"request.status"`` is
``{"request": {"status": ...}}``)::

    timestamp   required; timestamp_unit s | ms | us | ns (a JSON number) or
                iso8601 (a string, naive means UTC)
    status      an integer, an integral float or a digit string ("200"); required,
                but ``null`` (format ``json`` only) names no field: the records are
                events without a status, each counted as ``EVENT_CODE``
    service     optional str ("" when absent, null, or the field is not configured)
    route       optional str
    app         optional str

The field map becomes the format's table of fields (``json_fields``), from which
the full schema (exactly these paths: everything else in a record is skipped
unparsed) and the C scanner's fields are built once per decoder.

>>> from statuswatch.config import DecodeConfig, FieldMap
>>> fields = FieldMap(timestamp="ts", timestamp_unit="ms", status="http.status",
...                   service="svc")
>>> d = GenericJsonDecoder(DecodeConfig(format="json", fields=fields))
>>> d.decode_one(b'{"ts": 1680600000123, "http": {"status": "404"}, "svc": "billing"}')
Parsed(ts_ms=1680600000123, status=404, service='billing', route='', app='')
>>> d.decode_one(b'{"ts": 1680600000123, "http": {"status": 404.5}}')
Traceback (most recent call last):
...
statuswatch.errors.DecodeError: wrong_type: http.status
>>> tickets = FieldMap(timestamp="created_at", status=None, service="category")
>>> d = GenericJsonDecoder(DecodeConfig(format="json", fields=tickets))
>>> d.decode_one(b'{"created_at": "2026-12-06T07:00:00Z", "category": "billing"}')
Parsed(ts_ms=1796540400000, status=600, service='billing', route='', app='')
"""

from __future__ import annotations

from typing import ClassVar

from statuswatch.config import DecodeConfig, FieldMap, TimestampUnit
from statuswatch.core.decode.json_fields import FieldTable, FieldType, JsonField, Role
from statuswatch.core.decode.jsondecoder import JsonDecoder
from statuswatch.errors import ConfigError

#: The timestamp fields of format ``nginx-json`` when ``decode.fields.timestamp`` is
#: not set, in order of precedence (the first a record has is used): the
#: millisecond ``$msec`` first, then the unambiguous ISO time, then ``$time_local``,
#: then ``time``, the usual name for a hand-picked variable.
NGINX_TIME_FIELDS: tuple[tuple[str, TimestampUnit], ...] = (
    ("msec", "s"),
    ("time_iso8601", "iso8601"),
    ("time_local", "clf"),
    ("time", "iso8601"),
)

_NGINX_UNITS: dict[str, TimestampUnit] = dict(NGINX_TIME_FIELDS)


def timestamp_fields(fields: FieldMap, nginx: bool) -> list[tuple[str, TimestampUnit]]:
    """The timestamp fields to look in, in order, each with its unit.

    >>> timestamp_fields(FieldMap(), nginx=False)
    [('time', 'iso8601')]
    >>> timestamp_fields(FieldMap(timestamp="time_local"), nginx=True)
    [('time_local', 'clf')]
    >>> [name for name, _ in timestamp_fields(FieldMap(), nginx=True)]
    ['msec', 'time_iso8601', 'time_local', 'time']
    """
    if fields.timestamp is not None:
        unit = fields.timestamp_unit
        if unit is None:  # an nginx variable brings its unit
            unit = _NGINX_UNITS.get(fields.timestamp, "iso8601") if nginx else "iso8601"
        return [(fields.timestamp, unit)]
    if not nginx:
        return [("time", fields.timestamp_unit or "iso8601")]
    if fields.timestamp_unit is not None:
        raise ConfigError(
            "decode.fields.timestamp_unit: set decode.fields.timestamp too (unset, format "
            "nginx-json reads msec, time_iso8601, time_local or time, each in its own unit)"
        )
    return list(NGINX_TIME_FIELDS)



def generic_table(fields: FieldMap, nginx: bool) -> FieldTable:
    """The table of fields ``decode.fields`` names. Untyped: the decoder checks each
    value (a status may be ``"200"`` or ``200.0``). The type of each field is that of
    the common shape: an epoch integer or a string timestamp, an integer status, and
    with nginx (which writes every value as a string) strings throughout.

    >>> [(f.role, f.dotted, f.type) for f in generic_table(FieldMap(status="http.code"),
    ...                                                    nginx=False).fields]
    [('timestamp', 'time', 'str'), ('status', 'http.code', 'int')]
    """
    if fields.status is None and nginx:
        raise ConfigError("decode.fields.status: null (records without a status) needs "
                          "format json, not nginx-json")
    table: list[JsonField] = []
    for name, unit in timestamp_fields(fields, nginx):
        ts_type: FieldType = "str" if nginx or unit in ("iso8601", "clf") else "int"
        table.append(JsonField("timestamp", tuple(name.split(".")), ts_type, unit, nginx))
    roles: tuple[tuple[Role, str | None], ...] = (
        ("status", fields.status), ("service", fields.service), ("route", fields.route),
        ("app", fields.app),
    )
    for role, path in roles:
        if path is not None:
            typ: FieldType = "int" if role == "status" and not nginx else "str"
            table.append(JsonField(role, tuple(path.split(".")), typ, dash_is_empty=nginx))
    return FieldTable(tuple(table), typed=False, digit_strings=nginx)


class GenericJsonDecoder(JsonDecoder):
    name = "json"
    #: nginx-json quirks: numeric strings as timestamps, "-" and "" as no value,
    #: the timestamp from one of several fields.
    nginx_quirks: ClassVar[bool] = False

    def __init__(self, cfg: DecodeConfig) -> None:
        super().__init__(cfg, generic_table(cfg.fields, self.nginx_quirks), "GenericJsonRecord")

    def config_key(self, field: str) -> str | None:
        """``decode.fields.<role>`` of a field path (or of the timestamp fields together).

        >>> d = GenericJsonDecoder(DecodeConfig(format="json", fields=FieldMap(app="client")))
        >>> d.config_key("time"), d.config_key("client"), d.config_key("other")
        ('decode.fields.timestamp', 'decode.fields.app', None)
        """
        if field in self.ts_names or field == "/".join(self.ts_names):
            return "decode.fields.timestamp"
        f = self.cfg.fields
        for role, path in (("status", self.status_name), ("service", f.service),
                           ("route", f.route), ("app", f.app)):
            if field == path:
                return f"decode.fields.{role}"
        return None
