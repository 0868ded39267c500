"""Hits and evidence: from one window's scores to what each series' state machine sees.

A *hit* is a cell whose score passes the rule's fire score and the excess gates (enough
requests beyond the expectation, and a large enough ratio). *Evidence* is what one
window says of one series: hit or not, calm or not, and the figures an alert shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from statuswatch.config import DetectConfig
from statuswatch.core.baseline import Expectation
from statuswatch.core.blast import CALM_BLAST, BlastRadius
from statuswatch.core.columns import I64
from statuswatch.core.decide import Evidence, SeriesKey
from statuswatch.core.rules import RuleTable
from statuswatch.core.score import ShareScores, VolumeScores, excess_gates
from statuswatch.core.window import ClosedWindow

B = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Hits:
    """Per-window hit masks and scores of every signal."""

    share_up: B
    share_down: B
    volume_up: B
    volume_down: B
    long_up: npt.NDArray[np.float64]  # scores of the summed last ``long_windows`` windows
    long_down: npt.NDArray[np.float64]
    blast: BlastRadius


@dataclass(frozen=True, slots=True)
class ScoredWindow:
    """One closed window with everything scored on it: the input of stepping, grouping
    and contributors."""

    window: ClosedWindow
    counts: I64  # padded to the tables, status-class columns summed
    expectation: Expectation
    shares: ShareScores
    volume: VolumeScores
    hits: Hits
    rules: RuleTable


def share_hits(
    counts: I64, shares: ShareScores, rules: RuleTable, gate: B, cells: B | None = None,
) -> tuple[B, B]:
    """Hit masks, up and down; with ``cells``, judged only there (False elsewhere)."""
    idx: Any = (slice(None),) if cells is None else np.nonzero(cells)
    big_up, big_down = excess_gates(counts[idx], shares.up_expected_count[idx],
                                    rules.min_excess_count[idx], rules.min_share_ratio[idx],
                                    shares.expected_count[idx])
    fire = rules.fire_score[idx]
    up = gate[idx] & rules.up[idx] & (shares.up[idx] >= fire) & big_up
    down = gate[idx] & rules.down[idx] & (shares.down[idx] >= fire) & big_down
    if cells is None:
        return up, down
    up_all, down_all = np.zeros(counts.shape, dtype=bool), np.zeros(counts.shape, dtype=bool)
    up_all[idx], down_all[idx] = up, down
    return up_all, down_all


def find_hits(
    counts: I64, exp: Expectation, shares: ShareScores, volume: VolumeScores,
    rules: RuleTable, long_counts: I64, long_shares: ShareScores, *,
    detect: DetectConfig, rejected_drop: B, blast: BlastRadius,
) -> Hits:
    """Every signal's hits in one window. ``rejected_drop``: scopes whose volume drop
    the rejected records explain (never a volume hit)."""
    clear = detect.clear_score
    gate = exp.warm[:, None] & (shares.totals[:, None] > 0) & ~rules.ignore
    share_up, share_down = share_hits(counts, shares, rules, gate)
    # The long window sums the last minute: a small excess that persists adds up to
    # significance. It counts only while the current window is elevated too, so one
    # past burst does not keep producing hits.
    long_up, long_down = share_hits(
        long_counts, long_shares, rules, gate,
        cells=(shares.up >= clear) | (shares.down >= clear),
    )
    share_up |= long_up & (shares.up >= clear)
    share_down |= long_down & (shares.down >= clear)

    v = rules.volume  # detect.volume, or per scope the rule that decides its volume
    vgate = exp.warm & detect.volume.enabled & ~v.ignore
    big_up, big_down = excess_gates(shares.totals, exp.volume, v.min_excess_count, v.min_ratio)
    volume_up = vgate & v.up & (volume.up >= v.fire_score) & big_up
    volume_down = vgate & v.down & (volume.down >= v.fire_score) & big_down & ~rejected_drop
    return Hits(
        share_up, share_down, volume_up, volume_down, long_shares.up, long_shares.down, blast
    )


def evidence_of(key: SeriesKey, scored: ScoredWindow, detect: DetectConfig) -> Evidence:
    """What ``scored`` says of the series ``key``. A series a rule ignores (since a
    reload) is calm, so its alert resolves."""
    row, col, direction, signal = key
    hits, shares = scored.hits, scored.shares
    up = direction == "up"
    if signal == "blast_radius":
        return hits.blast.evidence.get(col, CALM_BLAST)
    if signal == "volume":
        score = float((scored.volume.up if up else scored.volume.down)[row])
        hit = bool((hits.volume_up if up else hits.volume_down)[row])
        total = int(shares.totals[row])
        ignored = bool(scored.rules.volume.ignore[row])
        return Evidence(
            hit=hit, calm=score < detect.clear_score or ignored,
            extreme=hit and score >= detect.extreme_score, score=score, observed_count=total,
            expected_count=float(scored.expectation.volume[row]),
            observed_share=1.0 if total else 0.0, expected_share=1.0, total=total,
        )
    short = float((shares.up if up else shares.down)[row, col])
    hit = bool((hits.share_up if up else hits.share_down)[row, col])
    # A hit may come from the long window; report the evidence that made it.
    long = float((hits.long_up if up else hits.long_down)[row, col])
    ignored = bool(scored.rules.ignore[row, col])
    return Evidence(
        hit=hit, calm=short < detect.clear_score or ignored,
        extreme=hit and short >= detect.extreme_score,
        score=max(short, long) if hit else short, observed_count=int(scored.counts[row, col]),
        expected_count=float(shares.expected(direction)[row, col]),
        observed_share=float(shares.observed_share[row, col]),
        expected_share=float(scored.expectation.share[row, col]),
        total=int(shares.totals[row]),
    )
