"""Evidence over the horizons past the window: the last minute, 10 minutes, an hour.

A sparse scope (an app at two requests a minute, a service at night) never gathers
significance in one window; summed over the horizon where its counts become meaningful,
it does. ``HorizonJudge`` keeps the running sums, scores each horizon with its own count
and ratio gates (past the minute: rises against the long reference), remembers which
horizon fired each series (it resolves there), and blocks what a horizon still holds of
an episode already paged, so one incident pages once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from statuswatch.config import DetectConfig
from statuswatch.core import kernels
from statuswatch.core.baseline import Expectation
from statuswatch.core.columns import I64
from statuswatch.core.decide import AlertEvent, SeriesKey
from statuswatch.core.evidence import minute_view, screen_score
from statuswatch.core.horizons import HorizonSums, HorizonView
from statuswatch.core.reference import LongReference
from statuswatch.core.rules import RuleTable, resolve
from statuswatch.core.scopes import CodeTable, ScopeTable
from statuswatch.core.score import (
    F64,
    ShareScores,
    rise_gate,
    rise_scores,
    score_shares,
)

B = npt.NDArray[np.bool_]

#: A hit over a long horizon needs the horizon before it to carry excess at least at
#: this fraction of the long horizon's rate: the evidence is still arriving, not an
#: ended incident's left in the sum.
RECENT_EXCESS_RATE = 0.5


class HorizonJudge:
    """The horizons' sums, scores and hits, and the memory of what they fired."""

    def __init__(
        self, lengths: list[int], scopes: ScopeTable, codes: CodeTable,
        reference: LongReference, totals_of: Callable[[I64], I64],
    ) -> None:
        """``lengths``: each horizon in windows, the window itself (1) first;
        ``totals_of``: requests per row of a count matrix (status classes left out)."""
        self.scopes = scopes
        self.codes = codes
        self.reference = reference
        self.totals_of = totals_of
        #: counts summed over each horizon: slow, small, persistent excess
        self.sums = HorizonSums(lengths)
        #: share series firing -> the horizon (windows) that fired it: it resolves there
        self.fired: dict[SeriesKey, int] = {}
        #: share series -> ``windows_closed`` at their resolve: horizons still holding
        #: the evidence of that episode cannot fire them again
        self.resolved_at: dict[SeriesKey, int] = {}
        self._tables: tuple[RuleTable, list[RuleTable]] | None = None

    def restart(self, lengths: list[int]) -> None:
        """Start afresh with other horizons (a reload): the sums and what they fired go."""
        self.sums = HorizonSums(lengths)
        self.fired.clear()

    def snapshot(self) -> dict[str, Any]:
        return {
            "horizons": self.sums.snapshot(),
            "fired_horizon": sorted([*k, w] for k, w in self.fired.items()),
            "resolved_at": sorted([*k, t] for k, t in self.resolved_at.items()),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.sums = HorizonSums(self.sums.lengths)
        self.sums.restore(state["horizons"])
        self.fired = {SeriesKey.of(k[:4]): int(k[4]) for k in state["fired_horizon"]}
        self.resolved_at = {SeriesKey.of(k[:4]): int(k[4]) for k in state["resolved_at"]}
        self._tables = None

    def views(
        self, sums: list[I64], spans: list[int], counts: I64, exp: Expectation, floor: F64,
        shares: ShareScores, tables: list[RuleTable], live: B | None, detect: DetectConfig,
        row_ids: I64 | None = None, quiet: bool = False,
    ) -> tuple[I64, ShareScores, list[HorizonView]]:
        """The last minute summed (the window alone with one horizon), its share scores,
        and every horizon's view after the window's. ``tables``: each horizon's rules;
        ``live``: cells scored exactly (None: every cell, unscreened); ``row_ids``: the
        scope rows the arrays hold, in order (None: every row). ``quiet``: for a window
        with nothing live that counts no anomalous apps over the minute: the minute is
        scored only in the rows with requests now (the minute's hits and what the
        baseline learns read no other)."""
        long_counts = sums[1] if len(sums) > 1 else counts
        long_totals = self.totals_of(long_counts)
        # No live cell (a quiet window's case): none to score exactly, no row to add.
        exact = None if live is None or not live.any() else live
        rows = None
        if live is not None:
            # Screened (see ``below``), the minute is scored in the rows with requests now
            # (or, when an alert may count anomalous apps over the minute, in the
            # minute): elsewhere no score used reaches it; and in live series' rows,
            # which a series that fired on this horizon is judged calm on.
            rows = (long_totals if detect.blast_radius.enabled and not quiet
                    else shares.totals) > 0
            if exact is not None:
                rows |= exact.any(axis=1)
        # The last minute summed, with its own dispersion; its hits count only where the
        # window itself reaches clear_score (see evidence.minute_view).
        long_shares = score_shares(
            long_counts, exp.share, floor, np.maximum(exp.share_dispersion, exp.long_dispersion),
            long_totals, exp.volume * spans[min(1, len(spans) - 1)],
            # Long scores are compared with clear_score or more (hits, and which sums
            # are too elevated to teach the long window's dispersion), or with
            # blast_radius.scope_score (the apps an alert judged on the minute counts).
            below=None if live is None else screen_score(detect),
            rows=rows, exact=exact,
        )
        views: list[HorizonView] = []
        if len(sums) > 1:
            views.append(minute_view(
                detect.horizons[1].windows, counts, long_counts, exp, shares, long_shares,
                tables[1], detect.clear_score,
            ))
            views += self._long_horizons(sums, spans, exp, floor, tables, live, detect, row_ids,
                                         long_totals)
        return long_counts, long_shares, views

    def silent_views(
        self, sums: list[I64], spans: list[int], exp: Expectation, floor: F64,
        tables: list[RuleTable], detect: DetectConfig, row_ids: I64 | None = None,
    ) -> list[HorizonView]:
        """``views`` of a window without requests, nothing live: every score of the
        window is 0, so the minute holds no hit (``minute_view`` counts one only where
        the window is elevated) and is not scored; the horizons past it are."""
        if len(sums) < 2:
            return []
        shape = sums[0].shape
        nothing, none = np.zeros(shape), np.zeros(shape, dtype=bool)
        minute_totals = self.totals_of(sums[1])
        minute = HorizonView(detect.horizons[1].windows, sums[1], ShareScores(
            nothing, nothing, nothing, nothing, nothing, minute_totals
        ), none, none, none)
        return [minute, *self._long_horizons(sums, spans, exp, floor, tables, none, detect,
                                             row_ids, minute_totals)]

    def rules_at(self, horizon: int, rules: RuleTable, detect: DetectConfig) -> RuleTable:
        """The rule table at horizon ``horizon``: its own count and ratio gates in place
        of ``detect``'s (rules with their own thresholds keep them)."""
        cached = self._tables
        if cached is None or cached[0] is not rules:
            tables = []
            for h in detect.horizons:
                gates = {k: v for k, v in (("min_excess_count", h.min_excess_count),
                                           ("min_share_ratio", h.min_share_ratio))
                         if v is not None}
                tables.append(rules if not gates else resolve(
                    detect.model_copy(update=gates), self.scopes.labels[: rules.ignore.shape[0]],
                    self.codes.codes[: rules.ignore.shape[1]],
                ))
            cached = self._tables = (rules, tables)
        return cached[1][horizon]

    def _long_horizons(
        self, sums: list[I64], spans: list[int], exp: Expectation, floor: F64,
        tables: list[RuleTable], live_cells: B | None, detect: DetectConfig,
        row_ids: I64 | None, minute_totals: I64,
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
        every decision is about those (every cell where ``live_cells`` is None).
        ``row_ids``: the scope rows the arrays hold, in order (None: every row);
        ``minute_totals``: the requests per row of ``sums[1]`` (the caller has them).
        """
        if len(detect.horizons) <= 2:
            return []
        if live_cells is not None and not live_cells.any():
            quiet = self._views_without_rises(sums, spans, exp, floor, tables, detect, row_ids,
                                              minute_totals)
            if quiet is not None:
                return quiet
        shape = sums[0].shape
        # The cells any decision is about: a count that can pass a horizon's count gate
        # (an excess of min_excess_count needs that many requests), and live series.
        if live_cells is None:
            need = np.ones(shape, dtype=bool)
        else:
            need = live_cells.copy()
            for i in range(2, len(detect.horizons)):
                need |= sums[i] >= tables[i].min_excess_count
        flat = need.ravel().nonzero()[0]  # flat cell indices: np.take is the cheap gather
        rows = flat // shape[1]

        def at(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return a.take(flat)  # the method: np.take's wrapper costs as much again

        live = at(need if live_cells is None else live_cells)
        phi: F64 | None = None  # the cells' dispersion, gathered once a horizon scores
        # a scope without a request in the last minute is not still receiving evidence
        # (and a silent run past the minute can then be passed cheaply)
        minute_n = minute_totals[rows].astype(np.float64)
        warm = exp.warm[rows] & (minute_n > 0)
        learned = at(exp.share)
        reference = learned
        if any(h.long_reference for h in detect.horizons[2:]):
            reference = self.reference.up_share_at(
                rows if row_ids is None else row_ids[rows], flat % shape[1], fallback=learned
            )
        before_counts, before_span = at(sums[1]), spans[1]
        # the minute's rise expectation, as the minute's scores have it (computed here:
        # those are screened to the rows with requests now)
        before_up = minute_n * np.clip(np.maximum(learned, floor[rows]), 1e-12, 1 - 1e-12)
        # read only: nothing is scored there (the drop tail, or a horizon without a cell)
        no_drops, no_hits = np.zeros(shape), np.zeros(shape, dtype=bool)
        views = []
        for i in range(2, len(detect.horizons)):
            h, span, r = detect.horizons[i], spans[i], tables[i]
            c = at(sums[i])
            totals = self.totals_of(sums[i])
            n = totals[rows].astype(np.float64)
            p_up = np.clip(np.maximum(reference if h.long_reference else learned, floor[rows]),
                           1e-12, 1.0 - 1e-12)
            up_expected = n * p_up
            big_up = rise_gate(c, up_expected, at(r.min_excess_count), at(r.min_share_ratio))
            maybe_up = big_up  # mostly no cell passes the gates: none to check further
            if big_up.any():
                # excess per window: the newest part's at least RECENT_EXCESS_RATE of the whole's
                recent = (before_counts - before_up) * span >= RECENT_EXCESS_RATE * (
                    c - up_expected) * before_span
                maybe_up = warm & ~at(r.ignore) & at(r.up) & big_up & recent
            before_counts, before_up, before_span = c, up_expected, span
            scored_cells = maybe_up | live
            if not scored_cells.any():  # the common case: nothing to score or report
                views.append(_without_hits(h.windows, sums[i], totals, no_drops, no_hits))
                continue
            # Rises only: the drop tail is never read here (0), nor the drop expectation.
            if phi is None:
                phi = np.maximum(at(exp.share_dispersion), at(exp.long_dispersion))
            up = rise_scores(c, n, p_up, phi, scored_cells)
            with np.errstate(divide="ignore", invalid="ignore"):
                observed = np.where(n > 0, c / np.maximum(n, 1.0), 0.0)
            full = [np.zeros(shape) for _ in range(3)]
            for array, values in zip(full, (up, observed, up_expected), strict=True):
                np.put(array, flat, values)
            flags = [np.zeros(shape, dtype=bool) for _ in range(2)]
            np.put(flags[0], flat, maybe_up & (up >= at(r.fire_score)))
            np.put(flags[1], flat, maybe_up & (up >= detect.clear_score))
            scored = ShareScores(full[0], no_drops, full[1], full[2], full[2], totals)
            views.append(HorizonView(h.windows, sums[i], scored, flags[0], no_hits, flags[1]))
        return views

    def _views_without_rises(
        self, sums: list[I64], spans: list[int], exp: Expectation, floor: F64,
        tables: list[RuleTable], detect: DetectConfig, row_ids: I64 | None,
        minute_totals: I64,
    ) -> list[HorizonView] | None:
        """``_long_horizons`` where nothing is live and no cell can pass a horizon's rise
        gates (``kernels.rises_possible``, one pass over the cells; mostly none can):
        every view without a score or a hit, as it makes them. None where a cell may
        pass, or without the kernels: ``_long_horizons`` decides."""
        long = range(2, len(detect.horizons))
        shape = sums[0].shape
        if not (kernels.ENABLED and len(long) <= 8 and kernels.shaped(
            shape, (exp.share, np.float64), (sums[1], np.int64),
            *((sums[i], np.int64) for i in long),
            *((a, np.float64) for i in long
              for a in (tables[i].min_excess_count, tables[i].min_share_ratio)),
            *((a, np.bool_) for i in long for a in (tables[i].ignore, tables[i].up)),
        ) and kernels.shaped(shape[:1], (floor, np.float64), (row_ids, np.int64),
                             (minute_totals, np.int64), (exp.warm, np.bool_))):
            return None
        totals = {i: self.totals_of(sums[i]) for i in long}
        c = np.ascontiguousarray
        ref_counts, ref_totals = self.reference.long_sums()
        if kernels.native.rises_possible(
            tuple((c(sums[i]), c(totals[i]), c(tables[i].min_excess_count),
                   c(tables[i].min_share_ratio), detect.horizons[i].long_reference,
                   c(tables[i].ignore), c(tables[i].up), spans[i]) for i in long),
            c(sums[1]), c(minute_totals), spans[1], c(exp.warm), c(exp.share), c(floor),
            ref_counts, ref_totals, ref_counts.shape[1], self.reference.alpha,
            kernels.contiguous(row_ids), shape[1], RECENT_EXCESS_RATE,
        ):
            return None
        no_drops, no_hits = np.zeros(shape), np.zeros(shape, dtype=bool)
        return [_without_hits(detect.horizons[i].windows, sums[i], totals[i], no_drops,
                              no_hits) for i in long]

    def forget_old_resolves(self, has_views: bool, now: int) -> None:
        """Forget the resolves every horizon's sum has left behind (all of them with no
        horizon past the window's) as of window ``now`` (``windows_closed`` counting it)."""
        if not has_views:
            self.resolved_at.clear()
            return
        longest = self.sums.lengths[-1]
        for key, at in list(self.resolved_at.items()):
            if now - at >= longest:
                del self.resolved_at[key]

    def block_resolved(
        self, views: list[HorizonView], now: int, firing: set[SeriesKey], parents: I64,
        row_ids: I64 | None = None,
    ) -> None:
        """One incident, one page. A resolved series cannot fire again on a horizon whose
        sum still holds windows of the episode it resolved. Nor can a rise on the same
        code (its class or its codes) in a scope that overlaps it (contains it, lies
        within it, or cuts across it: an app and a service) fire on a horizon past the
        first minute while it fires, or while that horizon still holds its episode: slow
        evidence there is the known incident's, arriving late where counts are small.

        Clears those hits in ``views`` (whose arrays hold ``row_ids``, in order; None:
        every row) as of window ``now`` (``windows_closed`` with it counted), the series
        in ``firing`` firing and ``parents`` the scope rows' parents; changes nothing
        else."""
        if not views:
            return
        n_rows, n_cols = len(self.scopes), views[0].counts.shape[1]
        if row_ids is None:
            local = np.arange(n_rows)
        else:
            local = np.full(n_rows, -1)
            local[row_ids] = np.arange(len(row_ids))
        sources = [(k, 0) for k in firing if k.signal == "share" and k.direction == "up"]
        for key, at in self.resolved_at.items():
            age = now - at
            if age >= views[-1].windows:
                continue
            row = int(local[key.row]) if key.row < n_rows and key.col < n_cols else -1
            for view in views:
                hit = view.hit_up if key.direction == "up" else view.hit_down
                if view.windows > age and row >= 0:
                    hit[row, key.col] = False
            if key.direction == "up":
                sources.append((key, age))
        for key, age in sources:
            if key.row >= n_rows or key.col >= n_cols:
                continue
            overlapping = self._overlapping_rows(key.row, n_rows, parents)
            rows = np.flatnonzero(overlapping if row_ids is None else overlapping[row_ids])
            cols = np.asarray(self._code_family(key.col), np.int64)
            own_row = int(local[key.row])
            for view in views[1:]:
                if view.windows > age:
                    own = own_row >= 0 and bool(view.hit_up[own_row, key.col])
                    view.hit_up[np.ix_(rows, cols)] = False
                    if age == 0 and own_row >= 0:  # a firing series' own evidence stays
                        view.hit_up[own_row, key.col] = own

    def _overlapping_rows(self, row: int, n_rows: int, parents: I64) -> B:
        """Rows whose scopes share requests with ``row``'s: itself, its ancestors and
        descendants, and every scope of a level that cuts across its level."""
        levels = [set(level) for level in self.scopes.levels]
        mine = levels[self.scopes.level_of_row[row]]
        nested = np.array([level <= mine or mine <= level for level in levels])
        mask: B = ~nested[np.asarray(self.scopes.level_of_row[:n_rows], np.int64)]
        mask[[a for a in self.scopes.ancestors(row) if a < n_rows]] = True
        mask[row] = True
        parents = parents[:n_rows]
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

    def quiet_in_silence(self) -> bool:
        """Whether no horizon can hit in a silent window: a hit past the first minute
        needs a request in its scope within the last minute."""
        lengths = self.sums.lengths
        return len(lengths) < 3 or self.sums.quiet_since() >= lengths[1]

    def note(self, key: SeriesKey, event: AlertEvent, now: int) -> None:
        """Remember the horizon that fired a share series, and when it resolved."""
        if key.signal != "share":
            return
        if event.state == "firing":
            self.fired[key] = event.evidence.horizon_windows
        else:
            self.fired.pop(key, None)
            self.resolved_at[key] = now


def _without_hits(windows: int, sums: I64, totals: I64, no_scores: F64, no_hits: B
                  ) -> HorizonView:
    """A horizon's view where nothing was scored: no score, no hit (the arrays shared,
    read only)."""
    return HorizonView(windows, sums, ShareScores(
        no_scores, no_scores, no_scores, no_scores, no_scores, totals
    ), no_hits, no_hits, no_hits)
