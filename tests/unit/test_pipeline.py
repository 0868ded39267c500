"""The whole pipeline through a list-backed source and sink, no broker."""

from __future__ import annotations

import json

import numpy as np
import pytest

from statuswatch.config import Settings
from statuswatch.core.detector import Detector
from statuswatch.shell.backtest import backtest
from statuswatch.shell.sinks import JsonLinesSink, ListSink
from statuswatch.shell.sources import ListSource
from statuswatch.simulate.encode import encode
from statuswatch.simulate.incidents import Incident
from statuswatch.simulate.spec import SimSpec
from statuswatch.simulate.traffic import generate

T0 = 1_680_566_400_000  # 2023-04-04T00:00:00Z
ONSET = T0 + 20 * 60_000
WINDOW_MS = 10_000


def traffic(spec: SimSpec, minutes: int, fmt: str = "kong") -> list[list[bytes]]:
    return [encode(fmt, c, spec) for c in generate(spec, T0, T0 + minutes * 60_000, 5_000)]


def freeze_spec(fraction: float = 0.5) -> SimSpec:
    freeze = Incident("freeze", ONSET, ONSET + 5 * 60_000, code=403, fraction=fraction)
    return SimSpec(seed=11, rate=300, n_apps=120, incidents=(freeze,))


@pytest.fixture(scope="module")
def freeze_run() -> tuple[SimSpec, ListSink, Detector]:
    spec = freeze_spec()
    sink = ListSink()
    detector = Detector(Settings())
    backtest(detector, ListSource(traffic(spec, 30)).batches(), sink)
    return spec, sink, detector


def test_billing_freeze_pages_once_within_two_windows(freeze_run):
    _, sink, _ = freeze_run
    firing = [a for a in sink.alerts if a["state"] == "firing"]
    assert [(a["code"], a["direction"], a["scope"]) for a in firing] == [(403, "up", {})]
    alert = firing[0]
    assert alert["window_end"] * 1000 - ONSET <= 2 * WINDOW_MS
    assert alert["observed"]["share"] > 0.2
    assert alert["expected"]["share"] < 0.01
    resolved = [a for a in sink.alerts if a["state"] == "resolved"]
    assert [a["id"] for a in resolved] == [alert["id"]]


def test_freeze_alert_names_frozen_apps_as_contributors(freeze_run):
    spec, sink, _ = freeze_run
    alert = next(a for a in sink.alerts if a["state"] == "firing")
    frozen = set(spec.labels()[0]["apps"])
    apps = [c["scope"]["app"] for c in alert["contributors"] if "app" in c["scope"]]
    assert len(apps) == 10
    assert set(apps) <= frozen


def test_replay_gives_identical_alert_ids(freeze_run):
    spec, sink, _ = freeze_run
    again = ListSink()
    backtest(Detector(Settings()), ListSource(traffic(spec, 30)).batches(), again)
    assert [a["id"] for a in again.alerts] == [a["id"] for a in sink.alerts]


def test_steady_traffic_does_not_alert():
    sink = ListSink()
    detector = Detector(Settings())
    summary = backtest(detector, ListSource(traffic(SimSpec(seed=5, rate=300), 40)).batches(), sink)
    assert summary.windows == 240
    assert sink.alerts == []


def test_bad_records_are_counted_and_good_ones_kept():
    spec = SimSpec(seed=2, rate=50)
    good = traffic(spec, 2)
    bad = [b"{not json", b"\xff\xfe", b'{"started_at": 1, "response": {"status": 999}}', b"[]"]
    mixed = [batch[:3] + bad + batch[3:] for batch in good]
    clean_detector, mixed_detector = Detector(Settings()), Detector(Settings())
    clean = backtest(clean_detector, ListSource(good).batches(), ListSink())
    dirty = backtest(mixed_detector, ListSource(mixed).batches(), ListSink())
    assert dirty.codes == clean.codes
    assert dirty.windows == clean.windows
    assert sum(dirty.invalid.values()) == 4 * len(good)
    assert dirty.records == clean.records + 4 * len(good)
    assert set(dirty.invalid) >= {"invalid_json", "invalid_utf8", "status_out_of_range"}


def test_json_lines_sink_writes_one_object_per_alert(freeze_run, tmp_path):
    _, sink, _ = freeze_run
    path = tmp_path / "alerts.jsonl"
    out = JsonLinesSink(str(path))
    spec = freeze_spec()
    backtest(Detector(Settings()), ListSource(traffic(spec, 30)).batches(), out)
    out.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == sink.alerts
    required = {"id", "state", "code", "direction", "signal", "scope", "window_end", "observed",
                "expected", "score"}
    assert all(required <= set(a) for a in lines)


def sustained_shift(accept_after: int, acknowledge_at: int | None = None) -> list[dict]:
    """A 403 level that rises and stays: when does it become the new normal?"""
    onset = T0 + 20 * 60_000
    shift = Incident("outage", onset, T0 + 120 * 60_000, code=403, fraction=0.3)
    spec = SimSpec(seed=11, rate=100, n_apps=40, incidents=(shift,))
    settings = Settings(baseline={"accept_after_windows": accept_after})
    detector, sink = Detector(settings), ListSink()
    for i, values in enumerate(traffic(spec, 80)):
        if acknowledge_at is not None and i == acknowledge_at:
            assert detector.acknowledge() >= 1
        sink.write(detector.process(values, now_ms=detector.counters.last_event_ms or 0).events)
    return [a for a in sink.alerts if a["code"] == 403 and a["scope"] == {}]


def test_sustained_new_level_is_not_learned_silently_and_not_refused_forever():
    never = sustained_shift(accept_after=0)
    assert [a["state"] for a in never] == ["firing"]  # still firing an hour later
    accepted = sustained_shift(accept_after=120)  # 20 minutes
    assert [a["state"] for a in accepted] == ["firing", "resolved"]
    resolved_after = accepted[1]["window_end"] - accepted[0]["window_end"]
    assert 1200 <= resolved_after <= 2400


def test_operator_acknowledgement_accepts_the_new_level():
    acked = sustained_shift(accept_after=0, acknowledge_at=(20 + 10) * 12)  # 10 min in
    assert [a["state"] for a in acked] == ["firing", "resolved"]
    assert acked[1]["window_end"] - acked[0]["window_end"] < 1800


def freeze_with_rules(rules: list[dict]) -> tuple[ListSink, Detector]:
    sink, detector = ListSink(), Detector(Settings(detect={"rules": rules}))
    backtest(detector, ListSource(traffic(freeze_spec(), 30)).batches(), sink)
    return sink, detector


def test_shadow_rule_counts_would_have_fired_without_paging():
    from prometheus_client import generate_latest

    from statuswatch.shell.metrics import RuntimeStatus, build_registry

    sink, detector = freeze_with_rules([{"name": "try-4xx", "codes": ["4xx"], "shadow": True}])
    assert [a for a in sink.alerts if a["code"] == 403] == []
    assert detector.counters.shadow_fired["try-4xx"] >= 1
    body = generate_latest(build_registry(detector, RuntimeStatus())).decode()
    assert 'statuswatch_shadow_alerts_total{rule="try-4xx"} 1.0' in body


def test_shadowed_code_still_covers_its_class_in_its_scope():
    """Shadowing 403 alone: the freeze pages neither as 403 nor as its class, 4xx (one
    incident in one scope), and the shadow rule counts the one page it would have sent."""
    sink, detector = freeze_with_rules([{"name": "try-403", "codes": ["403"], "shadow": True}])
    assert [(a["code"], a["signal"]) for a in sink.alerts if a["state"] == "firing"] == []
    assert detector.counters.shadow_fired == {"try-403": 1}


def test_ignore_rule_and_class_match_silence_a_code_but_not_others():
    sink, detector = freeze_with_rules([
        {"name": "no-403", "codes": ["403"], "ignore": True},
        {"name": "strict-5xx", "codes": ["5xx"], "preset": "low"},
    ])
    assert [a for a in sink.alerts if a["code"] == 403] == []
    assert detector.counters.shadow_fired == {}
    rules = detector._rules
    assert rules is not None
    col_500 = detector.codes.column(500)
    assert col_500 >= 0 and rules.fire_score[0, col_500] == 9.0  # the "low" preset


def test_capped_app_level_tracks_the_heaviest_apps_and_loses_no_record():
    """With room for 8 of 60 apps, the rows go to the heaviest apps (top-K by volume,
    whatever order they arrived in), and every closed window still adds up: the app
    rows, 'other' included, sum to the fleet's records that carry an app."""
    spec = SimSpec(seed=4, rate=200, n_apps=60)
    batches = traffic(spec, 12)
    per_app: dict[str, int] = {}
    for batch in batches:
        for value in batch:
            app = json.loads(value)["consumer"]["id"]
            per_app[app] = per_app.get(app, 0) + 1
    detector = Detector(Settings(scopes={"max_per_level": 8}))
    app_level = detector.scopes.levels.index(("app",))
    sums: list[tuple[int, int]] = []

    def check(window):
        rows = [r for r, lvl in enumerate(detector.scopes.level_of_row) if lvl == app_level]
        sums.append((int(window.counts[rows].sum()), int(window.counts[0].sum())))

    detector.window_listener = check
    backtest(detector, ListSource(batches).batches(), ListSink())
    assert sums and all(apps == fleet for apps, fleet in sums)  # every record has an app
    tracked = {
        label["app"] for label, lvl in zip(detector.scopes.labels, detector.scopes.level_of_row,
                                           strict=True)
        if lvl == app_level and label["app"] != "other"
    }
    ranked = sorted(per_app, key=per_app.__getitem__, reverse=True)
    assert len(tracked) == 8
    assert set(ranked[:2]) <= tracked
    lightest_tracked = min(per_app[a] for a in tracked)
    heaviest_folded = max(per_app[a] for a in per_app if a not in tracked)
    assert heaviest_folded <= 3 * lightest_tracked  # swaps stop within the 2x hysteresis
    assert detector.scopes.recycled[app_level] >= 1  # arrival order alone did not decide
    from prometheus_client import CollectorRegistry

    from statuswatch.shell.metrics import RuntimeStatus, build_registry

    registry: CollectorRegistry = build_registry(detector, RuntimeStatus())
    assert registry.get_sample_value("statuswatch_scopes_cap") == 8
    assert registry.get_sample_value(
        "statuswatch_scopes_recycled_total", {"level": "app"}
    ) == detector.scopes.recycled[app_level]
    folded = registry.get_sample_value("statuswatch_scopes_folded_total", {"level": "app"})
    assert 60 - 8 <= folded <= 60  # distinct apps that were in 'other' at some time


def drop_run(volume: dict[str, object], rules: list[dict] | None = None,
             **detect: object) -> tuple[list[dict], Detector]:
    """Fleet traffic (300 requests/s, 3,000 a window) falls to 30 % at minute 20; the
    volume alerts under these ``detect.volume`` settings, ``detect.rules`` and other
    ``detect`` keys."""
    drop = Incident("drop", ONSET, ONSET + 5 * 60_000, fraction=0.3)
    spec = SimSpec(seed=8, rate=300, n_apps=40, incidents=(drop,))
    settings = Settings(detect={"volume": volume, "rules": rules or [], **detect})
    detector, sink = Detector(settings), ListSink()
    backtest(detector, ListSource(traffic(spec, 30)).batches(), sink)
    return [a for a in sink.alerts if a["signal"] == "volume"], detector


def calibrated_drop_run(warmup: int) -> tuple[list[dict], Detector]:
    """The drop with ``detect.volume.calibration`` on."""
    return drop_run({
        "calibration": True, "calibration_warmup_windows": warmup, "calibration_min_std": 1.0,
    })


def test_volume_alerts_need_min_excess_count():
    """``detect.volume.min_excess_count`` is an absolute floor on the shortfall (or
    excess): the fleet's ~2,100 missing requests a window page above a floor of 1,000 and
    not under one of 5,000 (NAB's chosen variant sets it from each file's value range)."""
    alerts, _ = drop_run({"min_excess_count": 1000})
    firing = [a for a in alerts if a["state"] == "firing"]
    assert [(a["direction"], a["scope"]) for a in firing] == [("down", {})]
    assert firing[0]["expected"]["count"] - firing[0]["observed"]["count"] >= 1000
    assert firing[0]["window_end"] * 1000 - ONSET <= 3 * WINDOW_MS
    high_floor, _ = drop_run({"min_excess_count": 5000})
    assert high_floor == []


def firing_volume(alerts: list[dict]) -> list[tuple[str, dict]]:
    return [(a["direction"], a["scope"]) for a in alerts if a["state"] == "firing"]


def test_rules_that_cover_all_codes_decide_a_scopes_volume():
    """The volume series is every code together: a rule whose codes include ``all``
    decides it (its ``volume`` keys, ``ignore``, ``shadow``), the first match wins, and a
    rule on single codes or another scope leaves it alone."""
    fleet_drop = [("down", {})]
    per_scope_floor = {"name": "email-floor", "scope": {"service": "email-api"},
                       "volume": {"min_excess_count": 5000}}
    assert firing_volume(drop_run({}, [per_scope_floor])[0]) == fleet_drop
    assert firing_volume(drop_run({}, [{"name": "mute-403", "codes": ["403"],
                                        "ignore": True}])[0]) == fleet_drop
    floor = {"name": "floor", "volume": {"min_excess_count": 5000}}
    assert drop_run({}, [floor])[0] == []
    assert drop_run({}, [{"name": "mute", "ignore": True}])[0] == []
    assert drop_run({}, [{"name": "ups-only", "volume": {"direction": "up"}}])[0] == []
    # first match wins: the unmuted rule before the muting one
    keep = {"name": "keep", "volume": {"min_excess_count": 100}}
    assert firing_volume(drop_run({}, [keep, {"name": "mute", "ignore": True}])[0]) == \
        fleet_drop
    alerts, detector = drop_run({}, [{"name": "try-volume", "shadow": True}])
    assert alerts == []
    assert detector.counters.shadow_fired["try-volume"] >= 1
    # a rule on one service decides that service's volume; muting the rest leaves it alone
    email = {"name": "email", "scope": {"service": "email-api"},
             "volume": {"min_excess_count": 100}}
    email_drop = [("down", {"service": "email-api"})]
    assert firing_volume(drop_run({}, [email, {"name": "mute-rest", "ignore": True}])[0]) == \
        email_drop
    # a fleet alert in shadow mode does not cover the service's real page
    alerts, detector = drop_run({}, [email, {"name": "try-rest", "shadow": True}])
    assert firing_volume(alerts) == email_drop
    assert detector.counters.shadow_fired["try-rest"] >= 1


def test_a_volume_rule_sets_how_many_windows_must_hit():
    """``k`` of ``m`` in a rule's ``volume`` keys: the drop (a hit every window) fires
    on its 2nd window by default (k 2 of m 3), on its 6th under ``k: 6, m: 6``; the
    extreme-score fast path is raised out of reach so only k of m decides."""
    def first_firing_window(rules: list[dict]) -> int:
        alerts, _ = drop_run({}, rules, extreme_score=10_000)
        firing = [a for a in alerts if a["state"] == "firing" and a["scope"] == {}]
        return (firing[0]["window_end"] * 1000 - ONSET) // WINDOW_MS

    patient = {"name": "patient", "volume": {"k": 6, "m": 6}}
    assert first_firing_window([]) == 2
    assert first_firing_window([patient]) == 6
    # the rule's share keys k/m are about codes' shares, not volume
    assert first_firing_window([{"name": "shares", "k": 6, "m": 6}]) == 2


def test_calibrated_volume_scores_gate_the_volume_alerts():
    alerts, detector = calibrated_drop_run(warmup=30)
    firing = [a for a in alerts if a["state"] == "firing"]
    assert [(a["direction"], a["scope"]) for a in firing] == [("down", {})]
    assert firing[0]["window_end"] * 1000 - ONSET <= 3 * WINDOW_MS
    # calibrated scores are 0 until a scope has the warm-up's worth of score history
    never_warm, _ = calibrated_drop_run(warmup=100_000)
    assert never_warm == []
    # the calibrators' state is part of the plain-JSON snapshot
    state = json.loads(json.dumps(detector.snapshot()))
    again = Detector(detector.settings)
    again.restore(state, now_ms=0)
    assert again.snapshot()["calibrators"] == state["calibrators"]


def test_rows_recycled_after_windows_closed_together_keep_their_counts():
    """Windows closed in one call are all evaluated with the rows they were counted in;
    the top-K swap comes after them."""
    from statuswatch.core.columns import DecodedBatch

    def batch(t_ms: int, services: list[str]) -> DecodedBatch:
        n = len(services)
        return DecodedBatch(np.full(n, t_ms, np.int64), np.full(n, 200, np.int64),
                            {"service": services, "route": [""] * n, "app": [""] * n},
                            np.arange(n, dtype=np.int64))

    detector = Detector(Settings(
        scopes={"levels": [[], ["service"]], "max_per_level": 1},
        baseline={"volume_half_life_windows": 0.01},  # rates follow the last window
        window={"allowed_lateness_seconds": 0},
    ))
    seen: list[dict[str, int]] = []

    def record(window):
        labels = detector.scopes.labels
        seen.append({labels[r].get("service", "fleet"): int(window.counts[r].sum())
                     for r in range(window.counts.shape[0])})

    detector.window_listener = record
    detector.count(batch(1, ["a"] + ["b"] * 30), now_ms=0)  # a has the row, b folds
    detector.count(batch(WINDOW_MS + 1, ["a"] * 7), now_ms=0)
    detector.count(batch(3 * WINDOW_MS, ["a"]), now_ms=0)  # closes both windows at once
    detector.close_ready(now_ms=0)
    assert seen[:2] == [{"fleet": 31, "a": 1, "other": 30}, {"fleet": 7, "a": 7, "other": 0}]
    assert detector.scopes.recycled == [0, 1]  # then b, the heavier, took a's row
