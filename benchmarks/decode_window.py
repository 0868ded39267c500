"""Decode + window throughput per format, against the naive pipeline and the floor.

    python -m benchmarks.decode_window [--records N] [--repeat R] [--quick] [--formats kong,...]
                                       [--no-native] [--envelope syslog|json]

For each format, the same simulated records (``statuswatch.simulate``) go through:

* **statuswatch**: the real path, ``decoder.decode -> ScopeTable.rows ->
  CodeTable.columns -> WindowCounter.add``, in batches of 5,000 (the consumer's
  default ``max_batch_records``);
* **naive**: ``json.loads`` per record (a regex for ``combined``), a dict of
  counts keyed (window, scope, code) and a River ``stats.EWMean`` update per record;
* **floor**: ``for v in values: len(v)`` over the same bytes objects;
* **simulator**: ``statuswatch simulate``'s generate + encode of those records (slower than
  the detector: benchmarks generate their input before timing, the demo paces it).

Rates are records per CPU-second of this process (best of ``--repeat``). ``--no-native``
turns the C scanner off, as when the optional extension is not built: the JSON formats
then decode every record with the full decoder. ``--envelope``: every record as a shipper
sends it (``common.ENVELOPES``: behind rsyslog's header, or in a Vector event's
``message``), read with ``decode.envelope``; the naive pass takes the line out first.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.common import (
    ENVELOPES,
    FORMAT_CONFIGS,
    NaivePipeline,
    batches_of,
    best_of,
    fmt_rate,
    machine,
    records,
    table,
)
from statuswatch.config import DEFAULT_LEVELS
from statuswatch.core.decode import build_decoder, jsondecoder
from statuswatch.core.scopes import CodeTable, ScopeTable
from statuswatch.core.window import WindowCounter

BATCH = 5000


def statuswatch_pass(fmt: str, values: list[bytes], envelope: str | None = None) -> None:
    cfg = FORMAT_CONFIGS[fmt]
    decoder = build_decoder(cfg if envelope is None else cfg.model_copy(
        update={"envelope": envelope}))
    scopes, codes = ScopeTable(DEFAULT_LEVELS, 500), CodeTable()
    windows = WindowCounter(10_000, 5_000)
    for part in batches_of(values, BATCH):
        batch = decoder.decode(part)
        rows = scopes.rows(batch.dims)
        cols = codes.columns(batch.status)
        windows.add(batch.ts_ms, rows, cols, n_rows=len(scopes), n_cols=len(codes))
        windows.close_ready(0)


def floor_pass(values: list[bytes]) -> None:
    for v in values:
        len(v)


def naive_pass(fmt: str, values: list[bytes], envelope: str | None = None) -> None:
    naive = NaivePipeline(fmt, envelope)
    for part in batches_of(values, BATCH):
        naive.add(part)


def run(
    formats: list[str], n: int, repeat: int, envelope: str | None = None
) -> tuple[str, dict[str, float]]:
    rows = []
    figures: dict[str, float] = {}
    for fmt in formats:
        values = records(fmt, n)
        sim = best_of(lambda: records(fmt, n), 1)  # noqa: B023
        if envelope is not None:
            values = [ENVELOPES[envelope](v) for v in values]
        size = sum(map(len, values)) / len(values)
        sw = best_of(lambda: statuswatch_pass(fmt, values, envelope), repeat)  # noqa: B023
        fl = best_of(lambda: floor_pass(values), repeat)  # noqa: B023
        naive_n = values[: max(BATCH, n // 10)]  # the naive path is slow: a tenth is enough
        nv = best_of(lambda: naive_pass(fmt, naive_n, envelope), max(1, repeat - 1))  # noqa: B023
        sw_rate, fl_rate, nv_rate = n / sw.cpu_s, n / fl.cpu_s, len(naive_n) / nv.cpu_s
        sim_rate = n / sim.cpu_s
        figures[fmt] = sw_rate
        figures[f"{fmt}_vs_naive"] = sw_rate / nv_rate
        figures[f"{fmt}_simulator"] = sim_rate
        rows.append((
            fmt if envelope is None else f"{fmt} in {envelope}", f"{size:.0f}",
            fmt_rate(sw_rate), fmt_rate(nv_rate), f"{sw_rate / nv_rate:.1f}x",
            fmt_rate(fl_rate), f"{sw_rate / fl_rate * 100:.1f}%", f"{n / sw.wall_s:,.0f}",
            fmt_rate(sim_rate), f"{sim_rate / sw_rate:.2f}x",
        ))
    out = table(
        ("format", "bytes/rec", "statuswatch rec/s/core", "naive rec/s/core", "vs naive",
         "floor rec/s/core", "of floor", "statuswatch rec/s wall", "simulator rec/s/core",
         "simulator vs statuswatch"),
        rows,
    )
    return out, figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=400_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--formats", default=",".join(FORMAT_CONFIGS))
    p.add_argument("--quick", action="store_true", help="100,000 records, 3 repeats")
    p.add_argument("--no-native", action="store_true",
                   help="without the C scanner (as if the extension were not built)")
    p.add_argument("--envelope", choices=sorted(ENVELOPES),
                   help="each record inside a shipper's envelope, read with decode.envelope")
    args = p.parse_args(argv)
    if args.no_native:
        jsondecoder.NATIVE_SCAN = False
    n, repeat = (100_000, 3) if args.quick else (args.records, args.repeat)
    out, _ = run(args.formats.split(","), n, repeat, args.envelope)
    formats = args.formats.split(",")
    paths = ", ".join(f"{f} {build_decoder(FORMAT_CONFIGS[f]).fast_path}" for f in formats)
    print(f"### decode + window ({n:,} records per format, batches of {BATCH}; "
          f"fast path: {paths}; {machine()})\n")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
