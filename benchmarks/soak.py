"""Scale of state: memory per tracked series and RSS over a soak at 10,000 scopes.

    python -m benchmarks.soak [--minutes 10] [--quick] [--apps 9999] [--rate 20000]

Simulated traffic of ``--apps`` apps (the simulator's maximum, 9,999, plus the
fleet, 6 services and 29 routes: about 10,035 scopes; ``scopes.max_per_level``
raised to 20,000 so none folds) runs through the full in-process path, raw Kong
bytes -> ``Detector.process`` (decode, scopes, windows, baselines, scores,
alerts), in event time as fast as it goes, for ``--minutes`` of wall time.
Event time advances much faster than the wall clock, so a 10-minute soak covers
many hours of traffic and thousands of closed windows.

Records are generated and encoded on the fly, one 250 ms chunk (a batch of
about 5,000 records) at a time, so nothing but the detector's state and one
batch is held: RSS is the detector's.

RSS (``/proc/self/statm``) is sampled every 15 s. The warm-up is the first
fifth of the soak (every scope and code seen, baselines warm). "Change after
warm-up" compares the median RSS of the second fifth with the median of the
last fifth: single samples swing by ±10 MB with the allocator's arenas and the
garbage collector, which would make a ±5 % verdict depend on which sample lands
in a dip. The peak is the largest sample. "Memory per series" is the growth
from start to warm-up (one sample after a full collection) divided by the
number of tracked (scope, code) series.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time

from benchmarks.common import START_MS, fmt_rate, machine, rss_mb, table
from statuswatch.config import ScopesConfig, Settings
from statuswatch.core.detector import Detector
from statuswatch.simulate import SimSpec, encode, generate

CHUNK_MS = 250


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--quick", action="store_true", help="one minute")
    p.add_argument("--apps", type=int, default=9999)
    p.add_argument("--rate", type=float, default=20_000.0, help="requests/s of event time")
    args = p.parse_args(argv)
    minutes = 1.0 if args.quick else args.minutes
    spec = SimSpec(seed=3, rate=args.rate, n_apps=args.apps)
    settings = Settings(scopes=ScopesConfig(max_per_level=20_000))
    detector = Detector(settings)
    gc.collect()
    rss_start = rss_mb()
    deadline = time.monotonic() + minutes * 60
    warm_at = time.monotonic() + minutes * 60 / 5
    rss_warm: float | None = None
    series_warm = scopes_warm = 0
    samples: list[tuple[float, float]] = []
    records, t0 = 0, time.monotonic()
    next_sample = t0
    event_ms = START_MS
    step = 60_000
    while time.monotonic() < deadline:
        for chunk in generate(spec, event_ms, event_ms + step, chunk_ms=CHUNK_MS):
            values = encode("kong", chunk, spec)
            detector.process(values, now_ms=chunk.end_ms)
            records += len(values)
        event_ms += step
        now = time.monotonic()
        if now >= next_sample:
            samples.append((now - t0, rss_mb()))
            next_sample = now + 15
        if rss_warm is None and now >= warm_at:
            gc.collect()
            rss_warm = rss_mb()
            scopes_warm = len(detector.scopes)
            report = detector.last_report
            series_warm = int((report.window.counts > 0).sum()) if report is not None else 0
    gc.collect()
    rss_end = rss_mb()
    wall = time.monotonic() - t0
    assert rss_warm is not None
    scopes, codes = len(detector.scopes), len(detector.codes)
    tracked = scopes * codes  # the dense (scope, code) state the baseline keeps
    per_series = (rss_warm - rss_start) * 1e6 / tracked
    span = samples[-1][0] if samples else 1.0
    second = [m for t, m in samples if span / 5 <= t < 2 * span / 5] or [rss_warm]
    last = [m for t, m in samples if t >= 4 * span / 5] or [rss_end]
    level_warm, level_end = statistics.median(second), statistics.median(last)
    change = (level_end - level_warm) / level_warm * 100
    peak = max([m for _, m in samples] + [rss_end])
    event_h = (event_ms - START_MS) / 3_600_000
    print(f"### soak: {minutes:g} min wall, {records:,} records, {event_h:.1f} h of event time, "
          f"{detector.counters.windows_closed:,} windows ({machine()})\n")
    print(table(
        ("scopes", "codes", "tracked series (scope x code)", "series seen in a window",
         "RSS start MB", "RSS 2nd fifth (median) MB", "RSS last fifth (median) MB",
         "change after warm-up", "peak MB", "bytes per series", "records/s"),
        [(f"{scopes:,}", codes, f"{tracked:,}", f"{series_warm:,}", f"{rss_start:.0f}",
          f"{level_warm:.0f}", f"{level_end:.0f}", f"{change:+.1f}%", f"{peak:.0f}",
          f"{per_series:,.0f}", fmt_rate(records / wall))],
    ))
    print("\nRSS samples (s: MB): " + ", ".join(f"{t:.0f}: {m:.0f}" for t, m in samples))
    print(f"\nscopes at warm-up {scopes_warm:,}, at end {scopes:,}; alerts fired "
          f"{detector.counters.alerts_fired}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
