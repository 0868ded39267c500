"""The asyncio shell around the pure detector: poll, process, emit, checkpoint.

Each poll's batches go through the detector; closed windows are evaluated and
their alerts emitted; then, when due, the ``Checkpoint`` runs its ordered steps
(flush sinks, snapshot, wait for dead-letter acks, commit). The ``OffsetLedger``
says what may be committed: never a record still held in an open window, so a
crash re-reads exactly what had not been accounted for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from statuswatch.config import Settings
from statuswatch.core.decide import AlertEvent
from statuswatch.core.detector import Detector
from statuswatch.errors import SourceError, UnreadablePartitionError
from statuswatch.shell.checkpoint import Checkpoint
from statuswatch.shell.deadletter import DeadLetterQueue
from statuswatch.shell.health import BrokerProbe, HealthMonitor, report_unreadable, source_probe
from statuswatch.shell.kafka_source import KafkaSource
from statuswatch.shell.metrics import RuntimeStatus
from statuswatch.shell.offsets import OffsetLedger
from statuswatch.shell.processing import process_batch
from statuswatch.shell.sinks import Sink
from statuswatch.shell.sources import RawBatch

log = logging.getLogger(__name__)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class KafkaRunner:
    """Consume from Kafka until ``stop()``; commit after alerts are flushed."""

    def __init__(
        self,
        settings: Settings,
        detector: Detector,
        sink: Sink,
        status: RuntimeStatus | None = None,
        clock: Callable[[], int] = wall_ms,
        on_events: Callable[[list[AlertEvent]], None] | None = None,
        source: KafkaSource | None = None,
    ) -> None:
        self.settings = settings
        self.detector = detector
        self.sink = sink
        self.status = status or RuntimeStatus()
        self.clock = clock
        self.on_events = on_events
        self.source = KafkaSource(settings.kafka) if source is None else source
        self._stop = asyncio.Event()
        # late bound: a restored detector may hold new windows, a test another source
        self.offsets = OffsetLedger(
            self.source.cfg.topic,
            lambda p: self._pending_min_offset(p),  # noqa: PLW0108
        )
        kafka = settings.kafka
        self.dead_letters = DeadLetterQueue(kafka) if kafka.dead_letter_topic else None
        self._on_invalid = None if self.dead_letters is None else self.dead_letters.submit
        self.checkpoint = Checkpoint(
            settings, detector, sink, self.offsets, self.status,
            commit_offsets=lambda positions: self.source.commit(positions),  # noqa: PLW0108
            dead_letters=self.dead_letters, clock=clock,
        )
        self.exit_code = 0  # non-zero once the stuck-consumer watchdog fired
        self.exit_reason = ""  # what the watchdog said
        self.monitor = HealthMonitor(
            settings.health, self.status, probe=self._broker_probe,
            positions=self.offsets.consumed, on_stuck=self._on_stuck,
            input_check=lambda: self.detector.input_verdict(self.clock()),
            topic=self.source.cfg.topic,
        )

    #: Whether a restore keeps the restored partition clocks (see ``WindowCounter.forget_open``).
    keep_clocks = False

    def stop(self) -> None:
        self._stop.set()

    def _pending_min_offset(self, partition: int) -> int | None:
        """The smallest offset of ``partition`` still held in an open window."""
        return self.detector.windows.pending_min_offset(partition)

    def _broker_probe(self) -> BrokerProbe | None:
        return source_probe(self.source, self.status)

    def _on_stuck(self, message: str) -> None:
        log.error("%s", message)
        self.exit_code = 3
        self.exit_reason = message
        self.stop()

    def _on_unreadable(self, exc: UnreadablePartitionError) -> None:
        report_unreadable(self.status, exc, self.settings.health.stuck_timeout_seconds)

    async def _until_stopped(self, aw: Any) -> bool:
        """Await ``aw`` unless ``stop()`` comes first (then cancel it); True if it finished."""
        task = asyncio.ensure_future(aw)
        stopper = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return False
        task.result()
        return True

    def _emit(self, events: list[AlertEvent]) -> None:
        if events:
            self.sink.write(events)
            if self.on_events is not None:
                self.on_events(events)

    def take(self, batch: RawBatch, now_ms: int) -> None:
        """Process one polled batch and note in the ledger how far its partition was read.

        Kafka delivers at least once: after a rebalance, a failed commit or a
        restart, records up to the last commit are read again. Those count in
        ``records_reread`` (the windows do not count them twice, see
        ``OffsetLedger.to_commit``), so ``records - records_reread`` is what was read once.
        """
        p = batch.partition
        self._emit(process_batch(
            self.detector, batch, now_ms, self._on_invalid, self.offsets.accounted_through(p)
        ))
        self.status.records_reread += self.offsets.record(p, batch.offsets)

    async def on_revoke(self, partitions: set[int]) -> None:
        """Rebalance: checkpoint what was read of ``partitions``, then let them go.

        A revoked partition's share of the open windows is dropped
        (``WindowCounter.revoke``): its next owner re-reads those records from the
        commit, which never passes them, so nothing counts twice.
        """
        await self.checkpoint.run(sorted(partitions & set(self.offsets.consumed())))
        self.offsets.revoke(partitions)
        self.detector.windows.revoke(partitions)
        for p in partitions:
            self.status.unreadable.pop(p, None)  # its next owner reports it

    async def on_assign(self, partitions: set[int]) -> None:
        """Rebalance: expect input from ``partitions`` (they hold the watermark)."""
        self.detector.windows.assign(partitions, self.clock())

    async def run(self) -> None:
        self.checkpoint.restore(keep_clocks=self.keep_clocks)
        if self.dead_letters is not None:
            await self.dead_letters.start()
        self.monitor.start()
        try:
            started = await self._until_stopped(
                self.source.start(on_revoke=self.on_revoke, on_assign=self.on_assign)
            )
        except BaseException:
            await self.monitor.stop()
            if self.dead_letters is not None:
                await self.dead_letters.stop(timeout=5.0)
            raise
        lag_every_s, next_lag = 2.0, 0.0
        try:
            while started and not self._stop.is_set():
                poll = asyncio.ensure_future(self.source.poll())
                stopper = asyncio.ensure_future(self._stop.wait())
                done, _ = await asyncio.wait({poll, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if poll not in done:
                    poll.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await poll
                    break
                stopper.cancel()
                try:
                    batches = poll.result()
                except UnreadablePartitionError as exc:
                    self.status.poll_failures = 0  # the broker answered
                    self._on_unreadable(exc)  # the other partitions go on
                    continue
                except Exception as exc:  # noqa: BLE001 - a broker error must not kill the loop
                    self.status.poll_failures += 1
                    log.warning("poll failed: %s", exc)
                    await asyncio.sleep(1.0)
                    continue
                self.status.poll_failures = 0
                now = self.clock()
                for batch in batches:
                    self.take(batch, now)
                    await asyncio.sleep(0)  # let heartbeats and scrapes through
                    if self.dead_letters is not None:  # backpressure: bounded pending letters
                        await self.dead_letters.wait_for_room(self._stop)
                self._emit(self.detector.close_ready(now))
                if self.checkpoint.due(now):
                    self.checkpoint.snapshot()
                    await self._until_stopped(self.checkpoint.commit())
                self.status.last_processed_unix = now / 1000
                if time.monotonic() >= next_lag:
                    next_lag = time.monotonic() + lag_every_s
                    with contextlib.suppress(Exception):
                        self.status.consumer_lag = await asyncio.wait_for(self.source.lag(), 5.0)
        finally:
            await self.monitor.stop()
            self.status.ready = False
            self.status.not_ready_reason = "stopping"
            self.checkpoint.snapshot()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.checkpoint.commit(), timeout=5.0)
            if self.dead_letters is not None:
                await self.dead_letters.stop(timeout=5.0)
            try:  # bounded: a broker that does not answer must not hold the shutdown
                await asyncio.wait_for(
                    self.source.stop(), self.settings.health.shutdown_timeout_seconds
                )
            except TimeoutError:
                log.warning(
                    "the Kafka consumer did not close within %gs; leaving it",
                    self.settings.health.shutdown_timeout_seconds,
                )
            except asyncio.CancelledError:
                # aiokafka's fetcher re-raises the cancellation of a fetch that was
                # backing off after a broker error (aio-libs/aiokafka#647): not ours.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                log.warning("the Kafka consumer was interrupted while closing; leaving it")


def install_acknowledge_handler(detector: Detector) -> None:
    """SIGUSR1: the operator accepts every firing level as the new normal."""

    def acknowledge() -> None:
        log.warning("SIGUSR1: %d firing series accepted as the new normal", detector.acknowledge())

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, acknowledge)


def install_signal_handlers(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)


__all__ = [
    "KafkaRunner",
    "SourceError",
    "install_acknowledge_handler",
    "install_signal_handlers",
]
