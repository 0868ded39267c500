"""Ideas tried on top of the causal NAB variant, one row each (see README.md, "Ideas").

    .venv/bin/python -m benchmarks.nab.ideas          # ~6 min, one core

Every idea starts from the causal variant of run.py (calibrated, direction up, volume
half-life 6, cooldown 288, calibration min_std 2: 67.7 standard) and changes one thing.
Rows print "standard | reward_low_FP | reward_low_FN  idea"; the two excess gates also
print a leave-one-file-out figure (the gate's fraction and the threshold chosen on the
other 14 files, the held-out file scored with them).

All ideas are causal (row i sees rows < i) except the last, the excess gate on the file's
value range: NAB hands every detector ``inputMin`` / ``inputMax`` of the whole file, the
one exception its rules make to "no look-ahead" (HTM sizes its encoder with them, ARTime
normalises by them). run.py's chosen variant adopted that gate at 0.1
(``detect.volume.min_excess_count``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from scipy import special

from benchmarks.nab.experiments import held_out_raw
from benchmarks.nab.run import (
    VARIANTS,
    Series,
    Variant,
    cooldown,
    counts_of,
    load_corpus,
    to_unit,
    value_range,
)
from benchmarks.nab.scoring import (
    F64,
    NAB_DIR,
    PROFILE_NAMES,
    load_profiles,
    load_results,
    normalized,
    null_score,
    perfect_score,
    score_file,
    sweep,
)
from statuswatch.core.baseline import MIN_EXPECTED_FOR_DISPERSION, Baseline, fading_factor
from statuswatch.core.calibrate import ScoreCalibrator
from statuswatch.core.score import MAX_SCORE, excess_gates, score_volume

CAUSAL = VARIANTS["calibrated, direction up: half-life 6, cooldown 288, calibration min_std 2"]


@dataclass
class Trace:
    """One file's online baseline, row by row (each value known before the row is seen)."""

    counts: F64
    expected: F64
    phi: F64  # the quasi-Poisson dispersion the live detector uses
    nb_excess: F64  # negative binomial: var = mu + a mu^2, a by moments (same windows)
    warm: npt.NDArray[np.bool_]


def trace(s: Series, v: Variant = CAUSAL, excess_half_life: float = 360.0) -> Trace:
    b = Baseline(share_half_life=90.0, volume_half_life=v.volume_half_life,
                 warmup_windows=v.warmup, dispersion_half_life=v.dispersion_half_life,
                 window_ms=s.window_ms)
    n = len(s.values)
    counts = counts_of(s).astype(np.float64)
    exp, phi, excess = np.zeros(n), np.ones(n), np.zeros(n)
    warm = np.zeros(n, dtype=bool)
    alpha, a = fading_factor(excess_half_life), math.nan
    for i, t in enumerate(s.t_ms):
        e = b.expect(1, 1, window_start_ms=t, window_ms=s.window_ms, parents=np.array([-1]))
        mu = float(e.volume[0])
        exp[i], phi[i], warm[i] = mu, e.volume_dispersion[0], bool(e.warm[0]) and mu > 0
        excess[i] = 0.0 if math.isnan(a) else min(max(a, 0.0), 10.0)
        if mu >= MIN_EXPECTED_FOR_DISPERSION:
            x = min(((counts[i] - mu) ** 2 - mu) / mu**2, 40.0)
            a = x if math.isnan(a) else a + alpha * (x - a)
        b.learn(counts[i : i + 1].astype(np.int64).reshape(1, 1), window_start_ms=t)
    return Trace(counts, exp, phi, excess, warm)


def quasi_poisson_up(t: Trace, k: int = 1) -> F64:
    """The live volume score (up); with ``k`` > 1 over the sum of the last k windows."""
    c, e, p = t.counts, t.expected, t.phi
    if k > 1:
        kernel = np.ones(k)
        c, e = np.convolve(c, kernel)[: len(c)], np.convolve(e, kernel)[: len(e)]
        p = np.convolve(p, kernel)[: len(p)] / k
    return np.where(t.warm, score_volume(c, e, p).up, 0.0)


def negative_binomial_up(t: Trace) -> F64:
    """-log10 P(X >= x), X negative binomial with mean mu and variance mu + a mu^2."""
    x, mu, a = t.counts, np.maximum(t.expected, 1e-12), np.maximum(t.nb_excess, 1e-9)
    r = 1.0 / a
    with np.errstate(divide="ignore"):
        p = np.where(x > 0, special.betainc(np.maximum(x, 1e-12), r, mu / (r + mu)), 1.0)
        s = np.clip(np.nan_to_num(-np.log10(p), posinf=MAX_SCORE), 0.0, MAX_SCORE)
    return np.where(t.warm, s, 0.0)


def calibrate(raw: Sequence[F64], warm: Sequence[npt.NDArray[np.bool_]], min_std: float,
              learn_cap: float | None = None) -> list[F64]:
    """Each series through ScoreCalibrator (one row each, warm rows only); ``learn_cap``
    winsorises what the calibrator learns (it still scores the raw value)."""
    out = []
    for x, w in zip(raw, warm, strict=True):
        cal = ScoreCalibrator(min_std=min_std, long_half_life=CAUSAL.calibration_half_life,
                              warmup=CAUSAL.calibration_warmup)
        y = np.zeros_like(x)
        for i in np.flatnonzero(w):
            above = learn_cap is not None and x[i] > learn_cap
            y[i] = cal.update(x[i : i + 1], frozen=np.array([above]))[0]
            if above:  # learn the capped value instead
                cal.update(np.array([learn_cap]))
        out.append(y)
    return out


def empirical_rank(x: F64, warm: npt.NDArray[np.bool_], warmup: int = 300) -> F64:
    """-log10 of the share of the series' earlier warm scores at least as high."""
    out, past = np.zeros_like(x), np.empty(0)
    for i in np.flatnonzero(warm):
        if len(past) >= warmup:
            k = len(past) - np.searchsorted(past, x[i], side="left")
            out[i] = -math.log10((1 + k) / (len(past) + 1))
        past = np.insert(past, np.searchsorted(past, x[i]), x[i])
    return out


def pages(score: F64, fire: float, hold: int) -> F64:
    """Binary pages: a row at or above ``fire``, then nothing for ``hold`` rows."""
    out, last = np.zeros_like(score), -(10**9)
    for i in np.flatnonzero(score >= fire):
        if i - last > hold:
            out[i], last = 1.0, i
    return out


def largest_in(score: F64, n: int) -> F64:
    """Only rows scoring above every one of the previous n rows."""
    prev = sliding_window_view(np.concatenate([np.zeros(n), score])[:-1], n).max(axis=1)
    return np.where(score > prev, score, 0.0)


class Board:
    def __init__(self, corpus: Sequence[Series]) -> None:
        self.files = [s.labels for s in corpus]
        self.profiles = load_profiles()

    def row(self, label: str, anomalies: Sequence[F64]) -> None:
        cells = []
        for p in PROFILE_NAMES:
            cm = self.profiles[p]
            _, raw = sweep(self.files, anomalies, cm).best()
            cells.append(normalized(raw, null_score(self.files, cm), perfect_score(self.files, cm)))
        print(" | ".join(f"{c:5.1f}" for c in cells), label, flush=True)

    def per_file(self, anomalies: Sequence[F64], references: Sequence[str]) -> None:
        """Raw standard score, FP rows and windows hit per file, next to published ones."""
        cm = self.profiles["standard"]
        threshold, _ = sweep(self.files, anomalies, cm).best()
        published = {r: load_results(NAB_DIR / "results" / f"{r}_standard_scores.csv")
                     for r in references}
        print("| file | statuswatch: raw (FP rows, windows hit) | "
              + " | ".join(f"{r}: raw (FP rows)" for r in references) + " |")
        print("|---|---:|" + "---:|" * len(references))
        for lf, a in zip(self.files, anomalies, strict=True):
            f = score_file(lf, a, threshold, cm)
            hit = sum(int(np.any(a[lf.window == w] >= threshold)) for w in range(lf.n_windows))
            cells = [f"{float(published[r][lf.name]['Score']):+.2f} ({published[r][lf.name]['FP']})"
                     for r in references]
            print(f"| {lf.name.split('/')[-1]} | {f.score:+.2f} ({f.fp}, {hit}/{lf.n_windows}) | "
                  + " | ".join(cells) + " |")

    def leave_one_out(self, label: str, options: dict[float, Sequence[F64]]) -> None:
        cm = self.profiles["standard"]
        total = held_out_raw(self.files, options, cm)
        print(f"{normalized(total, null_score(self.files, cm), perfect_score(self.files, cm)):5.1f}"
              f" standard, leave-one-file-out: {label}", flush=True)


def main() -> None:
    corpus = load_corpus()
    board = Board(corpus)
    traces = [trace(s) for s in corpus]
    warm = [t.warm for t in traces]
    qp = [quasi_poisson_up(t) for t in traces]
    causal = calibrate(qp, warm, CAUSAL.calibration_min_std)
    hold = CAUSAL.cooldown

    def rows(label: str, calibrated: Sequence[F64], post: Callable[[F64], F64] = to_unit
             ) -> list[F64]:
        out = [post(cooldown(c, hold)) for c in calibrated]
        board.row(label, out)
        return out

    board.per_file([to_unit(cooldown(c, hold)) for c in causal], ["numenta", "ARTime"])
    rows("causal variant (run.py)", causal)
    nb = [negative_binomial_up(t) for t in traces]
    for ms in (0.3, 1.0, 2.0):
        rows(f"negative binomial volume score (var = mu + a mu^2), min_std {ms}",
             calibrate(nb, warm, ms))
        rows(f"max(causal, negative binomial calibrated at min_std {ms})",
             [np.maximum(a, b) for a, b in zip(causal, calibrate(nb, warm, ms), strict=True)])
    for k in (6, 12, 24):
        multi = calibrate([quasi_poisson_up(t, k) for t in traces], warm, 4.0)
        rows(f"max(causal, sum of the last {k} windows, calibrated at min_std 4)",
             [np.maximum(a, b) for a, b in zip(causal, multi, strict=True)])
    for cap in (20.0, 100.0):
        rows(f"calibrator learns scores capped at {cap:g}", calibrate(qp, warm, 2.0, cap))
    ranks = [empirical_rank(x, w) for x, w in zip(qp, warm, strict=True)]
    board.row("empirical rank of the raw score among its own past (no calibrator)",
              [to_unit(cooldown(r, hold)) for r in ranks])
    for fire, h in ((2.9, 144), (2.9, 288), (4.5, 288)):
        board.row(f"binary pages: calibrated >= {fire}, then silent for {h} rows",
                  [pages(c, fire, h) for c in causal])
    for n in (144, 288, 576):
        board.row(f"only the largest calibrated score of the last {n} rows (no cooldown)",
                  [to_unit(largest_in(c, n)) for c in causal])
    for name, scale in (
        ("causal: fraction of the largest value seen so far",
         lambda s: np.maximum.accumulate(np.concatenate([[0.0], s.values[:-1]]))),
        ("NAB's range: fraction of the file's range (inputMax - inputMin)",
         lambda s: np.full(len(s.values), value_range(s))),
    ):
        options = {}
        for f in (0.05, 0.07, 0.1, 0.12, 0.15, 0.2):
            gated = [np.where(excess_gates(t.counts, t.expected, f * np.maximum(scale(s), 1e-9),
                                           1.0)[0], c, 0.0)
                     for s, t, c in zip(corpus, traces, causal, strict=True)]
            options[f] = rows(f"excess gate, {name} {f:g}", gated)
        board.leave_one_out(f"excess gate, {name}", options)


if __name__ == "__main__":
    main()
