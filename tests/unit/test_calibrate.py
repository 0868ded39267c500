"""ScoreCalibrator against a plain-Python reference, its JSON round trip and invariants."""

from __future__ import annotations

import json
import math
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statuswatch.core.calibrate import ScoreCalibrator, upper_tail_score


class Reference:
    """One series at a time, with lists and the math module."""

    def __init__(self, k: int, half_life: float, warmup: int, min_std: float,
                 freeze_score: float, max_score: float) -> None:
        self.k, self.warmup, self.min_std = k, warmup, min_std
        self.freeze_score, self.max_score = freeze_score, max_score
        self.alpha = 1.0 - 0.5 ** (1.0 / half_life)
        self.recent: dict[int, deque[float]] = {}
        self.stats: dict[int, list[float]] = {}  # row -> [n learned, mean, var]

    def update(self, row: int, x: float, frozen: bool) -> float:
        recent = self.recent.setdefault(row, deque(maxlen=self.k))
        n, mean, var = self.stats.setdefault(row, [0, 0.0, 0.0])
        recent.append(x)
        avg = sum(recent) / len(recent)
        sd = max(math.sqrt(var), self.min_std)
        z = (avg - mean) / sd
        tail = 0.5 * math.erfc(z / math.sqrt(2.0))
        score = -math.log10(tail) if tail > 0 else math.inf
        score = min(max(score, 0.0), self.max_score) if n >= max(self.warmup, 1) else 0.0
        if not frozen and not (self.freeze_score > 0 and score >= self.freeze_score):
            w = max(self.alpha, 1.0 / (n + 1))
            # Two-pass definition of the weighted update (not West's incremental form).
            new_mean = (1 - w) * mean + w * avg
            new_var = (1 - w) * (var + w * (avg - mean) ** 2)
            self.stats[row] = [n + 1, new_mean, new_var]
        return score


windows = st.lists(
    st.tuples(
        st.lists(st.floats(0.0, 30.0), min_size=1, max_size=4),  # raw scores, rows 0..
        st.lists(st.booleans(), min_size=4, max_size=4),  # active
        st.lists(st.booleans(), min_size=4, max_size=4),  # frozen
    ),
    min_size=1, max_size=60,
)


@given(
    windows,
    st.integers(1, 5),
    st.floats(1.0, 500.0),
    st.integers(0, 10),
    st.floats(0.05, 2.0),
    st.sampled_from([0.0, 3.0]),
)
@settings(max_examples=200, deadline=None)
def test_matches_plain_python_reference(seq, k, half_life, warmup, min_std, freeze_score):
    cal = ScoreCalibrator(short_window=k, long_half_life=half_life, warmup=warmup,
                          min_std=min_std, freeze_score=freeze_score)
    ref = Reference(k, half_life, warmup, min_std, freeze_score, cal.max_score)
    for raw, active, frozen in seq:
        n = len(raw)
        got = cal.update(np.array(raw), frozen=np.array(frozen[:n]), active=np.array(active[:n]))
        assert got.shape == (n,)
        for row in range(n):
            if not active[row]:
                assert got[row] == 0.0
                continue
            want = ref.update(row, raw[row], frozen[row])
            if want < 250:
                assert got[row] == pytest.approx(want, rel=1e-7, abs=1e-7)
            else:  # the reference's erfc underflows first
                assert got[row] >= 249


def test_upper_tail_score_matches_erfc():
    z = np.linspace(-5.0, 30.0, 71)
    want = [-math.log10(0.5 * math.erfc(v / math.sqrt(2.0))) for v in z]
    assert upper_tail_score(z) == pytest.approx(want, rel=1e-9, abs=1e-12)


@given(windows, windows, st.integers(1, 4))
@settings(max_examples=100, deadline=None)
def test_snapshot_restore_round_trip(first, second, k):
    a = ScoreCalibrator(short_window=k, long_half_life=50.0, warmup=3, min_std=0.2)
    for raw, active, frozen in first:
        a.update(np.array(raw), frozen=np.array(frozen[: len(raw)]),
                 active=np.array(active[: len(raw)]))
    state = json.loads(json.dumps(a.snapshot()))
    b = ScoreCalibrator(short_window=k, long_half_life=50.0, warmup=3, min_std=0.2)
    b.restore(state)
    assert b.snapshot() == a.snapshot()
    for raw, active, frozen in second:
        args = {"frozen": np.array(frozen[: len(raw)]), "active": np.array(active[: len(raw)])}
        assert a.update(np.array(raw), **args).tolist() == b.update(np.array(raw), **args).tolist()
    assert b.snapshot() == a.snapshot()


def test_restore_with_another_short_window_keeps_the_long_run_stats():
    a = ScoreCalibrator(short_window=3, long_half_life=50.0, warmup=0)
    for x in (1.0, 2.0, 3.0, 4.0):
        a.update(np.array([x]))
    b = ScoreCalibrator(short_window=5, long_half_life=50.0, warmup=0)
    b.restore(a.snapshot())
    state = b.snapshot()
    assert state["mean"] == a.snapshot()["mean"] and state["var"] == a.snapshot()["var"]
    assert state["pushed"] == [0] and state["recent"] == [[0.0] * 5]


@given(
    st.lists(st.floats(0.0, 50.0), min_size=0, max_size=80),
    st.floats(0.0, 400.0),
    st.floats(0.0, 400.0),
    st.integers(1, 6),
)
@settings(max_examples=300, deadline=None)
def test_output_bounded_and_monotone_in_the_score_for_a_fixed_state(history, x1, x2, k):
    cal = ScoreCalibrator(short_window=k, long_half_life=30.0, warmup=5, min_std=0.1)
    for x in history:
        out = cal.update(np.array([x, 1.0]))
        assert np.all((out >= 0.0) & (out <= cal.max_score))
    state = cal.snapshot()
    lo, hi = sorted((x1, x2))
    twin = ScoreCalibrator(short_window=k, long_half_life=30.0, warmup=5, min_std=0.1)
    twin.restore(state)
    out_lo = cal.update(np.array([lo, 1.0]))
    out_hi = twin.update(np.array([hi, 1.0]))
    assert 0.0 <= out_lo[0] <= out_hi[0] <= cal.max_score
    assert out_lo[1] == out_hi[1]  # rows are independent
    if len(history) < 5:
        assert out_lo[0] == 0.0 == out_hi[0]  # still warming up


def test_a_noisy_series_needs_more_than_a_quiet_one():
    rng = np.random.default_rng(1)
    cal = ScoreCalibrator(short_window=1, long_half_life=1000.0, warmup=100, min_std=0.1)
    for _ in range(500):
        cal.update(np.array([abs(rng.normal(0.3, 0.2)), rng.exponential(4.0)]))
    out = cal.update(np.array([8.0, 8.0]))
    assert out[0] > 30 and out[1] < 3


def test_frozen_and_inactive_rows_are_not_learned_and_rows_may_grow():
    cal = ScoreCalibrator(short_window=1, long_half_life=10.0, warmup=0)
    cal.update(np.array([1.0]))
    before = cal.snapshot()
    cal.update(np.array([50.0, 2.0]), frozen=np.array([True, False]))
    after = cal.snapshot()
    assert after["mean"][0] == before["mean"][0] and after["learned"][0] == 1
    assert after["learned"][1] == 1
    out = cal.update(np.array([7.0, 7.0]), active=np.array([False, True]))
    assert out[0] == 0.0 and cal.snapshot()["pushed"][0] == 2


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError):
        ScoreCalibrator(short_window=0)
    with pytest.raises(ValueError):
        ScoreCalibrator(min_std=0.0)
