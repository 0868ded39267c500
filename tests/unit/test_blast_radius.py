"""Blast radius: many small apps anomalous on one code at once pages once, naming them."""

from __future__ import annotations

import numpy as np

from statuswatch.config import Settings
from statuswatch.core.columns import DecodedBatch
from statuswatch.core.detector import Detector

W = 10_000
BIG = "app-big"
SMALL = [f"app-{i:02d}" for i in range(40)]
FROZEN = set(SMALL[:30])


def window(t: int, rng: np.random.Generator, freeze: bool) -> DecodedBatch:
    apps: list[str] = []
    status: list[int] = []
    big = 200_000  # one huge app dominates the fleet: its noise hides the small apps
    apps += [BIG] * big
    status += rng.choice([200, 403], size=big, p=[0.99, 0.01]).tolist()
    for app in SMALL:
        apps += [app] * 4
        frozen = freeze and app in FROZEN
        status += [403] * 4 if frozen else rng.choice([200, 403], 4, p=[0.99, 0.01]).tolist()
    n = len(apps)
    ts = np.full(n, t + W // 2, np.int64)
    return DecodedBatch(ts, np.array(status, np.int64),
                        {"service": ["api"] * n, "route": [""] * n, "app": apps},
                        np.arange(n, dtype=np.int64))


def run(freeze_from: int | None) -> list[dict]:
    settings = Settings(scopes={"levels": [[], ["app"]], "max_per_level": 100})
    detector = Detector(settings)
    rng = np.random.default_rng(3)
    alerts = []
    for i in range(60):
        batch = window(i * W, rng, freeze_from is not None and i >= freeze_from)
        detector.count(batch, now_ms=0)
        alerts += [e.to_json() for e in detector.close_ready(now_ms=0)]
    return alerts


def test_many_small_frozen_apps_page_once_as_blast_radius():
    alerts = run(freeze_from=40)
    firing = [a for a in alerts if a["state"] == "firing"]
    assert [(a["signal"], a["code"], a["scope"]) for a in firing] == [("blast_radius", 403, {})]
    alert = firing[0]
    assert alert["window_start"] * 1000 == 40 * W  # the first frozen window
    named = {c["scope"]["app"] for c in alert["contributors"]}
    assert len(named) == 10 and named <= FROZEN
    assert alert["observed"]["count"] >= 25  # apps anomalous at once, of 41 active


def test_steady_traffic_with_a_dominant_app_is_quiet():
    assert run(freeze_from=None) == []
