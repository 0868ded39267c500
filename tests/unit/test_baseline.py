"""Baseline against a plain exponentially weighted mean."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from statuswatch.core.baseline import ShareBaseline, fading_factor


def plain_ewmean(xs, alpha):
    mean = None
    for x in xs:
        mean = x if mean is None else mean + alpha * (x - mean)
    return mean


@given(st.lists(st.tuples(st.integers(1, 500), st.integers(0, 500)), min_size=1, max_size=40))
@settings(max_examples=100, deadline=None)
def test_share_and_volume_follow_plain_ewmean_on_every_prefix(windows):
    b = ShareBaseline(half_life_windows=5, warmup_windows=0)
    alpha = fading_factor(5)
    for i, (ok, err) in enumerate(windows, 1):
        b.learn(np.array([[ok, err]]))
        prefix = windows[:i]
        shares = [e / (o + e) for o, e in prefix]
        # The error code's series starts at its first appearance, from a zero share.
        first = next((j for j, (_, e) in enumerate(prefix) if e), None)
        if first is not None:
            series = ([0.0] if first > 0 else []) + shares[first:]
            assert np.isclose(b.expected_share(1, 2)[0, 1], plain_ewmean(series, alpha))
        vol = plain_ewmean([o + e for o, e in prefix], alpha)
        assert np.isclose(b.expected_volume(1)[0], vol)


def test_frozen_series_do_not_learn():
    b = ShareBaseline(half_life_windows=2, warmup_windows=0)
    b.learn(np.array([[99, 1]]))
    before = b.expected_share(1, 2).copy()
    frozen = np.array([[False, True]])
    for _ in range(10):
        b.learn(np.array([[50, 50]]), frozen)
    assert b.expected_share(1, 2)[0, 1] == before[0, 1]
    assert b.expected_share(1, 2)[0, 0] != before[0, 0]


def test_warmup_counts_windows_with_traffic():
    b = ShareBaseline(half_life_windows=10, warmup_windows=3)
    for counts in ([[5]], [[0]], [[5]], [[5]]):
        b.learn(np.array(counts))
    assert b.windows_seen(1).tolist() == [3]
    assert b.warm(1).tolist() == [True]


def test_snapshot_is_plain_json_and_restores_expectations():
    b = ShareBaseline(half_life_windows=10, warmup_windows=0)
    for i in range(5):
        b.learn(np.array([[90 + i, 10], [5, 0]]))
    state = json.loads(json.dumps(b.snapshot()))
    c = ShareBaseline(half_life_windows=10, warmup_windows=0)
    c.restore(state)
    assert np.allclose(c.expected_share(2, 2), b.expected_share(2, 2))
    assert np.allclose(c.expected_volume(2), b.expected_volume(2))
    b.learn(np.array([[50, 50], [5, 0]]))
    c.learn(np.array([[50, 50], [5, 0]]))
    assert np.allclose(c.expected_share(2, 2), b.expected_share(2, 2))
