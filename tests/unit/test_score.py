"""Scores against scipy.stats.binom as the plain reference."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from statuswatch.core.score import MAX_SCORE, score_shares, share_floor


@given(
    st.integers(1, 5000).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n), st.floats(1e-6, 1 - 1e-6))
    )
)
@settings(max_examples=300, deadline=None)
def test_tails_match_scipy_binom(case):
    n, x, p = case
    counts = np.array([[x, n - x]])
    s = score_shares(counts, np.array([[p, 1 - p]]))
    ref_up = -stats.binom.logsf(x - 1, n, p) / np.log(10)
    ref_down = -stats.binom.logcdf(x, n, p) / np.log(10)
    for got, raw in ((s.up[0, 0], ref_up), (s.down[0, 0], ref_down)):
        ref = min(max(raw, 0.0), MAX_SCORE)
        if ref < 250:  # beyond that float tails underflow: both are "certain"
            assert abs(got - ref) <= 1e-6 * max(1.0, ref) + 1e-9


def test_rare_code_tripling_is_not_significant_but_a_jump_is():
    # One 403 expected per window of 1000; three is ordinary for a Poisson count.
    quiet = score_shares(np.array([[3, 997]]), np.array([[0.001, 0.999]]))
    assert quiet.up[0, 0] < 2
    # 0.2 % -> 30 %: overwhelming.
    loud = score_shares(np.array([[300, 700]]), np.array([[0.002, 0.998]]))
    assert loud.up[0, 0] > 100
    assert loud.down[0, 1] > 100


def test_zero_total_rows_score_zero():
    s = score_shares(np.array([[0, 0]]), np.array([[0.5, 0.5]]))
    assert s.up.tolist() == [[0.0, 0.0]] and s.down.tolist() == [[0.0, 0.0]]


def test_floor_gives_unseen_codes_a_small_positive_share():
    floor = share_floor(np.array([1000.0]), np.array([100]), half_life=90)
    assert 0 < floor[0] < 1e-4
    s = score_shares(np.array([[1, 999]]), np.array([[0.0, 1.0]]), floor)
    assert 0 < s.up[0, 0] < 2  # one new request is weak evidence
