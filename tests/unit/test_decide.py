"""Alert lifecycle: k-of-m, extreme fast path, hysteresis, minimum duration."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from statuswatch.core.decide import AlertTracker, Evidence, Lifecycle, SeriesKey, alert_id

KEY = SeriesKey(1, 2, "up", "share")


def ev(hit: bool, calm: bool | None = None, extreme: bool = False) -> Evidence:
    calm = (not hit) if calm is None else calm
    return Evidence(hit, calm, extreme, 9.0 if hit else 0.0, 10, 1.0, 0.1, 0.01, 100)


def run(tracker: AlertTracker, evidence: list[Evidence]) -> list[tuple[int, str]]:
    out = []
    for i, e in enumerate(evidence):
        event = tracker.step(KEY, e, window_start_ms=i * 10, window_end_ms=(i + 1) * 10,
                             code=403, scope={})
        if event is not None:
            out.append((i, event.state))
    return out


def test_fires_on_k_of_m_and_resolves_after_clear_windows():
    t = AlertTracker(Lifecycle(k=2, m=3, min_firing_windows=1, clear_windows=2))
    hits = [True, False, True, True, False, False, False]
    assert run(t, [ev(h) for h in hits]) == [(2, "firing"), (5, "resolved")]


def test_extreme_evidence_fires_in_one_window():
    t = AlertTracker(Lifecycle(k=3, m=5, min_firing_windows=1, clear_windows=1))
    assert run(t, [ev(True, extreme=True)]) == [(0, "firing")]


def test_hysteresis_keeps_firing_between_clear_and_fire_scores():
    t = AlertTracker(Lifecycle(k=1, m=1, min_firing_windows=1, clear_windows=1))
    # not a hit, but not calm either (score between the two thresholds)
    events = run(t, [ev(True)] + [ev(False, calm=False)] * 10 + [ev(False, calm=True)])
    assert events == [(0, "firing"), (11, "resolved")]


def test_minimum_firing_duration_delays_resolve():
    t = AlertTracker(Lifecycle(k=1, m=1, min_firing_windows=5, clear_windows=1))
    assert run(t, [ev(True)] + [ev(False)] * 6) == [(0, "firing"), (4, "resolved")]


@given(st.lists(st.booleans(), max_size=60), st.integers(1, 4), st.integers(0, 3))
def test_lifecycle_invariants(hits, k, extra):
    m = k + extra
    t = AlertTracker(Lifecycle(k=k, m=m, min_firing_windows=2, clear_windows=2))
    events = run(t, [ev(h) for h in hits])
    states = [s for _, s in events]
    # strictly alternating, starting with firing
    assert all(s == ("firing" if i % 2 == 0 else "resolved") for i, s in enumerate(states))
    for i, state in events:
        window = hits[max(0, i - m + 1) : i + 1]
        if state == "firing":
            assert hits[i] and sum(window) >= k
        else:
            assert not hits[i] and not hits[i - 1]
    # no firing without k hits in some m-window
    if not any(sum(hits[j : j + m]) >= k for j in range(len(hits))):
        assert events == []


def test_ids_are_deterministic_per_episode():
    a = alert_id({"app": "x"}, 403, "up", "share", 10_000)
    assert a == alert_id({"app": "x"}, 403, "up", "share", 10_000)
    assert a != alert_id({"app": "x"}, 403, "up", "share", 20_000)
    assert a != alert_id({"app": "x"}, 403, "down", "share", 10_000)
    assert a != alert_id({"app": "x"}, 403, "up", "volume", 10_000)
