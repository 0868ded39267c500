"""What a configuration change would have done: two backtests' alerts side by side.

Pure: alerts are the JSON objects of :meth:`AlertEvent.to_json`; no I/O.
``statuswatch backtest --config new.yaml --compare current.yaml FILE`` runs both
detectors over records decoded once and hands their alerts here.

An *episode* is one alert from its page (``state == "firing"``) to its
resolution. Two episodes, one per configuration, are the same incident when
they are about the same series (scope, code, direction, signal) and their time
spans overlap. Ids hash the series and the episode's first hit, so identical
episodes share an id; a threshold change that fires a window earlier or later
still overlaps.

>>> fire = {"id": "a", "state": "firing", "code": 403, "direction": "up",
...         "signal": "share", "scope": {}, "window_start": 600.0, "window_end": 610.0,
...         "episode_start": 600.0, "score": 12.5}
>>> late = {**fire, "id": "b", "window_start": 620.0, "window_end": 630.0}
>>> other = {**fire, "id": "c", "code": 500, "window_start": 900.0}
>>> c = compare([fire, other], [late], ("new.yaml", "current.yaml"))
>>> [e.id for e in c.only(0)], c.only(1), len(c.pairs)
(['c'], [], 2)
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from statuswatch.config import Settings
from statuswatch.evaluate import Report

__all__ = ["Comparison", "Episode", "compare", "decode_difference", "episodes"]

#: Series of one alert: (scope items, code, direction, signal).
SeriesKey = tuple[tuple[tuple[str, str], ...], str, str, str]


@dataclass(frozen=True, slots=True)
class Episode:
    """One paged alert, from its page to its resolution (``end`` None: still firing)."""

    id: str
    scope: dict[str, str]
    code: int | str
    direction: str
    signal: str
    episode_start: float
    first_window: float  # start of the window that paged
    end: float | None
    score: float

    @property
    def series(self) -> SeriesKey:
        return (tuple(sorted(self.scope.items())), str(self.code), self.direction, self.signal)

    def overlaps(self, other: Episode) -> bool:
        inf = float("inf")
        return (self.episode_start <= (other.end if other.end is not None else inf)
                and other.episode_start <= (self.end if self.end is not None else inf))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "scope": self.scope, "code": self.code,
            "direction": self.direction, "signal": self.signal,
            "first_window": self.first_window, "episode_start": self.episode_start,
            "resolved": self.end, "score": self.score,
        }


def episodes(alerts: Sequence[Mapping[str, Any]]) -> list[Episode]:
    """The episodes of a run's alerts, in the order they paged."""
    ends = {str(a["id"]): float(a["window_end"]) for a in alerts if a.get("state") == "resolved"}
    out = []
    for a in alerts:
        if a.get("state") != "firing":
            continue
        alert_id = str(a["id"])
        out.append(Episode(
            id=alert_id, scope=dict(a.get("scope") or {}), code=a["code"],
            direction=str(a["direction"]), signal=str(a.get("signal", "share")),
            episode_start=float(a.get("episode_start", a["window_start"])),
            first_window=float(a["window_start"]), end=ends.get(alert_id),
            score=float(a.get("score", 0.0)),
        ))
    return out


def _match(a: list[Episode], b: list[Episode]) -> list[tuple[Episode | None, Episode | None]]:
    """Pairs of the same incident (same id, else same series and overlapping), then the
    episodes of each side that have no partner, each once."""
    pairs: list[tuple[Episode | None, Episode | None]] = []
    taken: set[int] = set()
    by_id = {e.id: i for i, e in enumerate(b)}
    unmatched: list[Episode] = []
    for ea in a:
        j = by_id.get(ea.id)
        if j is not None and j not in taken:
            taken.add(j)
            pairs.append((ea, b[j]))
        else:
            unmatched.append(ea)
    for ea in unmatched:
        j = next((j for j, eb in enumerate(b) if j not in taken
                  and eb.series == ea.series and ea.overlaps(eb)), None)
        if j is None:
            pairs.append((ea, None))
        else:
            taken.add(j)
            pairs.append((ea, b[j]))
    pairs.extend((None, eb) for j, eb in enumerate(b) if j not in taken)
    return pairs


@dataclass(frozen=True, slots=True)
class Comparison:
    """Two runs' episodes, matched; ``names`` label the two configurations."""

    names: tuple[str, str]
    runs: tuple[list[Episode], list[Episode]]
    pairs: list[tuple[Episode | None, Episode | None]]
    reports: tuple[Report, Report] | None = None
    summaries: tuple[dict[str, Any], dict[str, Any]] = field(default_factory=lambda: ({}, {}))

    def only(self, side: int) -> list[Episode]:
        """Episodes of run ``side`` (0 or 1) that the other run does not have."""
        out = []
        for pair in self.pairs:
            mine, theirs = pair[side], pair[1 - side]
            if mine is not None and theirs is None:
                out.append(mine)
        return out

    @property
    def both(self) -> int:
        return sum(a is not None and b is not None for a, b in self.pairs)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"configs": list(self.names)}
        for side, name in enumerate(self.names):
            out[_side(side)] = {
                "config": name,
                "alerts": len(self.runs[side]),
                "only_here": [e.to_json() for e in self.only(side)],
                "summary": self.summaries[side],
            }
            if self.reports is not None:
                out[_side(side)]["evaluation"] = self.reports[side].to_json()
        out["in_both"] = self.both
        return out

    def format_table(self) -> str:
        """A plain-text report for people.

        >>> a = {"id": "a", "state": "firing", "code": 403, "direction": "up",
        ...      "signal": "share", "scope": {"service": "billing"}, "window_start": 600.0,
        ...      "window_end": 610.0, "episode_start": 600.0, "score": 12.5}
        >>> print(compare([a], [], ("new.yaml", "current.yaml")).format_table())
                          new.yaml  current.yaml
        alerts            1         0
        in both           0         0
        only in this run  1         0
        <BLANKLINE>
        only with new.yaml (1):
          code  scope            direction  signal  first window          score
          403   service=billing  up         share   1970-01-01 00:10:00Z  12.5
        <BLANKLINE>
        only with current.yaml: none
        """
        rows: list[tuple[str, ...]] = [
            ("", *self.names),
            ("alerts", *(str(len(r)) for r in self.runs)),
            ("in both", str(self.both), str(self.both)),
            ("only in this run", *(str(len(self.only(s))) for s in (0, 1))),
        ]
        if self.reports is not None:
            rows += _evaluation_rows(self.reports)
        lines = _columns(rows)
        records = self.summaries[0].get("records")
        if records is not None:  # both runs read the same records
            lines.insert(0, f"{records:,} records, each decoded once for both configurations\n")
        for side, name in enumerate(self.names):
            only = self.only(side)
            lines.append("")
            if not only:
                lines.append(f"only with {name}: none")
                continue
            lines.append(f"only with {name} ({len(only)}):")
            table: list[tuple[str, ...]] = [
                ("code", "scope", "direction", "signal", "first window", "score")]
            table += [(str(e.code), _scope_text(e.scope), e.direction, e.signal,
                       utc(e.first_window), f"{e.score:g}") for e in only]
            lines += ["  " + line for line in _columns(table)]
        return "\n".join(lines)


def _side(side: int) -> str:
    return ("config", "compare")[side]


def _evaluation_rows(reports: tuple[Report, Report]) -> list[tuple[str, ...]]:
    def fmt(x: float | None, spec: str) -> str:
        return "-" if x is None else format(x, spec)

    rows: list[tuple[str, ...]] = [
        ("recall", *(f"{fmt(r.recall, '.2f')} ({r.caught}/{len(r.labels)})" for r in reports)),
        ("median delay (s)", *(fmt(statistics.median(r.delays) if r.delays else None, "g")
                               for r in reports)),
        ("false alarms/day", *(fmt(r.false_alarms_per_day, ".1f") for r in reports)),
        ("precision", *(fmt(r.precision, ".2f") for r in reports)),
    ]
    a, b = reports
    for la, lb in zip(a.labels, b.labels, strict=True):
        rows.append((f"  {la.name} delay (s)", *(
            "missed" if x.delay_s is None else f"{x.delay_s:g}" for x in (la, lb))))
    return rows


def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def _scope_text(scope: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in scope.items()) or "fleet"


def utc(seconds: float) -> str:
    """Epoch seconds as a UTC time for people.

    >>> utc(1680566400.0)
    '2023-04-04 00:00:00Z'
    """
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def compare(
    alerts: Sequence[Mapping[str, Any]],
    other_alerts: Sequence[Mapping[str, Any]],
    names: tuple[str, str],
    reports: tuple[Report, Report] | None = None,
    summaries: tuple[dict[str, Any], dict[str, Any]] = ({}, {}),
) -> Comparison:
    """Match the episodes of two runs' alerts (see the module docstring)."""
    runs = (episodes(alerts), episodes(other_alerts))
    return Comparison(names, runs, _match(*runs), reports, summaries)


def decode_difference(settings: Settings, other: Settings) -> str | None:
    """The dotted key of the first ``decode`` setting that differs, or None.

    >>> from statuswatch.config import DecodeConfig
    >>> a = Settings()
    >>> b = a.model_copy(update={"decode": DecodeConfig(format="json")})
    >>> decode_difference(a, b), decode_difference(a, a)
    ('decode.format', None)
    """
    return _first_difference(
        settings.decode.model_dump(), other.decode.model_dump(), "decode"
    )


def _first_difference(a: object, b: object, path: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys(), key=str):
            found = _first_difference(a.get(key), b.get(key), f"{path}.{key}")
            if found is not None:
                return found
        return None
    return None if a == b else path
