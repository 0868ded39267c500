"""The long state learns with a delay (``statuswatch.core.lagged``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from statuswatch.core.baseline import Baseline
from statuswatch.core.lagged import LaggedLearning
from statuswatch.core.reference import LongReference

W = 10_000
T0 = 1_680_566_400_000
LAG = 60
HOUR = 360


def _setup() -> tuple[Baseline, LongReference, LaggedLearning]:
    baseline = Baseline(share_half_life=90, volume_half_life=90, warmup_windows=30)
    return baseline, LongReference(2160), LaggedLearning(LAG, young_ms=HOUR * W)


def _teach(baseline, reference, lag, w, counts, alarmed=None):
    counts = np.asarray(counts, np.int64)
    totals = counts.sum(axis=1)
    baseline.learn(counts, window_start_ms=T0 + w * W, totals=totals)
    none = np.zeros(counts.shape, dtype=bool)
    lag.teach(baseline, reference, T0 + w * W, counts, totals, counts, totals, none, none,
              none if alarmed is None else alarmed)


def _history(baseline, reference, lag, windows=2 * HOUR):
    for w in range(windows):  # 2 % of the second code: two hours, past the young hour
        _teach(baseline, reference, lag, w, [[49, 1]] if w % 2 else [[50, 0]])


def test_a_rise_teaches_the_reference_only_once_the_lag_has_passed():
    baseline, reference, lag = _setup()
    _history(baseline, reference, lag)
    before = float(reference.up_share(1, 2)[0, 1])
    assert before == pytest.approx(0.01, rel=0.05)
    for w in range(2 * HOUR, 2 * HOUR + LAG):  # 40 % for the lag's length: not learned yet
        _teach(baseline, reference, lag, w, [[30, 20]])
    during = float(reference.up_share(1, 2)[0, 1])
    assert during == pytest.approx(before, rel=0.01)  # it learned the calm ones pending
    for w in range(2 * HOUR + LAG, 2 * HOUR + 2 * LAG):
        _teach(baseline, reference, lag, w, [[30, 20]])
    assert float(reference.up_share(1, 2)[0, 1]) > 2 * before  # now it does


def test_a_series_live_meanwhile_never_learns_its_pending_windows():
    baseline, reference, lag = _setup()
    _history(baseline, reference, lag)
    phi_before = baseline.expect(1, 2, window_start_ms=0, window_ms=W,
                                 parents=np.array([-1])).long_dispersion[0, 1]
    live = np.array([[False, True]])
    for w in range(2 * HOUR, 2 * HOUR + 3 * LAG):
        # 40 %; the alert goes live half-way through the lag and stays live
        _teach(baseline, reference, lag, w, [[30, 20]],
               alarmed=live if w >= 2 * HOUR + LAG // 2 else None)
    # the windows before it went live were pending then: held, as the ones after
    assert float(reference.up_share(1, 2)[0, 1]) == pytest.approx(0.01, rel=0.1)
    phi_after = baseline.expect(1, 2, window_start_ms=0, window_ms=W,
                                parents=np.array([-1])).long_dispersion[0, 1]
    assert phi_after == pytest.approx(phi_before, rel=0.05)


def test_a_young_scope_learns_at_once():
    baseline, reference, lag = _setup()
    for w in range(10):
        _teach(baseline, reference, lag, w, [[48, 2]])
    assert float(reference.up_share(1, 2)[0, 1]) == pytest.approx(0.04, rel=0.05)
    assert not lag.pending


def test_the_pending_windows_round_trip_through_json_and_forget_rows():
    baseline, reference, lag = _setup()
    _history(baseline, reference, lag, windows=HOUR + 10)
    _teach(baseline, reference, lag, HOUR + 10, [[30, 20]], alarmed=np.array([[False, True]]))
    state = json.loads(json.dumps(lag.snapshot()))
    copy = LaggedLearning(LAG, young_ms=HOUR * W)
    copy.restore(state)
    assert copy.snapshot() == lag.snapshot()
    mirror = Baseline(share_half_life=90, volume_half_life=90, warmup_windows=30)
    mirror.restore(json.loads(json.dumps(baseline.snapshot())))
    twin = LongReference(2160)
    twin.restore(json.loads(json.dumps(reference.snapshot())))
    for w in range(HOUR + 11, HOUR + 11 + LAG):
        _teach(baseline, reference, lag, w, [[49, 1]])
        _teach(mirror, twin, copy, w, [[49, 1]])
    assert twin.snapshot() == reference.snapshot()
    assert mirror.snapshot() == baseline.snapshot()
    lag.forget_rows([0])
    assert all(len(p.rows) == 0 and len(p.disp_rows) == 0 for p in lag.pending)
    assert (lag.last_frozen[0] == -1).all()
