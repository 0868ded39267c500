"""The operational HTTP endpoint: ``/metrics``, ``/ready``, ``/healthz``, optionally over TLS.

A stdlib ``ThreadingHTTPServer`` in a daemon thread, so a scrape never waits
for the asyncio loop and a stalled loop is still reported (``/healthz`` 503).

- ``GET /metrics``: the registry, in the format the scraper's ``Accept`` asks for
  (Prometheus text, or OpenMetrics).
- ``GET /ready``: 200 ``ready`` while consuming normally, else 503 and the reason.
- ``GET /healthz``: 200 ``ok`` while the event loop beats, else 503.
- ``GET /alerts``: the alerts firing now, a JSON array of the objects the JSON-lines
  output writes (``?id=`` picks one alert; Alertmanager's ``generatorURL`` links there).
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from statuswatch.shell.health import liveness, readiness
from statuswatch.shell.metrics import RuntimeStatus

log = logging.getLogger(__name__)

#: The paths the metrics listener serves.
ENDPOINTS = ("/metrics", "/ready", "/healthz", "/alerts")

#: Seconds a client may take to send its request (and to finish the TLS handshake).
CLIENT_TIMEOUT_SECONDS = 10.0


class EndpointServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        registry: CollectorRegistry,
        status: RuntimeStatus | None,
        heartbeat_timeout_s: float,
        tls: ssl.SSLContext | None,
        alerts: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.registry = registry
        self.alerts = alerts
        self.status = status
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.tls = tls
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # In the request's own thread: a slow TLS handshake blocks only itself.
        if self.tls is not None:
            request.settimeout(CLIENT_TIMEOUT_SECONDS)
            try:
                tls_request = self.tls.wrap_socket(request, server_side=True)
            except OSError as exc:  # ssl.SSLError included
                log.debug("TLS handshake with %s failed: %s", client_address, exc)
                return
            try:
                super().finish_request(tls_request, client_address)
            finally:
                tls_request.close()
            return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A request that failed: a client that hung up mid-response (a scrape cut at its
        timeout, a probe gone) is routine and logged at debug; anything else is one
        ERROR line with its traceback, in the log rather than on bare stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("client %s went away: %s", client_address, exc)
            return
        log.error("request from %s failed", client_address, exc_info=exc)

    def shutdown(self) -> None:
        """Stop serving and close the listening socket."""
        super().shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: EndpointServer
    timeout = CLIENT_TIMEOUT_SECONDS
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._respond(head=False)

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def _respond(self, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        srv = self.server
        status, now = srv.status, time.monotonic()
        if path == "/metrics":
            try:
                encoder, ctype = choose_encoder(self.headers.get("Accept", ""))
                body = encoder(srv.registry)
            except Exception:
                log.exception("collecting metrics failed")
                self._send(500, b"collecting metrics failed\n", head)
                return
            self._send(200, body, head, ctype)
        elif path in ("/ready", "/healthz"):
            if status is None:
                ok, why = True, "ok (no runtime status)"
            elif path == "/ready":
                ok, why = readiness(status, now, srv.heartbeat_timeout_s)
            else:
                ok, why = liveness(status, now, srv.heartbeat_timeout_s)
            self._send(200 if ok else 503, (why + "\n").encode(), head)
        elif path == "/alerts" and srv.alerts is not None:
            query = urllib.parse.parse_qs(self.path.partition("?")[2])
            alerts = srv.alerts()
            if "id" in query:
                alerts = [a for a in alerts if a.get("id") in query["id"]]
            body = json.dumps(alerts, separators=(",", ":")).encode() + b"\n"
            self._send(200, body, head, "application/json")
        elif path == "/":
            self._send(200, f"statuswatch: {' '.join(ENDPOINTS)}\n".encode(), head)
        else:
            self._send(404, b"not found\n", head)

    def _send(
        self, code: int, body: bytes, head: bool, ctype: str = "text/plain; charset=utf-8"
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context (TLS 1.2+) from PEM files."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def serve(
    registry: CollectorRegistry,
    host: str,
    port: int,
    *,
    status: RuntimeStatus | None = None,
    tls_cert_file: str | None = None,
    tls_key_file: str | None = None,
    heartbeat_timeout_s: float = 10.0,
    alerts: Callable[[], list[dict[str, Any]]] | None = None,
) -> tuple[EndpointServer, int]:
    """Serve ``/metrics``, ``/ready`` and ``/healthz`` on ``host:port`` (0 picks a free
    port) in a daemon thread; returns the server (``.shutdown()`` stops it and closes
    the socket) and its port. ``status`` defaults to the one ``build_registry`` attached;
    ``alerts`` (the firing alerts) is served on ``/alerts``."""
    if status is None:
        status = getattr(registry, "status", None)
    tls = None
    if tls_cert_file is not None or tls_key_file is not None:
        if tls_cert_file is None or tls_key_file is None:
            raise ValueError("TLS needs both a certificate and a key file")
        tls = tls_context(tls_cert_file, tls_key_file)
    server = EndpointServer((host, port), registry, status, heartbeat_timeout_s, tls, alerts)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2},
        name="statuswatch-http", daemon=True,
    )
    thread.start()
    return server, int(server.server_port)
