"""Hits and evidence: from one window's scores to what each series' state machine sees.

A *hit* is a cell whose score passes the rule's fire score and the excess gates (enough
requests beyond the expectation, and a large enough ratio). *Evidence* is what one
window says of one series: hit or not, calm or not, and the figures an alert shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from statuswatch.config import DetectConfig
from statuswatch.core.baseline import Expectation
from statuswatch.core.blast import CALM_BLAST, BlastRadius
from statuswatch.core.columns import I64
from statuswatch.core.decide import Evidence, SeriesKey
from statuswatch.core.horizons import HorizonView
from statuswatch.core.reference import LongReference
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
    #: every horizon's scores and hits, the window itself first (share hits: any of them)
    views: list[HorizonView]
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
    #: firing share series -> the horizon (windows) that fired them: they resolve there
    fired_horizon: Mapping[SeriesKey, int] = field(default_factory=dict)
    #: the long reference the horizons with ``long_reference`` judge rises against
    reference: LongReference | None = None


def screen_score(detect: DetectConfig) -> float:
    """The lowest threshold any share score is compared with: a screened score below
    it may read 0."""
    br = detect.blast_radius
    return min(detect.clear_score, br.scope_score) if br.enabled else detect.clear_score


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


def minute_view(
    windows: int, counts: I64, long_counts: I64, exp: Expectation, shares: ShareScores,
    long_shares: ShareScores, rules: RuleTable, clear: float,
) -> HorizonView:
    """The first horizon after the window (the last minute summed): a small excess that
    persists adds up to significance. It counts only while the current window is
    elevated too, so one past burst does not keep producing hits."""
    up, down = shares.up >= clear, shares.down >= clear
    none = np.zeros(counts.shape, dtype=bool)
    cells = up | down
    if not cells.any():  # the common case: no hit can count, nothing to judge
        return HorizonView(windows, long_counts, long_shares, none, none.copy(), none.copy())
    gate = exp.warm[:, None] & (shares.totals[:, None] > 0) & ~rules.ignore
    long_up, long_down = share_hits(long_counts, long_shares, rules, gate, cells=cells)
    return HorizonView(windows, long_counts, long_shares, long_up & up, long_down & down, none)


def find_hits(
    counts: I64, exp: Expectation, shares: ShareScores, volume: VolumeScores,
    rules: RuleTable, long_views: list[HorizonView], *,
    detect: DetectConfig, rejected_drop: B, blast: BlastRadius,
) -> Hits:
    """Every signal's hits in one window; a share hit on any horizon of ``long_views``
    is a hit. ``rejected_drop``: scopes whose volume drop the rejected records explain
    (never a volume hit)."""
    gate = exp.warm[:, None] & (shares.totals[:, None] > 0) & ~rules.ignore
    window_up, window_down = share_hits(counts, shares, rules, gate)
    views = [HorizonView(1, counts, shares, window_up, window_down,
                         np.zeros(counts.shape, dtype=bool)), *long_views]
    share_up, share_down = window_up.copy(), window_down.copy()
    for view in long_views:
        share_up |= view.hit_up
        share_down |= view.hit_down

    v = rules.volume  # detect.volume, or per scope the rule that decides its volume
    vgate = exp.warm & detect.volume.enabled & ~v.ignore
    big_up, big_down = excess_gates(shares.totals, exp.volume, v.min_excess_count, v.min_ratio)
    volume_up = vgate & v.up & (volume.up >= v.fire_score) & big_up
    volume_down = vgate & v.down & (volume.down >= v.fire_score) & big_down & ~rejected_drop
    return Hits(share_up, share_down, volume_up, volume_down, views, blast)


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
    # The figures of the horizon that fired the series (it resolves there), else of the
    # shortest one with a hit now.
    view = view_of(key, hits.views, scored.fired_horizon)
    v = view.shares
    score = float((v.up if up else v.down)[row, col])
    expected = float(v.expected(direction)[row, col])
    total = int(v.totals[row])
    ignored = bool(scored.rules.ignore[row, col])
    return Evidence(
        hit=hit, calm=score < detect.clear_score or ignored,
        extreme=hit and short >= detect.extreme_score,
        score=score, observed_count=int(view.counts[row, col]),
        expected_count=expected, observed_share=float(v.observed_share[row, col]),
        # over a longer horizon, what a rise is judged against (the long reference, if lower)
        expected_share=expected / total if view.windows > 1 and total
        else float(scored.expectation.share[row, col]),
        total=total, horizon_windows=view.windows,
    )


def view_of(key: SeriesKey, views: list[HorizonView],
            fired_horizon: Mapping[SeriesKey, int]) -> HorizonView:
    """The horizon a share series is judged on: the one that fired it while it fires,
    else the shortest with a hit now (the window itself if none)."""
    fired = fired_horizon.get(key)
    if fired is not None:
        for view in views:
            if view.windows == fired:
                return view
    for view in views:
        if (view.hit_up if key.direction == "up" else view.hit_down)[key.row, key.col]:
            return view
    return views[0]
