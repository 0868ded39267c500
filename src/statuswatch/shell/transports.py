"""One attempt at delivering a batch of alerts: to Alertmanager and webhooks over a small
HTTP/1.1 client on asyncio streams (one request per connection: POSTing JSON is all it
does, and no dependency is needed for it), or to a Kafka topic."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import ssl
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from statuswatch import __version__
from statuswatch.config import (
    AlertmanagerSinkConfig,
    HttpAuthConfig,
    KafkaConnection,
    KafkaSinkConfig,
    TlsConfig,
    WebhookSinkConfig,
)
from statuswatch.errors import SinkError
from statuswatch.shell.alertformat import SIGNATURE_HEADER, alertmanager_alert, dumps, signature
from statuswatch.shell.kafka_client import client_tls_context, security_kwargs

log = logging.getLogger(__name__)

#: Most bytes of an HTTP answer read (only its status matters).
MAX_RESPONSE_BYTES = 64 * 1024


class SinkRejected(SinkError):
    """The receiver refused the alert for good (an HTTP 4xx): retrying cannot help."""


# --- HTTP --------------------------------------------------------------------

def auth_headers(auth: HttpAuthConfig | None) -> dict[str, str]:
    """The Authorization header of ``auth`` (secret files are read on every call, so
    a rotated secret is picked up)."""
    if auth is None:
        return {}
    try:
        token, password = auth.bearer_token_value(), auth.password_value()
    except OSError as exc:
        raise SinkError(f"cannot read a secret file of a sink: {exc.strerror}") from exc
    if token is not None:
        return {"Authorization": f"Bearer {token}"}
    if auth.username is not None:
        pair = f"{auth.username}:{password or ''}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    return {}


async def http_post(
    url: str, body: bytes, headers: dict[str, str], tls: ssl.SSLContext | None
) -> int:
    """POST ``body`` to ``url`` (HTTP/1.1, one request per connection); the status code.

    The caller bounds the time (``asyncio.timeout``).
    """
    parts = urllib.parse.urlsplit(url)
    https = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if https else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    reader, writer = await asyncio.open_connection(
        host, port, ssl=(tls or ssl.create_default_context()) if https else None,
        server_hostname=host if https else None,
    )
    try:
        lines = [
            f"POST {target} HTTP/1.1", f"Host: {parts.netloc.rpartition('@')[2]}",
            "Content-Type: application/json", f"Content-Length: {len(body)}",
            "Connection: close", f"User-Agent: statuswatch/{__version__}",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        status_line = await reader.readline()
        fields = status_line.split(None, 2)
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
            raise SinkError(f"not an HTTP answer from {host}:{port}")
        status = int(fields[1])
        length = None
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                length = int(value.strip())
        # Read the answer off the wire (bounded); only its status is used.
        if length is None:
            await reader.read(MAX_RESPONSE_BYTES)
        elif length:
            await reader.readexactly(min(length, MAX_RESPONSE_BYTES))
        return status
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def check_status(status: int, url: str) -> None:
    """Raise unless 2xx: ``SinkRejected`` for a 4xx other than 408 and 429."""
    if 200 <= status < 300:
        return
    what = f"{_safe_url(url)} answered HTTP {status}"
    if 400 <= status < 500 and status not in (408, 429):
        raise SinkRejected(what)
    raise SinkError(what)


def _safe_url(url: str) -> str:
    """``url`` without credentials or query, for logs."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _tls_for(urls: Sequence[str], tls: TlsConfig | None, name: str) -> ssl.SSLContext | None:
    if not any(u.startswith("https://") for u in urls):
        return None
    return client_tls_context(tls, f"the alert sink {name}", SinkError)

# --- transports: one attempt at delivering a batch ----------------------------


@dataclass(slots=True)
class Pending:
    """An alert waiting in a sink's queue."""

    alert: dict[str, Any]
    severity: str
    deadline: float  # time.monotonic()


class Transport(Protocol):
    #: most alerts one attempt carries
    max_batch: int

    async def send(self, batch: Sequence[Pending]) -> None:
        """Deliver ``batch`` or raise (``SinkRejected``: for good)."""

    async def close(self) -> None: ...


class AlertmanagerTransport:
    max_batch = 64

    def __init__(
        self, url: str, cfg: AlertmanagerSinkConfig, name: str,
        generator_url: Callable[[], str], clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = f"{url}/api/v2/alerts"
        self.cfg = cfg
        self.tls = _tls_for([url], cfg.tls, name)
        self.generator_url = generator_url
        self.clock = clock

    async def send(self, batch: Sequence[Pending]) -> None:
        now, base = self.clock(), self.generator_url()
        body = json.dumps(
            [alertmanager_alert(p.alert, p.severity, base, now) for p in batch],
            separators=(",", ":"),
        ).encode()
        check_status(
            await http_post(self.url, body, auth_headers(self.cfg.auth), self.tls), self.url
        )

    async def close(self) -> None:
        pass


class WebhookTransport:
    max_batch = 1

    def __init__(
        self, cfg: WebhookSinkConfig, name: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.cfg = cfg
        self.tls = _tls_for([cfg.url], cfg.tls, name)
        self.clock = clock

    async def send(self, batch: Sequence[Pending]) -> None:
        for pending in batch:
            body = dumps(pending.alert)
            headers = {**self.cfg.headers, **auth_headers(self.cfg.auth)}
            try:
                secret = self.cfg.hmac_secret_value()
            except OSError as exc:
                raise SinkError(f"cannot read hmac_secret_file: {exc.strerror}") from exc
            if secret is not None:
                headers[SIGNATURE_HEADER] = signature(secret, int(self.clock()), body)
            check_status(await http_post(self.cfg.url, body, headers, self.tls), self.cfg.url)

    async def close(self) -> None:
        pass


def _make_producer(
    connection: KafkaConnection, security: dict[str, Any], timeout_s: float
) -> Any:
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(
        bootstrap_servers=connection.bootstrap_servers,
        client_id=f"{connection.client_id}-alerts",
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=max(1000, round(timeout_s * 1000)),
        **security,
    )


class KafkaTransport:
    """Produces each alert's JSON keyed by its id; the producer starts on first use, so
    an unreachable cluster is retried like any failed delivery."""

    max_batch = 100

    def __init__(self, cfg: KafkaSinkConfig, connection: KafkaConnection) -> None:
        self.cfg = cfg
        self.connection = connection
        # TLS files and the SASL secret are read now: a mistake there fails at start,
        # not as retries until every alert expires.
        self.security = security_kwargs(connection)
        self._producer: Any = None

    async def send(self, batch: Sequence[Pending]) -> None:
        if self._producer is None:
            producer = _make_producer(self.connection, self.security, self.cfg.timeout_seconds)
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        futures = [
            await self._producer.send(
                self.cfg.topic, value=dumps(p.alert), key=str(p.alert["id"]).encode()
            )
            for p in batch
        ]
        await asyncio.gather(*futures)

    async def close(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None
