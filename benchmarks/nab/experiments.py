"""Parameter experiments for the volume model on NAB (see README.md): one line per variant.

    .venv/bin/python benchmarks/nab/experiments.py
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import Variant, evaluate, load_corpus

BASE = Variant("base")
B2 = replace(BASE, max_dispersion=1e6, volume_half_life=6, cooldown=288)
GRID = [
    B2,
    replace(B2, direction="up"),
    replace(B2, volume_half_life=3),
    replace(B2, volume_half_life=12),
    replace(B2, dispersion_half_life=100),
    replace(B2, warmup=300),
    replace(B2, seasonal=False),
]
GRID_1 = [
    BASE,
    replace(BASE, direction="down"),
    replace(BASE, direction="up"),
    replace(BASE, max_dispersion=1e6),
    replace(BASE, max_dispersion=1e6, cooldown=12),
    replace(BASE, max_dispersion=1e6, cooldown=72),
    replace(BASE, max_dispersion=1e6, cooldown=288),
    replace(BASE, max_dispersion=1e6, seasonal=False),
    replace(BASE, max_dispersion=1e6, volume_half_life=6),
    replace(BASE, max_dispersion=1e6, volume_half_life=100),
    replace(BASE, max_dispersion=1e6, dispersion_half_life=2000),
    replace(BASE, max_dispersion=1e6, freeze=8),
    replace(BASE, max_dispersion=1e6, min_ratio=1.5),
]


def main() -> None:
    corpus = load_corpus()
    cache: dict = {}
    for v in GRID:
        r = evaluate(corpus, v, cache)
        diff = {k: val for k, val in vars(v).items() if val != getattr(BASE, k) and k != "name"}
        print(" | ".join(f"{r[p]['normalized']:6.1f}" for p in r), diff,
              f"windows {r['standard']['windows_detected']} fp {r['standard']['fp']}", flush=True)


if __name__ == "__main__":
    main()
