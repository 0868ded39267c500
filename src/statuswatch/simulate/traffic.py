"""Simulated API-gateway traffic, generated as numpy columns (pure: no I/O, no clock).

The model
---------
* A fleet of services (:data:`FLEET`), each with a few routes, and ``n_apps``
  client apps (``app-0001`` ...) whose traffic weights follow a Zipf law
  (``app-0001`` is the heaviest). Every app calls ``auth-api`` and a seeded
  subset of the other services; the joint (app, service) table is fitted so
  that app shares are exactly Zipf and service shares exactly ``ServiceDef.share``.
* Each route has a baseline status mix (:attr:`SimSpec.route_mix`); a record's
  status is drawn from it, so window shares carry multinomial noise.
* Arrivals are Poisson per second with mean ``rate`` (times the diurnal factor
  when ``diurnal`` is on: weekday peak at 16:00 UTC, night trough at 25% of the
  peak at 04:00 UTC, or at ``diurnal_trough`` of it for deep night lulls; weekends
  at 70%; normalised so that ``rate`` is the weekly average). Milliseconds are
  spread uniformly within each second.
* :class:`Surge` s multiply the whole fleet's volume (a marketing surge), with
  the normal status mix: a shape that must not page.
* With ``sparse`` on, normal traffic also has the shapes of small and bursty
  scopes (:data:`SPARSE_FLEET`): ``reports-api`` is silent but for a few
  bursts an hour (Poisson, 20-90 s at 1-4 req/s); ``partner-api`` is a daytime
  integration with near-zero nights (about one request every half hour from
  20:00 to 08:00 UTC); ``crawler-bot`` is an app that crawls ``contacts-api``'s
  read routes at 15 req/s for 5-15 minutes, in half of the 6-hour blocks. Their
  status mixes are their routes' usual ones: they page nothing. Drawn from their
  own random stream, so the rest of the traffic is the same with or without them.
* :class:`Incident` s change the status of in-scope records, or their volume,
  between ``start_ms`` (inclusive) and ``end_ms`` (exclusive), exactly to the
  millisecond. Status changes are applied in the order the incidents are listed,
  so a later incident overrides an earlier one on the same record.

Randomness comes from ``numpy.random.default_rng([seed, second])`` for each second
of event time, so a second's records depend only on the spec and the second:
the output does not depend on ``chunk_ms`` or on where a run starts or stops.

>>> spec = SimSpec(seed=7, rate=100.0, n_apps=20)
>>> chunks = list(generate(spec, 1_680_566_400_000, 1_680_566_405_000))
>>> len(chunks), sum(len(c) for c in chunks) > 0
(5, True)
>>> spec.services[int(chunks[0].service[0])] in spec.services
True
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from statuswatch.errors import ConfigError
from statuswatch.simulate.fleet import (
    CRAWLER_APP,
    CRAWLER_RATE,
    CRAWLER_ROUTES,
    F64,
    I64,
    PARTNER_NIGHT_RATE,
    PARTNER_PEAK_RATE,
    SPARSE_FLEET,
    U64,
    diurnal_factor,
)
from statuswatch.simulate.incidents import in_scope, volume_factor
from statuswatch.simulate.spec import SamplingTables, SimSpec, normalised_cdf


@dataclass(frozen=True, slots=True)
class Chunk:
    """The records with ``start_ms <= ts_ms < end_ms``, sorted by ``ts_ms``.

    ``service``, ``route`` and ``app`` index :attr:`SimSpec.services`,
    :attr:`SimSpec.routes` and :attr:`SimSpec.apps`. ``latency_ms`` is the
    upstream latency (0 when the gateway answered itself), ``size`` the response
    body size, ``rid`` 64 random bits per record (request ids, ids in paths).
    """

    start_ms: int
    end_ms: int
    ts_ms: I64
    status: I64
    service: I64
    route: I64
    app: I64
    latency_ms: I64
    size: I64
    rid: U64

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])


_COLUMNS: Final = ("ts_ms", "status", "service", "route", "app", "latency_ms", "size", "rid")

_TAG_SPARSE: Final = 0x5BA2_5E00


def _second(spec: SimSpec, sec: int) -> dict[str, npt.NDArray[Any]]:
    """All records of epoch second ``sec`` as columns (depends only on spec and sec)."""
    t = spec._t
    t0 = sec * 1000
    rng = np.random.default_rng([spec.seed, sec])
    lam = spec.rate * (diurnal_factor(sec + 0.5, spec.diurnal_trough) if spec.diurnal else 1.0)
    for surge in spec.surges:
        lam *= surge.factor_at(sec * 1000 + 500)
    vol = [
        inc
        for inc in spec._inc
        if inc.start_ms < t0 + 1000 and inc.end_ms > t0 and volume_factor(inc) != 1.0
    ]
    cdf = t.cell_cdf
    ceiling: F64 | None = None
    if vol:
        # Sample at the highest volume any of these incidents reaches within the
        # second, then thin each record to the volume in force at its millisecond.
        ceiling = np.ones(t.cell_p.shape[0])
        for inc in vol:
            f = volume_factor(inc)
            if f > 1.0:
                m = in_scope(inc, t.cell_service, t.cell_route, t.cell_app)
                ceiling[m] *= f
        w = t.cell_p * ceiling
        lam *= float(w.sum())
        cdf = normalised_cdf(w)
    n = int(rng.poisson(lam))
    cells = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), cdf.shape[0] - 1)
    ts = t0 + np.sort(rng.integers(0, 1000, n, dtype=np.int64))
    if ceiling is not None:
        mult = np.ones(n)
        for inc in vol:
            active = (ts >= inc.start_ms) & (ts < inc.end_ms)
            m = active & in_scope(
                inc, t.cell_service[cells], t.cell_route[cells], t.cell_app[cells]
            )
            mult[m] *= volume_factor(inc)
        keep = rng.random(n) * ceiling[cells] < mult
        cells, ts = cells[keep], ts[keep]
        n = int(cells.shape[0])
    app = t.cell_app[cells]
    route = t.cell_route[cells]
    service = t.cell_service[cells]
    status = _draw_status(t, route, rng)
    for inc in spec._inc:
        if not (inc.start_ms < t0 + 1000 and inc.end_ms > t0) or inc.kind == "drop":
            continue
        m = (ts >= inc.start_ms) & (ts < inc.end_ms) & in_scope(inc, service, route, app)
        if inc.kind == "freeze":
            status[m] = inc.code
        elif inc.kind == "creep":
            progress = np.minimum((ts - inc.start_ms) / inc.ramp_ms, 1.0)
            # target share b + (fraction - b) * progress: convert the other calls
            b = inc.base[route]
            q = np.clip((inc.fraction - b) * progress / (1.0 - b), 0.0, 1.0)
            hit = m & ~np.isin(status, inc.raised) & (rng.random(n) < q)
            k = int(hit.sum())
            if inc.raised.shape[0] == 1:
                status[hit] = inc.raised[0]
            else:
                pick = np.searchsorted(inc.raised_cdf, rng.random(k), side="right")
                status[hit] = inc.raised[np.minimum(pick, inc.raised.shape[0] - 1)]
        else:  # outage, storm, spike, newcode
            status[m & (rng.random(n) < inc.fraction)] = inc.code
    if spec.sparse:
        extra = _sparse_second(spec, sec)
        order = np.argsort(np.concatenate([ts, extra["ts_ms"]]), kind="stable")
        ts, status, service, route, app = (
            np.concatenate([a, extra[k]])[order] for a, k in (
                (ts, "ts_ms"), (status, "status"), (service, "service"), (route, "route"),
                (app, "app"),
            )
        )
        n = int(ts.shape[0])
    # Upstream latency (ms) and response size, shaped by the status.
    lat = t.route_lat[route] * np.exp(0.5 * rng.standard_normal(n))
    size = t.route_size[route] * np.exp(0.35 * rng.standard_normal(n))
    err = status >= 400
    size[err] = 60.0 + 90.0 * rng.random(int(err.sum()))
    size[(status == 204) | (status == 304)] = 0.0
    lat[status == 304] *= 0.5
    lat[(status == 502) | (status == 503)] = 1.0 + 4.0 * rng.random(
        int(((status == 502) | (status == 503)).sum())
    )
    lat[status == 504] = 60_000.0
    lat[status == 429] = 0.0  # answered by the gateway's rate limiter
    rid = rng.integers(0, np.iinfo(np.uint64).max, n, dtype=np.uint64, endpoint=True)
    return {
        "ts_ms": ts,
        "status": status.astype(np.int64, copy=False),
        "service": service,
        "route": route,
        "app": app,
        "latency_ms": np.rint(lat).astype(np.int64),
        "size": np.rint(size).astype(np.int64),
        "rid": rid,
    }


def _draw_status(t: SamplingTables, route: I64, rng: np.random.Generator) -> I64:
    """Each record's status from its route's baseline mix."""
    idx = np.searchsorted(t.code_cdf, route + rng.random(route.shape[0]), side="right")
    out: I64 = t.codes[np.minimum(idx - route * t.codes.shape[0], t.codes.shape[0] - 1)]
    return out


def sparse_rates(spec: SimSpec, sec: int) -> dict[str, float]:
    """Mean requests/s of each sparse shape at epoch second ``sec`` (``SimSpec.sparse``).

    >>> rates = sparse_rates(SimSpec(sparse=True), 3 * 3600)  # 03:00 UTC
    >>> rates["partner-api"] == PARTNER_NIGHT_RATE
    True
    """
    hour = sec // 3600
    rng = np.random.default_rng([spec.seed, _TAG_SPARSE, 1, hour])
    bursts = int(rng.poisson(2.0))
    starts = hour * 3600 + rng.integers(0, 3600, bursts)
    ends = starts + rng.integers(20, 91, bursts)
    levels = rng.uniform(1.0, 4.0, bursts)
    reports = float(levels[(starts <= sec) & (sec < ends)].sum())
    day_hour = (sec % 86400) / 3600
    partner = PARTNER_PEAK_RATE * max(0.0, math.cos(2 * math.pi * (day_hour - 14) / 24)) ** 2
    crawl = _crawl(spec, sec // CRAWL_BLOCK_S)
    crawls = crawl is not None and crawl[0] <= sec < crawl[1]
    return {
        "reports-api": reports,
        "partner-api": max(partner, PARTNER_NIGHT_RATE),
        CRAWLER_APP: CRAWLER_RATE if crawls else 0.0,
    }


CRAWL_BLOCK_S: Final = 6 * 3600


def _crawl(spec: SimSpec, block: int) -> tuple[int, int] | None:
    """The crawl of a 6-hour block, ``[start, end)`` in epoch seconds, if it has one."""
    rng = np.random.default_rng([spec.seed, _TAG_SPARSE, 2, block])
    start = block * CRAWL_BLOCK_S + int(rng.integers(0, 5 * 3600))
    end = start + int(rng.integers(300, 901))
    return (start, end) if rng.random() < 0.5 else None


def crawls(spec: SimSpec, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """The crawler's bursts overlapping ``[start_ms, end_ms)``, in epoch seconds."""
    blocks = range(start_ms // 1000 // CRAWL_BLOCK_S, end_ms // 1000 // CRAWL_BLOCK_S + 1)
    found = [_crawl(spec, b) for b in blocks]
    return [c for c in found if c is not None and c[1] * 1000 > start_ms
            and c[0] * 1000 < end_ms]


def _sparse_second(spec: SimSpec, sec: int) -> dict[str, npt.NDArray[Any]]:
    """The sparse shapes' records of epoch second ``sec``, from their own random stream."""
    rng = np.random.default_rng([spec.seed, _TAG_SPARSE, 0, sec])
    rates = sparse_rates(spec, sec)
    n_apps = spec.n_apps
    route, app = [], []
    for svc in SPARSE_FLEET:  # one route each; clients: the apps that use admin tools
        k = int(rng.poisson(rates[svc.name]))
        route.append(np.full(k, spec.routes.index(svc.routes[0].name), np.int64))
        app.append(rng.integers(0, min(n_apps, 20), k).astype(np.int64))
    k = int(rng.poisson(rates[CRAWLER_APP]))
    crawl_routes = np.array([spec.routes.index(r) for r in CRAWLER_ROUTES], np.int64)
    route.append(crawl_routes[rng.integers(0, len(crawl_routes), k)])
    app.append(np.full(k, n_apps, np.int64))
    routes, apps = np.concatenate(route), np.concatenate(app)
    ts: I64 = np.asarray(rng.integers(0, 1000, size=routes.shape[0]), np.int64) + sec * 1000
    return {
        "ts_ms": ts,
        "status": _draw_status(spec._t, routes, rng),
        "service": spec.route_service[routes],
        "route": routes,
        "app": apps,
    }


def generate(spec: SimSpec, start_ms: int, end_ms: int, chunk_ms: int = 1000) -> Iterator[Chunk]:
    """Yield the records of ``[start_ms, end_ms)`` as chunks of ``chunk_ms`` event time.

    Chunks are ``[start_ms + k*chunk_ms, ...)``; an empty stretch yields an empty
    chunk, so the caller can pace output on chunk boundaries.

    >>> spec = SimSpec(rate=50.0, n_apps=5)
    >>> a = list(generate(spec, 1_000_500, 1_004_000, chunk_ms=700))
    >>> b = list(generate(spec, 1_000_500, 1_004_000, chunk_ms=2000))
    >>> [c.start_ms for c in b]
    [1000500, 1002500]
    >>> bool((np.concatenate([c.ts_ms for c in a]) == np.concatenate([c.ts_ms for c in b])).all())
    True
    """
    if chunk_ms <= 0:
        raise ConfigError("simulate: chunk_ms must be > 0")
    if not 0 <= start_ms <= end_ms:
        raise ConfigError("simulate: needs 0 <= start_ms <= end_ms")
    cached_sec = -1
    cached: dict[str, npt.NDArray[Any]] = {}
    c0 = start_ms
    while c0 < end_ms:
        c1 = min(c0 + chunk_ms, end_ms)
        parts: list[dict[str, npt.NDArray[Any]]] = []
        for sec in range(c0 // 1000, (c1 + 999) // 1000):
            if sec != cached_sec:
                cached, cached_sec = _second(spec, sec), sec
            cols = cached
            if sec * 1000 < c0 or (sec + 1) * 1000 > c1:
                ts = cols["ts_ms"]
                lo, hi = np.searchsorted(ts, [c0, c1], side="left")
                cols = {k: v[lo:hi] for k, v in cols.items()}
            parts.append(cols)
        if len(parts) == 1:
            merged = parts[0]
        else:
            merged = {k: np.concatenate([p[k] for p in parts]) for k in _COLUMNS}
        yield Chunk(start_ms=c0, end_ms=c1, **merged)
        c0 = c1
