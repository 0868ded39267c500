"""Envoy's response_code 0 (a reset or a disconnect) is an outcome of its own, code 0."""

from __future__ import annotations

import json

import numpy as np
from prometheus_client import generate_latest

from statuswatch.config import DecodeConfig, Settings
from statuswatch.core.detector import Detector
from statuswatch.shell.metrics import RuntimeStatus, build_registry
from statuswatch.shell.sinks import describe

T0 = 1_796_515_200_000  # 2026-12-06T00:00:00Z


def envoy(ts: int, code: int, cluster: str) -> bytes:
    stamp = np.datetime_as_string(np.datetime64(ts, "ms"), unit="ms") + "Z"
    return json.dumps({"start_time": stamp, "response_code": code, "upstream_cluster": cluster,
                       "route_name": "r"}).encode()


def test_a_rise_of_resets_pages_as_code_0_and_is_counted_under_0() -> None:
    detector = Detector(Settings(decode=DecodeConfig(format="envoy")))
    rng = np.random.default_rng(7)
    events = []
    for sec in range(900):
        ts = T0 + sec * 1000
        reset_share = 0.2 if sec >= 700 else 0.001
        codes = np.where(rng.random(40) < reset_share, 0, 200)
        values = [envoy(ts + j * 20, int(c), "pay" if j % 2 else "shop")
                  for j, c in enumerate(codes)]
        result = detector.process(values, now_ms=ts + 1500)
        assert result.batch.invalid == []
        events += result.events
    firing = [e for e in events if e.state == "firing"]
    resets = [e for e in firing if e.code == 0 and e.signal == "share" and e.direction == "up"]
    assert resets and resets[0].to_json()["code"] == 0
    assert describe(resets[0]).startswith("[FIRING] 0 up in")
    assert all(e.signal != "volume" for e in firing)  # the volume did not change
    body = generate_latest(build_registry(detector, RuntimeStatus())).decode()
    assert f'statuswatch_requests_total{{code="0"}} {float(detector.counters.codes[0])}' in body
    assert detector.counters.codes[0] > 0.15 * 200 * 40
    assert 'statuswatch_alert_active{code="0",direction="up"' in body
