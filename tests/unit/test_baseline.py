"""Baseline against plain reference computations."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from statuswatch.core.baseline import DAY_MS, Baseline, fading_factor

W = 10_000
NO_PARENTS = np.array([-1, -1])


def debiased_ewmean(xs, alpha):
    """EW mean started at 0, divided by its bias 1 - (1 - alpha)^n (as in Adam)."""
    mean = 0.0
    for x in xs:
        mean += alpha * (x - mean)
    return mean / (1 - (1 - alpha) ** len(xs))


def plain_ewmean(xs, alpha):
    mean = None
    for x in xs:
        mean = x if mean is None else mean + alpha * (x - mean)
    return mean


def expect(b: Baseline, rows: int, cols: int, t: int = 0, parents=None):
    parents = np.full(rows, -1) if parents is None else parents
    return b.expect(rows, cols, window_start_ms=t, window_ms=W, parents=parents)


@given(st.lists(st.tuples(st.integers(1, 500), st.integers(0, 500)), min_size=1, max_size=40))
@settings(max_examples=100, deadline=None)
def test_share_and_volume_follow_plain_ewmean_on_every_prefix(windows):
    b = Baseline(share_half_life=5, volume_half_life=3, warmup_windows=0)
    for i, (ok, err) in enumerate(windows, 1):
        b.learn(np.array([[ok, err]]), window_start_ms=i * W)
        prefix = windows[:i]
        shares = [e / (o + e) for o, e in prefix]
        e = expect(b, 1, 2)
        if any(err for _, err in prefix):
            assert np.isclose(e.share[0, 1], debiased_ewmean(shares, fading_factor(5)))
            oks = [o / (o + err) for o, err in prefix]
            assert np.isclose(e.share[0, 0], debiased_ewmean(oks, fading_factor(5)))
        vol = plain_ewmean([o + e for o, e in prefix], fading_factor(3))
        assert np.isclose(e.volume[0], vol)


def test_dispersion_is_one_for_binomial_noise_and_larger_for_bursty_series():
    rng = np.random.default_rng(0)
    calm = Baseline(share_half_life=50, volume_half_life=10, warmup_windows=0)
    bursty = Baseline(share_half_life=50, volume_half_life=10, warmup_windows=0)
    for i in range(600):
        n = 1000
        x = rng.binomial(n, 0.05)
        calm.learn(np.array([[n - x, x]]), window_start_ms=i * W)
        p = rng.beta(2, 38)  # same mean share, but varying from window to window
        y = rng.binomial(n, p)
        bursty.learn(np.array([[n - y, y]]), window_start_ms=i * W)
    assert 1.0 <= expect(calm, 1, 2).share_dispersion[0, 1] < 1.6
    assert expect(bursty, 1, 2).share_dispersion[0, 1] > 5


def test_frozen_series_do_not_learn():
    b = Baseline(share_half_life=2, volume_half_life=2, warmup_windows=0)
    b.learn(np.array([[99, 1]]), window_start_ms=0)
    before = expect(b, 1, 2)
    for i in range(10):
        b.learn(np.array([[5, 5]]), window_start_ms=i * W,
                frozen_share=np.array([[False, True]]), frozen_volume=np.array([True]))
    after = expect(b, 1, 2)
    assert np.isclose(after.share[0, 1], before.share[0, 1])
    assert not np.isclose(after.share[0, 0], before.share[0, 0])
    assert after.volume[0] == before.volume[0]


def test_silent_windows_teach_the_volume_but_not_the_shares():
    b = Baseline(share_half_life=5, volume_half_life=1, warmup_windows=0)
    b.learn(np.array([[90, 10]]), window_start_ms=0)
    b.learn(np.array([[0, 0]]), window_start_ms=W)
    e = expect(b, 1, 2)
    assert e.volume[0] == 50.0
    assert np.allclose(e.share[0], [0.9, 0.1])
    assert e.windows_seen[0] == 1


def test_cold_scope_starts_from_its_parent_share():
    b = Baseline(share_half_life=5, volume_half_life=5, warmup_windows=10)
    for i in range(20):
        b.learn(np.array([[95, 5], [0, 0]]), window_start_ms=i * W)
    b.learn(np.array([[95, 5], [1, 0]]), window_start_ms=20 * W)  # child: one request
    e = expect(b, 2, 2, parents=np.array([-1, 0]))
    assert e.warm.tolist() == [True, False]
    # 1/10 of its own history (100 % code 0) and 9/10 of its parent's shares
    assert np.allclose(e.share[1], 0.1 * np.array([1.0, 0.0]) + 0.9 * e.share[0])


def test_volume_follows_the_learned_daily_profile_after_a_day():
    b = Baseline(share_half_life=50, volume_half_life=30, warmup_windows=0)
    profile = lambda t: 100 + 80 * np.sin(2 * np.pi * t / DAY_MS)  # noqa: E731
    t = 2 * DAY_MS + DAY_MS // 8  # on the steep rising flank
    for i in range(t // W):
        b.learn(np.array([[round(profile(i * W))]]), window_start_ms=i * W)
    plain = plain_ewmean([profile(t - j * W) for j in range(300, -1, -1)], fading_factor(30))
    seasonal = expect(b, 1, 1, t=t).volume[0]
    assert abs(seasonal - profile(t)) < abs(plain - profile(t))


def test_snapshot_is_plain_json_and_restores_expectations():
    b = Baseline(share_half_life=10, volume_half_life=5, warmup_windows=0)
    for i in range(40):
        b.learn(np.array([[90 + i, 10], [5, 0]]), window_start_ms=i * W)
    state = json.loads(json.dumps(b.snapshot()))
    c = Baseline(share_half_life=10, volume_half_life=5, warmup_windows=0)
    c.restore(state)
    for name in ("share", "share_dispersion", "volume", "volume_dispersion", "windows_seen"):
        assert np.allclose(getattr(expect(c, 2, 2), name), getattr(expect(b, 2, 2), name)), name
    b.learn(np.array([[50, 50], [5, 0]]), window_start_ms=41 * W)
    c.learn(np.array([[50, 50], [5, 0]]), window_start_ms=41 * W)
    assert np.allclose(expect(c, 2, 2).share, expect(b, 2, 2).share)
