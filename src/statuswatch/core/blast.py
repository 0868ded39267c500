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
from statuswatch.core.score import ShareScores, binomial_tails

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
