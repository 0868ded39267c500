"""Metric label values come only from closed sets, whatever the input holds.

100,000 records with random paths, user agents, services, routes, apps and
status strings go through the detector; the number of series on /metrics stays
under a constant computed from the config caps, not from the input.
"""

from __future__ import annotations

import json
import random
import re
import string

import numpy as np
import pytest
from prometheus_client import generate_latest

from statuswatch.config import Settings
from statuswatch.core.columns import INVALID_REASONS, MAX_STATUS, MIN_STATUS
from statuswatch.core.detector import Detector
from statuswatch.shell.metrics import UNREADABLE_REASONS, RuntimeStatus, build_registry

pytestmark = pytest.mark.slow

N = 100_000
START_MS = 1_680_566_400_000
CHARS = string.printable + "äß漢字\u202e\x1b\x00\"'{}=,\\"


def rand_text(rng: random.Random, lo: int = 1, hi: int = 40) -> str:
    return "".join(rng.choice(CHARS) for _ in range(rng.randint(lo, hi)))


def rand_status(rng: random.Random) -> object:
    kind = rng.random()
    if kind < 0.5:
        return rng.choice([200, 200, 200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 503])
    if kind < 0.7:
        return rng.randint(-10_000, 10_000)  # mostly out of range, some valid codes
    if kind < 0.8:
        return str(rng.randint(0, 999))  # digit strings: accepted when in range
    fullwidth_200 = "\uff12\uff10\uff10"
    return rng.choice([rand_text(rng, 0, 8), fullwidth_200, "200 OK", None, [200], 2.5, True])


def records(rng: random.Random) -> list[bytes]:
    out = []
    for i in range(N):
        rec = {
            "time": START_MS + i * 10,  # 1000 s: a hundred 10 s windows
            "status": rand_status(rng),
            "svc": rand_text(rng),
            "route": rand_text(rng),
            "app": rand_text(rng),
            "path": "/" + rand_text(rng, 0, 80),
            "ua": rand_text(rng, 0, 120),
        }
        out.append(json.dumps(rec).encode())
    return out


SERIES = re.compile(r'^(\w+)(?:\{(.*)\})? ', re.MULTILINE)
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def test_series_stay_under_a_bound_from_the_config_caps():
    max_per_level = 10
    settings = Settings(
        decode={"format": "json", "fields": {
            "timestamp": "time", "timestamp_unit": "ms", "status": "status",
            "service": "svc", "route": "route", "app": "app"}},
        scopes={"max_per_level": max_per_level},
    )
    detector = Detector(settings)
    values = records(random.Random(7))
    for start in range(0, N, 5000):
        chunk = values[start:start + 5000]
        offsets = np.arange(start, start + len(chunk), dtype=np.int64)
        detector.process(chunk, now_ms=START_MS + start * 10, offsets=offsets)
    detector.finish()
    assert detector.counters.records == N
    assert sum(detector.counters.invalid.values()) > N // 10  # the junk was really rejected
    assert len(detector.counters.codes) > 100  # and many distinct (valid) codes got through

    body = generate_latest(build_registry(detector, RuntimeStatus())).decode()
    series = [m for m in SERIES.finditer(body) if not m.group(0).startswith("#")]

    levels = len(settings.scopes.levels)
    rows = 1 + (levels - 1) * (max_per_level + 1)  # fleet + per level the cap and "other"
    codes = MAX_STATUS - MIN_STATUS + 2  # and 0, no response
    per_row_code = 2 + 2 + 2 * 2  # share observed/expected, score up/down, alert (dir x signal)
    per_row = 3 + 2 + 2 * 2  # volume observed/expected, warming, volume score, volume alert
    reasons = len(INVALID_REASONS) + len(UNREADABLE_REASONS)
    fixed = codes + reasons + levels + 64  # requests, reasons, folded, scalars
    bound = rows * (codes + 1) * per_row_code + rows * per_row + fixed
    # Without the caps the random services/routes/apps alone would make ~300,000 scopes,
    # each with at least five series: the bound would be exceeded many times over.
    assert len(series) < bound, len(series)

    allowed_codes = {str(c) for c in range(MIN_STATUS, MAX_STATUS + 1)} | {"all", "0"}
    allowed_codes |= {f"{digit}xx" for digit in range(1, 6)}  # status classes' series
    scopes_seen: set[str] = set()
    for m in series:
        labels = dict(LABEL.findall(m.group(2) or ""))
        if "code" in labels:
            assert labels["code"] in allowed_codes, m.group(0)
        if "reason" in labels:
            assert labels["reason"] in (*INVALID_REASONS, *UNREADABLE_REASONS), m.group(0)
        if "scope" in labels:
            scopes_seen.add(labels["scope"])
    assert len(scopes_seen) <= rows
    assert any("=other" in s for s in scopes_seen)  # the caps did fold scopes
    folded = sum(detector.scopes.folded)
    assert folded > 0
