"""Replay of recorded input in event time, as fast as it can go.

The same detector as ``statuswatch run``, fed from a file (or a list) instead of
Kafka; the CLI around it is ``backtest_cli``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from statuswatch.core.columns import DecodedBatch, code_label
from statuswatch.core.detector import Detector
from statuswatch.shell.processing import process_batch
from statuswatch.shell.sinks import Sink
from statuswatch.shell.sources import RawBatch


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


__all__ = ["BacktestSummary", "backtest"]
