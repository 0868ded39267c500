"""A local Alertmanager (Debian's ``prometheus-alertmanager``) for the demo and the tests.

It listens on a free loopback port with a temporary data directory and no
clustering, and optionally notifies one webhook at once (``group_wait`` 0 s).

    am = LocalAlertmanager()
    am.start()
    ...  # POST alerts to am.url; am.alerts() lists the active ones
    am.close()
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from statuswatch.errors import HarnessError

#: Debian's name for the alertmanager binary, then upstream's.
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")


def free_port() -> int:
    """A loopback port free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_alertmanager() -> str | None:
    """The installed Alertmanager binary, if any."""
    for name in ALERTMANAGER_BINARIES:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


class LocalServer:
    """A server process on a free loopback port with its own temporary directory,
    ready once ``GET /-/ready`` answers 200 (Alertmanager and Prometheus both serve it)."""

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
        """Start and wait until ready; ``HarnessError`` with the log's tail if it is not."""
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        log = self.log_path.read_text(errors="replace")[-3000:]
        self.stop()
        raise HarnessError(f"{self.name} did not start on port {self.port}:\n{log}")

    def stop(self) -> None:
        """Stop the process (the port and the directory stay for a restart)."""
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


class LocalAlertmanager(LocalServer):
    """Alertmanager grouping by alert and notifying ``receiver_url`` (if given) at once."""

    name = "alertmanager"

    def __init__(self, receiver_url: str | None = None, resolve_timeout: str = "5m") -> None:
        super().__init__()
        binary = find_alertmanager()
        if binary is None:
            raise HarnessError(
                "Alertmanager is not installed (Debian package 'prometheus-alertmanager')"
            )
        self.binary = binary
        receiver: dict[str, Any] = {"name": "local"}
        if receiver_url is not None:
            receiver["webhook_configs"] = [{"url": receiver_url, "send_resolved": True}]
        config = {
            "global": {"resolve_timeout": resolve_timeout},
            "route": {
                "receiver": "local", "group_by": ["..."],
                "group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h",
            },
            "receivers": [receiver],
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
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as resp:
            result: list[dict[str, Any]] = json.loads(resp.read())
        return result
