"""Sparse and bursty traffic: a quiet scope's burst after a gap is not a collapse of
every code it happens not to contain, and stationary traffic pages nothing however
it is spread over time."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statuswatch.config import Settings
from statuswatch.core.columns import DecodedBatch
from statuswatch.core.detector import Detector
from statuswatch.core.score import score_shares, share_floor
from tests.data import APACHE_LOG

W = 10_000
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
#: a stationary mix: each request draws its code independently
MIX = {200: 0.88, 304: 0.05, 404: 0.04, 301: 0.02, 500: 0.01}


def test_apache_log_pages_at_most_once_a_day(tmp_path):
    """The real log (3.5 days, bursts of up to 38 requests in 504 of 29,886 windows)
    with the shipped defaults, through the command line. The floor applied to both
    tails made it page 438 times: every code absent from a burst was a "collapse"."""
    alerts_out = tmp_path / "alerts.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "statuswatch", "backtest", "--format", "combined",
         "--alerts-out", str(alerts_out), str(APACHE_LOG)],
        capture_output=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    alerts = [json.loads(line) for line in alerts_out.read_text().splitlines()]
    firing = [a for a in alerts if a["state"] == "firing"]
    assert len(firing) <= 3, firing
    # A drop pages only when the learned share made the missing requests many.
    for a in firing:
        if a["direction"] == "down" and a["signal"] == "share":
            assert a["expected"]["count"] >= 10, a


@given(
    counts=st.lists(st.integers(0, 40), min_size=3, max_size=3),
    shares=st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3),
    volume=st.floats(0.0, 1000.0),
    seen=st.integers(0, 500),
)
@settings(max_examples=200, deadline=None)
def test_the_floor_only_ever_calms_a_rise(counts, shares, volume, seen):
    c = np.array([counts])
    p = np.array([shares])
    floor = share_floor(np.array([volume]), np.array([seen]), 90.0)
    plain, floored = score_shares(c, p), score_shares(c, p, floor)
    assert np.array_equal(floored.down, plain.down)
    assert np.array_equal(floored.expected_count, plain.expected_count)
    assert (floored.up <= plain.up + 1e-9).all()
    assert (floored.up_expected_count >= plain.expected_count - 1e-9).all()


def test_a_burst_after_a_quiet_spell_is_not_a_collapse_of_absent_codes():
    """The example that paged: 18 requests after hours of silence, none of them 403,
    in a scope whose expected volume had decayed to nearly nothing."""
    rng = np.random.default_rng(1)
    detector = Detector(Settings(scopes={"levels": [[]]}))
    t, fired = 0, []
    for _ in range(60):  # warm up at 20 requests a window, 5 % 403
        fired += feed(detector, t, rng.choice([200, 403], 20, p=[0.95, 0.05]))
        t += W
    t += 3 * HOUR
    fired += feed(detector, t, np.full(18, 200))
    fired += [e.to_json() for e in detector.finish()]
    assert [a for a in fired if a["state"] == "firing"] == []


def test_a_drop_with_a_large_learned_expectation_still_pages():
    """The floor's removal from the lower tail does not blind drops: a code that
    carried 20 % of 200 requests a window and vanishes pages as a drop."""
    rng = np.random.default_rng(2)
    detector = Detector(Settings(scopes={"levels": [[]]}))
    fired = []
    for i in range(60):
        fired += feed(detector, i * W, rng.choice([200, 302], 200, p=[0.8, 0.2]))
    for i in range(60, 66):
        fired += feed(detector, i * W, np.full(200, 200))
    firing = [(a["code"], a["direction"]) for a in fired if a["state"] == "firing"]
    assert (302, "down") in firing


def feed(detector: Detector, t_ms: int, status: np.ndarray,
         apps: np.ndarray | None = None) -> list[dict]:
    """One window's requests at ``t_ms``; closes every window before it."""
    n = len(status)
    app_names = ["a"] * n if apps is None else [f"app-{a}" for a in apps.tolist()]
    batch = DecodedBatch(
        np.full(n, t_ms + 1, np.int64), np.asarray(status, np.int64),
        {"service": ["svc"] * n, "route": ["r"] * n, "app": app_names},
        np.arange(n, dtype=np.int64),
    )
    detector.count(batch, now_ms=t_ms)
    return [e.to_json() for e in detector.close_ready(now_ms=t_ms)]


#: a session: (gap before it in ms, windows it lasts, mean requests a window)
sessions = st.lists(
    st.tuples(
        st.one_of(
            st.integers(0, 5 * MINUTE),  # back to back
            st.integers(HOUR, 4 * HOUR),  # hours apart
            st.integers(DAY, 2 * DAY),  # days apart
        ),
        st.integers(1, 12),
        st.floats(0.2, 40.0),
    ),
    min_size=15, max_size=40,
)
#: event time a plan may span: every closed window, empty or not, is evaluated
SPAN_MS = 2 * DAY


@given(plan=sessions, seed=st.integers(0, 2**16), night_off=st.booleans())
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_stationary_sparse_bursty_traffic_pages_nothing(plan, seed, night_off):
    """Poisson bursts of any size, gaps from seconds to days, zero traffic at night,
    five apps of which one is seen once: the mix never changes, so nothing pages
    (shipped defaults, every scope level)."""
    rng = np.random.default_rng(seed)
    detector = Detector(Settings())
    codes, probs = list(MIX), list(MIX.values())
    t, fired, single_sent = 0, [], False
    for gap, windows, rate in plan:
        t += gap - gap % W
        if night_off and (t % DAY) < 8 * HOUR:  # nothing from midnight to 08:00
            t += 8 * HOUR - t % DAY
        if t > SPAN_MS:
            break
        for _ in range(windows):
            n = int(rng.poisson(rate))
            apps = rng.integers(0, 4, n)
            if not single_sent and n:
                apps[0], single_sent = 99, True  # an app with a single request ever
            fired += feed(detector, t, rng.choice(codes, n, p=probs), apps)
            t += W
    fired += [e.to_json() for e in detector.finish()]
    assert [a for a in fired if a["state"] == "firing"] == []


def test_a_surge_of_other_traffic_is_not_a_drop_of_every_other_code():
    """A crawler triples a service's requests with its own 200s: 201's share falls to a
    third, its count does not. Judged over the usual volume, that is no drop."""
    rng = np.random.default_rng(3)
    detector = Detector(Settings(scopes={"levels": [[], ["service"]]}))
    fired = []
    for i in range(60):
        fired += feed(detector, i * W, rng.choice([200, 201], 100, p=[0.9, 0.1]))
    for i in range(60, 90):  # five minutes of crawling: 200 more requests a window
        status = np.concatenate([rng.choice([200, 201], 100, p=[0.9, 0.1]), np.full(200, 200)])
        fired += feed(detector, i * W, status)
    fired += [e.to_json() for e in detector.finish()]
    assert [a for a in fired if a["state"] == "firing" and a["signal"] == "share"] == []


def test_a_strong_drop_mirroring_a_pending_rise_is_its_complement():
    """One client's revalidations: 304 takes over a window. 200's drop is extreme and
    would fire at once, a window before the rise it mirrors is confirmed: one page."""
    rng = np.random.default_rng(4)
    detector = Detector(Settings(scopes={"levels": [[]]}))
    fired = []
    for i in range(90):
        fired += feed(detector, i * W, rng.choice([200, 304, 404], 40, p=[0.95, 0.03, 0.02]))
    for i in range(90, 92):  # 200's drop is spread over two rises, so it is the stronger
        fired += feed(detector, i * W, np.array([200] * 14 + [304] * 16 + [404] * 10))
    fired += [e.to_json() for e in detector.finish()]
    firing = [(a["code"], a["direction"]) for a in fired if a["state"] == "firing"]
    assert (304, "up") in firing
    assert [f for f in firing if f[1] == "down"] == []
