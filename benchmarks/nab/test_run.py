"""benchmarks.nab.run: the volume gates act like the live detector's, after calibration."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from benchmarks.nab.run import (
    CHOSEN,
    Raw,
    Series,
    Variant,
    baseline_key,
    corpus_scores,
    counts_of,
    value_range,
    volume_gates,
)
from benchmarks.nab.scoring import LabelledFile

STEP_MS = 300_000


def series(values: list[float] | np.ndarray, name: str = "synthetic") -> Series:
    n = len(values)
    ts = np.datetime64("2020-01-01T00:00") + np.arange(n) * np.timedelta64(5, "m")
    t_ms = (ts.astype("datetime64[ms]").astype(np.int64)).tolist()
    return Series(name, LabelledFile.build(name, ts, []), t_ms, np.asarray(values, float),
                  STEP_MS)


def test_value_range_is_nab_input_max_minus_input_min() -> None:
    assert value_range(series([5.0, 2.0, 9.0, 4.0])) == 7.0


def test_min_excess_of_range_zeroes_rows_whose_excess_is_below_the_fraction() -> None:
    s = series([10.0, 30.0, 12.0, 0.0, 110.0])  # range 110: 0.1 of it is 11
    expected = np.full(5, 10.0)
    up, down = np.full(5, 4.0), np.full(5, 3.0)
    both = Variant("both", direction="both", min_excess_of_range=0.1)
    gated_up, gated_down = volume_gates(s, both, [up, down], expected)
    # excess 0, 20, 2, -10, 100: up keeps rows 1 and 4; shortfall 10 at row 3 is below 11
    assert gated_up.tolist() == [0.0, 4.0, 0.0, 0.0, 4.0]
    assert gated_down.tolist() == [0.0] * 5
    [only_up] = volume_gates(s, replace(both, direction="up"), [up], expected)
    assert only_up.tolist() == gated_up.tolist()
    off = volume_gates(s, replace(both, min_excess_of_range=0.0), [up, down], expected)
    assert [x.tolist() for x in off] == [up.tolist(), down.tolist()]


@pytest.fixture(scope="module")
def bursty() -> list[Series]:
    rng = np.random.default_rng(7)
    out = []
    for k in range(3):
        v = rng.poisson(20 + 10 * np.sin(np.arange(1500) / 40.0)).astype(float)
        bursts = rng.choice(np.arange(100, 1500), size=12, replace=False)
        v[bursts] += rng.integers(5, 200, size=12)
        out.append(series(v, f"bursty{k}"))
    return out


def test_gates_act_after_calibration(bursty: list[Series]) -> None:
    """As in the live detector (Detector._calibrated, then Detector._hits), the gate does
    not change what the calibrator learns, only which rows may page: a row that passes
    the gate keeps exactly the score it has without the gate. (The live detector also
    skips learning rows with a live volume alert; the harness does not model that.)"""
    plain = replace(CHOSEN, name="no gate", cooldown=0, calibration_warmup=50,
                    min_excess_of_range=0.0)
    gated = replace(plain, name="gate", min_excess_of_range=0.1)
    cache: dict[tuple, Raw] = {}
    without = corpus_scores(bursty, plain, cache)
    with_gate = corpus_scores(bursty, gated, cache)
    for s, a, b in zip(bursty, without, with_gate, strict=True):
        _, _, expected, _ = cache[baseline_key(s, plain)]
        passes = counts_of(s) - expected >= 0.1 * value_range(s)
        assert np.any(passes & (a > 0))  # the bursts pass, with a score
        assert np.array_equal(b, np.where(passes, a, 0.0))
