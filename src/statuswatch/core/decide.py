"""Alert lifecycle: pending -> firing -> resolved, with k-of-m and hysteresis.

One state machine per (scope row, code column, direction) that has evidence.
A series fires when ``k`` of its last ``m`` windows are hits, or at once on
extreme evidence; it resolves only after ``min_firing_windows`` and then
``clear_windows`` consecutive windows below the (lower) clear score.

Alert ids hash the scope, code, direction and the episode's first hit, so a
replay of the same input yields the same ids and Alertmanager dedupes them.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from statuswatch.core.columns import code_label, is_status

Direction = Literal["up", "down"]
Signal = Literal["share", "volume", "blast_radius"]
State = Literal["pending", "firing"]


class SeriesKey(NamedTuple):
    """One scored series: a scope row, a code column (-1 for volume), a direction and a
    signal.

    >>> key = SeriesKey(3, 1, "up", "share")
    >>> key.row, key.signal
    (3, 'share')
    >>> SeriesKey.of([3, 1, "up", "share"]) == key
    True
    """

    row: int
    col: int
    direction: Direction
    signal: Signal

    @classmethod
    def of(cls, item: Any) -> SeriesKey:
        """The key of a JSON list ``[row, col, direction, signal]`` (a snapshot)."""
        row, col, direction, signal = item
        return cls(int(row), int(col), direction, signal)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What one window says about one series."""

    hit: bool  # significant and past every gate
    calm: bool  # below the clear score: counts towards resolving
    extreme: bool  # so strong that one window is enough
    score: float
    observed_count: int
    expected_count: float
    observed_share: float
    expected_share: float
    total: int
    #: windows summed by the horizon these figures are of (1: the window alone)
    horizon_windows: int = 1


@dataclass(frozen=True, slots=True)
class AlertEvent:
    id: str
    state: Literal["firing", "resolved"]
    code: int  # VOLUME_CODE for volume alerts (all requests), 1..5 a class's summed series
    direction: Direction
    signal: Signal
    scope: dict[str, str]
    window_start_ms: int
    window_end_ms: int
    episode_start_ms: int
    evidence: Evidence
    contributors: list[dict[str, Any]] = field(default_factory=list)
    #: part of an ancestor scope's alert: shown as its contributor, never paged alone
    quiet: bool = False
    #: a share rise above the blast-radius level: how many of its scopes under the
    #: alert's scope are anomalous on the code over the alert's horizon, of how many
    #: had requests (empty: none counted)
    blast_radius: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The alert as written to the JSON-lines sink (times in epoch seconds)."""
        ev = self.evidence
        return {
            "id": self.id,
            "state": self.state,
            # "all" (volume), "5xx" (a class), or the code as a number (0: no response)
            "code": self.code if is_status(self.code) else code_label(self.code),
            "direction": self.direction,
            "signal": self.signal,
            "scope": self.scope,
            "window_start": self.window_start_ms / 1000,
            "window_end": self.window_end_ms / 1000,
            "episode_start": self.episode_start_ms / 1000,
            "observed": {"share": round(ev.observed_share, 6), "count": ev.observed_count},
            "expected": {
                "share": round(ev.expected_share, 6),
                "count": round(ev.expected_count, 3),
            },
            "total": ev.total,
            "score": round(ev.score, 3),
            # the evidence's horizon: the sum of this many seconds of windows
            "horizon_seconds": ev.horizon_windows * (self.window_end_ms - self.window_start_ms)
            / 1000,
            "contributors": self.contributors,
            **({"blast_radius": self.blast_radius} if self.blast_radius else {}),
        }


def alert_id(
    scope: dict[str, str], code: int, direction: str, signal: str, episode_start_ms: int
) -> str:
    """Deterministic id of one alert episode.

    >>> a = alert_id({"service": "a"}, 403, "up", "share", 1000)
    >>> a == alert_id({"service": "a"}, 403, "up", "share", 1000)
    True
    """
    key = json.dumps([sorted(scope.items()), code, direction, signal, episode_start_ms])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(slots=True)
class _Series:
    hits: deque[bool]
    state: State = "pending"
    episode_start_ms: int = 0
    firing_windows: int = 0
    calm_windows: int = 0
    alert_id: str = ""
    quiet: bool = False


@dataclass(frozen=True, slots=True)
class Lifecycle:
    k: int
    m: int
    min_firing_windows: int
    clear_windows: int


class AlertTracker:
    """Steps every live series once per closed window and reports state changes."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle
        self._series: dict[SeriesKey, _Series] = {}

    def live_keys(self) -> set[SeriesKey]:
        return set(self._series)

    def firing_keys(self, *, paged_only: bool = False) -> set[SeriesKey]:
        """Series that fire; with ``paged_only``, not those folded into another alert."""
        return {
            k for k, s in self._series.items()
            if s.state == "firing" and not (paged_only and s.quiet)
        }

    def firing_ids(self) -> set[str]:
        """Alert ids of the series firing now (folded ones included)."""
        return {s.alert_id for s in self._series.values() if s.state == "firing"}

    def state_of(self, key: SeriesKey) -> State | None:
        series = self._series.get(key)
        return series.state if series else None

    def step(
        self,
        key: SeriesKey,
        evidence: Evidence,
        *,
        window_start_ms: int,
        window_end_ms: int,
        code: int,
        scope: dict[str, str],
        k: int | None = None,
        m: int | None = None,
    ) -> AlertEvent | None:
        """Advance one series by one window; return an event on firing or resolving.

        ``k`` and ``m`` override the tracker's lifecycle for this series (per rule).
        """
        lc = self.lifecycle
        k = k or lc.k
        m = m or lc.m
        series = self._series.get(key)
        if series is None:
            if not evidence.hit:
                return None
            series = self._series[key] = _Series(
                hits=deque(maxlen=m), episode_start_ms=window_end_ms
            )

        def event(state: Literal["firing", "resolved"]) -> AlertEvent:
            return AlertEvent(
                series.alert_id, state, code, key.direction, key.signal, scope,
                window_start_ms, window_end_ms, series.episode_start_ms, evidence,
                quiet=series.quiet,
            )

        if series.state == "pending":
            series.hits.append(evidence.hit)
            if evidence.extreme or sum(series.hits) >= k:
                series.state = "firing"
                series.firing_windows = 1
                series.alert_id = alert_id(
                    scope, code, key.direction, key.signal, series.episode_start_ms
                )
                return event("firing")
            if not any(series.hits):
                del self._series[key]
            return None

        series.firing_windows += 1
        series.calm_windows = series.calm_windows + 1 if evidence.calm else 0
        calm_enough = series.calm_windows >= lc.clear_windows
        if calm_enough and series.firing_windows >= lc.min_firing_windows:
            del self._series[key]
            return event("resolved")
        return None

    def firing_windows(self, key: SeriesKey) -> int:
        """How many windows ``key`` has been firing (0 if it is not)."""
        series = self._series.get(key)
        return series.firing_windows if series is not None and series.state == "firing" else 0

    def page_now(
        self, key: SeriesKey, evidence: Evidence, *, window_start_ms: int, window_end_ms: int,
        code: int, scope: dict[str, str],
    ) -> AlertEvent | None:
        """Un-silence a firing series and return its (delayed) firing event."""
        series = self._series.get(key)
        if series is None or series.state != "firing":
            return None
        series.quiet = False
        return AlertEvent(
            series.alert_id, "firing", code, key.direction, key.signal, scope,
            window_start_ms, window_end_ms, series.episode_start_ms, evidence,
        )

    def silence(self, key: SeriesKey) -> None:
        """Mark a firing series as covered by another alert: its resolve is quiet too."""
        series = self._series.get(key)
        if series is not None:
            series.quiet = True

    def snapshot(self) -> list[dict[str, Any]]:
        return [
            {
                "key": list(key),
                "hits": list(s.hits),
                "m": s.hits.maxlen,
                "state": s.state,
                "episode_start_ms": s.episode_start_ms,
                "firing_windows": s.firing_windows,
                "calm_windows": s.calm_windows,
                "alert_id": s.alert_id,
                "quiet": s.quiet,
            }
            for key, s in self._series.items()
        ]

    def restore(self, state: list[dict[str, Any]]) -> None:
        self._series.clear()
        for item in state:
            hits = item["hits"]
            self._series[SeriesKey.of(item["key"])] = _Series(
                hits=deque(hits, maxlen=int(item["m"])),
                state=item["state"],
                episode_start_ms=int(item["episode_start_ms"]),
                firing_windows=int(item["firing_windows"]),
                calm_windows=int(item["calm_windows"]),
                alert_id=item["alert_id"],
                quiet=bool(item.get("quiet", False)),
            )
