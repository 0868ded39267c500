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

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from statuswatch.core.columns import I64

F64 = npt.NDArray[np.float64]

#: Scores are capped so they stay finite in JSON and metrics.
MAX_SCORE = 300.0


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
    with np.errstate(divide="ignore", invalid="ignore"):
        score = -np.log10(prob)
    clipped: F64 = np.clip(np.nan_to_num(score, nan=0.0, posinf=MAX_SCORE), 0.0, MAX_SCORE)
    return clipped


def binomial_tails(x: F64, n: F64, p: F64) -> tuple[F64, F64]:
    """P(X >= x) and P(X <= x) for Binomial(n, p), for real-valued x and n.

    Uses the regularised incomplete beta function, which extends the binomial
    tails to the fractional counts that dispersion scaling produces.

    >>> up, down = binomial_tails(np.array([2.0]), np.array([10.0]), np.array([0.1]))
    >>> round(float(up[0]), 4), round(float(down[0]), 4)
    (0.2639, 0.9298)
    """
    return binomial_up(x, n, p), binomial_down(x, n, p)


def binomial_up(x: F64, n: F64, p: F64) -> F64:
    """P(X >= x) for Binomial(n, p), real-valued x and n (see ``binomial_tails``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        up: F64 = np.where(x > 0, special.betainc(np.maximum(x, 1e-12), n - x + 1, p), 1.0)
    return up


def binomial_down(x: F64, n: F64, p: F64) -> F64:
    """P(X <= x) for Binomial(n, p), real-valued x and n (see ``binomial_tails``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        down: F64 = np.where(
            x < n, special.betainc(np.maximum(n - x, 1e-12), x + 1, 1 - p), 1.0
        )
    return down


def poisson_tails(k: F64, lam: F64) -> tuple[F64, F64]:
    """P(X >= k) and P(X <= k) for Poisson(lam), for real-valued k.

    >>> up, down = poisson_tails(np.array([0.0, 3.0]), np.array([2.0, 2.0]))
    >>> [round(float(x), 4) for x in up], [round(float(x), 4) for x in down]
    ([1.0, 0.3233], [0.1353, 0.8571])
    """
    lam = np.maximum(lam, 1e-12)
    up = np.where(k > 0, special.gammainc(np.maximum(k, 1e-12), lam), 1.0)
    down = special.gammaincc(k + 1, lam)
    return up, down


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
    totals: I64 | None = None, down_totals: F64 | None = None,
) -> ShareScores:
    """Quasi-binomial tail scores for every (row, col) of one window; ``totals`` (each
    row's requests) when the columns are not disjoint (a status class's summed column).

    ``floor`` (per row) guards the upper tail only: a rise is judged against
    ``max(expected_share, floor)``, a drop against ``expected_share``, so a drop
    needs a learned expectation large enough that its absence is improbable.
    ``down_totals`` (per row): the requests a drop is judged over when not all of
    the row's (at most its usual volume: a surge of other traffic that dilutes a
    code's share, such as a crawler's, is not that code's collapse).

    >>> s = score_shares(np.array([[0, 18]]), np.array([[0.001, 0.999]]), np.array([0.98]))
    >>> round(float(s.expected_count[0, 0]), 3), round(float(s.up_expected_count[0, 0]), 2)
    (0.018, 17.64)
    >>> bool(s.down[0, 0] < 0.01)
    True
    """
    totals = counts.sum(axis=1) if totals is None else totals
    n = np.broadcast_to(totals[:, None], counts.shape).astype(np.float64)
    p = np.clip(expected_share, 1e-12, 1.0 - 1e-12)
    p_up = p if floor is None else np.clip(np.maximum(p, floor[:, None]), 1e-12, 1.0 - 1e-12)
    phi = np.ones_like(p) if dispersion is None else dispersion
    x, n_phi = counts / phi, n / phi
    n_down = n if down_totals is None else np.minimum(n, down_totals[:, None])
    up, down = binomial_up(x, n_phi, p_up), binomial_down(x, n_down / phi, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        observed = np.where(n > 0, counts / np.maximum(n, 1), 0.0)
    return ShareScores(_to_score(up), _to_score(down), observed, p * n_down, p_up * n, totals)


def score_volume(totals: I64, expected: F64, dispersion: F64 | None = None) -> VolumeScores:
    """Quasi-Poisson tail scores of each row's total against its expected volume."""
    phi = np.ones_like(expected) if dispersion is None else dispersion
    up, down = poisson_tails(totals / phi, expected / phi)
    # Without a baseline (expected 0) there is nothing to compare against.
    known = expected > 0
    return VolumeScores(
        np.where(known, _to_score(up), 0.0), np.where(known, _to_score(down), 0.0), expected
    )


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
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_up = np.where(expected > 0, observed / expected, np.inf)
        ratio_down = np.where(observed > 0, low / observed, np.inf)
    up = (observed - expected >= min_excess) & (ratio_up >= min_ratio)
    down = (low - observed >= min_excess) & (ratio_down >= min_ratio)
    return up, down
