"""``statuswatch run`` with ``kafka.input: aggregates``: stage 2 of the two-stage layout.

It reads the partial windows ``statuswatch aggregate`` writes (``read_committed``:
only those of committed transactions), merges them per window across all source
partitions (``core.partials.merge_partial``) and runs the unchanged detector: one
set of scope tables, caps, baselines, blast radius and alerts for the whole fleet.

Every partition of the source topic holds the watermark until its worker reports
it, as an assigned partition does in ``run``; a worker that finds its partition
idle (the same ``window.idle_timeout_seconds``) says so. Silence alone is not
idleness here: a partition whose worker is down or being replaced holds the
windows back rather than let them close without its counts
(``statuswatch_partials_age_seconds`` shows it). Snapshots and commits are
today's: the offsets are of the aggregates topic, and a restore keeps the
partition clocks, since the partials re-read from the commit need not carry them,
but closes no window before it has read them again (``REREAD``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from statuswatch.config import Settings
from statuswatch.core.detector import Detector
from statuswatch.core.partials import Partial, merge_partial
from statuswatch.errors import DecodeError
from statuswatch.shell.kafka_source import KafkaSource
from statuswatch.shell.processing import escape
from statuswatch.shell.runtime import KafkaRunner
from statuswatch.shell.sinks import Sink
from statuswatch.shell.sources import RawBatch

log = logging.getLogger(__name__)

#: Stage 2's windows never take silence for idleness (stage 1 reports idle partitions).
NEVER_MS = 1 << 62
#: Stands, in the windows' partition clocks, for the partials to read again after a
#: restore: like an assigned partition not yet read, it holds every window meanwhile.
REREAD = -1


class PartialsRunner(KafkaRunner):
    """``KafkaRunner`` over the aggregates topic: partials in, the same detector."""

    keep_clocks = True

    def __init__(self, settings: Settings, detector: Detector, sink: Sink, **options: Any) -> None:
        """``options``: ``KafkaRunner``'s (status, clock, on_events); the source is the
        aggregates topic, read committed."""
        cfg = settings.kafka.model_copy(
            update={"topic": settings.aggregate.topic, "dead_letter_topic": None}
        )
        super().__init__(settings, detector, sink, **options,
                         source=KafkaSource(cfg, isolation_level="read_committed"))
        self.source_topic = settings.kafka.topic
        detector.windows.idle_timeout_ms = NEVER_MS
        #: source partition -> the aggregates partition its partials arrive on
        self.arrives_on: dict[int, int] = {}
        #: source partition -> monotonic time its last partial was read
        self.last_partial: dict[int, float] = {}
        self.invalid_partials = 0
        self.duplicate_partials = 0
        #: aggregates partition -> the offset up to which it was read before the restore
        #: and is being read again (its partials may belong in windows still open)
        self.rereading: dict[int, int] = {}

    def _pending_min_offset(self, partition: int) -> int | None:
        windows = self.detector.windows
        held = [o for src, agg in self.arrives_on.items()
                if agg == partition and (o := windows.pending_min_offset(src)) is not None]
        return min(held, default=None)

    def take(self, batch: RawBatch, now_ms: int) -> None:
        """Merge one polled batch of partials; note in the ledger how far it was read."""
        seen_below = self.offsets.read_through(batch.partition)
        read_at = time.monotonic()
        for offset, value in zip(batch.offsets.tolist(), batch.values, strict=True):
            try:
                partial = Partial.decode(value)
                if partial.topic != self.source_topic:
                    raise DecodeError("invalid_partial", f"of topic {partial.topic!r}, "
                                      f"not kafka.topic {self.source_topic!r}")
                if not merge_partial(self.detector, partial, now_ms=now_ms, offset=offset,
                                     seen_below=seen_below):
                    self.duplicate_partials += 1
                    log.warning("dropped a second partial of window %d source partition %d: "
                                "topic=%s partition=%d offset=%d", partial.start_ms or 0,
                                partial.partition, escape(batch.topic), batch.partition, offset)
            except DecodeError as exc:
                self.invalid_partials += 1
                log.warning("skipped partial topic=%s partition=%d offset=%d: %s",
                            escape(batch.topic), batch.partition, offset, escape(str(exc)))
                continue
            self.arrives_on[partial.partition] = batch.partition
            self.last_partial[partial.partition] = read_at
        self.status.records_reread += self.offsets.record(batch.partition, batch.offsets)
        until = self.rereading.get(batch.partition)
        if until is not None and int(batch.offsets[-1]) + 1 >= until:
            self._reread({batch.partition})

    def _reread(self, partitions: set[int]) -> None:
        """``partitions`` are read again as far as before the restore (or gone)."""
        for p in partitions:
            self.rereading.pop(p, None)
        if not self.rereading:
            self.detector.windows.revoke([REREAD])

    async def on_assign(self, partitions: set[int]) -> None:
        """Every partition of the source topic holds the watermark until reported; and
        no window closes before the partials read before a restore are read again.

        The restored partition clocks already count those partials (see
        ``keep_clocks``), but their counts are in no window: were another aggregates
        partition's new partials read first, a window could close without them.
        """
        sources = await self.source.partitions_of(self.source_topic)
        now_ms = self.clock()
        self.detector.windows.assign(sources, now_ms)
        now = time.monotonic()
        for src in sources:
            self.last_partial.setdefault(src, now)
        for p in partitions:
            read = self.offsets.read_through(p)
            if read is not None and await self.source.position(p) < read:
                self.rereading[p] = read
        if self.rereading:
            log.info("reading again the partials of topic=%s up to offsets %s before "
                     "closing a window", escape(self.source.cfg.topic), self.rereading)
            self.detector.windows.assign([REREAD], now_ms)
        self._reread(set())

    async def on_revoke(self, partitions: set[int]) -> None:
        await self.checkpoint.run(sorted(partitions & set(self.offsets.consumed())))
        self.offsets.revoke(partitions)
        self._reread(partitions)
        gone = [src for src, agg in self.arrives_on.items() if agg in partitions]
        self.detector.windows.revoke(gone)
        for src in gone:
            del self.arrives_on[src]


class PartialsCollector(Collector):
    """Stage 2's own metrics: how fresh its input is, per source partition."""

    def __init__(self, runner: PartialsRunner) -> None:
        self.runner = runner

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        age = GaugeMetricFamily(
            "statuswatch_partials_age_seconds",
            "Seconds since the last partial window of a source partition was read "
            "(stage 2); grows while its stage-1 worker is down or behind.",
            labels=["source_partition"],
        )
        for src, seen in sorted(self.runner.last_partial.items()):
            age.add_metric([str(src)], max(0.0, now - seen))
        yield age
        idle = GaugeMetricFamily(
            "statuswatch_partials_source_idle",
            "1 if stage 1 reported the source partition idle (it holds no window back).",
            labels=["source_partition"],
        )
        for src in sorted(self.runner.last_partial):
            idle.add_metric([str(src)], float(self.runner.detector.windows.is_idle(src)))
        yield idle
        yield CounterMetricFamily(
            "statuswatch_partials_duplicate",
            "Second partials of one window and source partition (dropped, each logged).",
            value=self.runner.duplicate_partials,
        )
        yield CounterMetricFamily(
            "statuswatch_partials_invalid",
            "Partial windows that did not parse (skipped, each logged).",
            value=self.runner.invalid_partials,
        )


__all__ = ["PartialsCollector", "PartialsRunner"]
