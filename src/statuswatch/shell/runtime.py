"""The asyncio shell around the pure detector: poll, process, emit, commit.

Checkpoint order per poll (as in quix-streams): closed windows are evaluated,
alerts are flushed to the sink, and only then are offsets committed. A
partition's commit never passes a record still held in an open window, so a
crash re-reads exactly what had not been accounted for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from statuswatch.config import Settings
from statuswatch.core.columns import DecodedBatch, InvalidRecord, code_label
from statuswatch.core.decide import AlertEvent
from statuswatch.core.detector import Detector
from statuswatch.errors import SourceError, UnreadablePartitionError
from statuswatch.shell.deadletter import DeadLetterQueue
from statuswatch.shell.health import HealthMonitor, consumer_probe
from statuswatch.shell.metrics import RuntimeStatus, UnreadablePartition
from statuswatch.shell.sources import UNREADABLE_HINTS, KafkaSource, RawBatch
from statuswatch.shell.state import open_store

log = logging.getLogger(__name__)

#: Most invalid records logged one by one per batch; the rest are only counted.
MAX_INVALID_LOGGED = 5


class Sink(Protocol):
    def write(self, events: list[AlertEvent]) -> None: ...
    def flush(self) -> None: ...


def escape(text: str, limit: int = 200) -> str:
    """Escape control characters of attacker-controlled text before logging it.

    >>> escape("a\\nb\\x1b[31m")
    'a\\\\nb\\\\x1b[31m'
    """
    return text[:limit].encode("unicode_escape").decode("ascii")


def process_batch(
    detector: Detector,
    batch: RawBatch,
    now_ms: int,
    on_invalid: Callable[[RawBatch, list[InvalidRecord]], None] | None = None,
    seen_below: int | None = None,
    on_decoded: Callable[[RawBatch, DecodedBatch], None] | None = None,
) -> list[AlertEvent]:
    """Run one raw batch through the detector and log the records it rejected.

    ``on_invalid`` (the dead-letter queue) gets the rejected records of the batch;
    records at offsets below ``seen_below`` are re-reads (see WindowCounter.add);
    ``on_decoded`` gets the decoded batch (another detector's input, decoded once).
    """
    result = detector.process(
        batch.values, now_ms=now_ms, partition=batch.partition, offsets=batch.offsets,
        seen_below=seen_below,
    )
    if on_decoded is not None:
        on_decoded(batch, result.batch)
    if on_invalid is not None and result.batch.invalid:
        on_invalid(batch, result.batch.invalid)
    for bad in result.batch.invalid[:MAX_INVALID_LOGGED]:
        log.warning(
            "skipped record topic=%s partition=%d offset=%d reason=%s value=%s",
            escape(batch.topic), batch.partition, int(batch.offsets[bad.index]), bad.reason,
            escape(batch.values[bad.index].decode("utf-8", "replace"), 120),
        )
    if len(result.batch.invalid) > MAX_INVALID_LOGGED:
        log.warning(
            "skipped %d more records topic=%s partition=%d offsets=%d..%d",
            len(result.batch.invalid) - MAX_INVALID_LOGGED, escape(batch.topic), batch.partition,
            int(batch.offsets[0]), int(batch.offsets[-1]),
        )
    return result.events


#: Without a state store, offsets are committed at most this often: a commit is a
#: broker round trip, and one per poll costs throughput for no safety (on a restart
#: the records after the last commit are read again either way).
COMMIT_EVERY_MS = 1_000


@dataclass(slots=True)
class BacktestSummary:
    records: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    codes: Counter[int] = field(default_factory=Counter)
    windows: int = 0
    alerts: int = 0
    late: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "invalid": sum(self.invalid.values()),
            "invalid_by_reason": dict(sorted(self.invalid.items())),
            "codes": {code_label(k): v for k, v in sorted(self.codes.items())},
            "windows": self.windows,
            "alerts": self.alerts,
            "late": self.late,
        }

    @classmethod
    def of(cls, detector: Detector) -> BacktestSummary:
        c = detector.counters
        return cls(
            c.records, Counter(c.invalid), Counter(c.codes), c.windows_closed, c.alerts_fired,
            c.late,
        )


def backtest(
    detector: Detector,
    batches: Iterable[RawBatch],
    sink: Sink,
    compare: tuple[Detector, Sink] | None = None,
) -> BacktestSummary:
    """Replay batches in event time as fast as possible; close all windows at the end.

    ``compare``: a second detector (with the same decode settings) and its sink, fed
    the records as decoded for the first, so two configurations cost one decoding.
    """
    on_decoded = None if compare is None else _feed(*compare)
    for batch in batches:
        now_ms = detector.counters.last_event_ms or 0
        sink.write(process_batch(detector, batch, now_ms, on_decoded=on_decoded))
    for each, out in [(detector, sink), *([compare] if compare else [])]:
        out.write(each.finish())
        out.flush()
    return BacktestSummary.of(detector)


def _feed(detector: Detector, sink: Sink) -> Callable[[RawBatch, DecodedBatch], None]:
    """Count a decoded batch in ``detector`` as ``backtest`` does a raw one."""

    def feed(batch: RawBatch, decoded: DecodedBatch) -> None:
        now_ms = detector.counters.last_event_ms or 0
        detector.count(decoded, now_ms=now_ms, partition=batch.partition, offsets=batch.offsets)
        sink.write(detector.close_ready(now_ms))

    return feed


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
    ) -> None:
        self.settings = settings
        self.detector = detector
        self.sink = sink
        self.status = status or RuntimeStatus()
        self.clock = clock
        self.on_events = on_events
        self.source = KafkaSource(settings.kafka)
        self._stop = asyncio.Event()
        self._consumed_next: dict[int, int] = {}
        #: per partition, the offset after the last record ever processed; kept across
        #: revocations and in the snapshot, so re-reads are recognised
        self._read_through: dict[int, int] = {}
        #: per partition not read since it was (re)assigned or restored: offsets below
        #: this are counted in closed windows (see ``accounted_through``)
        self._accounted: dict[int, int] = {}
        self._committed: dict[int, int] = {}
        kafka = settings.kafka
        self.dead_letters = DeadLetterQueue(kafka) if kafka.dead_letter_topic else None
        self._on_invalid = None if self.dead_letters is None else self.dead_letters.submit
        self.exit_code = 0  # non-zero once the stuck-consumer watchdog fired
        self.exit_reason = ""  # what the watchdog said
        self.monitor = HealthMonitor(
            settings.health, self.status,
            # a paused, unreadable partition gets no fetch answers: not a broker outage
            probe=lambda: consumer_probe(
                getattr(self.source, "_consumer", None), exclude=self.status.unreadable
            ),
            positions=lambda: self._consumed_next, on_stuck=self._on_stuck,
            input_check=lambda: self.detector.input_verdict(self.clock()),
            topic=settings.kafka.topic,
        )
        st = settings.state
        self.store = open_store(st.dir, st.keep) if st.dir else None
        self._snapshot_every_ms = round(st.interval_seconds * 1000)
        self._last_snapshot_ms = 0
        self._last_commit = -math.inf  # time.monotonic() of the last throttled commit

    def stop(self) -> None:
        self._stop.set()

    def _on_stuck(self, message: str) -> None:
        log.error("%s", message)
        self.exit_code = 3
        self.exit_reason = message
        self.stop()

    def _on_unreadable(self, exc: UnreadablePartitionError) -> None:
        """Report a partition the source paused: once, with its cause; never as an outage."""
        if exc.partition in self.status.unreadable:
            return
        timeout = self.settings.health.stuck_timeout_seconds
        exits = (f"exiting in {timeout:g}s (health.stuck_timeout_seconds)" if timeout > 0
                 else "health.stuck_timeout_seconds=0: not exiting")
        log.error(
            "%s; retrying cannot fix this: %s. The partition is paused, %s",
            exc, UNREADABLE_HINTS[exc.reason], exits,
        )
        self.status.unreadable[exc.partition] = UnreadablePartition(
            exc.reason, str(exc), time.monotonic()
        )

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
        """Process one polled batch and note how far its partition has been read.

        Kafka delivers at least once: after a rebalance, a failed commit or a
        restart, records up to the last commit are read again. Those count in
        ``records_reread`` (the windows do not count them twice, see
        ``commit_positions``), so ``records - records_reread`` is what was read once.
        """
        p = batch.partition
        read_through = self._read_through.get(p)
        if read_through is not None and int(batch.offsets[0]) < read_through:
            self.status.records_reread += int(np.count_nonzero(batch.offsets < read_through))
        self._emit(process_batch(
            self.detector, batch, now_ms, self._on_invalid, self.accounted_through(p)
        ))
        end = int(batch.offsets[-1]) + 1
        self._consumed_next[p] = end
        self._read_through[p] = end if read_through is None else max(read_through, end)

    def accounted_through(self, partition: int) -> int | None:
        """Offset below which ``partition``'s records are counted in closed windows.

        A re-read record below it is skipped without counting as late. Not the
        read-through offset: a revocation drops the partition's share of the open
        windows, so a record read before it but re-read after its window closed
        was never counted, and is late.
        """
        if partition in self._consumed_next:
            pending = self.detector.windows.pending_min_offset(partition)
            return self._consumed_next[partition] if pending is None else pending
        return self._accounted.get(partition)

    def commit_positions(self, partitions: Sequence[int] | None = None) -> dict[int, int]:
        """Next offset to commit per partition.

        A commit never passes a record still held in an open window, so after a
        crash, a stop or a rebalance that record is read again, by this instance
        or by the partition's next owner; a revoked partition's share of the open
        windows is dropped here (``WindowCounter.revoke``), so nothing counts twice.
        """
        out: dict[int, int] = {}
        for p in partitions if partitions is not None else list(self._consumed_next):
            if p not in self._consumed_next:
                continue
            pending = self.detector.windows.pending_min_offset(p)
            position = self._consumed_next[p] if pending is None else pending
            if position > self._committed.get(p, -1):
                out[p] = position
        return out

    async def _commit(self, partitions: Sequence[int] | None = None) -> None:
        positions = self.commit_positions(partitions)
        if not positions:
            return
        self.sink.flush()
        if self.dead_letters is not None and not await self.dead_letters.flush():
            # a committed record's dead letter must be safe: commit on a later poll
            log.warning("%d dead letters not yet acknowledged: commit postponed",
                        self.dead_letters.pending)
            return
        from aiokafka.errors import CommitFailedError, KafkaError

        try:
            await self.source.commit(positions)
        except CommitFailedError as exc:
            # A rebalance took the partitions; the new owner re-reads from the last commit.
            log.warning("commit failed after a rebalance: %s", exc)
            return
        except KafkaError as exc:
            log.warning("commit failed, will retry on the next poll: %s", exc)
            return
        self._committed.update(positions)
        self.status.commits += 1

    def checkpoint(self) -> None:
        """Flush alerts, then persist state covering everything consumed so far.

        Order matters (flush sinks, persist state, commit offsets): a crash
        between any two steps re-reads input the state does not yet cover.
        """
        if self.store is None:
            return
        self.sink.flush()
        self.store.write({
            "detector": self.detector.snapshot(),
            "consumer": {
                "topic": self.settings.kafka.topic,
                "read_through": {str(p): o for p, o in sorted(self._read_through.items())},
                # open windows are not in the snapshot: what closed ones account for
                "accounted": {str(p): o for p in sorted({*self._accounted, *self._consumed_next})
                              if (o := self.accounted_through(p)) is not None},
                "records_reread": self.status.records_reread,
            },
        })
        self._last_snapshot_ms = self.clock()
        self.status.last_snapshot_unix = self._last_snapshot_ms / 1000

    def restore(self) -> None:
        """Continue from the newest intact snapshot, if there is one.

        Baselines, alert states, scopes and the closed-window frontier come back;
        open windows are rebuilt by re-reading from the committed offsets, which
        never pass a record of an open window. Records of windows that had
        already closed are dropped as late, so nothing is counted twice, even if
        another instance consumed a partition meanwhile.
        """
        if self.store is None:
            return
        state = self.store.load()
        if state is None:
            log.info("no snapshot in %s: starting fresh", self.store.directory)
            return
        try:  # on a scratch detector first: a refused snapshot leaves the live one untouched
            Detector(self.settings, self.detector.decoder).restore(
                state["detector"], self.clock()
            )
            consumer = state.get("consumer", {})  # absent in snapshots written before it was
            if consumer.get("topic") != self.settings.kafka.topic:
                consumer = {}  # offsets of another topic mean nothing here
            read_through = {int(p): int(o) for p, o in consumer.get("read_through", {}).items()}
            accounted = {int(p): int(o) for p, o in consumer.get("accounted", {}).items()}
            reread = int(consumer.get("records_reread", 0))
        except (ValueError, KeyError, TypeError) as exc:
            log.error(
                "the snapshot in %s does not fit this version or configuration (%s): "
                "starting fresh; newer snapshots will replace it", self.store.directory, exc,
            )
            return
        self.detector.restore(state["detector"], self.clock())
        self._read_through, self._accounted = read_through, accounted
        self.status.records_reread = reread
        self.detector.windows.forget_open()
        self.detector.scopes.forget_pending()
        log.info("restored snapshot from %s", self.store.directory)

    async def _on_revoke(self, partitions: set[int]) -> None:
        self.checkpoint()
        await self._commit(sorted(partitions & set(self._consumed_next)))
        for p in partitions:
            accounted = self.accounted_through(p)
            if accounted is not None:
                self._accounted[p] = accounted
        self.detector.windows.revoke(partitions)
        for p in partitions:
            self._consumed_next.pop(p, None)
            self._committed.pop(p, None)
            self.status.unreadable.pop(p, None)  # its next owner reports it

    async def _on_assign(self, partitions: set[int]) -> None:
        self.detector.windows.assign(partitions, self.clock())

    async def run(self) -> None:
        self.restore()
        if self.dead_letters is not None:
            await self.dead_letters.start()
        self.monitor.start()
        try:
            started = await self._until_stopped(
                self.source.start(on_revoke=self._on_revoke, on_assign=self._on_assign)
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
                if self.store is None:
                    if time.monotonic() - self._last_commit >= COMMIT_EVERY_MS / 1000:
                        self._last_commit = time.monotonic()
                        await self._until_stopped(self._commit())
                elif now - self._last_snapshot_ms >= self._snapshot_every_ms:
                    self.checkpoint()
                    await self._until_stopped(self._commit())
                self.status.last_processed_unix = now / 1000
                if time.monotonic() >= next_lag:
                    next_lag = time.monotonic() + lag_every_s
                    with contextlib.suppress(Exception):
                        self.status.consumer_lag = await asyncio.wait_for(self.source.lag(), 5.0)
        finally:
            await self.monitor.stop()
            self.status.ready = False
            self.status.not_ready_reason = "stopping"
            self.checkpoint()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._commit(), timeout=5.0)
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
    "BacktestSummary",
    "KafkaRunner",
    "SourceError",
    "backtest",
    "escape",
    "install_signal_handlers",
    "process_batch",
]
