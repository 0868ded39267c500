"""Support-ticket influx: an event stream without a status, watched for volume rises.

Days of ticket events are generated here (a diurnal curve, hour-to-hour noise beyond
Poisson, several categories, Zipf-distributed customers) and run through the real
backtest command with the documented example config.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import generate_latest

from statuswatch.config import load_settings
from statuswatch.core.columns import EVENT_CODE
from statuswatch.core.detector import Detector
from statuswatch.shell.metrics import RuntimeStatus, build_registry

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "examples" / "support-tickets.yaml"

DAY_MS = 86_400_000
START_MS = 1_796_428_800_000  # 2026-12-05T00:00:00Z
WINDOW_MS = 300_000  # window.size_seconds of the example
#: Share of the tickets per category.
CATEGORIES = {"billing": 0.3, "login": 0.25, "bug": 0.2, "account": 0.15, "feature": 0.1}
CUSTOMERS = 300
#: Tickets per minute at the daily peak (16:00 UTC); the night trough is a quarter of it.
PEAK_PER_MINUTE = 4.0


def ticket_rate(minute_of_day: np.ndarray) -> np.ndarray:
    """Tickets per minute at each minute of the day: a cosine from 25% at 04:00 to the
    peak at 16:00 UTC."""
    phase = 2 * math.pi * (minute_of_day - 16 * 60) / (24 * 60)
    return PEAK_PER_MINUTE * (0.625 + 0.375 * np.cos(phase))


def tickets(days: int, seed: int, surge: tuple[int, int, str, float] | None = None
            ) -> list[dict[str, Any]]:
    """Ticket events of ``days`` days from ``START_MS``, in time order. ``surge``:
    (start ms, end ms, category, extra tickets per minute) on top of the usual."""
    rng = np.random.default_rng(seed)
    minutes = np.arange(days * 1440)
    # hour-to-hour noise beyond Poisson: a gamma factor with mean 1 (sd about 20%)
    hourly = rng.gamma(25.0, 1 / 25.0, size=days * 24)
    base = ticket_rate(minutes % 1440) * hourly[minutes // 60]
    customers = np.arange(1, CUSTOMERS + 1)
    weights = 1 / customers
    weights /= weights.sum()
    events: list[tuple[int, str, int]] = []
    for category, share in CATEGORIES.items():
        rate = base * share
        if surge is not None and surge[2] == category:
            start, end = surge[0], surge[1]
            minute_ms = START_MS + minutes * 60_000
            rate = rate + np.where((minute_ms >= start) & (minute_ms < end), surge[3], 0.0)
        counts = rng.poisson(rate)
        at = np.repeat(minutes, counts)
        ts = START_MS + at * 60_000 + rng.integers(0, 60_000, size=at.size)
        who = rng.choice(customers, size=at.size, p=weights)
        events += zip(ts.tolist(), [category] * at.size, who.tolist(), strict=True)
    events.sort()
    return [
        {
            "id": f"T-{n:06d}",
            "created_at": datetime.fromtimestamp(ts / 1000, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "category": category,
            "customer": {"id": f"cust-{who:04d}"},
            "subject": "help",
        }
        for n, (ts, category, who) in enumerate(events)
    ]


def backtest(tmp_path: Path, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alerts ``statuswatch backtest`` raises over ``events`` with the example config."""
    log = tmp_path / "tickets.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    alerts = tmp_path / "alerts.jsonl"
    summary = tmp_path / "summary.json"
    result = subprocess.run(
        [sys.executable, "-m", "statuswatch", "backtest", "--config", str(EXAMPLE), "--quiet",
         "--alerts-out", str(alerts), "--summary-out", str(summary), str(log)],
        capture_output=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    counted = json.loads(summary.read_text())
    assert counted["records"] == len(events), counted
    assert counted["codes"] == {"event": len(events)}, counted
    return [json.loads(line) for line in alerts.read_text().splitlines()]


def pages(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in alerts if a["state"] == "firing" and not a.get("quiet")]


def test_the_example_config_is_valid():
    result = subprocess.run(
        [sys.executable, "-m", "statuswatch", "check-config", "--config", str(EXAMPLE)],
        capture_output=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"format=json" in result.stdout


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_ordinary_days_of_tickets_do_not_page(tmp_path, seed):
    alerts = backtest(tmp_path, tickets(days=3, seed=seed))
    assert pages(alerts) == []


def test_a_ticket_surge_pages_within_two_windows(tmp_path):
    surge_start = START_MS + 2 * DAY_MS + 10 * 3_600_000 + 60_000  # day 3, 10:01
    # 8 more login tickets a minute for an hour (usually about one a minute then)
    surge = (surge_start, surge_start + 3_600_000, "login", 8.0)
    alerts = backtest(tmp_path, tickets(days=3, seed=1, surge=surge))
    paged = pages(alerts)
    assert paged, "the surge did not page"
    first = paged[0]
    assert first["signal"] == "volume"
    assert first["direction"] == "up"
    assert first["code"] == "all"
    assert first["scope"] in ({}, {"service": "login"})
    # the window the surge starts in, and the next one
    surge_window = surge_start // WINDOW_MS * WINDOW_MS
    assert surge_window / 1000 <= first["window_start"] < (surge_window + 2 * WINDOW_MS) / 1000
    # the login category is named: its own alert, or a contributor to the fleet's
    named = [a for a in paged if a["scope"] == {"service": "login"}]
    named += [c for a in paged for c in a.get("contributors", [])
              if c.get("scope") == {"service": "login"}]
    assert named, paged
    # nothing pages before the surge
    assert all(a["window_start"] * 1000 >= surge_window for a in paged)


def test_metrics_and_alerts_name_the_events(tmp_path):
    """In the detector itself: the ticket stream's series are labelled ``event`` (share)
    and ``all`` (volume) on /metrics, and its alert carries ``"code": "all"``."""
    settings = load_settings(EXAMPLE)
    detector = Detector(settings)
    surge_start = START_MS + DAY_MS + 15 * 3_600_000  # day 2, 15:00
    events = tickets(days=2, seed=5, surge=(surge_start, surge_start + 1_800_000, "bug", 10.0))
    values = [json.dumps(e).encode() for e in events]
    fired: list[dict[str, Any]] = []
    for i in range(0, len(values), 200):
        step = detector.process(values[i:i + 200], now_ms=0)
        fired += [a.to_json() for a in step.events if a.state == "firing" and not a.quiet]
    assert [(a["code"], a["signal"], a["direction"]) for a in fired] == [("all", "volume", "up")]
    assert fired[0]["scope"] in ({}, {"service": "bug"})
    text = generate_latest(build_registry(detector, RuntimeStatus())).decode()
    shares = [line for line in text.splitlines()
              if line.startswith("statuswatch_share_observed{")]
    assert shares and all('code="event"' in line for line in shares), shares
    volume = [line for line in text.splitlines()
              if line.startswith("statuswatch_anomaly_score{") and 'scope="service=bug"' in line]
    assert {line.split("code=")[1].split(",")[0] for line in volume} == {'"all"', '"event"'}


def test_an_event_stream_survives_a_snapshot():
    """The event code is a column like any other: restored, it counts on the same."""
    settings = load_settings(EXAMPLE)
    before, values = Detector(settings), [json.dumps(e).encode() for e in tickets(1, seed=3)]
    before.process(values[:2000], now_ms=0)
    after = Detector(settings)
    after.restore(before.snapshot(), now_ms=0)
    assert after.codes.codes == before.codes.codes == [EVENT_CODE]
    before.process(values[2000:], now_ms=0)
    after.process(values[2000:], now_ms=0)
    assert before.last_report is not None and after.last_report is not None
    assert after.last_report.counts.tolist() == before.last_report.counts.tolist()
    assert after.last_report.volume.up.tolist() == before.last_report.volume.up.tolist()
