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

from operator import attrgetter
from typing import Any

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
    check_ts_ms,
    fail,
    in_ranges,
    int_column,
)


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


# The fast path's strict schema: every field the common Kong record has, no nulls.
# Defaults are values the range checks reject, so a record lacking a required
# field is not vouched for and takes the full path (which names the reason).


class _FastResponse(msgspec.Struct, gc=False):
    status: int = -1


class _FastNamed(msgspec.Struct, gc=False):
    name: str = ""


class _FastConsumer(msgspec.Struct, gc=False):
    id: str = ""
    username: str = ""


class _FastKong(msgspec.Struct, gc=False):
    started_at: int = -1
    response: _FastResponse = msgspec.field(default_factory=_FastResponse)
    service: _FastNamed = msgspec.field(default_factory=_FastNamed)
    route: _FastNamed = msgspec.field(default_factory=_FastNamed)
    consumer: _FastConsumer = msgspec.field(default_factory=_FastConsumer)


_GETTERS = tuple(
    map(attrgetter, ("started_at", "response.status", "service.name", "route.name", "consumer.id"))
)

# The same fields for the C scanner; "f": consumer.username where consumer.id is "".
_NATIVE_FIELDS = (
    (("started_at",), "i"),
    (("response", "status"), "i"),
    (("service", "name"), "s"),
    (("route", "name"), "s"),
    (("consumer", "id"), "s"),
    (("consumer", "username"), "f"),
)


class KongDecoder(JsonDecoder[KongRecord]):
    name = "kong"
    fast_schema = _FastKong

    def __init__(self, cfg: DecodeConfig) -> None:
        super().__init__(cfg, KongRecord)

    def init_fast(self) -> None:
        super().init_fast()
        self.set_native(_NATIVE_FIELDS)

    def extract(self, record: KongRecord) -> Parsed:
        ts = record.started_at
        response = record.response
        if ts is UNSET:
            fail("missing_field", "started_at")
        if response is UNSET or (status := response.status) is UNSET:
            fail("missing_field", "response.status")
        check_status(status, "response.status")
        check_ts_ms(ts, "started_at")
        service, route, consumer = record.service, record.route, record.consumer
        return Parsed(
            ts,
            status,
            (service.name or "") if service is not None else "",
            (route.name or "") if route is not None else "",
            (consumer.id or consumer.username or "") if consumer is not None else "",
        )

    def fast_columns(self, records: list[Any]) -> FastColumns:
        if not records:
            e = int_column([])
            return FastColumns(e, e.copy(), [], [], [], e.astype(bool))
        # one map per field: no per-record tuples (measured faster than one
        # multi-field attrgetter and a transpose)
        ts_l, st_l, service, route, app = (list(map(get, records)) for get in _GETTERS)
        ts, status = int_column(ts_l), int_column(st_l)
        if "" in app:  # consumer.id absent or empty: the username, as in extract()
            for i, a in enumerate(app):
                if not a:
                    app[i] = records[i].consumer.username
        return FastColumns(ts, status, service, route, app, in_ranges(ts, status))

    def native_columns(
        self, ints: npt.NDArray[np.int64], strs: list[list[str]], ok: npt.NDArray[np.bool_]
    ) -> FastColumns:
        ts, status = ints
        service, route, app = strs
        return FastColumns(ts, status, service, route, app, ok & in_ranges(ts, status))
