"""Snapshot/restore of the whole detector: a restored run equals an uninterrupted one."""

from __future__ import annotations

import json

import pytest

from statuswatch.config import Settings
from statuswatch.core.detector import Detector
from statuswatch.simulate.encode import encode
from statuswatch.simulate.incidents import Incident
from statuswatch.simulate.spec import SimSpec
from statuswatch.simulate.traffic import generate

T0 = 1_680_566_400_000


def batches() -> list[list[bytes]]:
    onset = T0 + 12 * 60_000
    spec = SimSpec(seed=9, rate=150, n_apps=60,
                   incidents=(Incident("freeze", onset, onset + 120_000, code=403, fraction=0.4),))
    return [encode("kong", c, spec) for c in generate(spec, T0, T0 + 16 * 60_000, 3_000)]


def run(detector: Detector, data: list[list[bytes]], windows: list) -> list[dict]:
    detector.window_listener = lambda w: windows.append((w.start_ms, w.counts.tolist()))
    alerts = []
    for values in data:
        now = detector.counters.last_event_ms or 0
        alerts += [e.to_json() for e in detector.process(values, now_ms=now).events]
    return alerts


@pytest.mark.parametrize("cut", [1, 97, 180, 250, 319])
def test_restore_mid_stream_equals_uninterrupted_run(cut):
    data = batches()
    whole_windows: list = []
    whole = run(Detector(Settings()), data, whole_windows)
    whole += [e.to_json() for e in Detector(Settings()).finish()]  # nothing open: no-op

    first = Detector(Settings())
    part_windows: list = []
    part = run(first, data[:cut], part_windows)
    state = json.loads(json.dumps(first.snapshot()))  # must survive plain JSON
    second = Detector(Settings())
    second.restore(state, now_ms=0)
    part += run(second, data[cut:], part_windows)

    assert part_windows == whole_windows
    assert part == whole
    assert second.counters == counters_after(data)


def counters_after(data):
    d = Detector(Settings())
    run(d, data, [])
    return d.counters


def test_restore_refuses_mismatched_config():
    state = Detector(Settings()).snapshot()
    other = Detector(Settings(window={"size_seconds": 5}))
    with pytest.raises(ValueError, match="windows of 10000 ms"):
        other.restore(state, now_ms=0)
    with pytest.raises(ValueError, match="version"):
        Detector(Settings()).restore({**state, "version": 99}, now_ms=0)
