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
statuswatch.errors.DecodeError: wrong_type
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

from statuswatch.config import DecodeConfig
from statuswatch.core.decode.base import JsonDecoder, Parsed, check_status, check_ts_ms, fail


class _Named(msgspec.Struct, gc=False):
    name: str | None = None


class _Response(msgspec.Struct, gc=False):
    status: int | UnsetType = UNSET


class _Consumer(msgspec.Struct, gc=False):
    id: str | None = None
    username: str | None = None


class KongRecord(msgspec.Struct, gc=False):
    """The fields of a Kong log record statuswatch reads; the rest is skipped."""

    started_at: int | UnsetType = UNSET
    response: _Response | UnsetType = UNSET
    service: _Named | None = None
    route: _Named | None = None
    consumer: _Consumer | None = None


class KongDecoder(JsonDecoder[KongRecord]):
    name = "kong"

    def __init__(self, cfg: DecodeConfig) -> None:
        super().__init__(cfg, KongRecord)

    def extract(self, record: KongRecord) -> Parsed:
        ts = record.started_at
        response = record.response
        if ts is UNSET or response is UNSET or (status := response.status) is UNSET:
            fail("missing_field")
        check_status(status)
        check_ts_ms(ts)
        service, route, consumer = record.service, record.route, record.consumer
        return Parsed(
            ts,
            status,
            (service.name or "") if service is not None else "",
            (route.name or "") if route is not None else "",
            (consumer.id or consumer.username or "") if consumer is not None else "",
        )
