"""``statuswatch aggregate``: stage 1 of the two-stage layout.

N workers share the raw topic in one consumer group. Each decodes and counts the
records of its partitions with the code ``run`` uses (the decoder, the scope and
code tables, ``WindowCounter``), one window counter per source partition, and
when a window closes for a partition it writes one partial window
(``core.partials``; in chunks when large) to the aggregates topic. Only the last
record of a transaction carries the partition's watermark (see ``outgoing``).

Exactly once, per source partition: each has its own transactional producer
(transactional id ``<aggregate.group_id>.<topic>.<partition>``), and the partials
of a partition are written in a transaction together with the partition's source
offset. The offset never passes a record still held in an open window; its
metadata carries the partition's closed-window frontier and how far it was read,
so the next owner drops the re-read records of windows already written. A new
owner's producer fences the previous one (its transactions fail), whatever
became of it: a crash neither loses nor duplicates a partial.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from statuswatch.config import Settings
from statuswatch.core.decode import build_decoder
from statuswatch.core.partials import Partial, chunks, window_cells
from statuswatch.core.rejects import RejectTracker
from statuswatch.core.scopes import CodeTable, ScopeTable
from statuswatch.core.window import WindowCounter
from statuswatch.errors import SourceError, UnreadablePartitionError
from statuswatch.shell.deadletter import DeadLetter, max_request_size
from statuswatch.shell.health import HealthMonitor, report_unreadable, source_probe
from statuswatch.shell.kafka_client import security_kwargs
from statuswatch.shell.kafka_source import KafkaSource
from statuswatch.shell.metrics import RuntimeStatus, status_metrics
from statuswatch.shell.offsets import OffsetLedger
from statuswatch.shell.processing import log_invalid
from statuswatch.shell.runtime import wall_ms
from statuswatch.shell.sources import RawBatch

log = logging.getLogger(__name__)

#: A source partition's own window counter never lets event time follow the wall
#: clock: idleness is decided here, and reported to stage 2 instead.
NEVER_MS = 1 << 62
#: Pause between two reads of the committed offsets of newly owned partitions.
SETTLE_S = 0.2
#: Version of the offset metadata a worker commits with each partition's offset.
METADATA_VERSION = 1


@dataclass(slots=True)
class AggregateStatus:
    """What ``/metrics`` shows of a worker."""

    records: int = 0
    records_reread: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    late: int = 0
    partials: int = 0
    partial_bytes: int = 0
    dead_letters: int = 0
    transactions: int = 0
    consumer_lag: dict[int, int] = field(default_factory=dict)
    assigned: set[int] = field(default_factory=set)
    last_transaction_unix: float | None = None


@dataclass(slots=True)
class _SourcePartition:
    """One source partition's open windows and what is not yet written of it."""

    windows: WindowCounter
    producer: Any
    last_record_ms: int  # wall time of its last record (or of its assignment)
    #: read through this offset before this owner: below it, a record is a re-read
    seen_below: int | None = None
    pending: list[Partial] = field(default_factory=list)
    #: rejected records for ``kafka.dead_letter_topic``, written with the next partials
    dead_letters: list[DeadLetter] = field(default_factory=list)
    records: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    late: int = 0
    idle_reported: bool = False
    resumed: bool = False  # read again after it was reported idle: stage 2 must hear it
    last_transaction_ms: int = 0
    #: one transaction at a time: the loop and a rebalance may both want to write
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def unwritten(self) -> bool:
        return bool(self.pending or self.records or self.invalid or self.late or self.resumed
                    or self.dead_letters)


def offset_metadata(next_start_ms: int | None, read_through: int | None) -> str:
    """What a worker commits beside a partition's offset.

    >>> offset_metadata(20_000, 41)
    '{"v":1,"next_start_ms":20000,"read_through":41}'
    """
    return json.dumps({"v": METADATA_VERSION, "next_start_ms": next_start_ms,
                       "read_through": read_through}, separators=(",", ":"))


def parse_offset_metadata(text: str) -> tuple[int | None, int | None]:
    """(next_start_ms, read_through) from ``offset_metadata``; (None, None) for anything else.

    >>> parse_offset_metadata(offset_metadata(20_000, 41)), parse_offset_metadata("")
    ((20000, 41), (None, None))
    """
    try:
        meta = json.loads(text)
        if meta.get("v") != METADATA_VERSION:
            return None, None
        start, through = meta["next_start_ms"], meta["read_through"]
        return (None if start is None else int(start)), (None if through is None else int(through))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None, None


class Aggregator:
    """A stage-1 worker: consume, count per source partition, write partials in transactions."""

    def __init__(self, settings: Settings, clock: Callable[[], int] = wall_ms) -> None:
        self.settings = settings
        self.clock = clock
        agg = settings.aggregate
        self.source = KafkaSource(settings.kafka.model_copy(update={"group_id": agg.group_id}))
        self.topic = settings.kafka.topic
        self.decoder = build_decoder(settings.decode)
        self.scopes = ScopeTable(settings.scopes.levels, agg.max_scopes_per_level)
        self.codes = CodeTable()
        self.parts: dict[int, _SourcePartition] = {}
        self.ledger = OffsetLedger(self.topic, self._pending_min_offset)
        self.status = AggregateStatus()
        #: for /ready and /healthz: the loop beats it
        self.runtime = RuntimeStatus(ready=False, not_ready_reason="starting")
        self.exit_code = 0  # 3: the stuck-consumer watchdog fired; 4: a transaction failed
        self.exit_reason = ""
        self._stop = asyncio.Event()
        #: readiness, the watchdog and mostly-invalid input, as in ``run``
        self.rejects = RejectTracker(settings.decode.mostly_invalid)
        self.monitor = HealthMonitor(
            settings.health, self.runtime, probe=lambda: source_probe(self.source, self.runtime),
            positions=self.ledger.consumed, on_stuck=self._on_stuck,
            input_check=lambda: self.rejects.verdict(self.clock(), self.decoder, settings.decode),
            topic=self.topic,
        )
        self._out_partitions = 0
        w = settings.window
        self._size_ms, self._lateness_ms = w.size_ms, w.lateness_ms
        self._idle_ms = round(w.idle_timeout_seconds * 1000)
        self._interval_ms = round(agg.transaction_interval_seconds * 1000)

    def stop(self) -> None:
        self._stop.set()

    def _on_stuck(self, message: str) -> None:
        log.error("%s", message)
        self.exit_code, self.exit_reason = 3, message
        self.stop()

    def _set_lag(self, lag: dict[int, int]) -> None:
        self.status.consumer_lag = self.runtime.consumer_lag = lag

    def _pending_min_offset(self, partition: int) -> int | None:
        part = self.parts.get(partition)
        return None if part is None else part.windows.pending_min_offset(partition)

    # -- counting ---------------------------------------------------------------

    def take(self, batch: RawBatch, now_ms: int) -> None:
        """Decode and count one batch of a partition this worker owns."""
        part = self.parts.get(batch.partition)
        if part is None:
            return  # revoked meanwhile: its next owner reads it
        p, seen_below = batch.partition, part.seen_below
        self.ledger.record(p, batch.offsets)
        fresh = len(batch) if seen_below is None else int(np.count_nonzero(
            batch.offsets >= seen_below))
        part.records += fresh
        decoded = self.decoder.decode(batch.values)
        self.rejects.add(now_ms, len(batch), decoded.invalid, batch.values, p,
                         batch.offsets.tolist() if decoded.invalid else None)
        invalid = [r for r in decoded.invalid
                   if seen_below is None or batch.offsets[r.index] >= seen_below]
        if invalid:
            part.invalid.update(r.reason for r in invalid)
            self.status.invalid.update(r.reason for r in invalid)
            log_invalid(batch, invalid)
            if self.settings.kafka.dead_letter_topic is not None:
                max_bytes = self.settings.kafka.dead_letter_max_bytes
                part.dead_letters += [DeadLetter.of(batch, r, max_bytes) for r in invalid]
        if len(decoded):
            rows = self.scopes.rows(decoded.dims)
            cols = self.codes.columns(decoded.status)
            late = part.windows.add(
                decoded.ts_ms, rows, cols, n_rows=len(self.scopes), n_cols=len(self.codes),
                partition=p, offsets=batch.offsets[decoded.index], now_ms=now_ms,
                seen_below=seen_below,
            )
            part.late += late
            self.status.late += late
            # Only records that count keep a partition from idleness, as in `run`: one
            # whose every record is rejected lets stage 2's event time follow the clock.
            part.last_record_ms = now_ms
            if part.idle_reported:
                part.idle_reported, part.resumed = False, True
        # Last, so that a scrape (another thread) that sees these records counted also
        # sees their rejections counted.
        self.status.records_reread += len(batch) - fresh  # read by a previous owner
        self.status.records += len(batch)

    def close(self, now_ms: int) -> None:
        """Queue a partial for every window closed per partition, and say which went idle."""
        for p, part in self.parts.items():
            closed = part.windows.close_ready(now_ms)
            idle_for = now_ms - part.last_record_ms
            # Idle: silent for the idle timeout with nothing waiting in it. A partition
            # silent only because this worker is slow to read it (a new owner starting
            # up, a starved process) must not let stage 2 close windows without it.
            idle = (not part.idle_reported and idle_for >= self._idle_ms
                    and self.status.consumer_lag.get(p) == 0)
            if idle:  # nothing more is coming: what is open is complete
                closed += part.windows.close_all()
            watermark = part.windows.watermark_ms(now_ms)
            written = False
            for window in closed:
                if not window.counts.any():
                    continue
                scopes, cells = window_cells(window, self.scopes.labels, self.codes.codes)
                part.pending += [
                    Partial(self.topic, p, window.start_ms, window.end_ms, watermark, None,
                            scopes_part, cells_part, chunk=i)
                    for i, (scopes_part, cells_part) in enumerate(chunks(scopes, cells))
                ]
                written = True
            if idle:
                part.idle_reported = True
                part.pending.append(Partial(self.topic, p, None, None, watermark, idle_for))
            elif (closed and not written) or part.resumed:
                part.pending.append(Partial(self.topic, p, None, None, watermark, None))
            part.resumed = False

    # -- writing ----------------------------------------------------------------

    async def flush(self, now_ms: int, partitions: Iterable[int] | None = None) -> None:
        """Write what is due (every partition in ``partitions``, whatever is due)."""
        if partitions is None:
            due = [p for p, part in self.parts.items() if part.unwritten()
                   and now_ms - part.last_transaction_ms >= self._interval_ms]
        else:
            due = [p for p in partitions if p in self.parts and self.parts[p].unwritten()]
        if due:
            await asyncio.gather(*(self._transact(p, now_ms) for p in due))

    def outgoing(self, p: int, now_ms: int) -> list[Partial]:
        """What partition ``p``'s next transaction writes: its closed windows, the last
        record carrying the records, invalid and late records counted since the last
        one, and alone the partition's watermark and idleness: stage 2 may close a
        window between two records it reads, and must not before it has them all."""
        part = self.parts[p]
        records = list(part.pending)
        if part.records or part.invalid or part.late or not records:
            watermark = part.windows.watermark_ms(now_ms)
            idle = now_ms - part.last_record_ms if part.idle_reported else None
            records.append(Partial(self.topic, p, None, None, watermark, idle))
        watermark = max((r.watermark_ms for r in records if r.watermark_ms is not None),
                        default=None)
        return [replace(r, watermark_ms=None, idle_ms=None) for r in records[:-1]] + [
            replace(records[-1], watermark_ms=watermark, records=part.records,
                    invalid=dict(part.invalid), late=part.late)]

    def written(self, p: int, now_ms: int, taken: int, last: Partial, letters: int = 0) -> None:
        """Partition ``p``'s ``outgoing()``, which took its first ``taken`` pending
        partials and ended with ``last``, is committed with its first ``letters`` dead
        letters. What was counted and queued while the transaction was in flight stays
        for the next one."""
        part = self.parts[p]
        del part.pending[:taken]
        del part.dead_letters[:letters]
        part.records -= last.records
        part.invalid.subtract(last.invalid)
        part.invalid = +part.invalid  # drop the reasons now at zero
        part.late -= last.late
        part.last_transaction_ms = now_ms

    async def _transact(self, p: int, now_ms: int) -> None:
        part = self.parts.get(p)
        if part is None:
            return
        async with part.lock:
            if self.parts.get(p) is part and part.unwritten() and not self.exit_code:
                await self._write(p, part, now_ms)

    async def _write(self, p: int, part: _SourcePartition, now_ms: int) -> None:
        """One transaction: ``part``'s partials and its source offset (with metadata)."""
        from aiokafka import TopicPartition
        from aiokafka.structs import OffsetAndMetadata

        # Everything the transaction writes is taken here, before its first await: the
        # loop goes on counting (and queueing partials) while it is in flight.
        taken, records = len(part.pending), self.outgoing(p, now_ms)
        letters = list(part.dead_letters)
        consumed = self.ledger.consumed().get(p)
        pending = part.windows.pending_min_offset(p)
        position = pending if pending is not None else consumed
        read = [o for o in (self.ledger.read_through(p), part.seen_below) if o is not None]
        meta = offset_metadata(part.windows.next_start_ms, max(read, default=None))
        producer = part.producer
        values = [r.encode() for r in records]
        key = f"{self.topic}/{p}".encode()
        try:
            async with producer.transaction():
                sent = [await producer.send(
                    self.settings.aggregate.topic, value=v, key=key,
                    partition=p % self._out_partitions) for v in values]
                dead_letter_topic = self.settings.kafka.dead_letter_topic
                sent += [await producer.send(dead_letter_topic, value=letter.value,
                                             key=letter.key(), headers=letter.headers())
                         for letter in letters]
                await asyncio.gather(*sent)
                if position is not None:
                    await producer.send_offsets_to_transaction(
                        {TopicPartition(self.topic, p): OffsetAndMetadata(position, meta)},
                        self.settings.aggregate.group_id,
                    )
        except Exception as exc:  # noqa: BLE001 - any failure: this worker's state is suspect
            log.error(
                "the transaction of topic=%s partition=%d offset=%s failed (%s: %s): exiting; "
                "the partition's next owner re-reads it from its last commit",
                self.topic, p, position, type(exc).__name__, exc,
            )
            self.exit_code = 4
            self.stop()
            return
        self.written(p, now_ms, taken, records[-1], len(letters))
        self.status.dead_letters += len(letters)
        self.status.partials += len(values)
        self.status.partial_bytes += sum(map(len, values))
        self.status.transactions += 1
        self.status.last_transaction_unix = now_ms / 1000

    # -- ownership ----------------------------------------------------------------

    async def _producer(self, p: int) -> Any:
        from aiokafka import AIOKafkaProducer

        kafka = self.settings.kafka
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers, client_id=kafka.client_id,
            transactional_id=f"{self.settings.aggregate.group_id}.{self.topic}.{p}",
            linger_ms=5, max_request_size=max_request_size(kafka), **security_kwargs(kafka),
        )
        await producer.start()  # init_transactions: fences the previous owner, ends its txn
        return producer

    async def on_assign(self, partitions: set[int]) -> None:
        """Own ``partitions``: fence their previous owners, then continue where they committed."""
        ordered = sorted(partitions)
        started = await asyncio.gather(*(self._producer(p) for p in ordered),
                                       return_exceptions=True)
        try:
            failed = [r for r in started if isinstance(r, BaseException)]
            if failed:
                raise failed[0]
            # After the fence the previous owner's last transaction is complete, but the
            # group coordinator applies its offsets a moment later, and aiokafka's offset
            # fetch (v3) cannot ask for stable offsets: read until two reads agree.
            committed = await self.source.committed_with_metadata(ordered)
            for _ in range(50):
                await asyncio.sleep(SETTLE_S)
                again = await self.source.committed_with_metadata(ordered)
                if again == committed:
                    break
                committed = again
            for p, producer in zip(ordered, started, strict=True):
                offset, meta = committed.get(p, (None, ""))
                self.own(p, self.clock(), producer, *parse_offset_metadata(meta))
                # Always: the consumer may have fetched (and this worker dropped, owning
                # nothing yet) records while the producers started.
                await self.source.seek(p, offset)
        except BaseException:  # stopped or failed mid-way: close what nobody owns
            owned = {id(part.producer) for part in self.parts.values()}
            for producer in started:
                if not isinstance(producer, BaseException) and id(producer) not in owned:
                    with contextlib.suppress(Exception):
                        await producer.stop()
            raise
        self.status.assigned |= partitions

    def own(
        self, p: int, now_ms: int, producer: Any = None,
        next_start_ms: int | None = None, seen_below: int | None = None,
    ) -> None:
        """Count partition ``p`` from now on: its windows closed before ``next_start_ms``
        are written, its records below ``seen_below`` were read by a previous owner."""
        windows = WindowCounter(self._size_ms, self._lateness_ms, NEVER_MS)
        windows.assign([p], now_ms)
        windows.next_start_ms = next_start_ms
        self.parts[p] = _SourcePartition(windows, producer, now_ms, seen_below)

    async def on_revoke(self, partitions: set[int]) -> None:
        """Give ``partitions`` up: write what closed, then stop their producers."""
        await self.flush(self.clock(), partitions)
        self.ledger.revoke(partitions)
        for p in partitions:
            part = self.parts.get(p)
            if part is None:
                continue
            async with part.lock:  # a transaction of the loop's in flight ends first
                self.parts.pop(p, None)
                with contextlib.suppress(Exception):
                    await part.producer.stop()
        self.status.assigned -= partitions
        for p in partitions:
            self.status.consumer_lag.pop(p, None)

    # -- the loop -------------------------------------------------------------------

    async def run(self) -> None:
        self.monitor.start()
        try:
            await self.source.start(on_revoke=self.on_revoke, on_assign=self.on_assign)
        except BaseException:
            await self.monitor.stop()
            raise
        out = self.settings.aggregate.topic
        self._out_partitions = len(await self.source.partitions_of(out))
        if not self._out_partitions:
            await self.source.stop()
            await self.monitor.stop()
            raise SourceError(f"aggregate.topic {out}: no such topic on "
                              f"{self.settings.kafka.bootstrap_servers}")
        log.info("aggregating topic %s into %s (%d partitions) as group %s",
                 self.topic, out, self._out_partitions, self.settings.aggregate.group_id)
        next_lag = 0.0
        flushing: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        flushing.set_result(None)
        try:
            while not self._stop.is_set():
                poll = asyncio.ensure_future(self.source.poll())
                stopper = asyncio.ensure_future(self._stop.wait())
                done, _ = await asyncio.wait({poll, stopper}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if poll not in done:
                    poll.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await poll
                    break
                try:
                    batches = poll.result()
                except UnreadablePartitionError as exc:
                    self.runtime.poll_failures = 0  # the broker answered
                    report_unreadable(self.runtime, exc, self.settings.health.stuck_timeout_seconds)
                    continue
                except Exception as exc:  # noqa: BLE001 - a broker error must not kill the loop
                    self.runtime.poll_failures += 1
                    log.warning("poll failed: %s", exc)
                    await asyncio.sleep(1.0)
                    continue
                self.runtime.poll_failures = 0
                now = self.clock()
                # A rebalance may have run since the poll returned, or run at any await
                # below; a partition it hands (back) to this worker starts again from
                # its commit, so a batch polled before is stale for that partition.
                for batch in batches:
                    if self.source.is_current(batch):
                        self.take(batch, now)
                    await asyncio.sleep(0)
                if any(not part.idle_reported and now - part.last_record_ms >= self._idle_ms
                       for part in self.parts.values()):
                    # about to call a partition idle: on the lag of now, not of seconds ago
                    with contextlib.suppress(Exception):
                        self._set_lag(await asyncio.wait_for(self.source.lag(), 5.0))
                self.close(now)
                kafka = self.settings.kafka
                crowded = [p for p, part in self.parts.items() if len(part.dead_letters)
                           >= kafka.dead_letter_max_in_flight + kafka.max_batch_records]
                if crowded:  # a flood of rejected records: write them before reading on
                    await flushing
                    await self.flush(now, crowded)
                # Transactions run beside the loop (a few broker round trips each):
                # waiting for them here would leave the worker idle that long.
                if flushing.done():
                    flushing.result()
                    flushing = asyncio.ensure_future(self.flush(now))
                if time.monotonic() >= next_lag:
                    next_lag = time.monotonic() + 2.0
                    with contextlib.suppress(Exception):
                        self._set_lag(await asyncio.wait_for(self.source.lag(), 5.0))
        finally:
            await self.monitor.stop()
            self.runtime.ready, self.runtime.not_ready_reason = False, "stopping"
            with contextlib.suppress(Exception):  # a transaction in flight ends first
                await asyncio.wait_for(asyncio.shield(flushing), 15.0)
            if not self.exit_code:
                self.close(self.clock())
            with contextlib.suppress(Exception):  # write what closed, stop the producers
                await asyncio.wait_for(self.on_revoke(set(self.parts)), 15.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.source.stop(), self.settings.health.shutdown_timeout_seconds)
            # A rebalance that handed partitions over while the consumer stopped: its
            # producers have written nothing (the loop is over), only close them.
            for part in list(self.parts.values()):
                with contextlib.suppress(Exception):
                    await part.producer.stop()
            self.parts.clear()


class AggregatorCollector(Collector):
    """A stage-1 worker's metrics (``statuswatch_aggregate_*``), read at scrape time."""

    def __init__(self, aggregator: Aggregator) -> None:
        self.aggregator = aggregator

    def collect(self) -> Iterator[Metric]:
        yield from status_metrics(self.aggregator.runtime)
        st = self.aggregator.status
        for name, doc, value in (
            ("records", "Raw records read (valid and invalid).", st.records),
            ("records_reread", "Records read again after a rebalance or restart.",
             st.records_reread),
            ("late_records", "Records whose window had closed for their partition.", st.late),
            ("partials", "Partial windows written (committed transactions).", st.partials),
            ("partial_bytes", "Bytes of the partial windows written.", st.partial_bytes),
            ("dead_letters", "Rejected records written to kafka.dead_letter_topic (in the "
             "transaction of their partition's partials).", st.dead_letters),
            ("transactions", "Transactions committed (partials with source offsets).",
             st.transactions),
        ):
            yield CounterMetricFamily(f"statuswatch_aggregate_{name}", doc, value=value)
        invalid = CounterMetricFamily(
            "statuswatch_aggregate_invalid_records", "Records rejected, by reason.",
            labels=["reason"])
        for reason, n in sorted(st.invalid.items()):
            invalid.add_metric([reason], n)
        yield invalid
        lag = GaugeMetricFamily("statuswatch_aggregate_consumer_lag",
                                "Records behind the end of each owned source partition.",
                                labels=["partition"])
        for p, n in sorted(st.consumer_lag.items()):
            lag.add_metric([str(p)], n)
        yield lag
        yield GaugeMetricFamily("statuswatch_aggregate_partitions",
                                "Source partitions this worker owns.", value=len(st.assigned))
        yield GaugeMetricFamily(
            "statuswatch_aggregate_last_transaction_timestamp_seconds",
            "Unix time of the last committed transaction (0: none yet).",
            value=st.last_transaction_unix or 0.0)


__all__ = [
    "AggregateStatus", "Aggregator", "AggregatorCollector", "offset_metadata",
    "parse_offset_metadata",
]
