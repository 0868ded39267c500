"""The pure pipeline: decoded columns in, closed windows and alert events out.

``Detector`` owns the stages (scopes, windows, baseline, score, decide) and the
counters the metrics endpoint shows. It never reads a clock: callers pass
``now_ms`` (wall time in the shell, event time in a backtest).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from statuswatch.config import Settings
from statuswatch.core.baseline import ShareBaseline
from statuswatch.core.columns import I64, DecodedBatch
from statuswatch.core.decide import AlertEvent, AlertTracker, Direction, Evidence, Key, Lifecycle
from statuswatch.core.decode import Decoder, build_decoder
from statuswatch.core.scopes import CodeTable, ScopeTable
from statuswatch.core.score import F64, ShareScores, score_shares, share_floor
from statuswatch.core.window import ClosedWindow, WindowCounter


@dataclass(slots=True)
class Counters:
    records: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    late: int = 0
    windows_closed: int = 0
    alerts_fired: int = 0
    last_event_ms: int | None = None
    codes: Counter[int] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class WindowReport:
    """The latest closed window as the metrics endpoint shows it."""

    window: ClosedWindow
    expected_share: F64
    scores: ShareScores
    warm: np.ndarray


@dataclass(frozen=True, slots=True)
class StepResult:
    batch: DecodedBatch
    events: list[AlertEvent]


class Detector:
    def __init__(self, settings: Settings, decoder: Decoder | None = None) -> None:
        self.settings = settings
        self.decoder = decoder if decoder is not None else build_decoder(settings.decode)
        self.codes = CodeTable()
        self.scopes = ScopeTable(settings.scopes.levels, settings.scopes.max_per_level)
        w = settings.window
        self.windows = WindowCounter(
            w.size_ms, w.lateness_ms, round(w.idle_timeout_seconds * 1000)
        )
        b = settings.baseline
        self.baseline = ShareBaseline(b.half_life_windows, b.warmup_windows)
        d = settings.detect
        self.alerts = AlertTracker(Lifecycle(d.k, d.m, d.min_firing_windows, d.clear_windows))
        self.counters = Counters()
        self.last_report: WindowReport | None = None

    # -- input ---------------------------------------------------------------

    def process(
        self,
        values: Sequence[bytes],
        *,
        now_ms: int,
        partition: int = 0,
        offsets: I64 | None = None,
    ) -> StepResult:
        """Decode and count one batch, then close every window that is ready."""
        batch = self.decoder.decode(values)
        self.count(batch, now_ms=now_ms, partition=partition, offsets=offsets)
        return StepResult(batch, self.close_ready(now_ms))

    def count(
        self,
        batch: DecodedBatch,
        *,
        now_ms: int,
        partition: int = 0,
        offsets: I64 | None = None,
    ) -> None:
        c = self.counters
        c.records += len(batch) + len(batch.invalid)
        c.invalid.update(r.reason for r in batch.invalid)
        if len(batch) == 0:
            return
        codes, freq = np.unique(batch.status, return_counts=True)
        c.codes.update(dict(zip(codes.tolist(), freq.tolist(), strict=True)))
        last = int(batch.ts_ms.max())
        c.last_event_ms = last if c.last_event_ms is None else max(c.last_event_ms, last)
        cols = self.codes.columns(batch.status)
        rows = self.scopes.rows(batch.dims)
        c.late += self.windows.add(
            batch.ts_ms,
            rows,
            cols,
            n_rows=len(self.scopes),
            n_cols=len(self.codes),
            partition=partition,
            offsets=None if offsets is None else offsets[batch.index],
            now_ms=now_ms,
        )

    def close_ready(self, now_ms: int) -> list[AlertEvent]:
        return self._evaluate(self.windows.close_ready(now_ms))

    def finish(self) -> list[AlertEvent]:
        """Close every open window: the end of a finite input."""
        return self._evaluate(self.windows.close_all())

    # -- per closed window ----------------------------------------------------

    def _evaluate(self, closed: list[ClosedWindow]) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        for window in closed:
            events.extend(self._evaluate_one(window))
        self.counters.alerts_fired += sum(e.state == "firing" for e in events)
        return events

    def _evaluate_one(self, window: ClosedWindow) -> list[AlertEvent]:
        d = self.settings.detect
        n_rows, n_cols = len(self.scopes), len(self.codes)
        counts = np.zeros((n_rows, n_cols), np.int64)
        counts[: window.counts.shape[0], : window.counts.shape[1]] = window.counts
        self.counters.windows_closed += 1

        expected = self.baseline.expected_share(n_rows, n_cols).copy()
        warm = self.baseline.warm(n_rows)
        floor = share_floor(
            self.baseline.expected_volume(n_rows),
            self.baseline.windows_seen(n_rows),
            self.baseline.half_life_windows,
        )
        scores = score_shares(counts, expected, floor)
        exp_count = scores.expected_count
        excess_up = counts - exp_count
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio_up = np.where(exp_count > 0, counts / exp_count, np.inf)
            ratio_down = np.where(counts > 0, exp_count / counts, np.inf)
        gate = warm[:, None] & (scores.totals[:, None] > 0)
        hit_up = gate & (scores.up >= d.fire_score) & (excess_up >= d.min_excess_count)
        hit_up &= ratio_up >= d.min_share_ratio
        hit_down = gate & (scores.down >= d.fire_score) & (-excess_up >= d.min_excess_count)
        hit_down &= ratio_down >= d.min_share_ratio

        keys: set[Key] = self.alerts.live_keys()
        keys.update((int(r), int(c), "up") for r, c in zip(*np.nonzero(hit_up), strict=True))
        keys.update((int(r), int(c), "down") for r, c in zip(*np.nonzero(hit_down), strict=True))

        stepped: list[tuple[Key, AlertEvent]] = []
        frozen = np.zeros((n_rows, n_cols), dtype=bool)
        for key in sorted(keys):
            row, col, direction = key
            up = direction == "up"
            score = float((scores.up if up else scores.down)[row, col])
            hit = bool((hit_up if up else hit_down)[row, col])
            evidence = Evidence(
                hit=hit,
                calm=score < d.clear_score,
                extreme=hit and score >= d.extreme_score,
                score=score,
                observed_count=int(counts[row, col]),
                expected_count=float(exp_count[row, col]),
                observed_share=float(scores.observed_share[row, col]),
                expected_share=float(expected[row, col]),
                total=int(scores.totals[row]),
            )
            event = self.alerts.step(
                key,
                evidence,
                window_start_ms=window.start_ms,
                window_end_ms=window.end_ms,
                code=self.codes.codes[col],
                scope=self.scopes.labels[row],
            )
            if event is not None:
                stepped.append((key, event))
            if self.alerts.state_of(key) is not None or hit:
                frozen[row, col] = True

        events = self._group(stepped, scores, excess_up)
        self.baseline.learn(counts, frozen)
        self.last_report = WindowReport(window, expected, scores, warm)
        return events

    def _group(
        self, stepped: list[tuple[Key, AlertEvent]], scores: ShareScores, excess: F64
    ) -> list[AlertEvent]:
        """One incident, one page: fold alerts that another alert already explains.

        * a child scope's alert on the same code and direction as a firing
          ancestor scope becomes that ancestor's contributor;
        * a share drop in a scope where another code's share is up is the
          complement of that rise, not a second incident.
        """
        firing = self.alerts.firing_keys()
        up_rows = {r for r, _, d in firing if d == "up"}
        out: list[AlertEvent] = []
        for (row, col, direction), event in stepped:
            if event.state == "resolved":
                if not event.quiet:
                    out.append(event)
                continue
            covered = any((a, col, direction) in firing for a in self.scopes.ancestors(row))
            complement = direction == "down" and row in up_rows
            if covered or complement:
                self.alerts.silence((row, col, direction))
                continue
            contributors = self._contributors(row, col, direction, scores, excess)
            out.append(replace(event, contributors=contributors))
        return out

    def _contributors(
        self, row: int, col: int, direction: Direction, scores: ShareScores, excess: F64,
        per_level: int = 10,
    ) -> list[dict[str, object]]:
        """Top descendant scopes by excess count for one code, per scope level."""
        d = self.settings.detect
        sign = 1.0 if direction == "up" else -1.0
        score = (scores.up if direction == "up" else scores.down)[:, col]
        candidates = np.flatnonzero((score >= d.clear_score) & (sign * excess[:, col] > 0))
        parent = self.scopes.labels[row].items()
        by_level: dict[int, list[tuple[float, int]]] = {}
        for r in candidates.tolist():
            label = self.scopes.labels[r]
            if r != row and len(label) > len(parent) and parent <= label.items():
                level = self.scopes.level_of_row[r]
                by_level.setdefault(level, []).append((sign * float(excess[r, col]), r))
        out: list[dict[str, object]] = []
        for level in sorted(by_level):
            for exc, r in sorted(by_level[level], reverse=True)[:per_level]:
                out.append({
                    "scope": self.scopes.labels[r],
                    "observed": {
                        "share": round(float(scores.observed_share[r, col]), 6),
                        "count": int(round(float(scores.expected_count[r, col]) + sign * exc)),
                    },
                    "expected": {"count": round(float(scores.expected_count[r, col]), 3)},
                    "excess": round(sign * exc, 3),
                    "score": round(float(score[r]), 3),
                })
        return out

    def active_alerts(self) -> set[tuple[int, Direction]]:
        """(code, direction) pairs with a firing alert in any scope."""
        return {(self.codes.codes[c], d) for _, c, d in self.alerts.firing_keys()}
