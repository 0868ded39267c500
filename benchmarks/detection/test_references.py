"""The reference detectors of benchmarks/detection fire on a spike, never on constant input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from benchmarks.detection import references as refs

CODES = (200, 403, 404, 500)
SERVICES = ("a", "b")
WARMUP = 300
NORMAL = np.array([[980, 5, 10, 5], [490, 2, 5, 3]])


def make(kind: str) -> Any:
    if kind == "static":
        return refs.StaticThreshold(CODES, SERVICES, WARMUP)
    if kind == "zscore":
        return refs.ZScore(CODES, SERVICES, WARMUP)
    return refs.HalfSpaceTreesDetector(CODES, SERVICES, WARMUP, window_size=100, seed=3)


def feed(detector: Any, windows: list[np.ndarray]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, counts in enumerate(windows):
        out += detector.observe(i * 10_000, (i + 1) * 10_000, counts)
    return out


def noisy(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.multinomial(1000, [0.975, 0.005, 0.018, 0.002]).reshape(1, -1)
            * np.array([[1], [1]]) // np.array([[1], [2]]) for _ in range(n)]


@pytest.mark.parametrize("kind", ["static", "zscore", "hst"])
def test_constant_input_never_fires(kind: str) -> None:
    assert feed(make(kind), [NORMAL] * 700) == []


@pytest.mark.parametrize("kind", ["static", "zscore", "hst"])
def test_an_obvious_5xx_spike_fires_once_in_the_alert_shape(kind: str) -> None:
    spike = np.array([[700, 5, 10, 285], [350, 2, 5, 143]])
    windows = noisy(WARMUP + 200) + [spike] * 4 + noisy(50, seed=1)
    alerts = feed(make(kind), windows)
    t_spike = (WARMUP + 200 + 1) * 10.0  # end of the first spike window
    before = [a for a in alerts if a["window_end"] < t_spike and a["code"] == 500]
    if kind != "hst":  # HST's warm-up quantile lets a few noise windows through, by design
        assert before == [], kind  # noise alone does not page on 500
    at_spike = [a for a in alerts if a["state"] == "firing"
                and t_spike <= a["window_end"] <= t_spike + 10.0]
    assert at_spike, kind
    hit = next(a for a in at_spike if a["code"] == 500)
    assert set(hit) >= {"id", "state", "signal", "code", "direction", "scope", "window_end"}
    assert hit["direction"] == "up" and hit["scope"] == {}
    # after the spike it resolves, under the same id
    assert any(a["state"] == "resolved" and a["id"] == hit["id"] for a in alerts)


@pytest.mark.parametrize("kind", ["static", "zscore", "hst"])
def test_silent_during_warm_up(kind: str) -> None:
    spike = np.array([[0, 0, 0, 1000], [0, 0, 0, 500]])
    assert feed(make(kind), [NORMAL] * 100 + [spike] * 5) == []


def test_zscore_needs_the_for_window_and_min_volume() -> None:
    d = refs.ZScore(CODES, SERVICES, 0, history_windows=60)
    windows = [*[NORMAL] * 60, np.array([[700, 300, 0, 0], [3, 3, 0, 0]])]
    assert feed(d, windows) == []  # one window past |z| > 3 is only pending
    out = d.observe(610_000, 620_000, np.array([[700, 300, 0, 0], [3, 3, 0, 0]]))
    scopes = {(a["scope"].get("service", "fleet"), a["code"], a["direction"]) for a in out}
    assert ("fleet", 403, "up") in scopes and ("a", 403, "up") in scopes
    assert not any(s == "b" for s, _, _ in scopes)  # 6 requests: under 1 request/s


def test_counts_of_the_wrong_shape_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        make("static").observe(0, 10_000, np.zeros((3, 4), dtype=np.int64))


def test_the_module_doctests_pass() -> None:
    import doctest

    result = doctest.testmod(refs)
    assert result.attempted > 0 and result.failed == 0
