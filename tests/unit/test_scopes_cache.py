"""ScopeTable's interning caches: bounded, and rows stay right when they start afresh."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from statuswatch.core.scopes import ScopeTable

LEVELS = [[], ["service"], ["service", "route"], ["app"]]


def dims(service, route, app):
    return {"service": list(service), "route": list(route), "app": list(app)}


def test_interning_caches_start_afresh_when_full_and_rows_stay_right(monkeypatch):
    import statuswatch.core.scope_lookup as scope_lookup_module

    monkeypatch.setattr(scope_lookup_module, "INTERN_LIMIT", 8)
    t = ScopeTable(LEVELS, max_per_level=1000)
    oracle = ScopeTable(LEVELS, max_per_level=1000)
    for start in range(0, 60, 6):
        n = 9  # more distinct values in one batch than the limit, some seen before
        service = [f"s{(start + i) % 13}" for i in range(n)]
        route = [f"r{(start * 7 + i) % 11}" for i in range(n)]
        app = [f"a{start + i}" if i % 4 else "" for i in range(n)]
        got = t.rows(dims(service, route, app))
        # the oracle sees one record at a time, so its caches never fill
        want = np.concatenate(
            [oracle.rows(dims([s], [r], [a])) for s, r, a in zip(service, route, app, strict=True)],
            axis=1,
        )
        labels = lambda table, rows: [  # noqa: E731
            [table.labels[r] if r >= 0 else None for r in level] for level in rows.tolist()
        ]
        assert labels(t, got) == labels(oracle, want)


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(
        st.lists(
            st.tuples(st.integers(0, 5), st.integers(0, 4), st.integers(0, 12)),
            min_size=1, max_size=40,
        ),
        min_size=2, max_size=12,
    ),
    alpha=st.sampled_from([0.3, 1.0]),
)
def test_rows_after_swaps_match_caches_started_afresh(batches, alpha):
    """Swaps drop only the swapped scopes' cached rows; the rows are those a table
    that starts its caches afresh after every swap resolves. Each row's parent is
    its closest ancestor through every swap."""
    t = ScopeTable(LEVELS, max_per_level=3)
    oracle = ScopeTable(LEVELS, max_per_level=3)
    for batch in batches:
        service = [f"s{s}" for s, _, _ in batch]
        route = [f"r{r}" if r else "" for _, r, _ in batch]
        app = [f"a{a}" if a else "" for _, _, a in batch]
        got = t.rows(dims(service, route, app))
        want = oracle.rows(dims(service, route, app))
        assert got.tolist() == want.tolist()
        assert t.labels == oracle.labels and t.folded == oracle.folded
        swaps = t.rebalance(alpha, set())
        assert [(s.row, s.new) for s in swaps] == [
            (s.row, s.new) for s in oracle.rebalance(alpha, set())
        ]
        if swaps:
            oracle._lookup.reset()
        assert t.parents().tolist() == [
            (t.ancestors(r) or [-1])[-1] for r in range(len(t.labels))
        ]
