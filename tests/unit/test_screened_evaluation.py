"""The fast evaluation (screened share tails, vectorised volume learning, cheap silent
windows) against the exhaustive reference (``Detector(exhaustive=True)``: every tail
exact, one River ``EWMean`` per scope, every window in full): same alerts, same ids,
same counts, same state, on random traffic with incidents, bursts and long silences."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statuswatch.config import Settings
from statuswatch.core.detector import Detector
from statuswatch.shell.backtest import backtest
from statuswatch.shell.sinks import ListSink
from statuswatch.shell.sources import ListSource
from statuswatch.simulate.encode import encode
from statuswatch.simulate.incidents import Incident
from statuswatch.simulate.spec import SimSpec
from statuswatch.simulate.traffic import generate

T0 = 1_680_566_400_000
MINUTE = 60_000

incidents = st.builds(
    lambda kind, start, minutes, fraction: Incident(
        kind, T0 + start * MINUTE, T0 + (start + minutes) * MINUTE, fraction=fraction
    ),
    st.sampled_from(["freeze", "creep", "outage", "spike", "drop", "newcode"]),
    st.integers(2, 12),
    st.integers(1, 6),
    st.sampled_from([0.05, 0.3, 0.9]),
)

#: Thresholds low enough that random traffic fires often (volume drops included), so
#: the comparison covers firing, pending, held and resolved series.
settings_overrides = st.fixed_dictionaries({
    "scopes": st.fixed_dictionaries({"max_per_level": st.sampled_from([3, 8, 500])}),
    "baseline": st.fixed_dictionaries({
        "warmup_windows": st.sampled_from([2, 5]),
        "accept_after_windows": st.sampled_from([0, 6]),
    }),
    "detect": st.fixed_dictionaries({
        "min_excess_count": st.sampled_from([1, 3]),
        "min_share_ratio": st.sampled_from([1.2, 2.0]),
        "k": st.sampled_from([1, 2]),
        "volume": st.fixed_dictionaries({
            "direction": st.sampled_from(["down", "both"]),
            "min_excess_count": st.sampled_from([2, 20]),
            "fire_score": st.sampled_from([3.5, 8.0]),
        }),
        "blast_radius": st.fixed_dictionaries({
            "min_scopes": st.just(2), "scope_score": st.sampled_from([1.0, 3.0])}),
    }),
})


def _traffic(seed: int, rate: float, apps: int, segments: list[tuple[int, int]],
             found: list[Incident]) -> list[list[bytes]]:
    """Kong records over ``segments`` (minute offsets, silent between them)."""
    spec = SimSpec(seed=seed, rate=rate, n_apps=apps, incidents=tuple(found))
    return [
        encode("kong", chunk, spec)
        for start, end in segments
        for chunk in generate(spec, T0 + start * MINUTE, T0 + end * MINUTE, 10_000)
    ]


def _run(overrides: dict[str, Any], batches: list[list[bytes]], *, exhaustive: bool
         ) -> tuple[list[dict[str, Any]], Detector]:
    detector = Detector(Settings(**overrides), exhaustive=exhaustive)
    sink = ListSink()
    backtest(detector, ListSource(batches).batches(), sink)
    return sink.alerts, detector


def _state(detector: Detector) -> dict[str, Any]:
    state = detector.snapshot()
    for key in ("volume", "volume_dispersion"):  # River keeps rows in insertion order
        state["baseline"][key] = sorted(state["baseline"][key])
    return state


@given(
    seed=st.integers(0, 10_000),
    rate=st.sampled_from([0.3, 3.0, 40.0]),
    apps=st.integers(2, 30),
    found=st.lists(incidents, max_size=3),
    silences=st.lists(st.sampled_from([0, 1, 30, 120]), min_size=1, max_size=3),
    overrides=settings_overrides,
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fast_evaluation_gives_the_reference_alerts_counts_and_state(
    seed, rate, apps, found, silences, overrides
):
    segments, t = [], 0
    for silence in silences:  # 6 minutes of traffic, then a silence of that many minutes
        segments.append((t, t + 6))
        t += 6 + silence
    batches = _traffic(seed, rate, apps, segments, found)
    fast_alerts, fast = _run(overrides, batches, exhaustive=False)
    ref_alerts, ref = _run(overrides, batches, exhaustive=True)
    assert json.dumps(fast_alerts) == json.dumps(ref_alerts)  # as written: -0.0 is not 0.0
    assert fast.counters == ref.counters
    assert _state(fast) == _state(ref)


def test_the_comparison_sees_alerts_and_silent_windows():
    """The property above is not vacuous: such traffic fires, resolves and has silence."""
    overrides = {"baseline": {"warmup_windows": 2}, "detect": {"min_excess_count": 1}}
    outage = Incident("outage", T0 + 8 * MINUTE, T0 + 11 * MINUTE, fraction=0.5)
    batches = _traffic(3, 40.0, 10, [(0, 12), (42, 48)], [outage])
    fast_alerts, fast = _run(overrides, batches, exhaustive=False)
    ref_alerts, _ = _run(overrides, batches, exhaustive=True)
    states = {a["state"] for a in fast_alerts}
    assert states == {"firing", "resolved"} and fast_alerts == ref_alerts
    assert fast.counters.windows_closed > 250  # the half hour of silence was closed


def test_metrics_read_exact_scores_where_the_screen_left_cells_out():
    batches = _traffic(5, 40.0, 10, [(0, 8)], [])
    _, fast = _run({}, batches, exhaustive=False)
    _, ref = _run({}, batches, exhaustive=True)
    assert fast.last_report is not None and ref.last_report is not None
    screened, exact = fast.last_report.shares, fast.last_report.exact_shares()
    assert np.array_equal(exact.up, ref.last_report.shares.up)
    assert np.array_equal(exact.down, ref.last_report.shares.down)
    left_out = (screened.down == 0) & (exact.down > 0)
    assert left_out.any()  # the screen did skip cells, which all score below clear
    assert (exact.down[left_out] < Settings().detect.clear_score).all()
