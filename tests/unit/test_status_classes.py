"""Status classes: a rise spread over several codes of one class is one series, and
pages once, as the class; a rise of one code pages as that code."""

from __future__ import annotations

import numpy as np
import pytest

from statuswatch.config import Settings
from statuswatch.core.columns import DecodedBatch
from statuswatch.core.detector import Detector

W = 10_000
N = 2_000  # requests per window
FIVES = (500, 502, 503)


def window(t: int, rng: np.random.Generator, rates: dict[int, float]) -> DecodedBatch:
    """N requests of one service: 200 except each code of ``rates`` at its share."""
    status = np.full(N, 200, np.int64)
    u = rng.random(N)
    edge = 0.0
    for code, rate in rates.items():
        status[(u >= edge) & (u < edge + rate)] = code
        edge += rate
    return DecodedBatch(np.full(N, t + 1, np.int64), status,
                        {"service": ["api"] * N, "route": [""] * N, "app": [""] * N},
                        np.arange(N, dtype=np.int64))


def run(phases: list[tuple[int, dict[int, float]]], **detect: object) -> tuple[Detector, list]:
    """Feed windows: each phase is (windows, share per code); returns firing alerts."""
    settings = Settings(scopes={"levels": [[], ["service"]]}, detect=detect)
    detector = Detector(settings)
    rng = np.random.default_rng(3)
    alerts: list = []
    i = 0
    for windows, rates in phases:
        for _ in range(windows):
            detector.count(window(i * W, rng, rates), now_ms=0)
            alerts += [e.to_json() for e in detector.close_ready(now_ms=0)]
            i += 1
    alerts += [e.to_json() for e in detector.finish()]
    return detector, [a for a in alerts if a["state"] == "firing"]


NORMAL = {c: 0.001 for c in FIVES}  # 0.3 % 5xx, 2 expected per code and window
CREEP = {c: 0.004 for c in FIVES}  # 8 per code: each weak alone, 24 together are not
SPIKE = {500: 0.001, 502: 0.001, 503: 0.1}


def test_a_rise_spread_over_a_class_pages_once_as_the_class():
    _, firing = run([(60, NORMAL), (20, CREEP)])
    assert {(a["code"], a["direction"]) for a in firing} == {("5xx", "up")}
    assert len(firing) == 1  # the fleet's alert; the service's is its contributor
    assert firing[0]["contributors"][0]["scope"] == {"service": "api"}


def test_without_the_class_series_the_same_rise_pages_later_and_once_per_code():
    _, with_class = run([(60, NORMAL), (20, CREEP)])
    _, per_code = run([(60, NORMAL), (20, CREEP)], classes=[])
    assert all(isinstance(a["code"], int) for a in per_code) and len(per_code) > 1
    assert min(a["window_start"] for a in per_code) > with_class[0]["window_start"]


def test_a_code_that_rises_later_in_a_class_episode_does_not_page_again():
    later = {500: 0.06, 502: 0.005, 503: 0.005}  # 500 now significant on its own
    _, firing = run([(60, NORMAL), (10, CREEP), (10, later)])
    assert [a["code"] for a in firing] == ["5xx"]


def test_a_rise_of_one_code_pages_as_that_code_not_also_as_its_class():
    _, firing = run([(60, NORMAL), (10, SPIKE)])
    assert [(a["code"], a["scope"]) for a in firing] == [(503, {})]
    # the class column repeats the counts of its codes: totals stay the request count
    assert firing[0]["total"] == N
    assert firing[0]["observed"]["share"] == pytest.approx(
        firing[0]["observed"]["count"] / N)


def test_a_snapshot_of_other_classes_is_refused():
    detector, _ = run([(3, NORMAL)])
    state = detector.snapshot()
    other = Detector(Settings(scopes={"levels": [[], ["service"]]}, detect={"classes": ["5xx"]}))
    with pytest.raises(ValueError, match="status classes"):
        other.restore(state, now_ms=0)
    same = Detector(Settings(scopes={"levels": [[], ["service"]]}))
    same.restore(state, now_ms=0)
    assert same.codes.codes == detector.codes.codes
