"""Real Alertmanager and Prometheus servers for the tests (Debian's binaries).

Each runs on a free loopback port with its own data directory and is stopped when
its fixture ends. A server that cannot start fails the test: a skipped harness
would let a broken alert route pass CI.
"""

from __future__ import annotations

import json
import shutil
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from statuswatch.errors import HarnessError
from statuswatch.localalertmanager import LocalAlertmanager, LocalServer

__all__ = ["RULES", "LocalAlertmanager", "LocalPrometheus", "Notifications", "started"]

#: The alerting rules statuswatch ships for Prometheus.
RULES = Path(__file__).resolve().parents[2] / "config" / "prometheus" / "statuswatch-rules.yml"


def started(server: LocalServer) -> LocalServer:
    """``server``, started; the test fails (never skips) if it cannot start."""
    try:
        server.start()
    except HarnessError as exc:
        server.close()
        pytest.fail(str(exc), pytrace=False)
    return server


def alertmanager_or_fail(receiver_url: str, resolve_timeout: str = "5m") -> LocalAlertmanager:
    """A started Alertmanager notifying ``receiver_url``; fails the test if it cannot."""
    try:
        server = LocalAlertmanager(receiver_url, resolve_timeout)
    except HarnessError as exc:
        pytest.fail(f"{exc}; .ci/run installs it", pytrace=False)
    started(server)
    return server


class Notifications:
    """A webhook receiver for Alertmanager's notifications (what a pager would get)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every notification, in the order received."""
        return [a for n in list(self.received) for a in n["alerts"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class LocalPrometheus(LocalServer):
    """Prometheus scraping one target as job ``statuswatch``, with rules, alerting to
    one Alertmanager; short intervals so a test sees an alert within seconds."""

    name = "prometheus"

    def __init__(self, target: str, rule_file: Path, alertmanager: str) -> None:
        super().__init__()
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is not installed (Debian package 'prometheus'; .ci/run "
                        "installs it)", pytrace=False)
        self.binary = binary
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rule_file)],
            "scrape_configs": [
                {"job_name": "statuswatch", "static_configs": [{"targets": [target]}]},
            ],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        }
        self.config = self.dir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))

    def command(self) -> list[str]:
        return [
            self.binary, f"--config.file={self.config}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]

    def query(self, expr: str) -> list[dict[str, Any]]:
        q = urllib.parse.quote(expr)
        with urllib.request.urlopen(f"{self.url}/api/v1/query?query={q}", timeout=5) as resp:
            result: list[dict[str, Any]] = json.loads(resp.read())["data"]["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """The series of a range query, as a Grafana time-series panel asks for them."""
        params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
        with urllib.request.urlopen(f"{self.url}/api/v1/query_range?{params}", timeout=10) as resp:
            result: list[dict[str, Any]] = json.loads(resp.read())["data"]["result"]
        return result

    def series(self, selector: str) -> list[dict[str, str]]:
        """The label sets of the series matching ``selector`` (what label_values() reads)."""
        params = urllib.parse.urlencode({"match[]": selector})
        with urllib.request.urlopen(f"{self.url}/api/v1/series?{params}", timeout=10) as resp:
            result: list[dict[str, str]] = json.loads(resp.read())["data"]
        return result
