"""Dead letters: rejected records, produced to ``kafka.dead_letter_topic``.

Each record the decoder rejects is produced with its original value (cut to
``kafka.dead_letter_max_bytes``) and headers naming where it came from and why:

==========================  =====================================================
header                      value (UTF-8)
==========================  =====================================================
``statuswatch.topic``       source topic
``statuswatch.partition``   source partition
``statuswatch.offset``      source offset
``statuswatch.reason``      one of the decoder's invalid reasons
``statuswatch.size``        the original value's size in bytes
``statuswatch.truncated``   ``true`` when the value was cut, else ``false``
==========================  =====================================================

``submit`` is synchronous and cheap (the consume loop calls it per batch); a
background task hands the letters to an aiokafka producer with at most
``dead_letter_max_in_flight`` unacknowledged. The runner calls ``flush`` before
it commits offsets: a committed record's dead letter has been acknowledged by
the broker (``acks=all``). A letter whose delivery failed is retried; until it
is delivered ``flush`` returns ``False`` and the runner does not commit, so a
crash re-reads the record and produces its letter again (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from statuswatch.config import KafkaConfig
from statuswatch.core.columns import InvalidRecord
from statuswatch.errors import SinkError
from statuswatch.shell.kafka_client import security_kwargs
from statuswatch.shell.sources import RawBatch

log = logging.getLogger(__name__)

HEADER_PREFIX = "statuswatch."
#: Room for the headers and record overhead on top of the value.
_OVERHEAD_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    reason: str
    value: bytes
    size: int

    @classmethod
    def of(cls, batch: RawBatch, bad: InvalidRecord, max_bytes: int) -> DeadLetter:
        """The dead letter of ``batch``'s record ``bad.index``, its value cut to ``max_bytes``.

        >>> import numpy as np
        >>> b = RawBatch("logs", 2, np.array([40, 41]), [b"ok", b"0123456789"])
        >>> DeadLetter.of(b, InvalidRecord(1, "invalid_json"), 4).headers()[2:]
        [('statuswatch.offset', b'41'), ('statuswatch.reason', b'invalid_json'), \
('statuswatch.size', b'10'), ('statuswatch.truncated', b'true')]
        """
        value = batch.values[bad.index]
        return cls(
            batch.topic, batch.partition, int(batch.offsets[bad.index]), bad.reason,
            value[:max_bytes], len(value),
        )

    def key(self) -> bytes:
        """The letters of one source partition share a key (and so a DLQ partition)."""
        return f"{self.topic}:{self.partition}".encode()

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            (HEADER_PREFIX + "topic", self.topic.encode()),
            (HEADER_PREFIX + "partition", str(self.partition).encode()),
            (HEADER_PREFIX + "offset", str(self.offset).encode()),
            (HEADER_PREFIX + "reason", self.reason.encode()),
            (HEADER_PREFIX + "size", str(self.size).encode()),
            (HEADER_PREFIX + "truncated", b"true" if len(self.value) < self.size else b"false"),
        ]


def max_request_size(cfg: KafkaConfig) -> int:
    """A producer's request size that fits the largest dead letter (at least aiokafka's
    default of 1 MiB)."""
    return max(1024 * 1024, cfg.dead_letter_max_bytes + _OVERHEAD_BYTES)


def _make_producer(cfg: KafkaConfig) -> Any:
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(
        bootstrap_servers=cfg.bootstrap_servers,
        client_id=f"{cfg.client_id}-dead-letters",
        acks="all",
        linger_ms=5,
        max_request_size=max_request_size(cfg),
        request_timeout_ms=max(1000, round(cfg.dead_letter_timeout_seconds * 1000)),
        **security_kwargs(cfg),
    )


class DeadLetterQueue:
    """Produces rejected records to ``cfg.dead_letter_topic``; owned by the runner."""

    def __init__(
        self, cfg: KafkaConfig, producer_factory: Callable[[KafkaConfig], Any] = _make_producer
    ) -> None:
        if cfg.dead_letter_topic is None:
            raise ValueError("kafka.dead_letter_topic is not set")
        self.cfg = cfg
        self.topic: str = cfg.dead_letter_topic
        self._factory = producer_factory
        self._producer: Any = None
        self._queue: deque[DeadLetter] = deque()
        self._in_flight: set[asyncio.Future[Any]] = set()
        self._pump: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._room = asyncio.Event()
        self._room.set()
        self.produced = 0
        self.failures = 0

    # --- lifecycle

    async def start(self) -> None:
        self._producer = self._factory(self.cfg)
        try:
            await asyncio.wait_for(self._producer.start(), self.cfg.dead_letter_timeout_seconds * 3)
        except Exception as exc:  # aiokafka raises many types; all mean "cannot start"
            await self._producer.stop()
            self._producer = None
            raise SinkError(
                f"cannot start the dead-letter producer for {self.topic!r}: {exc or exc!r}"
            ) from exc
        self._pump = asyncio.get_running_loop().create_task(self._run(), name="dead-letters")

    async def stop(self, timeout: float | None = None) -> None:
        """Deliver what is pending (within ``timeout``), then stop the producer."""
        if self._producer is None:
            return
        if not await self.flush(timeout):
            log.error(
                "%d dead letters not delivered to %s at shutdown (their records are not "
                "committed and will be re-read)", self.pending, self.topic,
            )
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        for fut in self._in_flight:
            fut.cancel()
        self._in_flight.clear()
        await self._producer.stop()
        self._producer = None

    # --- the consume loop's side

    @property
    def pending(self) -> int:
        """Letters submitted and not yet acknowledged."""
        return len(self._queue) + len(self._in_flight)

    def submit(self, batch: RawBatch, invalid: Sequence[InvalidRecord]) -> None:
        """Queue the dead letters of ``batch``'s rejected records (never blocks)."""
        if not invalid:
            return
        limit = self.cfg.dead_letter_max_bytes
        self._queue.extend(DeadLetter.of(batch, bad, limit) for bad in invalid)
        self._idle.clear()
        self._wake.set()
        if self.pending >= self._max_pending:
            self._room.clear()

    async def wait_for_room(self, stop: asyncio.Event | None = None) -> None:
        """Backpressure: wait while too many letters are pending (or until ``stop``)."""
        if self._room.is_set():
            return
        started = time.monotonic()
        while not self._room.is_set() and not (stop is not None and stop.is_set()):
            waiters = [asyncio.ensure_future(self._room.wait())]
            if stop is not None:
                waiters.append(asyncio.ensure_future(stop.wait()))
            try:
                await asyncio.wait(waiters, timeout=5.0, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
            if not self._room.is_set():
                log.warning(
                    "waiting %.0fs for the dead-letter topic %s: %d letters pending",
                    time.monotonic() - started, self.topic, self.pending,
                )

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted letter is acknowledged; ``False`` on timeout."""
        if self._idle.is_set():
            return True
        if self._producer is None:
            return False
        limit = self.cfg.dead_letter_timeout_seconds if timeout is None else timeout
        try:
            await asyncio.wait_for(self._idle.wait(), limit)
        except TimeoutError:
            return False
        return True

    # --- the producing side

    @property
    def _max_pending(self) -> int:
        # Submitted letters wait here while the in-flight window is full: the
        # window plus one maximal batch, before the consume loop waits.
        return self.cfg.dead_letter_max_in_flight + self.cfg.max_batch_records

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            while self._queue and len(self._in_flight) < self.cfg.dead_letter_max_in_flight:
                letter = self._queue[0]
                try:
                    fut = await self._producer.send(
                        self.topic,
                        value=letter.value,
                        key=letter.key(),
                        headers=letter.headers(),
                    )
                except Exception as exc:  # noqa: BLE001 - retried below; never kill the pump
                    self.failures += 1
                    log.warning("dead letter to %s not accepted: %r", self.topic, exc)
                    await asyncio.sleep(backoff)
                    backoff = min(5.0, backoff * 2)
                    break
                backoff = 0.1
                self._queue.popleft()
                self._in_flight.add(fut)
                fut.add_done_callback(lambda f, letter=letter: self._delivered(f, letter))
            if len(self._in_flight) >= self.cfg.dead_letter_max_in_flight:
                self._wake.clear()
                await self._wake.wait()

    def _delivered(self, fut: asyncio.Future[Any], letter: DeadLetter) -> None:
        self._in_flight.discard(fut)
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            self.failures += 1
            log.warning(
                "dead letter of %s[%d]@%d failed, retrying: %r",
                letter.topic, letter.partition, letter.offset, exc,
            )
            self._queue.appendleft(letter)  # order within the DLQ is best effort
        else:
            self.produced += 1
        if self.pending < self._max_pending:
            self._room.set()
        if not self._queue and not self._in_flight:
            self._idle.set()
        self._wake.set()


class DeadLetterCollector(Collector):
    """``statuswatch_dead_letters_total{result}`` and ``statuswatch_dead_letters_pending``."""

    def __init__(self, queue: DeadLetterQueue) -> None:
        self.queue = queue

    def collect(self) -> Iterator[Metric]:
        letters = CounterMetricFamily(
            "statuswatch_dead_letters",
            "Rejected records sent to kafka.dead_letter_topic: produced (acknowledged), "
            "failed (an attempt failed; retried).", labels=["result"],
        )
        letters.add_metric(["produced"], self.queue.produced)
        letters.add_metric(["failed"], self.queue.failures)
        yield letters
        yield GaugeMetricFamily(
            "statuswatch_dead_letters_pending",
            "Dead letters not yet acknowledged (offsets past them wait to be committed).",
            value=self.queue.pending,
        )
