"""Sparse traffic: the real Apache log over its real 3.5 days vs squeezed into one hour.

    python -m benchmarks.backtest_sparse [--repeat 3] [--quick]

The vendored log (``tests/data/apache/apache_logs.gz``: 10,000 real requests in
bursts, 504 of its 29,886 ten-second windows non-empty) and a copy of it built here
whose timestamps are moved linearly into one hour (same records, same order, 360
windows). Both through ``statuswatch backtest --format combined`` as subprocesses,
interleaved; the ratio says what the 29,500 silent windows cost. ``--quick``: one run.
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from tests.data import APACHE_LOG

from benchmarks.backtest import run_statuswatch
from benchmarks.common import machine, table

_STAMP = re.compile(rb"\[([^\]]+)\]")
_FORMAT = "%d/%b/%Y:%H:%M:%S %z"


def squeezed(lines: list[bytes], seconds: float) -> list[bytes]:
    """``lines`` with their times moved linearly into ``seconds`` from the first one."""
    def when(line: bytes) -> float:
        m = _STAMP.search(line)
        assert m is not None, line
        return datetime.strptime(m.group(1).decode(), _FORMAT).timestamp()

    times = [when(line) for line in lines]
    first, span = min(times), max(times) - min(times)
    out = []
    for line, t in zip(lines, times, strict=True):
        moved = datetime.fromtimestamp(first + (t - first) * seconds / span, UTC)
        stamp = moved.strftime("%d/%b/%Y:%H:%M:%S +0000").encode()
        out.append(_STAMP.sub(b"[" + stamp + b"]", line, count=1))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="one run each")
    args = p.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    lines = gzip.decompress(APACHE_LOG.read_bytes()).splitlines()
    with tempfile.TemporaryDirectory() as tmp:
        hour = Path(tmp) / "apache_one_hour.log"
        hour.write_bytes(b"\n".join(squeezed(lines, 3600.0)) + b"\n")
        runs: dict[str, list] = {"real": [], "hour": []}
        summaries: dict[str, dict[str, object]] = {}
        for _ in range(repeat):  # interleaved, so both see the same machine
            for name, path in (("real", APACHE_LOG), ("hour", hour)):
                t, summaries[name] = run_statuswatch(path, "combined")
                runs[name].append(t)
    for name in runs:
        if summaries[name].get("records") != len(lines) or summaries[name].get("invalid"):
            raise SystemExit(f"summary does not match the file: {summaries[name]}")
    best = {name: min(ts, key=lambda t: t.cpu_s) for name, ts in runs.items()}
    rows = []
    for name, label in (("real", "real times (3.5 days)"), ("hour", "squeezed into one hour")):
        t, s = best[name], summaries[name]
        rows.append((label, f"{int(str(s['windows'])):,}", s["alerts"], f"{t.wall_s:.2f}",
                     f"{t.cpu_s:.2f}", f"{best[name].cpu_s / best['hour'].cpu_s:.2f}x",
                     f"{best[name].wall_s / best['hour'].wall_s:.2f}x"))
    print(f"### backtest of the real Apache log, {len(lines):,} records (best of {repeat} by "
          f"CPU; {machine()})\n")
    print(table(("event times", "windows", "alerts", "wall s", "CPU s", "CPU vs one hour",
                 "wall vs one hour"), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
