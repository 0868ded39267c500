"""Every query of the Grafana dashboard returns data from a real Prometheus scraping a real
``statuswatch run`` on the real broker, after a short incident that pages."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
from pathlib import Path
from typing import Any

import pytest

from tests import grafana
from tests.integration.promstack import (
    RULES,
    LocalAlertmanager,
    LocalPrometheus,
    Notifications,
    started,
)
from tests.integration.support import (
    fleet_wide,
    free_port,
    scrape,
    simulate_into,
    start_run,
    stop_run,
    wait_for,
)
from tests.integration.test_poison import produce as produce_values

START_S = 1_680_566_400  # 2023-04-04T00:00:00Z
ONSET_S = 300
INVALID = 5  #: records that are not JSON, produced once the alert fired

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def produce(bootstrap: str, topic: str) -> None:
    """400 s of traffic from 100 apps; from 300 s on, half of them frozen on 403."""
    simulate_into(bootstrap, topic, "--rate", "200", "--duration", "400", "--start", str(START_S),
                  "--seed", "4", "--apps", "100",
                  "--incident", f"freeze:start={ONSET_S},duration=100,fraction=0.5")


def config(bootstrap: str, topic: str, port: int, alerts: Path, alertmanager: str,
           webhook: str) -> dict[str, Any]:
    """2 s windows and a short warm-up, so the incident pages within seconds; a scope cap
    below the 100 apps, so scopes fold; two sinks, so deliveries have series."""
    return {
        "kafka": {"bootstrap_servers": bootstrap, "topic": topic, "group_id": f"sw-{topic}"},
        "window": {"size_seconds": 2, "allowed_lateness_seconds": 1, "idle_timeout_seconds": 2},
        "baseline": {"warmup_windows": 20, "half_life_windows": 60,
                     "volume_half_life_windows": 30},
        "scopes": {"max_per_level": 50},
        "alerts": {"output": str(alerts), "sinks": [
            {"type": "alertmanager", "name": "am", "urls": [alertmanager]},
            {"type": "webhook", "name": "hook", "url": webhook},
        ]},
        "metrics": {"port": port},
    }


def sample_value(body: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name{labels}`` in a /metrics body (labels in any order)."""
    for line in body.splitlines():
        series, _, value = line.rpartition(" ")
        if series.split("{")[0] == name and all(f'{k}="{v}"' in series for k, v in labels.items()):
            return float(value)
    return None


def run_query(prometheus: LocalPrometheus, target: dict[str, Any], expr: str,
              start: float) -> list[dict[str, Any]]:
    """What Grafana asks for this target: an instant query for a table's instant target,
    else a range query from ``start`` to now at a 1 s step."""
    try:
        if target.get("instant"):
            return prometheus.query(expr)
        return prometheus.query_range(expr, start, time.time(), 1)
    except urllib.error.HTTPError as exc:
        pytest.fail(f"Prometheus refused {expr}: {exc.read().decode()}")


def test_every_dashboard_query_returns_data(
    kafka_broker: Any, topic: str, alertmanager: LocalAlertmanager,
    notifications: Notifications, tmp_path: Path,
) -> None:
    dashboard = grafana.load()
    produce(kafka_broker.bootstrap_servers, topic)
    port = free_port()
    instance = f"127.0.0.1:{port}"
    alerts_path = tmp_path / "alerts.jsonl"
    config_path = tmp_path / "sw.yaml"
    config_path.write_text(json.dumps(config(
        kafka_broker.bootstrap_servers, topic, port, alerts_path, alertmanager.url,
        notifications.url)))
    prometheus = LocalPrometheus(instance, RULES, f"127.0.0.1:{alertmanager.port}")
    started(prometheus)
    start = time.time()
    proc = start_run(config_path)
    try:
        wait_for(lambda: fleet_wide(alerts_path, 403), 120, "the fleet-wide 403 alert")

        def delivered_to_both() -> bool:
            body = scrape(port)
            return all((sample_value(body, "statuswatch_alert_deliveries_total", sink=sink,
                                     result="delivered") or 0) >= 1 for sink in ("am", "hook"))

        wait_for(delivered_to_both, 60, "the alert delivered to both sinks")

        # Invalid records arrive while Prometheus watches (the backlog is read within a
        # scrape or two): the rate panels move.
        wait_for(lambda: prometheus.query(
            f'count_over_time(statuswatch_records_total{{instance="{instance}"}}[1m]) >= 3'),
            30, "three scrapes of statuswatch")
        asyncio.run(produce_values(kafka_broker.bootstrap_servers, topic,
                                   [b"\x1b[2J not a log line"] * INVALID))
        wait_for(lambda: prometheus.query(
            f'statuswatch_invalid_records_total{{instance="{instance}",reason="invalid_json"}}'
            f' == {INVALID}'), 30, "Prometheus to scrape the invalid records")

        # The values a user would pick: this instance, the paging code, the whole fleet.
        values = {"instance": instance, "code": "403", "scope": "fleet",
                  "__rate_interval": "5s", "__interval": "1s", "__range": "5m"}
        for name, variable in grafana.variables(dashboard).items():
            if variable["type"] != "query":
                continue
            selector, label = grafana.label_values(variable)

            def offered(selector: str = selector, label: str = label,
                        name: str = name) -> bool:
                found = prometheus.series(grafana.substitute(selector, values))
                return values[name] in {s.get(label) for s in found}

            wait_for(offered, 30, f"variable {name} to offer {values[name]}")

        targets = [(p["title"], t, grafana.substitute(t["expr"], values))
                   for p, t in grafana.queries(dashboard)]

        def empty() -> list[str]:
            return [f"{title} [{t['refId']}]: {expr}" for title, t, expr in targets
                    if not run_query(prometheus, t, expr, start)]

        missing = empty()
        deadline = time.monotonic() + 30  # rates need two scrapes
        while missing and time.monotonic() < deadline:
            time.sleep(1)
            missing = empty()
        assert missing == [], "queries without data:\n" + "\n".join(missing)

        # The incident is what the alert panel showed during the run (by now the input
        # may have gone idle: the 403 alert resolved, "traffic fell" fires instead).
        (firing,) = [t for panel, t, _ in targets if panel == "Firing alerts"]
        shown = prometheus.query_range(
            grafana.substitute(firing["expr"], values), start, time.time(), 1
        )
        paging = {"code": "403", "scope": "fleet", "direction": "up", "signal": "share"}
        assert any(paging.items() <= s["metric"].items() for s in shown), shown
        for title in ("Records per second", "Invalid and late records per second"):
            (target,) = [t for panel, t, _ in targets if panel == title and t["refId"] == "A"]
            expr = grafana.substitute(target["expr"], values)

            def moved(target: dict[str, Any] = target, expr: str = expr) -> bool:
                series = run_query(prometheus, target, expr, start)
                return max(float(v) for s in series for _, v in s["values"]) > 0

            wait_for(moved, 10, f"{title} to show the invalid records")
        folded = prometheus.query(f'sum(statuswatch_scopes_folded_total{{instance="{instance}"}})')
        assert float(folded[0]["value"][1]) > 0  # 100 apps, 50 rows per level
    finally:
        prometheus.close()
        stderr = stop_run(proc)
    assert proc.returncode == 0, stderr.decode()[-2000:]
