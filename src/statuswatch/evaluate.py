"""Score alerts against labelled incidents: caught, delay, false alarms, precision.

Pure: alerts and labels are the JSON objects the detector and the simulator
write (:meth:`AlertEvent.to_json`, ``statuswatch simulate --labels-out``); no I/O.

Only ``state == "firing"`` alerts are pages. An alert *matches* a label when

* its ``window_end`` lies in ``[label.start, label.end + grace_s]``, and
* it is about the same thing:

  - a share alert (``signal`` absent or ``"share"``; any other signal but
    ``"volume"``, e.g. ``"blast_radius"``, is matched the same way, by its code)
    with the label's code (or one of its ``codes``, for a 5xx creep) and the
    label's direction; or,
    for a label with direction ``"down"`` (a traffic drop), a share alert on a
    2xx code going down;
  - a volume alert (``signal == "volume"``) going down, for a ``"down"`` label
    (or one whose ``factor`` is below 1), or going up, for a label whose volume
    rose (``factor`` above 1: a 429 storm, a freeze with retries); and

* the scopes are compatible: the alert scope's items are a subset of the
  label scope's items or the other way round (``{}``, the fleet, is compatible
  with everything). When the label lists the frozen ``apps`` and the alert is
  scoped to an app, that app must be one of them.

>>> label = {"name": "freeze-1", "kind": "freeze", "start": 100.0, "end": 400.0,
...          "code": 403, "direction": "up", "scope": {}}
>>> alerts = [
...     {"id": "a", "state": "firing", "code": 403, "direction": "up", "scope": {},
...      "window_end": 120.0},
...     {"id": "b", "state": "firing", "code": 500, "direction": "up",
...      "scope": {"service": "email-api"}, "window_end": 5000.0},
...     {"id": "a", "state": "resolved", "code": 403, "direction": "up", "scope": {},
...      "window_end": 420.0},
... ]
>>> r = evaluate(alerts, [label], start_s=0.0, end_s=86_400.0)
>>> r.labels[0].caught, r.labels[0].delay_s, r.labels[0].alert_ids
(True, 20.0, ['a'])
>>> [a["id"] for a in r.false_alarms], r.false_alarms_per_day, r.precision, r.recall
(['b'], 1.0, 0.5, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from statuswatch.core.rules import code_matches

__all__ = ["LabelResult", "Report", "evaluate", "matches", "scope_compatible"]

#: Fields of an alert kept in the report's list of false alarms.
_ALERT_FIELDS = ("id", "signal", "code", "direction", "scope", "window_end", "score")


def scope_compatible(alert_scope: Mapping[str, str], label_scope: Mapping[str, str]) -> bool:
    """True when one scope contains the other (``{}`` contains every scope).

    >>> scope_compatible({"service": "a"}, {"service": "a", "route": "r"})
    True
    >>> scope_compatible({"service": "a", "route": "r"}, {"service": "a"})
    True
    >>> scope_compatible({"app": "x"}, {"service": "a"})
    False
    >>> scope_compatible({}, {"service": "a"}), scope_compatible({"app": "x"}, {})
    (True, True)
    """
    a, b = alert_scope.items(), label_scope.items()
    return a <= b or b <= a


def _is_2xx(code: object) -> bool:
    return (isinstance(code, int) and 200 <= code <= 299) or code == "2xx"


def _code_covers(alert_code: object, code: int) -> bool:
    """An alert's code names ``code``: the code itself, or its class's series ("5xx").

    >>> _code_covers("5xx", 503), _code_covers(503, 503), _code_covers("4xx", 503)
    (True, True, False)
    """
    if isinstance(alert_code, str):
        return code_matches(alert_code, code)
    return alert_code == code


def _label_codes(label: Mapping[str, Any]) -> set[int]:
    codes = label.get("codes")
    if isinstance(codes, list) and codes:
        return {int(c) for c in codes}
    code = label.get("code")
    return {int(code)} if isinstance(code, int) else set()


def _same_thing(alert: Mapping[str, Any], label: Mapping[str, Any]) -> bool:
    direction = alert.get("direction")
    label_direction = label.get("direction", "up")
    if alert.get("signal", "share") == "volume":
        factor = label.get("factor")
        if direction == "down":
            return label_direction == "down" or (isinstance(factor, float | int) and factor < 1)
        return direction == "up" and isinstance(factor, float | int) and factor > 1
    if label_direction == "down":
        return direction == "down" and _is_2xx(alert.get("code"))
    code = alert.get("code")
    return direction == label_direction and any(_code_covers(code, c) for c in _label_codes(label))


def matches(alert: Mapping[str, Any], label: Mapping[str, Any], grace_s: float = 60.0) -> bool:
    """Whether a firing ``alert`` is a page for the incident ``label``.

    >>> drop = {"start": 0.0, "end": 600.0, "code": None, "direction": "down", "scope": {}}
    >>> vol = {"state": "firing", "signal": "volume", "code": "all", "direction": "down",
    ...        "scope": {"service": "email-api"}, "window_end": 30.0}
    >>> matches(vol, drop), matches({**vol, "window_end": 661.0}, drop)
    (True, False)
    >>> matches({**vol, "signal": "share", "code": 200}, drop)
    True
    >>> matches({**vol, "signal": "share", "code": 404}, drop)
    False
    """
    if alert.get("state") != "firing":
        return False
    end = float(alert["window_end"])
    if not float(label["start"]) <= end <= float(label["end"]) + grace_s:
        return False
    if not _same_thing(alert, label):
        return False
    alert_scope: Mapping[str, str] = alert.get("scope") or {}
    if not scope_compatible(alert_scope, label.get("scope") or {}):
        return False
    apps = label.get("apps")
    return not (isinstance(apps, list) and "app" in alert_scope and alert_scope["app"] not in apps)


@dataclass(frozen=True, slots=True)
class LabelResult:
    """How the alerts fared on one labelled incident."""

    name: str
    kind: str
    code: int | None
    direction: str
    scope: dict[str, str]
    start: float
    end: float
    caught: bool
    #: first matching alert's window_end minus the label start (None if missed)
    delay_s: float | None
    alert_ids: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "code": self.code,
            "direction": self.direction,
            "scope": self.scope,
            "start": self.start,
            "end": self.end,
            "caught": self.caught,
            "delay_s": self.delay_s,
            "alert_ids": self.alert_ids,
        }


@dataclass(frozen=True, slots=True)
class Report:
    labels: list[LabelResult]
    #: firing alerts that match no label (a subset of each alert's fields)
    false_alarms: list[dict[str, Any]]
    firing_alerts: int
    matched_alerts: int
    start_s: float
    end_s: float
    grace_s: float

    @property
    def caught(self) -> int:
        return sum(r.caught for r in self.labels)

    @property
    def recall(self) -> float | None:
        """Caught labels / labels (None without labels)."""
        return self.caught / len(self.labels) if self.labels else None

    @property
    def precision(self) -> float | None:
        """Firing alerts matching a label / firing alerts (None without alerts)."""
        return self.matched_alerts / self.firing_alerts if self.firing_alerts else None

    @property
    def false_alarms_per_day(self) -> float | None:
        """False alarms per 24 h of the evaluated span (None for an empty span)."""
        span = self.end_s - self.start_s
        return len(self.false_alarms) / (span / 86_400) if span > 0 else None

    @property
    def delays(self) -> list[float]:
        return [r.delay_s for r in self.labels if r.delay_s is not None]

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        return {
            "labels": [r.to_json() for r in self.labels],
            "caught": self.caught,
            "labels_total": len(self.labels),
            "recall": _round(self.recall),
            "precision": _round(self.precision),
            "firing_alerts": self.firing_alerts,
            "matched_alerts": self.matched_alerts,
            "false_alarms": len(self.false_alarms),
            "false_alarms_per_day": _round(self.false_alarms_per_day),
            "false_alarm_alerts": self.false_alarms,
            "span": {"start": self.start_s, "end": self.end_s},
            "grace_s": self.grace_s,
        }

    def format_table(self) -> str:
        """A plain-text table for humans (no braces, so it never looks like JSON).

        >>> r = evaluate([], [{"name": "x", "kind": "outage", "start": 0.0, "end": 60.0,
        ...                    "code": 401, "direction": "up", "scope": {}}], 0.0, 86_400.0)
        >>> print(r.format_table())
        incident  kind    code  dir  scope  caught  delay_s
        x         outage  401   up   fleet  no      -
        caught 0/1, firing alerts 0, false alarms 0 (0.0/day), precision -
        """
        rows = [("incident", "kind", "code", "dir", "scope", "caught", "delay_s")]
        for r in self.labels:
            rows.append((
                r.name, r.kind, "-" if r.code is None else str(r.code), r.direction,
                _scope_text(r.scope), "yes" if r.caught else "no",
                "-" if r.delay_s is None else f"{r.delay_s:g}",
            ))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                 for row in rows]
        fa_day = self.false_alarms_per_day
        lines.append(
            f"caught {self.caught}/{len(self.labels)}, firing alerts {self.firing_alerts}, "
            f"false alarms {len(self.false_alarms)} "
            f"({'-' if fa_day is None else f'{fa_day:.1f}'}/day), "
            f"precision {'-' if self.precision is None else f'{self.precision:.2f}'}"
        )
        for fa in self.false_alarms:
            lines.append(
                f"  false alarm: {fa.get('signal', 'share')} {fa.get('code')} "
                f"{fa.get('direction')} in {_scope_text(fa.get('scope') or {})} "
                f"at window_end {fa.get('window_end')}"
            )
        return "\n".join(lines)


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


def _scope_text(scope: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in scope.items()) or "fleet"


def evaluate(
    alerts: Sequence[Mapping[str, Any]],
    labels: Sequence[Mapping[str, Any]],
    start_s: float,
    end_s: float,
    grace_s: float = 60.0,
) -> Report:
    """Match firing ``alerts`` to ``labels`` over the span ``[start_s, end_s]``.

    ``labels`` are the simulator's labels (``name, kind, start, end, code,
    direction, scope``, optionally ``codes``, ``apps``, ``factor``). An alert
    may match several overlapping labels; it counts once towards precision.
    """
    if not (math.isfinite(start_s) and math.isfinite(end_s)) or end_s < start_s:
        raise ValueError("evaluate: needs finite start_s <= end_s")
    if grace_s < 0:
        raise ValueError("evaluate: grace_s must be >= 0")
    firing = [a for a in alerts if a.get("state") == "firing"]
    matched = [False] * len(firing)
    results: list[LabelResult] = []
    for i, label in enumerate(labels):
        hits = [j for j, a in enumerate(firing) if matches(a, label, grace_s)]
        for j in hits:
            matched[j] = True
        hits.sort(key=lambda j: float(firing[j]["window_end"]))
        start = float(label["start"])
        code = label.get("code")
        results.append(LabelResult(
            name=str(label.get("name", f"label-{i + 1}")),
            kind=str(label.get("kind", "")),
            code=int(code) if isinstance(code, int) else None,
            direction=str(label.get("direction", "up")),
            scope=dict(label.get("scope") or {}),
            start=start,
            end=float(label["end"]),
            caught=bool(hits),
            delay_s=round(float(firing[hits[0]]["window_end"]) - start, 3) if hits else None,
            alert_ids=list(dict.fromkeys(str(firing[j].get("id", "")) for j in hits)),
        ))
    false_alarms = [
        {k: a[k] for k in _ALERT_FIELDS if k in a}
        for a, m in zip(firing, matched, strict=True) if not m
    ]
    return Report(
        labels=results,
        false_alarms=false_alarms,
        firing_alerts=len(firing),
        matched_alerts=sum(matched),
        start_s=float(start_s),
        end_s=float(end_s),
        grace_s=float(grace_s),
    )
