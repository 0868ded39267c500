"""Parameter experiments for the volume model on NAB (see README.md): one line per variant.

    .venv/bin/python -m benchmarks.nab.experiments \
        [--grid base|calibration|calibration50|range|all|none] [--cv] [--ceiling]

``--grid``: the one-at-a-time grids (standard | reward_low_FP | reward_low_FN, then the
windows hit and FP rows at the standard threshold). ``--cv``: leave-one-file-out check of
the whole selection (variant *and* threshold chosen on the other 14 files, the held-out file
scored at that threshold; the held-out raw scores are summed and normalised over the 15
files). ``--ceiling``: what a perfect per-file threshold, or no FP at all, would give the
chosen variant.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from benchmarks.nab.run import (
    VARIANTS,
    Raw,
    Series,
    Variant,
    corpus_scores,
    load_corpus,
    score_corpus,
)
from benchmarks.nab.scoring import (
    F64,
    PROFILE_NAMES,
    CostMatrix,
    LabelledFile,
    load_profiles,
    normalized,
    null_score,
    perfect_score,
    score_file,
    sweep,
)

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
#: The chosen calibrated variant (run.py's "calibrated, direction up: ...").
CAL = VARIANTS["calibrated, direction up: uncapped dispersion, half-life 6, cooldown 288"]
GRID_CAL = [
    CAL,
    replace(CAL, direction="both"),
    *[replace(CAL, calibration_window=k) for k in (3, 6, 12)],
    *[replace(CAL, calibration_half_life=h) for h in (1000, 3000, 30000)],
    *[replace(CAL, calibration_min_std=m) for m in (0.03, 0.1, 1.0)],
    replace(CAL, calibration_freeze=10.0),
    replace(CAL, calibration_warmup=1000),
    *[replace(CAL, cooldown=c) for c in (0, 72, 144, 576)],
    *[replace(CAL, volume_half_life=h) for h in (3.0, 12.0, 30.0)],
    replace(CAL, max_dispersion=50.0),
    replace(CAL, seasonal=False),
    replace(CAL, dispersion_half_life=2000.0),
    replace(CAL, direction="both", calibration_window=10, calibration_half_life=3000,
            calibration_min_std=0.1),  # closest to HTM's anomaly likelihood (10 / 8640)
]
#: The same around the default dispersion cap (50), which calibration makes usable.
CAL50 = replace(CAL, max_dispersion=50.0)
CAL50_1 = replace(CAL50, calibration_min_std=1.0)
GRID_CAL50 = [
    CAL50,
    replace(CAL50, direction="both"),
    *[replace(CAL50, cooldown=c) for c in (144, 576)],
    *[replace(CAL50, volume_half_life=h) for h in (3.0, 12.0)],
    *[replace(CAL50, calibration_half_life=h) for h in (3000, 30000)],
    *[replace(CAL50, calibration_min_std=m) for m in (0.1, 1.0)],
    replace(CAL50, calibration_window=3),
    replace(CAL50, seasonal=False),
    *[replace(CAL50, max_dispersion=m) for m in (10.0, 20.0, 100.0, 200.0)],
    *[replace(CAL50_1, calibration_min_std=m) for m in (2.0, 3.0)],
    *[replace(CAL50_1, volume_half_life=h) for h in (3.0, 12.0)],
    *[replace(CAL50_1, cooldown=c) for c in (144, 576)],
    replace(CAL50_1, max_dispersion=20.0),
    replace(CAL50_1, direction="both"),
    replace(CAL50_1, calibration_half_life=3000),
    *[replace(CAL50_1, calibration_min_std=m) for m in (1.5, 2.5)],
]
#: And around its best point (min_std 2).
CAL50_2 = replace(CAL50, calibration_min_std=2.0)
GRID_CAL50_2 = [
    *[replace(CAL50_2, volume_half_life=h) for h in (3.0, 12.0)],
    *[replace(CAL50_2, cooldown=c) for c in (144, 576)],
    *[replace(CAL50_2, max_dispersion=m) for m in (20.0, 100.0)],
    *[replace(CAL50_2, calibration_half_life=h) for h in (3000, 30000)],
    replace(CAL50_2, calibration_window=3),
    replace(CAL50_2, direction="both"),
    replace(CAL50_2, calibration_freeze=10.0),
]

#: The range gate (``min_excess_of_range``) around the chosen variant, with the two knobs
#: it interacts with (calibration floor, cooldown); 0 is the causal variant itself.
GRID_RANGE = [
    replace(CAL50_2, calibration_min_std=m, cooldown=c, min_excess_of_range=f)
    for m in (0.5, 1.0, 2.0, 3.0)
    for c in (144, 288, 576)
    for f in (0.0, 0.06, 0.07, 0.08, 0.09, 0.1, 0.11, 0.12)
]


def label(v: Variant) -> str:
    ref = CAL if v.calibration else BASE
    diff = {k: val for k, val in vars(v).items() if val != getattr(ref, k) and k != "name"}
    return ("calibrated " if v.calibration else "") + str(diff)


class Scores:
    """Per-series anomaly scores of each variant, computed once."""

    def __init__(self, corpus: Sequence[Series]) -> None:
        self.corpus = corpus
        self.raw: dict[tuple, Raw] = {}
        self.memo: dict[Variant, list[F64]] = {}

    def __call__(self, v: Variant) -> list[F64]:
        if v not in self.memo:
            self.memo[v] = corpus_scores(self.corpus, v, self.raw)
        return self.memo[v]


def run_grid(corpus: Sequence[Series], grid: Sequence[Variant], scores: Scores) -> None:
    files = [s.labels for s in corpus]
    for v in grid:
        r = score_corpus(files, scores(v))
        print(" | ".join(f"{r[p]['normalized']:6.1f}" for p in PROFILE_NAMES), label(v),
              f"windows {r['standard']['windows_detected']} fp {r['standard']['fp']}",
              flush=True)


def leave_one_file_out(corpus: Sequence[Series], pool: Sequence[Variant], memo: Scores
                       ) -> dict[str, float]:
    """Per profile: held-out raw scores (variant and threshold picked on the other files),
    normalised over all files."""
    files = [s.labels for s in corpus]
    scores = {v: memo(v) for v in pool}
    profiles = load_profiles()
    out = {}
    for prof in PROFILE_NAMES:
        cm = profiles[prof]
        total = held_out_raw(files, scores, cm)
        out[prof] = normalized(total, null_score(files, cm), perfect_score(files, cm))
    return out


def held_out_raw(files: Sequence[LabelledFile], options: Mapping[Any, Sequence[F64]],
                 cm: CostMatrix) -> float:
    """Summed raw score of each file at the option and threshold that score best on the
    other files (the first option wins ties)."""
    total = 0.0
    for k in range(len(files)):
        train = [i for i in range(len(files)) if i != k]
        (threshold, _), choice = max(
            ((sweep([files[i] for i in train], [a[i] for i in train], cm).best(), key)
             for key, a in options.items()),
            key=lambda t: t[0][1],
        )
        total += score_file(files[k], options[choice][k], threshold, cm).score
    return total


def ceiling(corpus: Sequence[Series], v: Variant, scores: Scores) -> None:
    files = [s.labels for s in corpus]
    anomalies = scores(v)
    cm = load_profiles()["standard"]
    null, perfect = null_score(files, cm), perfect_score(files, cm)
    oracle = sum(sweep([lf], [a], cm).best()[1] for lf, a in zip(files, anomalies, strict=True))
    threshold, raw = sweep(files, anomalies, cm).best()
    fp_cost = sum(
        float(np.sum(lf.fp_unit[(a >= threshold) & (lf.window == -1)])) * cm.fp
        for lf, a in zip(files, anomalies, strict=True)
    )
    print(f"{label(v)}: standard {normalized(raw, null, perfect):.1f}; with one threshold per "
          f"file (oracle) {normalized(oracle, null, perfect):.1f}; at the swept threshold "
          f"without its FP rows {normalized(raw - fp_cost, null, perfect):.1f}")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", default="all",
                    choices=["base", "calibration", "calibration50", "range", "all", "none"])
    ap.add_argument("--cv", action="store_true")
    ap.add_argument("--ceiling", action="store_true")
    args = ap.parse_args(argv)
    corpus = load_corpus()
    scores = Scores(corpus)
    grids = {"base": GRID_1 + GRID, "calibration": GRID_CAL + GRID_CAL50 + GRID_CAL50_2,
             "calibration50": GRID_CAL50_2, "range": GRID_RANGE}
    for name, grid in grids.items():
        if args.grid == name or (args.grid == "all" and name != "calibration50"):
            run_grid(corpus, grid, scores)
    if args.ceiling:
        for v in (B2, CAL, CAL50, CAL50_2):
            ceiling(corpus, v, scores)
    if args.cv:
        calibrated = GRID_CAL + GRID_CAL50 + GRID_CAL50_2
        for name, pool in (("uncalibrated (GRID)", GRID), ("calibrated", calibrated),
                           ("both", GRID + calibrated),
                           ("range gate (GRID_RANGE)", GRID_RANGE),
                           ("all three", GRID + calibrated + GRID_RANGE)):
            r = leave_one_file_out(corpus, pool, scores)
            print(f"leave-one-file-out, pool {name}: "
                  + " | ".join(f"{r[p]:.1f}" for p in PROFILE_NAMES), flush=True)


if __name__ == "__main__":
    main()
