"""The compose Alertmanager config (config/alertmanager.yml) on a real Alertmanager: an
anomaly that arrives by both routes pages once, and Prometheus's route pages alone when
statuswatch's own alert is missing."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.integration.promstack import LocalAlertmanager, Notifications, started
from tests.integration.support import wait_for

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "alertmanager.yml"


def compose_alertmanager(receiver_url: str) -> LocalAlertmanager:
    """A real Alertmanager running config/alertmanager.yml, its receivers notifying
    ``receiver_url`` instead of the placeholder."""
    server = LocalAlertmanager()
    config = yaml.safe_load(CONFIG.read_text())
    for receiver in config["receivers"]:
        receiver["webhook_configs"] = [{"url": receiver_url, "send_resolved": True}]
    server.config.write_text(yaml.safe_dump(config))
    started(server)
    return server


def post(server: LocalAlertmanager, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"{server.url}/api/v2/alerts", data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200


def anomaly(code: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": "StatusCodeAnomaly", "code": code, "direction": "up",
                       "signal": "share", "severity": "page", **labels},
            "annotations": {"summary": f"HTTP {code} share rose in fleet"}}


def test_an_anomaly_sent_by_both_routes_is_shown_once(notifications: Notifications) -> None:
    server = compose_alertmanager(notifications.url)
    try:
        via_prometheus = {"job": "statuswatch", "instance": "statuswatch:9464", "scope": "fleet"}
        post(server, [
            anomaly("403"),  # statuswatch's sink: no job label
            anomaly("403", **via_prometheus),
            anomaly("503", **via_prometheus),  # statuswatch's own alert did not arrive
        ])

        def states() -> dict[tuple[str, str], dict[str, Any]] | None:
            shown = {(a["labels"]["code"], a["labels"].get("job", "")): a["status"]
                     for a in server.alerts()}
            return shown if len(shown) == 3 else None

        shown = wait_for(states, 30, "the three alerts in Alertmanager")
        assert shown[("403", "")]["state"] == "active"
        assert shown[("403", "statuswatch")]["state"] == "suppressed"
        assert shown[("403", "statuswatch")]["inhibitedBy"]
        assert shown[("503", "statuswatch")]["state"] == "active"
    finally:
        server.close()
