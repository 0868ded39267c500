"""The long reference learns with a delay: an incident never teaches what judges it.

The 10-minute and 1-hour horizons judge a rise against the long reference. At two
requests a minute no window and no minute of a storm is ever elevated, so, learning
each window at once, the storm's first minutes would teach the reference (a young
one above all) while the 10-minute sum is still gathering the evidence judged
against it. So each window's contribution to the reference (its counts and
requests) waits ``lag_windows`` (the first horizon judged against it) and is
learned only then, and where a series went live (an alert pending or firing) in a
window meanwhile, that cell is taught its own reference, as a frozen cell is now.
This is the lagged baseline: by the time a window teaches, the horizons have had
their look at it. A scope younger than the longest horizon learns at once.

It costs a ring of the pending windows (rows with requests only, in 32 bits) and one
array of the last window each cell was live in.

>>> lag = LaggedLearning(lag_windows=2)
>>> one = np.array([0])
>>> learned = []
>>> for w in range(4):  # one cell, live in window 3 only
...     window = Pending.of(w, w * 10_000, one, one + 5, np.array([[5]]), np.array([[False]]))
...     lag.push(window, live=np.array([[w == 3]]))
...     learned += [(p.index, bool(held[0, 0])) for p, held in lag.due()]
>>> learned  # window 0 learned as it was, 1 held: live in 3, before it was due
[(0, False), (1, True)]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from statuswatch.core.columns import I64
from statuswatch.core.ewmean import grown
from statuswatch.core.reference import LongReference

B = npt.NDArray[np.bool_]
I32 = npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True)
class Pending:
    """One window's contribution to the long reference, not learned yet."""

    index: int  # the window's number (``LaggedLearning.windows`` when pushed)
    start_ms: int
    rows: I32  # the rows with requests
    totals: I32  # their requests
    counts: I32  # (len(rows), cols)
    frozen: B  # (len(rows), cols): taught their own reference

    @classmethod
    def of(cls, index: int, start_ms: int, rows: I64, totals: I64, counts: I64,
           frozen: B) -> Pending:
        """Kept in 32 bits (a window's counts fit): the ring holds minutes of windows."""
        i32 = np.int32
        return cls(index, start_ms, rows.astype(i32), totals.astype(i32), counts.astype(i32),
                   frozen)

    def to_json(self) -> list[Any]:
        flat = self.counts.reshape(-1)
        nonzero = np.flatnonzero(flat)  # most codes of a window are 0
        return [self.index, self.start_ms, self.rows.tolist(), self.totals.tolist(),
                [self.counts.shape[1], nonzero.tolist(), flat[nonzero].tolist()],
                np.flatnonzero(self.frozen).tolist()]

    @classmethod
    def of_json(cls, item: list[Any]) -> Pending:
        rows = np.asarray(item[2], np.int64)
        flat = np.zeros(len(rows) * int(item[4][0]), np.int64)
        flat[np.asarray(item[4][1], np.int64)] = np.asarray(item[4][2], np.int64)
        counts = flat.reshape(len(rows), int(item[4][0]))
        frozen = np.zeros(counts.size, dtype=bool)
        frozen[np.asarray(item[5], np.int64)] = True
        return cls.of(int(item[0]), int(item[1]), rows, np.asarray(item[3], np.int64), counts,
                      frozen.reshape(counts.shape))

    def where(self, keep: B) -> Pending:
        """This contribution, of the rows where ``keep`` (one flag per row held) only."""
        at = keep.nonzero()[0]  # positions: np.take is the cheap gather of whole rows
        return Pending(self.index, self.start_ms, self.rows[at], self.totals[at],
                       self.counts.take(at, axis=0), self.frozen.take(at, axis=0))


class LaggedLearning:
    """Windows' contributions to the long reference waiting ``lag_windows`` before they
    are learned, and the last window each (row, col) was live in."""

    def __init__(self, lag_windows: int, young_ms: int = 0) -> None:
        """``young_ms``: scopes with less history learn at once (see ``teach``)."""
        self.lag_windows = lag_windows
        self.young_ms = young_ms
        self.windows = 0  # windows pushed or passed
        self.pending: deque[Pending] = deque()
        #: per cell, the last window it was live in (-1: never)
        self.last_live = np.full((0, 0), -1, np.int64)
        #: the last window any cell was live in (at least; -1: none)
        self.latest_live = -1
        #: per row, ``windows`` when it was last forgotten (-1: never)
        self.forgotten_at = np.full(0, -1, np.int64)

    def push(self, pending: Pending, live: B) -> None:
        """Hold one window's contribution (``pending.index`` is this window's number)
        and note the cells live in it."""
        self.windows = pending.index + 1
        rows, cols = live.shape
        self.last_live = grown(self.last_live, (rows, cols), -1)
        if live.any():  # mostly nothing is live: no masked write over every cell
            self.last_live[:rows, :cols][live] = pending.index
            self.latest_live = pending.index
        if len(pending.rows):
            self.pending.append(pending)

    def teach(
        self, reference: LongReference, first_learned_ms: I64, window_start_ms: int,
        counts: I64, totals: I64, frozen: B, live: B,
    ) -> None:
        """Hold the window's contribution to ``reference`` (``counts``, ``totals``;
        ``frozen`` cells taught their own), then teach it what has waited long enough,
        but the cells ``live`` (an alert pending or firing) in a window since.
        ``first_learned_ms``: per row, the first window the baseline learned (-1: none).

        (Only the live ones: cells merely elevated now and then, which their own
        window's freeze keeps out, would keep out the calm windows around them too.)"""
        rows = (totals > 0).nonzero()[0]
        # np.take: the cheap gather of whole rows
        now = Pending.of(self.windows, window_start_ms, rows, totals[rows],
                         counts.take(rows, axis=0), frozen.take(rows, axis=0))
        # A young scope learns at once, until it has the longest horizon's history: the
        # horizons would meanwhile read a reference of a few windows, and a long horizon
        # called elevated against it would hold it there.
        first = first_learned_ms[rows]
        young = (first < 0) | (window_start_ms - first < self.young_ms)
        if young.any():
            part = now.where(young)
            self._learn(reference, part, part.frozen)
            now = now.where(~young)
        self.push(now, live)
        self._teach_due(reference)

    def _teach_due(self, reference: LongReference) -> None:
        for item, held in self.due():
            self._learn(reference, item, held | item.frozen)

    @staticmethod
    def _learn(reference: LongReference, item: Pending, held: B) -> None:
        """Teach ``item``, its ``held`` cells their own reference."""
        reference.learn_rows(item.rows.astype(np.int64), item.counts.astype(np.int64),
                             item.totals.astype(np.int64), held, item.start_ms)

    def pass_silent(self, n: int, reference: LongReference) -> None:
        """``n`` windows without requests, nothing live: nothing to hold; the pending
        ones age, and what comes due is taught, as ``teach`` would in each of them
        (a read of ``reference`` after the silence, or a snapshot during it, sees it)."""
        self.windows += n
        self._teach_due(reference)

    def due(self) -> Iterator[tuple[Pending, B]]:
        """The pending contributions now over ``lag_windows`` old, oldest first, each
        with its cells live since (its rows' cells, in order); they are dropped as they
        are read."""
        while self.pending and self.windows - self.pending[0].index > self.lag_windows:
            item = self._without_forgotten(self.pending.popleft())
            self.last_live = grown(self.last_live, (
                int(item.rows.max(initial=-1)) + 1, item.counts.shape[1]), -1)
            if self.latest_live < item.index:  # no cell live since: none held
                yield item, np.zeros(item.counts.shape, dtype=bool)
                continue
            yield item, self.last_live[item.rows, : item.counts.shape[1]] >= item.index

    def forget_rows(self, rows: list[int]) -> None:
        """Drop what ``rows`` hold (their scope changed): their pending contributions
        are left out as they come due (``_without_forgotten``), not rebuilt now."""
        if not rows:
            return
        idx = np.asarray(rows, np.int64)
        self.forgotten_at = grown(self.forgotten_at, (int(idx.max()) + 1,), -1)
        self.forgotten_at[idx] = self.windows
        have = idx[idx < self.last_live.shape[0]]
        self.last_live[have] = -1

    def _without_forgotten(self, item: Pending) -> Pending:
        """``item`` but the rows forgotten since it was pushed."""
        at = self.forgotten_at
        if not len(at) or not len(item.rows):
            return item
        forgotten = at[np.minimum(item.rows, len(at) - 1)] > item.index
        forgotten &= item.rows < len(at)
        return item.where(~forgotten) if forgotten.any() else item

    def snapshot(self) -> dict[str, Any]:
        r, c = np.nonzero(self.last_live >= 0)
        return {
            "windows": self.windows,
            "pending": [self._without_forgotten(p).to_json() for p in self.pending],
            "last_live": [[i, j, t] for i, j, t in zip(
                r.tolist(), c.tolist(), self.last_live[r, c].tolist(), strict=True)],
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.windows = int(state["windows"])
        self.pending = deque(Pending.of_json(p) for p in state["pending"])
        self.forgotten_at = np.full(0, -1, np.int64)
        cells = np.asarray(state["last_live"], np.int64).reshape(-1, 3)
        shape = (int(cells[:, 0].max(initial=-1)) + 1, int(cells[:, 1].max(initial=-1)) + 1)
        self.last_live = np.full(shape, -1, np.int64)
        self.last_live[cells[:, 0], cells[:, 1]] = cells[:, 2]
        self.latest_live = int(cells[:, 2].max(initial=-1))


def lag_for(horizon_windows: list[int], long_reference: list[bool]) -> int:
    """The wait for horizons of these lengths (in windows) and ``long_reference`` flags:
    the first judged against the long reference (0, no wait, without one)."""
    return next((n for n, ref in zip(horizon_windows, long_reference, strict=True) if ref), 0)
