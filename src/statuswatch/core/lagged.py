"""The long-horizon state learns with a delay: an incident never teaches what judges it.

The 10-minute and 1-hour horizons judge a rise against the long reference and the
last minute's dispersion. At two requests a minute no window and no minute of a
storm is ever elevated, so learning each window at once, the storm's first minutes
would teach both (the dispersion grows, the young reference rises) while the
10-minute sum is still gathering the evidence that is judged against them. So each
window's contribution to that state (its counts for the reference, its minute
sum's residuals for the dispersion) waits ``lag`` windows (the horizon being judged)
and is learned only then, and only in the cells that were not frozen (elevated, or
live on any horizon) at any time meanwhile: those are taught their own reference,
as a frozen cell is now. This is the lagged baseline: by the time a window teaches,
the horizons have had their look at it.

The wait costs a ring of the pending windows' sparse parts (rows with requests
only) and one array of the last window each cell was frozen in.

>>> lag = LaggedLearning(lag_windows=2)
>>> none, one = np.zeros(0, np.int64), np.array([0])
>>> learned = []
>>> for w in range(4):  # one cell, frozen in window 3 only
...     window = Pending.of(w, w * 10_000, one, one + 5, np.array([[5]]), np.array([[False]]),
...                         none, none, none * 1.0, none * 1.0, none * 1.0)
...     lag.push(window, frozen=np.array([[w == 3]]))
...     learned += [(p.index, bool(held[0, 0])) for p, held, _ in lag.due()]
>>> learned  # window 0 learned as it was, 1 held: frozen in 3, before it was due
[(0, False), (1, True)]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from statuswatch.core.baseline import Baseline
from statuswatch.core.columns import I64
from statuswatch.core.ewmean import grown
from statuswatch.core.reference import LongReference

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
Compact = npt.NDArray[Any]  # 32-bit integers or floats


@dataclass(frozen=True, slots=True)
class Pending:
    """One window's contribution to the long state, not learned yet."""

    index: int  # the window's number (``LaggedLearning.windows`` when pushed)
    start_ms: int
    #: the long reference's part: rows with requests, their requests and counts
    rows: Compact
    totals: Compact
    counts: Compact  # (len(rows), cols)
    frozen: B  # (len(rows), cols): taught their own reference
    #: the long dispersion's part: its cells and their minute count, requests, share
    disp_rows: Compact
    disp_cols: Compact
    disp_count: Compact
    disp_total: Compact
    disp_share: Compact

    @classmethod
    def of(
        cls, index: int, start_ms: int, rows: I64, totals: I64, counts: I64, frozen: B,
        disp_rows: I64, disp_cols: I64, disp_count: F64, disp_total: F64, disp_share: F64,
    ) -> Pending:
        """Kept in 32 bits (a window's or a minute's counts fit; a share needs no more
        digits than its noise has): the ring holds an hour's windows."""
        i32, f32 = np.int32, np.float32
        return cls(index, start_ms, rows.astype(i32), totals.astype(i32), counts.astype(i32),
                   frozen, disp_rows.astype(i32), disp_cols.astype(i32),
                   disp_count.astype(i32), disp_total.astype(i32), disp_share.astype(f32))

    def to_json(self) -> list[Any]:
        return [self.index, self.start_ms, self.rows.tolist(), self.totals.tolist(),
                [self.counts.shape[1], self.counts.reshape(-1).tolist()],
                np.flatnonzero(self.frozen).tolist(), self.disp_rows.tolist(), self.disp_cols.tolist(),
                self.disp_count.tolist(), self.disp_total.tolist(), self.disp_share.tolist()]

    @classmethod
    def of_json(cls, item: list[Any]) -> Pending:
        rows = np.asarray(item[2], np.int64)
        counts = np.asarray(item[4][1], np.int64).reshape(len(rows), int(item[4][0]))
        frozen = np.zeros(counts.size, dtype=bool)
        frozen[np.asarray(item[5], np.int64)] = True
        return cls.of(int(item[0]), int(item[1]), rows, np.asarray(item[3], np.int64), counts,
                      frozen.reshape(counts.shape), np.asarray(item[6], np.int64),
                      np.asarray(item[7], np.int64),
                      *(np.asarray(item[k], np.float64) for k in (8, 9, 10)))

    def without_rows(self, rows: I64, *, invert: bool = False) -> Pending:
        """This contribution but ``rows``' (only ``rows``' with ``invert``)."""
        keep = np.isin(self.rows, rows, invert=not invert)
        keep_disp = np.isin(self.disp_rows, rows, invert=not invert)
        return Pending(self.index, self.start_ms, self.rows[keep], self.totals[keep],
                       self.counts[keep], self.frozen[keep], self.disp_rows[keep_disp], self.disp_cols[keep_disp],
                       self.disp_count[keep_disp], self.disp_total[keep_disp],
                       self.disp_share[keep_disp])


class LaggedLearning:
    """Windows' contributions waiting ``lag_windows`` before they are learned, and the
    last window each (row, col) was frozen in."""

    def __init__(self, lag_windows: int, young_ms: int = 0) -> None:
        """``young_ms``: scopes with less history learn at once (see ``teach``)."""
        self.lag_windows = lag_windows
        self.young_ms = young_ms
        self.windows = 0  # windows pushed or passed
        self.pending: deque[Pending] = deque()
        #: per cell, the last window it was frozen in (-1: never)
        self.last_frozen = np.full((0, 0), -1, np.int64)

    def push(self, pending: Pending, frozen: B) -> None:
        """Hold one window's contribution (``pending.index`` is this window's number)
        and note the cells frozen in it."""
        self.windows = pending.index + 1
        rows, cols = frozen.shape
        self.last_frozen = grown(self.last_frozen, (rows, cols), -1)
        self.last_frozen[:rows, :cols][frozen] = pending.index
        if len(pending.rows) or len(pending.disp_rows):
            self.pending.append(pending)

    def teach(
        self, baseline: Baseline, reference: LongReference, window_start_ms: int,
        counts: I64, totals: I64, long_counts: I64, long_totals: I64, frozen_long: B,
        frozen_reference: B, alarmed: B,
    ) -> None:
        """Hold the window's contribution to the long dispersion (the last minute's sums
        ``long_counts``, ``long_totals`` but ``frozen_long``) and to the long reference
        (``counts``, ``totals``; ``frozen_reference`` taught their own), then teach
        ``baseline`` and ``reference`` what has waited long enough, but the cells
        ``alarmed`` (a live series: an alert pending or firing) in a window since.

        (Only those: the cells merely elevated now and then, which the window's own
        freeze keeps out, would keep out the calm windows around them too, and a
        dispersion learned from calm windows only is too low.)"""
        rows = np.flatnonzero(totals > 0)
        terms = baseline.long_dispersion_terms(
            rows, long_counts[rows], long_totals[rows], frozen_long[rows])
        import os
        if os.environ.get("DISP_NOW"):
            baseline.learn_long_dispersion_terms(*terms)
            terms = (terms[0][:0], terms[1][:0], terms[2][:0], terms[3][:0], terms[4][:0])
        now = Pending.of(self.windows, window_start_ms, rows, totals[rows], counts[rows],
                         frozen_reference[rows], *terms)
        # A young scope learns at once, until it has the longest horizon's history: the
        # horizons would meanwhile read a dispersion of 1 and a reference of a few
        # windows, and a long horizon called elevated against those would hold them.
        first = baseline.first_learned_ms(rows)
        young = rows[(first < 0) | (window_start_ms - first < self.young_ms)]
        if len(young):
            part = now.without_rows(young, invert=True)
            self._learn(baseline, reference, part, part.frozen,
                        np.zeros(len(part.disp_rows), dtype=bool))
            now = now.without_rows(young)
        self.push(now, alarmed)
        for item, held, held_terms in self.due():
            self._learn(baseline, reference, item, held | item.frozen, held_terms)

    @staticmethod
    def _learn(
        baseline: Baseline, reference: LongReference, item: Pending, held: B, held_terms: B
    ) -> None:
        """Teach ``item``, its ``held`` cells their own reference, its ``held_terms`` not."""
        keep = ~held_terms
        baseline.learn_long_dispersion_terms(
            item.disp_rows[keep], item.disp_cols[keep], item.disp_count[keep],
            item.disp_total[keep], item.disp_share[keep])
        reference.learn_rows(item.rows, item.counts, item.totals, held, item.start_ms)

    def pass_silent(self, n: int) -> None:
        """``n`` windows without requests: nothing to hold, the pending ones age."""
        self.windows += n

    def due(self) -> Iterator[tuple[Pending, B, B]]:
        """The pending contributions now over ``lag_windows`` old, oldest first, each
        with its cells frozen since: the reference's (its rows' cells, in order) and the
        dispersion's; they are dropped as they are read."""
        while self.pending and self.windows - self.pending[0].index > self.lag_windows:
            item = self.pending.popleft()
            n_cols = item.counts.shape[1]
            self.last_frozen = grown(self.last_frozen, (
                1 + max(int(item.rows.max(initial=-1)), int(item.disp_rows.max(initial=-1))),
                max(n_cols, 1 + int(item.disp_cols.max(initial=-1)))), -1)
            last = self.last_frozen
            yield (item, last[item.rows, :n_cols] >= item.index,
                   last[item.disp_rows, item.disp_cols] >= item.index)

    def forget_rows(self, rows: list[int]) -> None:
        if not rows:
            return
        idx = np.asarray(rows, np.int64)
        self.pending = deque(p.without_rows(idx) for p in self.pending)
        have = idx[idx < self.last_frozen.shape[0]]
        self.last_frozen[have] = -1

    def snapshot(self) -> dict[str, Any]:
        r, c = np.nonzero(self.last_frozen >= 0)
        return {
            "lag_windows": self.lag_windows,
            "windows": self.windows,
            "pending": [p.to_json() for p in self.pending],
            "last_frozen": [[i, j, t] for i, j, t in zip(
                r.tolist(), c.tolist(), self.last_frozen[r, c].tolist(), strict=True)],
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.windows = int(state["windows"])
        self.pending = deque(Pending.of_json(p) for p in state["pending"])
        cells = np.asarray(state["last_frozen"], np.int64).reshape(-1, 3)
        shape = (int(cells[:, 0].max(initial=-1)) + 1, int(cells[:, 1].max(initial=-1)) + 1)
        self.last_frozen = np.full(shape, -1, np.int64)
        self.last_frozen[cells[:, 0], cells[:, 1]] = cells[:, 2]


def lag_for(horizon_windows: list[int]) -> int:
    """The wait for horizons of these lengths (in windows): the longest, where there
    are horizons past the last minute (they judge against the long state); none
    without (the last minute is judged against the fast share)."""
    return horizon_windows[2] if len(horizon_windows) > 2 else 0
