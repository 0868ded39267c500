"""One incident, one page: fold the alerts another alert already explains.

Every closed window, each series that fired is either paged, or folded into an alert
that explains it (shown there as a contributor), or held while the alert that would
explain it is still pending. The rules, in ``IncidentGrouper.group``'s docstring, are
pure functions of the window's scores and the alert states.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from statuswatch.config import DetectConfig
from statuswatch.core.blast import blast_count, rise_over_horizon
from statuswatch.core.columns import I64
from statuswatch.core.decide import AlertEvent, AlertTracker, SeriesKey
from statuswatch.core.evidence import ScoredWindow, evidence_of, view_of
from statuswatch.core.scopes import CodeTable, ScopeTable
from statuswatch.core.score import F64, ShareScores

#: Contributors listed per scope level in an alert.
CONTRIBUTORS_PER_LEVEL = 10
#: Share of a status class's excess one of its codes must carry to page instead of it.
DOMINANT_SHARE = 0.5


def _fires_over(
    key: SeriesKey, row: int, firing: set[SeriesKey], every_firing: set[SeriesKey]
) -> bool:
    """Whether ``key`` fires for covering a series of ``row``: a shadow-mode series (in
    ``every_firing`` only) covers only within its own scope."""
    return key in (every_firing if key.row == row else firing)


class IncidentGrouper:
    """Decides, window by window, which stepped alerts page and which are folded."""

    def __init__(self, scopes: ScopeTable, codes: CodeTable, alerts: AlertTracker) -> None:
        self.scopes = scopes
        self.codes = codes
        self.alerts = alerts
        #: child series held back while an ancestor is pending on the same code
        self.held: set[SeriesKey] = set()

    def group(
        self, scored: ScoredWindow, stepped: list[tuple[SeriesKey, AlertEvent]],
        paged_before: set[SeriesKey], *, detect: DetectConfig, blast_level: int,
    ) -> tuple[list[AlertEvent], list[str]]:
        """The events to page this window, and the shadow-mode rules that would have
        fired (one entry per series).

        * a child scope's alert on the same signal, code and direction as a
          firing ancestor (an app under the fleet's 403 alert) is folded;
        * an app's share rise while the blast radius of its code fires is folded,
          and the fleet's share rise folds the blast radius;
        * a share drop in a scope whose rise is live (pending too) is its complement;
        * a child's alert while an ancestor on the same code is pending is held,
          then paged if the ancestor never fires (or folded if it does);
        * a share alert whose code and direction fires elsewhere (a route) with more
          excess requests: the app's excess is, or could be, the route's;
        * between a status class's alert (5xx) and its codes' (503) in one
          scope: a code carrying at least half of the class's excess pages and
          the class does not; otherwise the class pages (a creep over
          500/502/503) and its codes do not; whichever paged first keeps
          covering the other for the episode.

        Shadow-mode rules count what they would have fired and page nothing. A series
        in shadow mode neither covers nor holds another scope's alert (that one's own
        rule says to page); in its own scope it still covers its class or codes and
        explains the drop of the other codes, shadow or not.
        """
        rules = scored.rules

        def real(k: SeriesKey) -> bool:
            return rules.shadow_rule(k.row, k.col, k.signal) is None

        every_firing = self.alerts.firing_keys()
        firing = {k for k in every_firing if real(k)}
        pending = {k for k in self.alerts.live_keys() - every_firing if real(k)}
        # A drop is the complement of a rise in its scope as soon as that rise is live
        # (pending too): a strong drop fires at once, the rise it mirrors a window later.
        up_rows = {
            k.row for k in self.alerts.live_keys()
            if k.direction == "up" and k.signal == "share"
        }
        out = self._release_held(
            scored, firing, every_firing, pending, paged_before, detect, blast_level
        )
        shadow_fired: list[str] = []
        for key, event in stepped:
            if event.state == "resolved":
                if not event.quiet:
                    out.append(event)
                continue
            shadow_rule = rules.shadow_rule(key.row, key.col, key.signal)
            shadow = shadow_rule is not None
            # What would have paged is counted as if shadow mode were off. In one scope a
            # code and its class (and the fleet and its blast radius) are one incident:
            # a shadow series still covers those, like a rise covers the scope's drops.
            cover = every_firing if shadow else firing
            family = self._covering_keys(key, paged_before, scored, blast_level)
            covered = any(_fires_over(k, key.row, cover, every_firing) for k in family) or \
                self._explained_elsewhere(key, cover, scored.counts, scored.shares)
            complement = (
                key.signal == "share" and key.direction == "down" and key.row in up_rows
            )
            if not (covered or complement or shadow) and any(k in pending for k in family):
                self.alerts.silence(key)
                self.held.add(key)
                continue
            if covered or complement or shadow:
                self.alerts.silence(key)
                if shadow_rule is not None and not (covered or complement):
                    shadow_fired.append(shadow_rule)
                continue
            out.append(self._described(event, key, scored, detect, blast_level))
        return out, shadow_fired

    def _release_held(
        self, scored: ScoredWindow, firing: set[SeriesKey], every_firing: set[SeriesKey],
        pending: set[SeriesKey], paged_before: set[SeriesKey], detect: DetectConfig,
        blast_level: int,
    ) -> list[AlertEvent]:
        """Page the held series whose ancestor resolved pending; drop those now covered."""
        out = []
        for key in sorted(self.held):
            family = self._covering_keys(key, paged_before, scored, blast_level)
            if key not in firing or any(_fires_over(k, key.row, firing, every_firing)
                                        for k in family):
                self.held.discard(key)  # resolved meanwhile, or now covered: stays quiet
                continue
            if any(k in pending for k in family):
                continue
            self.held.discard(key)
            window = scored.window
            event = self.alerts.page_now(
                key, evidence_of(key, scored, detect),
                window_start_ms=window.start_ms, window_end_ms=window.end_ms,
                code=self.codes.code_at(key.col), scope=self.scopes.labels[key.row],
            )
            if event is not None:
                out.append(self._described(event, key, scored, detect, blast_level))
        return out

    def _explained_elsewhere(
        self, key: SeriesKey, firing: set[SeriesKey], counts: I64, shares: ShareScores
    ) -> bool:
        """A firing share alert on this code and direction, in a scope of another level
        that neither contains nor is contained in this one (a route for an app), carries
        more excess requests (ties: the earlier level): the levels cut the same traffic
        different ways. A strict order, so of such alerts the largest always pages."""
        row, col, direction, signal = key
        if signal != "share":
            return False
        sign = 1.0 if direction == "up" else -1.0
        excess = sign * (counts[:, col] - shares.expected(direction)[:, col])
        level = self.scopes.level_of_row
        family = set(self.scopes.ancestors(row))
        mine = (excess[row], -level[row])
        return any(
            k.col == col and k.direction == direction and k.signal == "share"
            and level[k.row] != level[row] and k.row not in family
            and row not in self.scopes.ancestors(k.row)
            and k.row < len(excess) and (excess[k.row], -level[k.row]) > mine
            for k in firing
        )

    def _covering_keys(
        self, key: SeriesKey, paged_before: set[SeriesKey], scored: ScoredWindow,
        blast_level: int,
    ) -> list[SeriesKey]:
        """Alerts that, when firing, make ``key`` their contributor rather than a page."""
        row, col, direction, signal = key
        if signal == "blast_radius":
            family = [SeriesKey(0, col, "up", "share")]
        else:
            family = [SeriesKey(a, col, direction, signal) for a in self.scopes.ancestors(row)]
            at_blast_level = self.scopes.level_of_row[row] == blast_level
            if signal == "share" and direction == "up" and at_blast_level:
                family.append(SeriesKey(0, col, "up", "blast_radius"))
        if signal != "volume":
            family += self._class_family(key, paged_before, scored.counts, scored.shares)
        return family

    def _class_family(
        self, key: SeriesKey, paged_before: set[SeriesKey], counts: I64, shares: ShareScores
    ) -> list[SeriesKey]:
        """Between a status class's series (5xx) and its codes' (500, 503) in one scope,
        the one that says most pages: a code that carries at least half of the class's
        excess requests covers the class; otherwise the class covers its codes (a rise
        spread over several codes). Whichever paged in an earlier window keeps covering
        the other, so an episode pages once."""
        row, col, direction, _ = key
        sign = 1.0 if direction == "up" else -1.0

        def excess(c: int) -> float:
            return sign * float(counts[row, c] - shares.expected(direction)[row, c])

        if self.codes.is_class(col):
            members = dict(self.codes.class_members()).get(col, np.zeros(0, np.int64))
            keys = [key._replace(col=int(m)) for m in members.tolist()]
            return [k for k in keys
                    if k in paged_before or excess(k.col) >= DOMINANT_SHARE * excess(col)]
        class_col = self.codes.class_of(col)
        if class_col < 0:
            return []
        covering = key._replace(col=class_col)
        if covering in paged_before or excess(col) < DOMINANT_SHARE * excess(class_col):
            return [covering]
        return []

    def _described(
        self, event: AlertEvent, key: SeriesKey, scored: ScoredWindow, detect: DetectConfig,
        blast_level: int,
    ) -> AlertEvent:
        """``event`` with its contributors and, for a share rise above the blast-radius
        level, its blast radius: both over the horizon the alert is judged on."""
        figures = self._figures(key, scored, detect)
        blast: dict[str, Any] = {}
        if key.signal == "share" and key.direction == "up" and blast_level >= 0:
            observed, expected, score, totals = figures
            under = self._under(key.row, len(observed)) & (
                np.asarray(self.scopes.level_of_row[: len(observed)]) == blast_level)
            odd = under & (score >= detect.blast_radius.scope_score) & (observed > expected)
            if under.any():
                blast = {**blast_count(odd, under & (totals > 0), observed, expected),
                         "level": list(self.scopes.levels[blast_level])}
        return replace(event, contributors=self.contributors(key, scored, detect, figures),
                       blast_radius=blast)

    def _under(self, row: int, n_rows: int) -> npt.NDArray[np.bool_]:
        """Rows of scopes strictly under ``row``'s scope."""
        parent = self.scopes.labels[row].items()
        return np.array([
            len(label) > len(parent) and parent <= label.items()
            for label in self.scopes.labels[:n_rows]
        ], dtype=bool)

    def _figures(
        self, key: SeriesKey, scored: ScoredWindow, detect: DetectConfig
    ) -> tuple[F64, F64, F64, I64]:
        """Per row: the key's observed and expected counts, score and requests, over the
        horizon the series is judged on (a share rise on a horizon with ``long_reference``:
        against the long reference, in every row with a count)."""
        _, col, direction, signal = key
        shares, volume = scored.shares, scored.volume
        if signal == "volume":
            score = volume.up if direction == "up" else volume.down
            return (shares.totals.astype(np.float64), volume.expected, score, shares.totals)
        view = view_of(key, scored.hits.views, scored.fired_horizon)
        horizon = next((h for h in detect.horizons if h.windows == view.windows), None)
        if signal == "share" and direction == "up" and view.windows > 1 and horizon:
            if not (horizon.long_reference and scored.reference is not None):
                # the minute: as it was judged (floored learned share, scored in full
                # where it could reach clear_score)
                v = view.shares
                return (view.counts[:, col].astype(np.float64), v.up_expected_count[:, col],
                        v.up[:, col], v.totals)
            exp = scored.expectation
            share = exp.share[:, col].copy()
            rows = np.flatnonzero(view.counts[:, col] > 0)
            if len(rows):
                share[rows] = scored.reference.up_share_at(
                    rows, np.full(len(rows), col, np.int64), fallback=share[rows])
            phi = np.maximum(exp.share_dispersion[:, col], exp.long_dispersion[:, col])
            rises = rise_over_horizon(view, col, share, phi, rows)
            return rises.observed, rises.expected, rises.score, view.shares.totals
        observed = scored.counts[:, col].astype(np.float64)
        expected = shares.expected(direction)[:, col]
        score = (shares.up if direction == "up" else shares.down)[:, col]
        return observed, expected, score, shares.totals

    def contributors(
        self, key: SeriesKey, scored: ScoredWindow, detect: DetectConfig,
        figures: tuple[F64, F64, F64, I64] | None = None,
    ) -> list[dict[str, Any]]:
        """Top descendant scopes by excess count, per scope level (``figures``: those of
        ``_figures``, the horizon the alert is judged on)."""
        row, col, direction, signal = key
        sign = 1.0 if direction == "up" else -1.0
        observed, expected, score, totals = figures or self._figures(key, scored, detect)
        excess = sign * (observed - expected)
        candidates = np.flatnonzero((score >= detect.clear_score) & (excess > 0))
        if signal == "blast_radius":
            candidates = np.asarray(scored.hits.blast.rows.get(col, []), np.int64)
        parent = self.scopes.labels[row].items()
        by_level: dict[int, list[tuple[float, int]]] = {}
        for r in candidates.tolist():
            label = self.scopes.labels[r]
            if r != row and len(label) > len(parent) and parent <= label.items():
                level = self.scopes.level_of_row[r]
                by_level.setdefault(level, []).append((float(excess[r]), r))
        out: list[dict[str, Any]] = []
        for level in sorted(by_level):
            for exc, r in sorted(by_level[level], reverse=True)[:CONTRIBUTORS_PER_LEVEL]:
                entry: dict[str, Any] = {
                    "scope": self.scopes.labels[r],
                    "observed": {"count": int(observed[r])},
                    "expected": {"count": round(float(expected[r]), 3)},
                    "excess": round(exc, 3),
                    "score": round(float(score[r]), 3),
                }
                if signal != "volume":
                    entry["observed"]["share"] = round(float(observed[r] / max(totals[r], 1)), 6)
                out.append(entry)
        return out

    def with_descendants(self, keys: set[SeriesKey]) -> set[SeriesKey]:
        """``keys`` plus the live series they cover: same code and direction below them."""
        out = set(keys)
        for key in self.alerts.live_keys() - keys:
            for k in keys:
                same = k.col == key.col and k.direction == key.direction
                below = key.signal == k.signal and k.row in self.scopes.ancestors(key.row)
                blast = key.signal == "blast_radius" and k.signal == "share" and k.row == 0
                if same and (below or blast):
                    out.add(key)
                    break
        return out
