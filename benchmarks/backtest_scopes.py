"""Backtest of a moderate-rate file with many scopes: ``statuswatch backtest`` vs naive.

    python -m benchmarks.backtest_scopes [--hours 6] [--apps 3000] [--repeat 1] [--quick]

The shape where per-window work, not per-record work, decides the cost: 60 requests/s
of Kong records for ``--hours`` of event time (6: 1.3 M records, 2,160 ten-second
windows), ``--apps`` client apps (3,000: the 500-row app cap is full), the simulator's
5 services, 13 routes and 15 codes (18 columns with 4xx and 5xx). Generated once with
``statuswatch simulate`` and cached (``common.cache_dir``). In the same run, interleaved:

* **statuswatch**: ``statuswatch backtest --format kong FILE`` as a subprocess;
* **naive**: the same file through ``common.NaivePipeline`` (json.loads, dict, EWMean).

``--quick``: one hour.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from benchmarks.backtest import run_naive, run_statuswatch
from benchmarks.common import cache_dir, fmt_rate, machine, table, timed

RATE = 60


def scopes_file(hours: float, apps: int) -> Path:
    """The simulator's Kong records at ``RATE``/s for ``hours``, generated once."""
    path = cache_dir() / f"kong-r{RATE}-{hours:g}h-{apps}apps.log"
    if path.exists() and path.stat().st_size > 0:
        return path
    tmp = path.with_suffix(".tmp")
    subprocess.run(
        [sys.executable, "-m", "statuswatch", "simulate", "--format", "kong", "--rate",
         str(RATE), "--duration", str(round(hours * 3600)), "--apps", str(apps),
         "--out", str(tmp)],
        check=True,
    )
    tmp.rename(path)
    return path


def file_arguments(description: str, repeat: int) -> argparse.ArgumentParser:
    """The options of the benchmarks on this file: ``--hours``, ``--apps``, ``--repeat``
    (default ``repeat``) and ``--quick`` (one hour; ``hours_of`` reads them)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--hours", type=float, default=6.0)
    p.add_argument("--apps", type=int, default=3000)
    p.add_argument("--repeat", type=int, default=repeat)
    p.add_argument("--quick", action="store_true", help="one hour")
    return p


def hours_of(args: argparse.Namespace) -> float:
    return 1.0 if args.quick else float(args.hours)


def main(argv: list[str] | None = None) -> int:
    args = file_arguments(__doc__.splitlines()[0], repeat=1).parse_args(argv)
    hours = hours_of(args)
    path = scopes_file(hours, args.apps)
    sw_runs, naive_runs = [], []
    summary: dict[str, object] = {}
    n = 0
    for _ in range(args.repeat):  # interleaved, so both see the same machine
        t, summary = run_statuswatch(path)
        sw_runs.append(t)
        holder: list[int] = []
        naive_runs.append(timed(lambda: holder.append(run_naive(path))))  # noqa: B023
        n = holder[0]
    if summary.get("records") != n or summary.get("invalid") != 0:
        raise SystemExit(f"statuswatch summary does not match the file: {summary}")
    sw = min(sw_runs, key=lambda t: t.wall_s)
    nv = min(naive_runs, key=lambda t: t.wall_s)
    windows = int(str(summary["windows"]))
    rows = [
        ("statuswatch backtest (subprocess)", f"{sw.wall_s:.1f}", f"{sw.cpu_s:.1f}",
         fmt_rate(n / sw.cpu_s), f"{sw.cpu_s / windows * 1000:.2f}",
         f"{nv.wall_s / sw.wall_s:.1f}x", f"{nv.cpu_s / sw.cpu_s:.1f}x"),
        ("naive (json.loads, dict, EWMean)", f"{nv.wall_s:.1f}", f"{nv.cpu_s:.1f}",
         fmt_rate(n / nv.cpu_s), f"{nv.cpu_s / windows * 1000:.2f}", "1.0x", "1.0x"),
    ]
    print(f"### backtest at {RATE} req/s for {hours:g} h, {args.apps:,} apps ({n:,} records, "
          f"{windows:,} windows, alerts {summary['alerts']}; best of {args.repeat}; "
          f"{machine()})\n")
    print(table(("pipeline", "wall s", "CPU s", "rec/s CPU", "CPU ms per window",
                 "speed-up wall", "speed-up CPU"), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
