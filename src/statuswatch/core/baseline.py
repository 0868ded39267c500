"""Online expected share and volume per (scope, status code), kept with River.

Each series is a ``river.stats.EWMean`` with a fading factor set by a half-life
in windows: it follows slow drift (traffic mix changing over hours) yet forgets
a one-off burst. The expected values are mirrored into numpy arrays so the
score stage reads them vectorised.

Series that are part of an active anomaly are not taught (``frozen`` mask):
otherwise a sustained incident would become "normal" in a few half-lives.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from river import stats

from statuswatch.core.columns import I64

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


def fading_factor(half_life_windows: float) -> float:
    """EWMean weight of the newest value so that old values halve every half-life.

    >>> round(fading_factor(1.0), 3)
    0.5
    """
    return float(1.0 - 0.5 ** (1.0 / half_life_windows))


class ShareBaseline:
    """Expected share per (row, col) and expected volume per row.

    >>> b = ShareBaseline(half_life_windows=10, warmup_windows=1)
    >>> b.learn(np.array([[90, 10]]))
    >>> b.expected_share(1, 2).round(2).tolist()
    [[0.9, 0.1]]
    >>> b.warm(1).tolist()
    [True]
    """

    def __init__(self, half_life_windows: float, warmup_windows: int) -> None:
        self.half_life_windows = half_life_windows
        self.warmup_windows = warmup_windows
        self._alpha = fading_factor(half_life_windows)
        self._share: dict[tuple[int, int], stats.EWMean] = {}
        self._volume: dict[int, stats.EWMean] = {}
        self._share_mean = np.zeros((0, 0))
        self._volume_mean = np.zeros(0)
        self._windows_seen = np.zeros(0, np.int64)

    def _fit(self, n_rows: int, n_cols: int) -> None:
        rows, cols = self._share_mean.shape
        if rows >= n_rows and cols >= n_cols:
            return
        share = np.zeros((max(rows, n_rows), max(cols, n_cols)))
        share[:rows, :cols] = self._share_mean
        self._share_mean = share
        volume = np.zeros(max(rows, n_rows))
        volume[:rows] = self._volume_mean
        self._volume_mean = volume
        seen = np.zeros(max(rows, n_rows), np.int64)
        seen[:rows] = self._windows_seen
        self._windows_seen = seen

    def expected_share(self, n_rows: int, n_cols: int) -> F64:
        self._fit(n_rows, n_cols)
        return self._share_mean[:n_rows, :n_cols]

    def expected_volume(self, n_rows: int) -> F64:
        self._fit(n_rows, 0)
        return self._volume_mean[:n_rows]

    def windows_seen(self, n_rows: int) -> I64:
        self._fit(n_rows, 0)
        return self._windows_seen[:n_rows]

    def warm(self, n_rows: int) -> B:
        return self.windows_seen(n_rows) >= self.warmup_windows

    def learn(self, counts: I64, frozen: B | None = None) -> None:
        """Teach one closed window; skip (row, col) series where ``frozen`` is True."""
        n_rows, n_cols = counts.shape
        self._fit(n_rows, n_cols)
        totals = counts.sum(axis=1)
        for row in np.flatnonzero(totals).tolist():
            total = int(totals[row])
            self._windows_seen[row] += 1
            vol = self._volume.get(row)
            if vol is None:
                vol = self._volume[row] = stats.EWMean(fading_factor=self._alpha)
            vol.update(total)
            self._volume_mean[row] = vol.get()
            present = np.flatnonzero(counts[row]).tolist()
            known = [c for c in range(n_cols) if (row, c) in self._share]
            for col in set(present).union(known):
                if frozen is not None and frozen[row, col]:
                    continue
                series = self._share.get((row, col))
                if series is None:
                    # A code's first appearance starts from zero share, not from its
                    # first value, so one stray request does not look normal at once.
                    series = self._share[(row, col)] = stats.EWMean(fading_factor=self._alpha)
                    if self._windows_seen[row] > 1:
                        series.update(0.0)
                series.update(counts[row, col] / total)
                self._share_mean[row, col] = series.get()

    def snapshot(self) -> dict[str, Any]:
        """Plain-JSON state."""
        return {
            "share": [[r, c, s.get()] for (r, c), s in self._share.items()],
            "volume": [[r, v.get()] for r, v in self._volume.items()],
            "windows_seen": self._windows_seen.tolist(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        seen = state["windows_seen"]
        self._share.clear()
        self._volume.clear()
        self._share_mean = np.zeros((0, 0))
        self._volume_mean = np.zeros(0)
        self._windows_seen = np.zeros(0, np.int64)
        n_cols = 1 + max((int(c) for _, c, _ in state["share"]), default=-1)
        self._fit(len(seen), n_cols)
        self._windows_seen[: len(seen)] = seen
        for r, c, mean in state["share"]:
            s = self._share[(int(r), int(c))] = stats.EWMean(fading_factor=self._alpha)
            s.update(float(mean))
            self._share_mean[r, c] = s.get()
        for r, mean in state["volume"]:
            v = self._volume[int(r)] = stats.EWMean(fading_factor=self._alpha)
            v.update(float(mean))
            self._volume_mean[r] = v.get()
