"""Seasonal volume profiles (hour of day, hour of week) per row, and how far they move
the expected volume between two instants."""

from __future__ import annotations

from array import array

import numpy as np
import numpy.typing as npt

from statuswatch.core.columns import I64
from statuswatch.core.ewmean import grown

F64 = npt.NDArray[np.float64]

#: The seasonal profile moves the expected volume by at most this factor either way.
SEASONAL_MAX_RATIO = 5.0
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS


class Seasonal:
    """Average volume per bucket of a period (hour of day, hour of week), per row.

    Dense numpy arrays, allocated once per row: the profile's memory does not
    grow as event time walks into new hours (one River object per bucket did).
    The update is the same exponentially weighted mean as ``EWMean``. Values are
    float32 (a volume to 7 digits is plenty for a ratio between two hours): the
    weekly profile is the biggest per-scope state, 168 buckets.
    """

    def __init__(self, period_ms: int, buckets: int, alpha: float) -> None:
        self.period_ms = period_ms
        self.buckets = buckets
        self.alpha = alpha
        self.values = np.zeros((0, buckets), dtype=np.float32)
        self.seen = np.zeros((0, buckets), dtype=bool)
        self.first_ms = np.zeros(0, dtype=np.int64)  # -1: never learned
        #: no row's ``first_ms`` is earlier (None: none learned yet)
        self.earliest_ms: int | None = None

    def _learned_at(self, t_ms: int) -> None:
        self.earliest_ms = t_ms if self.earliest_ms is None else min(self.earliest_ms, t_ms)

    def full_period_by(self, t_ms: int) -> bool:
        """Whether any row may have a full period of history at ``t_ms``."""
        return self.earliest_ms is not None and t_ms - self.earliest_ms >= self.period_ms

    def _position(self, t_ms: int) -> float:
        return (t_ms % self.period_ms) / self.period_ms * self.buckets

    def fit(self, rows: int) -> None:
        if rows <= len(self.first_ms) and rows <= len(self.values):
            return
        self.values = grown(self.values, (rows, self.buckets), 0.0)
        self.seen = grown(self.seen, (rows, self.buckets), False)
        self.first_ms = grown(self.first_ms, (rows,), -1)

    def learn(self, rows: I64, t_ms: int, volume: F64) -> None:
        self.fit(int(rows.max(initial=-1)) + 1)
        self.first_ms[rows[self.first_ms[rows] < 0]] = t_ms
        self._learned_at(t_ms)
        b = int(self._position(t_ms))
        values, seen = self.values[:, b], self.seen[:, b]  # views of the bucket's column
        old = values[rows]
        values[rows] = np.where(seen[rows], old + self.alpha * (volume - old), volume)
        seen[rows] = True

    def learn_silent(self, rows: I64, times_ms: list[int]) -> None:
        """``learn(rows, t, 0)`` for each of ``times_ms`` in order: each hour's bucket
        column is read and written once, the same arithmetic window by window."""
        self.fit(int(rows.max(initial=-1)) + 1)
        if len(rows) == 0 or not times_ms:
            return
        self.first_ms[rows[self.first_ms[rows] < 0]] = times_ms[0]
        self._learned_at(times_ms[0])
        zeros = np.zeros(len(rows))
        buckets = [int(self._position(t)) for t in times_ms]
        i = 0
        while i < len(buckets):
            b = buckets[i]
            j = i
            while j < len(buckets) and buckets[j] == b:
                j += 1
            values, seen = self.values[:, b], self.seen[:, b]
            old = values[rows]
            val = np.where(seen[rows], old + self.alpha * (zeros - old), zeros).astype(np.float32)
            if j - i > 1 and val.any():  # seen from now on; zeros stay zeros
                _decay_silent(val, self.alpha, j - i - 1)
            values[rows] = val
            seen[rows] = True
            i = j

    def value(self, rows: I64, t_ms: int) -> F64:
        """Profile at ``t_ms``, linear between bucket centres; NaN until a full period."""
        if not self.full_period_by(t_ms):
            return np.full(len(rows), np.nan)
        self.fit(int(rows.max(initial=-1)) + 1)
        first = self.first_ms[rows]
        ready = (first >= 0) & (t_ms - first >= self.period_ms)
        if not ready.any():  # the first period of every row: nothing to read
            return np.full(len(rows), np.nan)
        pos = self._position(t_ms) - 0.5
        lo = int(np.floor(pos)) % self.buckets
        hi = (lo + 1) % self.buckets
        frac = pos - np.floor(pos)
        ready &= self.seen[rows, lo] & self.seen[rows, hi]
        lo_v, hi_v = self.values[rows, lo].astype(np.float64), self.values[rows, hi]
        out = (1 - frac) * lo_v + frac * hi_v
        return np.where(ready, out, np.nan)

    def snapshot(self) -> list[list[float]]:
        rows, buckets = np.nonzero(self.seen)
        values = self.values[rows, buckets].tolist()
        return [[r, b, v] for r, b, v in zip(rows.tolist(), buckets.tolist(), values, strict=True)]

    def restore(self, items: list[list[float]], first_ms: dict[int, int]) -> None:
        self.values = np.zeros((0, self.buckets), dtype=np.float32)
        self.seen = np.zeros((0, self.buckets), dtype=bool)
        self.first_ms = np.zeros(0, dtype=np.int64)
        self.fit(1 + max([int(r) for r, _, _ in items] + list(first_ms), default=-1))
        for r, b, v in items:
            self.values[int(r), int(b)], self.seen[int(r), int(b)] = v, True
        self.earliest_ms = None
        for r, t in first_ms.items():
            self.first_ms[r] = t
            self._learned_at(t)


#: Up to this many rows, ``_decay_silent`` steps each row's float in Python.
FEW_ROWS = 16


def _decay_silent(val: npt.NDArray[np.float32], alpha: float, steps: int) -> None:
    """``steps`` times, in place: ``val + alpha * (0 - val)`` in float64, stored as
    float32, which ``learn`` of a 0 does; two ufunc calls a step instead of four.
    (``alpha * (0 - v)`` is ``-(alpha * v)`` bit for bit: rounding is symmetric.)

    >>> v = np.array([100.0, 0.0], np.float32)
    >>> w = v.copy()
    >>> for _ in range(3):
    ...     w = (w + 0.1 * (np.zeros(2) - w)).astype(np.float32)
    >>> _decay_silent(v, 0.1, 3)
    >>> v.tobytes() == w.tobytes()
    True
    """
    if len(val) <= FEW_ROWS:
        # A few rows (a small site's scopes, over a night's silence): Python floats are
        # float64 and ``array("f")`` stores as float32 (C's rounding, as numpy's cast):
        # the same operations, without two ufunc calls' overhead a step.
        stored = array("f", val.tobytes())
        for i in range(len(stored)):
            for _ in range(steps):
                stored[i] = stored[i] - alpha * stored[i]
        val[:] = np.frombuffer(stored, np.float32)
        return
    moved = np.empty(len(val))
    for _ in range(steps):
        np.multiply(val, alpha, out=moved, dtype=np.float64)
        np.subtract(val, moved, out=val, dtype=np.float64, casting="same_kind")


def seasonal_ratio(profiles: tuple[Seasonal, ...], rows: I64, now_ms: int, then_ms: int) -> F64:
    """How much the learned volume profile moves from ``then_ms`` to ``now_ms``, per row
    (1: no profile). The first of ``profiles`` (the weekly one) with a full period wins."""
    ratio = np.ones(len(rows))
    todo = np.ones(len(rows), dtype=bool)
    for profile in profiles:
        if not profile.full_period_by(now_ms):
            continue  # no row has a full period: ``value`` would be NaN throughout
        now, then = profile.value(rows, now_ms), profile.value(rows, then_ms)
        with np.errstate(divide="ignore", invalid="ignore"):
            usable = todo & ~np.isnan(now) & ~np.isnan(then) & (then > 0)
            ratio = np.where(
                usable, np.clip(now / then, 1 / SEASONAL_MAX_RATIO, SEASONAL_MAX_RATIO), ratio
            )
        todo &= ~usable
    return ratio
