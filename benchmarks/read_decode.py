"""Reading and decoding a Kong file: the C scanner on blocks of lines vs on one bytes per line.

    python -m benchmarks.read_decode [--hours 6] [--apps 3000] [--repeat 3] [--quick]

``backtest_scopes.py``'s file (60 requests/s of Kong records for ``--hours``; 6: 1.3 M
records, 960 MB), read with ``read_file_batches`` and decoded with the Kong decoder, in the
same run, interleaved:

* **blocks**: what ``statuswatch backtest`` does: each batch is a block of lines
  (``Lines``), which the scanner reads in place (``Scanner.scan_lines``);
* **one bytes per line**: the same batches split into one bytes object per line
  (``Lines.tolist``, the file source's ``bytes.split`` before the block scan), then
  ``Scanner.scan`` over the list;
* **read only**: ``read_file_batches`` alone (reading, finding the lines, counting them).

CPU seconds of this process, best of ``--repeat``. ``--quick``: one hour.
"""

from __future__ import annotations

from benchmarks.backtest_scopes import file_arguments, hours_of, scopes_file
from benchmarks.common import best_of, fmt_rate, machine, table
from statuswatch.config import DecodeConfig
from statuswatch.core.decode import build_decoder
from statuswatch.shell.sources import read_file_batches


def main(argv: list[str] | None = None) -> int:
    args = file_arguments(__doc__.splitlines()[0], repeat=3).parse_args(argv)
    hours = hours_of(args)
    path = str(scopes_file(hours, args.apps))
    decoder = build_decoder(DecodeConfig(format="kong"))
    if decoder.fast_path != "native":
        raise SystemExit("the C scanner is not built: pip install -e . with a C compiler")
    counts: dict[str, int] = {}

    def blocks() -> None:
        counts["blocks"] = sum(len(decoder.decode(b.values)) for b in read_file_batches(path))

    def per_line() -> None:
        counts["per line"] = sum(
            len(decoder.decode(list(b.values))) for b in read_file_batches(path))

    def read_only() -> None:
        counts["records"] = sum(len(b) for b in read_file_batches(path))

    runs: dict[str, list[float]] = {"blocks": [], "per line": [], "read": []}
    for _ in range(args.repeat):  # interleaved, so all see the same machine
        runs["blocks"].append(best_of(blocks, 1).cpu_s)
        runs["per line"].append(best_of(per_line, 1).cpu_s)
        runs["read"].append(best_of(read_only, 1).cpu_s)
    n = counts["records"]
    if not counts["blocks"] == counts["per line"] == n:
        raise SystemExit(f"records decoded differ: {counts}")
    best = {k: min(v) for k, v in runs.items()}
    ref = best["per line"]
    rows = [
        ("blocks (`Scanner.scan_lines`)", f"{best['blocks']:.2f}",
         fmt_rate(n / best["blocks"]), f"{ref / best['blocks']:.2f}x"),
        ("one bytes per line (`Scanner.scan`)", f"{ref:.2f}", fmt_rate(n / ref), "1.00x"),
        ("read only (`read_file_batches`)", f"{best['read']:.2f}", fmt_rate(n / best["read"]),
         ""),
    ]
    print(f"### read + decode of {n:,} Kong records ({hours:g} h at 60 req/s; best of "
          f"{args.repeat}; {machine()})\n")
    print(table(("pipeline", "CPU s", "rec/s CPU", "speed-up CPU"), rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
