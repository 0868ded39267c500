"""The C kernels (``_kernels.c``) against the numpy paths, the oracle."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import statuswatch.core.score as score_module
from statuswatch.core import kernels
from statuswatch.core.score import ShareScores, score_shares

SHARES = st.one_of(
    st.floats(0.0, 1.0), st.sampled_from([0.0, 1.0, 1e-15, 1e-9, 0.5, 1 - 1e-13, 0.999])
)


@st.composite
def windows(draw: st.DrawFn) -> dict[str, Any]:
    """One window's arguments of ``score_shares``: counts within each row's total, every
    optional array present or not, shares at the extremes as well."""
    n_rows, n_cols = draw(st.integers(1, 12)), draw(st.integers(1, 6))
    counts = np.array(draw(st.lists(st.integers(0, 60), min_size=n_rows * n_cols,
                                    max_size=n_rows * n_cols)), np.int64).reshape(n_rows, n_cols)
    counts[draw(st.lists(st.integers(0, n_rows - 1), max_size=n_rows))] = 0  # silent rows
    extra = np.array(draw(st.lists(st.integers(0, 40), min_size=n_rows, max_size=n_rows)))
    totals = counts.max(axis=1) + extra * (counts.max(axis=1) > 0)

    def maybe(strategy: st.SearchStrategy[Any]) -> Any:
        return draw(st.one_of(st.none(), strategy))

    def floats(n: int, values: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
        return st.lists(values, min_size=n, max_size=n).map(np.array)

    def flags(n: int) -> st.SearchStrategy[Any]:
        return st.lists(st.booleans(), min_size=n, max_size=n).map(
            lambda v: np.array(v, dtype=bool))

    cells = n_rows * n_cols
    return {
        "counts": counts,
        "expected_share": draw(floats(cells, SHARES)).reshape(n_rows, n_cols),
        "floor": maybe(floats(n_rows, SHARES)),
        "dispersion": maybe(floats(cells, st.floats(1.0, 12.0)).map(
            lambda a: a.reshape(n_rows, n_cols))),
        "totals": totals.astype(np.int64),
        "down_totals": maybe(floats(n_rows, st.floats(0.0, 300.0))),
        "below": draw(st.sampled_from([0.3, 1.0, 2.0, 3.0, 6.0])),
        "exact": maybe(flags(cells).map(lambda a: a.reshape(n_rows, n_cols))),
        "rows": maybe(flags(n_rows)),
    }


def on_numpy(args: dict[str, Any]) -> ShareScores:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kernels, "ENABLED", False)
        return score_shares(**args)


def test_the_extension_is_built():
    assert kernels.ENABLED, "the C extension statuswatch.core._kernels is not built"


@given(windows())
@settings(max_examples=400, deadline=None)
def test_the_extension_scores_as_numpy_does(args):
    native, oracle = score_shares(**args), on_numpy(args)
    for field in ("observed_share", "expected_count", "up_expected_count", "totals"):
        assert np.array_equal(getattr(native, field), getattr(oracle, field), equal_nan=True), field
    below, exact = args["below"], args["exact"]
    for got, want in ((native.up, oracle.up), (native.down, oracle.down)):
        # Every score that may matter is exact in both; the two screens' bounds may differ
        # in the last place only, so a cell one computes and the other leaves at 0 scores
        # under the threshold.
        differ = got != want
        assert not (differ & ((got >= below) | (want >= below))).any()
        if exact is not None:
            assert not (differ & exact).any()
        assert differ.sum() <= max(1, differ.size // 50)  # ulps apart: hardly ever


def test_a_silent_row_left_out_or_not_scorable_reads_zero():
    counts = np.array([[5, 0], [0, 0], [3, 9]], np.int64)
    share = np.array([[1e-6, 1.0], [0.5, 0.5], [0.5, 0.5]])
    s = score_shares(counts, share, np.full(3, 1e-3), None, counts.sum(axis=1),
                     below=3.0, rows=np.array([True, True, False]))
    assert s.up[0, 0] > 10  # 5 of 5 at a share of one in a million
    assert not s.up[1:].any() and not s.down[1:].any()
    assert not s.observed_share[1:].any() and not s.expected_count[1:].any()
    assert s.totals.tolist() == [5, 0, 12]


def test_arrays_of_another_shape_or_kind_score_on_numpy():
    counts = np.array([[40, 2], [0, 30]], np.int64)
    broadcast_share = np.array([[0.05, 0.95]])  # one row for every row
    args = {"counts": counts, "expected_share": broadcast_share, "totals": counts.sum(axis=1),
            "below": 2.0}
    assert score_module._native_share_scores(
        counts, broadcast_share, None, None, counts.sum(axis=1), None, 2.0, None, None
    ) is None
    s = score_shares(**args)
    assert s.up[0, 0] > 5 and np.array_equal(s.up, on_numpy(args).up)


@pytest.mark.parametrize("bad, message", [
    ({"counts": np.zeros(4)}, "counts must hold 4 items of kind 'i'"),
    ({"tail_idx": np.zeros(4, np.int64)}, "tail_idx must hold 8 items"),
    ({"totals": None}, "totals must not be None"),
    ({"n_cols": 0}, "n_cols must be positive"),
])
def test_the_extension_refuses_buffers_of_the_wrong_size_or_kind(bad, message):
    args: dict[str, Any] = {
        "counts": np.zeros(4, np.int64), "share": np.zeros(4), "floor": None,
        "dispersion": None, "totals": np.zeros(2, np.int64), "down_totals": None,
        "rows": None, "exact": None, "n_cols": 2, "limit": 2.0, "mean_side": True,
        "observed": np.empty(4), "expected": np.empty(4), "up_expected": np.empty(4),
        "tail_idx": np.empty(8, np.int64), "tail_at": np.empty(32),
    }
    args.update(bad)
    with pytest.raises((ValueError, TypeError), match=message):
        kernels.native.share_cells(*args.values())


@st.composite
def learning_runs(draw: st.DrawFn) -> tuple[int, list[dict[str, Any]]]:
    """A few windows for ``Baseline.learn``: the table growing by rows, bursts and
    silent rows, frozen cells and long sums or not."""
    n_cols = draw(st.integers(1, 5))
    windows = []
    n_rows = draw(st.integers(1, 4))
    for _ in range(draw(st.integers(1, 10))):
        n_rows += draw(st.integers(0, 2))
        cells = n_rows * n_cols
        counts = np.array(draw(st.lists(st.sampled_from([0, 0, 0, 1, 2, 7, 40, 300]),
                                        min_size=cells, max_size=cells)),
                          np.int64).reshape(n_rows, n_cols)

        def flags(shape: tuple[int, int] = (n_rows, n_cols)) -> Any:
            size = shape[0] * shape[1]
            return draw(st.one_of(st.none(), st.lists(
                st.booleans(), min_size=size, max_size=size
            ).map(lambda v: np.array(v, dtype=bool).reshape(shape))))

        long_counts = None
        if draw(st.booleans()):
            long_counts = counts * draw(st.integers(1, 6)) + np.array(draw(st.lists(
                st.integers(0, 9), min_size=cells, max_size=cells)), np.int64).reshape(
                n_rows, n_cols)
        windows.append({"counts": counts, "frozen_share": flags(), "long_counts": long_counts,
                        "frozen_long": flags()})
    return n_cols, windows


def learned(windows: list[dict[str, Any]], native: bool) -> tuple[Any, ...]:
    from statuswatch.core.baseline import Baseline

    baseline = Baseline(share_half_life=6, volume_half_life=6, warmup_windows=2,
                        dispersion_half_life=8)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kernels, "ENABLED", native)
        for i, window in enumerate(windows):
            baseline.learn(window_start_ms=i * 10_000, **window)
    n_rows, n_cols = windows[-1]["counts"].shape
    exp = baseline.expect(n_rows, n_cols, window_start_ms=len(windows) * 10_000,
                          window_ms=10_000, parents=np.full(n_rows, -1))
    return (baseline.snapshot(), exp.share, exp.share_dispersion, exp.long_dispersion)


@given(learning_runs())
@settings(max_examples=300, deadline=None)
def test_the_learning_kernel_learns_what_numpy_learns(run):
    _, windows = run
    native, oracle = learned(windows, True), learned(windows, False)
    assert native[0] == oracle[0]  # every learned value, bit for bit (JSON floats)
    for got, want in zip(native[1:], oracle[1:], strict=True):
        assert np.array_equal(got, want, equal_nan=True)


@pytest.mark.parametrize("bad, message", [
    ({"rows": np.array([5], np.int64)}, "row 5 out of range"),
    ({"mean": np.zeros(7)}, "whole rows of stride"),
    ({"known": np.zeros(3, dtype=bool)}, "known must hold 8 items"),
    ({"stride": 1}, "n_cols <= stride"),
])
def test_the_learning_kernel_refuses_what_it_cannot_index(bad, message):
    args: dict[str, Any] = {
        "rows": np.array([0], np.int64), "counts": np.ones(4, np.int64),
        "totals": np.full(2, 2, np.int64), "frozen": None, "debias": np.ones(1),
        "long_counts": None, "long_totals": None, "frozen_long": None,
        "known": np.zeros(8, dtype=bool), "mean": np.zeros(8), "started": np.zeros(8, bool),
        "disp_mean": np.zeros(8), "disp_started": np.zeros(8, bool), "long_resid": None,
        "long_expected": None, "n_cols": 2, "stride": 2, "alphas": (0.1, 0.1, 0.1),
        "min_expected": 5.0, "max_resid": 400.0,
    }
    args.update(bad)
    with pytest.raises((ValueError, IndexError), match=message):
        kernels.native.learn_cells(*args.values())


@given(learning_runs(), st.data())
@settings(max_examples=200, deadline=None)
def test_the_expectation_kernel_expects_what_numpy_expects(run, data):
    from statuswatch.core.baseline import Baseline

    _, windows = run
    baseline = Baseline(share_half_life=6, volume_half_life=6, warmup_windows=3,
                        dispersion_half_life=8)
    for i, window in enumerate(windows):
        baseline.learn(window_start_ms=i * 10_000, **window)
    n_rows, n_cols = windows[-1]["counts"].shape
    parents = np.array([-1] + [data.draw(st.integers(-1, r - 1)) for r in range(1, n_rows)])
    subset = data.draw(st.booleans())
    rows = None
    if subset:  # some rows, with their parents (as Detector asks)
        keep = np.array(data.draw(st.lists(st.booleans(), min_size=n_rows, max_size=n_rows)))
        while not keep[parents[keep][parents[keep] >= 0]].all():
            keep[parents[keep][parents[keep] >= 0]] = True
        rows = keep.nonzero()[0]

    def expect(native: bool) -> Any:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(kernels, "ENABLED", native)
            return baseline.expect(n_rows, n_cols, window_start_ms=len(windows) * 10_000,
                                   window_ms=10_000, parents=parents, rows=rows)

    got, want = expect(True), expect(False)
    for field in ("share", "share_dispersion", "long_dispersion", "volume", "warm"):
        assert np.array_equal(getattr(got, field), getattr(want, field), equal_nan=True), field


@st.composite
def long_horizons(draw: st.DrawFn) -> dict[str, Any]:
    """The inputs of the long horizons' rise gates: the minute's and each horizon's sums
    and spans, gates per cell, the learned share, floor and warm rows, a long reference
    that knows some rows (and maybe fewer columns), the rows' ids in it."""
    n_rows, n_cols = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    cells = n_rows * n_cols

    def matrix(values: st.SearchStrategy[Any], dtype: Any) -> Any:
        return np.array(draw(st.lists(values, min_size=cells, max_size=cells)),
                        dtype).reshape(n_rows, n_cols)

    def sums() -> tuple[Any, Any]:
        counts = matrix(st.sampled_from([0, 1, 3, 8, 20, 60, 400]), np.int64)
        return counts, counts.sum(axis=1) + np.array(draw(st.lists(
            st.sampled_from([0, 5, 200]), min_size=n_rows, max_size=n_rows)), np.int64)

    minute, minute_totals = sums()
    horizons = []
    for k in range(draw(st.integers(1, 3))):
        counts, totals = sums()
        horizons.append((counts, totals, matrix(st.sampled_from([1.0, 5.0, 20.0]), np.float64),
                         matrix(st.sampled_from([1.0, 1.5, 3.0]), np.float64), draw(st.booleans()),
                         matrix(st.sampled_from([False, False, True]), np.bool_),
                         matrix(st.sampled_from([True, True, False]), np.bool_),
                         draw(st.integers(1, 60)) * (k + 1) * 10))
    from statuswatch.core.reference import LongReference

    reference = LongReference(half_life_windows=draw(st.sampled_from([3.0, 50.0])))
    known_rows, known_cols = draw(st.integers(0, n_rows + 2)), draw(st.integers(1, n_cols))
    for _ in range(draw(st.integers(0, 4))):
        counts = np.array(draw(st.lists(st.sampled_from([0, 1, 9, 90]),
                                        min_size=known_rows * known_cols,
                                        max_size=known_rows * known_cols)),
                          np.int64).reshape(known_rows, known_cols)
        reference.learn(counts, counts.sum(axis=1))
    row_ids = draw(st.one_of(st.none(), st.permutations(range(n_rows + 2)).map(
        lambda p: np.array(p[:n_rows], np.int64))))
    return {"horizons": horizons, "minute": minute, "minute_totals": minute_totals,
            "minute_span": draw(st.integers(1, 6)), "reference": reference, "row_ids": row_ids,
            "warm": np.array(draw(st.lists(st.booleans(), min_size=n_rows, max_size=n_rows))),
            "learned": matrix(SHARES, np.float64),
            "floor": np.array(draw(st.lists(SHARES, min_size=n_rows, max_size=n_rows)))}


def rises_by_numpy(case: dict[str, Any]) -> bool:
    """The gates as ``_long_horizons`` states them, on the long reference's own
    ``up_share_at`` and the shared ``rise_gate``: the plain computation."""
    from statuswatch.core.horizon_judge import RECENT_EXCESS_RATE
    from statuswatch.core.score import rise_gate

    learned, floor, reference = case["learned"], case["floor"], case["reference"]
    n_rows, n_cols = learned.shape
    rows, cols = np.divmod(np.arange(n_rows * n_cols), n_cols)
    ids = rows if case["row_ids"] is None else case["row_ids"][rows]
    long_share = reference.up_share_at(ids, cols, fallback=learned.ravel())
    minute_n = case["minute_totals"][rows].astype(np.float64)
    warm = case["warm"][rows] & (minute_n > 0)
    before = (case["minute"].ravel(), case["minute_span"],
              minute_n * np.clip(np.maximum(learned.ravel(), floor[rows]), 1e-12, 1 - 1e-12))
    for sums, totals, min_excess, min_ratio, long_reference, ignore, up, span in case["horizons"]:
        p = long_share if long_reference else learned.ravel()
        p_up = np.clip(np.maximum(p, floor[rows]), 1e-12, 1.0 - 1e-12)
        expected = totals[rows].astype(np.float64) * p_up
        count = sums.ravel()
        recent = (before[0] - before[2]) * span >= RECENT_EXCESS_RATE * (
            count - expected) * before[1]
        if (rise_gate(count, expected, min_excess.ravel(), min_ratio.ravel()) & warm
                & ~ignore.ravel() & up.ravel() & recent).any():
            return True
        before = (count, span, expected)
    return False


def rises_by_kernel(case: dict[str, Any]) -> bool:
    from statuswatch.core.horizon_judge import RECENT_EXCESS_RATE

    counts, totals = case["reference"].long_sums()
    return kernels.native.rises_possible(
        tuple(case["horizons"]), case["minute"], case["minute_totals"], case["minute_span"],
        case["warm"], case["learned"], case["floor"], counts, totals, counts.shape[1],
        case["reference"].alpha, case["row_ids"], case["learned"].shape[1], RECENT_EXCESS_RATE,
    )


@given(long_horizons())
@settings(max_examples=500, deadline=None)
def test_the_rise_kernel_finds_a_passing_cell_exactly_where_numpy_does(case):
    assert rises_by_kernel(case) == rises_by_numpy(case)  # (only numpy grows the reference)


@given(long_horizons(), st.data())
@settings(max_examples=200, deadline=None)
def test_the_long_horizons_views_are_the_same_with_the_kernel(case, data):
    """``_long_horizons`` itself, quiet (nothing live), with the kernels and without."""
    from types import SimpleNamespace

    from statuswatch.config import DetectConfig
    from statuswatch.core.baseline import Expectation
    from statuswatch.core.horizon_judge import HorizonJudge
    from statuswatch.core.rules import resolve

    learned = case["learned"]
    n_rows, n_cols = learned.shape
    horizons = case["horizons"][:2]
    lengths = [1, 6, 60, 360][: 2 + len(horizons)]  # the configured horizons (sums: spans)
    detect = DetectConfig(horizons=[
        {"windows": w, "long_reference": i >= 2 and horizons[i - 2][4],
         "min_excess_count": data.draw(st.sampled_from([None, 2.0, 10.0]))}
        for i, w in enumerate(lengths)
    ])
    labels = [{"service": f"s{r}"} for r in range(n_rows)]
    codes = list(range(200, 200 + n_cols))
    scopes = SimpleNamespace(labels=labels)
    judge = HorizonJudge(lengths, scopes, SimpleNamespace(codes=codes),  # type: ignore[arg-type]
                         case["reference"], lambda m: m.sum(axis=1))
    rules = resolve(detect, labels, codes)
    tables = [judge.rules_at(i, rules, detect) for i in range(len(lengths))]
    sums = [np.zeros_like(case["minute"]), case["minute"], *(h[0] for h in horizons)]
    spans = [1, case["minute_span"], *(h[7] for h in horizons)]
    ones = np.ones(learned.shape)
    exp = Expectation(learned, ones, ones, np.ones(n_rows), np.ones(n_rows),
                      np.full(n_rows, 99), case["warm"])

    def views(native: bool) -> Any:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(kernels, "ENABLED", native)
            return judge._long_horizons(
                sums, spans, exp, case["floor"], tables, np.zeros(learned.shape, dtype=bool),
                detect, case["row_ids"], case["minute"].sum(axis=1))

    got, want = views(True), views(False)
    assert len(got) == len(want) == len(lengths) - 2
    for a, b in zip(got, want, strict=True):
        assert a.windows == b.windows and np.array_equal(a.counts, b.counts)
        for field in ("up", "down", "observed_share", "expected_count", "totals"):
            assert np.array_equal(getattr(a.shares, field), getattr(b.shares, field)), field
        for flags in ("hit_up", "hit_down", "elevated"):
            assert np.array_equal(getattr(a, flags), getattr(b, flags)), flags


@given(learning_runs(), st.data())
@settings(max_examples=200, deadline=None)
def test_the_reference_kernel_learns_what_numpy_learns(run, data):
    """``LongReference.learn_rows`` (with its same-hour part, frozen cells or not) both
    ways: the same sums, bit for bit."""
    from statuswatch.core.reference import LongReference, SameHourReference

    _, windows = run
    days = data.draw(st.sampled_from([0, 2]))

    def learned(native: bool) -> Any:
        same_hour = SameHourReference(days, windows_per_hour=360.0) if days else None
        reference = LongReference(half_life_windows=5.0, same_hour=same_hour)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(kernels, "ENABLED", native)
            for i, window in enumerate(windows):
                counts = window["counts"]
                totals = counts.sum(axis=1)
                rows = (totals > 0).nonzero()[0]
                frozen = window["frozen_share"]
                reference.learn_rows(rows, counts[rows], totals[rows],
                                     None if frozen is None else frozen[rows], i * 1_800_000)
        return reference.snapshot()

    assert learned(True) == learned(False)
