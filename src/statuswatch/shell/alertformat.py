"""How an alert reads for each receiver: Alertmanager's labels and annotations, the
webhook's JSON and its signature (pure functions of the alert's JSON object)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from statuswatch.core.columns import NO_RESPONSE, VOLUME_CODE, code_label

ALERTNAME = "StatusCodeAnomaly"
#: How a volume series' code reads in an alert.
VOLUME_LABEL = code_label(VOLUME_CODE)
#: Contributors named in an Alertmanager description, per scope level (services,
#: routes, apps): the frozen apps matter as much as the services they call.
DESCRIBED_PER_LEVEL = 3
SIGNATURE_HEADER = "X-Statuswatch-Signature"


# --- the alert as each receiver wants it ------------------------------------


def iso_time(epoch_s: float) -> str:
    """RFC 3339 in UTC, as Alertmanager's API takes it.

    >>> iso_time(1680566400.5)
    '2023-04-04T00:00:00.500000Z'
    """
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _code_text(alert: dict[str, Any]) -> str:
    # The JSON carries a status as a number, a volume or class series by its label.
    return str(alert["code"])


def _scope_text(scope: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in scope.items()) or "fleet"


def summary(alert: dict[str, Any]) -> str:
    """One line: what moved where.

    >>> summary({"code": 403, "direction": "up", "scope": {"service": "auth"}})
    'HTTP 403 share rose in service=auth'
    >>> summary({"code": "all", "direction": "down", "scope": {}})
    'Request volume fell in fleet'
    >>> summary({"code": 0, "direction": "up", "scope": {}})
    'HTTP 0 (no response) share rose in fleet'
    """
    code = _code_text(alert)
    what = "Request volume" if code == VOLUME_LABEL else f"HTTP {code} share"
    if code == str(NO_RESPONSE):
        what = f"HTTP {code} (no response) share"
    moved = "rose" if alert["direction"] == "up" else "fell"
    return f"{what} {moved} in {_scope_text(alert['scope'])}"


def horizon_text(alert: dict[str, Any]) -> str:
    """The span of windows the alert's evidence sums (its horizon), as people say it.

    >>> [horizon_text({"horizon_seconds": s}) for s in (10, 60, 600, 3600, 5400)]
    ['10 s', '1 min', '10 min', '1 h', '90 min']
    >>> horizon_text({})
    ''
    """
    seconds = alert.get("horizon_seconds")
    if not seconds:
        return ""
    seconds = round(seconds)
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def description(alert: dict[str, Any]) -> str:
    """The evidence and the top contributors with their observed and expected counts.

    >>> a = {"code": 403, "direction": "up", "signal": "share", "scope": {},
    ...      "observed": {"share": 0.25, "count": 250}, "expected": {"share": 0.01, "count": 10},
    ...      "total": 1000, "score": 42.0, "contributors": [
    ...          {"scope": {"app": "a7"}, "observed": {"count": 120}, "expected": {"count": 2.5}}]}
    >>> text = description(a)
    >>> text.split(" (")[0]
    'HTTP 403 share rose in fleet: 25.00% vs 1.00% expected'
    >>> text.split("). ")[1]
    'Top contributors: app=a7 120 observed vs 2.5 expected.'
    """
    obs, exp = alert["observed"], alert["expected"]
    # Evidence summed over more than its window says so (the window alone goes unsaid).
    window = alert.get("window_end", 0) - alert.get("window_start", 0)
    summed = alert.get("horizon_seconds", 0) > window
    over = f" over {horizon_text(alert)}" if summed else ""
    text = (
        f"{summary(alert)}{over}: {obs['share']:.2%} vs {exp['share']:.2%} expected "
        f"({obs['count']} of {alert['total']} requests, {exp['count']:g} expected; "
        f"score {alert['score']:.1f}, signal {alert['signal']})."
    )
    top = top_contributors(alert.get("contributors") or [])
    if top:
        named = "; ".join(
            f"{_scope_text(c['scope'])} {c['observed']['count']} observed vs "
            f"{c['expected']['count']:g} expected"
            for c in top
        )
        text += f" Top contributors: {named}."
    return text


def top_contributors(contributors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first ``DESCRIBED_PER_LEVEL`` contributors of each scope level (the detector
    lists them by level, largest excess first).

    >>> c = [{"scope": {"service": s}} for s in "abcd"] + [{"scope": {"app": "x"}}]
    >>> [next(iter(x["scope"].values())) for x in top_contributors(c)]
    ['a', 'b', 'c', 'x']
    """
    per_level: Counter[tuple[str, ...]] = Counter()
    out = []
    for contributor in contributors:
        level = tuple(contributor["scope"])
        per_level[level] += 1
        if per_level[level] <= DESCRIBED_PER_LEVEL:
            out.append(contributor)
    return out


def alertmanager_alert(
    alert: dict[str, Any], severity: str, generator_url: str, now_s: float
) -> dict[str, Any]:
    """One alert of Alertmanager's ``POST /api/v2/alerts`` body.

    Firing alerts carry no ``endsAt``: Alertmanager keeps them for its
    ``resolve_timeout`` after the last send. A resolved alert ends at its window's
    end (never later than ``now_s``: a future end would keep it open).
    """
    labels = {
        "alertname": ALERTNAME,
        "code": _code_text(alert),
        "direction": alert["direction"],
        "signal": alert["signal"],
        **alert["scope"],
        "severity": severity,
    }
    out: dict[str, Any] = {
        "labels": labels,
        "annotations": {
            "summary": summary(alert),
            "description": description(alert),
            "alert_id": alert["id"],
            # the span whose summed counts fired the alert (it resolves on the same span)
            **({"horizon": horizon_text(alert)} if horizon_text(alert) else {}),
        },
        "startsAt": iso_time(alert["episode_start"]),
        "generatorURL": f"{generator_url}?id={alert['id']}",
    }
    if alert["state"] == "resolved":
        out["endsAt"] = iso_time(min(alert["window_end"], now_s))
    return out


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The webhook signature header's value: ``t=<unix seconds>,sha256=<hex>``, the
    HMAC-SHA256 of ``<t>.<body>`` under the shared secret (the timestamp is signed too,
    so a receiver can refuse old replays).

    >>> signature("s3cret", 1700000000, b'{"id":"a"}')[:40]
    't=1700000000,sha256=5728bde1960c1b8c3818'
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},sha256={mac.hexdigest()}"


def dumps(alert: dict[str, Any]) -> bytes:
    return json.dumps(alert, separators=(",", ":")).encode()
