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
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from statuswatch.config import Settings
from statuswatch.core.decide import AlertEvent
from statuswatch.core.detector import Detector
from statuswatch.errors import SourceError
from statuswatch.shell.metrics import RuntimeStatus
from statuswatch.shell.sources import KafkaSource, RawBatch

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


def process_batch(detector: Detector, batch: RawBatch, now_ms: int) -> list[AlertEvent]:
    """Run one raw batch through the detector and log the records it rejected."""
    result = detector.process(
        batch.values, now_ms=now_ms, partition=batch.partition, offsets=batch.offsets
    )
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
            "codes": {str(k): v for k, v in sorted(self.codes.items())},
            "windows": self.windows,
            "alerts": self.alerts,
            "late": self.late,
        }


def backtest(detector: Detector, batches: Iterable[RawBatch], sink: Sink) -> BacktestSummary:
    """Replay batches in event time as fast as possible; close all windows at the end."""
    for batch in batches:
        now_ms = detector.counters.last_event_ms or 0
        sink.write(process_batch(detector, batch, now_ms))
    sink.write(detector.finish())
    sink.flush()
    c = detector.counters
    return BacktestSummary(
        c.records, Counter(c.invalid), Counter(c.codes), c.windows_closed, c.alerts_fired, c.late
    )


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
        self._committed: dict[int, int] = {}

    def stop(self) -> None:
        self._stop.set()

    def _emit(self, events: list[AlertEvent]) -> None:
        if events:
            self.sink.write(events)
            if self.on_events is not None:
                self.on_events(events)

    def commit_positions(self, partitions: Sequence[int] | None = None) -> dict[int, int]:
        """Next offset to commit per partition: before any record still in an open window."""
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

    async def _on_revoke(self, partitions: set[int]) -> None:
        await self._commit(sorted(partitions & set(self._consumed_next)))
        self.detector.windows.revoke(partitions)

    def _on_assign(self, partitions: set[int]) -> None:
        self.detector.windows.assign(partitions, self.clock())

    async def run(self) -> None:
        await self.source.start(on_revoke=self._on_revoke, on_assign=self._on_assign)
        lag_every_s, next_lag = 2.0, 0.0
        try:
            while not self._stop.is_set():
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
                except Exception as exc:  # noqa: BLE001 - a broker error must not kill the loop
                    self.status.ready = False
                    log.warning("poll failed: %s", exc)
                    await asyncio.sleep(1.0)
                    continue
                self.status.ready = True
                now = self.clock()
                for batch in batches:
                    self._emit(process_batch(self.detector, batch, now))
                    self._consumed_next[batch.partition] = int(batch.offsets[-1]) + 1
                    await asyncio.sleep(0)  # let heartbeats and scrapes through
                self._emit(self.detector.close_ready(now))
                await self._commit()
                self.status.last_processed_unix = now / 1000
                if time.monotonic() >= next_lag:
                    next_lag = time.monotonic() + lag_every_s
                    with contextlib.suppress(Exception):
                        self.status.consumer_lag = await self.source.lag()
        finally:
            self.status.ready = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._commit(), timeout=5.0)
            await self.source.stop()


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
