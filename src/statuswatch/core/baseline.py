"""Online expectations per scope: each code's share, the scope's volume, and
how noisy both are. Kept with River estimators, mirrored into numpy arrays so
the score stage reads them vectorised.

Why this model:

* **Share** of each code is a ``river.stats.EWMean`` per (scope, code) with a
  slow half-life (15 min by default): it follows the drift of the traffic mix
  yet forgets a one-off burst. Shares are far steadier over the day than raw
  volumes, so they need no seasonal term to stay quiet at night.
* **Volume** of each scope is a fast ``EWMean`` (5 min): the recent level. A
  drop of traffic is judged against what the last minutes looked like, which
  already follows the day's curve, so the evening decline never pages while a
  sudden fall does. After a full day (week) of history, the level is moved
  along the learned hour-of-day (hour-of-week) profile, so the expected value
  leads instead of lags on the steep parts of the curve.
* **Dispersion**: real traffic is burstier than a binomial or Poisson draw (a
  big client has a bad minute). An ``EWMean`` of the squared Pearson residuals
  estimates the over-dispersion factor phi >= 1 per series; scores divide the
  evidence by phi (a quasi-likelihood), so noisy scopes need more to page.
* **Cold start**: a new scope starts from its parent's shares (an app from its
  service, a route from its service, a service from the fleet), blending in
  its own history as it accrues; it may not page until warm.
* Series in an active anomaly are not taught (``frozen`` masks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from river import stats

from statuswatch.core.columns import I64

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: Dispersion is learned only from windows with at least this many expected events.
MIN_EXPECTED_FOR_DISPERSION = 5.0
MAX_DISPERSION = 50.0
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS


def fading_factor(half_life_windows: float) -> float:
    """EWMean weight of the newest value so that old values halve every half-life.

    >>> round(fading_factor(1.0), 3)
    0.5
    """
    return float(1.0 - 0.5 ** (1.0 / half_life_windows))


@dataclass(frozen=True, slots=True)
class Expectation:
    """What the baseline expects of the next window, per row (and column)."""

    share: F64  # (rows, cols)
    share_dispersion: F64  # (rows, cols), >= 1
    volume: F64  # (rows,)
    volume_dispersion: F64  # (rows,), >= 1
    windows_seen: I64  # (rows,)
    warm: B  # (rows,)


class _Series:
    """A dict of River EWMeans with a dense numpy mirror of their values."""

    def __init__(self, alpha: float, default: float) -> None:
        self.alpha = alpha
        self.default = default
        self.models: dict[tuple[int, ...], stats.EWMean] = {}

    def update(self, key: tuple[int, ...], value: float) -> float:
        model = self.models.get(key)
        if model is None:
            model = self.models[key] = stats.EWMean(fading_factor=self.alpha)
        model.update(value)
        return float(model.get())

    def snapshot(self) -> list[list[float]]:
        return [[*key, float(m.get())] for key, m in self.models.items()]

    def restore(self, items: list[list[float]], arity: int) -> list[tuple[tuple[int, ...], float]]:
        self.models.clear()
        out = []
        for item in items:
            key = tuple(int(k) for k in item[:arity])
            out.append((key, self.update(key, float(item[arity]))))
        return out


class _Seasonal:
    """Average volume per bucket of a period (hour of day, hour of week), per row.

    Dense numpy arrays, allocated once per row: the profile's memory does not
    grow as event time walks into new hours (one River object per bucket did).
    The update is the same exponentially weighted mean as ``EWMean``.
    """

    def __init__(self, period_ms: int, buckets: int, alpha: float) -> None:
        self.period_ms = period_ms
        self.buckets = buckets
        self.alpha = alpha
        self.values = np.zeros((0, buckets))
        self.seen = np.zeros((0, buckets), dtype=bool)
        self.first_ms: dict[int, int] = {}

    def _position(self, t_ms: int) -> float:
        return (t_ms % self.period_ms) / self.period_ms * self.buckets

    def _fit(self, row: int) -> None:
        if row < self.values.shape[0]:
            return
        grow = max(row + 1, 2 * self.values.shape[0])
        values = np.zeros((grow, self.buckets))
        values[: self.values.shape[0]] = self.values
        seen = np.zeros((grow, self.buckets), dtype=bool)
        seen[: self.seen.shape[0]] = self.seen
        self.values, self.seen = values, seen

    def learn(self, row: int, t_ms: int, volume: float) -> None:
        self._fit(row)
        self.first_ms.setdefault(row, t_ms)
        b = int(self._position(t_ms))
        if self.seen[row, b]:
            self.values[row, b] += self.alpha * (volume - self.values[row, b])
        else:
            self.values[row, b], self.seen[row, b] = volume, True

    def value(self, row: int, t_ms: int) -> float | None:
        """Profile at ``t_ms``, linear between bucket centres; None until a full period."""
        first = self.first_ms.get(row)
        if first is None or t_ms - first < self.period_ms:
            return None
        pos = self._position(t_ms) - 0.5
        lo = int(np.floor(pos)) % self.buckets
        hi = (lo + 1) % self.buckets
        if not (self.seen[row, lo] and self.seen[row, hi]):
            return None
        frac = pos - np.floor(pos)
        return float((1 - frac) * self.values[row, lo] + frac * self.values[row, hi])

    def snapshot(self) -> list[list[float]]:
        rows, buckets = np.nonzero(self.seen)
        return [
            [int(r), int(b), float(self.values[r, b])]
            for r, b in zip(rows, buckets, strict=True)
        ]

    def restore(self, items: list[list[float]]) -> None:
        self.values = np.zeros((0, self.buckets))
        self.seen = np.zeros((0, self.buckets), dtype=bool)
        for r, b, v in items:
            self._fit(int(r))
            self.values[int(r), int(b)], self.seen[int(r), int(b)] = v, True


class Baseline:
    """Expected share per (row, col) and expected volume per row.

    >>> b = Baseline(share_half_life=10, volume_half_life=10, warmup_windows=1)
    >>> b.learn(np.array([[90, 10]]), window_start_ms=0)
    >>> e = b.expect(1, 2, window_start_ms=10_000, window_ms=10_000, parents=np.array([-1]))
    >>> e.share.round(2).tolist(), e.volume.tolist(), e.warm.tolist()
    ([[0.9, 0.1]], [100.0], [True])
    """

    def __init__(
        self,
        share_half_life: float,
        volume_half_life: float,
        warmup_windows: int,
        dispersion_half_life: float = 360.0,
        seasonal_half_life_periods: float = 3.0,
        window_ms: int = 10_000,
    ) -> None:
        self.share_half_life = share_half_life
        self.volume_half_life = volume_half_life
        self.warmup_windows = warmup_windows
        self._share = _Series(fading_factor(share_half_life), 0.0)
        self._share_disp = _Series(fading_factor(dispersion_half_life), 1.0)
        self._volume = _Series(fading_factor(volume_half_life), 0.0)
        self._volume_disp = _Series(fading_factor(dispersion_half_life), 1.0)
        # A bucket of an hour sees 3600 s / window updates per period.
        per_bucket = 3_600_000 / window_ms
        seasonal_alpha = fading_factor(seasonal_half_life_periods * per_bucket)
        self._daily = _Seasonal(DAY_MS, 24, seasonal_alpha)
        self._weekly = _Seasonal(WEEK_MS, 168, seasonal_alpha)
        self._share_mean = np.zeros((0, 0))
        self._share_phi = np.ones((0, 0))
        self._volume_mean = np.zeros(0)
        self._volume_phi = np.ones(0)
        self._seen = np.zeros(0, np.int64)
        self._known: dict[int, set[int]] = {}  # columns with a share series, per row

    # -- shapes ---------------------------------------------------------------

    def _fit(self, n_rows: int, n_cols: int) -> None:
        rows, cols = self._share_mean.shape
        if rows >= n_rows and cols >= n_cols:
            return
        r, c = max(rows, n_rows), max(cols, n_cols)

        def grow(a: Any, shape: tuple[int, ...], fill: float) -> Any:
            out = np.full(shape, fill, dtype=a.dtype)
            out[tuple(slice(0, s) for s in a.shape)] = a
            return out

        self._share_mean = grow(self._share_mean, (r, c), 0.0)
        self._share_phi = grow(self._share_phi, (r, c), 1.0)
        self._volume_mean = grow(self._volume_mean, (r,), 0.0)
        self._volume_phi = grow(self._volume_phi, (r,), 1.0)
        self._seen = grow(self._seen, (r,), 0)

    # -- read -----------------------------------------------------------------

    def windows_seen(self, n_rows: int) -> I64:
        self._fit(n_rows, 0)
        return self._seen[:n_rows]

    def expect(
        self, n_rows: int, n_cols: int, *, window_start_ms: int, window_ms: int, parents: I64
    ) -> Expectation:
        """Expectations for the window starting at ``window_start_ms``.

        ``parents[r]`` is the row a cold row ``r`` borrows shares from (-1: none);
        parents must come before their children.
        """
        self._fit(n_rows, n_cols)
        seen = self._seen[:n_rows].copy()
        share = self._share_mean[:n_rows, :n_cols] / self._debias(seen)[:, None]
        weight = np.minimum(seen / max(self.warmup_windows, 1), 1.0)
        for r in np.flatnonzero((weight < 1.0) & (parents[:n_rows] >= 0)).tolist():
            share[r] = weight[r] * share[r] + (1 - weight[r]) * share[parents[r]]
        volume = self._volume_mean[:n_rows].copy()
        lag_ms = round(self.volume_half_life * window_ms / np.log(2))  # mean age of an EWMean
        for r in np.flatnonzero(seen >= 1).tolist():
            volume[r] *= self._seasonal_ratio(r, window_start_ms, window_start_ms - lag_ms)
        return Expectation(
            share=share,
            share_dispersion=self._share_phi[:n_rows, :n_cols].copy(),
            volume=volume,
            volume_dispersion=self._volume_phi[:n_rows].copy(),
            windows_seen=seen,
            warm=seen >= self.warmup_windows,
        )

    def _seasonal_ratio(self, row: int, now_ms: int, then_ms: int) -> float:
        for profile in (self._weekly, self._daily):
            now, then = profile.value(row, now_ms), profile.value(row, then_ms)
            if now is not None and then is not None and then > 0:
                return float(np.clip(now / then, 0.2, 5.0))
        return 1.0

    # -- learn ----------------------------------------------------------------

    def learn(
        self,
        counts: I64,
        *,
        window_start_ms: int,
        frozen_share: B | None = None,
        frozen_volume: B | None = None,
    ) -> None:
        """Teach one closed window; frozen series keep their expectation."""
        n_rows, n_cols = counts.shape
        self._fit(n_rows, n_cols)
        totals = counts.sum(axis=1)
        active = np.flatnonzero((totals > 0) | (self._seen[:n_rows] > 0)).tolist()
        for row in active:
            total = int(totals[row])
            if frozen_volume is None or not frozen_volume[row]:
                self._learn_volume(row, total, window_start_ms)
            if total == 0:
                continue
            self._seen[row] += 1
            known = self._known.setdefault(row, set())
            known.update(np.flatnonzero(counts[row]).tolist())
            for col in sorted(known):
                frozen = frozen_share is not None and bool(frozen_share[row, col])
                self._learn_share(row, col, int(counts[row, col]), total, frozen=frozen)

    def _debias(self, windows: int | I64) -> Any:
        """Bias correction of an EW mean that started at 0: 1 - (1 - alpha)^windows."""
        return 1.0 - (1.0 - self._share.alpha) ** np.maximum(windows, 1)

    def _learn_share(
        self, row: int, col: int, count: int, total: int, *, frozen: bool = False
    ) -> None:
        key = (row, col)
        p = float(self._share_mean[row, col] / self._debias(int(self._seen[row]) - 1))
        if frozen:
            # Teach the series its own expectation: the corrected mean stays p.
            if key in self._share.models:
                self._share_mean[row, col] = self._share.update(key, p)
            return
        if key not in self._share.models:
            # Every share series starts at 0, as if tracked since the scope's first
            # window: a code's first appearance then weighs as one window among the
            # scope's history, and the bias correction in ``expect`` keeps a young
            # scope's shares right (the bias-corrected EW mean, as in Adam).
            self._share.update(key, 0.0)
        expected = total * p
        if expected >= MIN_EXPECTED_FOR_DISPERSION and p < 1.0:
            resid2 = (count - expected) ** 2 / (expected * (1.0 - p))
            phi = self._share_disp.update(key, min(resid2, MAX_DISPERSION * 4))
            self._share_phi[row, col] = float(np.clip(phi, 1.0, MAX_DISPERSION))
        self._share_mean[row, col] = self._share.update(key, count / total)

    def _learn_volume(self, row: int, total: int, window_start_ms: int) -> None:
        expected = float(self._volume_mean[row])
        if expected >= MIN_EXPECTED_FOR_DISPERSION:
            resid2 = (total - expected) ** 2 / expected
            phi = self._volume_disp.update((row,), min(resid2, MAX_DISPERSION * 4))
            self._volume_phi[row] = float(np.clip(phi, 1.0, MAX_DISPERSION))
        self._volume_mean[row] = self._volume.update((row,), float(total))
        self._daily.learn(row, window_start_ms, float(total))
        self._weekly.learn(row, window_start_ms, float(total))

    def accept(self, row: int, counts: I64) -> None:
        """Take ``counts`` (one scope's recent counts per code) as its new normal mix."""
        total = int(counts.sum())
        if total == 0:
            return
        self._fit(row + 1, len(counts))
        known = self._known.setdefault(row, set())
        known.update(np.flatnonzero(counts).tolist())
        for col in sorted(known):
            self._share.models.pop((row, col), None)
            raw = counts[col] / total * self._debias(int(self._seen[row]))
            self._share_mean[row, col] = self._share.update((row, col), raw)

    # -- state ----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Plain-JSON state."""
        return {
            "share": self._share.snapshot(),
            "share_dispersion": self._share_disp.snapshot(),
            "volume": self._volume.snapshot(),
            "volume_dispersion": self._volume_disp.snapshot(),
            "daily": self._daily.snapshot(),
            "weekly": self._weekly.snapshot(),
            "seasonal_first_ms": [[r, t] for r, t in self._daily.first_ms.items()],
            "windows_seen": self._seen.tolist(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        seen = state["windows_seen"]
        n_cols = 1 + max((int(item[1]) for item in state["share"]), default=-1)
        self._share_mean = np.zeros((0, 0))
        self._share_phi = np.ones((0, 0))
        self._volume_mean = np.zeros(0)
        self._volume_phi = np.ones(0)
        self._seen = np.zeros(0, np.int64)
        self._fit(len(seen), n_cols)
        self._seen[: len(seen)] = seen
        self._known = {}
        for (r, c), v in self._share.restore(state["share"], 2):
            self._share_mean[r, c] = v
            self._known.setdefault(r, set()).add(c)
        for (r, c), v in self._share_disp.restore(state["share_dispersion"], 2):
            self._share_phi[r, c] = np.clip(v, 1.0, MAX_DISPERSION)
        for (r,), v in self._volume.restore(state["volume"], 1):
            self._volume_mean[r] = v
        for (r,), v in self._volume_disp.restore(state["volume_dispersion"], 1):
            self._volume_phi[r] = np.clip(v, 1.0, MAX_DISPERSION)
        self._daily.restore(state["daily"])
        self._weekly.restore(state["weekly"])
        firsts = {int(r): int(t) for r, t in state["seasonal_first_ms"]}
        self._daily.first_ms = dict(firsts)
        self._weekly.first_ms = dict(firsts)
