"""Counts summed over several horizons, kept as running block sums.

A sparse scope's evidence is meaningless in one 10 s window (a 2-a-minute app's
429 storm is a third of a request a window) and overwhelming over ten minutes.
Each series is therefore scored over the window itself and over the sums of its
last ``h`` windows for every horizon ``h`` of ``detect.horizons`` (1 min, 10 min,
1 h by default).

The sums are never re-added from history. Horizon ``i`` is kept as blocks of the
horizon before it (``lengths[i - 1]`` windows): a ring of the last complete
blocks, their running total, and the block being filled. The sum read after a
window is the ring's total plus that partial block, which covers between
``lengths[i] - lengths[i - 1] + 1`` and ``lengths[i]`` windows (``span``); it is
exact at every block boundary and always for a horizon of blocks of one window.
A window costs two array additions per horizon, a block boundary two more.

>>> sums = HorizonSums([1, 2, 4])
>>> for x in [1, 2, 3, 4, 5]:
...     got = sums.push(np.array([[x]]))
>>> [int(a[0, 0]) for a in got], sums.spans()
([5, 9, 12], [1, 2, 3])
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from statuswatch.core.columns import I64
from statuswatch.core.score import ShareScores

I32 = npt.NDArray[np.int32]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class HorizonView:
    """One horizon's counts, share scores and hits in the latest window."""

    windows: int  # the horizon's length
    counts: I64
    shares: ShareScores
    hit_up: B
    hit_down: B
    #: past the gates and at least ``clear_score``: too elevated to teach the baselines
    elevated: B


def _padded(a: Any, shape: tuple[int, int]) -> Any:
    """``a`` grown with zeros to ``shape`` (itself when it already has that shape)."""
    if a.shape == shape:
        return a
    out = np.zeros(shape, a.dtype)
    out[: a.shape[0], : a.shape[1]] = a[: shape[0], : shape[1]]
    return out


class HorizonSums:
    """Running sums of (rows, cols) window counts over each horizon of ``lengths``
    (in windows; the first is 1, each a multiple of the one before)."""

    def __init__(self, lengths: Sequence[int]) -> None:
        self.lengths = tuple(int(n) for n in lengths)
        if not self.lengths or self.lengths[0] != 1:
            raise ValueError("the first horizon is the window itself (1)")
        self.windows = 0  # windows pushed
        self._shape = (0, 0)
        n = len(self.lengths)
        self._ring: list[deque[I32]] = [
            deque(maxlen=max(self.lengths[i] // self.lengths[i - 1] - 1, 1)) if i else deque()
            for i in range(n)
        ]
        self._ring_sum: list[I64] = [np.zeros((0, 0), np.int64) for _ in range(n)]
        self._partial: list[I64] = [np.zeros((0, 0), np.int64) for _ in range(n)]
        #: the last window with any request: sums are all zero long after it
        self._last_counted = -(10**12)

    def _fit(self, shape: tuple[int, int]) -> None:
        if shape == self._shape:
            return
        shape = (max(shape[0], self._shape[0]), max(shape[1], self._shape[1]))
        for i in range(1, len(self.lengths)):
            self._ring_sum[i] = _padded(self._ring_sum[i], shape)
            self._partial[i] = _padded(self._partial[i], shape)
            self._ring[i] = deque((_padded(b, shape) for b in self._ring[i]),
                                  maxlen=self._ring[i].maxlen)
        self._shape = shape

    def _block(self, i: int) -> int:
        return self.lengths[i - 1]

    def push(self, counts: I64) -> list[I64]:
        """Add one closed window's counts; each horizon's sum after it (``[0]``: ``counts``)."""
        self._fit(counts.shape)
        self.windows += 1
        if counts.any():
            self._last_counted = self.windows
        rows, cols = counts.shape
        out: list[I64] = [counts]
        for i in range(1, len(self.lengths)):
            partial = self._partial[i]
            partial[:rows, :cols] += counts
            out.append((self._ring_sum[i] + partial)[:rows, :cols])
            if self.windows % self._block(i) == 0:
                self._close_block(i)
        return out

    def peek(self, counts: I64, rows: I64) -> tuple[list[I64], list[int]]:
        """What ``push(counts)`` would return, at ``rows`` (ascending) only, and ``spans()``
        after it, changing nothing.

        >>> sums = HorizonSums([1, 2])
        >>> _ = sums.push(np.array([[1], [2]]))
        >>> got, spans = sums.peek(np.array([[3], [4]]), np.array([1]))
        >>> [a.tolist() for a in got], spans
        ([[[4]], [[6]]], [1, 2])
        """
        part = counts[rows]
        out = [part]
        if self._shape == counts.shape:  # every row and column has sums: whole-row gathers
            every = len(rows) == counts.shape[0]  # ``rows`` ascend: every row, in order
            for i in range(1, len(self.lengths)):
                ring, partial = self._ring_sum[i], self._partial[i]
                if not every:
                    ring, partial = np.take(ring, rows, axis=0), np.take(partial, rows, axis=0)
                out.append(ring + partial + part)
            return out, self.spans(ahead=1)
        have = rows < self._shape[0]
        at, cols = rows[have], min(self._shape[1], counts.shape[1])
        for i in range(1, len(self.lengths)):
            total = part.copy()
            total[have, :cols] += self._ring_sum[i][at, :cols] + self._partial[i][at, :cols]
            out.append(total)
        return out, self.spans(ahead=1)

    def push_rows(self, counts: I64, rows: I64) -> None:
        """``push(counts)`` of counts that are 0 outside ``rows`` (ascending), without the sums."""
        self._fit(counts.shape)
        self.windows += 1
        every = len(rows) == counts.shape[0]  # ``rows`` ascend: every row, in order
        part = counts if every else counts[rows]
        if part.any():
            self._last_counted = self.windows
        for i in range(1, len(self.lengths)):
            if every:
                self._partial[i][: counts.shape[0], : counts.shape[1]] += part
            else:
                self._partial[i][rows, : counts.shape[1]] += part
            if self.windows % self._block(i) == 0:
                self._close_block(i)

    def rows_with_counts(self, n_rows: int) -> B:
        """Rows with a count in the first horizon after the window's (before the next
        push): the rows whose sums past it may still rise."""
        out = np.zeros(n_rows, dtype=bool)
        if len(self.lengths) > 1:
            have = min(n_rows, self._shape[0])
            # counts are never negative: a row's sum is positive where any count is
            both = self._ring_sum[1][:have] + self._partial[1][:have]
            out[:have] = both @ np.ones(both.shape[1], both.dtype) > 0
        return out

    def _close_block(self, i: int) -> None:
        ring = self._ring[i]
        if len(ring) == ring.maxlen:
            self._ring_sum[i] -= ring.popleft()
        block = self._partial[i].astype(np.int32)  # a block's count fits; half the memory
        ring.append(block)
        self._ring_sum[i] += block
        self._partial[i] = np.zeros(self._shape, np.int64)

    def push_silent(self, n: int, shape: tuple[int, int]) -> None:
        """``n`` windows without requests on tables of ``shape``: the same sums as ``n``
        pushes of zeros of that shape."""
        self._fit(shape)
        flush = self.lengths[-1] + self.lengths[-2] if len(self.lengths) > 1 else 0
        if self.windows - self._last_counted >= flush:
            self.windows += n  # every sum is zero already: only the phase moves
            return
        start, self.windows = self.windows, self.windows + n
        for i in range(1, len(self.lengths)):
            closes = self.windows // self._block(i) - start // self._block(i)
            if closes == 0:
                continue
            self._close_block(i)  # the block being filled, with what it holds
            # The blocks after it are empty: the ring turns over once at most, and its
            # empty blocks share one array (only zero_rows writes to blocks: zeros).
            ring, empty = self._ring[i], np.zeros(self._shape, np.int32)
            for _ in range(min(closes - 1, ring.maxlen or 0)):
                if len(ring) == ring.maxlen:
                    self._ring_sum[i] -= ring.popleft()
                ring.append(empty)

    def spans(self, ahead: int = 0) -> list[int]:
        """How many windows each horizon's latest sum covers (``ahead``: after that many
        more pushes)."""
        windows = self.windows + ahead
        out = [min(windows, 1)]
        for i in range(1, len(self.lengths)):
            block = self._block(i)
            filled = (windows - 1) % block + 1
            out.append(min(windows, self.lengths[i] - block + filled))
        return out

    def quiet_since(self) -> int:
        """Windows since the last one with a request."""
        return self.windows - self._last_counted

    def zero_rows(self, rows: list[int]) -> None:
        """Forget ``rows``' counts: their scope changed."""
        arrays: list[Any] = []
        for i in range(1, len(self.lengths)):
            arrays += [self._ring_sum[i], self._partial[i], *self._ring[i]]
        for a in arrays:
            a[[r for r in rows if r < a.shape[0]]] = 0

    # -- state ------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        def cells(a: Any) -> list[list[int]]:
            nz = np.nonzero(a)
            out: list[list[int]] = np.stack([*nz, a[nz]], axis=1).tolist()
            return out

        return {
            "lengths": list(self.lengths),
            "windows": self.windows,
            "last_counted": self._last_counted,
            "shape": list(self._shape),
            "partial": [cells(self._partial[i]) for i in range(1, len(self.lengths))],
            "ring": [[cells(b) for b in self._ring[i]] for i in range(1, len(self.lengths))],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`snapshot`; other lengths start afresh (a reload)."""
        if [int(n) for n in state["lengths"]] != list(self.lengths):
            return
        shape = (int(state["shape"][0]), int(state["shape"][1]))

        def dense(items: list[list[int]], dtype: Any) -> Any:
            out = np.zeros(shape, dtype)
            arr = np.asarray(items, np.int64).reshape(-1, 3)
            out[arr[:, 0], arr[:, 1]] = arr[:, 2]
            return out

        self.windows = int(state["windows"])
        self._last_counted = int(state["last_counted"])
        self._shape = shape
        for i in range(1, len(self.lengths)):
            self._partial[i] = dense(state["partial"][i - 1], np.int64)
            blocks = [dense(b, np.int32) for b in state["ring"][i - 1]]
            self._ring[i] = deque(blocks, maxlen=self._ring[i].maxlen)
            self._ring_sum[i] = np.zeros(shape, np.int64)
            for b in blocks:
                self._ring_sum[i] += b
