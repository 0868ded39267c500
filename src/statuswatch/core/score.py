"""Count-aware significance of a window's counts against the baseline.

A code's count in a window is Binomial(n = scope total, p = expected share);
a scope's total is Poisson(expected volume). Both are widened by the series'
over-dispersion phi (quasi-likelihood: counts and totals divided by phi), so
bursty series need more evidence. The score is ``-log10`` of the one-sided tail
probability: 6 means "one chance in a million under the baseline". Small
counts get honest, small scores: three 403s where one was expected is not
significant, unlike with a Gaussian z-score on the share.

>>> s = score_shares(np.array([[3, 997]]), np.array([[0.001, 0.999]]))
>>> bool(s.up[0, 0] < 2)
True
>>> s = score_shares(np.array([[300, 700]]), np.array([[0.002, 0.998]]))
>>> bool(s.up[0, 0] > 100)
True
>>> v = score_volume(np.array([0, 95]), np.array([100.0, 100.0]))
>>> bool(v.down[0] > 40), bool(v.down[1] < 1)
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from scipy import special

from statuswatch.core import kernels
from statuswatch.core.columns import I64

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
T = TypeVar("T", bound=npt.NDArray[np.generic])

#: Scores are capped so they stay finite in JSON and metrics.
MAX_SCORE = 300.0
#: Screened scores are computed on a gathered subset of rows only below this share of
#: the rows: above it, gathering and spreading back costs more than the rows saved.
SUBSET_ROW_SHARE = 0.4


@dataclass(frozen=True, slots=True)
class ShareScores:
    up: F64  # -log10 P(X >= observed), at the floored share
    down: F64  # -log10 P(X <= observed), at the learned share
    observed_share: F64
    expected_count: F64  # learned share * requests a drop is judged over: its expectation
    up_expected_count: F64  # n * max(learned share, floor): what a rise is judged against
    totals: I64

    def expected(self, direction: str) -> F64:
        """The expected counts the ``direction`` ("up" or "down") tail was scored at."""
        return self.up_expected_count if direction == "up" else self.expected_count


@dataclass(frozen=True, slots=True)
class VolumeScores:
    up: F64
    down: F64
    expected: F64


def _to_score(prob: F64) -> F64:
    """-log10 of a probability, within [0, MAX_SCORE] (NaN: 0, zero: MAX_SCORE).

    >>> _to_score(np.array([0.1, 1e-7, 0.0, np.nan])).tolist()
    [1.0, 7.0, 300.0, 0.0]
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        score: F64 = -np.log10(prob)
    np.copyto(score, 0.0, where=np.isnan(score))
    return np.clip(score, 0.0, MAX_SCORE, out=score)


def binomial_tails(x: F64, n: F64, p: F64) -> tuple[F64, F64]:
    """P(X >= x) and P(X <= x) for Binomial(n, p), for real-valued x and n.

    Uses the regularised incomplete beta function, which extends the binomial
    tails to the fractional counts that dispersion scaling produces.

    >>> up, down = binomial_tails(np.array([2.0]), np.array([10.0]), np.array([0.1]))
    >>> round(float(up[0]), 4), round(float(down[0]), 4)
    (0.2639, 0.9298)
    """
    return upper_tail(x, n, p), lower_tail(x, n, p)


def upper_tail(x: F64, n: F64, p: F64, cells: B | None = None) -> F64:
    """P(X >= x) for Binomial(n, p); with ``cells``, only there (1.0 elsewhere)."""
    if cells is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            out: F64 = np.where(x > 0, special.betainc(np.maximum(x, 1e-12), n - x + 1, p), 1.0)
        return out
    return _on_cells(upper_tail, x, n, p, cells)


def lower_tail(x: F64, n: F64, p: F64, cells: B | None = None) -> F64:
    """P(X <= x) for Binomial(n, p); with ``cells``, only there (1.0 elsewhere)."""
    if cells is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            out: F64 = np.where(
                x < n, special.betainc(np.maximum(n - x, 1e-12), x + 1, 1 - p), 1.0
            )
        return out
    return _on_cells(lower_tail, x, n, p, cells)


def _on_cells(tail: Callable[[F64, F64, F64], F64], x: F64, n: F64, p: F64, cells: B) -> F64:
    out = np.ones(np.broadcast_shapes(x.shape, n.shape, p.shape))
    idx = np.nonzero(cells)
    if len(idx[0]):
        x, n, p = np.broadcast_arrays(x, n, p)
        out[idx] = tail(x[idx], n[idx], p[idx])
    return out


#: A screened-out tail scores at least this much below its threshold: the bound below
#: and scipy's incomplete beta are both accurate to ~1e-13 relative, far inside it.
SCREEN_MARGIN = 1e-6


def _log_tail_lower_bound(a: F64, b: F64, q: F64) -> F64:
    """ln of a lower bound on the regularised incomplete beta I_q(a, b), a, b > 0.

    I_q(a, b) = q^a (1-q)^b / (a B(a, b)) * 2F1(a+b, 1; a+1; q) (DLMF 8.17.8), and
    every term of that series is positive: its first two terms bound it from below.
    For a binomial tail this is about P(X = x), the largest term of the tail.
    """
    log_beta = special.gammaln(a) + special.gammaln(b) - special.gammaln(a + b)
    head = a * np.log(q) + b * np.log1p(-q) - np.log(a) - log_beta
    out: F64 = head + np.log1p((a + b) * q / (a + 1))
    return out


#: The most a tail at or beyond the mean of a log-concave Beta can score: such a Beta
#: puts at least 1/e of its mass on each side of its mean (Grunbaum's inequality in one
#: dimension), so the tail is at least 1/e.
MEAN_SIDE_SCORE = float(np.log10(np.e))


def upper_tail_may_reach(x: F64, n: F64, p: F64, below: float) -> B:
    """Cells whose P(X >= x) may score ``below`` or more; every other cell provably
    scores less (its tail probability is above a lower bound above ``10**-below``).
    Costs a few array passes over the cells with x > 0, no incomplete beta.

    P(X >= x) = I_p(x, n - x + 1) = P(B <= p), B ~ Beta(x, n - x + 1): log-concave for
    1 <= x <= n, with mean x / (n + 1). A count at most that share of
    n + 1 therefore scores at most ``MEAN_SIDE_SCORE``: below ``below`` without a bound.
    """
    shape, (fx, fn, fp) = _flat(x, n, p)
    out = fx > 0
    if below - SCREEN_MARGIN > MEAN_SIDE_SCORE:
        out &= (fx < 1.0) | (fx > (fn + 1.0) * fp) | (fx > fn)
    i = out.nonzero()[0]  # out is flat: np.flatnonzero's wrappers are slower
    a, n_i, p_i = fx[i], fn[i], fp[i]
    limit = below - SCREEN_MARGIN
    # Also P(X >= x) >= p^x for x <= n (I_p(x, b) grows with b; I_p(x, 1) = p^x): a
    # cheaper bound, and the tighter one for a common code (its C twin tries it first).
    out[i] = ((a > n_i) | (-a * np.log(p_i) / _LN10 >= limit)) & (
        -_log_tail_lower_bound(a, n_i - a + 1, p_i) / _LN10 >= limit)
    return out.reshape(shape)


def lower_tail_may_reach(x: F64, n: F64, p: F64, below: float) -> B:
    """Cells whose P(X <= x) may score ``below`` or more (see ``upper_tail_may_reach``).
    The tail is at least (1-p)^(n-x) (I_{1-p}(n - x, b) grows with b, and
    I_{1-p}(n - x, 1) = (1-p)^(n-x)), in closed form at x = 0: where that scores under
    ``below``, as it does wherever fewer than about ``below * ln 10`` events are
    expected, the count cannot reach it. The series bound decides the rest, but for
    counts at or above the mean of their tail's Beta (see ``upper_tail_may_reach``):
    P(X <= x) = P(B <= 1 - p), B ~ Beta(n - x, x + 1), log-concave for n - x >= 1,
    with mean (n - x) / (n + 1)."""
    shape, (fx, fn, fp) = _flat(x, n, p)
    absent = fx <= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        none_seen = -(fn - fx) * np.log1p(-fp) / _LN10 >= below - SCREEN_MARGIN
    out = none_seen & (fx < fn)
    if below - SCREEN_MARGIN > MEAN_SIDE_SCORE:
        out &= (fn - fx < 1.0) | ((fn - fx) > (fn + 1.0) * (1.0 - fp))
    i = (out & ~absent).nonzero()[0]
    a = fn[i] - fx[i]
    out[i] = -_log_tail_lower_bound(a, fx[i] + 1, 1 - fp[i]) / _LN10 >= below - SCREEN_MARGIN
    return out.reshape(shape)


def _flat(*arrays: F64) -> tuple[tuple[int, ...], list[F64]]:
    """The broadcast shape and each array flattened to it (a view where it can be)."""
    first = arrays[0].shape
    if all(a.shape == first for a in arrays):  # the common case, without broadcasting
        return first, [a.ravel() for a in arrays]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    return shape, [_full(a, shape).ravel() for a in arrays]


def _full(a: F64, shape: tuple[int, ...]) -> F64:
    """``a`` broadcast to ``shape``; itself when it has that shape (most calls: cheaper)."""
    out: F64 = a if a.shape == shape else np.broadcast_to(a, shape)
    return out


_LN10 = float(np.log(10.0))


def poisson_tails(k: F64, lam: F64) -> tuple[F64, F64]:
    """P(X >= k) and P(X <= k) for Poisson(lam), for real-valued k.

    >>> up, down = poisson_tails(np.array([0.0, 3.0]), np.array([2.0, 2.0]))
    >>> [round(float(x), 4) for x in up], [round(float(x), 4) for x in down]
    ([1.0, 0.3233], [0.1353, 0.8571])
    """
    return _poisson_up(k, lam), _poisson_down(k, lam)


def _poisson_up(k: F64, lam: F64) -> F64:
    out: F64 = np.where(k > 0, special.gammainc(np.maximum(k, 1e-12), np.maximum(lam, 1e-12)), 1.0)
    return out


def _poisson_down(k: F64, lam: F64) -> F64:
    out: F64 = special.gammaincc(k + 1, np.maximum(lam, 1e-12))
    return out


def share_floor(volume: F64, windows_seen: I64, half_life: float) -> F64:
    """Smallest share a *rise* is judged against: under one request in the history.

    A code never seen in ``volume * windows`` requests could still have had a
    share of up to about ``1 / (volume * windows)`` (the "rule of one"), so its
    first appearance is weak evidence. The floor only ever makes a rise less
    surprising; a drop is judged against the learned share alone (where the
    floor would turn every absent code of a burst after a quiet spell into a
    collapse: with the expected volume near zero the floor nears 1).
    """
    history = volume * np.minimum(windows_seen, half_life)
    return 1.0 / np.maximum(history + 1.0, 1.0)


def score_shares(
    counts: I64, expected_share: F64, floor: F64 | None = None, dispersion: F64 | None = None,
    totals: I64 | None = None, down_totals: F64 | None = None, *, below: float | None = None,
    exact: B | None = None, up_cells: B | None = None, down_cells: B | None = None,
    rows: B | None = None,
) -> ShareScores:
    """Quasi-binomial tail scores for every (row, col) of one window; ``totals`` (each
    row's requests) when the columns are not disjoint (a status class's summed column).

    ``floor`` (per row) guards the upper tail only: a rise is judged against
    ``max(expected_share, floor)``, a drop against ``expected_share``, so a drop
    needs a learned expectation large enough that its absence is improbable.
    ``down_totals`` (per row): the requests a drop is judged over when not all of
    the row's (at most its usual volume: a surge of other traffic that dilutes a
    code's share, such as a crawler's, is not that code's collapse).

    Screened, with ``below``: a tail that provably scores under ``below`` is not
    computed and reads 0, except in the ``exact`` cells; every score at or above
    ``below`` is exact. ``up_cells`` / ``down_cells``: score only those cells of
    that tail (0 elsewhere). Without these arguments every cell is exact. Screened,
    only the rows with requests (or ``exact`` cells) are computed: a row without
    requests has nothing to score. ``rows``: only those rows at all; every field of
    the others reads 0 (for a caller that reads none of them).

    >>> s = score_shares(np.array([[0, 18]]), np.array([[0.001, 0.999]]), np.array([0.98]))
    >>> round(float(s.expected_count[0, 0]), 3), round(float(s.up_expected_count[0, 0]), 2)
    (0.018, 17.64)
    >>> bool(s.down[0, 0] < 0.01)
    True
    """
    totals = counts.sum(axis=1) if totals is None else totals
    if kernels.ENABLED and below is not None and up_cells is None and down_cells is None:
        native = _native_share_scores(counts, expected_share, floor, dispersion, totals,
                                      down_totals, below, exact, rows)
        if native is not None:
            return native
    if below is None and rows is None:
        return _score_shares(counts, expected_share, floor, dispersion, totals, down_totals,
                             below, exact, up_cells, down_cells)
    # The rows that can have a score: with requests, or exact cells (screened); all.
    scorable = totals > 0 if below is not None else np.ones(len(totals), dtype=bool)
    if below is not None and exact is not None:
        scorable |= exact.any(axis=1)
    keep = scorable if rows is None else scorable & rows
    n_keep = int(np.count_nonzero(keep))
    if n_keep == len(keep) or (below is not None and n_keep >= SUBSET_ROW_SHARE * len(keep)):
        # Every row in place: gathering most rows and spreading them back costs more.
        # Screened, a row without requests or exact cells reads 0 as spread leaves it;
        # the rows ``rows`` leaves out that could score are scored as such rows.
        cut = scorable & ~keep
        if not cut.any():
            return _score_shares(counts, expected_share, floor, dispersion, totals,
                                 down_totals, below, exact, up_cells, down_cells)
        whole = _score_shares(
            np.where(cut[:, None], 0, counts), expected_share, floor, dispersion,
            np.where(cut, 0, totals), down_totals, below,
            None if exact is None else exact & ~cut[:, None], up_cells, down_cells,
        )
        return ShareScores(whole.up, whole.down, whole.observed_share, whole.expected_count,
                           whole.up_expected_count, totals)
    idx = keep.nonzero()[0]
    shape = counts.shape

    sub = _score_shares(
        counts.take(idx, axis=0), _full(expected_share, shape).take(idx, axis=0),
        _rows_of(floor, idx),
        _rows_of(None if dispersion is None else _full(dispersion, shape), idx), totals[idx],
        _rows_of(down_totals, idx), below, _rows_of(exact, idx), _rows_of(up_cells, idx),
        _rows_of(down_cells, idx),
    )
    def spread(part: F64, full: F64) -> F64:
        full[idx] = part
        return full

    # Tails read -0.0 where not scored (as ``_scores_on``); the rest 0.0, from np.zeros
    # (a zeroed allocation: cheaper than np.full).
    return ShareScores(
        spread(sub.up, np.full(shape, -0.0)), spread(sub.down, np.full(shape, -0.0)),
        spread(sub.observed_share, np.zeros(shape)), spread(sub.expected_count, np.zeros(shape)),
        spread(sub.up_expected_count, np.zeros(shape)), totals,
    )


def _native_share_scores(
    counts: I64, share: F64, floor: F64 | None, dispersion: F64 | None, totals: I64,
    down_totals: F64 | None, below: float, exact: B | None, rows: B | None,
) -> ShareScores | None:
    """``score_shares`` screened at ``below`` on the C kernels, where every array has
    its full shape and kind (None: the caller scores on numpy): the same scores, the
    exact tails of the cells the screen keeps from the same functions."""
    shape = counts.shape
    if len(shape) != 2 or not (
        kernels.shaped(shape, (counts, np.int64), (share, np.float64),
                       (dispersion, np.float64), (exact, np.bool_))
        and kernels.shaped(shape[:1], (floor, np.float64), (totals, np.int64),
                           (down_totals, np.float64), (rows, np.bool_))
    ):
        return None
    size = counts.size
    observed, expected, up_expected = np.empty(shape), np.empty(shape), np.empty(shape)
    idx, at = np.empty(2 * size, np.int64), np.empty((4, 2 * size))
    limit = below - SCREEN_MARGIN
    c = np.ascontiguousarray
    k_up, k_down = kernels.native.share_cells(
        c(counts), c(share), kernels.contiguous(floor), kernels.contiguous(dispersion),
        c(totals), kernels.contiguous(down_totals), kernels.contiguous(rows),
        kernels.contiguous(exact), shape[1], limit, limit > MEAN_SIDE_SCORE, observed,
        expected, up_expected, idx, at,
    )
    up, down = np.full(size, -0.0), np.full(size, -0.0)  # as ``_scores_on`` leaves them
    k = k_up + k_down
    if k:  # both tails' exact scores in one call, as upper_tail and lower_tail give them
        scores = _to_score(np.where(at[3, :k] > 0, special.betainc(*at[:3, :k]), 1.0))
        up[idx[:k_up]] = scores[:k_up]
        down[idx[k_up:k]] = scores[k_up:]
    return ShareScores(up.reshape(shape), down.reshape(shape), observed, expected, up_expected,
                       totals)


def _rows_of(a: T | None, idx: npt.NDArray[np.intp]) -> T | None:
    """Rows ``idx`` of ``a`` (None stays None); np.take: several times faster than
    fancy indexing for the rows of a matrix, the same values."""
    return None if a is None else a.take(idx, axis=0)  # type: ignore[return-value]


def _score_shares(
    counts: I64, expected_share: F64, floor: F64 | None, dispersion: F64 | None,
    totals: I64, down_totals: F64 | None, below: float | None, exact: B | None,
    up_cells: B | None, down_cells: B | None,
) -> ShareScores:
    """``score_shares`` of every row given."""
    n = np.empty(counts.shape)
    n[...] = totals[:, None]
    p = np.clip(expected_share, 1e-12, 1.0 - 1e-12)
    p_up = p if floor is None else np.clip(np.maximum(p, floor[:, None]), 1e-12, 1.0 - 1e-12)
    n_down = n if down_totals is None else np.minimum(n, down_totals[:, None])
    if dispersion is None:
        x, n_up_phi, n_down_phi = counts.astype(np.float64), n, n_down
    else:
        x, n_up_phi, n_down_phi = counts / dispersion, n / dispersion, n_down / dispersion
    if below is not None:
        # A row without requests has no tail that can reach ``below`` (x = n = 0):
        # bound only the rows with requests.
        rows = (totals > 0).nonzero()[0]
        if len(rows) == len(totals):  # every row (what ``score_shares`` passes, mostly)
            may_up = upper_tail_may_reach(x, n_up_phi, p_up, below)
            may_down = lower_tail_may_reach(x, n_down_phi, p, below)
        else:
            may_up = np.zeros(counts.shape, dtype=bool)
            may_down = np.zeros(counts.shape, dtype=bool)
        if 0 < len(rows) < len(totals):
            shape = counts.shape
            x_r = _full(x, shape)[rows]
            may_up[rows] = upper_tail_may_reach(
                x_r, _full(n_up_phi, shape)[rows], _full(p_up, shape)[rows], below
            )
            may_down[rows] = lower_tail_may_reach(
                x_r, _full(n_down_phi, shape)[rows], _full(p, shape)[rows], below
            )
        if exact is not None:
            may_up |= exact
            may_down |= exact
        up_cells = may_up if up_cells is None else up_cells & may_up
        down_cells = may_down if down_cells is None else down_cells & may_down
    up = _scores_on(upper_tail, x, n_up_phi, p_up, up_cells)
    down = _scores_on(lower_tail, x, n_down_phi, p, down_cells)
    # A row without requests has no count in any column: 0 / 1 reads 0.0 there.
    observed = counts / np.maximum(n, 1.0)
    return ShareScores(up, down, observed, p * n_down, p_up * n, totals)


def _scores_on(tail: Callable[[F64, F64, F64], F64], x: F64, n: F64, p: F64,
               cells: B | None) -> F64:
    """Scores of ``tail`` (every cell, or only ``cells``: elsewhere the score of a
    certain event, -log10 1 = -0.0, as ``_to_score`` gives it)."""
    if cells is None:
        return _to_score(tail(x, n, p))
    shape, (fx, fn, fp) = _flat(x, n, p)
    out = np.full(len(fx), -0.0)
    i = cells.ravel().nonzero()[0]
    if len(i):
        out[i] = _to_score(tail(fx[i], fn[i], fp[i]))
    return out.reshape(shape)


def rise_scores(counts: I64, n: F64, p: F64, dispersion: F64, cells: B) -> F64:
    """Upper-tail (rise) scores of ``counts`` of ``n`` at share ``p``, widened by
    ``dispersion``, computed only at ``cells`` (0 elsewhere): a few exact tails
    without a pass of array arithmetic over every cell.

    >>> rise_scores(np.array([[3, 30]]), np.array([[100.0, 100.0]]),
    ...             np.array([[0.01, 0.01]]), np.ones((1, 2)), np.array([[False, True]]))[0, 0]
    np.float64(0.0)
    """
    out = np.zeros(counts.shape)
    idx = np.nonzero(cells)
    if len(idx[0]):
        phi = dispersion[idx]
        x, nn = counts[idx] / phi, n[idx] / phi
        pp = np.clip(p[idx], 1e-12, 1.0 - 1e-12)
        out[idx] = _to_score(upper_tail(x, nn, pp))
    return out


def score_volume(
    totals: I64, expected: F64, dispersion: F64 | None = None, *, below: float | None = None,
    up_rows: B | None = None,
) -> VolumeScores:
    """Quasi-Poisson tail scores of each row's total against its expected volume.

    Screened, with ``below``: a drop that provably scores under ``below`` reads 0,
    uncomputed: P(X <= k) >= P(X = 0) = e^-lam for every k >= 0 (the regularised
    upper incomplete gamma Q(k + 1, lam) grows with k). ``up_rows``: rises are scored
    only there (0 elsewhere).
    """
    phi = np.ones_like(expected) if dispersion is None else dispersion
    k, lam = totals / phi, expected / phi
    # Without a baseline (expected 0) there is nothing to compare against.
    known = expected > 0
    if below is None and up_rows is None:
        up, down = poisson_tails(k, lam)
        return VolumeScores(
            np.where(known, _to_score(up), 0.0), np.where(known, _to_score(down), 0.0), expected
        )
    drop_rows = known
    if below is not None:
        drop_rows = known & (np.maximum(lam, 1e-12) / _LN10 >= below - SCREEN_MARGIN)
    rise_rows = known if up_rows is None else known & up_rows
    scores = []
    for tail, rows in ((_poisson_up, rise_rows), (_poisson_down, drop_rows)):
        out = np.zeros(len(k))
        i = rows.nonzero()[0]
        if len(i):
            out[i] = _to_score(tail(k[i], lam[i]))
        scores.append(out)
    return VolumeScores(scores[0], scores[1], expected)


def excess_gates(
    observed: I64 | F64, expected: F64, min_excess: F64 | float, min_ratio: F64 | float,
    expected_down: F64 | None = None,
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Where a rise (up) or a fall (down) is large enough to count, whatever its score:
    at least ``min_excess`` requests and a ratio of at least ``min_ratio``. A fall is
    measured from ``expected_down`` when given (each tail its own expectation).

    >>> up, down = excess_gates(np.array([30, 12, 2]), np.full(3, 10.0), 5, 2.0)
    >>> up.tolist(), down.tolist()
    ([True, False, False], [False, False, True])
    """
    low = expected if expected_down is None else expected_down
    return (rise_gate(observed, expected, min_excess, min_ratio),
            rise_gate(low, observed, min_excess, min_ratio))


def rise_gate(
    observed: I64 | F64, expected: I64 | F64, min_excess: F64 | float, min_ratio: F64 | float
) -> npt.NDArray[np.bool_]:
    """The rise half of ``excess_gates`` (a fall is a rise of the expectation over the
    count)."""
    mask: npt.NDArray[np.bool_] = observed - expected >= min_excess
    # The ratio only where the excess already counts (few cells): same decisions.
    idx = np.nonzero(mask)
    if not len(idx[0]):  # no excess counts: no ratio to check
        return mask
    n, d = _pick(observed, idx, mask.shape), _pick(expected, idx, mask.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(d > 0, n / d, np.inf)
    mask[idx] = ratio >= _pick(min_ratio, idx, mask.shape)
    return mask


def _pick(a: npt.ArrayLike, idx: tuple[npt.NDArray[np.intp], ...], shape: tuple[int, ...]
          ) -> F64:
    """``a`` (an array or a scalar, broadcast to ``shape``) at the indices ``idx``."""
    out: F64 = _full(np.asarray(a, dtype=np.float64), shape)[idx]
    return out
