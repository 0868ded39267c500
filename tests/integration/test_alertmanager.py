"""Alerts reach a real Alertmanager: from statuswatch's sink, through an outage of
Alertmanager, and through Prometheus (statuswatch -> Prometheus -> Alertmanager)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from statuswatch.config import Settings
from statuswatch.core.detector import Detector
from statuswatch.shell.delivery import AlertDelivery, DeliveryCollector
from statuswatch.shell.processing import process_batch
from statuswatch.shell.sinks import ListSink
from statuswatch.shell.sources import RawBatch
from statuswatch.simulate import Incident, SimSpec, encode, generate
from tests.integration.promstack import (
    RULES,
    LocalAlertmanager,
    LocalPrometheus,
    Notifications,
    alertmanager_or_fail,
    started,
)
from tests.integration.support import (
    eventually,
    fleet_wide,
    free_port,
    get,
    simulate_into,
    start_run,
    stop_run,
    wait_for,
)

START_MS = 1_680_566_400_000  # 2023-04-04T00:00:00Z
ONSET_S = 1_200
INCIDENT_S = 300
GENERATOR = "http://statuswatch.example:9464"


FLEET = SimSpec(n_apps=100)


def at(offset_s: int) -> int:
    return START_MS + offset_s * 1000


#: Half the apps frozen on 403 (one fleet-wide alert with the apps as contributors).
FREEZE = (Incident("freeze", at(ONSET_S), at(ONSET_S + INCIDENT_S), fraction=0.5),)
#: Three incidents paging separately: 401s fleet-wide, an app's 429 storm, a service's
#: volume drop.
THREE = (
    Incident("outage", at(ONSET_S), at(ONSET_S + INCIDENT_S)),
    Incident("storm", at(ONSET_S + 30), at(ONSET_S + INCIDENT_S), app=FLEET.apps[7]),
    Incident("drop", at(ONSET_S + 90), at(ONSET_S + INCIDENT_S), service=FLEET.services[3]),
)


def traffic(end_s: int, incidents: tuple[Incident, ...] = FREEZE) -> Iterator[RawBatch]:
    """Simulated Kong logs, 10 s per batch."""
    spec = SimSpec(seed=4, rate=200.0, n_apps=100, incidents=incidents)
    offset = 0
    for chunk in generate(spec, START_MS, START_MS + end_s * 1000, chunk_ms=10_000):
        values = encode("kong", chunk, spec)
        offsets = np.arange(offset, offset + len(values), dtype=np.int64)
        offset += len(values)
        yield RawBatch("gateway-logs", 0, offsets, values)


def settings_for(alertmanager: LocalAlertmanager, **sink: Any) -> Settings:
    return Settings(
        alerts={"sinks": [{
            "type": "alertmanager", "name": "am", "urls": [alertmanager.url],
            "backoff_initial_seconds": 0.2, "backoff_max_seconds": 4,
            "timeout_seconds": 5, **sink,
        }]},
        detect={"rules": [{"name": "frozen-apps", "codes": ["403"], "severity": "ticket"}]},
    )


def feed(detector: Detector, delivery: AlertDelivery, batch: RawBatch) -> None:
    now_ms = detector.counters.last_event_ms or 0
    delivery.write(process_batch(detector, batch, now_ms))


@asynccontextmanager
async def delivering(
    alertmanager: LocalAlertmanager, **sink: Any
) -> AsyncIterator[tuple[Detector, AlertDelivery, ListSink]]:
    """A detector whose alerts an ``AlertDelivery`` sends to ``alertmanager`` (with the
    sink options ``sink``) and writes to a list; the delivery is stopped on exit."""
    lines = ListSink()
    delivery = AlertDelivery(settings_for(alertmanager, **sink), lines, external_url=GENERATOR)
    detector = Detector(settings_for(alertmanager))
    await delivery.start()
    try:
        yield detector, delivery, lines
    finally:
        await delivery.stop(5.0)


def firing(lines: ListSink) -> list[dict[str, Any]]:
    return [a for a in lines.alerts if a["state"] == "firing"]


def by_alert_id(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Alerts from statuswatch's sink by their id (Prometheus's alerts have none)."""
    return {a["annotations"]["alert_id"]: a for a in alerts if "alert_id" in a["annotations"]}


def deliveries(delivery: AlertDelivery) -> dict[tuple[str, str], float]:
    """The delivery metrics as /metrics exposes them: {(name, result or ""): value}."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeliveryCollector(delivery))
    out: dict[tuple[str, str], float] = {}
    for family in registry.collect():
        for s in family.samples:
            out[(s.name, s.labels.get("result", ""))] = s.value
    assert generate_latest(registry)  # and the exposition renders
    return out


async def test_alert_fires_and_resolves_in_alertmanager(
    alertmanager: LocalAlertmanager, notifications: Notifications
) -> None:
    async with delivering(alertmanager) as (detector, delivery, lines):
        batches = traffic(ONSET_S + INCIDENT_S + 600)
        for batch in batches:
            feed(detector, delivery, batch)
            if any(a["code"] == 403 and a["scope"] == {} for a in firing(lines)):
                break
        (alert,) = [a for a in firing(lines) if a["code"] == 403 and a["scope"] == {}]
        assert alert["contributors"], alert
        assert alert["id"] in detector.alerts.firing_ids()  # what prunes restored alerts

        def in_alertmanager() -> dict[str, Any] | None:
            return by_alert_id(alertmanager.alerts()).get(alert["id"])

        shown = await eventually(in_alertmanager, 30, "the 403 alert in Alertmanager")
        assert shown["labels"] == {
            "alertname": "StatusCodeAnomaly", "code": "403", "direction": "up",
            "signal": "share", "severity": "ticket",
        }
        assert shown["status"]["state"] == "active"
        assert shown["generatorURL"] == f"{GENERATOR}/alerts?id={alert['id']}"
        assert shown["startsAt"].startswith("2023-04-04T00:2")  # the episode's first window
        text = shown["annotations"]["description"]
        assert shown["annotations"]["summary"] == "HTTP 403 share rose in fleet"
        levels = {tuple(c["scope"]): c for c in reversed(alert["contributors"])}
        assert ("app",) in levels  # the frozen apps, not only their services
        for contributor in levels.values():  # the largest of each level is named
            scope = ",".join(f"{k}={v}" for k, v in contributor["scope"].items())
            assert (f"{scope} {contributor['observed']['count']} observed vs "
                    f"{contributor['expected']['count']:g} expected") in text

        # The freeze ends: statuswatch resolves the alert, and so does Alertmanager.
        for batch in batches:
            feed(detector, delivery, batch)
        delivery.write(detector.finish())
        assert any(a["id"] == alert["id"] and a["state"] == "resolved" for a in lines.alerts)
        assert alert["id"] not in detector.alerts.firing_ids()
        await eventually(lambda: in_alertmanager() is None, 30, "the alert to resolve")
        await eventually(
            lambda: any(a["status"] == "resolved" and a["annotations"]["alert_id"] == alert["id"]
                        for a in notifications.alerts()),
            30, "Alertmanager's resolved notification",
        )
        # the pager got the firing alert before that, with statuswatch's labels
        notified = [a for a in notifications.alerts()
                    if a["annotations"]["alert_id"] == alert["id"]]
        assert notified[0]["status"] == "firing"
        assert notified[0]["labels"]["severity"] == "ticket"
        counts = deliveries(delivery)
        assert counts[("statuswatch_alert_deliveries_total", "delivered")] == len(lines.alerts)
        assert counts[("statuswatch_alert_deliveries_total", "failed")] == 0


async def test_alerts_arrive_after_alertmanager_was_down_30s(
    alertmanager: LocalAlertmanager,
) -> None:
    async with delivering(alertmanager) as (detector, delivery, lines):
        batches = traffic(ONSET_S + INCIDENT_S, THREE)
        for batch in batches:  # calm traffic, up to the onset
            feed(detector, delivery, batch)
            if detector.counters.last_event_ms >= START_MS + (ONSET_S - 10) * 1000:
                break
        assert not lines.alerts
        alertmanager.stop()
        down_at = time.monotonic()
        for batch in batches:  # the incident, while Alertmanager is away
            feed(detector, delivery, batch)
        signals = {(a["code"], a["signal"], json.dumps(a["scope"])) for a in firing(lines)}
        assert len(signals) == 3, signals
        await asyncio.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
        during = deliveries(delivery)
        assert during[("statuswatch_alert_deliveries_total", "failed")] >= len(firing(lines))
        assert during[("statuswatch_alert_queue", "")] == len(lines.alerts)

        await asyncio.to_thread(started, alertmanager)
        wanted = {a["id"] for a in firing(lines)}
        await eventually(lambda: wanted <= set(by_alert_id(alertmanager.alerts())), 60,
                         f"all {len(wanted)} alerts in Alertmanager")
        (volume,) = [a for a in firing(lines) if a["signal"] == "volume"]
        labels = by_alert_id(alertmanager.alerts())[volume["id"]]["labels"]
        assert (labels["code"], labels["direction"], labels["service"]) == \
            ("all", "down", FLEET.services[3])
        after = deliveries(delivery)
        assert after[("statuswatch_alert_deliveries_total", "delivered")] == len(lines.alerts)
        assert after[("statuswatch_alert_deliveries_total", "expired")] == 0
        assert after[("statuswatch_alert_deliveries_total", "dropped")] == 0
        assert after[("statuswatch_alert_queue", "")] == 0


async def test_resends_keep_a_long_incident_open_past_resolve_timeout(
    notifications: Notifications,
) -> None:
    """Alertmanager ends an alert nobody re-sends after its resolve_timeout (2 s here);
    statuswatch's re-sends keep it open as long as it fires."""
    alertmanager = alertmanager_or_fail(notifications.url, resolve_timeout="2s")
    try:
        async with delivering(
            alertmanager, resend_interval_seconds=0.5
        ) as (detector, delivery, lines):
            for batch in traffic(ONSET_S + 60):
                feed(detector, delivery, batch)
            (alert,) = firing(lines)

            def active() -> bool:
                return alert["id"] in by_alert_id(alertmanager.alerts())

            await eventually(active, 30, "the alert in Alertmanager")
            for _ in range(16):  # 8 s, four resolve timeouts: open all along
                await asyncio.sleep(0.5)
                assert await asyncio.to_thread(active)
        # Without the re-sends, the same alert times out there.
        await eventually(lambda: not active(), 30, "Alertmanager to time the alert out")
    finally:
        alertmanager.close()


@pytest.mark.broker
@pytest.mark.slow
async def test_statuswatch_prometheus_alertmanager_chain(
    kafka_broker: Any, topic: str, alertmanager: LocalAlertmanager, tmp_path: Path
) -> None:
    """The real runtime on the real broker pages through both routes: its own
    Alertmanager sink, and Prometheus's StatusCodeAnomaly rule on its /metrics."""
    simulate_into(kafka_broker.bootstrap_servers, topic, "--rate", "200", "--duration", "1500",
                  "--start", str(START_MS // 1000), "--seed", "4", "--apps", "100",
                  "--incident", f"freeze:start={ONSET_S},duration=300,fraction=0.5")

    port = free_port()
    alerts_path = tmp_path / "alerts.jsonl"
    config = tmp_path / "sw.yaml"
    config.write_text(json.dumps({
        "kafka": {"bootstrap_servers": kafka_broker.bootstrap_servers, "topic": topic,
                  "group_id": f"sw-{topic}"},
        "window": {"idle_timeout_seconds": 10},
        "alerts": {"output": str(alerts_path), "sinks": [
            {"type": "alertmanager", "name": "am", "urls": [alertmanager.url],
             "resend_interval_seconds": 5}]},
        "metrics": {"port": port},
    }))
    proc = start_run(config)
    prometheus = LocalPrometheus(f"127.0.0.1:{port}", RULES, f"127.0.0.1:{alertmanager.port}")
    try:
        started(prometheus)

        (alert,) = wait_for(lambda: fleet_wide(alerts_path, 403), 120,
                            "the fleet-wide 403 alert")
        status, body = get(port, "/alerts")
        assert status == 200
        assert alert in json.loads(body)  # /alerts serves the JSON line's object

        def both_routes() -> tuple[dict[str, Any], dict[str, Any]] | None:
            shown = alertmanager.alerts()
            direct = by_alert_id(shown).get(alert["id"])
            via_prometheus = [
                a for a in shown if a["labels"].get("alertname") == "StatusCodeAnomaly"
                and a["labels"].get("job") == "statuswatch" and a["labels"].get("code") == "403"
                and a["labels"].get("scope") == "fleet"
            ]
            return (direct, via_prometheus[0]) if direct and via_prometheus else None

        direct, via_prometheus = wait_for(both_routes, 90, "the alert on both routes")
        assert direct["labels"]["severity"] == "page"
        assert direct["generatorURL"].endswith(f"/alerts?id={alert['id']}")
        assert via_prometheus["labels"]["direction"] == "up"
        assert via_prometheus["labels"]["severity"] == "page"
        summary = " ".join(via_prometheus["annotations"]["summary"].split())
        assert summary == "HTTP 403 share rose in fleet"
    finally:
        prometheus.close()
        stderr = stop_run(proc)
    assert proc.returncode == 0, stderr.decode()[-2000:]
