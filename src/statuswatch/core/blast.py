"""Blast radius: how many scopes of one level (apps) are anomalous on one code at once.

A freeze of many small apps hides in each app's small counts, and in the fleet's share
when the apps are few of its traffic; that so many apps are odd together is the signal.
The count of odd apps is scored against a binomial null in which each active app is odd
by chance with probability ``BLAST_NULL_FRACTION``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from statuswatch.config import BlastRadiusConfig
from statuswatch.core.columns import I64
from statuswatch.core.decide import Evidence
from statuswatch.core.horizons import HorizonView
from statuswatch.core.score import (
    F64,
    ShareScores,
    binomial_tails,
    poisson_tails,
    rise_scores,
)

#: Share of apps expected to look anomalous by chance at the blast-radius scope score.
BLAST_NULL_FRACTION = 0.01

#: The evidence of a code whose blast radius is not a hit this window.
CALM_BLAST = Evidence(False, True, False, 0.0, 0, 0.0, 0.0, BLAST_NULL_FRACTION, 0)


@dataclass(frozen=True, slots=True)
class BlastRadius:
    """One window's blast-radius hits: per code column, the evidence and the odd rows."""

    evidence: dict[int, Evidence]
    rows: dict[int, list[int]]


NO_BLAST = BlastRadius({}, {})


def blast_radius(
    counts: I64, shares: ShareScores, ignore: npt.NDArray[np.bool_], level_rows: I64,
    config: BlastRadiusConfig, *, fire_score: float, extreme_score: float,
) -> BlastRadius:
    """Per code column, the blast radius over ``level_rows`` (the active rows of the
    blast-radius level) when at least ``min_scopes`` and ``min_fraction`` of them are
    odd: a rise with a share score of at least ``scope_score`` and some excess."""
    active = len(level_rows)
    if active < config.min_scopes:
        return NO_BLAST
    excess = counts[level_rows] - shares.up_expected_count[level_rows]
    odd = (shares.up[level_rows] >= config.scope_score) & (excess > 0)
    odd &= ~ignore[level_rows]
    n_odd = odd.sum(axis=0)
    evidence: dict[int, Evidence] = {}
    rows: dict[int, list[int]] = {}
    wide = (n_odd >= config.min_scopes) & (n_odd >= config.min_fraction * active)
    for col in np.flatnonzero(wide).tolist():
        k = float(n_odd[col])
        up, _ = binomial_tails(
            np.array([k]), np.array([float(active)]), np.array([BLAST_NULL_FRACTION])
        )
        score = float(np.clip(-np.log10(max(up[0], 1e-300)), 0, 300))
        evidence[col] = Evidence(
            hit=score >= fire_score, calm=False, extreme=score >= extreme_score,
            score=score, observed_count=int(k), expected_count=BLAST_NULL_FRACTION * active,
            observed_share=k / active, expected_share=BLAST_NULL_FRACTION, total=active,
        )
        rows[col] = level_rows[odd[:, col]].tolist()
    return BlastRadius(evidence, rows)


@dataclass(frozen=True, slots=True)
class HorizonRises:
    """One code's rise in each scope over one horizon: what the scopes under an alert
    judged on that horizon carry (``rise_over_horizon``)."""

    observed: F64
    expected: F64
    score: F64


def rise_over_horizon(
    view: HorizonView, col: int, share: F64, dispersion: F64, rows: I64
) -> HorizonRises:
    """``col``'s count, expected count and rise score over ``view``'s horizon in every
    row, scored in ``rows`` only (0 elsewhere): at ``share`` (per row: the share the
    horizon judges rises against), widened by ``dispersion``. At night a frozen app sees
    none or one request a window, so counting it anomalous per window misses it; over
    ten minutes its few requests, all 403 where none was usual, are plain.

    >>> import numpy as np
    >>> from statuswatch.core.score import ShareScores
    >>> z = np.zeros((2, 1))
    >>> totals = np.array([8, 400])
    >>> view = HorizonView(60, np.array([[6], [2]]), ShareScores(z, z, z, z, z, totals),
    ...                    z > 0, z > 0, z > 0)
    >>> r = rise_over_horizon(view, 0, np.full(2, 0.005), np.ones(2), np.array([0, 1]))
    >>> r.expected.tolist(), bool(r.score[0] > 6), bool(r.score[1] < 1)
    ([0.04, 2.0], True, True)
    """
    observed = view.counts[:, col].astype(np.float64)
    totals = view.shares.totals.astype(np.float64)
    p = np.clip(share, 1e-12, 1.0 - 1e-12)
    cells = np.zeros(len(observed), dtype=bool)
    cells[rows] = True
    score = rise_scores(view.counts[:, col : col + 1], totals[:, None], p[:, None],
                        dispersion[:, None], cells[:, None])[:, 0]
    return HorizonRises(observed, totals * p, score)


def blast_count(
    odd: npt.NDArray[np.bool_], active: npt.NDArray[np.bool_], observed: F64, expected: F64,
) -> dict[str, int]:
    """An alert's blast radius over the scopes (apps) under it: ``scopes``, how many are
    anomalous on its code on their own (``odd``), of ``active``, how many had requests;
    and ``estimated``, how many carry it beyond chance: the active scopes above their
    expected count, less how many would be by chance (Poisson at ``expected``). At night
    a frozen app has a request or two in ten minutes, too few to be anomalous alone,
    but ten such apps where two or three were expected to see the code are plain.

    >>> blast_count(np.array([True, False, False, False]), np.ones(4, dtype=bool),
    ...             np.array([5.0, 2.0, 1.0, 0.0]), np.array([0.1, 0.1, 0.1, 0.1]))
    {'scopes': 1, 'estimated': 3, 'active': 4}
    """
    above = active & (observed > expected)
    chance = poisson_tails(np.floor(expected[active]) + 1.0, expected[active])[0].sum()
    return {"scopes": int((odd & active).sum()),
            "estimated": max(0, round(float(above.sum() - chance))),
            "active": int(active.sum())}
