"""Online expectations per scope: each code's share, the scope's volume, and
how noisy both are, kept as exponentially weighted means (River's ``EWMean``)
and read by the score stage as numpy arrays.

Where the state lives: the volume level of each scope and its dispersion are
River's ``EWMean`` arithmetic on numpy vectors (``ewmean.RiverVector``, bit for bit one
``river.stats.EWMean`` per scope, which ``Baseline(reference=True)`` still uses and
the tests compare against). The (scope x code) share and dispersion series are the
same ``EWMean`` update applied to whole numpy matrices at once (``ewmean.DenseEWMean``,
checked against one River object per series in ``tests/unit/test_baseline.py``):
at 10,000 scopes x 16 codes that is 160,000 series, which as River objects cost
~300 bytes and a Python call each per window, and as matrix cells ~17 bytes and
one numpy expression per window. A run of silent windows is learned in one pass
(``learn_silent``), the same arithmetic window by window. The hour-of-day and
hour-of-week volume profiles are in ``core/seasonal.py``.

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

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from statuswatch.core import kernels
from statuswatch.core.columns import I64
from statuswatch.core.ewmean import (
    MAX_DISPERSION,
    DenseEWMean,
    Dispersion,
    RiverSeries,
    RiverVector,
    fading_factor,
    flat_cells,
    grown,
)
from statuswatch.core.seasonal import (
    DAY_MS,
    SEASONAL_MAX_RATIO,
    WEEK_MS,
    Seasonal,
    seasonal_ratio,
)

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: Dispersion is learned only from windows with at least this many expected events.
MIN_EXPECTED_FOR_DISPERSION = 5.0

__all__ = [
    "DAY_MS", "MAX_DISPERSION", "MIN_EXPECTED_FOR_DISPERSION", "SEASONAL_MAX_RATIO",
    "Baseline", "Expectation", "fading_factor",
]


@dataclass(frozen=True, slots=True)
class Expectation:
    """What the baseline expects of the next window, per row (and column)."""

    share: F64  # (rows, cols)
    share_dispersion: F64  # (rows, cols), >= 1
    long_dispersion: F64  # (rows, cols), >= 1: of the last minute's summed counts
    volume: F64  # (rows,)
    volume_dispersion: F64  # (rows,), >= 1
    windows_seen: I64  # (rows,)
    warm: B  # (rows,)


def _local_parents(parents: I64, rows: I64) -> I64:
    """``parents`` of ``rows`` as positions in ``rows`` (-1: none); every parent must
    be among ``rows``.

    >>> _local_parents(np.array([-1, 0, 0, 2]), np.array([0, 2, 3])).tolist()
    [-1, 0, 1]
    """
    position = np.full(len(parents), -1, np.int64)
    position[rows] = np.arange(len(rows))
    up = parents[rows]
    out: I64 = np.where(up >= 0, position[np.maximum(up, 0)], -1)
    if (out[up >= 0] < 0).any():
        raise ValueError("a row's parent is not among the rows")
    return out


def _depth(parents: I64) -> I64:
    """How many ancestors each row has (``parents[r]``: -1 for none).

    >>> _depth(np.array([-1, 0, 1, 0])).tolist()
    [0, 1, 2, 1]
    """
    depth = np.zeros(len(parents), np.int64)
    up = parents.copy()
    while (has := up >= 0).any():
        depth += has
        up = np.where(has, parents[np.maximum(up, 0)], -1)
    return depth


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
        reference: bool = False,
    ) -> None:
        """``reference``: learn volume with one River ``EWMean`` per row (the reference
        the vectorised learner is tested against) instead of ``RiverVector``."""
        self.share_half_life = share_half_life
        self.volume_half_life = volume_half_life
        self.warmup_windows = warmup_windows
        self._share = DenseEWMean(fading_factor(share_half_life))
        #: ``expect``'s last parents array and their depths (``_depth_of``)
        self._depths: tuple[I64, I64] | None = None
        self._share_disp = DenseEWMean(fading_factor(dispersion_half_life))
        self._long_disp = Dispersion(fading_factor(dispersion_half_life))
        series = RiverSeries if reference else RiverVector
        self.reference = reference
        self._volume: RiverSeries | RiverVector = series(fading_factor(volume_half_life))
        self._volume_disp: RiverSeries | RiverVector = series(
            fading_factor(dispersion_half_life)
        )
        # A bucket of an hour sees 3600 s / window updates per period.
        per_bucket = 3_600_000 / window_ms
        seasonal_alpha = fading_factor(seasonal_half_life_periods * per_bucket)
        self._daily = Seasonal(DAY_MS, 24, seasonal_alpha)
        self._weekly = Seasonal(WEEK_MS, 168, seasonal_alpha)
        self._volume_mean = np.zeros(0)
        self._volume_phi = np.ones(0)
        self._seen = np.zeros(0, np.int64)
        self._known = np.zeros((0, 0), dtype=bool)  # columns with a share series, per row
        self._fitted = (0, 0)  # (rows, cols) every array above has room for

    # -- shapes ---------------------------------------------------------------

    def _fit(self, n_rows: int, n_cols: int) -> None:
        if n_rows <= self._fitted[0] and n_cols <= self._fitted[1]:
            return  # every array already has room (the case of nearly every window)
        self._share.fit(n_rows, n_cols)
        self._share_disp.fit(n_rows, n_cols)
        self._long_disp.fit(n_rows, n_cols)
        self._known = grown(self._known, (n_rows, n_cols), False)
        self._volume_mean = grown(self._volume_mean, (n_rows,), 0.0)
        self._volume_phi = grown(self._volume_phi, (n_rows,), 1.0)
        self._seen = grown(self._seen, (n_rows,), 0)
        self._volume.fit(n_rows)
        self._volume_disp.fit(n_rows)
        self._fitted = (max(n_rows, self._fitted[0]), max(n_cols, self._fitted[1]))

    def _share_phi(self, rows: slice | I64, n_cols: int) -> F64:
        disp = self._share_disp
        phi = np.clip(disp.mean[rows, :n_cols], 1.0, MAX_DISPERSION)
        return np.where(disp.started[rows, :n_cols], phi, 1.0)

    # -- read -----------------------------------------------------------------

    def volume_level(self, n_rows: int) -> F64:
        """Each row's learned volume level, before the seasonal profile moves it."""
        self._fit(n_rows, 0)
        return self._volume_mean[:n_rows]

    def first_learned_ms(self, n_rows: int) -> I64:
        """The start of the first window each row learned (-1: none yet)."""
        self._daily.fit(n_rows)
        out: I64 = self._daily.first_ms[:n_rows]
        return out

    def windows_seen(self, n_rows: int) -> I64:
        self._fit(n_rows, 0)
        return self._seen[:n_rows]

    def expect(
        self, n_rows: int, n_cols: int, *, window_start_ms: int, window_ms: int, parents: I64,
        rows: I64 | None = None,
    ) -> Expectation:
        """Expectations for the window starting at ``window_start_ms``.

        ``parents[r]`` is the row a cold row ``r`` borrows shares from (-1: none);
        parents must come before their children. ``rows``: only these rows (ascending,
        with their parents), each field's rows in that order; the same numbers as
        those rows of the whole expectation.
        """
        self._fit(n_rows, n_cols)
        sel: slice | I64 = slice(0, n_rows) if rows is None else rows
        own_parents = parents[:n_rows] if rows is None else _local_parents(parents, rows)
        seen = np.array(self._seen[sel])
        debias = self._debias(seen)
        cells = self._expect_cells_natively(n_rows, n_cols, rows, debias)
        if cells is None:
            share = self._share.mean[sel, :n_cols] / debias[:, None]
            cells = share, self._share_phi(sel, n_cols), self._long_disp.phi(n_rows, n_cols, rows)
        share = cells[0]
        weight = np.minimum(seen / max(self.warmup_windows, 1), 1.0)
        cold = (weight < 1.0) & (own_parents >= 0)
        # A cold row blends in its parent's already blended share: rows one level
        # deeper at a time, each level in one expression.
        depth = self._depth_of(parents, n_rows, own_parents, rows)
        for level in range(1, int(depth.max(initial=0)) + 1):
            blend = (cold & (depth == level)).nonzero()[0]
            if not len(blend):  # no cold row this deep: nothing to blend
                continue
            w = weight[blend][:, None]
            # (np.take: the cheap gather of whole rows)
            share[blend] = w * share.take(blend, axis=0) + (1 - w) * share.take(
                own_parents[blend], axis=0)
        volume = np.array(self._volume_mean[sel])
        lag_ms = round(self.volume_half_life * window_ms / math.log(2))  # mean age of an EWMean
        known = np.flatnonzero(seen >= 1)
        volume[known] *= seasonal_ratio(
            (self._weekly, self._daily), known if rows is None else rows[known],
            window_start_ms, window_start_ms - lag_ms,
        )
        return Expectation(
            share=share,
            share_dispersion=cells[1],
            long_dispersion=cells[2],
            volume=volume,
            volume_dispersion=np.array(self._volume_phi[sel]),
            windows_seen=seen,
            warm=seen >= self.warmup_windows,
        )

    def _expect_cells_natively(
        self, n_rows: int, n_cols: int, rows: I64 | None, debias: F64
    ) -> tuple[F64, F64, F64] | None:
        """``expect``'s per-cell part of ``rows`` (None: the first ``n_rows``) in one C
        pass (``_kernels.expect_cells``): the bias-corrected shares, the share and the
        long dispersion, the numpy path's values bit for bit. None where the kernels are
        not built (the numpy path then computes them)."""
        share, disp, long = self._share, self._share_disp, self._long_disp
        matrices = (share.mean, disp.mean, disp.started, long.resid, long.expected)
        if not (kernels.ENABLED and kernels.one_shape(*matrices)):
            return None
        shape = share.mean.shape
        at = np.arange(n_rows) if rows is None else rows.astype(np.int64, copy=False)
        out = np.empty((3, len(at), n_cols))
        kernels.native.expect_cells(
            at, np.ascontiguousarray(debias), share.mean, disp.mean, disp.started, long.resid,
            long.expected, n_cols, shape[1], long.prior,
            MAX_DISPERSION, out[0], out[1], out[2],
        )
        return out[0], out[1], out[2]

    def _depth_of(self, parents: I64, n_rows: int, own_parents: I64, rows: I64 | None) -> I64:
        """``_depth(own_parents)``, kept while the caller passes the same ``parents``
        array for every row (a new array whenever the scopes change)."""
        if rows is not None:
            return _depth(own_parents)
        held = self._depths
        if held is None or held[0] is not parents or len(held[1]) != n_rows:
            held = self._depths = (parents, _depth(own_parents))
        return held[1]

    # -- learn ----------------------------------------------------------------

    def learn(
        self,
        counts: I64,
        *,
        window_start_ms: int,
        frozen_share: B | None = None,
        frozen_volume: B | None = None,
        totals: I64 | None = None,
        long_counts: I64 | None = None,
        long_totals: I64 | None = None,
        frozen_long: B | None = None,
    ) -> None:
        """Teach one closed window; frozen series keep their expectation. ``totals``
        (each row's requests) when the columns are not disjoint; ``long_counts`` and
        ``long_totals``: the last minute summed, to learn its own dispersion, except
        where ``frozen_long`` (an elevated sum: a creep must not teach its own noise)."""
        n_rows, n_cols = counts.shape
        self._fit(n_rows, n_cols)
        totals = counts.sum(axis=1) if totals is None else totals
        active = (totals > 0) | (self._seen[:n_rows] > 0)
        learn_volume = active if frozen_volume is None else active & ~frozen_volume
        # (x.nonzero()[0]: np.flatnonzero of a vector, without its wrappers' overhead)
        self._learn_volume(learn_volume.nonzero()[0], totals, window_start_ms)
        rows = (totals > 0).nonzero()[0]
        if len(rows) == 0:
            return
        self._seen[rows] += 1
        debias = self._debias(self._seen[rows] - 1)
        if self._learn_cells_natively(
            rows, counts, totals, frozen_share, debias, long_counts, long_totals, frozen_long
        ):
            return
        # Whole rows by np.take: several times faster than fancy indexing, same values.
        counts_of_rows = counts.take(rows, axis=0)
        # The rows' known columns and bias correction, read once for both learners below.
        known = self._known.take(rows, axis=0)[:, :n_cols] | (counts_of_rows > 0)
        self._known[rows, :n_cols] = known
        debias = debias[:, None]
        frozen = np.zeros((len(rows), n_cols), dtype=bool)
        if frozen_share is not None:
            frozen = frozen_share.take(rows, axis=0)[:, :n_cols]
        self._learn_shares(rows, counts_of_rows, totals[rows], frozen, known, debias)
        if long_counts is not None:
            long_totals = long_counts.sum(axis=1) if long_totals is None else long_totals
            if frozen_long is not None:
                frozen = frozen | frozen_long.take(rows, axis=0)[:, :n_cols]
            self._learn_long_dispersion(rows, long_counts.take(rows, axis=0), long_totals[rows],
                                        frozen, known, debias)

    def _learn_cells_natively(
        self, rows: I64, counts: I64, totals: I64, frozen: B | None, debias: F64,
        long_counts: I64 | None, long_totals: I64 | None, frozen_long: B | None,
    ) -> bool:
        """``learn``'s share learning (``_learn_shares``, ``_learn_long_dispersion`` and
        the known columns) of ``rows`` in one C pass (``_kernels.learn_cells``): the same
        values, bit for bit. False, having learned nothing, where the kernels are not
        built or an array is not of the window's shape and kind (the numpy path then
        learns)."""
        n_rows, n_cols = counts.shape
        if long_counts is not None and long_totals is None:
            long_totals = long_counts.sum(axis=1)
        share, disp, long = self._share, self._share_disp, self._long_disp
        matrices = (self._known, share.mean, share.started, disp.mean, disp.started,
                    long.resid, long.expected)
        shape = share.mean.shape
        if not (
            kernels.ENABLED
            and kernels.shaped(counts.shape, (counts, np.int64), (frozen, np.bool_),
                               (long_counts, np.int64), (frozen_long, np.bool_))
            and kernels.shaped((n_rows,), (totals, np.int64), (long_totals, np.int64))
            and kernels.one_shape(*matrices)
        ):
            return False
        c = np.ascontiguousarray
        kernels.native.learn_cells(
            rows.astype(np.int64, copy=False), c(counts), c(totals), kernels.contiguous(frozen),
            c(debias), kernels.contiguous(long_counts), kernels.contiguous(long_totals),
            kernels.contiguous(frozen_long), *matrices, n_cols, shape[1],
            (share.alpha, disp.alpha, long.alpha), MIN_EXPECTED_FOR_DISPERSION,
            MAX_DISPERSION * 4,
        )
        return True

    def learn_silent(self, n_rows: int, n_cols: int, *, window_starts_ms: list[int]) -> None:
        """``learn`` of consecutive windows without requests, nothing frozen: every row
        with history learns a volume of 0 in each; shares stay put. The rows' volume
        state is read once and written once for the whole run, with the same
        arithmetic window by window in between."""
        self._fit(n_rows, n_cols)
        rows = np.flatnonzero(self._seen[:n_rows] > 0)
        vol, disp = self._volume, self._volume_disp
        if not isinstance(vol, RiverVector) or not isinstance(disp, RiverVector):
            for t in window_starts_ms:
                self._learn_volume(rows, np.zeros(n_rows, np.int64), t)
            return
        zeros = np.zeros(len(rows))
        mean, started = vol.mean[rows], vol.started[rows]
        for done in range(len(window_starts_ms)):
            high = mean >= MIN_EXPECTED_FOR_DISPERSION  # as in _learn_volume
            if not high.any() and started.all():
                # Silence only lowers the means: no dispersion is learned from here on,
                # and each step is the multiplication below (alpha * 0 adds exactly 0).
                decay = 1.0 - vol.alpha
                for _ in range(len(window_starts_ms) - done):
                    mean = decay * mean
                break
            if high.any():
                exp, dev = mean[high], zeros[high] - mean[high]
                phi = disp.update(rows[high], np.minimum(dev * dev / exp, MAX_DISPERSION * 4))
                self._volume_phi[rows[high]] = np.minimum(np.maximum(phi, 1.0), MAX_DISPERSION)
            mean = np.where(started, vol.alpha * zeros + (1.0 - vol.alpha) * mean, zeros)
            started = np.ones(len(rows), dtype=bool)
        vol.mean[rows] = mean
        vol.started[rows] = True
        self._volume_mean[rows] = mean
        self._daily.learn_silent(rows, window_starts_ms)
        self._weekly.learn_silent(rows, window_starts_ms)

    def _debias(self, windows: int | I64) -> Any:
        """Bias correction of an EW mean that started at 0: 1 - (1 - alpha)^windows."""
        return 1.0 - (1.0 - self._share.alpha) ** np.maximum(windows, 1)

    def _learn_shares(
        self, rows: I64, counts: I64, totals: I64, frozen: B, known: B, debias: F64
    ) -> None:
        """Every known series of ``rows``: frozen ones are taught their own expectation
        (the corrected mean stays put), the others their share and dispersion.
        ``known``: the rows' known columns; ``debias``: their bias correction (a column)."""
        n_cols = counts.shape[1]
        share = self._share
        p = share.mean.take(rows, axis=0)[:, :n_cols] / debias
        # Cells as flat positions in these (rows, n_cols) arrays: faster than pairs.
        # Mostly nothing is frozen: then no cell is held, and every known one learns.
        any_frozen = bool(frozen.any())
        learn = (known & ~frozen if any_frozen else known).ravel().nonzero()[0]
        r_learn, c_learn = np.divmod(learn, n_cols)
        # Every share series starts at 0, as if tracked since the scope's first
        # window: a code's first appearance then weighs as one window among the
        # scope's history, and the bias correction in ``expect`` keeps a young
        # scope's shares right (the bias-corrected EW mean, as in Adam).
        rr = rows[r_learn]
        started, at = flat_cells(share.started, rr, c_learn)
        started[at] = True
        p_learn = p.reshape(-1)[learn]
        count = counts.reshape(-1)[learn]
        total = totals[r_learn]
        expected = total * p_learn
        disp = (expected >= MIN_EXPECTED_FOR_DISPERSION) & (p_learn < 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            resid2 = (count - expected) ** 2 / (expected * (1.0 - p_learn))
        self._share_disp.update(
            rr[disp], c_learn[disp], np.minimum(resid2[disp], MAX_DISPERSION * 4)
        )
        share.update(rr, c_learn, count / total)
        if any_frozen:
            hold = np.flatnonzero(known & frozen & share.started[rows, :n_cols])
            r_hold, c_hold = np.divmod(hold, n_cols)
            share.update(rows[r_hold], c_hold, p.reshape(-1)[hold])

    def _learn_long_dispersion(
        self, rows: I64, counts: I64, totals: I64, frozen: B, known: B, debias: F64
    ) -> None:
        """The dispersion of the last minute's sums: in traffic that comes in sessions
        (a client's burst spans several windows), summed windows vary far more than
        independent ones would, so the long window needs its own, larger phi.
        ``known`` and ``debias`` as in ``_learn_shares``."""
        n_cols = counts.shape[1]
        p = self._share.mean.take(rows, axis=0)[:, :n_cols] / debias
        at = (known & ~frozen).ravel().nonzero()[0]
        r, c = np.divmod(at, n_cols)
        self._long_disp.update(rows[r], c, counts.reshape(-1)[at], totals[r], p.reshape(-1)[at])

    def _learn_volume(self, rows: I64, totals: I64, window_start_ms: int) -> None:
        volume = totals[rows].astype(np.float64)
        if isinstance(self._volume, RiverVector):
            assert isinstance(self._volume_disp, RiverVector)
            expected = self._volume_mean[rows]
            disp = expected >= MIN_EXPECTED_FOR_DISPERSION
            exp, dev = expected[disp], volume[disp] - expected[disp]
            resid2 = np.minimum(dev * dev / exp, MAX_DISPERSION * 4)
            phi = self._volume_disp.update(rows[disp], resid2)
            self._volume_phi[rows[disp]] = np.minimum(np.maximum(phi, 1.0), MAX_DISPERSION)
            self._volume_mean[rows] = self._volume.update(rows, volume)
        else:
            self._learn_volume_per_row(rows, totals)
        self._daily.learn(rows, window_start_ms, volume)
        self._weekly.learn(rows, window_start_ms, volume)

    def _learn_volume_per_row(self, rows: I64, totals: I64) -> None:
        assert isinstance(self._volume, RiverSeries)
        assert isinstance(self._volume_disp, RiverSeries)
        expected = self._volume_mean[rows]
        for row, total, exp in zip(
            rows.tolist(), totals[rows].tolist(), expected.tolist(), strict=True
        ):
            if exp >= MIN_EXPECTED_FOR_DISPERSION:
                dev = total - exp
                resid2 = dev * dev / exp
                phi = self._volume_disp.update(row, min(resid2, MAX_DISPERSION * 4))
                self._volume_phi[row] = min(max(phi, 1.0), MAX_DISPERSION)
            self._volume_mean[row] = self._volume.update(row, float(total))

    def accept(self, row: int, counts: I64, total: int | None = None) -> None:
        """Take ``counts`` (one scope's recent counts per code, ``total`` requests) as
        its new normal mix."""
        total = int(counts.sum()) if total is None else total
        if total == 0:
            return
        self._fit(row + 1, len(counts))
        self._known[row, : len(counts)] |= counts > 0
        cols = np.flatnonzero(self._known[row, : len(counts)])
        rows = np.full(len(cols), row)
        self._share.started[rows, cols] = False  # a fresh series: its first value is its mean
        raw = counts[cols] / total * self._debias(int(self._seen[row]))
        self._share.update(rows, cols, raw)

    def forget_rows(self, rows: list[int]) -> None:
        """Start ``rows`` afresh: their scope changed (see ``ScopeTable.rebalance``)."""
        if not rows:
            return
        self._fit(max(rows) + 1, 0)
        idx = np.asarray(rows, np.int64)
        for dense in (self._share, self._share_disp):
            dense.mean[idx] = 0.0
            dense.started[idx] = False
        self._long_disp.forget(idx)
        self._known[idx] = False
        self._seen[idx] = 0
        self._volume_mean[idx] = 0.0
        self._volume_phi[idx] = 1.0
        self._volume.forget(idx)
        self._volume_disp.forget(idx)
        for profile in (self._daily, self._weekly):
            profile.fit(max(rows) + 1)
            profile.values[idx] = 0.0
            profile.seen[idx] = False
            profile.first_ms[idx] = -1

    # -- state ----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Plain-JSON state."""
        return {
            "share": self._share.snapshot(),
            "share_dispersion": self._share_disp.snapshot(),
            "long_dispersion": self._long_disp.snapshot(),
            "volume": self._volume.snapshot(),
            "volume_dispersion": self._volume_disp.snapshot(),
            "daily": self._daily.snapshot(),
            "weekly": self._weekly.snapshot(),
            "seasonal_first_ms": [
                [r, t] for r, t in enumerate(self._daily.first_ms.tolist()) if t >= 0
            ],
            "windows_seen": self._seen.tolist(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        seen = state["windows_seen"]
        n_cols = 1 + max((int(item[1]) for item in state["share"]), default=-1)
        self._share = DenseEWMean(self._share.alpha)
        self._share_disp = DenseEWMean(self._share_disp.alpha)
        self._long_disp = Dispersion(self._long_disp.alpha)
        self._known = np.zeros((0, 0), dtype=bool)
        self._volume_mean = np.zeros(0)
        self._volume_phi = np.ones(0)
        self._seen = np.zeros(0, np.int64)
        self._fitted = (0, 0)
        self._fit(len(seen), n_cols)
        self._seen[: len(seen)] = seen
        self._share.restore(state["share"])
        self._share_disp.restore(state["share_dispersion"])
        self._long_disp.restore(state["long_dispersion"])
        self._known[:] = self._share.started
        for r, v in self._volume.restore(state["volume"]):
            self._volume_mean[r] = v
        for r, v in self._volume_disp.restore(state["volume_dispersion"]):
            self._volume_phi[r] = min(max(v, 1.0), MAX_DISPERSION)
        firsts = {int(r): int(t) for r, t in state["seasonal_first_ms"]}
        self._daily.restore(state["daily"], firsts)
        self._weekly.restore(state["weekly"], firsts)
