"""Alert delivery beyond the JSON lines: Alertmanager, webhooks, a Kafka topic.

The consume loop only enqueues (``AlertDelivery.write`` never awaits). Each sink
(each Alertmanager URL on its own) has a bounded queue drained by one task that
retries failed attempts with exponential backoff and jitter until the alert's
delivery deadline. Delivery is at least once: an alert leaves the queue only when
the receiver acknowledged it (2xx, or the broker's ``acks=all``), or when it is
counted and logged as ``dropped`` (queue full), ``rejected`` (a 4xx answer, which
retrying cannot fix) or ``expired`` (its deadline passed). Firing alerts are sent
to Alertmanager again every ``resend_interval_seconds``, so an incident longer
than Alertmanager's ``resolve_timeout`` stays open there.

The HTTP client is a small HTTP/1.1 one on asyncio streams (one request per
connection): POSTing JSON is all it does, and no dependency is needed for it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import random
import socket
import ssl
import threading
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from statuswatch import __version__
from statuswatch.config import (
    AlertmanagerSinkConfig,
    DeliveryConfig,
    HttpAuthConfig,
    KafkaConnection,
    KafkaSinkConfig,
    Rule,
    Settings,
    SinkConfig,
    TlsConfig,
    WebhookSinkConfig,
    sink_name,
)
from statuswatch.core.columns import NO_RESPONSE, VOLUME_CODE, code_label
from statuswatch.core.decide import AlertEvent
from statuswatch.core.rules import severity_of
from statuswatch.errors import SinkError
from statuswatch.shell.sources import client_tls_context, security_kwargs
from statuswatch.shell.state import SnapshotError, open_store

log = logging.getLogger(__name__)

ALERTNAME = "StatusCodeAnomaly"
#: How a volume series' code reads in an alert.
VOLUME_LABEL = code_label(VOLUME_CODE)
#: Delivery outcomes, the ``result`` label of ``statuswatch_alert_deliveries_total``.
RESULTS = ("delivered", "failed", "rejected", "dropped", "expired")
#: Contributors named in an Alertmanager description, per scope level (services,
#: routes, apps): the frozen apps matter as much as the services they call.
DESCRIBED_PER_LEVEL = 3
#: Most bytes of an HTTP answer read (only its status matters).
MAX_RESPONSE_BYTES = 64 * 1024
SIGNATURE_HEADER = "X-Statuswatch-Signature"


class SinkRejected(SinkError):
    """The receiver refused the alert for good (an HTTP 4xx): retrying cannot help."""


# --- the alert as each receiver wants it ------------------------------------


def iso_time(epoch_s: float) -> str:
    """RFC 3339 in UTC, as Alertmanager's API takes it.

    >>> iso_time(1680566400.5)
    '2023-04-04T00:00:00.500000Z'
    """
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _code_text(alert: dict[str, Any]) -> str:
    # The JSON carries a status as a number, a volume or class series by its label.
    return str(alert["code"])


def _scope_text(scope: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in scope.items()) or "fleet"


def summary(alert: dict[str, Any]) -> str:
    """One line: what moved where.

    >>> summary({"code": 403, "direction": "up", "scope": {"service": "auth"}})
    'HTTP 403 share rose in service=auth'
    >>> summary({"code": "all", "direction": "down", "scope": {}})
    'Request volume fell in fleet'
    >>> summary({"code": 0, "direction": "up", "scope": {}})
    'HTTP 0 (no response) share rose in fleet'
    """
    code = _code_text(alert)
    what = "Request volume" if code == VOLUME_LABEL else f"HTTP {code} share"
    if code == str(NO_RESPONSE):
        what = f"HTTP {code} (no response) share"
    moved = "rose" if alert["direction"] == "up" else "fell"
    return f"{what} {moved} in {_scope_text(alert['scope'])}"


def description(alert: dict[str, Any]) -> str:
    """The evidence and the top contributors with their observed and expected counts.

    >>> a = {"code": 403, "direction": "up", "signal": "share", "scope": {},
    ...      "observed": {"share": 0.25, "count": 250}, "expected": {"share": 0.01, "count": 10},
    ...      "total": 1000, "score": 42.0, "contributors": [
    ...          {"scope": {"app": "a7"}, "observed": {"count": 120}, "expected": {"count": 2.5}}]}
    >>> text = description(a)
    >>> text.split(" (")[0]
    'HTTP 403 share rose in fleet: 25.00% vs 1.00% expected'
    >>> text.split("). ")[1]
    'Top contributors: app=a7 120 observed vs 2.5 expected.'
    """
    obs, exp = alert["observed"], alert["expected"]
    text = (
        f"{summary(alert)}: {obs['share']:.2%} vs {exp['share']:.2%} expected "
        f"({obs['count']} of {alert['total']} requests, {exp['count']:g} expected; "
        f"score {alert['score']:.1f}, signal {alert['signal']})."
    )
    top = top_contributors(alert.get("contributors") or [])
    if top:
        named = "; ".join(
            f"{_scope_text(c['scope'])} {c['observed']['count']} observed vs "
            f"{c['expected']['count']:g} expected"
            for c in top
        )
        text += f" Top contributors: {named}."
    return text


def top_contributors(contributors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first ``DESCRIBED_PER_LEVEL`` contributors of each scope level (the detector
    lists them by level, largest excess first).

    >>> c = [{"scope": {"service": s}} for s in "abcd"] + [{"scope": {"app": "x"}}]
    >>> [next(iter(x["scope"].values())) for x in top_contributors(c)]
    ['a', 'b', 'c', 'x']
    """
    per_level: Counter[tuple[str, ...]] = Counter()
    out = []
    for contributor in contributors:
        level = tuple(contributor["scope"])
        per_level[level] += 1
        if per_level[level] <= DESCRIBED_PER_LEVEL:
            out.append(contributor)
    return out


def alertmanager_alert(
    alert: dict[str, Any], severity: str, generator_url: str, now_s: float
) -> dict[str, Any]:
    """One alert of Alertmanager's ``POST /api/v2/alerts`` body.

    Firing alerts carry no ``endsAt``: Alertmanager keeps them for its
    ``resolve_timeout`` after the last send. A resolved alert ends at its window's
    end (never later than ``now_s``: a future end would keep it open).
    """
    labels = {
        "alertname": ALERTNAME,
        "code": _code_text(alert),
        "direction": alert["direction"],
        "signal": alert["signal"],
        **alert["scope"],
        "severity": severity,
    }
    out: dict[str, Any] = {
        "labels": labels,
        "annotations": {
            "summary": summary(alert),
            "description": description(alert),
            "alert_id": alert["id"],
        },
        "startsAt": iso_time(alert["episode_start"]),
        "generatorURL": f"{generator_url}?id={alert['id']}",
    }
    if alert["state"] == "resolved":
        out["endsAt"] = iso_time(min(alert["window_end"], now_s))
    return out


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The webhook signature header's value: ``t=<unix seconds>,sha256=<hex>``, the
    HMAC-SHA256 of ``<t>.<body>`` under the shared secret (the timestamp is signed too,
    so a receiver can refuse old replays).

    >>> signature("s3cret", 1700000000, b'{"id":"a"}')[:40]
    't=1700000000,sha256=5728bde1960c1b8c3818'
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},sha256={mac.hexdigest()}"


def dumps(alert: dict[str, Any]) -> bytes:
    return json.dumps(alert, separators=(",", ":")).encode()


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


# --- one sink: its queue, its retries -----------------------------------------


class SinkWorker:
    """A bounded queue of alerts and the task that delivers them through ``transport``."""

    def __init__(
        self, name: str, transport: Transport, cfg: DeliveryConfig,
        clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None,
        resends: bool = False,
    ) -> None:
        self.name = name
        self.transport = transport
        self.cfg = cfg
        self.clock = clock
        self.rng = rng or random.Random()
        #: whether firing alerts are re-sent periodically (Alertmanager)
        self.resends = resends
        self.queue: deque[Pending] = deque()
        self.results: Counter[str] = Counter({r: 0 for r in RESULTS})
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._failures = 0  # consecutive failed attempts

    def submit(self, alert: dict[str, Any], severity: str, *, resend: bool = False) -> None:
        """Queue ``alert`` (never blocks). A re-send of an alert still queued is skipped;
        a full queue drops its oldest alert, counted and logged."""
        if resend and any(
            p.alert["id"] == alert["id"] and p.alert["state"] == alert["state"] for p in self.queue
        ):
            return
        if len(self.queue) >= self.cfg.queue_size:
            lost = self.queue.popleft()
            self.results["dropped"] += 1
            log.error(
                "alert sink %s: queue full (%d), dropped %s alert %s", self.name,
                self.cfg.queue_size, lost.alert["state"], lost.alert["id"],
            )
        self.queue.append(Pending(alert, severity, self.clock() + self.cfg.deadline_seconds))
        self._idle.clear()
        self._wake.set()

    def take_over(self, other: SinkWorker) -> None:
        """Deliver ``other``'s queued alerts (in order) and go on with its counts: the
        same sink, reconfigured."""
        self.queue.extend(other.queue)
        other.queue.clear()
        self.results.update(other.results)
        if self.queue:
            self._idle.clear()
            self._wake.set()

    def _expire(self) -> None:
        now = self.clock()
        for pending in [p for p in self.queue if p.deadline <= now]:
            self.queue.remove(pending)
            self.results["expired"] += 1
            log.error(
                "alert sink %s: %s alert %s (%s) not delivered within %gs; given up",
                self.name, pending.alert["state"], pending.alert["id"], summary(pending.alert),
                self.cfg.deadline_seconds,
            )

    def backoff(self, failures: int) -> float:
        """Seconds before the next attempt: exponential, half of it jitter.

        >>> w = SinkWorker("x", None, DeliveryConfig(backoff_initial_seconds=1,  # type: ignore
        ...                backoff_max_seconds=8), rng=random.Random(1))
        >>> [0.5 <= w.backoff(1) <= 1, 4 <= w.backoff(4) <= 8, 4 <= w.backoff(30) <= 8]
        [True, True, True]
        """
        cap = min(
            self.cfg.backoff_max_seconds,
            self.cfg.backoff_initial_seconds * 2.0 ** min(failures - 1, 60),
        )
        return cap / 2 + self.rng.uniform(0, cap / 2)

    async def run(self) -> None:
        while True:
            self._expire()
            if not self.queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self.queue[i] for i in range(min(len(self.queue), self.transport.max_batch))]
            try:
                async with asyncio.timeout(self.cfg.timeout_seconds):
                    await self.transport.send(batch)
            except SinkRejected as exc:
                self._settle(batch, "rejected")
                log.error("alert sink %s: %d alerts rejected: %s", self.name, len(batch), exc)
            except Exception as exc:  # noqa: BLE001 - any failure is retried until the deadline
                self.results["failed"] += len(batch)
                self._failures += 1
                delay = self.backoff(self._failures)
                log.warning(
                    "alert sink %s: delivery of %d alerts failed (attempt %d, %s); retrying "
                    "in %.1fs", self.name, len(batch), self._failures,
                    str(exc) or type(exc).__name__, delay,
                )
                await asyncio.sleep(delay)
            else:
                if self._failures:
                    log.info("alert sink %s: delivering again", self.name)
                self._failures = 0
                self._settle(batch, "delivered")

    def _settle(self, batch: list[Pending], result: str) -> None:
        for pending in batch:
            with contextlib.suppress(ValueError):  # dropped meanwhile: counted already
                self.queue.remove(pending)
                self.results[result] += 1

    async def drain(self, timeout: float) -> bool:
        """Wait until the queue is empty; False after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


# --- every sink together -------------------------------------------------------


class FiringAlerts:
    """The alerts firing now, as their JSON objects; read by the HTTP thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, tuple[dict[str, Any], str]] = {}

    def keep_only(self, ids: set[str]) -> int:
        """Forget the alerts whose id is not in ``ids``; how many were forgotten."""
        with self._lock:
            stale = [i for i in self._by_id if i not in ids]
            for i in stale:
                del self._by_id[i]
        return len(stale)

    def update(self, alert: dict[str, Any], severity: str) -> None:
        with self._lock:
            if alert["state"] == "firing":
                self._by_id[alert["id"]] = (alert, severity)
            else:
                self._by_id.pop(alert["id"], None)

    def severity(self, alert_id: str) -> str | None:
        """The severity a firing alert was sent with (None if it is not firing)."""
        with self._lock:
            found = self._by_id.get(alert_id)
        return None if found is None else found[1]

    def items(self) -> list[tuple[dict[str, Any], str]]:
        with self._lock:
            return list(self._by_id.values())

    def alerts(self) -> list[dict[str, Any]]:
        """The firing alerts, oldest episode first (``GET /alerts``)."""
        return sorted((a for a, _ in self.items()), key=lambda a: (a["episode_start"], a["id"]))


class LineSink(Protocol):
    def write(self, events: list[AlertEvent]) -> None: ...
    def flush(self) -> None: ...


def default_external_url(host: str, port: int) -> str:
    """The metrics listener's URL when ``alerts.external_url`` is not set.

    >>> default_external_url("127.0.0.1", 9464)
    'http://127.0.0.1:9464'
    >>> default_external_url("::1", 9464)
    'http://[::1]:9464'
    """
    if host in ("", "0.0.0.0", "::"):
        host = socket.getfqdn()
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class AlertDelivery:
    """The runner's sink: JSON lines first, then ``/alerts`` and every configured sink.

    ``write`` never blocks; ``start`` and ``stop`` run the sinks' tasks. With
    ``state.dir`` the firing alerts are kept in ``<state.dir>/alerts`` (written when
    alerts change), so after a restart ``/alerts`` and the re-sends to Alertmanager go
    on for an incident that still fires; ``still_firing`` (the detector's firing alert
    ids, after its own restore) prunes those that no longer do at each re-send.
    """

    def __init__(
        self, settings: Settings, lines: LineSink, external_url: str | None = None,
        workers: list[SinkWorker] | None = None,
        still_firing: Callable[[], set[str]] | None = None,
    ) -> None:
        self.lines = lines
        self.rules: list[Rule] = list(settings.detect.rules)
        self.firing = FiringAlerts()
        self.still_firing = still_firing
        self.store = (
            open_store(settings.state.dir, keep=2, subdir="alerts")
            if settings.state.dir else None
        )
        self._load_firing()
        m = settings.metrics
        self.external_url = (
            settings.alerts.external_url or external_url or default_external_url(m.host, m.port)
        )
        #: each configured sink by name: its configuration and its workers
        self._sinks: dict[str, tuple[SinkConfig, list[SinkWorker]]] = {}
        if workers is None:
            self._sinks = self._build_sinks(settings, {})
            workers = [w for _, ws in self._sinks.values() for w in ws]
        self.workers = workers
        self._resend_every = resend_interval(settings)
        self._worker_tasks: dict[int, asyncio.Task[None]] = {}  # id(worker) -> its task
        self._resend_task: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._started = False

    def _build_sinks(
        self, settings: Settings, keep: dict[str, tuple[SinkConfig, list[SinkWorker]]]
    ) -> dict[str, tuple[SinkConfig, list[SinkWorker]]]:
        """Workers for ``alerts.sinks``: those in ``keep`` under the same name and
        configuration are reused, the others built (``SinkError`` if one cannot be)."""
        out = {}
        for i, cfg in enumerate(settings.alerts.sinks):
            name = sink_name(cfg, i)
            kept = keep.get(name)
            out[name] = (cfg, kept[1] if kept is not None and kept[0] == cfg else
                         build_workers(cfg, name, settings, self.generator_url))
        return out

    def reconfigure(self, settings: Settings) -> None:
        """Deliver to the sinks of ``settings.alerts.sinks`` from now on (a reload).

        A sink whose name and configuration stay keeps its workers and queue; one whose
        configuration changed gets new workers that take over its queued alerts (an
        attempt in flight is repeated: at least once); a new sink is sent every alert
        firing now; a removed sink's queue is dropped, logged. Rule severities follow
        ``detect.rules``. Raises ``SinkError`` before changing anything if a new sink
        cannot be built (a TLS or secret file).
        """
        sinks = self._build_sinks(settings, self._sinks)
        kept_ids = {id(w) for _, ws in sinks.values() for w in ws}
        old_workers = {w.name: w for w in self.workers}
        retired = [w for w in self.workers if id(w) not in kept_ids]
        added = [w for _, ws in sinks.values() for w in ws if id(w) not in
                 {id(o) for o in self.workers}]
        for worker in added:
            before = old_workers.get(worker.name)
            if before is not None:  # same name, new configuration: its queue moves over
                worker.take_over(before)
            else:
                for alert, severity in self.firing.items():
                    worker.submit(alert, severity)
        for worker in retired:
            if worker.queue:
                log.warning("alert sink %s removed by a reload: %d queued alerts dropped: %s",
                            worker.name, len(worker.queue),
                            ", ".join(p.alert["id"] for p in worker.queue))
                worker.queue.clear()
        self.rules = list(settings.detect.rules)
        self._sinks = sinks
        self.workers = [w for _, ws in sinks.values() for w in ws]
        resend_every = resend_interval(settings)
        if not self._started:
            self._resend_every = resend_every
            return  # not started: start() starts what is configured then
        loop = asyncio.get_running_loop()
        for worker in retired:
            task = self._worker_tasks.pop(id(worker), None)
            if task is not None:
                task.cancel()
            closing = loop.create_task(worker.transport.close(), name=f"close-{worker.name}")
            self._retiring.add(closing)
            closing.add_done_callback(self._retiring.discard)
        for worker in added:
            self._start_worker(loop, worker)
        if resend_every != self._resend_every:
            self._resend_every = resend_every
            if self._resend_task is not None:
                self._resend_task.cancel()
                self._resend_task = None
            self._start_resends(loop)

    def generator_url(self) -> str:
        return f"{self.external_url}/alerts"

    def write(self, events: list[AlertEvent]) -> None:
        self.lines.write(events)
        for event in events:
            alert = event.to_json()
            # An episode keeps its severity (a reload may change the rules): Alertmanager
            # tells alerts apart by their labels.
            severity = self.firing.severity(event.id) or severity_of(
                self.rules, event.scope, event.code, event.signal)
            self.firing.update(alert, severity)
            for worker in self.workers:
                worker.submit(alert, severity)
        if events:
            self._save_firing()

    def _load_firing(self) -> None:
        if self.store is None:
            return
        try:
            state = self.store.load()
        except SnapshotError as exc:
            log.error("firing alerts not restored: %s", exc)
            return
        for alert, severity in (state or {}).get("firing", []):
            self.firing.update(alert, severity)

    def _save_firing(self) -> None:
        if self.store is None:
            return
        try:
            self.store.write({"firing": [[a, s] for a, s in self.firing.items()]})
        except OSError as exc:  # the alerts went out; only a restart would forget them
            log.error("cannot save the firing alerts in %s: %s", self.store.directory,
                      exc.strerror)

    def flush(self) -> None:
        self.lines.flush()

    def resend_firing(self) -> None:
        """Queue every firing alert again for the sinks that re-send (Alertmanager)."""
        if self.still_firing is not None and self.firing.keep_only(self.still_firing()):
            self._save_firing()
        items = self.firing.items()
        for worker in self.workers:
            if worker.resends:
                for alert, severity in items:
                    worker.submit(alert, severity, resend=True)

    async def _resend_loop(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.resend_firing()

    def _start_worker(self, loop: asyncio.AbstractEventLoop, worker: SinkWorker) -> None:
        self._worker_tasks[id(worker)] = loop.create_task(
            worker.run(), name=f"alert-sink-{worker.name}")

    def _start_resends(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._resend_every is not None:
            self._resend_task = loop.create_task(
                self._resend_loop(self._resend_every), name="alert-resend")

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._started = True
        for worker in self.workers:
            self._start_worker(loop, worker)
        self._start_resends(loop)

    async def stop(self, timeout: float) -> None:
        """Deliver what is queued within ``timeout`` seconds; log and count what is not."""
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            if not await worker.drain(max(0.0, deadline - time.monotonic())):
                worker.results["expired"] += len(worker.queue)
                log.error(
                    "alert sink %s: %d alerts not delivered at shutdown: %s", worker.name,
                    len(worker.queue), ", ".join(p.alert["id"] for p in worker.queue),
                )
                worker.queue.clear()
        tasks = [*self._worker_tasks.values(), *filter(None, [self._resend_task])]
        for task in tasks:
            task.cancel()
        for task in [*tasks, *self._retiring]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._worker_tasks, self._resend_task, self._started = {}, None, False
        for worker in self.workers:
            await worker.transport.close()


def resend_interval(settings: Settings) -> float | None:
    """How often firing alerts are re-sent: the shortest Alertmanager sink's interval."""
    return min(
        (cfg.resend_interval_seconds for cfg in settings.alerts.sinks
         if isinstance(cfg, AlertmanagerSinkConfig)), default=None,
    )


def build_workers(
    cfg: SinkConfig, name: str, settings: Settings, generator_url: Callable[[], str]
) -> list[SinkWorker]:
    """The workers of one configured sink: one per Alertmanager URL."""
    if isinstance(cfg, AlertmanagerSinkConfig):
        return [
            SinkWorker(
                name if len(cfg.urls) == 1 else f"{name}@{urllib.parse.urlsplit(url).netloc}",
                AlertmanagerTransport(url, cfg, name, generator_url), cfg, resends=True,
            )
            for url in cfg.urls
        ]
    if isinstance(cfg, WebhookSinkConfig):
        return [SinkWorker(name, WebhookTransport(cfg, name), cfg)]
    return [SinkWorker(name, KafkaTransport(cfg, cfg.cluster or settings.kafka), cfg)]


class DeliveryCollector(Collector):
    """``statuswatch_alert_deliveries_total{sink,result}`` and ``statuswatch_alert_queue{sink}``."""

    def __init__(self, delivery: AlertDelivery) -> None:
        self.delivery = delivery

    def collect(self) -> Iterator[Metric]:
        deliveries = CounterMetricFamily(
            "statuswatch_alert_deliveries",
            "Alerts handed to a sink, by outcome: delivered; failed (an attempt failed, "
            "retried); rejected (4xx); dropped (queue full); expired (deadline passed).",
            labels=["sink", "result"],
        )
        queued = GaugeMetricFamily(
            "statuswatch_alert_queue", "Alerts waiting in a sink's queue.", labels=["sink"]
        )
        for worker in self.delivery.workers:
            for result in RESULTS:
                deliveries.add_metric([worker.name, result], worker.results[result])
            queued.add_metric([worker.name], len(worker.queue))
        yield deliveries
        yield queued
