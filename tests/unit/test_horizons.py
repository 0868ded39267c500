"""Evidence over several horizons and the long reference: running sums equal the sums
they stand for, a slow creep pages once and resolves once, stationary traffic at any
rate pages nothing on any horizon."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from statuswatch.config import Settings, load_settings
from statuswatch.core.columns import DecodedBatch
from statuswatch.core.detector import Detector
from statuswatch.core.horizons import HorizonSums
from statuswatch.core.reference import LongReference
from statuswatch.errors import ConfigError
from statuswatch.simulate.incidents import Incident
from statuswatch.simulate.spec import SimSpec
from statuswatch.simulate.traffic import generate

T0 = 1_680_566_400_000
W = 10_000
MINUTE = 60_000


@given(
    lengths=st.sampled_from([(1, 6, 60, 360), (1, 2, 4), (1, 3), (1, 5, 10)]),
    steps=st.lists(st.one_of(st.integers(0, 5), st.just(-1), st.integers(-400, -2)),
                   min_size=1, max_size=120),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=60, deadline=None)
def test_running_sums_equal_the_windows_they_cover(lengths, steps, seed):
    """Against re-summing the history: each horizon's sum is exactly the last ``span``
    windows (rows growing as scopes appear, silent runs passed in one call), and a
    snapshot through JSON continues identically."""
    rng = np.random.default_rng(seed)
    sums = HorizonSums(lengths)
    history: list[np.ndarray] = []
    rows = 1
    for step in steps:
        if step < 0:  # a silent run of -step windows
            sums.push_silent(-step, (rows, 3))
            history += [np.zeros((rows, 3), np.int64)] * -step
            continue
        rows += step % 2
        counts = rng.poisson(2.0, (rows, 3)).astype(np.int64)
        got = sums.push(counts)
        history.append(counts)
        for i, span in enumerate(sums.spans()):
            expected = np.zeros((rows, 3), np.int64)
            for past in history[len(history) - span:]:
                expected[: past.shape[0]] += past
            assert np.array_equal(got[i], expected), (i, span)
            assert lengths[i] - (lengths[i - 1] if i else 1) < span <= lengths[i] or \
                span == len(history)
        restored = HorizonSums(lengths)
        restored.restore(json.loads(json.dumps(sums.snapshot())))
        assert restored.snapshot() == sums.snapshot()
        sums = restored


@given(
    lengths=st.sampled_from([(1, 6, 60, 360), (1, 2, 4), (1, 3), (1,)]),
    steps=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3)), min_size=1, max_size=80),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=60, deadline=None)
def test_a_peek_is_the_push_at_its_rows_and_push_rows_the_push(lengths, steps, seed):
    """``peek`` returns ``push``'s sums at the rows asked for and ``spans()`` after it,
    changing nothing; ``push_rows`` of counts that are 0 elsewhere leaves the state
    ``push`` leaves."""
    rng = np.random.default_rng(seed)
    pushed, by_rows = HorizonSums(lengths), HorizonSums(lengths)
    n_rows = 1
    for grow, busy in steps:
        n_rows += grow  # scopes appear: the tables grow between windows
        rows = np.sort(rng.choice(n_rows, size=min(busy, n_rows), replace=False))
        counts = np.zeros((n_rows, 3), np.int64)
        counts[rows] = rng.poisson(1.5, (len(rows), 3))
        before = json.dumps(by_rows.snapshot())
        peeked, spans = by_rows.peek(counts, rows)
        assert json.dumps(by_rows.snapshot()) == before
        got = pushed.push(counts)
        assert spans == pushed.spans()
        assert [a.tolist() for a in peeked] == [a[rows].tolist() for a in got]
        by_rows.push_rows(counts, rows)
        assert by_rows.snapshot() == pushed.snapshot()


def test_the_reference_holds_frozen_series_and_accepts_only_given_codes():
    ref = LongReference(half_life_windows=50)
    mix = np.array([[90, 5, 5]])
    for _ in range(100):
        ref.learn(mix, np.array([100]))
    frozen = np.array([[False, True, False]])
    for _ in range(100):  # the second code creeps to 50 %: frozen, it does not teach
        ref.learn(np.array([[45, 50, 5]]), np.array([100]), frozen=frozen)
    share = ref.up_share(1, 3)[0]
    assert share[1] == pytest.approx(0.05, rel=1e-6)
    assert share[0] < 0.9  # the code that was not frozen learned its fall
    ref.accept(0, [1], np.array([45, 50, 5]), 100)
    after = ref.up_share(1, 3)[0]
    assert after[1] == pytest.approx(0.5, rel=1e-6)
    assert after[2] == pytest.approx(share[2], rel=1e-9)


def test_horizons_are_validated_with_their_key_named():
    with pytest.raises(ConfigError, match=r"detect\.horizons"):
        load_settings(None, detect={"horizons": [{"windows": 1}, {"windows": 7},
                                                 {"windows": 60}]})
    with pytest.raises(ConfigError, match=r"detect\.horizons"):
        load_settings(None, detect={"horizons": [{"windows": 6}]})
    with pytest.raises(ConfigError, match=r"detect\.horizons\.1\.min_share_ratio"):
        load_settings(None, detect={"horizons": [{"windows": 1},
                                                 {"windows": 6, "min_share_ratio": 0.5}]})


def _run(spec: SimSpec, settings: Settings, minutes: int) -> list[dict]:
    detector = Detector(settings)
    services = np.array(spec.services, dtype=object)
    routes = np.array(spec.routes, dtype=object)
    apps = np.array(spec.apps, dtype=object)
    alerts = []
    for chunk in generate(spec, T0, T0 + minutes * MINUTE, MINUTE):
        dims = {"service": services[chunk.service].tolist(),
                "route": routes[chunk.route].tolist(), "app": apps[chunk.app].tolist()}
        batch = DecodedBatch(chunk.ts_ms, chunk.status, dims,
                             np.arange(len(chunk), dtype=np.int64))
        if len(batch):
            now = int(batch.ts_ms.max())
            detector.count(batch, now_ms=now)
            alerts += [e.to_json() for e in detector.close_ready(now)]
    return alerts + [e.to_json() for e in detector.finish()]


def test_a_slow_creep_pages_once_on_its_horizon_and_resolves_once():
    """5xx of one service creeps from its usual share to 4 % over 40 minutes at a few
    requests a second, then holds 20 minutes. Each window is only slightly above the
    last: the learned share follows it, the long reference does not. With a slow
    learned share (half-life 5000 windows) the summed evidence also fired at once,
    but resolved on the window's calm and fired again, four times in 15 minutes."""
    onset = T0 + 120 * MINUTE
    creep = Incident("creep", onset, onset + 60 * MINUTE, service="email-api",
                     fraction=0.04, codes=(500, 502, 503, 504), ramp_ms=40 * MINUTE)
    spec = SimSpec(seed=3, rate=60, n_apps=40, incidents=(creep,))
    for half_life in (90.0, 5000.0):
        alerts = _run(spec, Settings(baseline={"half_life_windows": half_life}), 240)
        firing = [a for a in alerts if a["state"] == "firing"]
        mine = [a for a in alerts if a["scope"] == {"service": "email-api"}
                and a["code"] in ("5xx", 500, 502, 503, 504)]
        assert [a["state"] for a in mine] == ["firing", "resolved"], (half_life, mine)
        fired = mine[0]
        assert fired["window_end"] - onset / 1000 <= 30 * 60
        assert fired["horizon_seconds"] >= 600  # a long horizon saw it
        assert fired["observed"]["count"] >= 2 * fired["expected"]["count"]
        assert mine[1]["window_end"] > (onset + 60 * MINUTE) / 1000  # not before it ended
        assert [a for a in firing if a is not fired] == [], half_life


MIX = {200: 0.9, 304: 0.04, 404: 0.035, 401: 0.015, 500: 0.008, 503: 0.002}


@given(rate=st.floats(0.01, 10_000.0), seed=st.integers(0, 2**16))
@example(rate=0.01, seed=1)
@example(rate=10_000.0, seed=1)
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_stationary_traffic_at_any_rate_fires_nothing_on_any_horizon(rate, seed):
    """From one request in ten windows to 100,000 a window, over 100 minutes (every
    horizon full, the hour's too): a fixed mix over three services and five apps
    (one of them rare) never pages, shipped defaults."""
    rng = np.random.default_rng(seed)
    detector = Detector(Settings())
    codes, probs = np.array(list(MIX)), np.array(list(MIX.values()))
    app_weights = np.array([0.4, 0.3, 0.2, 0.095, 0.005])
    fired = []
    for w in range(600):
        n = int(rng.poisson(rate * W / 1000))
        status = codes[rng.choice(len(codes), n, p=probs)] if n else np.zeros(0, np.int64)
        services = np.array(["a", "b", "c"])[rng.integers(0, 3, n)].tolist()
        apps = np.array([f"app-{i}" for i in range(5)])[
            rng.choice(5, n, p=app_weights)].tolist()
        t = T0 + w * W
        batch = DecodedBatch(np.full(n, t + 1, np.int64), status.astype(np.int64),
                             {"service": services, "route": ["r"] * n, "app": apps},
                             np.arange(n, dtype=np.int64))
        detector.count(batch, now_ms=t)
        fired += [e.to_json() for e in detector.close_ready(now_ms=t)]
    fired += [e.to_json() for e in detector.finish()]
    assert detector.counters.windows_closed >= 500  # every horizon filled, the hour too
    assert [a for a in fired if a["state"] == "firing"] == []


def test_the_alert_says_which_horizon_fired_it():
    from statuswatch.shell.alertformat import alertmanager_alert

    alert = {"id": "a1", "state": "firing", "code": 429, "direction": "up", "signal": "share",
             "scope": {"app": "app-0043"}, "window_start": 600.0, "window_end": 610.0,
             "episode_start": 610.0, "observed": {"share": 0.55, "count": 12},
             "expected": {"share": 0.003, "count": 0.07}, "total": 22, "score": 14.2,
             "horizon_seconds": 600.0, "contributors": []}
    body = alertmanager_alert(alert, "page", "http://sw/alerts", 700.0)
    assert body["annotations"]["horizon"] == "10 min"
    assert "rose in app=app-0043 over 10 min: 55.00% vs 0.30%" in body["annotations"][
        "description"]
    assert "horizon" not in body["labels"]  # a label would split one alert in two



def test_a_storm_of_a_two_a_minute_app_pages_within_ten_minutes():
    """An app at 2 requests a minute, 3 % 404 as usual, 2.5 h of history, gets 429 on
    60 % of its calls (3 of every 5). Over 10 minutes that is 12 where 0.7 were
    expected. Its 1-minute sums (one or two 429s) are never elevated; learned at once,
    they taught the long reference (2.3 % to 5.8 % of 4xx) while the 10-minute sum was
    judged against it, and nothing paged in the storm's 20 minutes. The reference learns
    each window only once the 10-minute horizon has judged it (``core.lagged``)."""
    rng = np.random.default_rng(7)
    detector = Detector(Settings())
    storm_start = 150 * 6  # windows: 2.5 h of history first
    big = np.array([200, 200, 200, 200, 304, 404])
    alerts = []
    for w in range(storm_start + 20 * 6):
        t = T0 + w * W
        status = big[rng.integers(0, len(big), 30)].tolist()
        apps = [f"big-{i % 3}" for i in range(30)]
        if w % 3 == 0:  # the small app: one call every 30 s
            if w < storm_start:
                status.append(404 if rng.random() < 0.03 else 200)
            else:
                status.append(429 if (w - storm_start) // 3 % 5 in (0, 2, 4) else 200)
            apps.append("small")
        n = len(status)
        batch = DecodedBatch(np.full(n, t + 1, np.int64), np.array(status, np.int64),
                             {"service": ["a"] * n, "route": ["r"] * n, "app": apps},
                             np.arange(n, dtype=np.int64))
        detector.count(batch, now_ms=t + W)
        alerts += [e.to_json() for e in detector.close_ready(now_ms=t + W)]
    mine = [a for a in alerts if a["state"] == "firing" and a["scope"] == {"app": "small"}]
    assert mine, [a for a in alerts if a["state"] == "firing"]
    assert mine[0]["code"] in (429, "4xx") and mine[0]["horizon_seconds"] == 600
    assert mine[0]["window_end"] - (T0 + storm_start * W) / 1000 <= 600



@pytest.mark.parametrize("seed", [1, 2, 5])
def test_a_night_freeze_of_five_percent_of_apps_counts_its_apps_over_its_horizon(seed):
    """10 of 200 apps get 403 on every call at 2 requests a second fleet-wide: under one
    403 a window, and each frozen app sees none or one request a window, so per window
    no app is anomalous. The fleet's 403 share pages over 10 minutes, and its blast
    radius counts the apps over those 10 minutes: those above their expected 403s,
    less those chance explains (each app alone has too few requests to be anomalous)."""
    onset = T0 + 120 * MINUTE
    freeze = Incident("freeze", onset, onset + 30 * MINUTE, fraction=0.05)
    spec = SimSpec(seed=seed, rate=2.0, incidents=(freeze,))
    frozen = set(spec.labels()[0]["apps"])
    alerts = _run(spec, Settings(), 150)
    firing = [a for a in alerts if a["state"] == "firing"]
    assert [(a["scope"], a["code"]) for a in firing] == [({}, 403)], firing
    alert = firing[0]
    assert alert["window_end"] - onset / 1000 <= 600 and alert["horizon_seconds"] == 600
    blast = alert["blast_radius"]
    assert blast["level"] == ["app"] and blast["active"] > 100
    assert 3 <= blast["estimated"] <= len(frozen) and blast["scopes"] <= blast["estimated"]
    apps = {c["scope"]["app"] for c in alert["contributors"] if "app" in c["scope"]}
    assert apps <= frozen
