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

Beside the slow mean, the same hour of the previous days (``SameHourReference``,
``baseline.same_hour_reference_days``): a level that was normal at this hour on the
days before (a nightly batch's 5xx, accepted once) is no rise when it comes back at
that hour, although the 6-hour mean has long forgotten it; a creep of today is above
both. A rise is judged against the higher of the two once the scope has a day of
history (the higher: each is a level that was normal then, and today's creep drags
neither).

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

from statuswatch.core import kernels
from statuswatch.core.baseline import fading_factor
from statuswatch.core.columns import I64

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


class LongReference:
    """EW sums of each (row, col)'s counts and of each row's requests; with
    ``same_hour``, read as the higher of them and the same hour of the previous days."""

    def __init__(
        self, half_life_windows: float, same_hour: SameHourReference | None = None
    ) -> None:
        self.alpha = fading_factor(half_life_windows)
        self._counts = np.zeros((0, 0))
        self._totals = np.zeros(0)
        self.same_hour = same_hour
        #: start of the window being judged and learned (``at``): its hour of the day
        self.now_ms: int | None = None

    def at(self, window_start_ms: int) -> None:
        """The next reads and the next ``learn`` are of the window starting then."""
        self.now_ms = window_start_ms

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

    def long_sums(self) -> tuple[F64, F64]:
        """The EW sums ``up_share_at`` reads beside the same hour, as they are: counts per
        (row, col) and requests per row (C-contiguous; rows and columns it has not met
        yet are zeros it has not grown to)."""
        return self._counts, self._totals

    def up_share_at(self, rows: I64, cols: I64, fallback: F64) -> F64:
        """``up_share`` at the cells ``(rows[i], cols[i])`` only (``fallback[i]`` where a
        row has no requests in memory)."""
        if len(rows) == 0:
            return fallback.copy()
        self._fit(int(rows.max()) + 1, int(cols.max()) + 1)
        totals = self._totals.take(rows)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = self._counts.take(rows * self._counts.shape[1] + cols) / totals
            floor = 1.0 / (totals / self.alpha + 1.0)
        out: F64 = np.where(totals > 0, np.maximum(share, floor), fallback)
        if self.same_hour is not None and self.now_ms is not None:
            same, ready = self.same_hour.up_share_at(rows, cols, self.now_ms)
            out = np.where(ready, np.maximum(out, same), out)
        return out

    def learn(self, counts: I64, totals: I64, frozen: B | None = None) -> None:
        """Teach one window (rows with requests); ``frozen`` cells are taught their own
        reference share, so it stays put."""
        rows = np.flatnonzero(totals > 0)
        self._fit(*counts.shape)
        self.learn_rows(rows, counts[rows], totals[rows],
                        None if frozen is None else frozen[rows], self.now_ms)

    def learn_rows(
        self, rows: I64, counts: I64, totals: I64, frozen: B | None, window_start_ms: int | None
    ) -> None:
        """``learn`` of the window starting at ``window_start_ms`` (an earlier one: see
        ``lagged``) whose rows with requests are ``rows`` (ascending), with their
        ``counts``, ``totals`` and ``frozen`` cells (in ``rows``' order): the work grows
        with those rows, not with the scopes."""
        if len(rows) == 0:
            return
        n_cols = counts.shape[1]
        self._fit(int(rows[-1]) + 1, n_cols)
        if self.same_hour is not None and window_start_ms is not None:
            self.same_hour.learn_rows(rows, counts, totals, window_start_ms, frozen)
        x = counts.astype(np.float64)
        if frozen is not None and frozen.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                held = self._counts[rows, :n_cols] / self._totals[rows, None]
            held = np.where(self._totals[rows, None] > 0, held, 0.0) * totals[:, None]
            x = np.where(frozen, held, x)
        a = self.alpha
        if kernels.ENABLED and kernels.shaped((len(rows),), (rows, np.int64), (totals, np.int64)):
            # one pass, the same values (``_fit`` keeps both sums C-contiguous, one row each)
            kernels.native.ew_rows(rows, np.ascontiguousarray(x), totals, self._counts,
                                   self._totals, n_cols, self._counts.shape[1], a)
            return
        # gathered once (np.take: the cheap gather of whole rows), for the sum ``+=`` makes
        old = self._counts.take(rows, axis=0)[:, :n_cols]
        self._counts[rows, :n_cols] = old + a * (x - old)
        self._totals[rows] += a * (totals - self._totals[rows])

    def accept(self, row: int, cols: list[int], counts: I64, total: int) -> None:
        """Take the shares of ``cols`` in ``counts`` (of ``total`` requests) as the row's
        normal, keeping its remembered volume. Only those: the other codes' shares at
        night, a few requests in an hour, say little."""
        if total <= 0 or not cols:
            return
        if self.same_hour is not None and self.now_ms is not None:
            self.same_hour.accept(row, cols, counts, total, self.now_ms)
        self._fit(row + 1, len(counts))
        if self._totals[row] <= 0:
            self._totals[row] = self.alpha * total
        self._counts[row, cols] = counts[cols] / total * self._totals[row]

    def forget_rows(self, rows: list[int]) -> None:
        if rows:
            self._fit(max(rows) + 1, 0)
            self._counts[rows] = 0.0
            self._totals[rows] = 0.0
            if self.same_hour is not None:
                self.same_hour.forget_rows(rows)

    def snapshot(self) -> dict[str, Any]:
        rows = np.flatnonzero(self._totals > 0)
        r, c = np.nonzero(self._counts)
        return {
            "totals": [[int(i), float(self._totals[i])] for i in rows.tolist()],
            "counts": [[i, j, v] for i, j, v in zip(
                r.tolist(), c.tolist(), self._counts[r, c].tolist(), strict=True)],
            "same_hour": None if self.same_hour is None else self.same_hour.snapshot(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        if self.same_hour is not None:
            self.same_hour.restore(state.get("same_hour") or {"first_ms": [], "hours": {}})
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


class SameHourReference:
    """Each (row, col)'s share at each hour of the day over the previous days: one
    ``LongReference`` per hour, learned only by the windows of its hour (``half_life_days``
    of them), read only for rows with a day of history.

    >>> ref = SameHourReference(half_life_days=7, windows_per_hour=360)
    >>> three_am = 3 * HOUR_MS
    >>> for w in range(360):  # 03:00 to 04:00: 5 % of 500s, then 1 % the rest of the day
    ...     ref.learn(np.array([[95, 5]]), np.array([100]), three_am + w * 10_000)
    >>> ref.learn(np.array([[99, 1]]), np.array([100]), 5 * HOUR_MS)
    >>> share, ready = ref.up_share_at(np.array([0]), np.array([1]), DAY_MS + three_am)
    >>> round(float(share[0]), 3), bool(ready[0])
    (0.05, True)
    >>> bool(ref.up_share_at(np.array([0]), np.array([1]), three_am + 20_000)[1][0])
    False
    """

    def __init__(
        self, half_life_days: float, windows_per_hour: float, span_ms: int = HOUR_MS
    ) -> None:
        """``span_ms``: the longest horizon: a read is of every hour its sum spans."""
        self.half_life_windows = half_life_days * windows_per_hour
        self.span_ms = span_ms
        self.hours: dict[int, LongReference] = {}
        #: per row, the start of the first window it learned (-1: none)
        self.first_ms = np.full(0, -1, np.int64)

    @staticmethod
    def hour_of(t_ms: int) -> int:
        return int(t_ms // HOUR_MS) % 24

    def _hour(self, t_ms: int) -> LongReference:
        hour = self.hour_of(t_ms)
        if hour not in self.hours:
            self.hours[hour] = LongReference(self.half_life_windows)
        return self.hours[hour]

    def _fit(self, n_rows: int) -> None:
        if n_rows > len(self.first_ms):
            grown = np.full(max(n_rows, len(self.first_ms) * 5 // 4), -1, np.int64)
            grown[: len(self.first_ms)] = self.first_ms
            self.first_ms = grown

    def learn(self, counts: I64, totals: I64, t_ms: int, frozen: B | None = None) -> None:
        """Teach the hour of ``t_ms`` one window (as ``LongReference.learn``)."""
        rows = np.flatnonzero(totals > 0)
        self.learn_rows(rows, counts[rows], totals[rows], t_ms,
                        None if frozen is None else frozen[rows])

    def learn_rows(
        self, rows: I64, counts: I64, totals: I64, t_ms: int, frozen: B | None = None
    ) -> None:
        """``learn`` of the rows with requests only (``LongReference.learn_rows``)."""
        if len(rows) == 0:  # nothing to learn: an hour without requests keeps no state
            return
        self._fit(int(rows[-1]) + 1)
        first = self.first_ms[rows]
        self.first_ms[rows[first < 0]] = t_ms
        self._hour(t_ms).learn_rows(rows, counts, totals, frozen, None)

    def up_share_at(self, rows: I64, cols: I64, t_ms: int) -> tuple[F64, B]:
        """The share of each cell over the hours a horizon ending at ``t_ms`` spans (the
        highest of them; floored as the long reference's), and whether it has one: a
        day of history and requests at one of those hours."""
        share = np.full(len(rows), -1.0)
        if len(rows) == 0:
            return share, np.zeros(0, dtype=bool)
        self._fit(int(rows.max()) + 1)
        first = self.first_ms[rows]
        if not ((first >= 0) & (t_ms - first >= DAY_MS)).any():  # the first day: none ready
            return np.zeros(len(rows)), np.zeros(len(rows), dtype=bool)
        start = t_ms - self.span_ms + 1
        for t in range(start - start % HOUR_MS, t_ms + 1, HOUR_MS):
            hour = self.hours.get(self.hour_of(t))
            if hour is not None:
                share = np.maximum(share, hour.up_share_at(rows, cols, fallback=share))
        ready: B = (first >= 0) & (t_ms - first >= DAY_MS) & (share >= 0)
        return np.where(ready, share, 0.0), ready

    def accept(self, row: int, cols: list[int], counts: I64, total: int, t_ms: int) -> None:
        """An accepted level is normal at this hour from now on."""
        self._hour(t_ms).accept(row, cols, counts, total)

    def forget_rows(self, rows: list[int]) -> None:
        self._fit(max(rows) + 1)
        self.first_ms[rows] = -1
        for hour in self.hours.values():
            hour.forget_rows(rows)

    def snapshot(self) -> dict[str, Any]:
        learned = np.flatnonzero(self.first_ms >= 0)
        return {
            "first_ms": [[int(r), int(self.first_ms[r])] for r in learned.tolist()],
            "hours": {str(h): ref.snapshot() for h, ref in sorted(self.hours.items())},
        }

    def restore(self, state: dict[str, Any]) -> None:
        first = [(int(r), int(t)) for r, t in state["first_ms"]]
        self.first_ms = np.full(0, -1, np.int64)
        self._fit(1 + max([r for r, _ in first], default=-1))
        for r, t in first:
            self.first_ms[r] = t
        self.hours = {}
        for h, part in state["hours"].items():
            self.hours[int(h)] = LongReference(self.half_life_windows)
            self.hours[int(h)].restore(part)


def same_hour_reference(
    days: float, window_ms: int, longest_horizon: int
) -> SameHourReference | None:
    """``baseline.same_hour_reference_days`` as a ``SameHourReference`` for horizons of
    up to ``longest_horizon`` windows (None: 0, off)."""
    if days <= 0:
        return None
    return SameHourReference(days, HOUR_MS / window_ms, longest_horizon * window_ms)
