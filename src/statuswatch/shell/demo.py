"""``statuswatch demo``: the April 2023 billing freeze, end to end on a real broker.

1. fetch the Kafka jars with Maven and start a local KRaft broker on 127.0.0.1;
2. produce 15 minutes of normal gateway history (event time), so baselines are warm;
3. stream live traffic in real time; 20 s in, half of the apps get 403 on every call;
4. the detector consumes it all, prints alerts as they fire, and serves /metrics;
5. when Alertmanager is installed, a local one receives the alerts, and the demo shows
   the fleet-wide 403 alert arriving there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
import urllib.request

from statuswatch.config import AlertsConfig, KafkaConfig, MetricsConfig, Settings
from statuswatch.core.decide import AlertEvent
from statuswatch.core.detector import Detector
from statuswatch.errors import HarnessError
from statuswatch.localalertmanager import LocalAlertmanager, find_alertmanager
from statuswatch.localbroker import LocalKafka
from statuswatch.shell.delivery import AlertDelivery, DeliveryCollector
from statuswatch.shell.http import serve
from statuswatch.shell.metrics import RuntimeStatus, build_registry
from statuswatch.shell.runtime import KafkaRunner
from statuswatch.shell.sinks import ListSink, describe
from statuswatch.simulate.incidents import Incident
from statuswatch.simulate.output import Plan, produce_kafka
from statuswatch.simulate.spec import SimSpec

log = logging.getLogger(__name__)

TOPIC = "gateway-logs"
HISTORY_S = 15 * 60
INCIDENT_AFTER_S = 20
RATE = 400.0


def say(text: str) -> None:
    print(text, flush=True)


def scrape(port: int, prefixes: tuple[str, ...]) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        body: str = resp.read().decode()
    return [line for line in body.splitlines() if line.startswith(prefixes)]


async def demo(metrics_port: int = 9464, live_seconds: float = 90.0) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    # The group coordinator is not ready for the first second of a new broker;
    # aiokafka logs that transient as an error, which would only confuse here.
    logging.getLogger("aiokafka.consumer.group_coordinator").setLevel(logging.CRITICAL)
    say("statuswatch demo: starting a local Kafka broker (first run fetches jars with Maven)...")
    broker = LocalKafka()
    await asyncio.to_thread(broker.start)
    alertmanager = await _start_alertmanager()
    try:
        await broker.acreate_topic(TOPIC, partitions=3)
        say(f"broker up at {broker.bootstrap_servers}, topic {TOPIC} (3 partitions)")
        return await _run(broker.bootstrap_servers, metrics_port, live_seconds, stop, alertmanager)
    finally:
        say("stopping the broker...")
        await asyncio.to_thread(broker.stop)
        if alertmanager is not None:
            await asyncio.to_thread(alertmanager.close)


async def _start_alertmanager() -> LocalAlertmanager | None:
    """A local Alertmanager if one is installed (the demo runs without it)."""
    if find_alertmanager() is None:
        say("(no Alertmanager installed: alerts go to this terminal only; Debian package "
            "prometheus-alertmanager adds that route)")
        return None
    alertmanager = LocalAlertmanager()
    try:
        await asyncio.to_thread(alertmanager.start)
    except HarnessError as exc:
        say(f"(Alertmanager did not start, going on without it: {exc})")
        alertmanager.close()
        return None
    say(f"Alertmanager up at {alertmanager.url}")
    return alertmanager


async def _run(
    bootstrap: str, metrics_port: int, live_seconds: float, stop: asyncio.Event,
    alertmanager: LocalAlertmanager | None = None,
) -> int:
    sinks = [] if alertmanager is None else [
        {"type": "alertmanager", "name": "demo", "urls": [alertmanager.url]}]
    settings = Settings(
        kafka=KafkaConfig(bootstrap_servers=bootstrap, topic=TOPIC, group_id="statuswatch-demo"),
        metrics=MetricsConfig(port=metrics_port),
        alerts=AlertsConfig.model_validate({"sinks": sinks}),
    )
    detector = Detector(settings)
    status = RuntimeStatus()
    delivery = AlertDelivery(settings, ListSink())
    registry = build_registry(detector, status)
    registry.register(DeliveryCollector(delivery))
    server, port = serve(registry, "127.0.0.1", metrics_port, alerts=delivery.firing.alerts)
    delivery.external_url = f"http://127.0.0.1:{port}"
    say(f"metrics: http://127.0.0.1:{port}/metrics (firing alerts: /alerts)")
    fired: list[AlertEvent] = []

    def on_events(events: list[AlertEvent]) -> None:
        for event in events:
            say(describe(event))
            say("  " + json.dumps(event.to_json()))
            if event.state == "firing":
                fired.append(event)

    runner = KafkaRunner(settings, detector, delivery, status, on_events=on_events)
    live_start = time.time_ns() // 1_000_000
    history = Plan(SimSpec(seed=7, rate=RATE), "kong", live_start - HISTORY_S * 1000, live_start,
                   realtime=False)
    say(f"producing {HISTORY_S // 60} minutes of normal history ({RATE:.0f} req/s)...")
    sent = await produce_kafka(history, bootstrap, TOPIC)
    say(f"  {sent} records of history produced")

    incident_ms = live_start + INCIDENT_AFTER_S * 1000
    live_end = live_start + round(live_seconds * 1000)
    freeze = Incident("freeze", incident_ms, live_end + 60_000, code=403, fraction=0.5,
                      name="billing-freeze")
    live = Plan(SimSpec(seed=7, rate=RATE, incidents=(freeze,)), "kong", live_start, live_end,
                realtime=True)
    say(
        f"live traffic for {live_seconds:.0f} s; at +{INCIDENT_AFTER_S} s half of the apps "
        "start getting 403 (the April 2023 billing freeze)"
    )
    await delivery.start()
    detector_task = asyncio.create_task(runner.run())
    producer_task = asyncio.create_task(produce_kafka(live, bootstrap, TOPIC))
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({producer_task, stopper, detector_task},
                           return_when=asyncio.FIRST_COMPLETED)
        if producer_task.done() and not stop.is_set():
            # let the last windows close (watermark + lateness) before stopping
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=2 * settings.window.size_seconds)
    finally:
        for task in (producer_task, stopper):
            task.cancel()
        runner.stop()
        await asyncio.gather(producer_task, stopper, return_exceptions=True)
        await detector_task
        await delivery.stop(5.0)
    _report(port, fired, incident_ms)
    server.shutdown()
    detected = any(e.code == 403 and not e.scope for e in fired)
    if alertmanager is None or not detected:
        return 0 if detected else 1
    return 0 if _report_alertmanager(alertmanager, fired) else 1


def _report_alertmanager(alertmanager: LocalAlertmanager, fired: list[AlertEvent]) -> bool:
    """Show the fleet-wide 403 alert as Alertmanager holds it; False if it is not there."""
    ids = {e.id for e in fired if e.code == 403 and not e.scope}
    with contextlib.suppress(OSError, ValueError):
        for alert in alertmanager.alerts():
            if alert["annotations"].get("alert_id") in ids:
                labels = ",".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
                say(f"\nin Alertmanager ({alertmanager.url}/api/v2/alerts): {{{labels}}}")
                say(f"  {alert['annotations']['description']}")
                return True
    say("\nthe fleet-wide 403 alert did not reach Alertmanager")
    print("demo failed: the alert did not reach Alertmanager", file=sys.stderr)
    return False


def _report(port: int, fired: list[AlertEvent], incident_ms: int) -> None:
    say("\n/metrics (selected lines):")
    with contextlib.suppress(OSError):
        for line in scrape(port, ("statuswatch_alert_active{", "statuswatch_alerts_fired_total",
                                  'statuswatch_share_observed{code="403",scope="fleet"}',
                                  'statuswatch_share_expected{code="403",scope="fleet"}',
                                  "statuswatch_records_total")):
            say("  " + line)
    fleet = [e for e in fired if e.code == 403 and e.direction == "up" and not e.scope]
    if fleet:
        delay = (fleet[0].window_end_ms - incident_ms) / 1000
        say(f"\nfleet-wide 403 alert fired {delay:.0f} s of event time after the incident began")
    else:
        say("\nno fleet-wide 403 alert fired", )
        print("demo failed: the incident was not detected", file=sys.stderr)


