"""The operational endpoint: /metrics, /ready, /healthz, TLS."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from statuswatch import __version__
from statuswatch.config import Settings
from statuswatch.core.detector import Detector
from statuswatch.errors import ConfigError
from statuswatch.shell.http import serve
from statuswatch.shell.metrics import RuntimeStatus, build_registry


def get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


@pytest.fixture
def endpoint() -> Iterator[tuple[RuntimeStatus, str]]:
    status = RuntimeStatus()
    server, port = serve(build_registry(Detector(Settings()), status), "127.0.0.1", 0)
    try:
        yield status, f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()


def test_metrics_has_the_blind_spot_metrics(endpoint):
    status, base = endpoint
    code, ctype, body = get(base + "/metrics")
    assert code == 200
    assert ctype.startswith("text/plain; version=")
    req = urllib.request.Request(
        base + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
        assert resp.read().decode().endswith("# EOF\n")
    assert f'statuswatch_build_info{{version="{__version__}"}} 1.0' in body
    for line in ("statuswatch_broker_up 0.0", "statuswatch_ready 0.0",
                 "statuswatch_event_loop_lag_seconds 0.0",
                 "statuswatch_consumer_stalled_seconds 0.0"):
        assert f"\n{line}\n" in body
    assert "\nstatuswatch_snapshot_age_seconds " not in body  # no snapshot yet: absent
    status.last_snapshot_unix = time.time() - 30
    status.broker_up, status.event_loop_lag_seconds = True, 0.25
    status.consumer_lag = {0: 7, 1: 0}
    body = get(base + "/metrics")[2]
    age = float(body.split("\nstatuswatch_snapshot_age_seconds ")[1].split()[0])
    assert 29 < age < 40
    assert "\nstatuswatch_broker_up 1.0\n" in body
    assert "\nstatuswatch_event_loop_lag_seconds 0.25\n" in body
    assert 'statuswatch_consumer_lag{partition="0"} 7.0' in body


def test_ready_says_why_not(endpoint):
    status, base = endpoint
    assert get(base + "/ready")[::2] == (503, "starting\n")
    status.not_ready_reason = "no fetch response from the broker for partitions 0 for 12s"
    assert get(base + "/ready")[::2] == (503, status.not_ready_reason + "\n")
    status.ready = True
    status.last_heartbeat_monotonic = time.monotonic()
    assert get(base + "/ready")[::2] == (200, "ready\n")


def test_healthz_follows_the_loop_heartbeat(endpoint):
    status, base = endpoint
    status.last_heartbeat_monotonic = time.monotonic()
    assert get(base + "/healthz")[::2] == (200, "ok\n")
    status.ready = True
    status.last_heartbeat_monotonic = time.monotonic() - 60  # the loop stopped beating
    code, _, body = get(base + "/healthz")
    assert code == 503 and body.startswith("event loop silent for 6")
    assert get(base + "/ready")[0] == 503


def test_unknown_paths_and_methods(endpoint):
    _, base = endpoint
    assert get(base + "/nope")[0] == 404
    req = urllib.request.Request(base + "/metrics", method="POST", data=b"x")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == 501
    info.value.close()
    head = urllib.request.Request(base + "/ready", method="HEAD")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(head, timeout=5)
    assert info.value.code == 503
    info.value.close()


def test_shutdown_frees_the_port():
    server, port = serve(build_registry(Detector(Settings()), RuntimeStatus()), "127.0.0.1", 0)
    server.shutdown()
    again, port2 = serve(build_registry(Detector(Settings()), RuntimeStatus()), "127.0.0.1", port)
    again.shutdown()
    assert port2 == port


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:  # a missing tool must fail the suite, not hide the TLS test
        pytest.fail("openssl is needed to make a test certificate", pytrace=False)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def test_tls(tmp_path: Path):
    cert, key = self_signed(tmp_path)
    status = RuntimeStatus(ready=True)
    server, port = serve(
        build_registry(Detector(Settings()), status), "127.0.0.1", 0,
        tls_cert_file=str(cert), tls_key_file=str(key),
    )
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        code, _, body = get(f"https://127.0.0.1:{port}/metrics", trusted)
        assert code == 200 and "statuswatch_build_info" in body
        assert get(f"https://127.0.0.1:{port}/ready", trusted)[::2] == (200, "ready\n")
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            get(f"https://127.0.0.1:{port}/metrics", ssl.create_default_context())
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            get(f"http://127.0.0.1:{port}/metrics")  # plain HTTP is not served
        # the server survived the bad clients
        assert get(f"https://127.0.0.1:{port}/healthz", trusted)[0] == 200
    finally:
        server.shutdown()


@pytest.mark.parametrize("keys", [{"tls_cert_file": "c.pem"}, {"tls_key_file": "k.pem"}])
def test_tls_needs_cert_and_key(keys: dict[str, Any]):
    from statuswatch.config import load_settings

    with pytest.raises(ConfigError, match=r"metrics: .*set together"):
        load_settings(None, metrics=keys)


class _BigCollector:
    """Several megabytes of samples: a response a client can hang up in the middle of."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("big", "Many series.", labels=["n"])
        for n in range(100_000):
            family.add_metric([str(n)], float(n))
        yield family


def test_a_client_hanging_up_mid_response_is_a_debug_line_not_a_traceback(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
):
    """A scrape cut at its timeout resets the connection while /metrics is written: no
    traceback on stderr (the stdlib server's default), one debug line; the server goes on."""
    import socket
    import struct

    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(_BigCollector())  # type: ignore[arg-type]
    caplog.set_level("DEBUG", logger="statuswatch.shell.http")
    server, port = serve(registry, "127.0.0.1", 0, status=RuntimeStatus())
    try:
        for _ in range(3):
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            client.recv(1)  # the response has started
            # close with a reset (linger 0): the server's next writes fail
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
            "went away" in r.getMessage() for r in caplog.records
        ):
            time.sleep(0.05)
        assert any("went away" in r.getMessage() and r.levelname == "DEBUG"
                   for r in caplog.records)
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    finally:
        server.shutdown()
    assert "Traceback" not in capfd.readouterr().err


def test_any_other_request_failure_is_one_error_line_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
):
    server, _ = serve(build_registry(Detector(Settings()), RuntimeStatus()), "127.0.0.1", 0)
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            server.handle_error(None, ("127.0.0.1", 1))
    finally:
        server.shutdown()
    [record] = [r for r in caplog.records if r.name == "statuswatch.shell.http"]
    assert record.levelname == "ERROR" and record.exc_info is not None
    assert "127.0.0.1" in record.getMessage()
