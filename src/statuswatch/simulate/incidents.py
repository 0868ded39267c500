"""Incidents and surges: what a scenario changes in the traffic, when and where."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

import numpy as np

from statuswatch.simulate.fleet import F64, I64, BoolArr

IncidentKind = Literal["freeze", "creep", "outage", "storm", "spike", "drop", "newcode"]
INCIDENT_KINDS: Final[tuple[str, ...]] = get_args(IncidentKind)

#: 5xx codes a ``creep`` raises (with these weights) when it names no code.
CREEP_CODES: Final[tuple[int, ...]] = (500, 502, 503)
CREEP_CDF: Final = np.cumsum([0.6, 0.25, 0.15])

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
class ResolvedIncident:
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


def in_scope(inc: ResolvedIncident, service: I64, route: I64, app: I64) -> BoolArr:
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


def volume_factor(inc: ResolvedIncident) -> float:
    if inc.kind == "drop":
        return inc.fraction
    if inc.kind in ("storm", "freeze"):
        return inc.factor
    return 1.0
