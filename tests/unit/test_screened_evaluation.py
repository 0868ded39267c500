"""The fast evaluation (screened share tails, vectorised volume learning, cheap silent
windows, quiet windows on the rows that can matter) against the exhaustive reference
(``Detector(exhaustive=True)``: every tail exact, one River ``EWMean`` per scope, every
window in full): same alerts, same ids, same counts, same state, on random traffic with
incidents, bursts and long silences."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statuswatch.config import Settings
from statuswatch.core import detector as detector_module
from statuswatch.core.detector import Detector
from statuswatch.core.rules import resolve
from statuswatch.core.window import ClosedWindow
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

#: The default horizons (1 min, 10 min, 1 h past the window), shorter ones that six
#: minutes of traffic fill (a count gate of 0 scores every cell), the last minute only,
#: and the window alone.
HORIZONS = [
    [{"windows": 1}, {"windows": 6}, {"windows": 60, "long_reference": True},
     {"windows": 360, "long_reference": True}],
    [{"windows": 1}, {"windows": 2}, {"windows": 6, "long_reference": True},
     {"windows": 24, "min_excess_count": 0}, {"windows": 72, "long_reference": True}],
    [{"windows": 1}, {"windows": 6}],
    [{"windows": 1}],
]

#: Thresholds low enough that random traffic fires often (volume drops included), so
#: the comparison covers firing, pending, held and resolved series, on every horizon.
settings_overrides = st.fixed_dictionaries({
    "scopes": st.fixed_dictionaries({"max_per_level": st.sampled_from([3, 8, 500])}),
    "baseline": st.fixed_dictionaries({
        "warmup_windows": st.sampled_from([2, 5]),
        "accept_after_windows": st.sampled_from([0, 6]),
        "reference_half_life_windows": st.sampled_from([30.0, 2160.0]),
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
        "horizons": st.sampled_from(HORIZONS),
    }),
})


def _traffic(seed: int, rate: float, apps: int, segments: list[tuple[int, int]],
             found: list[Incident], windows_per_batch: int = 1) -> list[list[bytes]]:
    """Kong records over ``segments`` (minute offsets, silent between them), in batches
    of ``windows_per_batch`` windows of event time (all but the last window a batch
    closes may be evaluated quietly)."""
    spec = SimSpec(seed=seed, rate=rate, n_apps=apps, incidents=tuple(found))
    chunks = [
        encode("kong", chunk, spec)
        for start, end in segments
        for chunk in generate(spec, T0 + start * MINUTE, T0 + end * MINUTE, 10_000)
    ]
    return [
        [record for chunk in chunks[i : i + windows_per_batch] for record in chunk]
        for i in range(0, len(chunks), windows_per_batch)
    ]


def _run(overrides: dict[str, Any], batches: list[list[bytes]], *, exhaustive: bool,
         serves_metrics: bool = True) -> tuple[list[dict[str, Any]], Detector]:
    detector = Detector(Settings(**overrides), exhaustive=exhaustive)
    detector.serves_metrics = serves_metrics
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
    windows_per_batch=st.sampled_from([1, 6]),
    serves_metrics=st.booleans(),
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fast_evaluation_gives_the_reference_alerts_counts_and_state(
    seed, rate, apps, found, silences, overrides, windows_per_batch, serves_metrics
):
    segments, t = [], 0
    for silence in silences:  # 6 minutes of traffic, then a silence of that many minutes
        segments.append((t, t + 6))
        t += 6 + silence
    batches = _traffic(seed, rate, apps, segments, found, windows_per_batch)
    fast_alerts, fast = _run(overrides, batches, exhaustive=False, serves_metrics=serves_metrics)
    ref_alerts, ref = _run(overrides, batches, exhaustive=True)
    assert json.dumps(fast_alerts) == json.dumps(ref_alerts)  # as written: -0.0 is not 0.0
    assert fast.counters == ref.counters
    assert _state(fast) == _state(ref)


def test_a_minute_alert_counts_the_apps_the_exhaustive_evaluation_counts():
    """Found by the property above: a fleet alert judged on the minute counted its
    anomalous apps (``blast_radius.scopes``) from minute scores the screen had left at 0
    (below ``clear_score`` but above ``blast_radius.scope_score``, or in apps without
    requests in the last window): 0 apps where the exhaustive evaluation counts 3."""
    overrides = {
        "scopes": {"max_per_level": 3},
        "baseline": {"warmup_windows": 2, "accept_after_windows": 0,
                     "reference_half_life_windows": 30.0},
        "detect": {"min_excess_count": 1, "min_share_ratio": 1.2, "k": 1,
                   "volume": {"direction": "down", "min_excess_count": 2, "fire_score": 3.5},
                   "blast_radius": {"min_scopes": 2, "scope_score": 1.0},
                   "horizons": [{"windows": 1}, {"windows": 6},
                                {"windows": 60, "long_reference": True},
                                {"windows": 360, "long_reference": True}]},
    }
    freeze = Incident("freeze", T0 + 2 * MINUTE, T0 + 6 * MINUTE, fraction=0.9)
    batches = _traffic(0, 40.0, 3, [(0, 6), (6, 12)], [freeze], 1)
    fast_alerts, _ = _run(overrides, batches, exhaustive=False, serves_metrics=False)
    ref_alerts, _ = _run(overrides, batches, exhaustive=True)
    assert any((a.get("blast_radius") or {}).get("scopes") for a in ref_alerts)
    assert fast_alerts == ref_alerts


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


@pytest.mark.parametrize("every_row_share", [0.0, 2.0])  # every row always / never
@pytest.mark.parametrize("horizons", [None, [{"windows": 1}, {"windows": 6}]])
def test_quiet_windows_are_taken_and_left_when_they_are_not_quiet(
    horizons, every_row_share, monkeypatch
):
    """Batches of six windows with an incident: the quiet evaluation takes most windows
    and hands the loud ones back to the full one; the alerts, counts and state are the
    reference's. With the shipped horizons (10 s to 1 h) and with the minute alone; on
    every row and on the rows that matter only."""
    monkeypatch.setattr(detector_module, "EVERY_ROW_SHARE", every_row_share)
    detect: dict[str, Any] = {"min_excess_count": 1}
    if horizons is not None:
        detect["horizons"] = horizons
    overrides = {"baseline": {"warmup_windows": 2}, "detect": detect}
    outage = Incident("outage", T0 + 8 * MINUTE, T0 + 11 * MINUTE, fraction=0.5)
    batches = _traffic(3, 40.0, 10, [(0, 20)], [outage], windows_per_batch=6)
    detector = Detector(Settings(**overrides))
    taken: list[bool] = []
    quietly = detector._evaluate_quietly

    def counted(window: ClosedWindow) -> bool:
        taken.append(quietly(window))
        return taken[-1]

    detector._evaluate_quietly = counted  # type: ignore[method-assign]
    sink = ListSink()
    backtest(detector, ListSource(batches).batches(), sink)
    ref_alerts, ref = _run(overrides, batches, exhaustive=True)
    # past the minute, an incident's aftermath stays loud for longer: fewer quiet windows
    assert taken.count(True) > (30 if horizons is None else 50) and False in taken
    assert sink.alerts == ref_alerts and {a["state"] for a in ref_alerts} == {"firing", "resolved"}
    assert detector.counters == ref.counters
    assert _state(detector) == _state(ref)


def _state_json(detector: Detector) -> str:
    """The snapshot, without the zeros a table grown to new scope rows ends in (reading
    the expectation grows it: no state)."""
    state = detector.snapshot()
    seen = state["baseline"]["windows_seen"]
    while seen and seen[-1] == 0:
        seen.pop()
    return json.dumps(state, sort_keys=True)


@given(
    seed=st.integers(0, 10_000),
    rate=st.sampled_from([0.3, 3.0, 40.0]),
    apps=st.integers(2, 30),
    found=st.lists(incidents, max_size=3),
    silences=st.lists(st.sampled_from([0, 1, 30]), min_size=1, max_size=3),
    overrides=settings_overrides,
    windows_per_batch=st.sampled_from([1, 6]),
    every_row_share=st.sampled_from([0.0, detector_module.EVERY_ROW_SHARE, 2.0]),
)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_each_quiet_window_changes_what_the_full_evaluation_does_or_nothing(
    seed, rate, apps, found, silences, overrides, windows_per_batch, every_row_share
):
    """Window by window: where the quiet evaluation takes a window, the detector's
    state (horizons' sums, baseline, long reference, counters) is what ``_evaluate_one``
    makes of it on a copy, which raises no alert; where it refuses, nothing changed.
    On every row, on the rows that matter only, and as the shipped share decides."""
    shipped = detector_module.EVERY_ROW_SHARE
    detector_module.EVERY_ROW_SHARE = every_row_share
    try:
        _compare_each_quiet_window(seed, rate, apps, found, silences, overrides,
                                   windows_per_batch)
    finally:
        detector_module.EVERY_ROW_SHARE = shipped


def _compare_each_quiet_window(
    seed: int, rate: float, apps: int, found: list[Incident], silences: list[int],
    overrides: dict[str, Any], windows_per_batch: int,
) -> tuple[list[bool], list[int]]:
    """Check each window the quiet evaluation takes or refuses, and each run of silent
    windows passed cheaply, against ``_evaluate_one`` on a copy; returns whether each
    quiet evaluation took its window, and the length of each silent run passed."""
    segments, t = [], 0
    for silence in silences:
        segments.append((t, t + 6))
        t += 6 + silence
    batches = _traffic(seed, rate, apps, segments, found, windows_per_batch)
    detector = Detector(Settings(**overrides))
    detector.serves_metrics = False
    outcomes: list[bool] = []
    quietly = detector._evaluate_quietly

    def compared(window: ClosedWindow) -> bool:
        twin = copy.deepcopy(detector, {id(detector.decoder): detector.decoder})
        before = _state_json(detector)
        twin_events = twin._evaluate_one(window)
        outcomes.append(quietly(window))
        if outcomes[-1]:
            assert twin_events == [] and not twin.alerts.live_keys()
            assert _state_json(detector) == _state_json(twin)
        else:
            assert _state_json(detector) == before
        return outcomes[-1]

    passed: list[int] = []
    pass_silent = detector._pass_silent

    def compared_silent(run: list[ClosedWindow]) -> None:
        twin = copy.deepcopy(detector, {id(detector.decoder): detector.decoder})
        twin_events = [event for window in run for event in twin._evaluate_one(window)]
        pass_silent(run)
        passed.append(len(run))
        assert twin_events == [] and not twin.alerts.live_keys()
        assert _state_json(detector) == _state_json(twin)

    detector._evaluate_quietly = compared  # type: ignore[method-assign]
    detector._pass_silent = compared_silent  # type: ignore[method-assign]
    backtest(detector, ListSource(batches).batches(), ListSink())
    return outcomes, passed


def test_the_comparison_sees_long_horizon_alerts_and_quiet_windows():
    """The properties above reach the horizons past the last minute: a spike fires on
    the hour's sum, the quiet evaluation takes windows while the 10-minute sum holds
    requests and hands back loud ones there too, and the alerts, counts and state are
    the reference's."""
    overrides = {"baseline": {"warmup_windows": 2}, "detect": {"min_excess_count": 1}}
    spike = Incident("spike", T0 + 8 * MINUTE, T0 + 14 * MINUTE, fraction=0.3)
    batches = _traffic(2, 40.0, 10, [(0, 36)], [spike], windows_per_batch=6)
    detector = Detector(Settings(**overrides))
    ten_minutes = Settings().detect.horizons[2].windows
    taken: list[tuple[bool, bool]] = []  # (taken, the 10-minute sum is full)
    quietly = detector._evaluate_quietly

    def counted(window: ClosedWindow) -> bool:
        full = detector.horizons.sums.windows >= ten_minutes
        taken.append((quietly(window), full))
        return taken[-1][0]

    detector._evaluate_quietly = counted  # type: ignore[method-assign]
    sink = ListSink()
    backtest(detector, ListSource(batches).batches(), sink)
    ref_alerts, ref = _run(overrides, batches, exhaustive=True)
    assert any(a["horizon_seconds"] == 3600 for a in sink.alerts)
    assert taken.count((True, True)) > 50 and (False, True) in taken
    assert sink.alerts == ref_alerts
    assert detector.counters == ref.counters
    assert _state(detector) == _state(ref)


APP_UNDER_SERVICE_APP = [[], ["service"], ["app"], ["service", "app"]]  # apps have children
ONE_APP_RULE = [{"name": "one app", "scope": {"app": "app-0001"}, "fire_score": 9}]


def _recycle_and_compare_tables(seed: int, cap: int, levels: Any, rules: Any) -> int:
    """Feed traffic that makes top-K swaps; after each batch the tables the detector
    kept must equal tables built afresh. Returns how many rows were recycled."""
    scopes: dict[str, Any] = {"max_per_level": cap}
    if levels is not None:
        scopes["levels"] = levels
    detector = Detector(Settings(scopes=scopes, detect={"rules": rules}))
    recycled = 0
    for batch in _traffic(seed, 40.0, 20, [(0, 10)], []):
        before = list(detector.scopes.labels)
        detector.process(batch, now_ms=detector.counters.last_event_ms or 0)
        recycled += sum(a != b for a, b in zip(before, detector.scopes.labels, strict=False))
        n_rows, n_cols = len(detector.scopes), len(detector.codes)
        kept, parents = detector._tables(n_rows, n_cols)
        assert parents.tolist() == detector.scopes.parents()[:n_rows].tolist()
        fresh = resolve(detector.settings.detect, detector.scopes.labels, detector.codes.codes)
        for name in ("fire_score", "rule_index", "ignore", "up", "down"):
            assert np.array_equal(getattr(kept, name), getattr(fresh, name))
    return recycled


@given(
    seed=st.integers(0, 1_000), cap=st.sampled_from([2, 3, 5]),
    levels=st.sampled_from([None, APP_UNDER_SERVICE_APP]),
    rules=st.sampled_from([[], ONE_APP_RULE]),
)
@settings(max_examples=12, deadline=None)
def test_tables_kept_across_row_recycling_are_the_rebuilt_ones(seed, cap, levels, rules):
    """After top-K swaps the detector keeps its parent rows and rule table, finding
    only the recycled rows' parents again: the same tables as built afresh."""
    _recycle_and_compare_tables(seed, cap, levels, rules)


def test_the_table_comparison_sees_recycled_rows():
    for levels, rules in ((None, []), (APP_UNDER_SERVICE_APP, ONE_APP_RULE)):
        assert _recycle_and_compare_tables(3, 2, levels, rules) > 0


def test_a_silence_passed_cheaply_teaches_and_forgets_what_each_window_would():
    """Found by the comparison above: past the longest horizon's first hour, a silence
    passed cheaply left the long reference's pending windows that came due in it
    untaught (the first window after it read the reference without them), and kept
    resolves every horizon had left behind. Each run is checked against
    ``_evaluate_one`` window by window."""
    overrides = {"baseline": {"warmup_windows": 2, "reference_half_life_windows": 30.0},
                 "detect": {"min_excess_count": 1}}
    freeze = Incident("freeze", T0 + 60 * MINUTE, T0 + 64 * MINUTE, fraction=0.9)
    _, passed = _compare_each_quiet_window(3, 3.0, 10, [freeze], [0] * 10 + [90, 0],
                                           overrides, 1)
    assert sum(passed) > 60  # most of the hour and a half of silence


def test_a_silent_window_with_a_long_horizon_hit_goes_to_the_full_evaluation(monkeypatch):
    """``_evaluate_silently`` hands a window whose horizons past the minute hit back to
    ``_evaluate_one``, having changed nothing: with every silent view made to hit, each
    silent window after a burst takes the full evaluation, and the alerts, counts and
    state are still the reference's."""
    from statuswatch.core.horizon_judge import HorizonJudge

    silent_views = HorizonJudge.silent_views
    handed_back: list[int] = []

    def hitting(self: HorizonJudge, *args: Any, **kwargs: Any) -> Any:
        views = silent_views(self, *args, **kwargs)
        if views[-1].hit_up.size:  # a row with a request in the last minute
            views[-1].hit_up.reshape(-1)[0] = True
            handed_back.append(len(views))
        return views

    monkeypatch.setattr(HorizonJudge, "silent_views", hitting)
    overrides = {"baseline": {"warmup_windows": 2}, "detect": {"min_excess_count": 1}}
    batches = _traffic(1, 0.3, 5, [(0, 20), (30, 40)], [])
    fast_alerts, fast = _run(overrides, batches, exhaustive=False, serves_metrics=False)
    ref_alerts, ref = _run(overrides, batches, exhaustive=True)
    assert len(handed_back) > 10  # the windows after each burst
    assert fast_alerts == ref_alerts
    assert fast.counters == ref.counters
    assert _state(fast) == _state(ref)
