"""Count-aware significance of a window's counts against the baseline.

A code's count in a window is Binomial(n = scope total, p = expected share).
The score is ``-log10`` of the one-sided tail probability, so 6 means "one
chance in a million under the baseline". Small counts get honest, small scores:
three 403s where one was expected is not significant, unlike with a Gaussian
z-score on the share.

>>> s = score_shares(np.array([[3, 997]]), np.array([[0.001, 0.999]]))
>>> bool(s.up[0, 0] < 2)
True
>>> s = score_shares(np.array([[300, 700]]), np.array([[0.002, 0.998]]))
>>> bool(s.up[0, 0] > 100)
True
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
    up: F64  # -log10 P(X >= observed)
    down: F64  # -log10 P(X <= observed)
    observed_share: F64
    expected_count: F64
    totals: I64


def share_floor(volume: F64, windows_seen: I64, half_life: float) -> F64:
    """Smallest share we are willing to expect: under one request in the history.

    A code never seen in ``volume * windows`` requests could still have had a
    share of up to about ``1 / (volume * windows)`` (the "rule of one").
    """
    history = volume * np.minimum(windows_seen, half_life)
    return 1.0 / np.maximum(history + 1.0, 1.0)


def score_shares(counts: I64, expected_share: F64, floor: F64 | None = None) -> ShareScores:
    """Binomial tail scores for every (row, col) of one window."""
    totals = counts.sum(axis=1)
    n = np.broadcast_to(totals[:, None], counts.shape)
    p = expected_share if floor is None else np.maximum(expected_share, floor[:, None])
    p = np.clip(p, 1e-12, 1.0 - 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        # bdtrc(k, n, p) = P(X > k); bdtr(k, n, p) = P(X <= k). Both are C ufuncs.
        tail_up = np.where(counts > 0, special.bdtrc(counts - 1, n, p), 1.0)
        up = -np.log10(tail_up)
        down = -np.log10(special.bdtr(counts, n, p))
        observed = np.where(n > 0, counts / np.maximum(n, 1), 0.0)
    up = np.clip(np.nan_to_num(up, nan=0.0, posinf=MAX_SCORE), 0.0, MAX_SCORE)
    down = np.clip(np.nan_to_num(down, nan=0.0, posinf=MAX_SCORE), 0.0, MAX_SCORE)
    return ShareScores(up, down, observed, p * n, totals)
