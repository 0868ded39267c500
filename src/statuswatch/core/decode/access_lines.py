"""Access log lines read with one compiled regex each: what the line formats share.

A format names, in its pattern, the groups ``stamp`` (the time), ``status``,
``segment`` (the first segment of the request path) inside ``path`` (the path with its
query), and ``service`` where its lines carry one; it gives the function that reads its
time (``stamp_reader``) and the status text that means "no response was sent" (code
0). Dimensions: service from the line or ``""``, route ``"/" + segment`` (``""`` for
``/``, a query on ``/``, or a malformed request line; with ``decode.route_segments``,
that many segments of ``path``), app ``""``.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import ClassVar

import numpy as np

from statuswatch.config import DecodeConfig
from statuswatch.core.columns import (
    MAX_STATUS,
    MIN_STATUS,
    NO_RESPONSE,
    DecodedBatch,
    InvalidRecord,
    is_status,
)
from statuswatch.core.decode.batch import BaseDecoder, precheck, precheck_batch
from statuswatch.core.decode.lines import indexable
from statuswatch.core.decode.protocol import Parsed, fail, path_route
from statuswatch.core.decode.timestamps import LocalZone


@lru_cache(maxsize=4096)
def _route_of(segment: bytes) -> str:
    return "/" + segment.decode("utf-8", "replace")


@lru_cache(maxsize=1024)
def _service_of(name: bytes) -> str:
    return name.decode("utf-8", "replace")


class AccessLineDecoder(BaseDecoder):
    """A line format read by ``line`` (see the module's docstring for its groups)."""

    line: ClassVar[re.Pattern[bytes]]
    #: the ``status`` text of a request that got no response
    no_response: ClassVar[bytes]
    default_route_segments: ClassVar[int | None] = 1
    #: a prefix some lines carry before ``line``, its group 1 naming the service
    #: (Apache's vhost_combined); tried only where ``line`` does not match
    service_prefix: ClassVar[re.Pattern[bytes] | None] = None

    @classmethod
    @abstractmethod
    def stamp_reader(cls, zone: LocalZone) -> Callable[[bytes], int | None]:
        """The reader of the ``stamp`` group: milliseconds since the epoch, None if
        malformed or out of range (``zone``: of a time without an offset)."""

    def __init__(self, cfg: DecodeConfig) -> None:
        super().__init__(cfg)
        groups = self.line.groupindex
        self._has_service = "service" in groups
        self._service_group = groups.get("service", 0)
        self._time_ms = self.stamp_reader(self.zone)
        # The route: the first segment's group by default, else the whole path cut to
        # decode.route_segments.
        route_group = groups["segment"]
        self._route_of: Callable[[bytes], str] = _route_of
        segments = self.route_segments or 1
        if segments > 1:

            @lru_cache(maxsize=4096)
            def route_of_path(path: bytes) -> str:
                return path_route(path.decode("utf-8", "replace"), segments)

            route_group = groups["path"]
            self._route_of = route_of_path
        #: the groups' numbers: ``Match.group`` takes them faster than names
        self._stamp_status_route = (groups["stamp"], groups["status"], route_group)

    def _status(self, code: bytes) -> int | None:
        """The outcome code of the ``status`` text; None if out of range."""
        st = NO_RESPONSE if code == self.no_response else int(code)
        return st if is_status(st) else None

    def decode_one(self, value: bytes) -> Parsed:
        reason = precheck(value, self.max_bytes, None)  # size and UTF-8
        if reason is not None:
            fail(reason)
        m = self.line.match(value)
        prefix = None
        if m is None and self.service_prefix is not None:
            prefix = self.service_prefix.match(value)
            if prefix is not None:
                m = self.line.match(value, prefix.end())
        if m is None:
            fail("unparseable_line")
        stamp, code, target = m.group(*self._stamp_status_route)
        status = self._status(code)
        if status is None:
            fail("status_out_of_range", "status")
        ts = self._time_ms(stamp)
        if ts is None:
            fail("bad_timestamp", "time")
        service = _service_of(m[self._service_group]) if self._has_service else ""
        if prefix is not None:
            service = _service_of(prefix[1])
        return Parsed(ts, status, service, self._route_of(target) if target else "", "")

    def decode(self, values: Sequence[bytes]) -> DecodedBatch:
        """``decode_one`` over the batch, with the size and UTF-8 checks done for the
        whole batch at once and the columns built directly (no ``Parsed`` per line)."""
        values = indexable(values)
        ok, bad = precheck_batch(values, self.max_bytes, None)
        invalid = [InvalidRecord(i, reason) for i, reason in bad.items()]
        match, stamp_ms = self.line.match, self._time_ms
        no_response, (g_stamp, g_status, g_route) = self.no_response, self._stamp_status_route
        has_service, g_service = self._has_service, self._service_group
        route_of, service_of = self._route_of, _service_of  # locals: looked up once
        service_prefix = self.service_prefix.match if self.service_prefix is not None else None
        # The services of prefixed lines, by their index in values: kept off the per-line
        # path, and a line found invalid later is simply never looked up.
        prefixed: dict[int, bytes] = {}
        ts: list[int] = []
        status: list[int] = []
        service: list[str] = []
        route: list[str] = []
        index: list[int] = []
        add_ts, add_status, add_service = ts.append, status.append, service.append
        add_route, add_index = route.append, index.append
        late_invalid = False
        for i in ok:
            m = match(values[i])
            if m is None:
                prefix = service_prefix(values[i]) if service_prefix is not None else None
                if prefix is not None:
                    m = match(values[i], prefix.end())
                    prefixed[i] = prefix[1]
                if m is None:
                    invalid.append(InvalidRecord(i, "unparseable_line"))
                    late_invalid = True
                    continue
            stamp, code, target = m.group(g_stamp, g_status, g_route)
            # ``_status`` inline (a call per line costs)
            st = NO_RESPONSE if code == no_response else int(code)
            if not (MIN_STATUS <= st <= MAX_STATUS or st == NO_RESPONSE):
                invalid.append(InvalidRecord(i, "status_out_of_range"))
                late_invalid = True
                continue
            ms = stamp_ms(stamp)
            if ms is None:
                invalid.append(InvalidRecord(i, "bad_timestamp"))
                late_invalid = True
                continue
            add_ts(ms)
            add_status(st)
            if has_service:
                add_service(service_of(m[g_service]))
            add_route(route_of(target) if target else "")
            add_index(i)
        if late_invalid:
            invalid.sort(key=lambda r: r.index)
        n = len(ts)
        if not has_service:
            service = [""] * n
        if prefixed:
            service = [service_of(prefixed[i]) if i in prefixed else name
                       for i, name in zip(index, service, strict=True)]
        return DecodedBatch(
            np.array(ts, dtype=np.int64),
            np.array(status, dtype=np.int64),
            {"service": service, "route": route, "app": [""] * n},
            np.array(index, dtype=np.int64),
            invalid,
        )
