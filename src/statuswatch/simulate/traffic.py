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

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

import numpy as np
import numpy.typing as npt

from statuswatch.errors import ConfigError

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
BoolArr = npt.NDArray[np.bool_]

IncidentKind = Literal["freeze", "creep", "outage", "storm", "spike", "drop", "newcode"]
INCIDENT_KINDS: Final[tuple[str, ...]] = get_args(IncidentKind)

RouteKind = Literal["list", "get", "create", "update", "delete", "action", "token"]


@dataclass(frozen=True, slots=True)
class RouteDef:
    """One route of a service. ``path`` is the upstream path (``{id}`` is filled in)."""

    name: str
    method: str
    path: str
    weight: float
    kind: RouteKind
    ok: int = 200  # the success code
    latency_ms: float = 60.0  # median upstream latency
    size: int = 1200  # median response body size (bytes) on success


@dataclass(frozen=True, slots=True)
class ServiceDef:
    """One upstream service behind the gateway."""

    name: str
    share: float  # share of all calls
    port: int
    base_path: str
    routes: tuple[RouteDef, ...]


#: The simulated fleet. Route names are unique across the fleet.
FLEET: Final[tuple[ServiceDef, ...]] = (
    ServiceDef(
        "email-api",
        0.32,
        8080,
        "/v3",
        (
            RouteDef("list-messages", "GET", "/v3/messages", 0.30, "list", 200, 70, 6000),
            RouteDef("get-message", "GET", "/v3/messages/{id}", 0.25, "get", 200, 35, 2400),
            RouteDef("send-message", "POST", "/v3/messages/send", 0.12, "action", 202, 240, 400),
            RouteDef("list-threads", "GET", "/v3/threads", 0.15, "list", 200, 90, 5000),
            RouteDef("update-message", "PUT", "/v3/messages/{id}", 0.13, "update", 200, 60, 900),
            RouteDef("delete-message", "DELETE", "/v3/messages/{id}", 0.05, "delete", 204, 45, 0),
        ),
    ),
    ServiceDef(
        "calendar-api",
        0.22,
        8080,
        "/v3",
        (
            RouteDef("list-events", "GET", "/v3/events", 0.35, "list", 200, 80, 5200),
            RouteDef("get-event", "GET", "/v3/events/{id}", 0.20, "get", 200, 30, 1500),
            RouteDef("create-event", "POST", "/v3/events", 0.12, "create", 201, 120, 1500),
            RouteDef("update-event", "PUT", "/v3/events/{id}", 0.12, "update", 200, 100, 1500),
            RouteDef("delete-event", "DELETE", "/v3/events/{id}", 0.05, "delete", 204, 50, 0),
            RouteDef("free-busy", "POST", "/v3/calendars/free-busy", 0.16, "action", 200, 150, 900),
        ),
    ),
    ServiceDef(
        "contacts-api",
        0.16,
        8080,
        "/v3",
        (
            RouteDef("list-contacts", "GET", "/v3/contacts", 0.45, "list", 200, 60, 7000),
            RouteDef("get-contact", "GET", "/v3/contacts/{id}", 0.30, "get", 200, 25, 1100),
            RouteDef("create-contact", "POST", "/v3/contacts", 0.10, "create", 201, 80, 1100),
            RouteDef("update-contact", "PUT", "/v3/contacts/{id}", 0.15, "update", 200, 70, 1100),
        ),
    ),
    ServiceDef(
        "auth-api",
        0.18,
        9000,
        "/oauth",
        (
            RouteDef("issue-token", "POST", "/oauth/token", 0.45, "token", 200, 40, 700),
            RouteDef("introspect-token", "POST", "/oauth/introspect", 0.30, "action", 200, 12, 300),
            RouteDef("get-userinfo", "GET", "/oauth/userinfo", 0.20, "get", 200, 20, 350),
            RouteDef("revoke-token", "POST", "/oauth/revoke", 0.05, "action", 200, 15, 20),
        ),
    ),
    ServiceDef(
        "webhooks-api",
        0.115,
        8080,
        "/v3",
        (
            RouteDef("list-webhooks", "GET", "/v3/webhooks", 0.40, "list", 200, 40, 2500),
            RouteDef("get-webhook", "GET", "/v3/webhooks/{id}", 0.25, "get", 200, 20, 600),
            RouteDef("create-webhook", "POST", "/v3/webhooks", 0.15, "create", 201, 90, 600),
            RouteDef(
                "rotate-secret",
                "POST",
                "/v3/webhooks/{id}/rotate-secret",
                0.10,
                "action",
                200,
                70,
                200,
            ),
            RouteDef("delete-webhook", "DELETE", "/v3/webhooks/{id}", 0.10, "delete", 204, 40, 0),
        ),
    ),
    ServiceDef(
        "admin-api",
        0.005,
        8443,
        "/admin",
        (
            RouteDef("list-apps", "GET", "/admin/apps", 0.50, "list", 200, 150, 9000),
            RouteDef("update-app", "PATCH", "/admin/apps/{id}", 0.30, "update", 200, 200, 800),
            RouteDef("get-audit-log", "GET", "/admin/audit-log", 0.20, "list", 200, 400, 12000),
        ),
    ),
)

#: Errors every route returns at a low rate (share of calls).
_COMMON_ERRORS: Final[dict[int, float]] = {
    400: 0.0015,
    401: 0.005,
    403: 0.003,
    404: 0.010,
    429: 0.005,
    500: 0.002,
    502: 0.0006,
    503: 0.0004,
    504: 0.0001,
}

#: Per route kind: overrides of the common errors and extra codes (share of calls).
_KIND_ERRORS: Final[dict[str, dict[int, float]]] = {
    "list": {404: 0.004, 304: 0.03},
    "get": {404: 0.035, 304: 0.02},
    "create": {404: 0.004, 409: 0.002, 422: 0.004, 400: 0.004},
    "update": {404: 0.015, 409: 0.001, 422: 0.003, 400: 0.003},
    "delete": {404: 0.025},
    "action": {400: 0.003, 422: 0.001},
    "token": {400: 0.010, 401: 0.015, 404: 0.0},
}

#: 5xx codes a ``creep`` raises (with these weights) when it names no code.
CREEP_CODES: Final[tuple[int, ...]] = (500, 502, 503)
_CREEP_CDF: Final = np.cumsum([0.6, 0.25, 0.15])

#: Default parameters of each incident kind (code, fraction, factor).
INCIDENT_DEFAULTS: Final[dict[str, tuple[int | None, float, float]]] = {
    "freeze": (403, 0.5, 1.0),  # fraction of apps frozen; factor scales their volume
    "creep": (None, 0.10, 1.0),  # final 5xx share of the service
    "outage": (401, 0.3, 1.0),  # share of in-scope calls getting the code
    "storm": (429, 0.9, 20.0),  # share of the app's calls getting 429; volume factor
    "spike": (404, 0.4, 1.0),  # share of the route's calls getting the code
    "drop": (None, 0.1, 1.0),  # volume falls to this fraction
    "newcode": (418, 0.05, 1.0),  # share of the service's calls getting the new code
}

_ZIPF_EXPONENT: Final = 1.0
_DIURNAL_TROUGH: Final = 0.25  # night trough relative to the weekday peak
_DIURNAL_TROUGH_HOUR: Final = 4.0  # UTC
_WEEKEND: Final = 0.7
#: Mean of the raw weekly profile, so that the normalised profile averages 1.
_DIURNAL_MEAN: Final = (_DIURNAL_TROUGH + 1.0) / 2.0 * (5.0 + 2.0 * _WEEKEND) / 7.0

#: Services of the sparse shapes (``SimSpec.sparse``), after :data:`FLEET` in the tables.
SPARSE_FLEET: Final[tuple[ServiceDef, ...]] = (
    ServiceDef("reports-api", 0.0, 8080, "/reports", (
        RouteDef("run-report", "GET", "/reports/{id}", 1.0, "list", 200, 900, 20000),
    )),
    ServiceDef("partner-api", 0.0, 8080, "/partner", (
        RouteDef("partner-sync", "POST", "/partner/sync", 1.0, "action", 200, 300, 800),
    )),
)
#: The app that crawls ``contacts-api``'s read routes (``SimSpec.sparse``).
CRAWLER_APP: Final = "crawler-bot"
CRAWLER_ROUTES: Final = ("list-contacts", "get-contact")
CRAWLER_RATE: Final = 15.0
#: Night floor of partner-api (req/s): about one request every half hour.
PARTNER_NIGHT_RATE: Final = 0.0005
PARTNER_PEAK_RATE: Final = 0.6

_TAG_FLEET: Final = 0x5EED_F1EE
_TAG_SPARSE: Final = 0x5BA2_5E00
_TAG_INCIDENT: Final = 0x1C1D_E700


def diurnal_factor(t_s: float, trough: float = _DIURNAL_TROUGH) -> float:
    """Traffic multiplier at epoch second ``t_s`` (weekly mean 1); ``trough`` is the
    night's level relative to the weekday peak.

    >>> round(diurnal_factor(16 * 3600) / diurnal_factor(4 * 3600), 3)  # a Thursday
    4.0
    >>> sat, thu = 2 * 86400 + 16 * 3600, 16 * 3600
    >>> round(diurnal_factor(sat) / diurnal_factor(thu), 3)
    0.7
    >>> round(diurnal_factor(4 * 3600, trough=0.01) * 100, 2)  # 100 req/s on average
    2.17
    """
    hour = (t_s % 86400.0) / 3600.0
    day = trough + (1.0 - trough) * 0.5 * (
        1.0 - math.cos(2.0 * math.pi * (hour - _DIURNAL_TROUGH_HOUR) / 24.0)
    )
    weekday = (int(t_s // 86400) + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    if weekday >= 5:
        day *= _WEEKEND
    if trough == _DIURNAL_TROUGH:
        return day / _DIURNAL_MEAN
    return day / ((trough + 1.0) / 2.0 * (5.0 + 2.0 * _WEEKEND) / 7.0)


def trough_for(rate: float, night_rate: float) -> float:
    """The ``diurnal_trough`` that puts a weekday's 04:00 UTC at ``night_rate`` req/s
    when ``rate`` is the weekly average.

    >>> spec = SimSpec(rate=100.0, diurnal=True, diurnal_trough=trough_for(100.0, 2.0))
    >>> round(spec.rate * diurnal_factor(4 * 3600, spec.diurnal_trough), 6)
    2.0
    """
    c = night_rate / rate * (5.0 + 2.0 * _WEEKEND) / 14.0
    if not 0.0 < c < 0.5:
        raise ConfigError("simulate: night rate must be > 0 and well under the average rate")
    return c / (1.0 - c)


@dataclass(frozen=True, slots=True)
class Surge:
    """A benign surge: the fleet's volume is multiplied by ``factor`` on
    ``[start_ms, end_ms)``, reached (and left) linearly over ``ramp_ms``; the status
    mix stays the normal one, so it labels no incident.

    >>> s = Surge(0, 3_600_000, 2.5, ramp_ms=600_000)
    >>> s.factor_at(300_000), s.factor_at(1_800_000), s.factor_at(3_600_000)
    (1.75, 2.5, 1.0)
    """

    start_ms: int
    end_ms: int
    factor: float
    ramp_ms: int = 600_000

    def factor_at(self, t_ms: float) -> float:
        if not self.start_ms <= t_ms < self.end_ms:
            return 1.0
        edge = min(t_ms - self.start_ms, self.end_ms - t_ms)
        up = 1.0 if self.ramp_ms <= 0 else min(1.0, edge / self.ramp_ms)
        return 1.0 + (self.factor - 1.0) * up


@dataclass(frozen=True, slots=True)
class Incident:
    """A simulated incident, active on event times ``start_ms <= ts < end_ms``.

    Unset parameters take the kind's default (:data:`INCIDENT_DEFAULTS`);
    ``service``/``route``/``app`` narrow the scope where the kind allows it.

    * ``freeze``: ``fraction`` of the apps (chosen by seed; or just ``app``) get ``code`` (403) on
      every call; ``factor`` scales their volume (retries).
    * ``creep``: the 5xx share of ``service`` rises linearly from its baseline to
      ``fraction`` at ``end_ms`` (500/502/503, or only ``code`` when given, or
      ``codes`` in equal parts); with ``ramp_ms`` it reaches ``fraction`` that long
      after ``start_ms`` and holds there until ``end_ms``.
    * ``outage``: ``code`` (401) on ``fraction`` of the calls in scope (fleet by default).
    * ``storm``: ``app``'s volume is multiplied by ``factor`` and ``fraction`` of
      its calls get ``code`` (429); ``factor`` 1 is a storm at the app's usual rate.
    * ``spike``: ``route`` gets ``code`` (404) on ``fraction`` of its calls.
    * ``drop``: volume in scope (fleet by default) falls to ``fraction``.
    * ``newcode``: a code absent from the baseline (418) on ``fraction`` of ``service``.
    """

    kind: IncidentKind
    start_ms: int
    end_ms: int
    code: int | None = None
    fraction: float | None = None
    service: str | None = None
    route: str | None = None
    app: str | None = None
    factor: float | None = None
    name: str | None = None
    codes: tuple[int, ...] | None = None
    ramp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class _Resolved:
    """An incident with defaults filled and names turned into indices."""

    kind: str
    start_ms: int
    end_ms: int
    code: int
    fraction: float
    factor: float
    service: int  # -1: any
    route: int  # -1: any
    app: int  # -1: any
    apps: BoolArr | None  # freeze: the frozen apps
    raised: I64  # creep: the codes it raises
    raised_cdf: F64  # creep: cumulative weights of ``raised``
    ramp_ms: int  # creep: time to reach ``fraction``
    base: F64  # creep: baseline share of ``raised`` per route
    label: dict[str, Any]


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


@dataclass(frozen=True)
class SimSpec:
    """What to simulate. Equal specs generate identical records.

    >>> spec = SimSpec(n_apps=3)
    >>> spec.apps
    ('app-0001', 'app-0002', 'app-0003')
    >>> spec.services[-1], spec.routes[0]
    ('admin-api', 'list-messages')
    """

    seed: int = 1
    rate: float = 500.0
    n_apps: int = 200
    diurnal: bool = False
    incidents: tuple[Incident, ...] = ()
    #: add the sparse and bursty scopes of :data:`SPARSE_FLEET` and the crawler
    sparse: bool = False
    #: night level relative to the weekday peak (``diurnal``); see :func:`trough_for`
    diurnal_trough: float = _DIURNAL_TROUGH
    #: benign fleet-wide volume surges (normal traffic)
    surges: tuple[Surge, ...] = ()

    # Derived tables (filled in __post_init__).
    services: tuple[str, ...] = field(init=False, compare=False, repr=False)
    routes: tuple[str, ...] = field(init=False, compare=False, repr=False)
    apps: tuple[str, ...] = field(init=False, compare=False, repr=False)
    #: service index of each route
    route_service: I64 = field(init=False, compare=False, repr=False)
    #: the route definitions, parallel to ``routes``
    route_defs: tuple[RouteDef, ...] = field(init=False, compare=False, repr=False)
    service_defs: tuple[ServiceDef, ...] = field(init=False, compare=False, repr=False)
    #: every status code the simulation can emit, ascending
    codes: tuple[int, ...] = field(init=False, compare=False, repr=False)
    #: baseline status mix of each route: ``route_mix[r][code] = share``
    route_mix: tuple[dict[int, float], ...] = field(init=False, compare=False, repr=False)
    #: baseline share of all calls for each (app, route): shape (n_apps, n_routes), sums to 1
    traffic_share: F64 = field(init=False, compare=False, repr=False)
    _inc: tuple[_Resolved, ...] = field(init=False, compare=False, repr=False)
    _t: _Tables = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "incidents", tuple(self.incidents))  # a list would make the spec unhashable
        set_(self, "surges", tuple(self.surges))
        if not 0.0 < self.diurnal_trough <= 1.0:
            raise ConfigError("simulate.diurnal_trough: must be in (0, 1]")
        for s in self.surges:
            if not (0 <= s.start_ms < s.end_ms and math.isfinite(s.factor) and s.factor > 0
                    and s.ramp_ms >= 0):
                raise ConfigError("simulate.surge: needs 0 <= start < end, factor > 0, ramp >= 0")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise ConfigError("simulate.seed: must be a non-negative integer")
        if not (math.isfinite(self.rate) and self.rate >= 0):
            raise ConfigError("simulate.rate: must be a finite number >= 0")
        if not 1 <= self.n_apps <= 9999:
            raise ConfigError("simulate.apps: must be between 1 and 9999")
        fleet = FLEET + SPARSE_FLEET if self.sparse else FLEET
        services = tuple(s.name for s in fleet)
        route_defs = tuple(r for s in fleet for r in s.routes)
        route_service = np.array([i for i, s in enumerate(fleet) for _ in s.routes], dtype=np.int64)
        apps = tuple(f"app-{i:04d}" for i in range(1, self.n_apps + 1))
        route_mix = tuple(_route_mix(svc.name, r) for svc in fleet for r in svc.routes)
        share = _fit_traffic(self.seed, self.n_apps, FLEET)
        if self.sparse:  # their traffic is drawn apart (``_sparse_second``): no share here
            apps += (CRAWLER_APP,)
            share = np.pad(share, ((0, 1), (0, len(route_defs) - share.shape[1])))
        set_(self, "services", services)
        set_(self, "routes", tuple(r.name for r in route_defs))
        set_(self, "apps", apps)
        set_(self, "route_service", route_service)
        set_(self, "route_defs", route_defs)
        set_(self, "service_defs", fleet)
        set_(self, "route_mix", route_mix)
        set_(self, "traffic_share", share)
        resolved = tuple(_resolve(self, i, inc) for i, inc in enumerate(self.incidents))
        baseline_codes = {c for m in route_mix for c in m}
        raised = {int(c) for r in resolved for c in r.raised}
        codes = sorted(baseline_codes | {r.code for r in resolved if r.code > 0} | set(CREEP_CODES)
                       | raised)
        set_(self, "codes", tuple(codes))
        set_(self, "_inc", resolved)
        set_(self, "_t", _Tables.build(self))

    def labels(self) -> list[dict[str, Any]]:
        """The ground-truth label of each incident (see :func:`labels`)."""
        return [copy.deepcopy(r.label) for r in self._inc]


def labels(spec: SimSpec) -> list[dict[str, Any]]:
    """One label per incident: ``name, kind, start, end`` (epoch seconds), ``code``
    (``None`` for ``drop``), ``direction`` (``"up"``/``"down"``), ``scope``
    (``{}`` for the fleet, else ``service``/``route``/``app`` keys) and, for
    ``freeze``, ``apps`` (the frozen apps); ``creep`` also lists ``codes``.

    >>> spec = SimSpec(n_apps=10, incidents=(Incident("outage", 60_000, 120_000),))
    >>> labels(spec)[0]
    {'name': 'outage-1', 'kind': 'outage', 'start': 60.0, 'end': 120.0, 'code': 401, \
'direction': 'up', 'scope': {}, 'fraction': 0.3}
    """
    return spec.labels()


# --------------------------------------------------------------------------- model


def _route_mix(service: str, route: RouteDef) -> dict[int, float]:
    errors = dict(_COMMON_ERRORS)
    errors.update(_KIND_ERRORS[route.kind])
    if service == "admin-api":  # internal tool: few clients misbehave
        errors[429] = 0.0005
    mix = {code: share for code, share in errors.items() if share > 0}
    mix[route.ok] = 1.0 - sum(mix.values())
    return dict(sorted(mix.items()))


def _fit_traffic(seed: int, n_apps: int, fleet: tuple[ServiceDef, ...]) -> F64:
    """Joint (app, route) shares with Zipf app marginals and exact service shares."""
    rng = np.random.default_rng([seed, _TAG_FLEET])
    n_svc = len(fleet)
    names = [s.name for s in fleet]
    ranks = np.arange(1, n_apps + 1, dtype=np.float64)
    app_w = ranks**-_ZIPF_EXPONENT
    app_w /= app_w.sum()
    svc_w = np.array([s.share for s in fleet])
    svc_w /= svc_w.sum()
    mask = np.zeros((n_apps, n_svc), dtype=bool)
    mask[:, names.index("auth-api")] = True
    product = [i for i, n in enumerate(names) if n not in ("auth-api", "admin-api")]
    mask[:, product] = rng.random((n_apps, len(product))) < 0.55
    none = ~mask[:, product].any(axis=1)
    mask[none, np.array(product)[rng.integers(0, len(product), int(none.sum()))]] = True
    heavy = max(1, n_apps // 20)  # the biggest customers use every product
    mask[:heavy, product] = True
    admin = names.index("admin-api")
    mask[:, admin] = rng.random(n_apps) < 0.12
    mask[rng.integers(0, n_apps), admin] = True
    m = mask * rng.uniform(0.5, 1.5, mask.shape)
    for _ in range(500):  # Sinkhorn: match app and service marginals
        m *= (app_w / m.sum(axis=1))[:, None]
        m *= svc_w / m.sum(axis=0)
    m *= (app_w / m.sum(axis=1))[:, None]
    cols = []
    for s, svc in enumerate(fleet):
        rw = np.array([r.weight for r in svc.routes])
        cols.append(m[:, [s]] * (rw / rw.sum())[None, :])
    share = np.concatenate(cols, axis=1)
    return np.asarray(share / share.sum(), dtype=np.float64)


def _resolve(spec: SimSpec, i: int, inc: Incident) -> _Resolved:
    where = f"incident {i + 1} ({inc.kind})"
    if inc.kind not in INCIDENT_KINDS:
        raise ConfigError(f"{where}: unknown kind; expected one of {', '.join(INCIDENT_KINDS)}")
    if not 0 <= inc.start_ms < inc.end_ms:
        raise ConfigError(f"{where}: needs 0 <= start < end")
    d_code, d_fraction, d_factor = INCIDENT_DEFAULTS[inc.kind]
    fraction = d_fraction if inc.fraction is None else float(inc.fraction)
    factor = d_factor if inc.factor is None else float(inc.factor)
    code = d_code if inc.code is None else int(inc.code)
    if code is not None and not 100 <= code <= 599:
        raise ConfigError(f"{where}: code must be between 100 and 599")
    if inc.kind == "drop":
        if not 0.0 <= fraction <= 1.0:
            raise ConfigError(f"{where}: fraction must be in [0, 1]")
    elif not 0.0 < fraction <= 1.0:
        raise ConfigError(f"{where}: fraction must be in (0, 1]")
    if not (math.isfinite(factor) and factor > 0):
        raise ConfigError(f"{where}: factor must be > 0")
    if inc.kind == "storm" and factor < 1.0:
        raise ConfigError(f"{where}: factor must be >= 1")

    def lookup(table: tuple[str, ...], name: str | None, what: str) -> int:
        if name is None:
            return -1
        try:
            return table.index(name)
        except ValueError:
            raise ConfigError(f"{where}: unknown {what} {name!r}") from None

    svc = lookup(spec.services, inc.service, "service")
    route = lookup(spec.routes, inc.route, "route")
    app = lookup(spec.apps, inc.app, "app")
    rng = np.random.default_rng([spec.seed, _TAG_INCIDENT, i])
    if route >= 0:
        rsvc = int(spec.route_service[route])
        if svc >= 0 and svc != rsvc:
            raise ConfigError(f"{where}: route {inc.route!r} is not a route of {inc.service!r}")
        svc = rsvc
    if inc.kind in ("creep", "newcode") and svc < 0:
        svc = 0
    if inc.kind == "spike" and route < 0:
        first = int(np.flatnonzero(spec.route_service == max(svc, 0))[0])
        route, svc = first, int(spec.route_service[first])
    if inc.kind == "storm" and app < 0:
        lo, hi = spec.n_apps // 20, max(spec.n_apps // 20 + 1, spec.n_apps // 2)
        app = int(rng.integers(lo, hi))
    apps_mask: BoolArr | None = None
    if inc.kind == "freeze":
        if app >= 0:  # freeze one named app
            chosen = np.array([app])
        else:
            k = max(1, round(fraction * spec.n_apps))
            chosen = np.sort(rng.choice(spec.n_apps, size=k, replace=False))
        apps_mask = np.zeros(spec.n_apps, dtype=bool)
        apps_mask[chosen] = True
    if inc.kind == "newcode":
        baseline = {c for m in spec.route_mix for c in m}
        if code in baseline:
            raise ConfigError(f"{where}: code {code} is part of the baseline; pick e.g. 418")
    if inc.codes is not None:
        if inc.kind != "creep" or code is not None:
            raise ConfigError(f"{where}: codes is for a creep, instead of code")
        if not inc.codes or not all(100 <= int(c) <= 599 for c in inc.codes):
            raise ConfigError(f"{where}: codes must be status codes between 100 and 599")
        if len(set(inc.codes)) != len(inc.codes):
            raise ConfigError(f"{where}: codes lists a code twice")
    if inc.ramp_ms is not None:
        if inc.kind != "creep":
            raise ConfigError(f"{where}: ramp is for a creep")
        if not 0 < inc.ramp_ms <= inc.end_ms - inc.start_ms:
            raise ConfigError(f"{where}: ramp must be > 0 and within the incident")
    if inc.codes is not None:
        raised = np.array([int(c) for c in inc.codes], dtype=np.int64)
        raised_cdf = np.arange(1, len(inc.codes) + 1) / len(inc.codes)
    else:
        raised = np.array(CREEP_CODES if code is None else (code,), dtype=np.int64)
        raised_cdf = _CREEP_CDF
    base = np.array([sum(m.get(int(c), 0.0) for c in raised) for m in spec.route_mix])
    if inc.kind == "creep" and fraction <= base[spec.route_service == svc].max():
        raise ConfigError(f"{where}: fraction must exceed the baseline share of the code(s)")

    scope: dict[str, str] = {}
    if svc >= 0:
        scope["service"] = spec.services[svc]
    if route >= 0:
        scope["route"] = spec.routes[route]
    if app >= 0:
        scope["app"] = spec.apps[app]
    label: dict[str, Any] = {
        "name": inc.name or f"{inc.kind}-{i + 1}",
        "kind": inc.kind,
        "start": inc.start_ms / 1000,
        "end": inc.end_ms / 1000,
        "code": (int(raised[0]) if inc.kind == "creep" and code is None else code),
        "direction": "down" if inc.kind == "drop" else "up",
        "scope": scope,
        "fraction": fraction,
    }
    if inc.kind == "storm" or (inc.kind == "freeze" and factor != 1.0):
        label["factor"] = factor
    if inc.kind == "creep":
        label["codes"] = [int(c) for c in raised]
        if inc.ramp_ms is not None:
            label["ramp"] = inc.ramp_ms / 1000
    if apps_mask is not None:
        label["apps"] = [spec.apps[j] for j in np.flatnonzero(apps_mask)]
    return _Resolved(
        kind=inc.kind,
        start_ms=int(inc.start_ms),
        end_ms=int(inc.end_ms),
        code=-1 if code is None else code,
        fraction=fraction,
        factor=factor,
        service=svc,
        route=route,
        app=app,
        apps=apps_mask,
        raised=raised,
        raised_cdf=raised_cdf,
        ramp_ms=int(inc.ramp_ms if inc.ramp_ms is not None else inc.end_ms - inc.start_ms),
        base=base,
        label=label,
    )


@dataclass(frozen=True, slots=True)
class _Tables:
    """Precomputed sampling tables of a spec."""

    cell_app: I64
    cell_route: I64
    cell_service: I64
    cell_p: F64
    cell_cdf: F64
    codes: I64
    code_cdf: F64  # per route, shifted by the route index: one monotone array
    route_lat: F64
    route_size: F64

    @staticmethod
    def build(spec: SimSpec) -> _Tables:
        apps_idx, routes_idx = np.nonzero(spec.traffic_share > 0)
        p = spec.traffic_share[apps_idx, routes_idx]
        p = p / p.sum()
        codes = np.array(spec.codes, dtype=np.int64)
        n_routes = len(spec.routes)
        table = np.zeros((n_routes, len(codes)))
        for r, mix in enumerate(spec.route_mix):
            for c, share in mix.items():
                table[r, spec.codes.index(c)] = share
        cdf = np.cumsum(table, axis=1)
        cdf /= cdf[:, -1:]
        cdf[:, -1] = 1.0
        cdf += np.arange(n_routes)[:, None]
        return _Tables(
            cell_app=apps_idx.astype(np.int64),
            cell_route=routes_idx.astype(np.int64),
            cell_service=spec.route_service[routes_idx],
            cell_p=p,
            cell_cdf=_cdf(p),
            codes=codes,
            code_cdf=cdf.ravel(),
            route_lat=np.array([r.latency_ms for r in spec.route_defs]),
            route_size=np.array([float(r.size) for r in spec.route_defs]),
        )


def _cdf(w: F64) -> F64:
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    cdf[-1] = 1.0
    return cdf


def _in_scope(inc: _Resolved, service: I64, route: I64, app: I64) -> BoolArr:
    mask = np.ones(service.shape[0], dtype=bool)
    if inc.route >= 0:
        mask &= route == inc.route
    elif inc.service >= 0:
        mask &= service == inc.service
    if inc.app >= 0:
        mask &= app == inc.app
    if inc.apps is not None:
        mask &= inc.apps[app]
    return mask


def _volume_factor(inc: _Resolved) -> float:
    if inc.kind == "drop":
        return inc.fraction
    if inc.kind in ("storm", "freeze"):
        return inc.factor
    return 1.0


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
        if inc.start_ms < t0 + 1000 and inc.end_ms > t0 and _volume_factor(inc) != 1.0
    ]
    cdf = t.cell_cdf
    ceiling: F64 | None = None
    if vol:
        # Sample at the highest volume any of these incidents reaches within the
        # second, then thin each record to the volume in force at its millisecond.
        ceiling = np.ones(t.cell_p.shape[0])
        for inc in vol:
            f = _volume_factor(inc)
            if f > 1.0:
                m = _in_scope(inc, t.cell_service, t.cell_route, t.cell_app)
                ceiling[m] *= f
        w = t.cell_p * ceiling
        lam *= float(w.sum())
        cdf = _cdf(w)
    n = int(rng.poisson(lam))
    cells = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), cdf.shape[0] - 1)
    ts = t0 + np.sort(rng.integers(0, 1000, n, dtype=np.int64))
    if ceiling is not None:
        mult = np.ones(n)
        for inc in vol:
            active = (ts >= inc.start_ms) & (ts < inc.end_ms)
            m = active & _in_scope(
                inc, t.cell_service[cells], t.cell_route[cells], t.cell_app[cells]
            )
            mult[m] *= _volume_factor(inc)
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
        m = (ts >= inc.start_ms) & (ts < inc.end_ms) & _in_scope(inc, service, route, app)
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


def _draw_status(t: _Tables, route: I64, rng: np.random.Generator) -> I64:
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
