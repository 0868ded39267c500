"""The same hour of the previous days beside the long reference (``SameHourReference``)."""

from __future__ import annotations

import numpy as np
import pytest

from statuswatch.config import Settings, load_settings
from statuswatch.core.columns import DecodedBatch
from statuswatch.core.detector import STATE_VERSION, Detector
from statuswatch.core.reference import DAY_MS, HOUR_MS, LongReference, SameHourReference
from statuswatch.errors import ConfigError

W = 10_000
T0 = 1_680_566_400_000  # a midnight, UTC
MINUTE = 60_000


def test_the_key_is_validated_by_name():
    with pytest.raises(ConfigError, match=r"baseline\.same_hour_reference_days"):
        load_settings(None, baseline={"same_hour_reference_days": -1})
    assert Detector(Settings(baseline={"same_hour_reference_days": 0})).reference.same_hour \
        is None


def test_each_hour_learns_alone_and_is_read_after_a_day():
    ref = LongReference(2160, SameHourReference(7, 360))
    for w in range(2 * 360):  # 03:00 to 05:00: 5 % of 500s at 3, 1 % at 4
        ref.at(T0 + 3 * HOUR_MS + w * W)
        ref.learn(np.array([[95, 5]]) if w < 360 else np.array([[99, 1]]), np.array([100]))
    rows, cols = np.array([0]), np.array([1])
    ewma = float(LongReference.up_share_at(ref, rows, cols, np.zeros(1))[0])
    ref.at(T0 + 3 * HOUR_MS + 2 * 360 * W)  # 05:00 the same day: no day of history yet
    assert float(ref.up_share_at(rows, cols, np.zeros(1))[0]) == pytest.approx(ewma)
    ref.at(T0 + DAY_MS + 3 * HOUR_MS + 30 * MINUTE)  # 03:30 the next day: 5 %
    assert float(ref.up_share_at(rows, cols, np.zeros(1))[0]) == pytest.approx(0.05, rel=0.01)
    ref.at(T0 + DAY_MS + 4 * HOUR_MS + 30 * MINUTE)  # 04:30: its hour's sum holds 03:30
    assert float(ref.up_share_at(rows, cols, np.zeros(1))[0]) == pytest.approx(0.05, rel=0.01)
    ref.at(T0 + DAY_MS + 5 * HOUR_MS + 30 * MINUTE)  # 05:30: 04:00's 1 % under the slow mean
    assert float(ref.up_share_at(rows, cols, np.zeros(1))[0]) == pytest.approx(ewma)


def test_frozen_cells_hold_their_hour_and_state_round_trips():
    ref = LongReference(2160, SameHourReference(7, 360))
    ref.at(T0)
    for _ in range(100):
        ref.learn(np.array([[99, 1], [50, 50]]), np.array([100, 100]))
    frozen = np.array([[False, True], [False, False]])
    for _ in range(100):  # 20 % of 500s in row 0, frozen: its 00:00 share stays 1 %
        ref.learn(np.array([[80, 20], [50, 50]]), np.array([100, 100]), frozen=frozen)
    restored = LongReference(2160, SameHourReference(7, 360))
    restored.restore(ref.snapshot())
    restored.at(T0 + DAY_MS)
    share = restored.same_hour.up_share_at(np.array([0, 1]), np.array([1, 1]), T0 + DAY_MS)
    assert share[0].tolist() == pytest.approx([0.01, 0.5], rel=0.01)
    assert share[1].tolist() == [True, True]
    restored.forget_rows([0])
    assert restored.same_hour.up_share_at(np.array([0]), np.array([1]), T0 + DAY_MS)[1][0] \
        == np.False_


def test_a_snapshot_of_the_version_before_is_refused():
    state = Detector(Settings()).snapshot()
    with pytest.raises(ValueError, match="version"):
        Detector(Settings()).restore({**state, "version": STATE_VERSION - 1}, now_ms=0)


def _daily_creeps(days: float) -> list[dict]:
    """One service at 3 requests a second, 0.3 % 500 as usual; every day from 03:00 its
    500s creep to 4 % over 40 minutes and hold 20 (a nightly batch). The first page is
    accepted at once (as ``SIGUSR1`` would)."""
    rng = np.random.default_rng(11)
    detector = Detector(Settings(baseline={"same_hour_reference_days": days}))
    alerts: list[dict] = []
    for w in range(int(1.25 * DAY_MS // W)):
        t = T0 + w * W
        since = (t % DAY_MS) - 3 * HOUR_MS
        share = 0.003
        if 0 <= since < HOUR_MS:
            share += (0.04 - 0.003) * min(since / (40 * MINUTE), 1.0)
        n = int(rng.poisson(30))
        status = np.where(rng.random(n) < share, 500, 200).astype(np.int64)
        batch = DecodedBatch(np.full(n, t + 1, np.int64), status,
                             {"service": ["batch-api"] * n, "route": ["r"] * n,
                              "app": ["a"] * n}, np.arange(n, dtype=np.int64))
        detector.count(batch, now_ms=t + W)
        events = [e.to_json() for e in detector.close_ready(now_ms=t + W)]
        if any(e["state"] == "firing" for e in events) and not alerts:
            detector.acknowledge()
        alerts += events
    return [a for a in alerts if a["state"] == "firing"]


@pytest.mark.slow
@pytest.mark.parametrize(("days", "pages_on_day_two"), [(7.0, False), (0.0, True)])
def test_a_level_accepted_at_this_hour_yesterday_is_no_rise_today(days, pages_on_day_two):
    """Without the same hour the 6-hour reference has forgotten yesterday's accepted
    level by 03:00 the next day, and the same batch pages again."""
    firing = _daily_creeps(days)
    day_one = [a for a in firing if a["window_end"] * 1000 < T0 + DAY_MS]
    day_two = [a for a in firing if a["window_end"] * 1000 >= T0 + DAY_MS]
    assert day_one and day_one[0]["code"] in (500, "5xx"), firing
    assert bool(day_two) == pages_on_day_two, firing


def test_a_reload_of_the_horizons_reads_the_hours_the_new_longest_spans():
    detector = Detector(Settings())
    assert detector.reference.same_hour is not None
    assert detector.reference.same_hour.span_ms == HOUR_MS
    detector.reconfigure(Settings(detect={"horizons": [{"windows": 1}, {"windows": 6}]}))
    assert detector.reference.same_hour.span_ms == MINUTE
