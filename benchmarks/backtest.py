"""End-to-end backtest of a file of Kong records: ``statuswatch backtest`` vs the naive pipeline.

    python -m benchmarks.backtest [--records 1500000] [--repeat 2] [--quick] [--rate R] [--compare]

Generates (once, cached in ``~/.cache/statuswatch/bench`` or ``$STATUSWATCH_BENCH_CACHE``)
a file of simulated Kong records, one per line (2,500 requests/s of event time,
200 apps), then in the same run:

* **statuswatch**: ``statuswatch backtest --format kong FILE`` as a subprocess
  (interpreter start, file reading, decode, windows, baselines, scoring,
  alerts: everything), its summary checked for the record count;
* **naive**: the same file read line by line in batches through the naive pipeline
  of ``common.py`` (json.loads, dict of counts, River EWMean per record);
* **--compare**: ``statuswatch backtest --compare`` with a second configuration
  (another fire score): two detectors over records decoded once, against two
  separate backtests (twice the single run's time).

Reports wall time and CPU time (the child's for statuswatch) and the ratios.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import NaivePipeline, Timing, fmt_rate, kong_file, machine, table, timed

BATCH = 8192


def compile_statuswatch() -> None:
    """Byte-compile statuswatch's modules, as ``pip install`` does: a checkout installed
    in place (``pip install -e``) under ``PYTHONDONTWRITEBYTECODE`` would otherwise
    compile them from source in every timed run (~0.1 s)."""
    import compileall

    import statuswatch

    compileall.compile_dir(Path(statuswatch.__file__).parent, quiet=1)


def run_statuswatch(
    path: Path, fmt: str = "kong", compare: bool = False
) -> tuple[Timing, dict[str, object]]:
    """``statuswatch backtest --format fmt path`` as a subprocess: its wall and CPU time;
    ``compare``: with a second configuration (``--compare``) in the same pass."""
    compile_statuswatch()
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.json"
        extra = []
        if compare:
            other = Path(tmp) / "other.yaml"
            other.write_text("detect: {fire_score: 9}\n")
            extra = ["--compare", str(other)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        w0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "statuswatch", "backtest", "--format", fmt,
             "--alerts-out", str(Path(tmp) / "alerts.jsonl"), "--summary-out", str(summary),
             *extra, str(path)],
            check=True, stdout=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - w0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        result = json.loads(summary.read_text())
        return Timing(cpu, wall), result["config"]["summary"] if compare else result


def run_naive(path: Path) -> int:
    naive = NaivePipeline("kong")
    with path.open("rb") as f:
        while True:
            lines = f.readlines(BATCH * 512)
            if not lines:
                break
            naive.add([line.rstrip(b"\r\n") for line in lines])
    return naive.records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=1_500_000)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="300,000 records, one run each")
    p.add_argument("--rate", type=float, default=2500.0,
                   help="requests/s of event time (fewer: more windows for the same records)")
    p.add_argument("--compare", action="store_true",
                   help="also time backtest --compare (two configurations, one decoding)")
    args = p.parse_args(argv)
    n, repeat = (300_000, 1) if args.quick else (args.records, args.repeat)
    path = kong_file(n, rate=args.rate)
    size_mb = path.stat().st_size / 1e6
    sw_runs, naive_runs, compare_runs = [], [], []
    summary: dict[str, object] = {}
    for _ in range(repeat):  # interleaved, so both see the same machine
        t, summary = run_statuswatch(path)
        sw_runs.append(t)
        holder: list[int] = []
        naive_runs.append(timed(lambda: holder.append(run_naive(path))))  # noqa: B023
        assert holder[0] == n, holder
        if args.compare:
            t, compared = run_statuswatch(path, compare=True)
            compare_runs.append(t)
            if compared.get("records") != n:
                raise SystemExit(f"--compare summary does not match the file: {compared}")
    if summary.get("records") != n or summary.get("invalid") != 0:
        raise SystemExit(f"statuswatch summary does not match the file: {summary}")
    sw = min(sw_runs, key=lambda t: t.wall_s)
    nv = min(naive_runs, key=lambda t: t.wall_s)
    rows = [
        ("statuswatch backtest (subprocess)", f"{sw.wall_s:.1f}", f"{sw.cpu_s:.1f}",
         fmt_rate(n / sw.wall_s), fmt_rate(n / sw.cpu_s), f"{nv.wall_s / sw.wall_s:.1f}x",
         f"{nv.cpu_s / sw.cpu_s:.1f}x"),
        ("naive (json.loads, dict, EWMean)", f"{nv.wall_s:.1f}", f"{nv.cpu_s:.1f}",
         fmt_rate(n / nv.wall_s), fmt_rate(n / nv.cpu_s), "1.0x", "1.0x"),
    ]
    if compare_runs:
        cp = min(compare_runs, key=lambda t: t.wall_s)
        rows.append((
            "statuswatch backtest --compare (2 configs)", f"{cp.wall_s:.1f}", f"{cp.cpu_s:.1f}",
            fmt_rate(n / cp.wall_s), fmt_rate(n / cp.cpu_s), f"{nv.wall_s / cp.wall_s:.1f}x",
            f"{nv.cpu_s / cp.cpu_s:.1f}x",
        ))
    print(f"### backtest of {n:,} Kong records ({size_mb:,.0f} MB; windows {summary['windows']}, "
          f"alerts {summary['alerts']}; best of {repeat}; {machine()})\n")
    print(table(("pipeline", "wall s", "CPU s", "rec/s wall", "rec/s CPU", "speed-up wall",
                 "speed-up CPU"), rows))
    if compare_runs:
        print(f"\n--compare: {cp.wall_s / (2 * sw.wall_s):.2f}x the wall time and "
              f"{cp.cpu_s / (2 * sw.cpu_s):.2f}x the CPU time of two separate backtests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
