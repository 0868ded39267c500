"""One incident, one page: a child that fires first is held until its ancestor decides."""

from __future__ import annotations

import numpy as np

from statuswatch.config import Settings
from statuswatch.core.columns import DecodedBatch
from statuswatch.core.detector import Detector

W = 10_000
LEVELS = {"levels": [[], ["service"], ["service", "route"]], "max_per_level": 10}


def window(t: int, rng: np.random.Generator, spike: float) -> DecodedBatch:
    routes = ["big"] * 10_000 + ["small"] * 100
    status = rng.choice([200, 404], size=len(routes), p=[0.995, 0.005])
    if spike:
        small = np.arange(10_000, 10_100)
        status[small[: int(spike * 100)]] = 404
    n = len(routes)
    return DecodedBatch(np.full(n, t + 1, np.int64), status.astype(np.int64),
                        {"service": ["api"] * n, "route": routes, "app": [""] * n},
                        np.arange(n, dtype=np.int64))


def run(spike: float, spike_windows: int = 10, after: float = 0.0) -> list[dict]:
    settings = Settings(scopes=LEVELS, detect={"k": 2, "m": 3})
    detector = Detector(settings)
    rng = np.random.default_rng(8)
    alerts = []
    for i in range(50):
        level = spike if 40 <= i < 40 + spike_windows else after if i >= 40 else 0.0
        detector.count(window(i * W, rng, level), now_ms=0)
        alerts += [e.to_json() for e in detector.close_ready(now_ms=0)]
    return [a for a in alerts if a["state"] == "firing"]


def test_route_firing_before_its_ancestors_pages_once_under_them():
    # The small route's 404 share is extreme at once (fires in one window) while the
    # fleet (= the one service) only hits, pending for k = 2 windows: the route is
    # held, then becomes the fleet alert's contributor instead of a page of its own.
    firing = run(spike=0.6)
    assert [(a["code"], a["scope"]) for a in firing] == [(404, {})]
    assert firing[0]["window_start"] * 1000 == 41 * W  # the ancestor's k-th hit
    named = [c["scope"] for c in firing[0]["contributors"]]
    assert {"service": "api", "route": "small"} in named


def test_a_held_child_pages_when_its_ancestor_stops_pending_without_firing():
    # One strong window: the route fires at once (extreme) and is held while the
    # fleet is pending; then a weaker level the fleet does not see: the fleet never
    # gets its second hit, so once it stops pending the route, still firing, pages
    # on its own, late but not lost.
    firing = run(spike=0.6, spike_windows=1, after=0.2)
    assert [(a["code"], a["scope"]) for a in firing] == [
        (404, {"service": "api", "route": "small"})
    ]
    assert firing[0]["window_start"] * 1000 > 40 * W
    assert firing[0]["episode_start"] * 1000 == 41 * W  # the episode began at the spike


def test_a_held_blip_the_ancestors_never_confirm_does_not_page():
    assert run(spike=0.6, spike_windows=1) == []


def test_a_child_no_ancestor_confirms_pages_at_once():
    # A weaker spike: the route hits, the service and fleet never do.
    firing = run(spike=0.2)
    assert [(a["code"], a["scope"], a["window_start"] * 1000) for a in firing] == [
        (404, {"service": "api", "route": "small"}, 40 * W)
    ]


def cross_level_window(t: int, rng: np.random.Generator, spike: float) -> DecodedBatch:
    """A big route used by ten apps, a small route used by apps x and y."""
    apps = [f"a{i}" for i in range(10) for _ in range(5_000)] + ["x"] * 100 + ["y"] * 100
    routes = ["big"] * 50_000 + ["small"] * 200
    status = rng.choice([200, 404], size=len(routes), p=[0.98, 0.02])
    if spike:
        small = np.arange(50_000, 50_200)
        status[small[rng.random(200) < spike]] = 404
    n = len(routes)
    return DecodedBatch(np.full(n, t + 1, np.int64), status.astype(np.int64),
                        {"service": ["api"] * n, "route": routes, "app": apps},
                        np.arange(n, dtype=np.int64))


def test_an_app_alert_the_routes_alert_explains_pages_once():
    # The small route's 404s come from apps x and y: the route, x and y all fire (on
    # different levels, none an ancestor of another); the route carries the most excess
    # and pages, x and y are folded into it instead of paging twice more.
    settings = Settings(
        scopes={"levels": [[], ["service", "route"], ["app"]], "max_per_level": 20}
    )
    detector = Detector(settings)
    rng = np.random.default_rng(3)
    alerts = []
    for i in range(45):
        detector.count(cross_level_window(i * W, rng, 0.6 if i >= 40 else 0.0), now_ms=0)
        alerts += [e.to_json() for e in detector.close_ready(now_ms=0)]
    firing = [(a["code"], a["scope"]) for a in alerts if a["state"] == "firing"]
    assert firing == [(404, {"service": "api", "route": "small"})]
    live = {detector.scopes.labels[r].get("app") for r, _, _, _ in detector.alerts.firing_keys()}
    assert {"x", "y"} <= live  # they fire, folded: not paged
