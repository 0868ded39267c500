"""A long-memory reference share per (scope, code), beside the fast-adapting one.

The learned share (``baseline.py``, 15-minute half-life) follows the mix as it
drifts, and so it follows a slow creep too: each window is only slightly above
the last, and at low rates every window is too small to be called elevated. Over
an hour, though, 5xx at 2 % where 0.14 % was usual is plain. This reference
remembers for hours (``baseline.reference_half_life_windows``, 6 h by default),
and the horizons with ``long_reference`` judge a rise against it: a series well
above the long reference over a long horizon is anomalous even once the fast
share has caught up. (Not against the lower of the two: at low rates the fast
share dips by chance, and the lower of two noisy estimates is biased low.)

The reference is a ratio of two exponentially weighted sums, a code's count over
the scope's requests, so a quiet scope's sparse windows weigh by their requests
(one request in a window does not make a share of 100 %). It learns only windows
with requests; its shares are read with a floor of one request in the requests it
remembers (the rule of one, as the learned share's floor). It is protected as the
learned share is: live series (all codes of a scope with a live rise: its other
codes' shares fall with it) and series elevated over a long horizon teach it
their own reference, so a creep never drags it along; accepting a level (after
``baseline.accept_after_windows`` of firing, or ``SIGUSR1``) moves it at once.

>>> ref = LongReference(half_life_windows=100)
>>> for _ in range(50):
...     ref.learn(np.array([[99, 1]]), np.array([100]))
>>> [round(x, 3) for x in ref.up_share(1, 2)[0].tolist()]
[0.99, 0.01]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from statuswatch.core.baseline import fading_factor
from statuswatch.core.columns import I64

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


class LongReference:
    """EW sums of each (row, col)'s counts and of each row's requests."""

    def __init__(self, half_life_windows: float) -> None:
        self.alpha = fading_factor(half_life_windows)
        self._counts = np.zeros((0, 0))
        self._totals = np.zeros(0)

    def _fit(self, n_rows: int, n_cols: int) -> None:
        rows, cols = self._counts.shape
        if n_rows <= rows and n_cols <= cols:
            return
        shape = (max(n_rows, rows + rows // 4), max(n_cols, cols))
        counts = np.zeros(shape)
        counts[:rows, :cols] = self._counts
        totals = np.zeros(shape[0])
        totals[:rows] = self._totals
        self._counts, self._totals = counts, totals

    def up_share(self, n_rows: int, n_cols: int, fallback: F64 | None = None) -> F64:
        """Each series' long-run share, floored at one request in those remembered;
        ``fallback`` (default 1.0) for rows without any."""
        self._fit(n_rows, n_cols)
        remembered = self._totals[:n_rows] / self.alpha  # requests in the memory
        with np.errstate(divide="ignore", invalid="ignore"):
            share = self._counts[:n_rows, :n_cols] / self._totals[:n_rows, None]
            floor = 1.0 / (remembered + 1.0)
        out: F64 = np.where(
            self._totals[:n_rows, None] > 0, np.maximum(share, floor[:, None]),
            1.0 if fallback is None else fallback,
        )
        return out

    def up_share_at(self, rows: I64, cols: I64, fallback: F64) -> F64:
        """``up_share`` at the cells ``(rows[i], cols[i])`` only (``fallback[i]`` where a
        row has no requests in memory)."""
        if len(rows) == 0:
            return fallback.copy()
        self._fit(int(rows.max()) + 1, int(cols.max()) + 1)
        totals = self._totals[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            share = self._counts[rows, cols] / totals
            floor = 1.0 / (totals / self.alpha + 1.0)
        out: F64 = np.where(totals > 0, np.maximum(share, floor), fallback)
        return out

    def learn(self, counts: I64, totals: I64, frozen: B | None = None) -> None:
        """Teach one window (rows with requests); ``frozen`` cells are taught their own
        reference share, so it stays put."""
        n_rows, n_cols = counts.shape
        self._fit(n_rows, n_cols)
        rows = np.flatnonzero(totals > 0)
        if len(rows) == 0:
            return
        x = counts[rows].astype(np.float64)
        if frozen is not None and frozen.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                held = self._counts[rows, :n_cols] / self._totals[rows, None]
            held = np.where(self._totals[rows, None] > 0, held, 0.0) * totals[rows, None]
            x = np.where(frozen[rows], held, x)
        a = self.alpha
        self._counts[rows, :n_cols] += a * (x - self._counts[rows, :n_cols])
        self._totals[rows] += a * (totals[rows] - self._totals[rows])

    def accept(self, row: int, cols: list[int], counts: I64, total: int) -> None:
        """Take the shares of ``cols`` in ``counts`` (of ``total`` requests) as the row's
        normal, keeping its remembered volume. Only those: the other codes' shares at
        night, a few requests in an hour, say little."""
        if total <= 0 or not cols:
            return
        self._fit(row + 1, len(counts))
        if self._totals[row] <= 0:
            self._totals[row] = self.alpha * total
        self._counts[row, cols] = counts[cols] / total * self._totals[row]

    def forget_rows(self, rows: list[int]) -> None:
        if rows:
            self._fit(max(rows) + 1, 0)
            self._counts[rows] = 0.0
            self._totals[rows] = 0.0

    def snapshot(self) -> dict[str, Any]:
        rows = np.flatnonzero(self._totals > 0)
        r, c = np.nonzero(self._counts)
        return {
            "totals": [[int(i), float(self._totals[i])] for i in rows.tolist()],
            "counts": [[i, j, v] for i, j, v in zip(
                r.tolist(), c.tolist(), self._counts[r, c].tolist(), strict=True)],
        }

    def restore(self, state: dict[str, Any]) -> None:
        totals = [(int(r), float(v)) for r, v in state["totals"]]
        counts = [(int(r), int(c), float(v)) for r, c, v in state["counts"]]
        self._counts = np.zeros((0, 0))
        self._totals = np.zeros(0)
        self._fit(1 + max([r for r, _ in totals] + [r for r, _, _ in counts], default=-1),
                  1 + max([c for _, c, _ in counts], default=-1))
        for r, v in totals:
            self._totals[r] = v
        for r, c, v in counts:
            self._counts[r, c] = v
