"""NAB scoring, reimplemented in pure Python + numpy (no NAB package).

Follows NAB v1.x as published in numenta/NAB: ``nab/sweeper.py`` (per-row
scaled-sigmoid weights, threshold sweep), ``nab/optimizer.py`` (one threshold
per detector and profile, chosen to maximise the summed raw score over the
corpus) and ``nab/runner.py`` (normalisation against the null and perfect
detectors). The rules, as implemented here:

* The first ``min(floor(0.15 * n), 0.15 * 5000)`` rows of a file are
  probationary: they are neither scored nor counted.
* Each row gets a *sweep score*. Inside a labelled window of ``width`` rows whose
  last row is ``right``, row ``i`` is worth
  ``scaled_sigmoid(-(right - i + 1) / width) / scaled_sigmoid(-1) * tpWeight``
  (exactly ``tpWeight`` at the window's first row, falling towards 0 at its end).
  Outside windows a detection costs ``fpWeight`` before the first window, else
  ``scaled_sigmoid(|i - prev_right| / (prev_width - 1)) * fpWeight`` (a negative
  number: near -0 just after a window, -fpWeight far from it).
* A window counts once: if any of its rows is detected, it contributes the best
  (= earliest) detected row's sweep score, else ``-fnWeight``. Each FP row
  contributes its own (negative) sweep score. True negatives are worth 0
  (``tnWeight`` is unused, as in NAB).
* A row is a detection when ``anomaly_score >= threshold``.
* Normalised score over a set of files: ``100 * (raw - null) / (perfect - null)``
  with ``null = -fnWeight * windows`` (a detector that never fires) and
  ``perfect = tpWeight * windows`` (one detection at each window's start).

The sweep is vectorised: scores at every distinct threshold in O(n log n).
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

PROBATION_PERCENT = 0.15
PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
#: The vendored NAB subset (see data/SOURCES.md): series/, labels/, results/, profiles.json.
NAB_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True, slots=True)
class CostMatrix:
    tp: float
    fp: float
    fn: float
    tn: float = 1.0  # present in profiles.json, unused by NAB's scoring


def load_profiles(path: Path = NAB_DIR / "profiles.json") -> dict[str, CostMatrix]:
    raw = json.loads(path.read_text())
    out = {}
    for name, prof in raw.items():
        cm = prof["CostMatrix"]
        out[name] = CostMatrix(cm["tpWeight"], cm["fpWeight"], cm["fnWeight"], cm["tnWeight"])
    return out


def load_windows(
    path: Path = NAB_DIR / "labels" / "combined_windows.json",
) -> dict[str, list[tuple[str, str]]]:
    raw = json.loads(path.read_text())
    return {k: [(a, b) for a, b in v] for k, v in raw.items()}


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def scaled_sigmoid(position: float) -> float:
    """NAB's reward curve: +0.9866 at a window's left edge (-1), 0 at its right edge (0),
    -0.9866 one window-length after it (+1), -1 beyond 3."""
    if position > 3.0:
        return -1.0
    return 2.0 * sigmoid(-5.0 * position) - 1.0


MAX_TP = scaled_sigmoid(-1.0)


def probation_length(n_rows: int, percent: float = PROBATION_PERCENT) -> float:
    return min(math.floor(percent * n_rows), percent * 5000)


def parse_time(values: Iterable[str]) -> npt.NDArray[np.datetime64]:
    stamps = [np.datetime64(v.strip().replace(" ", "T")) for v in values]
    return np.array(stamps, dtype="datetime64[us]")


@dataclass(frozen=True)
class LabelledFile:
    """One data file's row layout relative to its anomaly windows (profile independent).

    ``window[i]``: index of the window row ``i`` is in (-1: outside, -2: probationary);
    ``tp_unit[i]``: NAB's TP reward at ``i`` for tpWeight 1; ``fp_unit[i]``: the
    (negative) FP cost at ``i`` for fpWeight 1.
    """

    name: str
    n_rows: int
    window: I64
    tp_unit: F64
    fp_unit: F64
    n_windows: int
    window_starts: tuple[int, ...]

    @classmethod
    def build(
        cls, name: str, timestamps: npt.NDArray[np.datetime64], windows: Sequence[tuple[str, str]],
        probation_percent: float = PROBATION_PERCENT,
    ) -> LabelledFile:
        n = len(timestamps)
        index = {t: i for i, t in enumerate(timestamps.tolist())}
        limits = []
        for a, b in windows:
            ta, tb = parse_time([a, b]).tolist()
            if ta not in index or tb not in index:
                raise ValueError(f"{name}: window edge {a} / {b} is not a row timestamp")
            limits.append((index[ta], index[tb]))
        limits.sort()
        window = np.full(n, -1, np.int64)
        tp_unit = np.zeros(n)
        fp_unit = np.full(n, -1.0)  # before any window: -fpWeight
        for w, (left, right) in enumerate(limits):
            width = float(right - left + 1)
            i = np.arange(left, right + 1)
            window[left : right + 1] = w
            pos = -(right - i + 1) / width
            tp_unit[left : right + 1] = [scaled_sigmoid(p) / MAX_TP for p in pos]
            end = limits[w + 1][0] if w + 1 < len(limits) else n
            j = np.arange(right + 1, end)
            # NAB divides by (width - 1): a one-row window followed by rows divides by zero.
            fp_unit[right + 1 : end] = [scaled_sigmoid(abs(right - k) / (width - 1)) for k in j]
        prob = probation_length(n, probation_percent)
        in_prob = np.arange(n) < prob
        if np.any(in_prob & (window >= 0)):
            raise ValueError(f"{name}: a window starts inside the probationary period")
        window[in_prob] = -2
        return cls(name, n, window, tp_unit, fp_unit, len(limits), tuple(a for a, _ in limits))


@dataclass(frozen=True, slots=True)
class FileScore:
    name: str
    threshold: float
    score: float
    tp: int
    tn: int
    fp: int
    fn: int
    total: int


def score_file(lf: LabelledFile, anomaly: F64, threshold: float, cm: CostMatrix) -> FileScore:
    """Raw NAB score of one file at ``threshold`` (detections: anomaly >= threshold)."""
    anomaly = np.asarray(anomaly, dtype=np.float64)
    if anomaly.shape != (lf.n_rows,):
        raise ValueError("one anomaly score per row")
    det = anomaly >= threshold
    scored = lf.window != -2
    inside = lf.window >= 0
    outside = lf.window == -1
    fp_rows = det & outside
    score = float(np.sum(lf.fp_unit[fp_rows])) * cm.fp
    for w in range(lf.n_windows):
        hit = np.flatnonzero(det & (lf.window == w))
        score += cm.tp * float(lf.tp_unit[hit[0]]) if hit.size else -cm.fn
    tp = int(np.sum(det & inside))
    fp = int(np.sum(fp_rows))
    fn = int(np.sum(inside)) - tp
    tn = int(np.sum(outside)) - fp
    return FileScore(lf.name, threshold, score, tp, tn, fp, fn, int(np.sum(scored)))


@dataclass(frozen=True, slots=True)
class Sweep:
    """Corpus raw score at every candidate threshold, highest threshold first.

    ``thresholds[0]`` is 1.1 (nothing detected), then each distinct anomaly score.
    """

    thresholds: F64
    scores: F64

    def best(self) -> tuple[float, float]:
        """NAB's optimum: the highest score; on ties, the highest threshold."""
        k = int(np.argmax(self.scores))
        return float(self.thresholds[k]), float(self.scores[k])


def sweep(files: Sequence[LabelledFile], anomalies: Sequence[F64], cm: CostMatrix) -> Sweep:
    """NAB's threshold sweep (``Sweeper.calcScoreByThreshold``) over several files at once."""
    scores_l, sweep_l, win_l = [], [], []
    n_windows = 0
    for lf, a in zip(files, anomalies, strict=True):
        keep = lf.window != -2
        w = lf.window[keep]
        scores_l.append(np.asarray(a, dtype=np.float64)[keep])
        sweep_l.append(np.where(w >= 0, lf.tp_unit[keep] * cm.tp, lf.fp_unit[keep] * cm.fp))
        win_l.append(np.where(w >= 0, w + n_windows, -1))
        n_windows += lf.n_windows
    s = np.concatenate(scores_l)
    v = np.concatenate(sweep_l)
    g = np.concatenate(win_l)
    order = np.argsort(-s, kind="stable")
    s, v, g = s[order], v[order], g[order]
    delta = np.where(g < 0, v, 0.0)
    # A window's contribution is max(-fn, best detected sweep score): each newly
    # detected row adds the rise of that running max.
    for w in range(n_windows):
        idx = np.flatnonzero(g == w)
        if idx.size == 0:
            continue
        run = np.maximum.accumulate(np.concatenate(([-cm.fn], v[idx])))
        delta[idx] = np.diff(run)
    total = -cm.fn * n_windows + np.cumsum(delta)
    # A threshold's score includes every row whose anomaly score is >= it: take the
    # running total at the last row of each group of equal anomaly scores.
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True))
    thresholds = np.concatenate(([1.1], s[last]))
    scores = np.concatenate(([-cm.fn * n_windows], total[last]))
    return Sweep(thresholds, scores)


def null_score(files: Iterable[LabelledFile], cm: CostMatrix) -> float:
    return -cm.fn * sum(lf.n_windows for lf in files)


def perfect_score(files: Iterable[LabelledFile], cm: CostMatrix) -> float:
    return cm.tp * sum(lf.n_windows for lf in files)


def normalized(raw: float, null: float, perfect: float) -> float:
    return 100.0 * (raw - null) / (perfect - null)


def series_files(nab_dir: Path = NAB_DIR) -> Iterator[tuple[str, Path]]:
    """Each count series as (NAB's file name, e.g. ``realTweets/Twitter_volume_FB.csv``,
    its gzip-compressed path), in name order."""
    for path in sorted((nab_dir / "series").glob("*/*.csv.gz")):
        yield f"{path.parent.name}/{path.name.removesuffix('.gz')}", path


def load_data(path: Path) -> tuple[npt.NDArray[np.datetime64], F64]:
    with gzip.open(path, "rt") as f:
        rows = list(csv.DictReader(f))
    return parse_time(r["timestamp"] for r in rows), np.array([float(r["value"]) for r in rows])


def load_results(path: Path) -> dict[str, dict[str, str]]:
    """Per-file rows of a NAB ``<detector>_<profile>_scores.csv`` keyed by file (no Totals)."""
    with path.open() as f:
        return {r["File"]: r for r in csv.DictReader(f) if r["Detector"] != "Totals" and r["File"]}
