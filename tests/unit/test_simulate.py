"""Tests of the simulated gateway traffic (statuswatch.simulate)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import re
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiokafka.errors import KafkaConnectionError
from hypothesis import given, settings
from hypothesis import strategies as st

from statuswatch.errors import ConfigError
from statuswatch.simulate import (
    FLEET,
    FORMATS,
    Chunk,
    Incident,
    SimSpec,
    Surge,
    cli,
    diurnal_factor,
    encode,
    generate,
    labels,
    output,
    trough_for,
)

T0 = 1_680_566_400_000  # 2023-04-04T00:00:00Z, a Tuesday
MIN = 60_000
Cols = dict[str, np.ndarray]


def collect(spec: SimSpec, start: int, end: int, chunk_ms: int = 10_000) -> Cols:
    chunks = list(generate(spec, start, end, chunk_ms))
    return {
        k: np.concatenate([getattr(c, k) for c in chunks])
        for k in ("ts_ms", "status", "service", "route", "app", "latency_ms", "size", "rid")
    }


def within(observed: float, n: float, p: float, sigmas: float = 5.0) -> bool:
    """``observed`` successes of ``n`` trials are consistent with probability ``p``."""
    return abs(observed - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 3


def share(mask: np.ndarray, of: np.ndarray) -> float:
    return float((mask & of).sum() / max(1, of.sum()))


def baseline_share(spec: SimSpec, cols: Cols, sel: np.ndarray, codes: tuple[int, ...]) -> float:
    """Oracle: expected share of ``codes`` among ``sel``, given each record's route."""
    routes = cols["route"][sel]
    per_route = np.array([sum(m.get(c, 0.0) for c in codes) for m in spec.route_mix])
    return float(per_route[routes].mean())


def svc(spec: SimSpec, name: str) -> int:
    return spec.services.index(name)


def during(cols: Cols, start: int, end: int) -> np.ndarray:
    return (cols["ts_ms"] >= start) & (cols["ts_ms"] < end)


# ------------------------------------------------------------------- determinism


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_seed_gives_identical_bytes(fmt: str) -> None:
    incidents = (Incident("freeze", T0 + 5_000, T0 + 15_000),)

    def run(seed: int) -> list[bytes]:
        spec = SimSpec(seed=seed, rate=300.0, incidents=incidents)
        return [rec for c in generate(spec, T0, T0 + 20_000) for rec in encode(fmt, c, spec)]

    first = run(7)
    assert first == run(7)
    assert first != run(8)


@settings(max_examples=25, deadline=None)
@given(
    chunk_ms=st.integers(min_value=1, max_value=7_000),
    offset=st.integers(min_value=0, max_value=2_500),
    length=st.integers(min_value=0, max_value=6_000),
)
def test_records_do_not_depend_on_chunking(chunk_ms: int, offset: int, length: int) -> None:
    spec = SimSpec(rate=200.0, n_apps=30, incidents=(Incident("storm", T0 + 1_234, T0 + 4_321),))
    start, end = T0 + offset, T0 + offset + length
    whole = collect(spec, T0, T0 + 10_000, chunk_ms=10_000)
    sel = during(whole, start, end)
    chunks = list(generate(spec, start, end, chunk_ms))
    assert all(c.start_ms < c.end_ms <= end for c in chunks)
    assert [c.start_ms for c in chunks] == list(range(start, end, chunk_ms))
    for key in ("ts_ms", "status", "app", "route", "rid"):
        got = np.concatenate([getattr(c, key) for c in chunks]) if chunks else np.zeros(0)
        assert np.array_equal(got, whole[key][sel])


def test_chunks_are_sorted_typed_and_bounded() -> None:
    spec = SimSpec(rate=1000.0)
    for chunk in generate(spec, T0 + 250, T0 + 7_250, chunk_ms=2_000):
        assert isinstance(chunk, Chunk)
        ts = chunk.ts_ms
        assert ts.dtype == np.int64 and chunk.status.dtype == np.int64
        assert chunk.app.dtype == np.int64 and chunk.rid.dtype == np.uint64
        assert np.all(np.diff(ts) >= 0)
        assert np.all((ts >= chunk.start_ms) & (ts < chunk.end_ms))
        assert len(np.unique(ts % 1000)) > 50  # spread over the milliseconds
        assert chunk.route.max() < len(spec.routes) and chunk.app.max() < len(spec.apps)
        assert np.array_equal(spec.route_service[chunk.route], chunk.service)


# ------------------------------------------------------------------- volume


def test_rate_is_poisson_around_the_spec() -> None:
    spec = SimSpec(rate=1000.0)
    cols = collect(spec, T0, T0 + 300_000)
    n = len(cols["ts_ms"])
    assert abs(n - 300_000) < 5 * math.sqrt(300_000)
    per_second = np.bincount((cols["ts_ms"] - T0) // 1000, minlength=300)
    dispersion = per_second.var() / per_second.mean()
    assert 0.7 < dispersion < 1.3  # Poisson: variance = mean


def _reference_profile(t_s: float) -> float:
    hour = (t_s % 86400) / 3600
    day = 0.25 + 0.75 * (1 - math.cos(2 * math.pi * (hour - 4) / 24)) / 2
    weekday = time.gmtime(t_s).tm_wday
    return day * (0.7 if weekday >= 5 else 1.0)


def test_diurnal_profile_averages_to_one_over_a_week() -> None:
    week = np.arange(0, 7 * 86400, 300) + T0 // 1000
    raw = np.array([_reference_profile(float(t)) for t in week])
    ours = np.array([diurnal_factor(float(t)) for t in week])
    assert np.allclose(ours, raw / raw.mean(), rtol=1e-6)
    assert ours.mean() == pytest.approx(1.0, abs=1e-6)


def test_diurnal_volume_follows_the_profile() -> None:
    spec = SimSpec(rate=400.0, diurnal=True)
    tue = T0  # Tuesday 00:00 UTC
    sat = T0 + 4 * 86_400_000

    def count(start: int) -> int:
        return sum(len(c) for c in generate(spec, start, start + 5 * MIN))

    trough, peak = count(tue + 4 * 3_600_000), count(tue + 16 * 3_600_000)
    weekend_peak = count(sat + 16 * 3_600_000)
    expected_peak = 400.0 * 300 * diurnal_factor(tue / 1000 + 16 * 3600)
    assert abs(peak - expected_peak) < 5 * math.sqrt(expected_peak)
    assert trough / peak == pytest.approx(0.25, abs=0.02)
    assert weekend_peak / peak == pytest.approx(0.7, abs=0.03)


# ------------------------------------------------------------------- baseline mix


def test_fleet_tables_are_as_designed() -> None:
    spec = SimSpec()
    assert len(spec.apps) == 200 and spec.apps[0] == "app-0001" and spec.apps[-1] == "app-0200"
    assert {"email-api", "calendar-api", "contacts-api", "auth-api", "webhooks-api"} <= set(
        spec.services
    )
    assert all(3 <= len(s.routes) <= 6 for s in FLEET)
    share = spec.traffic_share
    assert share.sum() == pytest.approx(1.0)
    svc_share = np.bincount(spec.route_service, weights=share.sum(axis=0))
    for s in FLEET:
        assert svc_share[svc(spec, s.name)] == pytest.approx(s.share, rel=1e-3)
    assert svc_share[svc(spec, "admin-api")] == pytest.approx(0.005, rel=1e-3)
    app_share = share.sum(axis=1)
    zipf = 1 / np.arange(1, 201)
    assert np.allclose(app_share, zipf / zipf.sum(), rtol=1e-3)
    calls = np.zeros((200, len(spec.services)))
    np.add.at(calls.T, spec.route_service, share.T)
    assert ((calls > 0).sum(axis=1) >= 2).all()  # every app calls several services


def test_baseline_status_mix_is_realistic() -> None:
    spec = SimSpec()
    route_share = spec.traffic_share.sum(axis=0)
    fleet: Counter[int] = Counter()
    for r, mix in enumerate(spec.route_mix):
        assert sum(mix.values()) == pytest.approx(1.0)
        for code, p in mix.items():
            fleet[code] += route_share[r] * p
    ok = fleet[200] + fleet[201] + fleet[202] + fleet[204]
    assert 0.93 < ok < 0.97
    assert 0.005 < fleet[304] < 0.03
    assert 0.01 < fleet[404] < 0.02
    assert 0.003 < fleet[401] < 0.008
    assert 0.002 < fleet[403] < 0.004
    assert 0.003 < fleet[429] < 0.007
    assert 0.001 < fleet[500] < 0.003
    assert 0.0005 < fleet[502] + fleet[503] < 0.0015
    assert 0 < fleet[400] + fleet[422] < 0.005
    assert 418 not in fleet and 451 not in fleet


def test_status_mix_matches_the_oracle() -> None:
    spec = SimSpec(rate=5000.0)
    cols = collect(spec, T0, T0 + 120_000)
    n = len(cols["status"])
    everything = np.ones(n, dtype=bool)
    observed = Counter(cols["status"].tolist())
    assert set(observed) <= set(spec.codes)
    for code in spec.codes:
        p = baseline_share(spec, cols, everything, (code,))
        assert within(observed[code], n, p), (code, observed[code], n * p)
    # routes and apps are drawn with the designed shares too
    route_p = spec.traffic_share.sum(axis=0)
    route_n = np.bincount(cols["route"], minlength=len(spec.routes))
    assert all(within(route_n[r], n, route_p[r]) for r in range(len(spec.routes)))
    app_n = np.bincount(cols["app"], minlength=len(spec.apps))
    assert within(app_n[0], n, spec.traffic_share[0].sum())


def test_window_shares_carry_multinomial_noise() -> None:
    spec = SimSpec(rate=2000.0)
    cols = collect(spec, T0, T0 + 600_000)
    window = (cols["ts_ms"] - T0) // 10_000
    calls = np.bincount(window, minlength=60)
    errors = np.bincount(window, weights=cols["status"] == 404, minlength=60)
    shares = errors / calls
    p = errors.sum() / calls.sum()
    assert shares.std() > 0  # not constant shares
    dispersion = ((errors - calls * p) ** 2 / (calls * p * (1 - p))).mean()
    assert 0.4 < dispersion < 1.9  # binomial noise (chi2 mean of 60 windows)


# ------------------------------------------------------------------- incidents


def test_freeze_gives_frozen_apps_403_and_leaves_the_others_alone() -> None:
    start, end = T0 + 2 * MIN + 12_345, T0 + 5 * MIN
    spec = SimSpec(rate=3000.0, incidents=(Incident("freeze", start, end, fraction=0.5),))
    (label,) = labels(spec)
    frozen_names = set(label["apps"])
    assert len(frozen_names) == 100
    cols = collect(spec, T0, T0 + 7 * MIN)
    frozen = np.array([a in frozen_names for a in spec.apps])[cols["app"]]
    inside = during(cols, start, end)
    is403 = cols["status"] == 403
    assert is403[inside & frozen].all()
    assert (inside & frozen).sum() > 10_000
    # before and after: the frozen apps have their usual mix
    for outside in (cols["ts_ms"] < start, cols["ts_ms"] >= end):
        sel = outside & frozen
        assert within(is403[sel].sum(), sel.sum(), baseline_share(spec, cols, sel, (403,)))
    # the millisecond before the start is not frozen
    assert not is403[(cols["ts_ms"] < start) & frozen].all()
    # the other apps keep their mix during the freeze
    sel = inside & ~frozen
    for code in (200, 403, 404, 401):
        p = baseline_share(spec, cols, sel, (code,))
        assert within((cols["status"][sel] == code).sum(), sel.sum(), p), code
    # and volume does not change
    before = (cols["ts_ms"] >= start - 2 * MIN) & (cols["ts_ms"] < start)
    assert inside.sum() / before.sum() == pytest.approx((end - start) / (2 * MIN), rel=0.03)


def test_creep_raises_the_5xx_share_linearly() -> None:
    start, end = T0 + MIN, T0 + 11 * MIN
    spec = SimSpec(
        rate=4000.0,
        incidents=(Incident("creep", start, end, service="calendar-api", fraction=0.10),),
    )
    cols = collect(spec, T0, T0 + 12 * MIN)
    five = np.isin(cols["status"], (500, 502, 503))
    cal = cols["service"] == svc(spec, "calendar-api")
    for k in range(10):  # tenths of the incident
        a = start + k * (end - start) // 10
        sel = cal & during(cols, a, a + (end - start) // 10)
        b = baseline_share(spec, cols, sel, (500, 502, 503))
        expected = b + (0.10 - b) * (k + 0.5) / 10
        assert within(five[sel].sum(), sel.sum(), expected, sigmas=6), k
    last = cal & during(cols, end - MIN // 2, end)
    assert share(five, last) > 0.09
    for code in (500, 502, 503):
        assert share(cols["status"] == code, last) > 2 * share(
            cols["status"] == code, cal & (cols["ts_ms"] < start)
        )
    after = cal & (cols["ts_ms"] >= end)
    assert within(
        five[after].sum(), after.sum(), baseline_share(spec, cols, after, (500, 502, 503))
    )
    others = ~cal & during(cols, start, end)
    assert within(
        five[others].sum(), others.sum(), baseline_share(spec, cols, others, (500, 502, 503))
    )


def test_outage_puts_a_code_on_a_fraction_of_all_calls() -> None:
    start, end = T0 + MIN, T0 + 3 * MIN
    spec = SimSpec(rate=3000.0, incidents=(Incident("outage", start, end, code=401, fraction=0.3),))
    cols = collect(spec, T0, T0 + 4 * MIN)
    is401 = cols["status"] == 401
    inside = during(cols, start, end)
    b = baseline_share(spec, cols, inside, (401,))
    assert within(is401[inside].sum(), inside.sum(), 0.3 + 0.7 * b)
    for s in range(len(spec.services)):
        sel = inside & (cols["service"] == s)
        assert share(is401, sel) > 0.25
    outside = ~inside
    assert within(is401[outside].sum(), outside.sum(), baseline_share(spec, cols, outside, (401,)))


def test_storm_multiplies_one_apps_traffic_mostly_429() -> None:
    start, end = T0 + 2 * MIN, T0 + 4 * MIN
    spec = SimSpec(rate=3000.0, incidents=(Incident("storm", start, end, app="app-0040"),))
    (label,) = labels(spec)
    assert label["scope"] == {"app": "app-0040"} and label["code"] == 429
    cols = collect(spec, T0, T0 + 6 * MIN)
    app = cols["app"] == spec.apps.index("app-0040")
    inside, before = during(cols, start, end), during(cols, T0, start)
    assert (app & inside).sum() / (app & before).sum() == pytest.approx(20, rel=0.15)
    sel = app & inside
    b = baseline_share(spec, cols, sel, (429,))
    assert within((cols["status"][sel] == 429).sum(), sel.sum(), 0.9 + 0.1 * b)
    others_ratio = (~app & inside).sum() / (~app & before).sum()
    assert others_ratio == pytest.approx(1.0, rel=0.03)
    after = app & (cols["ts_ms"] >= end)
    assert after.sum() / (app & before).sum() == pytest.approx(1.0, rel=0.25)


def test_storm_app_defaults_to_a_seeded_choice() -> None:
    a = labels(SimSpec(seed=3, incidents=(Incident("storm", T0, T0 + MIN),)))[0]["scope"]["app"]
    b = labels(SimSpec(seed=3, incidents=(Incident("storm", T0, T0 + MIN),)))[0]["scope"]["app"]
    assert a == b and a in SimSpec().apps


def test_spike_hits_one_route_only() -> None:
    start, end = T0 + MIN, T0 + 3 * MIN
    spec = SimSpec(
        rate=4000.0, incidents=(Incident("spike", start, end, route="get-event", fraction=0.4),)
    )
    (label,) = labels(spec)
    assert label["scope"] == {"service": "calendar-api", "route": "get-event"}
    cols = collect(spec, T0, T0 + 4 * MIN)
    is404 = cols["status"] == 404
    inside = during(cols, start, end)
    route = cols["route"] == spec.routes.index("get-event")
    b = baseline_share(spec, cols, route & inside, (404,))
    assert within(is404[route & inside].sum(), (route & inside).sum(), 0.4 + 0.6 * b)
    siblings = inside & ~route & (cols["service"] == svc(spec, "calendar-api"))
    assert within(
        is404[siblings].sum(), siblings.sum(), baseline_share(spec, cols, siblings, (404,))
    )
    sel = route & ~inside
    assert within(is404[sel].sum(), sel.sum(), baseline_share(spec, cols, sel, (404,)))


@pytest.mark.parametrize("service", [None, "email-api"])
def test_drop_reduces_volume_to_the_fraction(service: str | None) -> None:
    start, end = T0 + 2 * MIN + 500, T0 + 4 * MIN + 500
    spec = SimSpec(
        rate=3000.0, incidents=(Incident("drop", start, end, fraction=0.1, service=service),)
    )
    (label,) = labels(spec)
    assert label["direction"] == "down" and label["code"] is None
    assert label["scope"] == ({} if service is None else {"service": service})
    cols = collect(spec, T0, T0 + 6 * MIN)
    scope = np.ones(len(cols["ts_ms"]), dtype=bool)
    if service is not None:
        scope = cols["service"] == svc(spec, service)
    inside, before = during(cols, start, end), during(cols, start - 2 * MIN, start)
    assert (scope & inside).sum() / (scope & before).sum() == pytest.approx(0.1, rel=0.06)
    assert (~scope & inside).sum() == pytest.approx((~scope & before).sum(), rel=0.03)
    sel = scope & inside  # the calls that remain keep their mix
    assert within(
        (cols["status"][sel] == 200).sum(), sel.sum(), baseline_share(spec, cols, sel, (200,))
    )
    after = during(cols, end, end + MIN)
    assert (scope & after).sum() / (scope & before).sum() * 2 == pytest.approx(1.0, rel=0.06)


def test_newcode_appears_only_in_its_service_and_time() -> None:
    start, end = T0 + MIN, T0 + 3 * MIN
    spec = SimSpec(
        rate=3000.0,
        incidents=(Incident("newcode", start, end, service="auth-api", code=451, fraction=0.05),),
    )
    cols = collect(spec, T0, T0 + 4 * MIN)
    is451 = cols["status"] == 451
    inside = during(cols, start, end)
    auth = cols["service"] == svc(spec, "auth-api")
    assert within(is451[auth & inside].sum(), (auth & inside).sum(), 0.05)
    assert not is451[~(auth & inside)].any()


def test_newcode_must_be_new() -> None:
    with pytest.raises(ConfigError, match="baseline"):
        SimSpec(incidents=(Incident("newcode", T0, T0 + MIN, code=404),))


def test_freeze_of_one_named_app() -> None:
    spec = SimSpec(rate=2000.0, incidents=(Incident("freeze", T0, T0 + 20_000, app="app-0002"),))
    (label,) = labels(spec)
    assert label["apps"] == ["app-0002"] and label["scope"] == {"app": "app-0002"}
    cols = collect(spec, T0, T0 + 20_000)
    app = cols["app"] == 1
    assert app.sum() > 1000 and (cols["status"][app] == 403).all()
    assert share(cols["status"] == 403, ~app) < 0.01


def test_later_incidents_override_earlier_ones() -> None:
    start, end = T0 + 10_000, T0 + 40_000
    spec = SimSpec(
        rate=3000.0,
        incidents=(
            Incident("outage", start, end, code=401, fraction=1.0),
            Incident("freeze", start, end, fraction=0.2),
        ),
    )
    frozen = set(labels(spec)[1]["apps"])
    cols = collect(spec, start, end)
    is_frozen = np.array([a in frozen for a in spec.apps])[cols["app"]]
    assert (cols["status"][is_frozen] == 403).all()
    assert (cols["status"][~is_frozen] == 401).all()


# ------------------------------------------------------------------- labels


def test_labels_describe_the_incidents() -> None:
    incidents = (
        Incident("freeze", T0 + MIN, T0 + 2 * MIN, fraction=0.25, name="billing-freeze"),
        Incident("creep", T0 + MIN, T0 + 3 * MIN, service="email-api"),
        Incident("outage", T0 + 1_500, T0 + 2_500),
        Incident("storm", T0, T0 + MIN, app="app-0007"),
        Incident("spike", T0, T0 + MIN, route="send-message", code=400),
        Incident("drop", T0, T0 + MIN, fraction=0.2),
        Incident("newcode", T0, T0 + MIN, code=418),
    )
    spec = SimSpec(n_apps=40, incidents=incidents)
    got = labels(spec)
    assert [lab["kind"] for lab in got] == [i.kind for i in incidents]
    for lab, inc in zip(got, incidents, strict=True):
        assert {"name", "kind", "start", "end", "code", "direction", "scope"} <= set(lab)
        assert lab["start"] == inc.start_ms / 1000 and lab["end"] == inc.end_ms / 1000
        assert lab["direction"] == ("down" if inc.kind == "drop" else "up")
    freeze, creep, outage, storm, spike, drop, newcode = got
    assert freeze["name"] == "billing-freeze" and freeze["code"] == 403 and freeze["scope"] == {}
    assert len(freeze["apps"]) == 10 and set(freeze["apps"]) <= set(spec.apps)
    assert creep["name"] == "creep-2" and creep["codes"] == [500, 502, 503]
    assert creep["scope"] == {"service": "email-api"} and creep["fraction"] == 0.10
    assert outage["code"] == 401 and outage["scope"] == {} and outage["start"] == T0 / 1000 + 1.5
    assert storm["scope"] == {"app": "app-0007"} and storm["code"] == 429
    assert spike["scope"] == {"service": "email-api", "route": "send-message"}
    assert spike["code"] == 400
    assert drop["code"] is None and drop["scope"] == {}
    assert newcode["code"] == 418 and newcode["scope"] == {"service": "email-api"}
    json.dumps(got)  # serialisable
    got[0]["apps"].clear()
    assert labels(spec)[0]["apps"]  # callers get copies
    assert min(spec.codes) >= 100 and 418 in spec.codes


@pytest.mark.parametrize(
    ("incident", "message"),
    [
        (Incident("freeze", T0 + MIN, T0), "start < end"),
        (Incident("outage", T0, T0 + MIN, service="billing-api"), "unknown service"),
        (Incident("spike", T0, T0 + MIN, route="nope"), "unknown route"),
        (Incident("storm", T0, T0 + MIN, app="app-9999"), "unknown app"),
        (Incident("spike", T0, T0 + MIN, route="get-event", service="email-api"), "not a route"),
        (Incident("outage", T0, T0 + MIN, fraction=1.5), "fraction"),
        (Incident("outage", T0, T0 + MIN, code=700), "code"),
        (Incident("storm", T0, T0 + MIN, factor=0.5), "factor"),
        (Incident("creep", T0, T0 + MIN, fraction=0.001), "baseline"),
        (Incident("meltdown", T0, T0 + MIN), "unknown kind"),  # type: ignore[arg-type]
    ],
)
def test_bad_incidents_are_config_errors(incident: Incident, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SimSpec(incidents=(incident,))


# ------------------------------------------------------------------- low-rate shapes


def test_records_are_unchanged_when_the_new_options_are_off() -> None:
    """Every older incident kind, diurnal and sparse: the same records and labels as the
    generator had before codes, ramps, surges and the night trough were added."""
    incidents = (
        Incident("freeze", T0 + MIN, T0 + 3 * MIN, fraction=0.2, factor=2.0),
        Incident("creep", T0 + 2 * MIN, T0 + 6 * MIN, service="calendar-api"),
        Incident("creep", T0 + 2 * MIN, T0 + 6 * MIN, service="email-api", code=504,
                 fraction=0.05),
        Incident("outage", T0 + 3 * MIN, T0 + 4 * MIN, service="auth-api"),
        Incident("storm", T0 + 4 * MIN, T0 + 5 * MIN),
        Incident("spike", T0 + 5 * MIN, T0 + 6 * MIN, route="create-event"),
        Incident("drop", T0 + 6 * MIN, T0 + 7 * MIN, fraction=0.3),
        Incident("newcode", T0 + 6 * MIN, T0 + 8 * MIN, service="webhooks-api"),
    )
    spec = SimSpec(seed=3, rate=300.0, n_apps=50, diurnal=True, sparse=True,
                   incidents=incidents)
    digest = hashlib.sha256()
    for chunk in generate(spec, T0, T0 + 8 * MIN, 7_000):
        for key in ("ts_ms", "status", "service", "route", "app", "latency_ms", "size", "rid"):
            digest.update(np.ascontiguousarray(getattr(chunk, key)).tobytes())
    digest.update(json.dumps(spec.labels(), sort_keys=True).encode())
    # computed with the generator as it was before these options existed
    assert digest.hexdigest() == (
        "d0ab672d3106485daf134195565a6af221209d99bd645009fe4ee9aab7e5ca2e"
    )


def test_creep_over_several_codes_ramps_then_holds() -> None:
    start, ramp, end = T0 + MIN, 8 * MIN, T0 + 13 * MIN
    codes = (500, 502, 503, 504)
    spec = SimSpec(
        rate=4000.0,
        incidents=(Incident("creep", start, end, service="calendar-api", fraction=0.06,
                            codes=codes, ramp_ms=ramp),),
    )
    cols = collect(spec, T0, T0 + 14 * MIN)
    five = np.isin(cols["status"], codes)
    cal = cols["service"] == svc(spec, "calendar-api")
    for k in range(8):  # eighths of the ramp
        a = start + k * ramp // 8
        sel = cal & during(cols, a, a + ramp // 8)
        b = baseline_share(spec, cols, sel, codes)
        expected = b + (0.06 - b) * (k + 0.5) / 8
        assert within(five[sel].sum(), sel.sum(), expected, sigmas=6), k
    hold = cal & during(cols, start + ramp, end)
    assert within(five[hold].sum(), hold.sum(), 0.06, sigmas=6)
    before = cal & (cols["ts_ms"] < start)
    for code in codes:  # each code takes about a quarter of the rise
        raised = (cols["status"] == code)[hold].sum() - share(
            cols["status"] == code, before) * hold.sum()
        assert within(raised, five[hold].sum(), 0.25, sigmas=6), code
    label = spec.labels()[0]
    assert label["codes"] == list(codes) and label["ramp"] == ramp / 1000
    assert label["code"] == 500


@pytest.mark.parametrize(
    ("incident", "message"),
    [
        (Incident("outage", T0, T0 + MIN, codes=(500,)), "codes is for a creep"),
        (Incident("creep", T0, T0 + MIN, code=500, codes=(502,)), "codes is for a creep"),
        (Incident("creep", T0, T0 + MIN, codes=(500, 500)), "twice"),
        (Incident("creep", T0, T0 + MIN, codes=(500, 999)), "between 100 and 599"),
        (Incident("creep", T0, T0 + MIN, ramp_ms=2 * MIN), "ramp must be"),
        (Incident("freeze", T0, T0 + MIN, ramp_ms=MIN), "ramp is for a creep"),
    ],
)
def test_bad_creep_options_are_config_errors(incident: Incident, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SimSpec(incidents=(incident,))


def test_surge_multiplies_volume_and_keeps_the_mix() -> None:
    start, end = T0 + 2 * MIN, T0 + 8 * MIN
    plain = SimSpec(rate=500.0)
    surged = SimSpec(rate=500.0, surges=(Surge(start, end, 2.5, ramp_ms=2 * MIN),))
    base, cols = collect(plain, T0, T0 + 10 * MIN), collect(surged, T0, T0 + 10 * MIN)
    assert surged.labels() == []  # benign: no incident
    outside = ~during(cols, start, end)
    for key in ("ts_ms", "status", "app"):  # untouched before and after
        assert np.array_equal(cols[key][outside], base[key][~during(base, start, end)])
    held = during(cols, start + 2 * MIN, end - 2 * MIN)
    assert held.sum() == pytest.approx(2.5 * 500.0 * 120, rel=0.05)
    ramp_up = during(cols, start, start + 2 * MIN)
    assert ramp_up.sum() == pytest.approx(1.75 * 500.0 * 120, rel=0.05)
    for code in (200, 404, 429, 500):
        assert within((cols["status"] == code)[held].sum(), held.sum(),
                      baseline_share(surged, cols, held, (code,)))


def test_a_surge_of_one_changes_nothing() -> None:
    spec = SimSpec(rate=300.0, n_apps=20)
    neutral = SimSpec(rate=300.0, n_apps=20, surges=(Surge(T0, T0 + MIN, 1.0),))
    a, b = collect(spec, T0, T0 + MIN), collect(neutral, T0, T0 + MIN)
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(("rate", "night"), [(100.0, 2.0), (500.0, 2.0), (50.0, 5.0)])
def test_deep_night_lulls_reach_the_night_rate(rate: float, night: float) -> None:
    trough = trough_for(rate, night)
    spec = SimSpec(rate=rate, diurnal=True, diurnal_trough=trough)
    four = T0 + 4 * 3_600_000
    assert rate * diurnal_factor(four / 1000, trough) == pytest.approx(night)
    week = np.arange(0, 7 * 86400, 60) + T0 / 1000
    assert np.mean([diurnal_factor(t, trough) for t in week]) == pytest.approx(1.0, rel=1e-3)
    n = len(collect(spec, four - 5 * MIN, four + 5 * MIN)["ts_ms"])
    assert abs(n - night * 600) < 5 * math.sqrt(night * 600) + 3


def test_bad_surges_and_troughs_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="surge"):
        SimSpec(surges=(Surge(T0 + MIN, T0, 2.0),))
    with pytest.raises(ConfigError, match="surge"):
        SimSpec(surges=(Surge(T0, T0 + MIN, 0.0),))
    with pytest.raises(ConfigError, match="diurnal_trough"):
        SimSpec(diurnal_trough=0.0)
    with pytest.raises(ConfigError, match="night rate"):
        trough_for(10.0, 20.0)


def test_cli_creep_codes_ramp_surge_and_night_rate(tmp_path: Path) -> None:
    lab = tmp_path / "labels.json"
    args = parse(
        "--duration", "3600", "--rate", "0.5", "--start", "2023-04-04T03:00:00Z",
        "--diurnal", "--night-rate", "0.2",
        "--incident",
        "creep:service=email-api,codes=500/502/503/504,fraction=0.04,start=600,"
        "duration=1800,ramp=1200",
        "--surge", "factor=2.5,start=2400,duration=600,ramp=60",
        "--labels-out", str(lab), "--out", str(tmp_path / "o"),
    )
    p = cli.plan(args)
    (creep,) = p.spec.incidents
    assert creep.codes == (500, 502, 503, 504) and creep.ramp_ms == 1_200_000
    assert p.spec.surges == (Surge(p.start_ms + 2_400_000, p.start_ms + 3_000_000, 2.5,
                                   60_000),)
    assert p.spec.diurnal_trough == pytest.approx(trough_for(0.5, 0.2))
    assert cli.run(args) == 0
    (label,) = json.loads(lab.read_text())
    assert label["codes"] == [500, 502, 503, 504] and label["ramp"] == 1200.0


@pytest.mark.parametrize(
    "argv",
    [
        ("--incident", "creep:codes=500/abc"),
        ("--surge", "start=10,duration=5"),
        ("--surge", "factor=2,colour=red"),
        ("--surge", "factor=2,ramp=-1"),
        ("--night-rate", "2"),
    ],
)
def test_cli_rejects_bad_low_rate_options(
    argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.run(parse("--duration", "60", *argv)) == 2
    assert "statuswatch simulate:" in capsys.readouterr().err


def test_bad_specs_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        SimSpec(rate=-1.0)
    with pytest.raises(ConfigError):
        SimSpec(n_apps=0)
    with pytest.raises(ConfigError):
        next(generate(SimSpec(), T0, T0 + 1000, chunk_ms=0))


# ------------------------------------------------------------------- formats


@pytest.fixture(scope="module")
def sample() -> tuple[SimSpec, list[Chunk]]:
    incidents = (
        Incident("creep", T0, T0 + 20_000, fraction=0.6, code=504, service="webhooks-api"),
        Incident("storm", T0, T0 + 20_000, app="app-0003"),
        Incident("newcode", T0, T0 + 20_000, service="admin-api", fraction=0.5),
    )
    spec = SimSpec(rate=2500.0, incidents=incidents)
    return spec, list(generate(spec, T0 + 999_500, T0 + 1_019_500, chunk_ms=3_000))


def _iso_ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def _records(fmt: str, sample: tuple[SimSpec, list[Chunk]]) -> list[tuple[Chunk, int, bytes]]:
    spec, chunks = sample
    out: list[tuple[Chunk, int, bytes]] = []
    for chunk in chunks:
        recs = encode(fmt, chunk, spec)
        assert len(recs) == len(chunk)
        out.extend((chunk, i, rec) for i, rec in enumerate(recs))
    return out


def _truth(spec: SimSpec, chunk: Chunk, i: int) -> tuple[int, int, str, str, str]:
    return (
        int(chunk.ts_ms[i]),
        int(chunk.status[i]),
        spec.services[int(chunk.service[i])],
        spec.routes[int(chunk.route[i])],
        spec.apps[int(chunk.app[i])],
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_record_is_one_ascii_line(fmt: str, sample: tuple[SimSpec, list[Chunk]]) -> None:
    for _, _, rec in _records(fmt, sample):
        assert b"\n" not in rec and rec.isascii()


def test_kong_records(sample: tuple[SimSpec, list[Chunk]]) -> None:
    spec = sample[0]
    sizes = []
    for chunk, i, rec in _records("kong", sample):
        sizes.append(len(rec))
        doc = json.loads(rec)
        ts, status, service, route, app = _truth(spec, chunk, i)
        assert doc["started_at"] == ts
        assert doc["response"]["status"] == status
        assert doc["service"]["name"] == service
        assert doc["route"]["name"] == route
        assert doc["consumer"]["id"] == app
        req = doc["request"]
        assert req["uri"].startswith(f"/{service}/{route}")
        assert {"host", "user-agent", "x-request-id"} <= set(req["headers"])
        assert {"method", "size", "querystring"} <= set(req)
        assert doc["response"]["headers"]["content-type"] == "application/json"
        assert {"id", "host", "port", "protocol"} <= set(doc["service"])
        assert {"id", "paths"} <= set(doc["route"])
        lat = doc["latencies"]
        assert lat["request"] == lat["kong"] + lat["proxy"]
        assert isinstance(doc["tries"], list) and doc["client_ip"].count(".") == 3
    assert min(sizes) >= 300 and max(sizes) <= 800, (min(sizes), max(sizes))


def test_envoy_records(sample: tuple[SimSpec, list[Chunk]]) -> None:
    spec = sample[0]
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    flags: Counter[str] = Counter()
    for chunk, i, rec in _records("envoy", sample):
        doc = json.loads(rec)
        ts, status, service, route, app = _truth(spec, chunk, i)
        assert iso.match(doc["start_time"])
        assert _iso_ms(doc["start_time"]) == ts
        assert doc["response_code"] == status
        assert doc["upstream_cluster"] == service and doc["route_name"] == route
        assert doc["x_app_id"] == app
        assert doc["path"].startswith(f"/{service}/{route}")
        for key in (
            "method",
            "protocol",
            "bytes_received",
            "bytes_sent",
            "duration",
            "x_forwarded_for",
            "user_agent",
            "request_id",
            "authority",
        ):
            assert key in doc
        flags[doc["response_flags"]] += 1
    assert flags["-"] > 0 and flags["RL"] > 0 and flags["UT"] > 0


def test_nginx_json_records(sample: tuple[SimSpec, list[Chunk]]) -> None:
    spec = sample[0]
    for chunk, i, rec in _records("nginx-json", sample):
        doc = json.loads(rec)
        ts, status, service, route, app = _truth(spec, chunk, i)
        assert doc["status"] == str(status)  # nginx escape=json writes strings
        assert _iso_ms(doc["time"]) == ts and doc["time"].endswith("+00:00")
        assert (doc["service"], doc["route"], doc["app"]) == (service, route, app)
        _, path, proto = doc["request"].split(" ")
        assert path.startswith(f"/{service}/{route}") and proto == "HTTP/1.1"
        assert all(isinstance(v, str) for v in doc.values())
        assert {"body_bytes_sent", "request_time", "remote_addr"} <= set(doc)


def test_json_records(sample: tuple[SimSpec, list[Chunk]]) -> None:
    spec = sample[0]
    for chunk, i, rec in _records("json", sample):
        doc = json.loads(rec)
        assert (doc["ts"], doc["status"], doc["svc"], doc["route"], doc["app"]) == _truth(
            spec, chunk, i
        )


COMBINED = re.compile(
    r'^(?P<ip>[\d.]+) - (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<path>\S+) '
    r'HTTP/1\.1" (?P<status>\d{3}) (?P<size>\d+) "-" "(?P<ua>[^"]+)"$'
)


def test_combined_records(sample: tuple[SimSpec, list[Chunk]]) -> None:
    spec = sample[0]
    for chunk, i, rec in _records("combined", sample):
        m = COMBINED.match(rec.decode())
        assert m is not None, rec
        ts, status, service, route, app = _truth(spec, chunk, i)
        stamp = datetime.strptime(m["time"], "%d/%b/%Y:%H:%M:%S %z")
        assert int(stamp.timestamp()) == ts // 1000
        assert int(m["status"]) == status and m["user"] == app
        assert m["path"].split("?")[0].split("/")[1:3] == [service, route]


def test_unknown_format_is_a_config_error(sample: tuple[SimSpec, list[Chunk]]) -> None:
    spec, chunks = sample
    with pytest.raises(ConfigError, match="unknown format"):
        encode("syslog", chunks[0], spec)


# ------------------------------------------------------------------- CLI


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.configure_parser(parser)
    return parser.parse_args(list(argv))


def test_cli_file_output_is_deterministic(tmp_path: Path) -> None:
    outs = []
    for k in range(2):
        out, lab = tmp_path / f"out{k}.jsonl", tmp_path / f"labels{k}.json"
        args = parse(
            "--rate",
            "200",
            "--duration",
            "30",
            "--out",
            str(out),
            "--incident",
            "freeze:start=10,duration=10,fraction=0.5",
            "--labels-out",
            str(lab),
        )
        assert cli.run(args) == 0
        outs.append((out.read_bytes(), lab.read_text()))
    assert outs[0] == outs[1]
    lines = outs[0][0].splitlines()
    assert abs(len(lines) - 6000) < 5 * math.sqrt(6000)
    first = json.loads(lines[0])
    assert first["started_at"] >= T0 and json.loads(lines[-1])["started_at"] < T0 + 30_000
    (label,) = json.loads(outs[0][1])
    assert label["kind"] == "freeze" and label["start"] == T0 / 1000 + 10
    assert label["end"] == T0 / 1000 + 20 and len(label["apps"]) == 100


def test_cli_writes_stdout_by_default(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    args = parse(
        "--format",
        "combined",
        "--rate",
        "50",
        "--duration",
        "4",
        "--seed",
        "3",
        "--start",
        "2015-05-17T10:05:00Z",
    )
    assert cli.run(args) == 0
    lines = capsysbinary.readouterr().out.decode().splitlines()
    assert lines and all(COMBINED.match(line) for line in lines)
    assert "[17/May/2015:10:05:0" in lines[0]


def test_cli_freeze_shortcut_and_incident_defaults(tmp_path: Path) -> None:
    lab = tmp_path / "labels.json"
    args = parse(
        "--duration",
        "100",
        "--rate",
        "1",
        "--start",
        "1000",
        "--freeze-403",
        "0.3",
        "--incident",
        "spike",
        "--labels-out",
        str(lab),
        "--out",
        str(tmp_path / "o"),
    )
    assert cli.run(args) == 0
    spike, freeze = json.loads(lab.read_text())
    assert (spike["start"], spike["end"]) == (1050.0, 1100.0)
    assert freeze["code"] == 403 and (freeze["start"], freeze["end"]) == (1050.0, 1100.0)
    assert len(freeze["apps"]) == 60


@pytest.mark.parametrize(
    "argv",
    [
        ("--incident", "meltdown:start=1"),
        ("--incident", "freeze:start=abc"),
        ("--incident", "freeze:colour=red"),
        ("--incident", "freeze:start"),
        ("--incident", "freeze:start=50,end=40"),
        ("--incident", "outage:service=billing-api"),
        ("--incident", "freeze:end=5,duration=2"),
        ("--start", "yesterday"),
        ("--realtime", "--start", "0"),
        ("--kafka", "127.0.0.1:9", "--out", "x"),
        ("--duration", "0", "--incident", "outage"),
        ("--rate", "-5"),
    ],
)
def test_cli_rejects_bad_arguments(
    argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.run(parse("--duration", "10", *argv)) == 2
    assert "statuswatch simulate:" in capsys.readouterr().err


def test_cli_reports_unwritable_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("--duration", "1", "--out", str(tmp_path / "missing" / "out.jsonl"))
    assert cli.run(args) == 1
    assert "cannot write" in capsys.readouterr().err


def test_parse_start_accepts_epoch_and_iso() -> None:
    assert cli.parse_start("1680566400") == T0
    assert cli.parse_start("2023-04-04T02:00:00+02:00") == T0
    assert cli.parse_start("2023-04-04T00:00:00") == T0  # naive means UTC


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.mono = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.mono += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(cli, "_now", lambda: fake.now)
    monkeypatch.setattr(output, "_monotonic", lambda: fake.mono)
    monkeypatch.setattr(output, "_sleep", fake.sleep)
    monkeypatch.setattr(output, "_async_sleep", fake.async_sleep)
    return fake


def test_cli_realtime_starts_now_and_paces(clock: FakeClock, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    args = parse(
        "--realtime", "--format", "json", "--rate", "100", "--duration", "5", "--out", str(out)
    )
    assert cli.run(args) == 0
    ts = [json.loads(line)["ts"] for line in out.read_bytes().splitlines()]
    start = round(clock.now * 1000)
    assert min(ts) >= start and max(ts) < start + 5_000
    assert clock.mono == pytest.approx(5.0)  # paced: one chunk per second of event time
    assert len(clock.slept) == 5


class FakeProducer:
    instances: list[FakeProducer] = []  # noqa: RUF012

    def __init__(self, bootstrap: str, fail_start: bool = False) -> None:
        self.bootstrap = bootstrap
        self.fail_start = fail_start
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.started = self.stopped = False
        FakeProducer.instances.append(self)

    async def start(self) -> None:
        if self.fail_start:
            raise KafkaConnectionError("no broker")
        self.started = True

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        self.sent.append((topic, key, value))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def stop(self) -> None:
        self.stopped = True


def test_cli_kafka_path_keys_by_app_and_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeProducer.instances.clear()
    monkeypatch.setattr(output, "_make_producer", FakeProducer)
    monkeypatch.setattr(output, "_MAX_PENDING", 100)
    args = parse(
        "--kafka", "127.0.0.1:9092", "--topic", "logs", "--rate", "100", "--duration", "10"
    )
    assert cli.run(args) == 0
    (producer,) = FakeProducer.instances
    assert producer.bootstrap == "127.0.0.1:9092" and producer.stopped
    assert abs(len(producer.sent) - 1000) < 5 * math.sqrt(1000)
    for topic, key, value in producer.sent:
        assert topic == "logs"
        assert json.loads(value)["consumer"]["id"] == key.decode()


def test_cli_kafka_realtime_is_paced(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    FakeProducer.instances.clear()
    monkeypatch.setattr(output, "_make_producer", FakeProducer)
    args = parse("--kafka", "127.0.0.1:9092", "--realtime", "--rate", "50", "--duration", "3")
    assert cli.run(args) == 0
    (producer,) = FakeProducer.instances
    started = [json.loads(v)["started_at"] for _, _, v in producer.sent]
    assert min(started) >= round(clock.now * 1000) and producer.stopped
    assert clock.mono == pytest.approx(3.0)


def test_spec_accepts_a_list_of_incidents() -> None:
    spec = SimSpec(incidents=[Incident("outage", T0, T0 + MIN)])  # type: ignore[arg-type]
    assert spec == SimSpec(incidents=(Incident("outage", T0, T0 + MIN),))
    chunk = next(generate(spec, T0, T0 + 1000))
    assert encode("kong", chunk, spec)


def test_cli_kafka_unreachable_is_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    FakeProducer.instances.clear()
    monkeypatch.setattr(output, "_make_producer", lambda b: FakeProducer(b, fail_start=True))
    assert cli.run(parse("--kafka", "127.0.0.1:9", "--duration", "1")) == 1
    assert "cannot connect" in capsys.readouterr().err
    assert FakeProducer.instances[0].stopped
