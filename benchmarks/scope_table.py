"""CPU of the scope table inside ``statuswatch backtest`` of ``backtest_scopes.py``'s file.

    python -m benchmarks.scope_table [--hours 6] [--apps 3000] [--repeat 3] [--quick]

The backtest runs in this process with its ``ScopeTable`` timed: ``rows`` (interning
each batch's dimension values, the row tables, counting folded scopes) and
``rebalance`` (fading the folded scopes' rates, top-K swaps). The reference is the
whole backtest's CPU in the same run. Only the scope table's public methods are
timed, so the script measures older commits too (``PYTHONPATH=<their src>``).
``--quick``: one hour, one run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.backtest_scopes import file_arguments, hours_of, scopes_file
from benchmarks.common import machine, table


def run(path: str) -> dict[str, float]:
    from statuswatch.config import load_settings
    from statuswatch.core.detector import Detector
    from statuswatch.core.scopes import ScopeTable
    from statuswatch.shell.backtest import backtest
    from statuswatch.shell.sinks import ListSink
    from statuswatch.shell.sources import read_file_batches

    spent = {"rows": 0.0, "rebalance": 0.0}

    class TimedScopeTable(ScopeTable):
        def rows(self, dims: dict[str, list[str]]) -> Any:
            start = time.process_time()
            try:
                return super().rows(dims)
            finally:
                spent["rows"] += time.process_time() - start

        def rebalance(self, alpha: float, protected: set[int]) -> Any:
            start = time.process_time()
            try:
                return super().rebalance(alpha, protected)
            finally:
                spent["rebalance"] += time.process_time() - start

    base = load_settings(None)
    settings = load_settings(None, decode=base.decode.model_copy(update={"format": "kong"}))
    detector = Detector(settings)
    detector.serves_metrics = False
    detector.scopes = TimedScopeTable(settings.scopes.levels, settings.scopes.max_per_level)
    start = time.process_time()
    backtest(detector, read_file_batches(path), ListSink())
    spent["backtest"] = time.process_time() - start
    return spent


def main(argv: Sequence[str] | None = None) -> int:
    args = file_arguments(__doc__.splitlines()[0], repeat=3).parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    path = str(scopes_file(hours_of(args), args.apps))
    runs = [run(path) for _ in range(repeat)]
    best = min(runs, key=lambda r: r["backtest"])
    rows = [
        (part, f"{min(r[part] for r in runs):.3f}", f"{best[part] / best['backtest']:.1%}")
        for part in ("rows", "rebalance")
    ]
    rows.append(("whole backtest (reference)", f"{best['backtest']:.2f}", "100%"))
    print(f"### scope table in the backtest of {path.rsplit('/', 1)[-1]} (best of "
          f"{repeat}; {machine()})\n")
    print(table(("part", "CPU s", "share of the backtest"), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
