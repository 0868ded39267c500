"""statuswatch's volume model on the NAB count series, scored the NAB way.

    .venv/bin/python benchmarks/nab/run.py [--variant NAME ...] [--json PATH]

Each NAB file present under /work/shared/data/public/nab/data is one scope. Its rows are
fed in time order, one row per window (value = the window's request count, timestamp =
window start, ``window_ms`` = the file's median step). Before a window is learned, the
baseline's expectation for it is scored with ``score_volume`` (quasi-Poisson, -log10 p,
up and down): the detector is online, row i only sees rows < i. The per-row score is
mapped to [0, 1], NAB's threshold sweep picks one threshold per profile over all the
files, and the normalised scores are printed next to the published detectors' per-file
results, renormalised over the same files.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scoring import (
    F64,
    NAB_DIR,
    PROFILE_NAMES,
    LabelledFile,
    load_data,
    load_profiles,
    load_results,
    load_windows,
    normalized,
    null_score,
    perfect_score,
    score_file,
    sweep,
)

import statuswatch.core.baseline as baseline_module
from statuswatch.core.baseline import Baseline
from statuswatch.core.score import score_volume

DEFAULT_MAX_DISPERSION = baseline_module.MAX_DISPERSION

#: Published detectors shown in the table: (results file prefix, scoreboard name).
REFERENCES = [
    ("ARTime", "ARTime"),
    ("numenta", "Numenta HTM"),
    ("contextOSE", "CAD OSE"),
    ("knncad", "KNN CAD"),
    ("twitterADVec", "Twitter ADVec"),
    ("windowedGaussian", "Windowed Gaussian"),
    ("skyline", "Etsy Skyline"),
    ("null", "null (never detects)"),
]


@dataclass(frozen=True)
class Variant:
    """One way of running the volume model; every field is something a user could set.

    * ``volume_half_life``: ``baseline.volume_half_life_windows`` (default 30).
    * ``warmup``: ``baseline.warmup_windows`` (default 30): scores are 0 before.
    * ``dispersion_half_life``: ``Baseline(dispersion_half_life=...)`` (360, no config
      key yet).
    * ``seasonal``: ``False`` never reads the daily/weekly profile (no config key yet).
    * ``direction``: ``detect.volume.direction`` (``up`` | ``down`` | ``both``).
    * ``freeze``: score above which the window is not learned, like a live alert's
      ``frozen_volume`` (``detect.volume.fire_score``; 0 disables).
    * ``cooldown``: windows after a row during which only a *stronger* score is reported
      (an open episode pages once; the nearest existing keys are ``detect.clear_score``
      hysteresis and ``detect.m``).
    * ``min_ratio``: ``detect.volume.min_ratio``: rows whose observed/expected (or
      expected/observed, down) ratio is below this score 0.
    * ``max_dispersion``: the cap on the learned over-dispersion phi (module constant
      ``MAX_DISPERSION`` = 50 in core/baseline.py; would need a key such as
      ``baseline.max_dispersion``).
    """

    name: str
    volume_half_life: float = 30.0
    warmup: int = 30
    dispersion_half_life: float = 360.0
    seasonal: bool = True
    direction: str = "both"
    freeze: float = 0.0
    cooldown: int = 0
    min_ratio: float = 1.0
    max_dispersion: float = 50.0


VARIANTS = {
    v.name: v
    for v in [
        Variant("defaults (direction down)", direction="down"),
        Variant("defaults, direction both"),
        Variant("uncapped dispersion", max_dispersion=1e6),
        Variant("tuned: uncapped dispersion, half-life 6, cooldown 288",
                max_dispersion=1e6, volume_half_life=6, cooldown=288),
        Variant("tuned: uncapped dispersion, half-life 12, cooldown 288",
                max_dispersion=1e6, volume_half_life=12, cooldown=288),
    ]
}


@dataclass
class Series:
    name: str
    labels: LabelledFile
    t_ms: list[int]
    values: F64
    window_ms: int


def load_corpus() -> list[Series]:
    windows = load_windows()
    out = []
    for path in sorted((NAB_DIR / "data").glob("*/*.csv")):
        name = f"{path.parent.name}/{path.name}"
        ts, values = load_data(path)
        t_ms = (ts.astype("datetime64[ms]").astype(np.int64)).tolist()
        step = int(np.median(np.diff(t_ms)))
        out.append(Series(name, LabelledFile.build(name, ts, windows[name]), t_ms, values, step))
    return out


def raw_scores(s: Series, v: Variant) -> tuple[F64, F64, F64]:
    """Online up/down -log10 p per row, and the expected volume, from statuswatch's Baseline."""
    b = Baseline(
        share_half_life=90.0, volume_half_life=v.volume_half_life, warmup_windows=v.warmup,
        dispersion_half_life=v.dispersion_half_life, window_ms=s.window_ms,
    )
    if not v.seasonal:
        b._seasonal_ratio = lambda *_: 1.0  # type: ignore[method-assign]
    baseline_module.MAX_DISPERSION = v.max_dispersion  # read at learn time; restored below
    parents = np.array([-1])
    n = len(s.values)
    up, down, exp = np.zeros(n), np.zeros(n), np.zeros(n)
    counts = np.rint(np.maximum(s.values, 0)).astype(np.int64)
    for i, t in enumerate(s.t_ms):
        e = b.expect(1, 1, window_start_ms=t, window_ms=s.window_ms, parents=parents)
        c = counts[i : i + 1].reshape(1, 1)
        vs = score_volume(c.sum(axis=1), e.volume, e.volume_dispersion)
        if e.warm[0]:
            up[i], down[i] = vs.up[0], vs.down[0]
        exp[i] = e.volume[0]
        live = v.freeze > 0 and max(up[i], down[i]) >= v.freeze
        b.learn(c, window_start_ms=t, frozen_volume=np.array([live]))
    baseline_module.MAX_DISPERSION = DEFAULT_MAX_DISPERSION
    return up, down, exp


def anomaly_scores(s: Series, v: Variant, up: F64, down: F64, exp: F64) -> F64:
    """Per-row anomaly score in [0, 1]: s / (s + 10) of the chosen direction's -log10 p.

    Any strictly increasing map gives the same sweep; this one keeps large scores apart
    (1 - 10**-s rounds everything above ~16 to 1.0, a tie the sweep cannot split)."""
    obs = np.maximum(s.values, 0)
    if v.min_ratio > 1.0:
        with np.errstate(divide="ignore", invalid="ignore"):
            up = np.where(obs >= v.min_ratio * exp, up, 0.0)
            down = np.where(exp >= v.min_ratio * obs, down, 0.0)
    if v.direction == "up":
        score = up
    elif v.direction == "down":
        score = down
    else:
        score = np.maximum(up, down)
    if v.cooldown > 0:
        score = score.copy()
        out = np.zeros_like(score)
        recent = -math.inf
        quiet = 0
        for i, x in enumerate(score):
            if x > recent or quiet >= v.cooldown:
                out[i] = x
                recent, quiet = x, 0
            else:
                quiet += 1
        score = out
    return score / (score + 10.0)


def evaluate(corpus: Sequence[Series], v: Variant, cache: dict[tuple, tuple[F64, F64, F64]]
             ) -> dict[str, dict[str, float]]:
    profiles = load_profiles()
    key_fields = (v.volume_half_life, v.warmup, v.dispersion_half_life, v.seasonal, v.freeze,
                  v.max_dispersion)
    anomalies = []
    for s in corpus:
        key = (s.name, *key_fields)
        if key not in cache:
            cache[key] = raw_scores(s, v)
        anomalies.append(anomaly_scores(s, v, *cache[key]))
    files = [s.labels for s in corpus]
    out = {}
    for prof in PROFILE_NAMES:
        cm = profiles[prof]
        threshold, raw = sweep(files, anomalies, cm).best()
        per_file = [score_file(lf, a, threshold, cm)
                    for lf, a in zip(files, anomalies, strict=True)]
        assert abs(sum(f.score for f in per_file) - raw) < 1e-6
        null, perfect = null_score(files, cm), perfect_score(files, cm)
        out[prof] = {
            "threshold": threshold, "raw": raw,
            "normalized": normalized(raw, null, perfect),
            "tp": sum(f.tp for f in per_file), "fp": sum(f.fp for f in per_file),
            "windows_detected": sum(
                int(np.any(a[lf.window == w] >= threshold))
                for lf, a in zip(files, anomalies, strict=True) for w in range(lf.n_windows)
            ),
        }
    return out


def references(corpus: Sequence[Series]) -> dict[str, dict[str, float]]:
    """Published detectors' per-file raw scores, summed and normalised over these files."""
    profiles = load_profiles()
    files = [s.labels for s in corpus]
    out: dict[str, dict[str, float]] = {}
    for prefix, _ in REFERENCES:
        out[prefix] = {}
        for prof in PROFILE_NAMES:
            rows = load_results(NAB_DIR / "results" / f"{prefix}_{prof}_scores.csv")
            raw = sum(float(rows[s.name]["Score"]) for s in corpus)
            cm = profiles[prof]
            out[prefix][prof] = normalized(raw, null_score(files, cm), perfect_score(files, cm))
    return out


def table(results: dict[str, dict[str, dict[str, float]]], refs: dict[str, dict[str, float]]
          ) -> str:
    rows = []
    for name, r in results.items():
        label = f"**statuswatch volume: {name}**"
        rows.append((label, *(r[p]["normalized"] for p in PROFILE_NAMES)))
    for prefix, label in REFERENCES:
        rows.append((label, *(refs[prefix][p] for p in PROFILE_NAMES)))
    rows.sort(key=lambda r: -r[1])
    lines = ["| detector | standard | reward_low_FP | reward_low_FN |", "|---|---:|---:|---:|"]
    lines += [f"| {r[0]} | {r[1]:.1f} | {r[2]:.1f} | {r[3]:.1f} |" for r in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", action="append", choices=sorted(VARIANTS),
                    help="variants to run (default: all)")
    ap.add_argument("--json", type=Path, help="write the full results here")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    corpus = load_corpus()
    n_windows = sum(s.labels.n_windows for s in corpus)
    print(f"{len(corpus)} NAB files, {sum(len(s.values) for s in corpus)} rows, "
          f"{n_windows} anomaly windows")
    cache: dict[tuple, tuple[F64, F64, F64]] = {}
    results = {}
    for name in args.variant or list(VARIANTS):
        v = VARIANTS[name]
        results[name] = evaluate(corpus, v, cache)
        r = results[name]
        print(f"{name}: " + ", ".join(
            f"{p} {r[p]['normalized']:.1f} (thr {r[p]['threshold']:.4f}, "
            f"{r[p]['windows_detected']}/{n_windows} windows, {r[p]['fp']} FP rows)"
            for p in PROFILE_NAMES), flush=True)
    refs = references(corpus)
    print()
    print(table(results, refs))
    print(f"\n{time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(
            {"variants": {n: asdict(VARIANTS[n]) for n in results}, "results": results,
             "references": refs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
