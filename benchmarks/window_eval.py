"""One closed window's evaluation at 500+ scopes x 18 columns: screened vs exhaustive.

    python -m benchmarks.window_eval [--hours 1] [--caps 500,2000] [--quick]

Two detectors read the same Kong traffic (``backtest_scopes.py``'s file: 60 requests/s,
3,000 apps, 5 services, 13 routes, 15 codes + 4xx, 5xx): the default one (screened
share tails, vectorised volume learning, quiet windows on the rows that can matter; the
last window of each call in full, as for the metrics) and ``Detector(exhaustive=True)``,
the reference it is tested against (every tail exact, one River ``EWMean`` per scope).
Batches alternate between the two; only ``close_ready`` (scoring, deciding, learning)
is timed, after the first half of the input (warm baselines, a full app cap). Per
app cap (``scopes.max_per_level``): median CPU ms per window, and the cells whose
tails the screen could not rule out (``score.*_tail_may_reach``), the only ones the
screened evaluation computes exactly. ``--quick``: 20 minutes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from benchmarks.backtest_scopes import scopes_file
from benchmarks.common import machine, table
from statuswatch.config import Settings
from statuswatch.core.detector import Detector
from statuswatch.core.score import lower_tail_may_reach, upper_tail_may_reach

BATCH = 5000


def screened_cells(det: Detector) -> tuple[int, int]:
    """(cells that may reach the screen's threshold, all cells) of the last window."""
    report = det.last_report
    assert report is not None
    exp, counts = report.expectation, report.counts
    p = np.clip(np.maximum(exp.share, report.floor[:, None]), 1e-12, 1 - 1e-12)
    n = np.broadcast_to(report.shares.totals[:, None], counts.shape).astype(np.float64)
    x, nn = counts / exp.share_dispersion, n / exp.share_dispersion
    below = Settings().detect.clear_score
    may = upper_tail_may_reach(x, nn, p, below) | lower_tail_may_reach(x, nn, p, below)
    return int(may.sum()), counts.size


def run(lines: list[bytes], cap: int) -> tuple[list[object], list[object]]:
    settings = Settings(decode={"format": "kong"}, scopes={"max_per_level": cap})
    dets = {"screened": Detector(settings), "exhaustive": Detector(settings, exhaustive=True)}
    per_window: dict[str, list[float]] = {k: [] for k in dets}
    may: list[int] = []
    size = 0
    half = len(lines) // 2
    for i in range(0, len(lines), BATCH):
        for name, det in dets.items():
            now_ms = det.counters.last_event_ms or 0  # event time, as in a backtest
            det.count(det.decoder.decode(lines[i : i + BATCH]), now_ms=now_ms)
            before = det.counters.windows_closed
            t0 = time.process_time()
            det.close_ready(now_ms)
            spent = time.process_time() - t0
            closed = det.counters.windows_closed - before
            if i >= half and closed:
                per_window[name].append(spent / closed * 1000)
                if name == "screened":
                    cells, size = screened_cells(det)
                    may.append(cells)
    rows = len(dets["screened"].scopes)
    fast, slow = (statistics.median(per_window[k]) for k in ("screened", "exhaustive"))
    ratio = f"{slow / fast:.1f}x"
    return (
        [f"{cap}", f"{rows} x {size // rows}", "screened", f"{fast:.2f}",
         f"{statistics.median(may):,.0f} of {size:,}", ratio],
        [f"{cap}", f"{rows} x {size // rows}", "exhaustive (reference)", f"{slow:.2f}",
         f"{size:,} of {size:,}", "1.0x"],
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=1.0)
    p.add_argument("--caps", default="500,2000")
    p.add_argument("--quick", action="store_true", help="20 minutes of traffic")
    args = p.parse_args(argv)
    lines = scopes_file(1.0, 3000).read_bytes().split(b"\n")[:-1] if args.hours <= 1 else \
        scopes_file(args.hours, 3000).read_bytes().split(b"\n")[:-1]
    if args.quick:
        lines = lines[: len(lines) // 3]
    elif args.hours < 1:
        lines = lines[: round(len(lines) * args.hours)]
    rows: list[list[object]] = []
    for cap in (int(c) for c in args.caps.split(",")):
        rows += run(lines, cap)
    print(f"### one window's evaluation ({len(lines):,} Kong records at 60 req/s, 3,000 apps; "
          f"median over the second half; {machine()})\n")
    print(table(("app cap", "scopes x columns", "evaluation", "CPU ms per window",
                 "cells scored exactly (median)", "speed-up"), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
