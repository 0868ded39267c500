"""Scoring alerts against labelled incidents (statuswatch.evaluate)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statuswatch.evaluate import evaluate, matches

DAY = 86_400.0


def label(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "inc", "kind": "freeze", "start": 1000.0, "end": 1600.0,
                            "code": 403, "direction": "up", "scope": {}}
    return base | kw


def alert(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "a1", "state": "firing", "signal": "share", "code": 403,
                            "direction": "up", "scope": {}, "window_end": 1010.0}
    return base | kw


# -- matching rules -----------------------------------------------------------------


def test_window_end_must_lie_in_the_label_window_plus_grace():
    lab = label()
    assert not matches(alert(window_end=999.0), lab)
    assert matches(alert(window_end=1000.0), lab)
    assert matches(alert(window_end=1660.0), lab, grace_s=60)
    assert not matches(alert(window_end=1660.5), lab, grace_s=60)
    assert matches(alert(window_end=1700.0), lab, grace_s=100)


def test_only_firing_alerts_count():
    assert not matches(alert(state="resolved"), label())
    r = evaluate([alert(state="resolved")], [label()], 0, DAY)
    assert r.firing_alerts == 0 and r.caught == 0 and r.precision is None


def test_share_alert_needs_the_same_code_and_direction():
    lab = label()
    assert not matches(alert(code=401), lab)
    assert not matches(alert(direction="down"), lab)
    assert matches(alert(signal="share"), lab)
    no_signal = alert()
    del no_signal["signal"]
    assert matches(no_signal, lab)  # alerts from before the "signal" field are share alerts


def test_a_creep_label_matches_any_of_its_codes():
    lab = label(kind="creep", code=500, codes=[500, 502, 503], scope={"service": "s"})
    assert matches(alert(code=502, scope={"service": "s"}), lab)
    assert not matches(alert(code=504, scope={"service": "s"}), lab)


def test_a_drop_matches_volume_down_or_2xx_down_share_alerts():
    lab = label(kind="drop", code=None, direction="down")
    assert matches(alert(signal="volume", code="all", direction="down"), lab)
    assert not matches(alert(signal="volume", code="all", direction="up"), lab)
    assert matches(alert(code=200, direction="down"), lab)
    assert matches(alert(code=204, direction="down"), lab)
    assert not matches(alert(code=404, direction="down"), lab)
    assert not matches(alert(code=200, direction="up"), lab)


def test_volume_up_matches_a_label_whose_volume_rose():
    storm = label(kind="storm", code=429, scope={"app": "app-0042"}, factor=20.0)
    assert matches(alert(signal="volume", code="all", scope={"app": "app-0042"}), storm)
    assert not matches(alert(signal="volume", code="all"), label())  # freeze without retries


@pytest.mark.parametrize(
    ("alert_scope", "label_scope", "ok"),
    [
        ({}, {}, True),
        ({}, {"service": "a"}, True),
        ({"service": "a"}, {}, True),
        ({"service": "a"}, {"service": "a", "route": "r"}, True),
        ({"service": "a", "route": "r"}, {"service": "a"}, True),
        ({"service": "b"}, {"service": "a"}, False),
        ({"service": "a", "route": "x"}, {"service": "a", "route": "r"}, False),
        ({"app": "app-1"}, {"service": "a"}, False),
    ],
)
def test_scopes_must_be_nested(alert_scope, label_scope, ok):
    assert matches(alert(scope=alert_scope), label(scope=label_scope)) is ok


def test_an_app_alert_matches_a_freeze_only_for_a_frozen_app():
    lab = label(apps=["app-0001", "app-0007"])
    assert matches(alert(scope={"app": "app-0007"}), lab)
    assert not matches(alert(scope={"app": "app-0002"}), lab)


# -- the report ---------------------------------------------------------------------


def test_delay_is_from_the_first_matching_alert_and_ids_are_listed():
    alerts = [
        alert(id="late", window_end=1030.0, scope={"service": "s"}),
        alert(id="first", window_end=1020.0),
        alert(id="first", state="resolved", window_end=1700.0),
    ]
    (res,) = evaluate(alerts, [label()], 0, DAY).labels
    assert res.caught and res.delay_s == 20.0
    assert res.alert_ids == ["first", "late"]


def test_false_alarms_precision_recall_and_rate():
    labels = [label(name="a"), label(name="b", start=5000.0, end=5600.0, code=401)]
    alerts = [
        alert(id="hit", window_end=1010.0),
        alert(id="fa1", window_end=3000.0),
        alert(id="fa2", code=500, window_end=1020.0),
        alert(id="fa3", signal="volume", code="all", direction="down", window_end=1020.0),
    ]
    r = evaluate(alerts, labels, 0.0, 2 * DAY)
    assert [x.caught for x in r.labels] == [True, False]
    assert r.labels[1].delay_s is None and r.labels[1].alert_ids == []
    assert [fa["id"] for fa in r.false_alarms] == ["fa1", "fa2", "fa3"]
    assert r.false_alarms_per_day == 1.5
    assert r.precision == 0.25 and r.recall == 0.5
    j = r.to_json()
    assert j["caught"] == 1 and j["false_alarms"] == 3 and j["labels"][0]["delay_s"] == 10.0
    assert j["false_alarm_alerts"][2] == {"id": "fa3", "signal": "volume", "code": "all",
                                          "direction": "down", "scope": {}, "window_end": 1020.0}


def test_one_alert_covering_two_overlapping_labels_counts_once():
    labels = [label(name="a"), label(name="b", start=1005.0, scope={"service": "s"})]
    r = evaluate([alert(window_end=1010.0)], labels, 0, DAY)
    assert r.caught == 2 and r.matched_alerts == 1 and r.precision == 1.0


def test_empty_span_and_bad_arguments():
    r = evaluate([alert(window_end=5.0)], [], 10.0, 10.0)
    assert r.false_alarms_per_day is None and r.recall is None and len(r.false_alarms) == 1
    with pytest.raises(ValueError, match="start_s <= end_s"):
        evaluate([], [], 10.0, 5.0)
    with pytest.raises(ValueError, match="grace_s"):
        evaluate([], [], 0.0, 5.0, grace_s=-1)


def test_format_table_names_every_label_and_false_alarm():
    labels = [label(name="freeze-403", scope={"service": "email-api"})]
    alerts = [alert(scope={"service": "email-api"}), alert(id="x", code=500, window_end=50.0)]
    text = evaluate(alerts, labels, 0.0, DAY).format_table()
    assert "freeze-403" in text and "service=email-api" in text and "yes" in text
    assert "false alarm: share 500 up in fleet at window_end 50.0" in text
    assert "{" not in text  # never mistaken for the JSON summary that follows on stderr


# -- properties ---------------------------------------------------------------------

codes = st.sampled_from([200, 401, 403, 404, 429, 500, 0])
scopes = st.sampled_from([{}, {"service": "a"}, {"service": "b"}, {"service": "a", "route": "r"},
                          {"app": "app-1"}])
alerts_st = st.builds(
    lambda i, code, d, scope, end, sig, state: {
        "id": f"id{i}", "state": state, "signal": sig, "code": code, "direction": d,
        "scope": scope, "window_end": end},
    st.integers(0, 10**6), codes, st.sampled_from(["up", "down"]), scopes,
    st.floats(0, 20_000, allow_nan=False), st.sampled_from(["share", "volume"]),
    st.sampled_from(["firing", "firing", "resolved"]),
)
labels_st = st.builds(
    lambda start, dur, code, d, scope: {
        "name": "l", "kind": "x", "start": start, "end": start + dur,
        "code": None if d == "down" else code, "direction": d, "scope": scope},
    st.floats(0, 15_000, allow_nan=False), st.floats(10, 3000, allow_nan=False),
    st.sampled_from([401, 403, 404, 429, 500]), st.sampled_from(["up", "up", "down"]), scopes,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(alerts_st, max_size=12), st.lists(labels_st, max_size=5), alerts_st)
def test_adding_an_alert_never_reduces_the_caught_count(alerts, labels, extra):
    before = evaluate(alerts, labels, 0.0, 20_000.0)
    after = evaluate([*alerts, extra], labels, 0.0, 20_000.0)
    assert after.caught >= before.caught
    for b, a in zip(before.labels, after.labels, strict=True):
        assert a.caught >= b.caught
        if b.delay_s is not None:
            assert a.delay_s is not None and a.delay_s <= b.delay_s


@settings(max_examples=200, deadline=None)
@given(st.lists(alerts_st, max_size=12), st.lists(labels_st, max_size=5), alerts_st)
def test_an_alert_outside_every_label_window_is_a_false_alarm(alerts, labels, extra):
    grace = 60.0
    extra = extra | {"state": "firing", "id": "outside"}
    inside = any(lb["start"] <= extra["window_end"] <= lb["end"] + grace for lb in labels)
    r = evaluate([*alerts, extra], labels, 0.0, 20_000.0, grace_s=grace)
    if not inside:
        assert "outside" in [fa["id"] for fa in r.false_alarms]
    assert len(r.false_alarms) + r.matched_alerts == r.firing_alerts
