"""How far each partition of the input topic has been read, accounted for and committed.

Kafka delivers at least once: after a rebalance, a failed commit or a restart,
records up to the last commit are read again. The ledger keeps, per partition
of one topic, the four offsets that tell a re-read from new input and say what
may be committed:

* **consumed-next**: the offset after the last record read since the partition
  was (re)assigned; absent until it is read;
* **read-through**: the offset after the last record ever read; kept across
  revocations and in the snapshot, so re-reads are recognised;
* **accounted-through**: offsets below it are counted in closed windows. While
  the partition is read it follows the open windows (their smallest pending
  offset, else consumed-next), never below the value kept at its last revocation
  or restore;
* **committed**: the last offset committed since the partition was (re)assigned.

A commit never passes a record still held in an open window, so a crash, a stop
or a rebalance re-reads exactly what had not been accounted for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from statuswatch.core.columns import I64


@dataclass(frozen=True, slots=True)
class SavedOffsets:
    """The ledger's part of a snapshot (its ``consumer`` section), parsed."""

    read_through: dict[int, int] = field(default_factory=dict)
    accounted: dict[int, int] = field(default_factory=dict)
    records_reread: int = 0

    @classmethod
    def parse(cls, consumer: Mapping[str, Any], topic: str) -> SavedOffsets:
        """Parse a snapshot's ``consumer`` section; empty if it is of another topic.

        Raises ValueError, TypeError or KeyError on a section that does not parse.

        >>> SavedOffsets.parse({"topic": "logs", "read_through": {"0": 7}}, "logs")
        SavedOffsets(read_through={0: 7}, accounted={}, records_reread=0)
        >>> SavedOffsets.parse({"topic": "logs", "read_through": {"0": 7}}, "other")
        SavedOffsets(read_through={}, accounted={}, records_reread=0)
        >>> SavedOffsets.parse({"topic": "logs", "read_through": [7]}, "logs")
        Traceback (most recent call last):
        TypeError: partition offsets: a mapping expected, not list
        """
        if not isinstance(consumer, Mapping):
            raise TypeError(f"consumer offsets: a mapping expected, not {type(consumer).__name__}")
        if consumer.get("topic") != topic:
            return cls()  # offsets of another topic (or none) mean nothing here
        return cls(
            _offsets(consumer.get("read_through", {})),
            _offsets(consumer.get("accounted", {})),
            int(consumer.get("records_reread", 0)),
        )


def _offsets(raw: object) -> dict[int, int]:
    """``{"partition": offset}`` from a snapshot; TypeError if it is not a mapping."""
    if not isinstance(raw, Mapping):
        raise TypeError(f"partition offsets: a mapping expected, not {type(raw).__name__}")
    return {int(p): int(o) for p, o in raw.items()}


class OffsetLedger:
    """The offsets of one topic's partitions (see the module docstring).

    ``pending_min_offset(partition)``: the smallest offset of the partition still
    held in an open window, or None (``WindowCounter.pending_min_offset``).

    >>> ledger = OffsetLedger("logs", lambda partition: None)
    >>> ledger.record(0, np.arange(0, 10))
    0
    >>> ledger.to_commit()
    {0: 10}
    >>> ledger.mark_committed({0: 10}); ledger.to_commit()
    {}
    >>> ledger.record(0, np.arange(5, 12))  # five of them read before
    5
    """

    def __init__(self, topic: str, pending_min_offset: Callable[[int], int | None]) -> None:
        self.topic = topic
        self._pending_min_offset = pending_min_offset
        self._consumed_next: dict[int, int] = {}
        self._read_through: dict[int, int] = {}
        #: for partitions not read since (re)assigned or restored
        self._accounted: dict[int, int] = {}
        self._committed: dict[int, int] = {}

    def record(self, partition: int, offsets: I64) -> int:
        """Note a processed batch of ``partition`` (ascending offsets); return how many
        of its records had been read before."""
        read_through = self._read_through.get(partition)
        rereads = 0
        if read_through is not None and int(offsets[0]) < read_through:
            rereads = int(np.count_nonzero(offsets < read_through))
        end = int(offsets[-1]) + 1
        self._consumed_next[partition] = end
        self._read_through[partition] = end if read_through is None else max(read_through, end)
        return rereads

    def consumed(self) -> dict[int, int]:
        """Consumed-next per partition read since it was (re)assigned."""
        return dict(self._consumed_next)

    def committed(self) -> dict[int, int]:
        """Committed offset per partition since it was (re)assigned."""
        return dict(self._committed)

    def read_through(self, partition: int) -> int | None:
        return self._read_through.get(partition)

    def accounted_through(self, partition: int) -> int | None:
        """Offset below which ``partition``'s records are counted in closed windows.

        A re-read record below it is skipped without counting as late. Not the
        read-through offset: a revocation drops the partition's share of the open
        windows, so a record read before it but re-read after its window closed
        was never counted, and is late.
        """
        kept = self._accounted.get(partition)
        if partition not in self._consumed_next:
            return kept
        pending = self._pending_min_offset(partition)
        live = self._consumed_next[partition] if pending is None else pending
        # What was kept at a revocation or restore stays true while the partition is
        # read again in batches that have not yet got past it.
        return live if kept is None else max(live, kept)

    def to_commit(self, partitions: Iterable[int] | None = None) -> dict[int, int]:
        """Next offset to commit per partition (of ``partitions``, default all read),
        where it is past the last commit.

        Never past a record still held in an open window: after a crash, a stop or
        a rebalance that record is read again, by this instance or by the
        partition's next owner.
        """
        out: dict[int, int] = {}
        for p in list(self._consumed_next) if partitions is None else partitions:
            if p not in self._consumed_next:
                continue
            pending = self._pending_min_offset(p)
            position = self._consumed_next[p] if pending is None else pending
            if position > self._committed.get(p, -1):
                out[p] = position
        return out

    def mark_committed(self, positions: Mapping[int, int]) -> None:
        self._committed.update(positions)

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget what was read of ``partitions`` since their assignment, keeping how
        far they are accounted for. Call before the windows drop their share."""
        for p in partitions:
            accounted = self.accounted_through(p)
            if accounted is not None:
                self._accounted[p] = accounted
        for p in partitions:
            self._consumed_next.pop(p, None)
            self._committed.pop(p, None)

    def dump(self) -> dict[str, Any]:
        """Plain JSON for the snapshot: read-through and accounted-through (open
        windows are not in the snapshot: what closed ones account for)."""
        return {
            "topic": self.topic,
            "read_through": {str(p): o for p, o in sorted(self._read_through.items())},
            "accounted": {str(p): o for p in sorted({*self._accounted, *self._consumed_next})
                          if (o := self.accounted_through(p)) is not None},
        }

    def restore(self, saved: SavedOffsets) -> None:
        """Take read-through and accounted-through from a snapshot, before reading."""
        self._read_through = dict(saved.read_through)
        self._accounted = dict(saved.accounted)


__all__ = ["OffsetLedger", "SavedOffsets"]
