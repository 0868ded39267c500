"""The pure pipeline: decoded columns in, closed windows and alert events out.

``Detector`` owns the stages (scopes, windows, baseline, score, decide) and the
counters the metrics endpoint shows. It never reads a clock: callers pass
``now_ms`` (wall time in the shell, event time in a backtest).

Three signals are scored on every closed window:

* **share** of each code in each scope (quasi-binomial), up and down;
* **volume** of each scope (quasi-Poisson), down by default: traffic drops and
  "input went silent";
* **blast radius**: the fraction of active apps whose share of one code is
  anomalous at once, which catches a freeze of many small apps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from statuswatch.config import Settings, VolumeConfig
from statuswatch.core.baseline import (
    SEASONAL_MAX_RATIO,
    Baseline,
    Expectation,
    fading_factor,
)
from statuswatch.core.blast import NO_BLAST, BlastRadius, blast_radius
from statuswatch.core.calibrate import ScoreCalibrator
from statuswatch.core.columns import I64, DecodedBatch
from statuswatch.core.counters import Counters
from statuswatch.core.decide import (
    AlertEvent,
    AlertTracker,
    Direction,
    Lifecycle,
    SeriesKey,
    Signal,
)
from statuswatch.core.decode import Decoder, build_decoder
from statuswatch.core.evidence import ScoredWindow, evidence_of, find_hits, minute_view
from statuswatch.core.horizons import HorizonSums, HorizonView
from statuswatch.core.incidents import IncidentGrouper
from statuswatch.core.reference import LongReference
from statuswatch.core.rejects import InputVerdict, RejectedInput, RejectTracker
from statuswatch.core.rules import RuleTable, resolve
from statuswatch.core.scopes import CodeTable, Recycled, ScopeTable
from statuswatch.core.score import (
    F64,
    ShareScores,
    VolumeScores,
    excess_gates,
    rise_scores,
    score_shares,
    score_volume,
    share_floor,
)
from statuswatch.core.window import ClosedWindow, WindowCounter
from statuswatch.errors import DecodeError

B = npt.NDArray[np.bool_]

#: Version of the snapshot format; a snapshot of another version is refused.
STATE_VERSION = 5  # 2: folded scopes' rates, volume calibrators; 3: status-class columns;
# 4: the long window's dispersion; 5: horizons, the long reference

#: A hit over a long horizon needs the horizon before it to carry excess at least at
#: this fraction of the long horizon's rate: the evidence is still arriving, not an
#: ended incident's left in the sum.
RECENT_EXCESS_RATE = 0.5
#: Expected count below which an elevated window still teaches the baseline.
MIN_EXPECTED_TO_FREEZE = 10.0


@dataclass(frozen=True, slots=True)
class WindowReport:
    """The latest closed window as the metrics endpoint shows it."""

    window: ClosedWindow
    expectation: Expectation
    shares: ShareScores  # screened: a cell under the screen's threshold may read 0
    volume: VolumeScores
    counts: I64
    floor: F64

    def exact_shares(self) -> ShareScores:
        """Every cell's exact share scores (what the metrics endpoint shows)."""
        return window_share_scores(self.counts, self.expectation, self.floor, self.shares.totals)


def window_share_scores(
    counts: I64, exp: Expectation, floor: F64, totals: I64, *,
    below: float | None = None, exact: npt.NDArray[np.bool_] | None = None,
) -> ShareScores:
    """One window's share scores against the expectation: rises over the floored share,
    drops over at most the usual volume; screened with ``below`` (see ``score_shares``)."""
    return score_shares(
        counts, exp.share, floor, exp.share_dispersion, totals, exp.volume,
        below=below, exact=exact,
    )


@dataclass(frozen=True, slots=True)
class _LongWindow:
    """The last minute summed (the first horizon after the window), what was scored on
    it, and every longer horizon's view."""

    counts: I64
    totals: I64
    shares: ShareScores
    rejected_drop: B  # scopes whose volume drop rejected records explain (not learned)
    views: list[HorizonView]


@dataclass(frozen=True, slots=True)
class StepResult:
    batch: DecodedBatch
    events: list[AlertEvent]


def _calibrators_for(v: VolumeConfig) -> dict[str, ScoreCalibrator]:
    """The volume score calibrators, up and down, if ``detect.volume.calibration``."""
    if not v.calibration:
        return {}
    return {
        direction: ScoreCalibrator(
            long_half_life=v.calibration_half_life_windows,
            warmup=v.calibration_warmup_windows, min_std=v.calibration_min_std,
        )
        for direction in ("up", "down")
    }


class Detector:
    def __init__(
        self, settings: Settings, decoder: Decoder | None = None, *, exhaustive: bool = False
    ) -> None:
        """``exhaustive``: the reference evaluation, slow and plain: exact tails of every
        cell and window, one River ``EWMean`` per scope for volume, every silent window
        evaluated in full. The default gives the same alerts and counts, faster."""
        self.settings = settings
        self.exhaustive = exhaustive
        self.decoder = decoder if decoder is not None else build_decoder(settings.decode)
        self.codes = CodeTable(classes=[int(c[0]) for c in settings.detect.classes])
        self.scopes = ScopeTable(settings.scopes.levels, settings.scopes.max_per_level)
        w = settings.window
        self.windows = WindowCounter(w.size_ms, w.lateness_ms, round(w.idle_timeout_seconds * 1000))
        b = settings.baseline
        self.baseline = Baseline(
            b.half_life_windows, b.volume_half_life_windows, b.warmup_windows, window_ms=w.size_ms,
            reference=exhaustive,
        )
        d = settings.detect
        v = d.volume
        #: volume scores against each scope's own score history, up and down (opt-in)
        self._calibrators = _calibrators_for(v)
        self.alerts = AlertTracker(Lifecycle(d.k, d.m, d.min_firing_windows, d.clear_windows))
        self.counters = Counters()
        #: the rejected share of the input over the last minute (decode.mostly_invalid)
        self.rejects = RejectTracker(settings.decode.mostly_invalid)
        #: ``rejects`` as of the last ``close_ready``: which volume drops it explains
        self._rejected_now: RejectedInput | None = None
        self._explained: tuple[bytes, str] | None = None  # (sample value, its field)
        self.last_report: WindowReport | None = None
        #: whether the last window of each call is evaluated in full for ``last_report``
        #: (the metrics endpoint's); a backtest, which serves no metrics, need not
        self.serves_metrics = True
        #: called with every closed window (counts padded to the current tables)
        self.window_listener: Callable[[ClosedWindow], None] | None = None
        #: called with every closed window's report, once it is scored
        self.report_listener: Callable[[WindowReport], None] | None = None
        #: counts summed over each of ``detect.horizons``: slow, small, persistent excess
        self._horizons = HorizonSums([h.windows for h in d.horizons])
        #: the long-memory share a creep cannot drag along
        self.reference = LongReference(b.reference_half_life_windows)
        #: share series firing -> the horizon (windows) that fired it: it resolves there
        self._fired_horizon: dict[SeriesKey, int] = {}
        #: share series -> ``windows_closed`` at their resolve: horizons still holding
        #: the evidence of that episode cannot fire them again
        self._resolved_at: dict[SeriesKey, int] = {}
        self._horizon_rules: tuple[RuleTable, list[RuleTable]] | None = None
        #: 1 for a code column, 0 for a status class's summed column (see ``_totals``)
        self._code_mask: I64 = np.zeros(0, np.int64)
        #: series an operator accepted as the new normal: they learn while firing
        self._accepted: set[SeriesKey] = set()
        #: firing series -> windows they fired with a hit: how long the level has held
        self._level_windows: dict[SeriesKey, int] = {}
        #: folds the alerts another alert explains; holds children of pending ancestors
        self.incidents = IncidentGrouper(self.scopes, self.codes, self.alerts)
        self._rules: RuleTable | None = None
        #: (rules, the least expected volume whose silence could be a volume hit)
        self._silence_needs: tuple[RuleTable, float] | None = None
        self._parents: I64 = np.zeros(0, np.int64)
        self._blast_level = self._level_index(d.blast_radius.level)

    def _level_index(self, level: Sequence[str]) -> int:
        """The scope level ``level`` is, -1 if it is none of ``scopes.levels``."""
        levels = self.scopes.levels
        return levels.index(tuple(level)) if tuple(level) in levels else -1

    def reconfigure(self, settings: Settings) -> None:
        """Detect with ``settings.detect`` (and ``baseline.accept_after_windows``) from
        the next closed window on: a configuration reload.

        Baselines, open windows, scope rows and alert states (ids included) are kept:
        a firing series keeps firing under the new thresholds until they call it calm
        (a series a rule now ignores counts as calm). Only what was derived from the old
        settings goes: the rule table, the lifecycle's k/m, the volume calibrators if
        their keys changed, the horizons' sums if ``detect.horizons`` changed (they start
        afresh; a firing series is then judged on the shortest horizon with a hit). The
        caller refuses changes this cannot apply (``config.restart_keys``).
        """
        old, d = self.settings.detect, settings.detect
        self.settings = settings
        self._rules = None
        self._silence_needs = None
        self.alerts.lifecycle = Lifecycle(d.k, d.m, d.min_firing_windows, d.clear_windows)
        if d.horizons != old.horizons:
            self._horizons = HorizonSums([h.windows for h in d.horizons])
            self._fired_horizon.clear()
        calibration = [k for k in type(d.volume).model_fields if k.startswith("calibration")]
        if any(getattr(d.volume, k) != getattr(old.volume, k) for k in calibration):
            self._calibrators = _calibrators_for(d.volume)
        self._blast_level = self._level_index(d.blast_radius.level)

    # -- input ---------------------------------------------------------------

    def process(
        self,
        values: Sequence[bytes],
        *,
        now_ms: int,
        partition: int = 0,
        offsets: I64 | None = None,
        seen_below: int | None = None,
    ) -> StepResult:
        """Decode and count one batch, then close every window that is ready.

        ``seen_below``: records at offsets below it are re-reads (see WindowCounter.add).
        """
        batch = self.decoder.decode(values)
        self.rejects.add(
            now_ms, len(values), batch.invalid, values, partition,
            None if offsets is None or not batch.invalid else offsets.tolist(),
        )
        self.count(
            batch, now_ms=now_ms, partition=partition, offsets=offsets, seen_below=seen_below
        )
        return StepResult(batch, self.close_ready(now_ms))

    def input_verdict(self, now_ms: int) -> InputVerdict:
        """Is the input mostly invalid at ``now_ms``? With the top reason, the field it
        concerns (from re-decoding one record rejected for it) and a hint."""
        rejected = self.rejects.assess(now_ms)
        field = ""
        sample = rejected.sample
        if rejected.mostly_invalid and sample is not None:
            if self._explained is None or self._explained[0] is not sample.value:
                try:
                    self.decoder.decode_one(sample.value)
                except DecodeError as exc:
                    self._explained = (sample.value, exc.detail)
                else:  # accepted now: rejected for a reason decode_one does not see
                    self._explained = (sample.value, "")
            field = self._explained[1]
        return InputVerdict.of(rejected, field, self.decoder, self.settings.decode)

    def count(
        self,
        batch: DecodedBatch,
        *,
        now_ms: int,
        partition: int = 0,
        offsets: I64 | None = None,
        seen_below: int | None = None,
    ) -> None:
        self.counters.add_batch(batch)
        if len(batch) == 0:
            return
        cols = self.codes.columns(batch.status)
        rows = self.scopes.rows(batch.dims)
        self.counters.late += self.windows.add(
            batch.ts_ms,
            rows,
            cols,
            n_rows=len(self.scopes),
            n_cols=len(self.codes),
            partition=partition,
            offsets=None if offsets is None else offsets[batch.index],
            now_ms=now_ms,
            seen_below=seen_below,
        )

    def close_ready(self, now_ms: int) -> list[AlertEvent]:
        self._rejected_now = self.rejects.assess(now_ms)
        return self._evaluate(self.windows.close_ready(now_ms))

    def finish(self) -> list[AlertEvent]:
        """Close every open window: the end of a finite input."""
        return self._evaluate(self.windows.close_all())

    # -- per closed window ----------------------------------------------------

    def _evaluate(self, closed: list[ClosedWindow]) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        # The last window of a call runs in full: it is the one the metrics show.
        cheap_until = len(closed) - 1 if self.serves_metrics else len(closed)
        i = 0
        while i < len(closed):
            if i < cheap_until and self._may_pass_silent(closed[i]):
                j = i + 1
                while j < cheap_until and not closed[j].counts.any():
                    j += 1
                self._pass_silent(closed[i:j])
                i = j
                continue
            quiet = i < cheap_until and self._may_evaluate_quietly()
            if not (quiet and self._evaluate_quietly(closed[i])):
                events.extend(self._evaluate_one(closed[i]))
            i += 1
        if closed:  # after every window of the call: each was counted with the old rows
            self._rebalance_scopes(len(closed))
        self.counters.alerts_fired += sum(e.state == "firing" for e in events)
        return events

    def _tables(self, n_rows: int, n_cols: int) -> tuple[RuleTable, I64]:
        """Rule thresholds and parent rows, rebuilt only when the tables grow."""
        rules = self._rules
        if rules is None or rules.fire_score.shape != (n_rows, n_cols):
            rules = resolve(self.settings.detect, self.scopes.labels, self.codes.codes)
            self._rules = rules
        if len(self._parents) != n_rows:
            self._parents = self.scopes.parents()[:n_rows]
        return rules, self._parents

    def _may_pass_silent(self, window: ClosedWindow) -> bool:
        """Whether a window without requests, and the silent ones right after it, may be
        closed cheaply (``_pass_silent``): that provably changes nothing but the
        baseline's decay when no series is live or held (nothing to step), there is no
        volume calibration (it learns every score), no scope's expected volume could
        make its silence a volume hit, and no horizon's sum could still hit. Silence
        only lowers the learned volume levels, so what holds for the first window of a
        silent run holds for the rest."""
        if (
            self.exhaustive or self._calibrators or self.incidents.held or self._accepted
            or window.counts.any() or self.alerts.live_keys() or not self._horizons_quiet()
        ):
            return False
        n_rows, n_cols = len(self.scopes), len(self.codes)
        rules, _ = self._tables(n_rows, n_cols)
        # The expectation is the learned level moved by at most SEASONAL_MAX_RATIO.
        level = self.baseline.volume_level(n_rows).max(initial=0.0) * SEASONAL_MAX_RATIO
        return bool(level < self._volume_a_silence_needs(rules))

    def _volume_a_silence_needs(self, rules: RuleTable) -> float:
        """The least expected volume whose silence could be a volume hit in any scope."""
        if self._silence_needs is None or self._silence_needs[0] is not rules:
            v = rules.volume
            # Silence is a hit only for an expected volume of min_excess_count requests
            # or more, scoring fire_score: -log10 P(X = 0) = volume / phi / ln 10, phi >= 1.
            needed = np.maximum(v.min_excess_count, v.fire_score * np.log(10.0))
            self._silence_needs = (rules, float(needed.min(initial=np.inf)) * (1.0 - 1e-9))
        return self._silence_needs[1]

    def _pass_silent(self, run: list[ClosedWindow]) -> None:
        """Close consecutive windows without requests: count them, keep the long
        window's history, and teach the baseline their silence, as full evaluation
        would; nothing else changes (see ``_may_pass_silent``)."""
        n_rows, n_cols = len(self.scopes), len(self.codes)
        self.counters.windows_closed += len(run)
        if self.window_listener is not None:
            for window in run:
                counts = np.zeros((n_rows, n_cols), np.int64)
                self.window_listener(ClosedWindow(window.start_ms, window.end_ms, counts))
        self._horizons.push_silent(len(run))
        self.baseline.learn_silent(
            n_rows, n_cols, window_starts_ms=[w.start_ms for w in run]
        )

    def _evaluate_one(self, window: ClosedWindow) -> list[AlertEvent]:
        """One closed window through the stages: expect, score, hits, step, group, learn."""
        counts, totals = self._padded_counts(window)
        paged_before = self.alerts.firing_keys(paged_only=True)
        rules, parents = self._tables(*counts.shape)
        exp = self.baseline.expect(
            *counts.shape, window_start_ms=window.start_ms,
            window_ms=self.windows.size_ms, parents=parents,
        )
        floor = share_floor(exp.volume, exp.windows_seen, self.baseline.share_half_life)
        scored, long = self._score(window, counts, totals, exp, floor, rules)
        stepped, frozen_share, frozen_volume = self._step(scored)
        d = self.settings.detect
        events, shadow_fired = self.incidents.group(
            scored, stepped, paged_before, detect=d, blast_level=self._blast_level
        )
        self.counters.shadow_fired.update(shadow_fired)
        self._learn(scored, totals, long, frozen_share, frozen_volume)
        self.last_report = WindowReport(window, exp, scored.shares, scored.volume, counts, floor)
        if self.report_listener is not None:
            self.report_listener(self.last_report)
        return events

    def _padded_counts(self, window: ClosedWindow, *, closing: bool = True) -> tuple[I64, I64]:
        """The window's counts on the current tables, status-class columns summed, and
        the requests per row; ``closing``: counts the window as closed."""
        n_rows, n_cols = len(self.scopes), len(self.codes)
        counts = np.zeros((n_rows, n_cols), np.int64)
        counts[: window.counts.shape[0], : window.counts.shape[1]] = window.counts
        if closing:
            self.counters.windows_closed += 1
        if closing and self.window_listener is not None:
            self.window_listener(ClosedWindow(window.start_ms, window.end_ms, counts))
        for class_col, members in self.codes.class_members():
            counts[:, class_col] = counts[:, members].sum(axis=1)
        return counts, self._totals(counts)

    def _score(
        self, window: ClosedWindow, counts: I64, totals: I64, exp: Expectation, floor: F64,
        rules: RuleTable,
    ) -> tuple[ScoredWindow, _LongWindow]:
        """Share, long-window and volume scores of the window, and their hits."""
        d = self.settings.detect
        n_rows, n_cols = counts.shape
        live = self._live_share_cells(n_rows, n_cols)
        if self.exhaustive:
            shares = window_share_scores(counts, exp, floor, totals)
        else:
            # Every use of a share score compares it with clear_score or more (fire
            # scores are above it), or blast_radius.scope_score; live series report theirs.
            shares = window_share_scores(
                counts, exp, floor, totals, below=self._screen_score(), exact=live,
            )
        sums = self._horizons.push(counts)
        spans = self._horizons.spans()
        long_counts = sums[1] if len(sums) > 1 else counts
        long_totals = self._totals(long_counts)
        # The last minute summed, with its own dispersion; its hits count only where the
        # window itself reaches clear_score (see evidence.minute_view).
        long_shares = score_shares(
            long_counts, exp.share, floor, np.maximum(exp.share_dispersion, exp.long_dispersion),
            long_totals, exp.volume * spans[min(1, len(spans) - 1)],
            # Long scores are compared with clear_score or more (hits, and which sums
            # are too elevated to teach the long window's dispersion).
            below=None if self.exhaustive else d.clear_score,
            # ... in the rows with requests now: elsewhere no short score reaches it,
            # and only they learn the long window's dispersion; and in live series' rows,
            # which a series that fired on this horizon is judged calm on.
            rows=None if self.exhaustive else (totals > 0) | live.any(axis=1),
            exact=None if self.exhaustive else live,
        )
        views: list[HorizonView] = []
        if len(sums) > 1:
            views.append(minute_view(
                d.horizons[1].windows, counts, long_counts, exp, shares, long_shares,
                self._rules_at(1, rules), d.clear_score,
            ))
            views += self._long_horizons(sums, spans, exp, floor, rules)
        self._block_resolved(views)
        raw_volume = score_volume(shares.totals, exp.volume, exp.volume_dispersion)
        volume = self._calibrated(raw_volume, exp)
        rejected_drop = self._drops_of_rejected_records(shares.totals, exp.volume)
        hits = find_hits(
            counts, exp, shares, volume, rules, views,
            detect=d, rejected_drop=rejected_drop,
            blast=self._blast_radius(counts, shares, rules),
        )
        scored = ScoredWindow(window, counts, exp, shares, volume, hits, rules,
                              dict(self._fired_horizon))
        return scored, _LongWindow(long_counts, long_totals, long_shares, rejected_drop, views)

    def _blast_radius(
        self, counts: I64, shares: ShareScores, rules: RuleTable, rows: I64 | None = None
    ) -> BlastRadius:
        """``rows``: the scope rows the arrays hold, in order (None: every row)."""
        d = self.settings.detect
        if not d.blast_radius.enabled or self._blast_level < 0:
            return NO_BLAST
        levels = np.asarray(self.scopes.level_of_row)
        levels = levels if rows is None else levels[rows]
        level_rows = np.flatnonzero((levels == self._blast_level) & (shares.totals > 0))
        return blast_radius(
            counts, shares, rules.ignore, level_rows, d.blast_radius,
            fire_score=d.fire_score, extreme_score=d.extreme_score,
        )

    def _step(self, scored: ScoredWindow) -> tuple[list[tuple[SeriesKey, AlertEvent]], B, B]:
        """Step every live or hit series' state machine once. Returns the state changes
        and which share cells and volume rows are live (they do not teach the baseline)."""
        hits, rules, window = scored.hits, scored.rules, scored.window
        keys: set[SeriesKey] = self.alerts.live_keys()
        for r, c in zip(*np.nonzero(hits.share_up), strict=True):
            keys.add(SeriesKey(int(r), int(c), "up", "share"))
        for r, c in zip(*np.nonzero(hits.share_down), strict=True):
            keys.add(SeriesKey(int(r), int(c), "down", "share"))
        keys.update(SeriesKey(int(r), -1, "up", "volume") for r in np.flatnonzero(hits.volume_up))
        keys.update(
            SeriesKey(int(r), -1, "down", "volume") for r in np.flatnonzero(hits.volume_down)
        )
        keys.update(SeriesKey(0, col, "up", "blast_radius") for col in hits.blast.evidence)

        stepped: list[tuple[SeriesKey, AlertEvent]] = []
        frozen_share = np.zeros(scored.counts.shape, dtype=bool)
        frozen_volume = np.zeros(len(scored.counts), dtype=bool)
        accept_after = self.settings.baseline.accept_after_windows
        for key in sorted(keys):
            evidence = evidence_of(key, scored, self.settings.detect)
            k = m = None
            if key.signal == "share":
                eff = rules.effective_of(key.row, key.col)
                k, m = eff.k, eff.m
            elif key.signal == "volume":
                k, m = int(rules.volume.k[key.row]), int(rules.volume.m[key.row])
            event = self.alerts.step(
                key, evidence, window_start_ms=window.start_ms, window_end_ms=window.end_ms,
                code=self.codes.code_at(key.col), scope=self.scopes.labels[key.row], k=k, m=m,
            )
            if event is not None:
                stepped.append((key, event))
                self._note_horizon(key, event)
            live = self.alerts.state_of(key) is not None or evidence.hit
            # A level that has held (firing, still a hit, and still arriving in this very
            # window) for accept_after windows is the new normal: the windows a long
            # horizon takes to calm after it ended do not count.
            if evidence.hit and self.alerts.state_of(key) == "firing" and self._arriving(
                key, scored
            ):
                self._level_windows[key] = self._level_windows.get(key, 0) + 1
            if key not in self._accepted and 0 < accept_after <= self._level_windows.get(key, 0):
                self._accepted.add(key)
            if live and key.signal == "share":
                frozen_share[key.row, key.col] = True
            elif live and key.signal == "volume":
                frozen_volume[key.row] = True
        return stepped, frozen_share, frozen_volume

    def _learn(
        self, scored: ScoredWindow, totals: I64, long: _LongWindow,
        frozen_share: B, frozen_volume: B,
    ) -> None:
        """Teach the baseline the window, except what is (or may be becoming) anomalous."""
        d = self.settings.detect
        counts, shares, exp = scored.counts, scored.shares, scored.expectation
        live = self.alerts.live_keys()
        # Elevated but not (yet) anomalous windows do not teach either: a slow
        # creep would otherwise be learned before it is ever significant. Only
        # where both tails can reach the clear score, or small counts would
        # skew the baseline low.
        frozen_share |= self._elevated(counts, exp, shares)
        # Accepted levels (operator acknowledgement, or firing for accept_after
        # windows) become the scope's normal now, in one step.
        self._accepted = self.incidents.with_descendants(self._accepted) & live
        self._level_windows = {k: n for k, n in self._level_windows.items() if k in live}
        # The new normal is the mix over the horizon that fired (the last minute at
        # least): at low rates the last minute lacks most codes, and a share of 0 would
        # make each a new incident.
        for row in sorted({k.row for k in self._accepted if k.signal == "share"}):
            keys = [k for k in self._accepted if k.signal == "share" and k.row == row]
            fired = max(self._fired_horizon.get(k, 1) for k in keys)
            level = next((v.counts for v in long.views if v.windows == fired), long.counts)
            level_total = int(self._totals(level[row : row + 1])[0])
            self.baseline.accept(row, level[row], level_total)
            self.reference.accept(row, sorted({k.col for k in keys}), level[row], level_total)
            frozen_share[row] = False
        for row in sorted({k.row for k in self._accepted if k.signal == "volume"}):
            frozen_volume[row] = False
        # Records that are being rejected did arrive: not a volume to learn.
        frozen_volume |= long.rejected_drop
        self.baseline.learn(
            counts, window_start_ms=scored.window.start_ms,
            frozen_share=frozen_share, frozen_volume=frozen_volume, totals=totals,
            long_counts=long.counts, long_totals=long.totals,
            frozen_long=frozen_share | (long.shares.up >= d.clear_score)
            | (long.shares.down >= d.clear_score),
        )
        # Series elevated over a long horizon do not teach the reference either: at low
        # rates no single window is, and a creep would drag it along. Nor does a scope
        # with a live rise: its other codes' shares fall with it.
        frozen_reference = frozen_share.copy()
        rising = [k.row for k in live if k.signal == "share" and k.direction == "up"
                  and k not in self._accepted]
        frozen_reference[rising] = True
        for view in long.views:
            frozen_reference |= view.elevated
        self.reference.learn(counts, totals, frozen=frozen_reference)

    # -- horizons ---------------------------------------------------------------

    def _rules_at(self, horizon: int, rules: RuleTable) -> RuleTable:
        """The rule table at horizon ``horizon``: its own count and ratio gates in place
        of ``detect``'s (rules with their own thresholds keep them)."""
        cached = self._horizon_rules
        if cached is None or cached[0] is not rules:
            d = self.settings.detect
            tables = []
            for h in d.horizons:
                gates = {k: v for k, v in (("min_excess_count", h.min_excess_count),
                                           ("min_share_ratio", h.min_share_ratio))
                         if v is not None}
                tables.append(rules if not gates else resolve(
                    d.model_copy(update=gates), self.scopes.labels[: rules.ignore.shape[0]],
                    self.codes.codes[: rules.ignore.shape[1]],
                ))
            cached = self._horizon_rules = (rules, tables)
        return cached[1][horizon]

    def _long_horizons(
        self, sums: list[I64], spans: list[int], exp: Expectation, floor: F64,
        rules: RuleTable, *, tables: list[RuleTable] | None = None, row_ids: I64 | None = None,
    ) -> list[HorizonView]:
        """Scores and hits of the horizons after the first minute (10 min, 1 h).

        A hit there is a rise (a drop is judged over the last minutes, as traffic is:
        the learned share may hold an incident's level, whose end is no new incident);
        it needs the count and ratio gates of its horizon, and the horizon before it (its
        newest part) in excess at ``RECENT_EXCESS_RATE`` of its rate or more, and a request
        in the scope within the last minute: the evidence is still arriving. (Not in the
        window itself: a 2-a-minute app has none in most windows.) Horizons with
        ``long_reference`` judge a rise against the long reference (the learned share
        where it has none). Only cells past the gates (and live series) are scored:
        every decision is about those.

        ``row_ids``: the scope rows the arrays hold (all, in order, by default), with
        ``tables`` the horizons' rule tables of those rows (a quiet window's).
        """
        d = self.settings.detect
        if len(d.horizons) <= 2:
            return []
        shape = sums[0].shape
        if tables is None:
            tables = [self._rules_at(i, rules) for i in range(len(d.horizons))]
        # The cells any decision is about: a count that can pass a horizon's count gate
        # (an excess of min_excess_count needs that many requests), and live series.
        live_cells = self._live_share_cells(*shape)
        if self.exhaustive:
            need = np.ones(shape, dtype=bool)
        else:
            need = live_cells.copy()
            for i in range(2, len(d.horizons)):
                need |= sums[i] >= tables[i].min_excess_count
        flat = np.flatnonzero(need)  # flat cell indices: np.take is the cheap gather
        rows = flat // shape[1]

        def at(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return np.take(a, flat)

        live = at(need if self.exhaustive else live_cells)
        phi = np.maximum(at(exp.share_dispersion), at(exp.long_dispersion))
        # a scope without a request in the last minute is not still receiving evidence
        # (and a silent run past the minute can then be passed cheaply)
        minute_totals = self._totals(sums[1])[rows].astype(np.float64)
        warm = exp.warm[rows] & (minute_totals > 0)
        learned = at(exp.share)
        reference = learned
        if any(h.long_reference for h in d.horizons[2:]):
            scope_rows = rows if row_ids is None else row_ids[rows]
            reference = self.reference.up_share_at(scope_rows, flat % shape[1],
                                                   fallback=learned)
        before_counts, before_span = at(sums[1]), spans[1]
        # the minute's rise expectation, as the minute's scores have it (computed here:
        # those are screened to the rows with requests now)
        before_up = minute_totals * np.clip(np.maximum(learned, floor[rows]), 1e-12, 1 - 1e-12)
        # read only: nothing is scored there (the drop tail, or a horizon without a cell)
        no_drops, no_hits = np.zeros(shape), np.zeros(shape, dtype=bool)
        views = []
        for i in range(2, len(d.horizons)):
            h, span, r = d.horizons[i], spans[i], tables[i]
            c = at(sums[i])
            totals = self._totals(sums[i])
            n = totals[rows].astype(np.float64)
            p_up = np.clip(np.maximum(reference if h.long_reference else learned, floor[rows]),
                           1e-12, 1.0 - 1e-12)
            up_expected = n * p_up
            big_up, _ = excess_gates(c, up_expected, at(r.min_excess_count),
                                     at(r.min_share_ratio))
            # excess per window: the newest part's at least RECENT_EXCESS_RATE of the whole's
            recent = (before_counts - before_up) * span >= RECENT_EXCESS_RATE * (
                c - up_expected) * before_span
            maybe_up = warm & ~at(r.ignore) & at(r.up) & big_up & recent
            before_counts, before_up, before_span = c, up_expected, span
            scored_cells = maybe_up | live
            if not scored_cells.any():  # the common case: nothing to score or report
                views.append(HorizonView(h.windows, sums[i], ShareScores(
                    no_drops, no_drops, no_drops, no_drops, no_drops, totals
                ), no_hits, no_hits, no_hits))
                continue
            # Rises only: the drop tail is never read here (0), nor the drop expectation.
            up = rise_scores(c, n, p_up, phi, scored_cells)
            with np.errstate(divide="ignore", invalid="ignore"):
                observed = np.where(n > 0, c / np.maximum(n, 1.0), 0.0)
            full = [np.zeros(shape) for _ in range(3)]
            for array, values in zip(full, (up, observed, up_expected), strict=True):
                np.put(array, flat, values)
            flags = [np.zeros(shape, dtype=bool) for _ in range(2)]
            np.put(flags[0], flat, maybe_up & (up >= at(r.fire_score)))
            np.put(flags[1], flat, maybe_up & (up >= d.clear_score))
            scored = ShareScores(full[0], no_drops, full[1], full[2], full[2], totals)
            views.append(HorizonView(h.windows, sums[i], scored, flags[0], no_hits, flags[1]))
        return views

    def _block_resolved(self, views: list[HorizonView]) -> None:
        """One incident, one page. A resolved series cannot fire again on a horizon whose
        sum still holds windows of the episode it resolved. Nor can a rise on the same
        code (its class or its codes) in a scope that overlaps it (contains it, lies
        within it, or cuts across it: an app and a service) fire on a horizon past the
        first minute while it fires, or while that horizon still holds its episode: slow
        evidence there is the known incident's, arriving late where counts are small."""
        if not views:
            self._resolved_at.clear()
            return
        now = self.counters.windows_closed
        n_rows, n_cols = views[0].counts.shape
        sources = [(k, 0) for k in self.alerts.firing_keys()
                   if k.signal == "share" and k.direction == "up"]
        for key, at in list(self._resolved_at.items()):
            age = now - at
            if age >= views[-1].windows:
                del self._resolved_at[key]
                continue
            for view in views:
                hit = view.hit_up if key.direction == "up" else view.hit_down
                if view.windows > age and key.row < n_rows and key.col < n_cols:
                    hit[key.row, key.col] = False
            if key.direction == "up":
                sources.append((key, age))
        for key, age in sources:
            if key.row >= n_rows or key.col >= n_cols:
                continue
            rows = np.flatnonzero(self._overlapping_rows(key.row, n_rows))
            cols = np.asarray(self._code_family(key.col), np.int64)
            for view in views[1:]:
                if view.windows > age:
                    own = bool(view.hit_up[key.row, key.col])
                    view.hit_up[np.ix_(rows, cols)] = False
                    if age == 0:  # a firing series' own evidence stays
                        view.hit_up[key.row, key.col] = own

    def _overlapping_rows(self, row: int, n_rows: int) -> B:
        """Rows whose scopes share requests with ``row``'s: itself, its ancestors and
        descendants, and every scope of a level that cuts across its level."""
        levels = [set(level) for level in self.scopes.levels]
        mine = levels[self.scopes.level_of_row[row]]
        nested = np.array([level <= mine or mine <= level for level in levels])
        mask: B = ~nested[np.asarray(self.scopes.level_of_row[:n_rows], np.int64)]
        mask[[a for a in self.scopes.ancestors(row) if a < n_rows]] = True
        mask[row] = True
        parents = self._parents[:n_rows]
        up = parents.copy()
        while (has := up >= 0).any():
            mask |= up == row
            up = np.where(has, parents[np.maximum(up, 0)], -1)
        return mask

    def _code_family(self, col: int) -> list[int]:
        """``col``, its status class's column and, for a class, its codes' columns."""
        out = {col}
        class_col = self.codes.class_of(col)
        if class_col >= 0:
            out.add(class_col)
        for c, members in self.codes.class_members():
            if c == col:
                out.update(members.tolist())
        return sorted(out)

    def _horizons_quiet(self) -> bool:
        """Whether no horizon can hit in a silent window: a hit past the first minute
        needs a request in its scope within the last minute."""
        lengths = self._horizons.lengths
        return len(lengths) < 3 or self._horizons.quiet_since() >= lengths[1]

    @staticmethod
    def _arriving(key: SeriesKey, scored: ScoredWindow) -> bool:
        """Whether the window itself carries the series' excess (shares: its count past
        the expectation in the key's direction; other signals: always)."""
        if key.signal != "share":
            return True
        count = scored.counts[key.row, key.col]
        if key.direction == "up":
            return bool(count > scored.shares.up_expected_count[key.row, key.col])
        return bool(count < scored.shares.expected_count[key.row, key.col])

    def _note_horizon(self, key: SeriesKey, event: AlertEvent) -> None:
        """Remember the horizon that fired a share series, and when it resolved."""
        if key.signal != "share":
            return
        if event.state == "firing":
            self._fired_horizon[key] = event.evidence.horizon_windows
        else:
            self._fired_horizon.pop(key, None)
            self._resolved_at[key] = self.counters.windows_closed

    def _elevated(self, counts: I64, exp: Expectation, shares: ShareScores) -> B:
        """Share series elevated, up or down, to ``clear_score`` where enough requests
        are expected (the cells ``_learn`` does not teach)."""
        clear = self.settings.detect.clear_score
        warm = exp.warm[:, None] & (shares.expected_count >= MIN_EXPECTED_TO_FREEZE)
        up = warm & (shares.up >= clear) & (counts > shares.up_expected_count)
        out: B = up | warm & (shares.down >= clear) & (counts < shares.expected_count)
        return out

    # -- quiet windows: the rows that can matter only --------------------------

    def _may_evaluate_quietly(self) -> bool:
        """Whether the next window may take ``_evaluate_quietly``: no series is live,
        held or accepted (nothing to step, no evidence to report), no volume
        calibrator learns every score, the input is not mostly invalid, and nothing
        listens to every window."""
        rejected = self._rejected_now
        return not (
            self.exhaustive or self._calibrators or self.incidents.held or self._accepted
            or self.window_listener is not None or self.report_listener is not None
            or (rejected is not None and rejected.mostly_invalid) or self.alerts.live_keys()
        )

    def _rows_that_matter(self, totals: I64, rules: RuleTable, parents: I64) -> I64:
        """Rows with requests, rows whose silence could be a volume hit, and their
        parents (a cold row borrows its parent's shares), ascending."""
        level = self.baseline.volume_level(len(totals)) * SEASONAL_MAX_RATIO
        keep = (totals > 0) | (level >= self._volume_a_silence_needs(rules))
        while True:
            up = parents[keep]
            up = up[up >= 0]
            if keep[up].all():
                return np.flatnonzero(keep)
            keep[up] = True

    def _may_hit(self, shares: ShareScores, volume: VolumeScores, rules: RuleTable) -> bool:
        """Whether any hit or blast-radius evidence is possible: a share hit needs a
        score of a fire score, a long-window hit one of clear_score, an odd app one of
        blast_radius.scope_score; a volume hit one of a volume fire score."""
        share = min(self._screen_score(), float(rules.fire_score.min(initial=np.inf)))
        vol = self._least_volume_fire_score(rules)
        return bool(
            (shares.up >= share).any() or (shares.down >= share).any()
            or (volume.up >= vol).any() or (volume.down >= vol).any()
        )

    @staticmethod
    def _least_volume_fire_score(rules: RuleTable) -> float:
        return float(rules.volume.fire_score.min(initial=np.inf))

    def _evaluate_quietly(self, window: ClosedWindow) -> bool:
        """``_evaluate_one`` of a window that turns out quiet, on ``_rows_that_matter``
        only: the same scores there and the same learning everywhere. Quiet: no hit
        and no blast-radius evidence, so with nothing live (``_may_evaluate_quietly``)
        no series steps and only the baseline changes; every other row scores 0 and
        learns its volume alone. Returns False, having changed nothing, where the
        window is not quiet (then ``_evaluate_one`` takes it)."""
        counts, totals = self._padded_counts(window, closing=False)
        n_rows, n_cols = counts.shape
        rules, parents = self._tables(n_rows, n_cols)
        d = self.settings.detect
        long_sums: list[I64] = []
        long_spans: list[int] = []
        active = totals
        if len(d.horizons) > 2:
            # A hit past the minute needs a request in the scope's last minute, not now:
            # those scopes matter too.
            long_sums, long_spans = self._horizons.peek_all(counts)
            active = np.where(self._totals(long_sums[1]) > 0, 1, totals)
        rows = self._rows_that_matter(active, rules, parents)
        exp = self.baseline.expect(
            n_rows, n_cols, window_start_ms=window.start_ms,
            window_ms=self.windows.size_ms, parents=parents, rows=rows,
        )
        floor = share_floor(exp.volume, exp.windows_seen, self.baseline.share_half_life)
        counts_r, totals_r = counts[rows], totals[rows]
        shares = window_share_scores(counts_r, exp, floor, totals_r, below=self._screen_score())
        long_counts, summed = self._long_counts_of(counts_r, rows)
        clear = self.settings.detect.clear_score
        long_shares = score_shares(
            long_counts, exp.share, floor, np.maximum(exp.share_dispersion, exp.long_dispersion),
            self._totals(long_counts), exp.volume * summed, below=clear, rows=totals_r > 0,
        )
        # Volume scores are read only by _may_hit and the hits: exact where they may
        # reach a volume fire score, rises only where a rule looks at them.
        volume = score_volume(
            totals_r, exp.volume, exp.volume_dispersion,
            below=self._least_volume_fire_score(rules), up_rows=rules.volume.up[rows],
        )
        if self._may_hit(shares, volume, rules) and self._hits_any(
            counts_r, exp, shares, volume, long_counts, long_shares, rules.of_rows(rows), rows
        ):
            return False
        if long_sums:
            tables = [self._rules_at(i, rules).of_rows(rows) for i in range(len(d.horizons))]
            views = self._long_horizons(
                [s[rows] for s in long_sums], long_spans, exp, floor, rules.of_rows(rows),
                tables=tables, row_ids=rows,
            )
            if any(v.hit_up.any() or v.elevated.any() for v in views):
                return False
        self.counters.windows_closed += 1
        self._horizons.push(counts)
        elevated = self._elevated(counts_r, exp, shares)

        def spread(part: npt.NDArray[Any], like: npt.NDArray[Any]) -> npt.NDArray[Any]:
            full = np.zeros_like(like)
            full[rows] = part
            return full

        cells = np.zeros(counts.shape, dtype=bool)
        long_elevated = elevated | (long_shares.up >= clear) | (long_shares.down >= clear)
        self.baseline.learn(
            counts, window_start_ms=window.start_ms, frozen_share=spread(elevated, cells),
            frozen_volume=np.zeros(n_rows, dtype=bool), totals=totals,
            long_counts=spread(long_counts, counts),
            long_totals=spread(long_shares.totals, totals),
            frozen_long=spread(long_elevated, cells),
        )
        self.reference.learn(counts, totals, frozen=spread(elevated, cells))
        return True

    def _long_counts_of(self, counts: I64, rows: I64) -> tuple[I64, int]:
        """The minute's sum of ``rows`` as ``_score`` sums it (``counts``, this window's,
        added to the history), and how many windows it sums."""
        out, span = self._horizons.peek(counts, rows)
        return out, span

    def _hits_any(
        self, counts: I64, exp: Expectation, shares: ShareScores, volume: VolumeScores,
        long_counts: I64, long_shares: ShareScores, rules: RuleTable, rows: I64,
    ) -> bool:
        """Whether the window has a hit or blast-radius evidence on ``rows`` (the rows
        every array holds), the input not being mostly invalid."""
        d = self.settings.detect
        minute = [minute_view(d.horizons[1].windows, counts, long_counts, exp, shares,
                              long_shares, rules, d.clear_score)] if len(d.horizons) > 1 else []
        hits = find_hits(
            counts, exp, shares, volume, rules, minute,
            detect=d, rejected_drop=np.zeros(len(rows), dtype=bool),
            blast=self._blast_radius(counts, shares, rules, rows),
        )
        return bool(hits.blast.evidence) or any(h.any() for h in (
            hits.share_up, hits.share_down, hits.volume_up, hits.volume_down
        ))

    def _drops_of_rejected_records(self, totals: I64, expected: npt.NDArray[np.float64]) -> B:
        """The scopes whose missing volume the rejected records can explain, while the
        input is mostly invalid (``decode.mostly_invalid``): their volume drops are not
        hits, so the page is the invalid input, not "traffic fell".

        Rejected records carry no scope, so any scope whose deficit (expected minus
        seen) is at most twice the records rejected per window is covered, the fleet
        first of all; a scope that lost more than all rejected records still pages.
        """
        rejected = self._rejected_now
        if rejected is None or not rejected.mostly_invalid:
            return np.zeros(len(totals), dtype=bool)
        deficit = expected[: len(totals)] - totals
        explained: B = deficit <= 2.0 * rejected.rejected_per(self.windows.size_ms)
        return explained
    def _screen_score(self) -> float:
        """The lowest threshold any share score is compared with."""
        d = self.settings.detect
        br = d.blast_radius
        return min(d.clear_score, br.scope_score) if br.enabled else d.clear_score

    def _live_share_cells(self, n_rows: int, n_cols: int) -> npt.NDArray[np.bool_]:
        """Cells of live or held share series: their evidence reports the score."""
        cells = np.zeros((n_rows, n_cols), dtype=bool)
        for key in self.alerts.live_keys() | self.incidents.held:
            if key.signal == "share" and key.row < n_rows and key.col < n_cols:
                cells[key.row, key.col] = True
        return cells

    def _totals(self, counts: I64) -> I64:
        """Requests per row: the sum over code columns, the class columns left out (one
        matrix-vector product with a 0/1 column mask, kept until the columns change)."""
        n_cols = counts.shape[1]
        if len(self._code_mask) != n_cols:
            mask = np.ones(n_cols, np.int64)
            mask[[col for col, _ in self.codes.class_members() if col < n_cols]] = 0
            self._code_mask = mask
        out: I64 = counts @ self._code_mask
        return out

    def _calibrated(self, volume: VolumeScores, exp: Expectation) -> VolumeScores:
        """With ``detect.volume.calibration``: each warm scope's volume score, up and
        down, replaced by how unusual it is among that scope's own past scores."""
        if not self._calibrators:
            return volume
        live = {(r, d) for r, _, d, s in self.alerts.live_keys() if s == "volume"}
        out = {}
        for direction, raw in (("up", volume.up), ("down", volume.down)):
            frozen = np.zeros(len(raw), dtype=bool)
            frozen[[r for r, d in live if d == direction and r < len(raw)]] = True
            out[direction] = self._calibrators[direction].update(
                raw, frozen=frozen, active=exp.warm
            )
        return VolumeScores(out["up"], out["down"], volume.expected)

    def _rebalance_scopes(self, windows: int) -> None:
        """Keep the heaviest scopes in rows of their own (top-K by volume per level)."""
        live = self.alerts.live_keys() | self.incidents.held | self._accepted
        protected = {key.row for key in live}
        alpha = fading_factor(self.settings.baseline.volume_half_life_windows)
        recycled = self.scopes.rebalance(1.0 - (1.0 - alpha) ** windows, protected)
        if not recycled:
            return
        rows = [r.row for r in recycled]
        self.baseline.forget_rows(rows)
        for calibrator in self._calibrators.values():
            calibrator.forget_rows(rows)
        for r in recycled:
            self.windows.move_row(r.row, r.other)
        self._horizons.zero_rows(rows)
        self.reference.forget_rows(rows)
        self._tables_after_recycling(recycled)

    def _tables_after_recycling(self, recycled: list[Recycled]) -> None:
        """What ``_tables`` keeps once rows changed scope: the rule table unless a rule
        names scopes (without rules every row has the defaults), the parent rows with
        only the recycled rows' own parents found again where no row can have them as
        a parent (their levels are contained in no other level)."""
        if self.settings.detect.rules:
            self._rules = None
        levels = self.scopes.levels
        has_children = {
            i for i, inner in enumerate(levels)
            if any(len(inner) < len(outer) and set(inner) <= set(outer) for outer in levels)
        }
        rows = [r.row for r in recycled]
        if any(r.level in has_children for r in recycled) or max(rows) >= len(self._parents):
            self._parents = np.zeros(0, np.int64)  # rebuilt whole by _tables
            return
        parents = self._parents.copy()
        for row in rows:
            up = self.scopes.ancestors(row)
            parents[row] = up[-1] if up else -1
        self._parents = parents

    def acknowledge(self) -> int:
        """Accept every firing level as the new normal (operator acknowledgement).

        Accepted series learn again while they fire, so the baseline moves to the
        new level and the alert resolves; nothing is learned silently before.
        Returns how many series were accepted.
        """
        firing = self.alerts.firing_keys()
        self._accepted |= firing
        return len(firing)

    # -- state ----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this detector is, as plain JSON."""
        return {
            "version": STATE_VERSION,
            "scope_levels": [list(level) for level in self.scopes.levels],
            "codes": list(self.codes.codes),
            "scopes": {
                "labels": self.scopes.labels,
                "level_of_row": self.scopes.level_of_row,
                "folded": self.scopes.folded,
                "fold": self.scopes.fold_state(),
            },
            "windows": self.windows.snapshot(),
            "baseline": self.baseline.snapshot(),
            "calibrators": {d: c.snapshot() for d, c in self._calibrators.items()},
            "alerts": self.alerts.snapshot(),
            "held": sorted(list(k) for k in self.incidents.held),
            "accepted": sorted(list(k) for k in self._accepted),
            "level_windows": sorted([*k, n] for k, n in self._level_windows.items()),
            "horizons": self._horizons.snapshot(),
            "reference": self.reference.snapshot(),
            "fired_horizon": sorted([*k, w] for k, w in self._fired_horizon.items()),
            "resolved_at": sorted([*k, t] for k, t in self._resolved_at.items()),
            "counters": self.counters.to_json(),
        }

    def restore(self, state: dict[str, Any], now_ms: int) -> None:
        """Continue from :meth:`snapshot`; raises ``ValueError`` if it does not fit."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"snapshot version {state.get('version')!r} != {STATE_VERSION}")
        levels = [list(level) for level in self.scopes.levels]
        if state["scope_levels"] != levels:
            raise ValueError(f"snapshot scope levels {state['scope_levels']} != config {levels}")
        self.codes.restore(state["codes"])
        self.scopes.restore(state["scopes"]["labels"], state["scopes"]["level_of_row"])
        self.scopes.folded = [int(n) for n in state["scopes"]["folded"]]
        self.scopes.restore_fold_state(state["scopes"]["fold"])
        self.windows.restore(state["windows"], now_ms)
        self.baseline.restore(state["baseline"])
        for direction, calibrator in self._calibrators.items():
            if direction in state["calibrators"]:
                calibrator.restore(state["calibrators"][direction])
        self.alerts.restore(state["alerts"])
        self.incidents.held = {SeriesKey.of(k) for k in state["held"]}
        self._accepted = {SeriesKey.of(k) for k in state["accepted"]}
        self._level_windows = {SeriesKey.of(k[:4]): int(k[4]) for k in state["level_windows"]}
        self._horizons = HorizonSums(self._horizons.lengths)
        self._horizons.restore(state["horizons"])
        self.reference.restore(state["reference"])
        self._fired_horizon = {SeriesKey.of(k[:4]): int(k[4]) for k in state["fired_horizon"]}
        self._resolved_at = {SeriesKey.of(k[:4]): int(k[4]) for k in state["resolved_at"]}
        self.counters = Counters.from_json(state["counters"])
        self._rules = None
        self._horizon_rules = None
        self._code_mask = np.zeros(0, np.int64)
        self._parents = np.zeros(0, np.int64)

    def active_alerts(self) -> set[tuple[int, Direction, Signal]]:
        """(code, direction, signal) of paged alerts firing in any scope (VOLUME_CODE: volume)."""
        return {
            (self.codes.code_at(c), d, s)
            for _, c, d, s in self.alerts.firing_keys(paged_only=True)
        }
