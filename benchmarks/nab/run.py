"""statuswatch's volume model on the NAB count series, scored the NAB way.

    .venv/bin/python -m benchmarks.nab.run [--variant NAME ...] [--json PATH] [--nab-dir DIR]

Each NAB count series vendored under benchmarks/nab/data/series is one scope. Its rows are
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
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import statuswatch.core.baseline as baseline_module
from benchmarks.nab.scoring import (
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
    series_files,
    sweep,
)
from statuswatch.core.baseline import Baseline
from statuswatch.core.calibrate import ScoreCalibrator
from statuswatch.core.score import excess_gates, score_volume

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
    * ``min_excess_of_range``: ``detect.volume.min_excess_count`` set to this fraction of
      the file's value range, ``inputMax - inputMin``: rows whose excess over (up) or
      shortfall under (down) the expected volume is smaller score 0 (0 disables). NAB's
      rules forbid look-ahead and per-file tuning with one exception, the range of each
      file's values, which NAB's detector base class hands every detector at start (HTM
      sizes its encoder with it, ARTime normalises by it). One fraction for all files; in
      a deployment the SRE sets the count from the traffic they know.
    * ``max_dispersion``: the cap on the learned over-dispersion phi (module constant
      ``MAX_DISPERSION`` = 50 in core/baseline.py; would need a key such as
      ``baseline.max_dispersion``).
    * ``calibration``: pass each direction's score through its own
      ``statuswatch.core.calibrate.ScoreCalibrator`` (one row per scope, fed warm windows
      only) before the cooldown: ``detect.volume.calibration`` (``true`` | ``false``), as the
      live ``Detector`` does. Its keys: ``detect.volume.calibration_half_life_windows``
      (``calibration_half_life``: long-run mean/variance), ``detect.volume.calibration_min_std``
      (``calibration_min_std``), ``detect.volume.calibration_warmup_windows``
      (``calibration_warmup``: calibrated scores are 0 before). ``calibration_window``
      (short-term average) and ``calibration_freeze`` (do not learn a window whose calibrated
      score is at least this) are experiment-only: the grid found 1 and off best, which is
      what the live detector uses.
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
    min_excess_of_range: float = 0.0
    max_dispersion: float = 50.0
    calibration: bool = False
    calibration_window: int = 1
    calibration_half_life: float = 10_000.0
    calibration_min_std: float = 0.3  # 2.0 with the default dispersion cap (the chosen one)
    calibration_warmup: int = 300
    calibration_freeze: float = 0.0


#: The chosen variant: the calibrated one below it, with ``detect.volume.min_excess_count``
#: at a tenth of each file's value range (the one thing NAB lets a detector know ahead).
CHOSEN = Variant(
    "calibrated, direction up: half-life 6, cooldown 288, calibration min_std 2, "
    "min_excess_count 0.1 x range",
    volume_half_life=6, cooldown=288, calibration=True, direction="up",
    calibration_min_std=2.0, min_excess_of_range=0.1,
)

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
        Variant("calibrated, direction up: uncapped dispersion, half-life 6, cooldown 288",
                max_dispersion=1e6, volume_half_life=6, cooldown=288, calibration=True,
                direction="up"),
        Variant("calibrated: defaults + calibration",
                calibration=True, calibration_min_std=2.0),
        Variant("calibrated, direction up: half-life 6, cooldown 288, calibration min_std 2",
                volume_half_life=6, cooldown=288, calibration=True, direction="up",
                calibration_min_std=2.0),
        CHOSEN,
    ]
}


@dataclass
class Series:
    name: str
    labels: LabelledFile
    t_ms: list[int]
    values: F64
    window_ms: int


def load_corpus(nab_dir: Path = NAB_DIR) -> list[Series]:
    windows = load_windows(nab_dir / "labels" / "combined_windows.json")
    out = []
    for name, path in series_files(nab_dir):
        ts, values = load_data(path)
        t_ms = (ts.astype("datetime64[ms]").astype(np.int64)).tolist()
        step = int(np.median(np.diff(t_ms)))
        out.append(Series(name, LabelledFile.build(name, ts, windows[name]), t_ms, values, step))
    return out


Raw = tuple[F64, F64, F64, npt.NDArray[np.bool_]]


def raw_scores(s: Series, v: Variant) -> Raw:
    """Online up/down -log10 p per row, the expected volume and the warm mask, from
    statuswatch's Baseline."""
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
    warm = np.zeros(n, dtype=bool)
    counts = counts_of(s)
    for i, t in enumerate(s.t_ms):
        e = b.expect(1, 1, window_start_ms=t, window_ms=s.window_ms, parents=parents)
        c = counts[i : i + 1].reshape(1, 1)
        vs = score_volume(c.sum(axis=1), e.volume, e.volume_dispersion)
        if e.warm[0]:
            up[i], down[i], warm[i] = vs.up[0], vs.down[0], True
        exp[i] = e.volume[0]
        live = v.freeze > 0 and max(up[i], down[i]) >= v.freeze
        b.learn(c, window_start_ms=t, frozen_volume=np.array([live]))
    baseline_module.MAX_DISPERSION = DEFAULT_MAX_DISPERSION
    return up, down, exp, warm


def value_range(s: Series) -> float:
    """NAB's ``inputMax - inputMin`` of the whole file (nab/detectors/base.py)."""
    return float(s.values.max() - s.values.min())


def direction_scores(v: Variant, up: npt.NDArray[Any], down: npt.NDArray[Any]
                     ) -> list[npt.NDArray[Any]]:
    """The chosen direction(s)' arrays (-log10 p per row, or gate masks)."""
    return {"up": [up], "down": [down]}.get(v.direction, [up, down])


def counts_of(s: Series) -> npt.NDArray[np.int64]:
    """The window counts the baseline sees: the file's values rounded, at least 0."""
    return np.rint(np.maximum(s.values, 0)).astype(np.int64)


def volume_gates(s: Series, v: Variant, per_direction: Sequence[F64], exp: F64) -> list[F64]:
    """The live detector's volume gates (``excess_gates``, as in ``Detector._hits``) on
    the (calibrated) scores: rows below ``min_ratio`` or ``min_excess_of_range`` score 0."""
    if v.min_ratio <= 1.0 and v.min_excess_of_range <= 0:
        return list(per_direction)
    up_ok, down_ok = excess_gates(counts_of(s), exp, v.min_excess_of_range * value_range(s),
                                  v.min_ratio)
    oks = direction_scores(v, up_ok, down_ok)
    return [np.where(ok, x, 0.0) for ok, x in zip(oks, per_direction, strict=True)]


def calibrate_corpus(v: Variant, scores: Sequence[Sequence[F64]],
                     warm: Sequence[npt.NDArray[np.bool_]]) -> list[list[F64]]:
    """Each direction through its own ScoreCalibrator, all series at once (one row each, as
    the live detector would hold one row per scope); a series' non-warm rows are not fed."""
    n_rows = max(len(w) for w in warm)
    active = np.zeros((n_rows, len(warm)), dtype=bool)
    for j, w in enumerate(warm):
        active[: len(w), j] = w
    out: list[list[F64]] = [[] for _ in scores]
    for d in range(len(scores[0])):
        raw = np.zeros((n_rows, len(warm)))
        for j, per_dir in enumerate(scores):
            raw[: len(per_dir[d]), j] = per_dir[d]
        cal = ScoreCalibrator(
            short_window=v.calibration_window, long_half_life=v.calibration_half_life,
            warmup=v.calibration_warmup, min_std=v.calibration_min_std,
            freeze_score=v.calibration_freeze,
        )
        calibrated = np.zeros_like(raw)
        for i in range(n_rows):
            calibrated[i] = cal.update(raw[i], active=active[i])
        for j, w in enumerate(warm):
            out[j].append(calibrated[: len(w), j])
    return out


def cooldown(score: F64, n: int) -> F64:
    """For ``n`` rows after a reported row only a stronger one is reported (0: off)."""
    if n <= 0:
        return score
    out = np.zeros_like(score)
    recent = -math.inf
    quiet = 0
    for i, x in enumerate(score):
        if x > recent or quiet >= n:
            out[i] = x
            recent, quiet = x, 0
        else:
            quiet += 1
    return out


def to_unit(score: F64) -> F64:
    """s / (s + 10): any strictly increasing map gives the same sweep; this one keeps
    large scores apart (1 - 10**-s rounds everything above ~16 to 1.0, a tie the sweep
    cannot split)."""
    mapped: F64 = score / (score + 10.0)
    return mapped


def anomaly_scores(v: Variant, per_direction: Sequence[F64]) -> F64:
    """Per-row anomaly score in [0, 1]: ``to_unit`` of the directions' max (-log10 p, or
    its calibration), after the cooldown."""
    return to_unit(cooldown(np.maximum.reduce(list(per_direction)), v.cooldown))


def baseline_key(s: Series, v: Variant) -> tuple:
    """The cache key of ``raw_scores(s, v)``: the series and the fields the baseline reads."""
    return (s.name, v.volume_half_life, v.warmup, v.dispersion_half_life, v.seasonal, v.freeze,
            v.max_dispersion)


def corpus_scores(corpus: Sequence[Series], v: Variant, cache: dict[tuple, Raw]) -> list[F64]:
    """Per-series anomaly scores of variant ``v`` (the baseline runs are cached by key)."""
    raws = []
    for s in corpus:
        key = baseline_key(s, v)
        if key not in cache:
            cache[key] = raw_scores(s, v)
        raws.append(cache[key])
    scores = [direction_scores(v, r[0], r[1]) for r in raws]
    if v.calibration:
        # The gates act after the calibrator, when hits are decided (Detector._calibrated,
        # then Detector._hits): they do not change what it learns. (The live detector also
        # skips rows with a live volume alert; see ``freeze`` / ``calibration_freeze``.)
        scores = calibrate_corpus(v, scores, [r[3] for r in raws])
    return [anomaly_scores(v, volume_gates(s, v, per_dir, r[2]))
            for s, r, per_dir in zip(corpus, raws, scores, strict=True)]


def score_corpus(files: Sequence[LabelledFile], anomalies: Sequence[F64],
                 thresholds: dict[str, float] | None = None) -> dict[str, dict[str, float]]:
    """NAB scores per profile at the swept threshold (or at ``thresholds[profile]``)."""
    profiles = load_profiles()
    out = {}
    for prof in PROFILE_NAMES:
        cm = profiles[prof]
        if thresholds is None:
            threshold, raw = sweep(files, anomalies, cm).best()
        else:
            threshold = thresholds[prof]
        per_file = [score_file(lf, a, threshold, cm)
                    for lf, a in zip(files, anomalies, strict=True)]
        if thresholds is None:
            assert abs(sum(f.score for f in per_file) - raw) < 1e-6
        else:
            raw = sum(f.score for f in per_file)
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


def evaluate(corpus: Sequence[Series], v: Variant, cache: dict[tuple, Raw]
             ) -> dict[str, dict[str, float]]:
    return score_corpus([s.labels for s in corpus], corpus_scores(corpus, v, cache))


def references(corpus: Sequence[Series], nab_dir: Path = NAB_DIR
               ) -> dict[str, dict[str, float]]:
    """Published detectors' per-file raw scores, summed and normalised over these files."""
    profiles = load_profiles()
    files = [s.labels for s in corpus]
    out: dict[str, dict[str, float]] = {}
    for prefix, _ in REFERENCES:
        out[prefix] = {}
        for prof in PROFILE_NAMES:
            rows = load_results(nab_dir / "results" / f"{prefix}_{prof}_scores.csv")
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
    ap.add_argument("--nab-dir", type=Path, default=NAB_DIR,
                    help="NAB data laid out as benchmarks/nab/data (default: that folder)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    corpus = load_corpus(args.nab_dir)
    n_windows = sum(s.labels.n_windows for s in corpus)
    print(f"{len(corpus)} NAB files, {sum(len(s.values) for s in corpus)} rows, "
          f"{n_windows} anomaly windows")
    cache: dict[tuple, Raw] = {}
    results = {}
    for name in args.variant or list(VARIANTS):
        v = VARIANTS[name]
        results[name] = evaluate(corpus, v, cache)
        r = results[name]
        print(f"{name}: " + ", ".join(
            f"{p} {r[p]['normalized']:.1f} (thr {r[p]['threshold']:.4f}, "
            f"{r[p]['windows_detected']}/{n_windows} windows, {r[p]['fp']} FP rows)"
            for p in PROFILE_NAMES), flush=True)
    refs = references(corpus, args.nab_dir)
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
