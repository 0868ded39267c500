"""Online calibration of a per-window anomaly score against its own history.

A raw score such as the quasi-Poisson ``-log10 p`` of a scope's volume means
"one chance in 10**s under the baseline" only if the baseline is right. On a
real series it rarely is: a bursty scope (social-media mentions, a city's taxi
rides) scores 5 or 10 every few hours, while a quiet one never exceeds 2, and
one fire threshold cannot fit both. This stage asks a question that is
comparable across scopes instead: *is the recent level of this scope's score
unusual for this scope?* (the idea behind the "anomaly likelihood" of
Numenta's HTM detector).

Per row (series), for each new window with raw score ``x_t``:

* ``a_t`` is the mean of the last ``short_window`` raw scores (including
  ``x_t``): with more than 1, several surprising windows in a row outweigh one
  (the default, 1, detects earliest; on NAB averaging only delayed detections).
* ``mu`` and ``var`` are an exponentially weighted mean and (population)
  variance of the past ``a`` values, with half-life ``long_half_life`` windows;
  while fewer than ``1 / alpha`` values were seen they are the plain running
  mean and variance (the EW weight is ``max(alpha, 1 / (n + 1))``).
* The calibrated score is ``-log10 Q(z)``, ``z = (a_t - mu) / max(sd, min_std)``,
  ``Q`` the standard normal upper tail: the same units as the raw scores
  (``6``: "one in a million for this series"), 0 while the row has learned
  fewer than ``warmup`` windows, capped at ``max_score``.
* Then ``a_t`` is learned into ``mu`` / ``var``, unless the row is ``frozen``
  (as the baseline does for series in an open anomaly) or its calibrated score
  is at least ``freeze_score`` (> 0): a long incident does not become normal.

The score of row ``i`` depends only on that row's earlier windows (online and
causal), the state is O(``short_window``) floats per row and round-trips
through plain JSON.

A series whose raw score hovers around 2 calibrates a 2 to nothing and a
sustained 6 to a large score; a noisy one (raw scores 0..8) calibrates the
same sustained 6 to much less:

>>> import numpy as np
>>> cal = ScoreCalibrator(short_window=3, long_half_life=100, warmup=20, min_std=0.1)
>>> rng = np.random.default_rng(0)
>>> for _ in range(200):
...     _ = cal.update(np.array([2.0 + rng.normal(0, 0.3), rng.uniform(0, 8)]))
>>> ordinary = cal.update(np.array([2.0, 2.0]))
>>> bool(ordinary[0] < 1.0)
True
>>> for _ in range(2):
...     _ = cal.update(np.array([6.0, 6.0]))
>>> out = cal.update(np.array([6.0, 6.0]))
>>> bool(out[0] > 10 * out[1]), bool(out[0] > 6)
(True, True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special

from statuswatch.core.baseline import fading_factor

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

LN10 = math.log(10.0)


def upper_tail_score(z: F64) -> F64:
    """``-log10 Q(z)`` for the standard normal upper tail ``Q``, accurate far in the tail.

    >>> upper_tail_score(np.array([0.0, 1.6449, 4.7534])).round(3).tolist()
    [0.301, 1.301, 6.0]
    """
    out: F64 = -special.log_ndtr(-z) / LN10
    return out


class ScoreCalibrator:
    """Per-row tail score of the recent mean raw score under its long-run distribution.

    Rows (series) may appear at any window: ``update`` accepts more rows than
    before, and a new row starts empty. The defaults are the parameters chosen on
    the NAB count series (benchmarks/nab/README.md): no short-term averaging (it
    delays detection and merges FP rows), a long-run half-life of 10,000 windows
    and ``min_std`` 2, which puts quiet series (score spread under 2) on one fixed
    scale, ``(score - mean) / 2``, and divides only noisy ones by their own spread.
    """

    def __init__(
        self,
        short_window: int = 1,
        long_half_life: float = 10_000.0,
        warmup: int = 300,
        min_std: float = 2.0,
        freeze_score: float = 0.0,
        max_score: float = 300.0,
    ) -> None:
        if short_window < 1:
            raise ValueError("short_window must be >= 1")
        if long_half_life <= 0 or min_std <= 0:
            raise ValueError("long_half_life and min_std must be > 0")
        self.short_window = short_window
        self.long_half_life = long_half_life
        self.warmup = warmup
        self.min_std = min_std
        self.freeze_score = freeze_score
        self.max_score = max_score
        self.alpha = fading_factor(long_half_life)
        self._recent = np.zeros((0, short_window))  # ring buffer of raw scores
        self._pushed = np.zeros(0, np.int64)  # raw scores pushed into the ring
        self._learned = np.zeros(0, np.int64)  # averages learned into mu / var
        self._mean = np.zeros(0)
        self._var = np.zeros(0)

    def _fit(self, n_rows: int) -> None:
        rows = self._mean.shape[0]
        if n_rows <= rows:
            return
        extra = n_rows - rows
        self._recent = np.vstack([self._recent, np.zeros((extra, self.short_window))])
        self._pushed = np.concatenate([self._pushed, np.zeros(extra, np.int64)])
        self._learned = np.concatenate([self._learned, np.zeros(extra, np.int64)])
        self._mean = np.concatenate([self._mean, np.zeros(extra)])
        self._var = np.concatenate([self._var, np.zeros(extra)])

    def update(
        self, raw: F64, frozen: B | None = None, active: B | None = None
    ) -> F64:
        """Calibrated scores of one window's raw scores (one per row); then learn them.

        ``frozen`` rows are scored and remembered in the short window but not
        learned into the long-run distribution; ``active`` = False rows (no
        window for that series) are left untouched and score 0.
        """
        raw = np.asarray(raw, dtype=np.float64)
        n = raw.shape[0]
        self._fit(n)
        rows = np.arange(n) if active is None else np.flatnonzero(active[:n])
        x = np.nan_to_num(raw[rows], nan=0.0, posinf=self.max_score, neginf=-self.max_score)
        pushed = self._pushed[rows]
        self._recent[rows, pushed % self.short_window] = x
        pushed = pushed + 1
        self._pushed[rows] = pushed
        avg = self._recent[rows].sum(axis=1) / np.minimum(pushed, self.short_window)

        mean, var, learned = self._mean[rows], self._var[rows], self._learned[rows]
        sd = np.maximum(np.sqrt(var), self.min_std)
        score = np.clip(upper_tail_score((avg - mean) / sd), 0.0, self.max_score)
        score = np.where(learned >= max(self.warmup, 1), score, 0.0)

        learn = np.ones(rows.shape[0], dtype=bool)
        if frozen is not None:
            learn &= ~frozen[rows]
        if self.freeze_score > 0:
            learn &= score < self.freeze_score
        weight = np.maximum(self.alpha, 1.0 / (learned + 1.0))
        diff = avg - mean
        incr = weight * diff
        new_mean = mean + incr
        new_var = (1.0 - weight) * (var + diff * incr)
        self._mean[rows] = np.where(learn, new_mean, mean)
        self._var[rows] = np.where(learn, new_var, var)
        self._learned[rows] = learned + learn

        out = np.zeros(n)
        out[rows] = score
        return out

    def forget_rows(self, rows: list[int]) -> None:
        """Start ``rows`` afresh (their scope changed)."""
        idx = np.asarray([r for r in rows if r < self._mean.shape[0]], np.int64)
        for arr in (self._recent, self._pushed, self._learned, self._mean, self._var):
            arr[idx] = 0

    def snapshot(self) -> dict[str, Any]:
        """Plain-JSON state (parameters are configuration, not state)."""
        return {
            "short_window": self.short_window,
            "recent": self._recent.tolist(),
            "pushed": self._pushed.tolist(),
            "learned": self._learned.tolist(),
            "mean": self._mean.tolist(),
            "var": self._var.tolist(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load a ``snapshot``; a different ``short_window`` keeps only the long-run stats."""
        n = len(state["mean"])
        self._mean = np.array(state["mean"], dtype=np.float64).reshape(n)
        self._var = np.array(state["var"], dtype=np.float64).reshape(n)
        self._learned = np.array(state["learned"], dtype=np.int64).reshape(n)
        if int(state["short_window"]) == self.short_window:
            self._recent = np.array(state["recent"], dtype=np.float64).reshape(
                n, self.short_window
            )
            self._pushed = np.array(state["pushed"], dtype=np.int64).reshape(n)
        else:
            self._recent = np.zeros((n, self.short_window))
            self._pushed = np.zeros(n, np.int64)
