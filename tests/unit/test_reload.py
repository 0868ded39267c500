"""Reloading the configuration: which keys may change live, all or nothing, and what a
reconfigured detector keeps (baselines, windows, alert ids) and changes (thresholds)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from statuswatch.config import Settings, changed_keys, load_settings, restart_keys
from statuswatch.core.decide import AlertEvent
from statuswatch.core.detector import Detector
from statuswatch.errors import SinkError
from statuswatch.shell.reload import ConfigReloader, ReloadCollector
from statuswatch.simulate import Incident, SimSpec, encode, generate

START_MS = 1_680_566_400_000  # 2023-04-04T00:00:00Z
ONSET_S = 1_200
SPEC = SimSpec(seed=4, rate=200.0, n_apps=100, incidents=(
    Incident("freeze", START_MS + ONSET_S * 1000, START_MS + 1_800 * 1000, fraction=0.5),))


def traffic(from_s: int, to_s: int) -> Iterator[list[bytes]]:
    """Simulated Kong logs of ``[from_s, to_s)`` after START, 10 s per batch; half the
    apps frozen on 403 from ONSET_S on."""
    for chunk in generate(SPEC, START_MS + from_s * 1000, START_MS + to_s * 1000,
                          chunk_ms=10_000):
        yield encode("kong", chunk, SPEC)


def feed(detector: Detector, from_s: int, to_s: int) -> list[AlertEvent]:
    """Run ``[from_s, to_s)`` through ``detector`` in event time, as a backtest does."""
    events: list[AlertEvent] = []
    for values in traffic(from_s, to_s):
        now_ms = detector.counters.last_event_ms or 0
        events += detector.process(values, now_ms=now_ms).events
    return events


def fleet_403(events: list[AlertEvent]) -> list[tuple[str, str]]:
    return [(e.state, e.id) for e in events
            if e.code == 403 and e.scope == {} and e.signal == "share" and not e.quiet]


IGNORE_403 = {"rules": [{"name": "mute-403", "codes": ["403"], "ignore": True}]}


# --- which keys a reload may change ------------------------------------------------


def test_changed_keys_name_leaves_and_restart_keys_keep_only_what_cannot_change_live() -> None:
    old = Settings()
    new = Settings(
        detect={"fire_score": 7, "classes": ["5xx"], "rules": [{"name": "r", "ignore": True}]},
        alerts={"sinks": [{"type": "webhook", "url": "http://hook"}]},
        baseline={"accept_after_windows": 10, "warmup_windows": 5},
        window={"size_seconds": 5}, kafka={"topic": "other"}, reload={"watch": True},
    )
    changed = changed_keys(old, new)
    assert sorted(changed) == [
        "alerts.sinks", "baseline.accept_after_windows", "baseline.warmup_windows",
        "detect.classes", "detect.fire_score", "detect.rules", "kafka.topic", "reload.watch",
        "window.size_seconds",
    ]
    assert sorted(restart_keys(changed)) == [
        "baseline.warmup_windows", "detect.classes", "kafka.topic", "window.size_seconds",
    ]
    assert changed_keys(old, Settings()) == []


@pytest.mark.parametrize("key", [
    "kafka.topic", "kafka.group_id", "kafka.bootstrap_servers", "decode.format",
    "window.size_seconds", "window.allowed_lateness_seconds", "scopes.levels",
    "scopes.max_per_level", "baseline.half_life_windows", "detect.classes", "alerts.output",
    "alerts.windows_output", "alerts.external_url", "state.dir", "metrics.port",
    "health.stuck_timeout_seconds",
])
def test_keys_that_shape_kept_state_or_open_connections_need_a_restart(key: str) -> None:
    assert restart_keys([key, "detect.rules"]) == [key]


@pytest.mark.parametrize("key", [
    "detect.rules", "detect.fire_score", "detect.direction", "detect.volume.calibration",
    "detect.blast_radius.level", "alerts.sinks", "baseline.accept_after_windows",
    "reload.interval_seconds",
])
def test_detection_thresholds_and_sinks_change_live(key: str) -> None:
    assert restart_keys([key]) == []


# --- the reloader: all or nothing ----------------------------------------------------


class Applied:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[Settings] = []
        self.fail = fail

    def __call__(self, settings: Settings) -> None:
        if self.fail:
            raise SinkError("cannot read the CA file of the alert sink hook")
        self.calls.append(settings)


def reloader_on(path: Path, config: dict[str, Any], apply: Applied) -> ConfigReloader:
    path.write_text(yaml.safe_dump(config))
    return ConfigReloader(path, load_settings(path), lambda: load_settings(path), apply)


def metrics_of(reloader: ConfigReloader) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReloadCollector(reloader))
    return generate_latest(registry).decode()


def test_a_valid_change_is_applied_and_the_metrics_show_the_new_hash(tmp_path: Path) -> None:
    path, apply = tmp_path / "sw.yaml", Applied()
    reloader = reloader_on(path, {"detect": {"fire_score": 6}}, apply)
    first = reloader.hash
    assert first == hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    path.write_text(yaml.safe_dump({"detect": {"fire_score": 5, **IGNORE_403}}))
    assert reloader.reload("test") == "applied"
    (settings,) = apply.calls
    assert settings.detect.fire_score == 5 and reloader.settings is settings
    body = metrics_of(reloader)
    assert reloader.hash != first
    assert f'statuswatch_config_info{{hash="{reloader.hash}"}} 1.0' in body
    assert 'statuswatch_config_reloads_total{result="applied"} 1.0' in body
    assert "statuswatch_config_last_reload_successful 1.0" in body


def test_an_invalid_file_is_refused_naming_the_key_and_nothing_applies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, apply = tmp_path / "sw.yaml", Applied()
    reloader = reloader_on(path, {}, apply)
    running, first = reloader.settings, reloader.hash
    path.write_text(yaml.safe_dump({"detect": {"fire_score": -1, "k": 2}}))
    with caplog.at_level(logging.ERROR):
        assert reloader.reload("SIGHUP") == "invalid"
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "detect.fire_score" in line and "\n" not in line
    assert apply.calls == [] and reloader.settings is running and reloader.hash == first
    body = metrics_of(reloader)
    assert 'statuswatch_config_reloads_total{result="invalid"} 1.0' in body
    assert "statuswatch_config_last_reload_successful 0.0" in body


def test_a_restart_only_key_refuses_the_whole_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, apply = tmp_path / "sw.yaml", Applied()
    reloader = reloader_on(path, {}, apply)
    # a live change (the rule) and a restart-only one: neither is applied
    path.write_text(yaml.safe_dump({"detect": IGNORE_403, "window": {"size_seconds": 5}}))
    with caplog.at_level(logging.ERROR):
        assert reloader.reload("SIGHUP") == "restart_required"
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "window.size_seconds" in line and "restart" in line and "detect.rules" not in line
    assert apply.calls == [] and reloader.settings.detect.rules == []
    assert reloader.results["restart_required"] == 1


def test_a_sink_that_cannot_be_built_refuses_the_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sw.yaml"
    reloader = reloader_on(path, {}, Applied(fail=True))
    path.write_text(yaml.safe_dump({"detect": IGNORE_403}))
    with caplog.at_level(logging.ERROR):
        assert reloader.reload("SIGHUP") == "invalid"
    assert "alerts.sinks" in caplog.text and reloader.settings.detect.rules == []


async def test_the_watch_reloads_each_new_version_of_the_file_once(tmp_path: Path) -> None:
    path, apply = tmp_path / "sw.yaml", Applied()
    reloader = reloader_on(path, {"reload": {"watch": True, "interval_seconds": 0.05}}, apply)
    task = asyncio.get_running_loop().create_task(reloader.watch())
    try:
        await asyncio.sleep(0.3)
        assert apply.calls == []  # unchanged file: nothing to do
        path.write_text(yaml.safe_dump({
            "reload": {"watch": True, "interval_seconds": 0.05}, "detect": {"fire_score": 5}}))
        await asyncio.sleep(0.3)
        path.write_text(yaml.safe_dump({"detect": {"fire_score": -5}}))  # invalid: once
        await asyncio.sleep(0.3)
    finally:
        task.cancel()
    assert [s.detect.fire_score for s in apply.calls] == [5.0]
    assert dict(reloader.results) == {"applied": 1, "invalid": 1, "restart_required": 0}


# --- Detector.reconfigure ---------------------------------------------------------------


@pytest.fixture(scope="module")
def warmed() -> tuple[Detector, list[AlertEvent]]:
    """A detector that has seen the freeze start and page (until ONSET_S + 100 s)."""
    detector = Detector(Settings())
    return detector, feed(detector, 0, ONSET_S + 100)


def copy_of(detector: Detector) -> Detector:
    twin = Detector(detector.settings)
    twin.restore(detector.snapshot(), now_ms=detector.counters.last_event_ms or 0)
    return twin


def test_reconfiguring_with_equal_settings_changes_nothing(
    warmed: tuple[Detector, list[AlertEvent]],
) -> None:
    base, _ = warmed
    kept, reloaded = copy_of(base), copy_of(base)
    reloaded.reconfigure(Settings())  # an equal, separately loaded configuration
    assert feed(reloaded, ONSET_S + 100, ONSET_S + 300) == feed(kept, ONSET_S + 100, ONSET_S + 300)
    assert reloaded.snapshot() == kept.snapshot()


def test_an_ignore_rule_resolves_the_firing_alert_under_its_id_keeping_the_baseline(
    warmed: tuple[Detector, list[AlertEvent]],
) -> None:
    base, before = warmed
    ((state, alert_id),) = fleet_403(before)
    assert state == "firing"
    detector = copy_of(base)
    snapshot = detector.snapshot()
    detector.reconfigure(Settings(detect=IGNORE_403))
    # nothing learned or forgotten by the reload itself
    assert detector.snapshot() == snapshot
    after = feed(detector, ONSET_S + 100, ONSET_S + 200)
    assert fleet_403(after) == [("resolved", alert_id)]


def test_a_firing_alert_keeps_its_id_across_a_threshold_change_and_does_not_fire_again(
    warmed: tuple[Detector, list[AlertEvent]],
) -> None:
    base, before = warmed
    ((_, alert_id),) = fleet_403(before)
    detector = copy_of(base)
    detector.reconfigure(Settings(detect={"fire_score": 8, "clear_score": 2, "k": 3, "m": 4}))
    after = feed(detector, ONSET_S + 100, ONSET_S + 300)
    assert fleet_403(after) == []  # no second page, no resolve: the freeze goes on
    assert alert_id in detector.alerts.firing_ids()
    assert detector.alerts.lifecycle.k == 3


def test_a_lowered_threshold_fires_a_series_that_was_under_it() -> None:
    # 4xx: the 403 series and the class's, which would otherwise page and cover 403
    strict = {"rules": [{"name": "strict-4xx", "codes": ["4xx"], "min_excess_count": 1e9}],
              "blast_radius": {"enabled": False}}
    detector = Detector(Settings(detect=strict))
    assert fleet_403(feed(detector, 0, ONSET_S + 60)) == []
    detector.reconfigure(Settings(detect={"blast_radius": {"enabled": False}}))
    after = fleet_403(feed(detector, ONSET_S + 60, ONSET_S + 120))
    assert [state for state, _ in after] == ["firing"]
    # the baseline was kept: a fresh detector would still be warming up and never fire
    fresh = Detector(Settings())
    assert fleet_403(feed(fresh, ONSET_S + 60, ONSET_S + 120)) == []
