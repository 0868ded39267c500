"""Run every performance benchmark, one after the other, and print their tables.

    python -m benchmarks.run_all [--quick] [--only decode_window,backtest,...] [--soak-minutes M]

Each benchmark runs in its own interpreter (a clean heap for the RSS figures)
and prints one Markdown table comparing statuswatch with references measured
in the same run. ``--quick`` passes ``--quick`` to each (a few minutes in all,
the soak one minute); without it the full run takes about half an hour, ten
minutes of which are the soak. Nothing but the local broker the Kafka
benchmarks start themselves is needed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

#: The repository root: each benchmark runs as ``python -m benchmarks.NAME`` from there.
REPO = Path(__file__).resolve().parents[1]

#: (script, extra arguments of a full run)
BENCHMARKS: dict[str, list[str]] = {
    "decode_window": [],
    "backtest": [],
    "backtest_scopes": [],
    "scope_table": [],
    "read_decode": [],
    "backtest_sparse": [],
    "window_eval": [],
    "kafka_consume": ["--sweep"],
    "aggregate_scaling": [],
    "latency": [],
    "soak": [],
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small inputs, one repeat, 1-minute soak")
    p.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset")
    p.add_argument("--soak-minutes", type=float, default=10.0)
    args = p.parse_args(argv)
    failed = []
    for name in args.only.split(","):
        extra = ["--quick"] if args.quick else list(BENCHMARKS[name])
        if name == "soak" and not args.quick:
            extra += ["--minutes", str(args.soak_minutes)]
        print(f"\n<!-- {name} -->", flush=True)
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *extra], cwd=REPO,
                              check=False)
        print(f"\n<!-- {name}: {time.monotonic() - t0:.0f} s, exit {done.returncode} -->",
              flush=True)
        if done.returncode:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
