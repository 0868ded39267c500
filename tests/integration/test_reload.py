"""A running `statuswatch run` on a real broker, reloaded with SIGHUP mid-incident:
it keeps its alert ids and baselines, applies new thresholds from the next window, and
refuses an invalid file or a restart-only change with the key named, going on."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaProducer

from statuswatch.simulate import Incident, SimSpec, encode, generate
from tests.integration.support import free_port, get, scrape, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.slow]

START_MS = 1_680_566_400_000  # 2023-04-04T00:00:00Z
ONSET_S = 1_200
SPEC = SimSpec(seed=4, rate=200.0, n_apps=100, incidents=(
    Incident("freeze", START_MS + ONSET_S * 1000, START_MS + 1_800 * 1000, fraction=0.5),))
FLEET_403 = 'code="403",direction="up",scope="fleet",signal="share"'


async def produce(bootstrap: str, topic: str, from_s: int, to_s: int) -> None:
    """Simulated Kong logs of ``[from_s, to_s)`` after the start; half the apps are frozen
    on 403 from ONSET_S on."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10)
    await producer.start()
    try:
        for chunk in generate(SPEC, START_MS + from_s * 1000, START_MS + to_s * 1000,
                              chunk_ms=10_000):
            for value in encode("kong", chunk, SPEC):
                await producer.send(topic, value=value, partition=0)
        await producer.flush()
    finally:
        await producer.stop()


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local webhook receiver: its URL and the alerts POSTed to it."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


def value(body: str, name: str, labels: str = "") -> float | None:
    """The sample ``name{labels}`` of a /metrics body (labels in alphabetical order)."""
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in body.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return None


async def test_sighup_mid_incident_keeps_alert_ids_and_baselines_and_refuses_bad_files(
    kafka_broker: Any, topic: str, tmp_path: Path,
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    hook_url, hooked = webhook
    bootstrap = kafka_broker.bootstrap_servers
    await produce(bootstrap, topic, 0, ONSET_S + 90)

    alerts_path, log_path, port = tmp_path / "alerts.jsonl", tmp_path / "run.log", free_port()
    config_path = tmp_path / "sw.yaml"
    config: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap, "topic": topic, "group_id": f"sw-{topic}"},
        # never idle: between the phases event time must not follow the wall clock
        "window": {"idle_timeout_seconds": 3600},
        "alerts": {"output": str(alerts_path)},
        "metrics": {"port": port},
    }

    def write_config(**changes: Any) -> str:
        """Write the config with ``changes`` merged per section; the file's short hash."""
        text = yaml.safe_dump({k: {**config.get(k, {}), **changes.get(k, {})}
                               for k in {*config, *changes}})
        config_path.write_text(text)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def alerts() -> list[dict[str, Any]]:
        if not alerts_path.exists():
            return []
        return [json.loads(x) for x in alerts_path.read_text().splitlines()]

    def fleet_403() -> list[tuple[str, str]]:
        return [(a["state"], a["id"]) for a in alerts() if a["code"] == 403
                and a["scope"] == {} and a["signal"] == "share"]

    def reloads(result: str) -> float:
        return value(scrape(port), "statuswatch_config_reloads_total",
                     f'result="{result}"') or 0.0

    def sighup_until(result: str, count: float) -> None:
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: reloads(result) >= count, 30,
                 lambda: f"a reload counted as {result}:\n{log_path.read_text()[-3000:]}")

    first_hash = write_config()
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "statuswatch", "run", "--config", str(config_path)],
            stderr=log_file,
        )
    try:
        ((state, alert_id),) = wait_for(fleet_403, 120, "the fleet-wide 403 alert")
        assert state == "firing"
        body = scrape(port)
        assert value(body, "statuswatch_config_info", f'hash="{first_hash}"') == 1.0
        assert value(body, "statuswatch_alert_active", FLEET_403) == 1.0
        fired = value(body, "statuswatch_alerts_fired_total")

        # An invalid file: refused, naming the key; the process goes on as it was.
        write_config(detect={"fire_score": -1})
        sighup_until("invalid", 1)
        # A restart-only key, next to a live change: neither is applied.
        write_config(window={"size_seconds": 5},
                     detect={"rules": [{"name": "mute-403", "codes": ["403"], "ignore": True}]})
        sighup_until("restart_required", 1)
        log = log_path.read_text()
        assert "refused" in log and "detect.fire_score" in log
        assert "window.size_seconds cannot change without a restart" in log
        body = scrape(port)
        assert value(body, "statuswatch_config_info", f'hash="{first_hash}"') == 1.0
        assert value(body, "statuswatch_config_last_reload_successful") == 0.0

        # A live change that does not concern the 403 freeze, and a new sink: the alert
        # goes on under its id, without a second page, on the baselines learned before;
        # the new sink is sent what fires.
        second_hash = write_config(
            detect={"rules": [{"name": "quiet-404", "codes": ["404"], "preset": "low"}]},
            alerts={"sinks": [{"type": "webhook", "name": "hook", "url": hook_url}]},
        )
        sighup_until("applied", 1)
        wait_for(lambda: any(a["id"] == alert_id for a in hooked), 30,
                 "the firing alert at the sink added by the reload")
        assert all(a["state"] == "firing" for a in hooked)
        closed = value(scrape(port), "statuswatch_windows_closed_total") or 0
        await produce(bootstrap, topic, ONSET_S + 90, ONSET_S + 150)
        wait_for(lambda: (value(scrape(port), "statuswatch_windows_closed_total") or 0)
                 >= closed + 5, 60, "the windows after the reload to close")
        assert fleet_403() == [("firing", alert_id)]
        body = scrape(port)
        assert value(body, "statuswatch_alert_active", FLEET_403) == 1.0
        assert value(body, "statuswatch_alerts_fired_total") == fired
        assert value(body, "statuswatch_config_info", f'hash="{second_hash}"') == 1.0
        assert value(body, "statuswatch_config_last_reload_successful") == 1.0
        # the baselines were kept: warm (a new one would warm up for 30 windows), and the
        # expected 403 share is still the one before the freeze
        assert value(body, "statuswatch_scope_warming_up", 'scope="fleet"') == 0.0
        expected = value(body, "statuswatch_share_expected", 'code="403",scope="fleet"')
        observed = value(body, "statuswatch_share_observed", 'code="403",scope="fleet"')
        assert expected is not None and observed is not None and observed > 5 * expected
        code, firing = get(port, "/alerts")
        assert code == 200 and alert_id in {a["id"] for a in json.loads(firing)}

        # A rule that ignores 403: the alert resolves under the same id, at the sink too.
        write_config(detect={"rules": [{"name": "mute-403", "codes": ["403"], "ignore": True}]},
                     alerts={"sinks": [{"type": "webhook", "name": "hook", "url": hook_url}]})
        sighup_until("applied", 2)
        await produce(bootstrap, topic, ONSET_S + 150, ONSET_S + 220)
        wait_for(lambda: ("resolved", alert_id) in fleet_403(), 60,
                 lambda: f"the 403 alert to resolve: {fleet_403()}")
        assert fleet_403() == [("firing", alert_id), ("resolved", alert_id)]
        wait_for(lambda: ("resolved", alert_id) in {(a["state"], a["id"]) for a in hooked}, 30,
                 "the resolve at the sink")
        body = scrape(port)
        assert value(body, "statuswatch_alert_active", FLEET_403) is None
        assert reloads("invalid") == 1 and reloads("restart_required") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, log_path.read_text()[-2000:]
