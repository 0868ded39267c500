"""The long reference learns with a delay (``statuswatch.core.lagged``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from statuswatch.core.lagged import LaggedLearning
from statuswatch.core.reference import LongReference

W = 10_000
T0 = 1_680_566_400_000
LAG = 60
HOUR = 360
FIRST = np.array([T0])  # the scope's first window: the run's


def _setup() -> tuple[LongReference, LaggedLearning]:
    return LongReference(2160), LaggedLearning(LAG, young_ms=HOUR * W)


def _teach(reference, lag, w, counts, live=None, first=FIRST):
    counts = np.asarray(counts, np.int64)
    none = np.zeros(counts.shape, dtype=bool)
    lag.teach(reference, first, T0 + w * W, counts, counts.sum(axis=1), none,
              none if live is None else live)


def _history(reference, lag, windows=2 * HOUR):
    for w in range(windows):  # 1 % of the second code, past the young hour
        _teach(reference, lag, w, [[49, 1]] if w % 2 else [[50, 0]])


def test_a_rise_teaches_the_reference_only_once_the_lag_has_passed():
    reference, lag = _setup()
    _history(reference, lag)
    before = float(reference.up_share(1, 2)[0, 1])
    assert before == pytest.approx(0.01, rel=0.05)
    for w in range(2 * HOUR, 2 * HOUR + LAG):  # 40 % for the lag's length: not learned yet
        _teach(reference, lag, w, [[30, 20]])
    assert float(reference.up_share(1, 2)[0, 1]) == pytest.approx(before, rel=0.01)
    for w in range(2 * HOUR + LAG, 2 * HOUR + 2 * LAG):
        _teach(reference, lag, w, [[30, 20]])
    assert float(reference.up_share(1, 2)[0, 1]) > 2 * before  # now it does


def test_a_series_live_meanwhile_never_learns_its_pending_windows():
    reference, lag = _setup()
    _history(reference, lag)
    live = np.array([[False, True]])
    for w in range(2 * HOUR, 2 * HOUR + 3 * LAG):
        # 40 %; its alert goes live half-way through the lag and stays live
        _teach(reference, lag, w, [[30, 20]], live=live if w >= 2 * HOUR + LAG // 2 else None)
    # the windows before it went live were still pending: held, as the ones after
    assert float(reference.up_share(1, 2)[0, 1]) == pytest.approx(0.01, rel=0.1)


def test_a_young_scope_learns_at_once():
    reference, lag = _setup()
    for w in range(10):
        _teach(reference, lag, w, [[48, 2]])
    assert float(reference.up_share(1, 2)[0, 1]) == pytest.approx(0.04, rel=0.05)
    assert not lag.pending


def test_the_pending_windows_round_trip_through_json_and_forget_rows():
    reference, lag = _setup()
    _history(reference, lag, windows=HOUR + 10)
    _teach(reference, lag, HOUR + 10, [[30, 20]], live=np.array([[False, True]]))
    copy = LaggedLearning(LAG, young_ms=HOUR * W)
    copy.restore(json.loads(json.dumps(lag.snapshot())))
    assert copy.snapshot() == lag.snapshot()
    twin = LongReference(2160)
    twin.restore(json.loads(json.dumps(reference.snapshot())))
    for w in range(HOUR + 11, HOUR + 11 + LAG):
        _teach(reference, lag, w, [[49, 1]])
        _teach(twin, copy, w, [[49, 1]])
    assert twin.snapshot() == reference.snapshot()
    assert len(lag.pending) == LAG
    lag.forget_rows([0])
    assert all(p[2] == [] for p in lag.snapshot()["pending"])
    assert (lag.last_live[0] == -1).all()
    # what was pending for the row is never learned; what it holds afresh is
    before = reference.snapshot()
    _teach(reference, lag, HOUR + 11 + LAG, [[10, 10]])
    assert reference.snapshot() == before
    for w in range(HOUR + 12 + LAG, HOUR + 13 + 2 * LAG):
        _teach(reference, lag, w, [[10, 10]])
    assert reference.snapshot() != before
