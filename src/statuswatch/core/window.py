"""Event-time tumbling windows with a watermark, counted with one bincount per batch.

A window is ``[start_ms, start_ms + size_ms)`` in integer milliseconds.
The watermark is the smallest "latest event time" over the partitions that are
not idle, minus the allowed lateness. A window closes once the watermark passes
its end; a record whose window has closed is *late*: counted, then dropped.

>>> w = WindowCounter(size_ms=10_000, lateness_ms=0)
>>> rows = np.array([[0, 0, 0]])
>>> w.add(np.array([1_000, 2_000, 12_000]), rows, np.array([0, 1, 0]), n_rows=1, n_cols=2)
0
>>> [(c.start_ms, c.counts.tolist()) for c in w.close_ready(now_ms=0)]
[(0, [[1, 1]])]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from statuswatch.core.columns import I64

#: Never emit more than this many empty windows at once after a gap in the input.
MAX_EMPTY_WINDOWS = 8640


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    start_ms: int
    end_ms: int
    counts: I64  # shape (rows, cols): requests per (scope row, code column)


@dataclass(slots=True)
class _PartitionClock:
    max_ts_ms: int | None  # None: assigned, nothing read yet
    last_seen_now_ms: int
    #: said idle by its source (a partial window of ``statuswatch aggregate``)
    idle: bool = False


@dataclass(slots=True)
class _OpenWindow:
    #: counts per source partition, so a partition handed to another consumer
    #: can take its share of an open window with it
    parts: dict[int, I64] = field(default_factory=dict)
    #: smallest source offset per partition of the records counted here
    min_offset: dict[int, int] = field(default_factory=dict)
    #: per partition, how many chunks of its partial window were counted (stage 2)
    chunks: dict[int, int] = field(default_factory=dict)

    def shape(self) -> tuple[int, int]:
        rows = max((c.shape[0] for c in self.parts.values()), default=0)
        cols = max((c.shape[1] for c in self.parts.values()), default=0)
        return rows, cols

    def total(self, shape: tuple[int, int]) -> I64:
        out = np.zeros(shape, np.int64)
        for c in self.parts.values():
            out[: c.shape[0], : c.shape[1]] += c
        return out


def _grow(counts: I64, n_rows: int, n_cols: int) -> I64:
    if counts.shape[0] >= n_rows and counts.shape[1] >= n_cols:
        return counts
    grown = np.zeros((max(n_rows, counts.shape[0]), max(n_cols, counts.shape[1])), np.int64)
    grown[: counts.shape[0], : counts.shape[1]] = counts
    return grown


class WindowCounter:
    """Counts requests per (window, scope row, code column) and closes windows in order."""

    def __init__(self, size_ms: int, lateness_ms: int, idle_timeout_ms: int = 30_000) -> None:
        if size_ms <= 0:
            raise ValueError("size_ms must be positive")
        self.size_ms = size_ms
        self.lateness_ms = lateness_ms
        self.idle_timeout_ms = idle_timeout_ms
        self._open: dict[int, _OpenWindow] = {}
        self._clocks: dict[int, _PartitionClock] = {}
        #: start of the first window not yet closed (None until the first record)
        self.next_start_ms: int | None = None
        self.late_records = 0

    def window_start(self, ts_ms: I64) -> I64:
        return (ts_ms // self.size_ms) * self.size_ms

    def add(
        self,
        ts_ms: I64,
        rows: I64,
        cols: I64,
        *,
        n_rows: int,
        n_cols: int,
        partition: int = 0,
        offsets: I64 | None = None,
        now_ms: int = 0,
        seen_below: int | None = None,
    ) -> int:
        """Count one batch. ``rows`` has one line per scope level (-1 = not counted).

        Returns how many records were late (their window had already closed).
        Records at ``offsets`` below ``seen_below`` were read before (Kafka
        re-delivers after a rebalance or restart): their closed window already
        counted them, so they are dropped without counting as late.
        """
        if ts_ms.size == 0:
            return 0
        starts = self.window_start(ts_ms)
        clock = self._clocks.get(partition)
        batch_max = int(ts_ms.max())
        if clock is None:
            self._clocks[partition] = _PartitionClock(batch_max, now_ms)
        else:
            prev = clock.max_ts_ms
            clock.max_ts_ms = batch_max if prev is None else max(prev, batch_max)
            clock.last_seen_now_ms = now_ms
        on_time = np.ones(ts_ms.shape, dtype=bool)
        if self.next_start_ms is not None:
            on_time = starts >= self.next_start_ms
        dropped = int(ts_ms.size - np.count_nonzero(on_time))
        late = dropped
        if dropped:
            if seen_below is not None and offsets is not None:
                late -= int(np.count_nonzero(~on_time & (offsets < seen_below)))
            starts, rows, cols = starts[on_time], rows[:, on_time], cols[on_time]
            if offsets is not None:
                offsets = offsets[on_time]
        self.late_records += late
        if starts.size == 0:
            return late
        # A batch spans a few windows: index them by offset from the first, no sort.
        first_start = int(starts.min())
        offset = (starts - first_start) // self.size_ms
        span = int(offset.max()) + 1
        if span <= 4 * len(starts):
            present = np.flatnonzero(np.bincount(offset, minlength=span))
            lookup = np.zeros(span, np.int64)
            lookup[present] = np.arange(len(present))
            uniq_starts, win_idx = first_start + present * self.size_ms, lookup[offset]
        else:  # records scattered over a long time: too sparse for a lookup table
            uniq_starts, win_idx = np.unique(starts, return_inverse=True)
        n_levels = rows.shape[0]
        flat_win = np.tile(win_idx, n_levels)
        flat_rows = rows.reshape(-1)
        flat_cols = np.tile(cols, n_levels)
        keep = flat_rows >= 0
        keys = (flat_win[keep] * n_rows + flat_rows[keep]) * n_cols + flat_cols[keep]
        counts = np.bincount(keys, minlength=len(uniq_starts) * n_rows * n_cols).reshape(
            len(uniq_starts), n_rows, n_cols
        )
        for i, start in enumerate(uniq_starts.tolist()):
            window, part = self._part_of(start, partition, n_rows, n_cols)
            part[:n_rows, :n_cols] += counts[i]
            if offsets is not None:
                first = int(offsets[win_idx == i].min())
                prev = window.min_offset.get(partition)
                window.min_offset[partition] = first if prev is None else min(prev, first)
        return late

    def _part_of(
        self, start_ms: int, partition: int, n_rows: int, n_cols: int
    ) -> tuple[_OpenWindow, I64]:
        """The open window at ``start_ms`` and ``partition``'s counts in it, grown to
        (``n_rows``, ``n_cols``) and stored there: the caller adds to them in place."""
        window = self._open.get(start_ms)
        if window is None:
            window = self._open[start_ms] = _OpenWindow()
        part = window.parts.get(partition)
        part = _grow(part, n_rows, n_cols) if part is not None else np.zeros(
            (n_rows, n_cols), np.int64
        )
        window.parts[partition] = part
        return window, part

    def add_counts(
        self,
        start_ms: int,
        rows: I64,
        cols: I64,
        counts: I64,
        *,
        n_rows: int,
        n_cols: int,
        partition: int,
        offset: int | None = None,
        seen_below: int | None = None,
        chunk: int = 0,
    ) -> int:
        """Count requests already summed per (row, col) in the window at ``start_ms``:
        one source partition's partial window (its ``chunk``-th chunk), stored as that
        partition's share.

        Returns how many were late (the window had closed). A partial at an
        ``offset`` below ``seen_below`` was read before: dropped, not late.

        >>> w = WindowCounter(size_ms=10, lateness_ms=0)
        >>> w.add_counts(0, np.array([0, 0]), np.array([0, 1]), np.array([3, 4]),
        ...              n_rows=1, n_cols=2, partition=5)
        0
        >>> w.advance(5, watermark_ms=10, now_ms=0)
        >>> [c.counts.tolist() for c in w.close_ready(now_ms=0)]
        [[[3, 4]]]
        """
        if self.next_start_ms is not None and start_ms < self.next_start_ms:
            if seen_below is not None and offset is not None and offset < seen_below:
                return 0
            late = int(counts.sum())
            self.late_records += late
            return late
        window, part = self._part_of(start_ms, partition, n_rows, n_cols)
        np.add.at(part, (rows, cols), counts)
        window.chunks[partition] = max(window.chunks.get(partition, 0), chunk + 1)
        if offset is not None:
            prev = window.min_offset.get(partition)
            window.min_offset[partition] = offset if prev is None else min(prev, offset)
        return 0

    def holds(self, start_ms: int, partition: int, chunk: int = 0) -> bool:
        """Whether the open window at ``start_ms`` has counted chunk ``chunk`` of
        ``partition``'s partial window (counts of ``partition``, for chunk 0)."""
        window = self._open.get(start_ms)
        if window is None:
            return False
        if chunk == 0:
            return partition in window.parts
        return window.chunks.get(partition, 0) > chunk

    def advance(
        self, partition: int, watermark_ms: int | None, now_ms: int,
        idle_for_ms: int | None = None,
    ) -> None:
        """Take ``partition``'s watermark as its source reported it (a partial window).

        ``idle_for_ms`` (not None): the source found the partition idle, silent that
        long; it stops holding the watermark until a report without it.
        """
        max_ts = None if watermark_ms is None else watermark_ms + self.lateness_ms
        clock = self._clocks.get(partition)
        if clock is None:
            clock = self._clocks[partition] = _PartitionClock(max_ts, now_ms)
        elif max_ts is not None:
            clock.max_ts_ms = max_ts if clock.max_ts_ms is None else max(clock.max_ts_ms, max_ts)
        clock.idle = idle_for_ms is not None
        clock.last_seen_now_ms = now_ms - (idle_for_ms or 0)

    def is_idle(self, partition: int) -> bool:
        """Whether ``partition``'s source reported it idle (see :meth:`advance`)."""
        clock = self._clocks.get(partition)
        return clock is not None and clock.idle

    def assign(self, partitions: Iterable[int], now_ms: int) -> None:
        """Expect input from ``partitions``: each holds the watermark until it is
        read from or has been idle for the idle timeout."""
        for p in partitions:
            self._clocks.setdefault(p, _PartitionClock(None, now_ms))

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget ``partitions``: their clocks, and their share of the open windows.

        Whoever owns them next re-reads their records from before the earliest
        open window (see :meth:`pending_min_offset`), so keeping those counts
        here would count them twice.
        """
        for p in partitions:
            self._clocks.pop(p, None)
            for start, window in list(self._open.items()):
                window.parts.pop(p, None)
                window.min_offset.pop(p, None)
                window.chunks.pop(p, None)
                if not window.parts:
                    del self._open[start]

    def watermark_ms(self, now_ms: int) -> int | None:
        """Event time up to which all input is assumed complete, or None if unknown."""
        active = [
            c.max_ts_ms
            for c in self._clocks.values()
            if not c.idle and now_ms - c.last_seen_now_ms < self.idle_timeout_ms
        ]
        if None in active:
            return None  # an assigned partition has not been read yet
        if active:
            return min(t for t in active if t is not None) - self.lateness_ms
        known = [c for c in self._clocks.values() if c.max_ts_ms is not None]
        if not known:
            return None
        # Every partition is idle: let event time follow the wall clock, so that
        # silence still closes (empty) windows and can be alerted on.
        latest = max(known, key=lambda c: c.max_ts_ms or 0)
        assert latest.max_ts_ms is not None
        return latest.max_ts_ms + (now_ms - latest.last_seen_now_ms) - self.lateness_ms

    def move_row(self, src: int, dst: int) -> None:
        """Count row ``src``'s records in the open windows as ``dst``'s (a scope folded
        into ``other`` takes its open counts with it).

        >>> w = WindowCounter(10, 0)
        >>> _ = w.add(np.array([1, 2]), np.array([[0, 1]]), np.array([0, 0]), n_rows=2, n_cols=1)
        >>> w.move_row(1, 0)
        >>> w.close_all()[0].counts.tolist()
        [[2], [0]]
        """
        for window in self._open.values():
            for partition, counts in window.parts.items():
                if counts.shape[0] <= src:
                    continue
                grown = window.parts[partition] = _grow(counts, dst + 1, counts.shape[1])
                grown[dst] += grown[src]
                grown[src] = 0

    def close_ready(self, now_ms: int) -> list[ClosedWindow]:
        """Close, in order, every window whose end the watermark has passed."""
        watermark = self.watermark_ms(now_ms)
        if watermark is None:
            return []
        return self._close_until(watermark)

    def close_all(self) -> list[ClosedWindow]:
        """Close every open window (end of a finite input)."""
        if not self._open:
            return []
        return self._close_until(max(self._open) + self.size_ms)

    def _close_until(self, watermark: int) -> list[ClosedWindow]:
        if self.next_start_ms is None:
            # Start at the earliest window only once it can close: until then an
            # earlier record may still arrive within the lateness.
            if not self._open or min(self._open) + self.size_ms > watermark:
                return []
            self.next_start_ms = min(self._open)
        closed: list[ClosedWindow] = []
        shape = self._shape()
        # The windows without records share one read-only array of zeros: a night of
        # them is thousands of windows.
        empty = np.zeros(shape, np.int64)
        empty.flags.writeable = False
        while self.next_start_ms + self.size_ms <= watermark:
            start = self.next_start_ms
            window = self._open.pop(start, None)
            if window is None:
                if len(closed) >= MAX_EMPTY_WINDOWS and not self._open:
                    # A long gap: skip ahead instead of emitting days of empty windows.
                    self.next_start_ms = (watermark // self.size_ms) * self.size_ms
                    break
                counts = empty
            else:
                counts = window.total(shape)
            closed.append(ClosedWindow(start, start + self.size_ms, counts))
            self.next_start_ms = start + self.size_ms
        return closed

    def _shape(self) -> tuple[int, int]:
        shapes = [w.shape() for w in self._open.values()]
        return max((s[0] for s in shapes), default=0), max((s[1] for s in shapes), default=0)

    def pending_min_offset(self, partition: int) -> int | None:
        """Smallest offset of ``partition`` still held in an open window."""
        offsets = [
            w.min_offset[partition] for w in self._open.values() if partition in w.min_offset
        ]
        return min(offsets) if offsets else None

    @property
    def open_windows(self) -> int:
        return len(self._open)

    def forget_open(self, keep_clocks: bool = False) -> None:
        """Drop open windows and partition clocks, keeping the closed-window frontier.

        For a restart that re-reads the open windows' records from the source:
        records of windows before ``next_start_ms`` then count as late.
        ``keep_clocks``: the clocks stay (partial windows re-read from a commit
        need not carry the newest watermark of every source partition).
        """
        self._open.clear()
        if not keep_clocks:
            self._clocks.clear()

    def snapshot(self) -> dict[str, Any]:
        """Plain-JSON state: open windows (sparse counts), partition clocks, progress."""
        windows = []
        for start, w in sorted(self._open.items()):
            parts = {}
            for p, counts in w.parts.items():
                rows, cols = np.nonzero(counts)
                parts[str(p)] = {
                    "shape": list(counts.shape),
                    "cells": np.stack([rows, cols, counts[rows, cols]], axis=1).tolist(),
                }
            windows.append({
                "start_ms": start,
                "parts": parts,
                "min_offset": {str(p): o for p, o in w.min_offset.items()},
                "chunks": {str(p): n for p, n in w.chunks.items()},
            })
        return {
            "size_ms": self.size_ms,
            "next_start_ms": self.next_start_ms,
            "late_records": self.late_records,
            "clocks": {str(p): c.max_ts_ms for p, c in self._clocks.items()},
            "idle": sorted(p for p, c in self._clocks.items() if c.idle),
            "open": windows,
        }

    def restore(self, state: dict[str, Any], now_ms: int) -> None:
        """Rebuild from :meth:`snapshot`; partition clocks count as seen at ``now_ms``."""
        if state["size_ms"] != self.size_ms:
            raise ValueError(
                f"snapshot has windows of {state['size_ms']} ms, config says {self.size_ms} ms"
            )
        self.next_start_ms = state["next_start_ms"]
        self.late_records = int(state["late_records"])
        self._clocks = {
            int(p): _PartitionClock(None if t is None else int(t), now_ms)
            for p, t in state["clocks"].items()
        }
        for p in state.get("idle", []):  # absent in snapshots written before it was
            if int(p) in self._clocks:
                self._clocks[int(p)].idle = True
        self._open = {}
        for w in state["open"]:
            parts = {}
            for p, part in w["parts"].items():
                counts = np.zeros(tuple(part["shape"]), np.int64)
                cells = np.asarray(part["cells"], np.int64).reshape(-1, 3)
                counts[cells[:, 0], cells[:, 1]] = cells[:, 2]
                parts[int(p)] = counts
            self._open[int(w["start_ms"])] = _OpenWindow(
                parts, {int(p): int(o) for p, o in w["min_offset"].items()},
                {int(p): int(n) for p, n in w.get("chunks", {}).items()},
            )
