"""Scores against scipy.stats.binom as the plain reference."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import statuswatch.core.score as score_module
from statuswatch.core.score import (
    MAX_SCORE,
    MEAN_SIDE_SCORE,
    binomial_tails,
    lower_tail_may_reach,
    score_shares,
    score_volume,
    share_floor,
    upper_tail_may_reach,
)


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


@given(
    st.lists(
        st.tuples(st.floats(0, 1e6), st.floats(0, 1), st.floats(1e-12, 1 - 1e-12)),
        min_size=1, max_size=50,
    ),
    st.floats(0.5, 30),
)
@settings(max_examples=300, deadline=None)
def test_the_screen_only_rules_out_tails_below_its_threshold(cells, below):
    """A tail the screen rules out scores under ``below`` (exactly computed); screened
    scoring equals exhaustive scoring wherever either reaches ``below``."""
    n = np.array([c[0] for c in cells])
    x = np.floor(n * np.array([c[1] for c in cells]))  # counts/phi are reals; integers too
    p = np.array([c[2] for c in cells])
    up, down = binomial_tails(x, n, p)
    with np.errstate(divide="ignore"):
        up_score, down_score = -np.log10(up), -np.log10(down)
    assert (up_score[~upper_tail_may_reach(x, n, p, below)] < below).all()
    assert (down_score[~lower_tail_may_reach(x, n, p, below)] < below).all()
    counts = np.stack([x, n - x], axis=1).astype(np.int64)
    expected = np.stack([p, 1 - p], axis=1)
    exact, screened = score_shares(counts, expected), score_shares(counts, expected, below=below)
    for a, b in ((exact.up, screened.up), (exact.down, screened.down)):
        matters = (a >= below) | (b >= below)
        assert np.array_equal(a[matters], b[matters])
        rest_a, rest_b = a[~matters], b[~matters]
        assert ((rest_b == 0) | (rest_b == rest_a)).all()  # screened out, or computed


@given(
    st.lists(
        st.tuples(st.floats(1e-3, 1e5), st.floats(0, 1), st.floats(1e-12, 1 - 1e-12)),
        min_size=1, max_size=50,
    ),
    st.floats(0.5, 30),
)
@settings(max_examples=300, deadline=None)
def test_the_screen_holds_for_dispersion_scaled_counts(cells, below):
    """Counts and totals divided by a dispersion are reals: a drop's tail is still no
    smaller than at no count, (1-p)^n, so the closed form rules cells out there too."""
    n = np.array([c[0] for c in cells])
    x = n * np.array([c[1] for c in cells])
    p = np.array([c[2] for c in cells])
    up, down = binomial_tails(x, n, p)
    assert (down >= (1 - p) ** n * (1 - 1e-9)).all()
    with np.errstate(divide="ignore"):
        up_score, down_score = -np.log10(up), -np.log10(down)
    assert (up_score[~upper_tail_may_reach(x, n, p, below)] < below).all()
    assert (down_score[~lower_tail_may_reach(x, n, p, below)] < below).all()


@given(st.floats(1.0, 1e6), st.floats(1e-9, 1 - 1e-9), st.floats(0.0, 1.0))
@settings(max_examples=500, deadline=None)
def test_a_count_on_its_means_side_scores_at_most_log10_e(n, p, fraction):
    """What the screen skips without a bound: a count (real, as dispersion makes it)
    at or below the mean of its rise's Beta, x <= (n + 1) p, with x >= 1; or at or above
    its drop's, n - x <= (n + 1)(1 - p), with n - x >= 1. Exact tails, every share."""
    up_x = min(max(fraction * (n + 1) * p, 1.0), n)
    down_missing = min(max(fraction * (n + 1) * (1 - p), 1.0), n)
    up, _ = binomial_tails(np.array([up_x]), np.array([n]), np.array([p]))
    _, down = binomial_tails(np.array([n - down_missing]), np.array([n]), np.array([p]))
    # the screen skips such a count, but at the mean itself, where rounding may keep it
    inside = fraction < 1 - 1e-9
    if up_x <= (n + 1) * p:
        assert -np.log10(up[0]) <= MEAN_SIDE_SCORE + 1e-9
        assert not (inside and upper_tail_may_reach(
            np.array([up_x]), np.array([n]), np.array([p]), MEAN_SIDE_SCORE + 0.01)[0])
    if down_missing <= (n + 1) * (1 - p):
        assert -np.log10(down[0]) <= MEAN_SIDE_SCORE + 1e-9
        assert not (inside and lower_tail_may_reach(
            np.array([n - down_missing]), np.array([n]), np.array([p]),
            MEAN_SIDE_SCORE + 0.01)[0])


def test_the_screen_leaves_few_cells_on_ordinary_traffic():
    rng = np.random.default_rng(3)
    share = rng.dirichlet(np.full(16, 0.5), size=500)
    counts = np.stack([rng.multinomial(n, s) for n, s in zip(rng.poisson(50, 500), share,
                                                             strict=True)])
    n = counts.sum(axis=1, keepdims=True).astype(np.float64)
    may = upper_tail_may_reach(counts.astype(np.float64), n, share, 3.0)
    may |= lower_tail_may_reach(counts.astype(np.float64), n, share, 3.0)
    assert may.sum() < 0.05 * may.size  # null traffic: few cells need the exact tail


@given(
    st.lists(
        st.tuples(st.integers(0, 5_000), st.floats(0, 5_000), st.floats(1, 50), st.booleans()),
        min_size=1, max_size=40,
    ),
    st.floats(0.5, 30),
)
@settings(max_examples=300, deadline=None)
def test_screened_volume_scores_are_exact_wherever_they_may_reach_the_threshold(rows, below):
    """A drop left out scores under ``below`` (P(X <= k) is at least e^-lam); rises are
    scored on ``up_rows`` only; every score computed equals the unscreened one."""
    totals = np.array([r[0] for r in rows])
    expected, phi = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    up_rows = np.array([r[3] for r in rows])
    exact = score_volume(totals, expected, phi)
    screened = score_volume(totals, expected, phi, below=below, up_rows=up_rows)
    assert np.array_equal(screened.up[up_rows], exact.up[up_rows])
    assert (screened.up[~up_rows] == 0).all()
    reached = exact.down >= below
    assert np.array_equal(screened.down[reached], exact.down[reached])
    assert ((screened.down == exact.down) | (screened.down == 0)).all()


@given(
    st.integers(1, 12).flatmap(lambda n_rows: st.tuples(
        st.lists(st.lists(st.integers(0, 40), min_size=4, max_size=4),
                 min_size=n_rows, max_size=n_rows),
        st.lists(st.booleans(), min_size=n_rows, max_size=n_rows),
        st.lists(st.booleans(), min_size=n_rows * 4, max_size=n_rows * 4),
    )),
    st.sampled_from([None, 1.0, 3.0]),
    st.floats(0.0, 1.0),
)
@settings(max_examples=300, deadline=None)
def test_scoring_some_rows_equals_those_rows_of_scoring_every_row(case, below, row_share):
    """``rows`` and screening cut the work to some rows, gathered or not (the choice
    depends on their share): either way those rows carry exactly the scores of the
    whole matrix, and every other row reads 0."""
    counts_list, rows_list, exact_list = case
    counts = np.array(counts_list, np.int64)
    n_rows = len(counts)
    rng = np.random.default_rng(len(counts_list) + sum(map(sum, counts_list)))
    share = rng.dirichlet(np.ones(4), size=n_rows)
    floor = rng.uniform(0, 0.2, n_rows)
    dispersion = rng.uniform(1, 3, (n_rows, 4))
    rows = np.array(rows_list)
    exact = np.array(exact_list).reshape(n_rows, 4) & (below is not None)
    whole = score_shares(counts, share, floor, dispersion, below=None)
    old = score_module.SUBSET_ROW_SHARE
    try:
        score_module.SUBSET_ROW_SHARE = row_share
        cut = score_shares(counts, share, floor, dispersion, below=below, rows=rows,
                           exact=exact if below is not None else None)
    finally:
        score_module.SUBSET_ROW_SHARE = old
    scored = rows & ((counts.sum(axis=1) > 0) | exact.any(axis=1) | (below is None))
    for name in ("up", "down", "observed_share", "expected_count", "up_expected_count"):
        a, b = getattr(whole, name), getattr(cut, name)
        assert (b[~scored] == 0).all(), name
        if name in ("up", "down") and below is not None:
            keep = scored[:, None] & ((a >= below) | exact)
            assert np.array_equal(a[keep], b[keep]), name
            assert ((b[scored] == 0) | (b[scored] == a[scored])).all(), name
        else:
            assert np.array_equal(a[scored], b[scored]), name
