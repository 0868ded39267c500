"""The low-rate scenario of the detection benchmark: night traffic, small apps, creeps.

One weekday from 00:00 UTC with deep night lulls (the diurnal trough set so that
04:00 runs at :data:`NIGHT_RATE` req/s whatever ``--rate``), the sparse and bursty
scopes of ``SimSpec(sparse=True)`` and a benign marketing surge, with three
incidents that land where counts are small or the onset is slow:

* ``storm-429-app-2/min``: 60 % of one app's calls get 429 for 20 minutes, at
  its usual rate; the app is the one whose expected rate then is nearest
  :data:`STORM_APP_RATE` (about 2 requests a minute);
* ``freeze-403-5%-apps-night``: 5 % of the apps get 403 on every call for an
  hour around the 04:00 trough (2 to 3 req/s fleet-wide at ``--rate 100``; up to 7
  at 500, where the night is narrower);
* ``creep-5xx-email-api-40min``: email-api's 5xx share (500/502/503/504 in equal
  parts) rises linearly from its usual 0.31 % to 4 % (13x) over 40 minutes, then
  holds there for 20.

Times are fixed (not rescaled): a shorter ``--hours`` leaves out what does not
end in it (``--hours 10.5`` still holds all of it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from statuswatch.simulate.fleet import CRAWLER_APP, diurnal_factor, trough_for
from statuswatch.simulate.incidents import Incident, Surge
from statuswatch.simulate.spec import SimSpec

H: Final = 3_600_000
M: Final = 60_000
START: Final = "2023-04-04T00:00:00+00:00"  # a Tuesday, as the standard scenario
WARMUP_H: Final = 2.0
#: Fleet req/s at the weekday's 04:00 UTC trough.
NIGHT_RATE: Final = 2.0
#: The storm's app: the one whose expected req/s during the storm is nearest this.
STORM_APP_RATE: Final = 2.0 / 60.0
#: A fleet rate under this (req/s) counts as a night lull for the false-alarm split.
LULL_RATE: Final = 10.0

#: (hour, minutes, incident) from the scenario's start.
SCHEDULE: Final[tuple[tuple[float, int, dict[str, Any]], ...]] = (
    (2.5, 20, {"kind": "storm", "fraction": 0.6, "factor": 1.0,
               "name": "storm-429-app-2/min"}),
    (3.5, 60, {"kind": "freeze", "fraction": 0.05, "name": "freeze-403-5%-apps-night"}),
    (7.0, 60, {"kind": "creep", "service": "email-api", "fraction": 0.04,
               "codes": (500, 502, 503, 504), "ramp_ms": 40 * M,
               "name": "creep-5xx-email-api-40min"}),
)
#: (hour, minutes, factor): the benign marketing surge, reached over 10 minutes.
SURGE: Final = (9.0, 60, 2.5)
SURGE_RAMP_MS: Final = 10 * M
#: Alerts this long after the surge ends still count as the surge's.
SURGE_TAIL_MS: Final = 10 * M


@dataclass(frozen=True)
class Scenario:
    spec: SimSpec
    start_ms: int
    end_ms: int
    left_out: tuple[str, ...]  # incidents and surges that do not end within the run


def storm_app(spec: SimSpec, start_ms: int, end_ms: int) -> str:
    """The app whose expected rate over ``[start_ms, end_ms)`` is nearest STORM_APP_RATE."""
    mid_s = (start_ms + end_ms) / 2000
    fleet = spec.rate * diurnal_factor(mid_s, spec.diurnal_trough)
    per_app = fleet * spec.traffic_share.sum(axis=1)
    candidates = [i for i, a in enumerate(spec.apps) if a != CRAWLER_APP]
    best = min(candidates, key=lambda i: abs(float(per_app[i]) - STORM_APP_RATE))
    return spec.apps[best]


def scenario(start_ms: int, hours: float, rate: float, seed: int) -> Scenario:
    """The low-rate day's spec over ``[start_ms, start_ms + hours)``."""
    end_ms = start_ms + round(hours * H)
    trough = trough_for(rate, NIGHT_RATE)
    base = SimSpec(seed=seed, rate=rate, diurnal=True, sparse=True, diurnal_trough=trough)
    found: list[Incident] = []
    left_out: list[str] = []
    for hour, minutes, kw in SCHEDULE:
        t0 = start_ms + round(hour * H)
        t1 = t0 + minutes * M
        if t1 > end_ms:
            left_out.append(str(kw["name"]))
            continue
        extra: dict[str, Any] = {"app": storm_app(base, t0, t1)} if kw["kind"] == "storm" else {}
        found.append(Incident(start_ms=t0, end_ms=t1, **kw, **extra))
    surges: tuple[Surge, ...] = ()
    s_hour, s_minutes, s_factor = SURGE
    s0 = start_ms + round(s_hour * H)
    if s0 + s_minutes * M <= end_ms:
        surges = (Surge(s0, s0 + s_minutes * M, s_factor, SURGE_RAMP_MS),)
    else:
        left_out.append(f"surge-{s_factor:g}x")
    spec = SimSpec(seed=seed, rate=rate, diurnal=True, sparse=True, diurnal_trough=trough,
                   incidents=tuple(found), surges=surges)
    return Scenario(spec, start_ms, end_ms, tuple(left_out))


#: The normal shapes of this scenario, as the tables name them.
NORMAL_SHAPES: Final = ("night lulls (fleet < 10 req/s)", "marketing surge (2.5x)")


def normal_false_alarms(spec: SimSpec, false_alarms: list[dict[str, Any]]) -> dict[str, int]:
    """False alarms during a night lull (expected fleet rate under LULL_RATE) or a surge
    (to its end + 10 minutes)."""
    out = dict.fromkeys(NORMAL_SHAPES, 0)
    for fa in false_alarms:
        t_s = float(fa["window_end"])
        if spec.rate * diurnal_factor(t_s, spec.diurnal_trough) < LULL_RATE:
            out[NORMAL_SHAPES[0]] += 1
        if any(s.start_ms <= t_s * 1000 <= s.end_ms + SURGE_TAIL_MS for s in spec.surges):
            out[NORMAL_SHAPES[1]] += 1
    return out


def lull_hours(spec: SimSpec, start_ms: int, end_ms: int) -> float:
    """Hours of ``[start_ms, end_ms)`` with the expected fleet rate under LULL_RATE."""
    seconds = np.arange(start_ms // 1000, end_ms // 1000, 60) + 30.0
    rates = [spec.rate * diurnal_factor(float(t), spec.diurnal_trough) for t in seconds]
    return float(np.count_nonzero(np.array(rates) < LULL_RATE)) / 60.0
