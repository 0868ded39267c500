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

The stages' logic lives in their modules (baseline, score, evidence, horizon_judge,
blast, decide, incidents); this one wires them and owns their state. It is longer than
the others for one reason: the two shortcuts, silent runs and quiet windows, must make
exactly the state changes ``_evaluate_one`` makes, and sit beside it so a change to one
is seen in the others (``tests/unit/test_screened_evaluation.py`` checks they agree).
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
from statuswatch.core.evidence import ScoredWindow, evidence_of, find_hits, screen_score
from statuswatch.core.horizon_judge import HorizonJudge
from statuswatch.core.horizons import HorizonView
from statuswatch.core.incidents import IncidentGrouper
from statuswatch.core.lagged import LaggedLearning, lag_for
from statuswatch.core.reference import LongReference, same_hour_reference
from statuswatch.core.rejects import InputVerdict, RejectedInput, RejectTracker
from statuswatch.core.rules import RuleTable, resolve
from statuswatch.core.scopes import CodeTable, Recycled, ScopeTable
from statuswatch.core.score import (
    F64,
    ShareScores,
    VolumeScores,
    score_shares,
    score_volume,
    share_floor,
)
from statuswatch.core.window import ClosedWindow, WindowCounter

B = npt.NDArray[np.bool_]

#: Version of the snapshot format; a snapshot of another version is refused.
STATE_VERSION = 7  # 2: folded scopes' rates, volume calibrators; 3: status-class columns;
# 4: the long window's dispersion; 5: horizons, the long reference; 6: its same hour;
# 7: the long reference's pending windows (lagged learning)

#: Expected count below which an elevated window still teaches the baseline.
MIN_EXPECTED_TO_FREEZE = 10.0
#: A quiet window is evaluated on every row once at least this share of the rows
#: matters (``Detector._rows_that_matter``): cutting the tables then costs more.
EVERY_ROW_SHARE = 0.6


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


def _any_hit(views: list[HorizonView]) -> bool:
    """Whether any horizon's view has a hit, up or down."""
    return any(view.hit_up.any() or view.hit_down.any() for view in views)


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
        self.last_report: WindowReport | None = None
        #: whether the last window of each call is evaluated in full for ``last_report``
        #: (the metrics endpoint's); a backtest, which serves no metrics, need not
        self.serves_metrics = True
        #: called with every closed window (counts padded to the current tables)
        self.window_listener: Callable[[ClosedWindow], None] | None = None
        #: called with every closed window's report, once it is scored
        self.report_listener: Callable[[WindowReport], None] | None = None
        #: the long-memory share a creep cannot drag along
        self.reference = LongReference(b.reference_half_life_windows, same_hour_reference(
            b.same_hour_reference_days, w.size_ms, d.horizons[-1].windows))
        #: what the long reference has yet to learn, and when
        self.lagged = LaggedLearning(
            lag_for([h.windows for h in d.horizons], [h.long_reference for h in d.horizons]),
            d.horizons[-1].windows * w.size_ms)
        #: evidence over ``detect.horizons``: slow, small, persistent excess
        self.horizons = HorizonJudge(
            [h.windows for h in d.horizons], self.scopes, self.codes, self.reference,
            self._totals,
        )
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
            self.horizons.restart([h.windows for h in d.horizons])
            self.lagged.lag_windows = lag_for(
                [h.windows for h in d.horizons], [h.long_reference for h in d.horizons])
            self.lagged.young_ms = d.horizons[-1].windows * self.windows.size_ms
            if self.reference.same_hour is not None:  # read over the longest one's hours
                self.reference.same_hour.span_ms = d.horizons[-1].windows * self.windows.size_ms
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
        concerns and a hint (``RejectTracker.verdict``)."""
        return self.rejects.verdict(now_ms, self.decoder, self.settings.decode)

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
            or window.counts.any() or self.alerts.live_keys()
            or not self.horizons.quiet_in_silence()
        ):
            return False
        return not self._silence_may_hit_volume()

    def _silence_may_hit_volume(self) -> bool:
        """Whether some scope's expected volume could make a silent window a volume hit
        (the expectation is the learned level moved by at most SEASONAL_MAX_RATIO)."""
        n_rows, n_cols = len(self.scopes), len(self.codes)
        rules, _ = self._tables(n_rows, n_cols)
        level = self.baseline.volume_level(n_rows).max(initial=0.0) * SEASONAL_MAX_RATIO
        return bool(level >= self._volume_a_silence_needs(rules))

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
        self.horizons.sums.push_silent(len(run), (n_rows, n_cols))
        self.lagged.pass_silent(len(run), self.reference)
        self.baseline.learn_silent(
            n_rows, n_cols, window_starts_ms=[w.start_ms for w in run]
        )
        self._after_quiet_window(has_views=len(self.horizons.sums.lengths) > 1)

    def _after_quiet_window(self, *, has_views: bool) -> None:
        """What a window without hits changes while nothing is live, once it is counted:
        resolves every horizon has left behind are forgotten, and no level holds."""
        self.horizons.forget_old_resolves(has_views, self.counters.windows_closed)
        self._level_windows.clear()

    def _evaluate_one(self, window: ClosedWindow) -> list[AlertEvent]:
        """One closed window through the stages: expect, score, hits, step, group, learn."""
        counts, totals = self._padded_counts(window)
        self.reference.at(window.start_ms)
        paged_before = self.alerts.firing_keys(paged_only=True)
        rules, parents = self._tables(*counts.shape)
        exp, floor = self._expect(window, counts.shape[0], counts.shape[1], parents)
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

    def _expect(
        self, window: ClosedWindow, n_rows: int, n_cols: int, parents: I64,
        rows: I64 | None = None,
    ) -> tuple[Expectation, F64]:
        """The baseline's expectation of ``window`` (of ``rows`` only, with their parents;
        None: every row) and the share floor a rise is judged against."""
        exp = self.baseline.expect(
            n_rows, n_cols, window_start_ms=window.start_ms,
            window_ms=self.windows.size_ms, parents=parents, rows=rows,
        )
        return exp, share_floor(exp.volume, exp.windows_seen, self.baseline.share_half_life)

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
                counts, exp, floor, totals, below=screen_score(self.settings.detect), exact=live,
            )
        sums = self.horizons.sums.push(counts)
        long_counts, long_shares, views = self.horizons.views(
            sums, self.horizons.sums.spans(), counts, exp, floor, shares,
            [self.horizons.rules_at(i, rules, d) for i in range(len(d.horizons))],
            None if self.exhaustive else live, d,
        )
        now = self.counters.windows_closed
        self.horizons.forget_old_resolves(bool(views), now)
        self.horizons.block_resolved(views, now, self.alerts.firing_keys(), self._parents)
        raw_volume = score_volume(shares.totals, exp.volume, exp.volume_dispersion)
        volume = self._calibrated(raw_volume, exp)
        rejected_drop = self._drops_of_rejected_records(shares.totals, exp.volume)
        hits = find_hits(
            counts, exp, shares, volume, rules, views,
            detect=d, rejected_drop=rejected_drop,
            blast=self._blast_radius(counts, shares, rules),
        )
        scored = ScoredWindow(window, counts, exp, shares, volume, hits, rules,
                              dict(self.horizons.fired), self.reference)
        return scored, _LongWindow(
            long_counts, long_shares.totals, long_shares, rejected_drop, views
        )

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
                self.horizons.note(key, event, self.counters.windows_closed)
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
        live_cells = frozen_share.copy()  # the live series' (see lagged)
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
            fired = max(self.horizons.fired.get(k, 1) for k in keys)
            level = next((v.counts for v in long.views if v.windows == fired), long.counts)
            level_total = int(self._totals(level[row : row + 1])[0])
            self.baseline.accept(row, level[row], level_total)
            self.reference.accept(row, self._with_classes([k.col for k in keys]), level[row],
                                  level_total)
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
        self._learn_reference(
            scored.window.start_ms, counts, totals, frozen_reference, live_cells)

    def _learn_reference(
        self, window_start_ms: int, counts: I64, totals: I64, frozen: B, live: B
    ) -> None:
        """Teach the long reference the window once it is ``lagged.lag_windows`` old, if
        no series of it went live meanwhile (``frozen`` cells: their own reference)."""
        self.lagged.teach(self.reference, self.baseline.first_learned_ms(len(totals)),
                          window_start_ms, counts, totals, frozen, live)

    def _with_classes(self, cols: list[int]) -> list[int]:
        """``cols`` and their status classes' columns: accepting 500's level accepts the
        5xx share it makes (a class is not rising anew the next time that level comes)."""
        return sorted({*cols, *(c for c in map(self.codes.class_of, cols) if c >= 0)})

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

    def _elevated(self, counts: I64, exp: Expectation, shares: ShareScores) -> B:
        """Share series elevated, up or down, to ``clear_score`` where enough requests
        are expected (the cells ``_learn`` does not teach)."""
        clear = self.settings.detect.clear_score
        up_high, down_high = shares.up >= clear, shares.down >= clear
        if not (up_high.any() or down_high.any()):  # mostly none is: nothing else to test
            return up_high
        warm = exp.warm[:, None] & (shares.expected_count >= MIN_EXPECTED_TO_FREEZE)
        up = warm & up_high & (counts > shares.up_expected_count)
        out: B = up | warm & down_high & (counts < shares.expected_count)
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
        """Rows with requests, rows whose silence could be a volume hit, rows whose sums
        past the last minute can rise (a request within it), and their parents (a cold
        row borrows its parent's shares), ascending."""
        level = self.baseline.volume_level(len(totals)) * SEASONAL_MAX_RATIO
        keep = (totals > 0) | (level >= self._volume_a_silence_needs(rules))
        if len(self.horizons.sums.lengths) > 2:
            keep |= self.horizons.sums.rows_with_counts(len(totals))
        while True:
            up = parents[keep]
            up = up[up >= 0]
            if keep[up].all():
                return keep.nonzero()[0]
            keep[up] = True

    def _may_hit(self, shares: ShareScores, volume: VolumeScores, rules: RuleTable) -> bool:
        """Whether a hit of the window itself or blast-radius evidence is possible (the
        longer horizons' hits are in their views): a share hit needs a score of a fire
        score, a volume hit one of a volume fire score, blast-radius evidence
        ``blast_radius.min_scopes`` scopes scoring ``blast_radius.scope_score`` on one
        code."""
        share = float(rules.fire_score.min(initial=np.inf))
        vol = self._least_volume_fire_score(rules)
        if ((shares.up >= share).any() or (shares.down >= share).any()
                or (volume.up >= vol).any() or (volume.down >= vol).any()):
            return True
        blast = self.settings.detect.blast_radius
        if not blast.enabled or self._blast_level < 0:
            return False
        odd = shares.up >= blast.scope_score
        return bool(odd.any() and odd.sum(axis=0).max() >= blast.min_scopes)

    @staticmethod
    def _least_volume_fire_score(rules: RuleTable) -> float:
        return float(rules.volume.fire_score.min(initial=np.inf))

    def _evaluate_quietly(self, window: ClosedWindow) -> bool:
        """``_evaluate_one`` of a window that turns out quiet, on ``_rows_that_matter``
        only (on every row once that is most of them, ``EVERY_ROW_SHARE``): the same
        scores there and the same learning everywhere. Quiet: no hit on
        any horizon and no blast-radius evidence, so with nothing live
        (``_may_evaluate_quietly``) no series steps; the horizons' sums, the baseline
        and the long reference learn the window, every other row scoring 0. Returns
        False, having changed nothing, where the window is not quiet (then
        ``_evaluate_one`` takes it)."""
        if not window.counts.any() and not self._silence_may_hit_volume():
            return self._evaluate_silently(window)
        counts, totals = self._padded_counts(window, closing=False)
        self.reference.at(window.start_ms)
        n_rows, n_cols = counts.shape
        rules, parents = self._tables(n_rows, n_cols)
        rows = self._rows_that_matter(totals, rules, parents)
        # Where most rows matter, all of them: the others score 0 as they would left
        # out (no decision reads them), and cutting every table to the rows costs more.
        every = len(rows) >= EVERY_ROW_SHARE * n_rows
        if every:
            rows = np.arange(n_rows)
        sel = None if every else rows
        exp, floor = self._expect(window, n_rows, n_cols, parents, sel)
        counts_r, totals_r = (counts, totals) if every else (counts[rows], totals[rows])
        shares = window_share_scores(counts_r, exp, floor, totals_r,
                                     below=screen_score(self.settings.detect))
        sums, spans = self.horizons.sums.peek(counts, rows)
        rules_r, tables = self._tables_of_rows(rules, sel)
        long_counts, long_shares, views = self.horizons.views(
            sums, spans, counts_r, exp, floor, shares, tables,
            np.zeros(counts_r.shape, dtype=bool), self.settings.detect, sel, quiet=True,
        )
        now = self.counters.windows_closed + 1  # as _evaluate_one counts it
        self.horizons.block_resolved(views, now, self.alerts.firing_keys(), parents, sel)
        # Volume scores are read only by _may_hit and the hits: exact where they may
        # reach a volume fire score, rises only where a rule looks at them.
        volume = score_volume(
            totals_r, exp.volume, exp.volume_dispersion,
            below=self._least_volume_fire_score(rules), up_rows=rules_r.volume.up,
        )
        if self._hits_any(counts_r, exp, shares, volume, views, rules, rules_r, rows):
            return False
        self.counters.windows_closed += 1
        self.horizons.sums.push_rows(counts, rows)
        self._after_quiet_window(has_views=bool(views))
        elevated = self._elevated(counts_r, exp, shares)

        def spread(part: npt.NDArray[Any], like: npt.NDArray[Any]) -> npt.NDArray[Any]:
            if every:
                return part
            full = np.zeros_like(like)
            full[rows] = part
            return full

        cells = np.zeros(counts.shape, dtype=bool)
        clear = self.settings.detect.clear_score
        long_elevated = elevated | (long_shares.up >= clear) | (long_shares.down >= clear)
        self.baseline.learn(
            counts, window_start_ms=window.start_ms, frozen_share=spread(elevated, cells),
            frozen_volume=np.zeros(n_rows, dtype=bool), totals=totals,
            long_counts=spread(long_counts, counts),
            long_totals=spread(long_shares.totals, totals),
            frozen_long=spread(long_elevated, cells),
        )
        frozen_reference = elevated.copy()
        for view in views:
            frozen_reference |= view.elevated
        # nothing is live here
        self._learn_reference(window.start_ms, counts, totals, spread(frozen_reference, cells),
                              cells)
        return True

    def _evaluate_silently(self, window: ClosedWindow) -> bool:
        """``_evaluate_quietly`` of a window without requests that cannot be a volume
        hit, within a minute of the last request (else ``_pass_silent`` takes it): it
        scores nothing, so its minute has no hit either (``minute_view``), and only the
        horizons past the minute are judged, in the rows with a request in the last
        minute (the only ones where they can hit). Without a hit, the window changes
        what ``_pass_silent`` makes of it."""
        n_rows, n_cols = len(self.scopes), len(self.codes)
        counts = np.zeros((n_rows, n_cols), np.int64)
        self.reference.at(window.start_ms)
        rules, parents = self._tables(n_rows, n_cols)
        rows = self._rows_that_matter(np.zeros(n_rows, np.int64), rules, parents)
        exp, floor = self._expect(window, n_rows, n_cols, parents, rows)
        sums, spans = self.horizons.sums.peek(counts, rows)
        _, tables = self._tables_of_rows(rules, rows)
        views = self.horizons.silent_views(sums, spans, exp, floor, tables,
                                           self.settings.detect, rows)
        now = self.counters.windows_closed + 1  # as _evaluate_one counts it
        self.horizons.block_resolved(views, now, self.alerts.firing_keys(), parents, rows)
        if _any_hit(views):
            return False
        self._pass_silent([window])
        return True

    def _tables_of_rows(
        self, rules: RuleTable, rows: I64 | None
    ) -> tuple[RuleTable, list[RuleTable]]:
        """``rules`` and each horizon's rule table (``HorizonJudge.rules_at``) cut to ``rows``
        (None: every row, uncut)."""
        def cut_to_rows(table: RuleTable) -> RuleTable:
            return table if rows is None else table.of_rows(rows)

        cut = {id(rules): cut_to_rows(rules)}
        out = []
        for i in range(len(self.settings.detect.horizons)):
            table = self.horizons.rules_at(i, rules, self.settings.detect)
            if id(table) not in cut:
                cut[id(table)] = cut_to_rows(table)
            out.append(cut[id(table)])
        return cut[id(rules)], out

    def _hits_any(
        self, counts: I64, exp: Expectation, shares: ShareScores, volume: VolumeScores,
        views: list[HorizonView], rules: RuleTable, rules_of_rows: RuleTable, rows: I64,
    ) -> bool:
        """Whether the window has a hit on any horizon or blast-radius evidence on
        ``rows`` (the rows every array but ``rules``' holds), the input not being mostly
        invalid."""
        if _any_hit(views):
            return True
        if not self._may_hit(shares, volume, rules):
            return False
        hits = find_hits(
            counts, exp, shares, volume, rules_of_rows, views,
            detect=self.settings.detect, rejected_drop=np.zeros(len(rows), dtype=bool),
            blast=self._blast_radius(counts, shares, rules_of_rows, rows),
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
        self.horizons.sums.zero_rows(rows)
        self.reference.forget_rows(rows)
        self.lagged.forget_rows(rows)
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
            **self.horizons.snapshot(),
            "reference": self.reference.snapshot(),
            "lagged": self.lagged.snapshot(),
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
        self.horizons.restore(state)
        self.reference.restore(state["reference"])
        self.lagged.restore(state["lagged"])
        self.counters = Counters.from_json(state["counters"])
        self._rules = None
        self._code_mask = np.zeros(0, np.int64)
        self._parents = np.zeros(0, np.int64)

    def active_alerts(self) -> set[tuple[int, Direction, Signal]]:
        """(code, direction, signal) of paged alerts firing in any scope (VOLUME_CODE: volume)."""
        return {
            (self.codes.code_at(c), d, s)
            for _, c, d, s in self.alerts.firing_keys(paged_only=True)
        }
