"""Real Alertmanager and Prometheus servers for the tests (Debian's binaries).

Each runs on a free loopback port with its own data directory and is stopped when
its fixture ends. A server that cannot start fails the test: a skipped harness
would let a broken alert route pass CI.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.support import free_port

ALERTMANAGER_BIN = "prometheus-alertmanager"  # Debian's name for alertmanager
PROMETHEUS_BIN = "prometheus"


def _binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (Debian package {package!r}; .ci/run installs it)",
                    pytrace=False)
    return path


def http_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


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


class _Server:
    name = "server"

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"statuswatch-{self.name}-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 60.0) -> None:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        log = self.log_path.read_text(errors="replace")[-3000:]
        self.stop()
        pytest.fail(f"{self.name} did not start on port {self.port}:\n{log}", pytrace=False)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class LocalAlertmanager(_Server):
    """Alertmanager with one webhook receiver, grouping by alert and notifying at once."""

    name = "alertmanager"

    def __init__(self, receiver_url: str, resolve_timeout: str = "5m") -> None:
        super().__init__()
        self.binary = _binary(ALERTMANAGER_BIN, "prometheus-alertmanager")
        config = {
            "global": {"resolve_timeout": resolve_timeout},
            "route": {
                "receiver": "test", "group_by": ["..."],
                "group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h",
            },
            "receivers": [{
                "name": "test",
                "webhook_configs": [{"url": receiver_url, "send_resolved": True}],
            }],
        }
        self.config = self.dir / "alertmanager.yml"
        self.config.write_text(yaml.safe_dump(config))

    def command(self) -> list[str]:
        return [
            self.binary, f"--config.file={self.config}", f"--storage.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
            "--log.level=warn",
        ]

    def alerts(self) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: the alerts active now (resolved ones are not listed)."""
        result: list[dict[str, Any]] = http_json(f"{self.url}/api/v2/alerts")
        return result


class LocalPrometheus(_Server):
    """Prometheus scraping one target as job ``statuswatch``, with rules, alerting to
    one Alertmanager; short intervals so a test sees an alert within seconds."""

    name = "prometheus"

    def __init__(self, target: str, rule_file: Path, alertmanager: str) -> None:
        super().__init__()
        self.binary = _binary(PROMETHEUS_BIN, "prometheus")
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
        result: list[dict[str, Any]] = http_json(f"{self.url}/api/v1/query?query={q}")["data"][
            "result"]
        return result
