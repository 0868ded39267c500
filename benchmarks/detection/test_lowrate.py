"""The low-rate scenario puts its incidents where the counts are as small as it says."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from benchmarks.detection import lowrate, run
from statuswatch.simulate.fleet import diurnal_factor
from statuswatch.simulate.traffic import generate

START_MS = round(datetime.fromisoformat(lowrate.START).timestamp() * 1000)


@pytest.mark.parametrize(("rate", "freeze_max_rate"), [(100.0, 3.0), (500.0, 7.0)])
def test_incidents_land_at_low_rates(rate: float, freeze_max_rate: float) -> None:
    sc = lowrate.scenario(START_MS, 24.0, rate, seed=1)
    spec = sc.spec
    storm, freeze, creep = spec.labels()
    assert (storm["kind"], freeze["kind"], creep["kind"]) == ("storm", "freeze", "creep")
    assert sc.left_out == () and len(spec.surges) == 1
    # the storm's app: about 2 requests a minute, and not among the biggest apps
    app = spec.apps.index(storm["scope"]["app"])
    mid = (storm["start"] + storm["end"]) / 2
    app_rate = spec.rate * diurnal_factor(mid, spec.diurnal_trough) * spec.traffic_share[app].sum()
    assert 1.5 / 60 < app_rate < 2.5 / 60
    assert app >= spec.n_apps // 20
    # the freeze: 5 % of the apps, at 2 to 3 req/s fleet-wide (the night narrows as the
    # day's peak grows: up to 7 req/s at rate 500)
    assert len(freeze["apps"]) == round(0.05 * spec.n_apps)
    for t in np.arange(freeze["start"], freeze["end"], 300):
        assert 1.9 <= spec.rate * diurnal_factor(t, spec.diurnal_trough) <= freeze_max_rate
    # the creep: 40 minutes of ramp to over 10x the usual 5xx share, then held
    assert creep["ramp"] == 2400 and creep["end"] - creep["start"] == 3600
    route = int(np.flatnonzero(spec.route_service == spec.services.index("email-api"))[0])
    usual = sum(spec.route_mix[route].get(c, 0.0) for c in creep["codes"])
    assert creep["fraction"] >= 10 * usual


def test_the_night_freeze_has_under_one_403_per_window() -> None:
    """As in the report that motivated the scenario: the frozen apps add less than one
    403 per 10 s window on average."""
    sc = lowrate.scenario(START_MS, 5.0, 100.0, seed=1)
    freeze = sc.spec.labels()[1]
    start, end = round(freeze["start"] * 1000), round(freeze["end"] * 1000)
    frozen = {sc.spec.apps.index(a) for a in freeze["apps"]}
    n = sum(int(np.isin(c.app, list(frozen)).sum()) for c in generate(sc.spec, start, end, 60_000))
    assert 0 < n / 360 < 1.0


def test_a_short_run_leaves_out_what_does_not_fit() -> None:
    sc = lowrate.scenario(START_MS, 5.0, 100.0, seed=1)
    assert [lb["kind"] for lb in sc.spec.labels()] == ["storm", "freeze"]
    assert sc.left_out == ("creep-5xx-email-api-40min", "surge-2.5x")


def test_normal_false_alarms_are_split_by_shape() -> None:
    sc = lowrate.scenario(START_MS, 24.0, 100.0, seed=1)
    surge = sc.spec.surges[0]
    night = {"window_end": START_MS / 1000 + 4 * 3600}
    in_surge = {"window_end": (surge.start_ms + 1_800_000) / 1000}
    day = {"window_end": START_MS / 1000 + 14 * 3600}
    found = lowrate.normal_false_alarms(sc.spec, [night, in_surge, day])
    assert found == {lowrate.NORMAL_SHAPES[0]: 1, lowrate.NORMAL_SHAPES[1]: 1}
    assert 2.0 < lowrate.lull_hours(sc.spec, START_MS, START_MS + 24 * 3_600_000) < 8.0


def test_the_quick_run_reports_every_detector(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--scenario", "lowrate", "--hours", "3", "--rate", "20"]) == 0
    out = capsys.readouterr().out
    for name in ("statuswatch", "static-5xx>1%", "z-score(1h)>3", "river-HST"):
        assert f"| {name} |" in out
    assert "| storm-429-app-2/min | 02:30:00 | 20 |" in out
    assert "night lulls (fleet < 10 req/s)" in out


def test_statuswatch_pages_each_low_rate_incident_once_in_time() -> None:
    """The quick run with the shipped defaults: the storm and the night freeze page within
    10 minutes, the creep within 30 of its start, nothing else pages, and each incident's
    alert fires once and resolves once (no series of that incident flaps)."""
    result = run.run_lowrate(10.5, 100.0, 1)
    report = result["reports"]["statuswatch"]
    delays = {lb["name"]: r.delay_s for lb, r in zip(result["labels"], report.labels,
                                                      strict=True)}
    assert delays["storm-429-app-2/min"] is not None and delays["storm-429-app-2/min"] <= 600
    assert delays["freeze-403-5%-apps-night"] is not None
    assert delays["freeze-403-5%-apps-night"] <= 600
    assert delays["creep-5xx-email-api-40min"] is not None
    assert delays["creep-5xx-email-api-40min"] <= 1800
    assert report.false_alarms == []
    alerts = result["alerts"]["statuswatch"]

    def series(a: dict) -> tuple[str, str, str, str]:
        return str(sorted(a["scope"].items())), str(a["code"]), a["direction"], a["signal"]

    for label in result["labels"]:
        paged = {series(a) for a in alerts if a["state"] == "firing"
                 and label["start"] <= a["window_end"] <= label["end"] + 60}
        assert paged, label["name"]
        for key in paged:  # until an hour after the incident: one firing, one resolve
            states = [a["state"] for a in alerts if series(a) == key
                      and label["start"] <= a["window_end"] <= label["end"] + 3600]
            assert states == ["firing", "resolved"], (label["name"], key, states)


def test_over_seeds_shows_the_worst_delay_and_a_miss_as_the_worst() -> None:
    from types import SimpleNamespace

    def result(seed: int, delays: list[float | None], false: int) -> dict:
        labels = [SimpleNamespace(delay_s=d) for d in delays]
        fas = [{"window_end": 0.0, "code": 403, "direction": "up", "scope": {}}] * false
        return {"seed": seed, "scored_days": 0.5,
                "labels": [{"name": "storm"}, {"name": "creep"}],
                "reports": {"statuswatch": SimpleNamespace(labels=labels, false_alarms=fas)}}

    table = run.over_seeds([result(1, [400.0, 590.0], 0), result(2, [880.0, None], 1)])
    assert "| storm | 400 | 880 | 880 |" in table
    assert "| creep | 590 | - | - |" in table
    assert "| false alarms | 0 | 1 | 1.0/day |" in table
    assert "- seed 2:" in table
    assert run.parse_seeds("1-3") == [1, 2, 3] and run.parse_seeds("4,9") == [4, 9]
