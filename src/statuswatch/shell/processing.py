"""One raw batch through the detector: the step ``run`` and ``backtest`` share.

Rejected records are logged (escaped: their bytes are partly attacker-controlled),
each with topic, partition and offset, and handed to the dead-letter queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from statuswatch.core.columns import DecodedBatch, InvalidRecord
from statuswatch.core.decide import AlertEvent
from statuswatch.core.detector import Detector
from statuswatch.shell.sources import RawBatch

log = logging.getLogger(__name__)

#: Most invalid records logged one by one per batch; the rest are only counted.
MAX_INVALID_LOGGED = 5


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
    log_invalid(batch, result.batch.invalid)
    return result.events


def log_invalid(batch: RawBatch, invalid: list[InvalidRecord]) -> None:
    """Log the first ``MAX_INVALID_LOGGED`` rejected records of ``batch``, count the rest."""
    for bad in invalid[:MAX_INVALID_LOGGED]:
        log.warning(
            "skipped record topic=%s partition=%d offset=%d reason=%s value=%s",
            escape(batch.topic), batch.partition, int(batch.offsets[bad.index]), bad.reason,
            escape(batch.values[bad.index].decode("utf-8", "replace"), 120),
        )
    if len(invalid) > MAX_INVALID_LOGGED:
        log.warning(
            "skipped %d more records topic=%s partition=%d offsets=%d..%d",
            len(invalid) - MAX_INVALID_LOGGED, escape(batch.topic), batch.partition,
            int(batch.offsets[0]), int(batch.offsets[-1]),
        )


__all__ = ["MAX_INVALID_LOGGED", "escape", "log_invalid", "process_batch"]
