"""What to simulate (``SimSpec``): the fleet's tables, the incidents resolved against
them, and the sampling tables the generator draws from."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from statuswatch.errors import ConfigError
from statuswatch.simulate.fleet import (
    CRAWLER_APP,
    DIURNAL_TROUGH,
    F64,
    FLEET,
    I64,
    SPARSE_FLEET,
    BoolArr,
    RouteDef,
    ServiceDef,
    fit_traffic,
    status_mix,
)
from statuswatch.simulate.incidents import (
    CREEP_CDF,
    CREEP_CODES,
    INCIDENT_DEFAULTS,
    INCIDENT_KINDS,
    Incident,
    ResolvedIncident,
    Surge,
)


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
    diurnal_trough: float = DIURNAL_TROUGH
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
    _inc: tuple[ResolvedIncident, ...] = field(init=False, compare=False, repr=False)
    _t: SamplingTables = field(init=False, compare=False, repr=False)

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
        route_mix = tuple(status_mix(svc.name, r) for svc in fleet for r in svc.routes)
        share = fit_traffic(self.seed, self.n_apps, FLEET)
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
        set_(self, "_t", SamplingTables.build(self))

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


_TAG_INCIDENT: Final = 0x1C1D_E700


def _resolve(spec: SimSpec, i: int, inc: Incident) -> ResolvedIncident:
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
        raised_cdf = CREEP_CDF
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
    return ResolvedIncident(
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
class SamplingTables:
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
    def build(spec: SimSpec) -> SamplingTables:
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
        return SamplingTables(
            cell_app=apps_idx.astype(np.int64),
            cell_route=routes_idx.astype(np.int64),
            cell_service=spec.route_service[routes_idx],
            cell_p=p,
            cell_cdf=normalised_cdf(p),
            codes=codes,
            code_cdf=cdf.ravel(),
            route_lat=np.array([r.latency_ms for r in spec.route_defs]),
            route_size=np.array([float(r.size) for r in spec.route_defs]),
        )


def normalised_cdf(w: F64) -> F64:
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    cdf[-1] = 1.0
    return cdf
