"""Records from Kafka: an aiokafka consumer in a group, with manual commits only, and
the fetch errors that retrying cannot heal."""

from __future__ import annotations

import asyncio
import logging
import operator
import time
from collections.abc import Container, Iterable
from typing import Any

import numpy as np

from statuswatch.config import KafkaConfig
from statuswatch.errors import SourceError, UnreadablePartitionError
from statuswatch.shell.kafka_client import (
    diagnose_connection,
    security_kwargs,
    unresolved_hosts,
    warn_if_no_c_extension,
)
from statuswatch.shell.sources import RawBatch

log = logging.getLogger(__name__)

#: Longest a consumer start (bootstrap, TLS and SASL handshakes) may take.
START_TIMEOUT_S = 60.0


#: What each reason asks of the operator.
UNREADABLE_HINTS = {
    "unsupported_codec": "install statuswatch with its dependencies "
                         "(aiokafka[lz4,snappy,zstd] brings the codecs)",
    "corrupt_batch": "the batch on the broker fails its CRC check; the producer or the "
                     "broker's disk wrote it damaged",
    "record_too_large": "raise kafka.max_partition_fetch_bytes above the largest batch",
}


def unreadable_reason(exc: BaseException) -> str | None:
    """The reason label (``metrics.UNREADABLE_REASONS``) of an aiokafka fetch error that
    retrying cannot heal; None for any other error.

    >>> from aiokafka.errors import UnsupportedCodecError, KafkaConnectionError
    >>> unreadable_reason(UnsupportedCodecError("no zstd")), unreadable_reason(
    ...     KafkaConnectionError())
    ('unsupported_codec', None)
    """
    from aiokafka import errors

    if isinstance(exc, errors.UnsupportedCodecError):
        return "unsupported_codec"
    if isinstance(exc, errors.CorruptRecordException):
        return "corrupt_batch"
    if isinstance(exc, errors.RecordTooLargeError):
        return "record_too_large"
    return None


def failing_partition(exc: BaseException) -> Any:
    """The ``TopicPartition`` whose records raised ``exc`` in ``getmany()``, or None.

    aiokafka does not attach it to the error: the innermost frame of the traceback
    that iterates one partition's records (a local ``tp``) names it.
    """
    from aiokafka import TopicPartition

    found = None
    tb = exc.__traceback__
    while tb is not None:
        tp = tb.tb_frame.f_locals.get("tp")
        if isinstance(tp, TopicPartition):
            found = tp
        tb = tb.tb_next
    if found is None:  # RecordTooLargeError carries it among its arguments
        found = next((a for a in exc.args if isinstance(a, TopicPartition)), None)
    return found


_OFFSET = operator.attrgetter("offset")
_VALUE = operator.attrgetter("value")


class KafkaSource:
    """An aiokafka consumer in a group, with manual commits only."""

    def __init__(self, cfg: KafkaConfig, isolation_level: str | None = None) -> None:
        self.cfg = cfg
        #: ``read_committed`` for a topic written in transactions (default:
        #: ``kafka.isolation_level``; the partial windows are always read committed)
        self.isolation_level = cfg.isolation_level if isolation_level is None else isolation_level
        self._consumer: Any = None
        self.assigned: set[int] = set()
        #: per partition, the offset after the last record poll() returned since assignment
        self._delivered: dict[int, int] = {}
        #: per partition, the batch the last poll() returned, until a seek or revocation
        self._current: dict[int, RawBatch] = {}

    async def start(self, on_revoke: Any = None, on_assign: Any = None) -> None:
        from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener

        source = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                if on_revoke is not None:
                    await on_revoke({tp.partition for tp in revoked})
                source.assigned -= {tp.partition for tp in revoked}
                for tp in revoked:
                    source._delivered.pop(tp.partition, None)
                    source._current.pop(tp.partition, None)

            async def on_partitions_assigned(self, assigned: Any) -> None:
                source.assigned |= {tp.partition for tp in assigned}
                if on_assign is not None:
                    await on_assign({tp.partition for tp in assigned})
                log.info("assigned partitions %s", sorted(source.assigned))

        warn_if_no_c_extension()
        cfg = self.cfg
        security = security_kwargs(cfg)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=cfg.bootstrap_servers,
            group_id=cfg.group_id,
            client_id=cfg.client_id,
            enable_auto_commit=False,  # commits only after windows are processed
            auto_offset_reset=cfg.auto_offset_reset,
            max_partition_fetch_bytes=cfg.max_partition_fetch_bytes,
            session_timeout_ms=cfg.session_timeout_ms,
            isolation_level=self.isolation_level,
            **security,
        )
        try:
            await asyncio.wait_for(self._consumer.start(), START_TIMEOUT_S)
        except Exception as exc:  # aiokafka raises many types; all mean "cannot start"
            await self._consumer.stop()
            why = str(exc) or type(exc).__name__
            unresolved = await unresolved_hosts(cfg.bootstrap_servers)
            if unresolved:
                why = "; ".join(f"{host} does not resolve ({err})" for host, err in unresolved)
            elif cfg.security_protocol != "PLAINTEXT":
                why = await diagnose_connection(cfg, security) or why
            raise SourceError(
                f"cannot connect to Kafka at kafka.bootstrap_servers={cfg.bootstrap_servers}: {why}"
            ) from exc
        await self._require_topic()
        self._consumer.subscribe([cfg.topic], listener=Listener())

    async def _require_topic(self) -> None:
        """Fail at start-up on a topic the cluster does not have (or does not show this
        principal): subscribed, it would wait for partitions forever. Listing all
        topics never auto-creates one."""
        from aiokafka.errors import KafkaError

        try:
            topics = await asyncio.wait_for(self._consumer.topics(), START_TIMEOUT_S)
        except (KafkaError, TimeoutError) as exc:
            await self._consumer.stop()
            raise SourceError(
                f"kafka.bootstrap_servers {self.cfg.bootstrap_servers}: cannot list topics: "
                f"{exc!s:.200}"
            ) from exc
        if self.cfg.topic not in topics:
            await self._consumer.stop()
            self._consumer = None
            raise SourceError(
                f"kafka.topic {self.cfg.topic}: no such topic on {self.cfg.bootstrap_servers} "
                "(or this principal may not describe it)"
            )

    async def poll(self) -> list[RawBatch]:
        """The records fetched since the last poll, as one batch per partition.

        A partition whose records cannot be read (``unreadable_reason``) is paused, so
        the others go on, and ``UnreadablePartitionError`` names it; other errors propagate.
        """
        from aiokafka.errors import KafkaError

        try:
            records = await self._consumer.getmany(
                timeout_ms=self.cfg.fetch_timeout_ms, max_records=self.cfg.max_batch_records
            )
        except KafkaError as exc:
            unreadable = await self._unreadable(exc)
            if unreadable is None:
                raise
            raise unreadable from exc
        out = []
        self._current = {}
        for tp, msgs in records.items():
            if not msgs:
                continue
            first, last = msgs[0].offset, msgs[-1].offset
            if last - first + 1 == len(msgs):  # the usual case: no gaps (compaction, markers)
                offsets = np.arange(first, last + 1, dtype=np.int64)
            else:
                offsets = np.fromiter(map(_OFFSET, msgs), np.int64, len(msgs))
            values = list(map(_VALUE, msgs))
            if None in values:  # a tombstone: an empty (invalid) record
                values = [b"" if v is None else v for v in values]
            batch = RawBatch(tp.topic, tp.partition, offsets, values)
            out.append(batch)
            self._delivered[tp.partition] = last + 1
            self._current[tp.partition] = batch
        return out

    def is_current(self, batch: RawBatch) -> bool:
        """Whether ``batch`` is of the last poll() and its partition was neither sought
        nor revoked since.

        aiokafka runs a rebalance's callbacks beside the poll loop, and returns
        records while they run: a batch fetched from the old position can arrive
        after the new owner's seek, and must not count as read from the new one.
        """
        return self._current.get(batch.partition) is batch

    async def _unreadable(self, exc: BaseException) -> UnreadablePartitionError | None:
        """Pause the partition ``exc`` cannot be healed on and describe it; None if it can."""
        reason = unreadable_reason(exc)
        if reason is None:
            return None
        tp = failing_partition(exc)
        if tp is None:
            assigned = list(self._consumer.assignment())
            if len(assigned) != 1:
                return None  # cannot tell which partition: reported as a failed poll
            tp = assigned[0]
        try:
            offset: int | None = await self._consumer.position(tp)
        except Exception:  # noqa: BLE001 - revoked meanwhile: the offset is only detail
            offset = None
        self._consumer.pause(tp)
        await self._rewind_others(tp)
        name, text = type(exc).__name__, str(exc)
        detail = text if name in text else f"{name}: {text}" if text else name
        return UnreadablePartitionError(reason, tp.topic, tp.partition, offset, detail)

    async def _rewind_others(self, failed: Any) -> None:
        """Seek the other partitions back to what poll() returned.

        ``getmany()`` drains partition after partition; when one raises, the records
        already drained from the others are lost with the exception, although their
        positions moved past them. Seeking back reads them again.
        """
        consumer = self._consumer
        for tp in list(consumer.assignment()):
            if tp == failed:
                continue
            try:
                position = await consumer.position(tp)
                delivered = self._delivered.get(tp.partition)
                if delivered is None:  # nothing returned since assignment: from the commit
                    delivered = await consumer.committed(tp)
                if delivered is None and self.cfg.auto_offset_reset == "earliest":
                    delivered = (await consumer.beginning_offsets([tp]))[tp]
                if delivered is not None and position > delivered:
                    log.info("re-reading topic=%s partition=%d from offset %d (was at %d)",
                             tp.topic, tp.partition, delivered, position)
                    consumer.seek(tp, delivered)
            except Exception as exc:  # noqa: BLE001 - revoked meanwhile: its next owner reads it
                log.warning("cannot re-read topic=%s partition=%d: %r", tp.topic, tp.partition, exc)

    async def commit(self, offsets: dict[int, int]) -> None:
        """Commit ``next offset to read`` per partition of the configured topic."""
        from aiokafka import TopicPartition

        if not offsets:
            return
        await self._consumer.commit(
            {TopicPartition(self.cfg.topic, p): o for p, o in offsets.items()}
        )

    async def committed_with_metadata(
        self, partitions: Iterable[int]
    ) -> dict[int, tuple[int, str]]:
        """The group's committed (offset, metadata) per partition of the topic that has one.

        aiokafka's ``committed()`` drops the metadata; its coordinator keeps it."""
        from aiokafka import TopicPartition

        tps = [TopicPartition(self.cfg.topic, p) for p in partitions]
        found = await self._consumer._coordinator.fetch_committed_offsets(tps)
        return {tp.partition: (int(om.offset), str(om.metadata or ""))
                for tp, om in found.items() if om.offset >= 0}

    async def seek(self, partition: int, offset: int | None) -> None:
        """Read ``partition`` from ``offset`` on; None: from where ``auto_offset_reset`` says.

        Records fetched before are not returned (aiokafka checks the position)."""
        from aiokafka import TopicPartition

        tp = TopicPartition(self.cfg.topic, partition)
        self._current.pop(partition, None)  # what was polled before is of the old position
        if offset is not None:
            self._consumer.seek(tp, offset)
        elif self.cfg.auto_offset_reset == "earliest":
            await self._consumer.seek_to_beginning(tp)
        else:
            await self._consumer.seek_to_end(tp)

    async def position(self, partition: int) -> int:
        """The offset ``partition`` is read from next (after an assignment: the commit, or
        where ``auto_offset_reset`` says)."""
        from aiokafka import TopicPartition

        return int(await self._consumer.position(TopicPartition(self.cfg.topic, partition)))

    async def partitions_of(self, topic: str) -> set[int]:
        """The partitions of ``topic`` (another topic than the one read); empty if unknown."""
        cluster = await self._consumer._client.fetch_all_metadata()
        return set(cluster.partitions_for_topic(topic) or ())

    async def lag(self) -> dict[int, int]:
        """Consumer lag per assigned partition: the offsets between the position and the
        end of what can be read, the high watermark (read committed: the last stable
        offset, so records of a transaction still open are not lag, nor is the
        transaction's end marker)."""
        from aiokafka import TopicPartition

        committed_only = self.isolation_level == "read_committed"
        lags: dict[int, int] = {}
        for p in sorted(self.assigned):
            tp = TopicPartition(self.cfg.topic, p)
            high = self._consumer.highwater(tp)
            if committed_only:
                stable = self._consumer.last_stable_offset(tp)
                # None or -1: a broker too old to say; the high watermark is then the end
                high = stable if stable is not None and stable >= 0 else high
            if high is None:
                continue
            try:
                position = await self._consumer.position(tp)
            except Exception:  # noqa: BLE001 - partition may be revoked meanwhile
                continue
            lags[p] = max(0, high - position)
        return lags

    def fetch_ages(
        self, exclude: Container[int] = (), now_unix: float | None = None
    ) -> dict[int, float | None] | None:
        """Per assigned partition (but ``exclude``): seconds since the broker last
        answered a fetch for it, None if not since the assignment; None when not
        connected. See ``health.BrokerProbe``."""
        consumer = self._consumer
        if consumer is None:
            return None
        now_ms = (time.time() if now_unix is None else now_unix) * 1000
        ages: dict[int, float | None] = {}
        try:
            for tp in consumer.assignment():
                if tp.partition in exclude:
                    continue
                stamp = consumer.last_poll_timestamp(tp)
                ages[tp.partition] = None if stamp is None else max(0.0, (now_ms - stamp) / 1000)
        except (AssertionError, AttributeError, KeyError):
            # The assignment changed while we looked (a rebalance): nothing is fetched now.
            ages = {}
        return ages

    def coordinator_known(self) -> bool:
        """Whether the consumer knows its group coordinator (aiokafka keeps it private)."""
        coordinator = getattr(self._consumer, "_coordinator", None)
        return getattr(coordinator, "coordinator_id", None) is not None

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
