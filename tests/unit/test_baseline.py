"""Baseline against plain reference computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statuswatch.core.baseline import (
    DAY_MS,
    MAX_DISPERSION,
    MIN_EXPECTED_FOR_DISPERSION,
    Baseline,
    fading_factor,
)

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


class RiverShareReference:
    """The share model with one ``river.stats.EWMean`` per (row, col) series, written
    record by record: the oracle for the vectorised ``DenseEWMean`` matrices."""

    def __init__(self, half_life: float, dispersion_half_life: float) -> None:
        from river import stats

        self.new = lambda hl: stats.EWMean(fading_factor=fading_factor(hl))
        self.hl, self.dhl = half_life, dispersion_half_life
        self.alpha = fading_factor(half_life)
        self.mean: dict[tuple[int, int], object] = {}
        self.disp: dict[tuple[int, int], object] = {}
        self.known: dict[int, set[int]] = {}
        self.seen: dict[int, int] = {}

    def share(self, r: int, c: int, seen: int) -> float:
        m = self.mean.get((r, c))
        raw = m.get() if m is not None else 0.0
        return raw / (1 - (1 - self.alpha) ** max(seen, 1))

    def learn(self, counts: np.ndarray, frozen: np.ndarray) -> None:
        for r, row in enumerate(counts):
            total = int(row.sum())
            if total == 0:
                continue
            self.seen[r] = self.seen.get(r, 0) + 1
            known = self.known.setdefault(r, set())
            known.update(np.flatnonzero(row).tolist())
            for c in sorted(known):
                p = self.share(r, c, self.seen[r] - 1)
                if frozen[r, c]:
                    if (r, c) in self.mean:
                        self.mean[r, c].update(p)
                    continue
                if (r, c) not in self.mean:
                    self.mean[r, c] = self.new(self.hl)
                    self.mean[r, c].update(0.0)
                expected = total * p
                if expected >= MIN_EXPECTED_FOR_DISPERSION and p < 1.0:
                    resid2 = (row[c] - expected) ** 2 / (expected * (1 - p))
                    self.disp.setdefault((r, c), self.new(self.dhl)).update(
                        min(resid2, MAX_DISPERSION * 4)
                    )
                self.mean[r, c].update(row[c] / total)

    def phi(self, r: int, c: int) -> float:
        d = self.disp.get((r, c))
        return 1.0 if d is None else float(np.clip(d.get(), 1.0, MAX_DISPERSION))


@given(
    st.lists(
        st.tuples(
            st.lists(st.integers(0, 60), min_size=6, max_size=6),
            st.lists(st.booleans(), min_size=6, max_size=6),
        ),
        min_size=1,
        max_size=60,
    )
)
@settings(max_examples=60, deadline=None)
def test_vectorised_shares_equal_one_river_ewmean_per_series(windows):
    """Oracle: the dense share and dispersion matrices equal a River EWMean per series,
    frozen series and codes appearing late included."""
    b = Baseline(share_half_life=4, volume_half_life=3, warmup_windows=0, dispersion_half_life=5)
    ref = RiverShareReference(4, 5)
    for i, (flat, frozen_flat) in enumerate(windows):
        counts = np.array(flat, dtype=np.int64).reshape(2, 3)
        frozen = np.array(frozen_flat).reshape(2, 3)
        b.learn(counts, window_start_ms=i * W, frozen_share=frozen)
        ref.learn(counts, frozen)
    e = expect(b, 2, 3)
    for r in range(2):
        for c in range(3):
            want = ref.share(r, c, ref.seen.get(r, 0))
            # Shares bit for bit: the threshold of dispersion learning (5 expected
            # events) decides alike; phi, a smooth function of them, to rounding.
            assert e.share[r, c] == want
            assert e.share_dispersion[r, c] == pytest.approx(ref.phi(r, c), rel=1e-9)


def test_new_codes_widen_the_matrices_without_growing_their_rows():
    b = Baseline(share_half_life=5, volume_half_life=3, warmup_windows=0)
    for codes in range(1, 31):  # one more status code each window, 1,000 scopes
        b.learn(np.ones((1000, codes), np.int64), window_start_ms=codes * W)
    assert b._share.mean.shape == (1000, 30)
    assert b._known.shape == (1000, 30)


@given(
    windows=st.lists(
        st.lists(st.integers(0, 300), min_size=4, max_size=4), min_size=1, max_size=60
    ),
    silent_runs=st.lists(st.integers(0, 400), min_size=1, max_size=3),
    frozen=st.lists(st.booleans(), min_size=4, max_size=4),
)
@settings(max_examples=60, deadline=None)
def test_vectorised_volume_is_river_bit_for_bit(windows, silent_runs, frozen):
    """The volume learner on arrays (``RiverVector``, and ``learn_silent`` for runs of
    silent windows) against one ``river.stats.EWMean`` per scope (``reference=True``)
    taught every silent window with a full ``learn``: the same floats, not merely close."""
    params = {"share_half_life": 5, "volume_half_life": 3, "warmup_windows": 2,
              "dispersion_half_life": 7}
    fast, river = Baseline(**params), Baseline(**params, reference=True)
    t = 0
    for run in silent_runs:
        for totals in windows:
            t += W
            counts = np.array([[v, v // 3] for v in totals])
            kwargs = {"window_start_ms": t, "frozen_volume": np.array(frozen) & (t % 3 == 0)}
            fast.learn(counts, **kwargs)
            river.learn(counts, **kwargs)
        starts = [t + (i + 1) * W for i in range(run)]
        t += run * W
        fast.learn_silent(4, 2, window_starts_ms=starts)
        for start in starts:
            river.learn(np.zeros((4, 2), np.int64), window_start_ms=start)
        a, b = expect(fast, 4, 2, t=t + W), expect(river, 4, 2, t=t + W)
        assert a.volume.tobytes() == b.volume.tobytes()
        assert a.volume_dispersion.tobytes() == b.volume_dispersion.tobytes()
    state = fast.snapshot(), river.snapshot()
    for key in ("volume", "volume_dispersion"):
        assert sorted(state[0][key]) == sorted(state[1][key])
    for key in ("daily", "weekly"):
        assert json.dumps(state[0][key]) == json.dumps(state[1][key])


def test_river_vector_is_rivers_ewmean():
    from river import stats

    from statuswatch.core.ewmean import RiverVector

    rng = np.random.default_rng(4)
    alpha = fading_factor(30)
    vector = RiverVector(alpha)
    vector.fit(3)
    models = [stats.EWMean(fading_factor=alpha) for _ in range(3)]
    for _ in range(500):
        rows = np.flatnonzero(rng.random(3) < 0.7)
        values = rng.choice([0.0, 1.0, 57.0, 1234.5], size=len(rows))
        vector.update(rows, values)
        for r, v in zip(rows.tolist(), values.tolist(), strict=True):
            models[r].update(v)
    assert vector.mean.tolist() == [m.get() for m in models]


@given(
    values=st.lists(st.floats(0.0, 1e7, width=32), min_size=1, max_size=40),
    alpha=st.sampled_from([fading_factor(3 * 360), fading_factor(30), 0.5]),
    steps=st.integers(1, 500),
)
@settings(max_examples=80, deadline=None)
def test_a_silent_hour_decays_the_profile_as_learning_each_zero_does(values, alpha, steps):
    """``_decay_silent`` (a Python float loop for a few rows, two ufunc calls a step for
    more) against ``Seasonal.learn``'s arithmetic for a 0, step by step: same float32
    bits."""
    from statuswatch.core.seasonal import _decay_silent

    fast = np.array(values, np.float32)
    slow = fast.copy()
    for _ in range(steps):
        slow = (slow + alpha * (np.zeros(len(slow)) - slow)).astype(np.float32)
    _decay_silent(fast, alpha, steps)
    assert fast.tobytes() == slow.tobytes()
