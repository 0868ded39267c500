"""The simulated fleet: services, routes and their status mixes, each app's share of
the traffic, the daily and weekly profile, and the sparse and bursty shapes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from statuswatch.errors import ConfigError

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
BoolArr = npt.NDArray[np.bool_]

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

_ZIPF_EXPONENT: Final = 1.0
DIURNAL_TROUGH: Final = 0.25  # night trough relative to the weekday peak
_DIURNAL_TROUGH_HOUR: Final = 4.0  # UTC
_WEEKEND: Final = 0.7
#: Mean of the raw weekly profile, so that the normalised profile averages 1.
_DIURNAL_MEAN: Final = (DIURNAL_TROUGH + 1.0) / 2.0 * (5.0 + 2.0 * _WEEKEND) / 7.0

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


def diurnal_factor(t_s: float, trough: float = DIURNAL_TROUGH) -> float:
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
    if trough == DIURNAL_TROUGH:
        return day / _DIURNAL_MEAN
    return day / ((trough + 1.0) / 2.0 * (5.0 + 2.0 * _WEEKEND) / 7.0)


def trough_for(rate: float, night_rate: float) -> float:
    """The ``diurnal_trough`` that puts a weekday's 04:00 UTC at ``night_rate`` req/s
    when ``rate`` is the weekly average.

    >>> from statuswatch.simulate.spec import SimSpec
    >>> spec = SimSpec(rate=100.0, diurnal=True, diurnal_trough=trough_for(100.0, 2.0))
    >>> round(spec.rate * diurnal_factor(4 * 3600, spec.diurnal_trough), 6)
    2.0
    """
    c = night_rate / rate * (5.0 + 2.0 * _WEEKEND) / 14.0
    if not 0.0 < c < 0.5:
        raise ConfigError("simulate: night rate must be > 0 and well under the average rate")
    return c / (1.0 - c)


def status_mix(service: str, route: RouteDef) -> dict[int, float]:
    errors = dict(_COMMON_ERRORS)
    errors.update(_KIND_ERRORS[route.kind])
    if service == "admin-api":  # internal tool: few clients misbehave
        errors[429] = 0.0005
    mix = {code: share for code, share in errors.items() if share > 0}
    mix[route.ok] = 1.0 - sum(mix.values())
    return dict(sorted(mix.items()))


def fit_traffic(seed: int, n_apps: int, fleet: tuple[ServiceDef, ...]) -> F64:
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
