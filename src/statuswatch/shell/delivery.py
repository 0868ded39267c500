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

How an alert reads for each receiver is in ``alertformat``; one delivery attempt, in
``transports``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import threading
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from statuswatch.config import (
    AlertmanagerSinkConfig,
    DeliveryConfig,
    Rule,
    Settings,
    SinkConfig,
    WebhookSinkConfig,
    sink_name,
)
from statuswatch.core.decide import AlertEvent
from statuswatch.core.rules import severity_of
from statuswatch.shell.alertformat import summary
from statuswatch.shell.state import SnapshotError, open_store
from statuswatch.shell.transports import (
    AlertmanagerTransport,
    KafkaTransport,
    Pending,
    SinkRejected,
    Transport,
    WebhookTransport,
)

log = logging.getLogger(__name__)

#: Delivery outcomes, the ``result`` label of ``statuswatch_alert_deliveries_total``.
RESULTS = ("delivered", "failed", "rejected", "dropped", "expired")




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
