"""benchmarks.nab.scoring against NAB's published numbers and hand-worked cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks.nab.scoring import (
    MAX_TP,
    NAB_DIR,
    PROFILE_NAMES,
    CostMatrix,
    LabelledFile,
    load_data,
    load_profiles,
    load_results,
    load_windows,
    normalized,
    null_score,
    perfect_score,
    probation_length,
    scaled_sigmoid,
    score_file,
    series_files,
    sweep,
)

#: Detectors of the published scoreboard (results/<name>_<profile>_scores.csv).
SCOREBOARD = ["ARTime", "numenta", "contextOSE", "knncad", "twitterADVec", "windowedGaussian",
              "skyline"]


@pytest.fixture(scope="module")
def corpus() -> dict[str, LabelledFile]:
    windows = load_windows()
    out = {}
    for name, path in series_files():
        ts, _ = load_data(path)
        out[name] = LabelledFile.build(name, ts, windows[name])
    return out


def _ts(n: int) -> np.ndarray:
    return np.datetime64("2020-01-01T00:00") + np.arange(n) * np.timedelta64(5, "m")


def _edge(ts: np.ndarray, i: int) -> str:
    return str(ts[i].astype("datetime64[us]")).replace("T", " ")


# -- the scoring function ------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "expected"),
    [(-1.0, 0.98661), (-0.5, 0.84828), (0.0, 0.0), (1.0, -0.98661), (3.0, -0.99999969),
     (3.01, -1.0), (100.0, -1.0)],
)
def test_scaled_sigmoid_known_points(x: float, expected: float) -> None:
    assert scaled_sigmoid(x) == pytest.approx(expected, abs=5e-6)


def test_scaled_sigmoid_is_2_sigmoid_minus_1() -> None:
    for x in np.linspace(-3, 3, 13):
        assert scaled_sigmoid(x) == pytest.approx(2 / (1 + math.exp(5 * x)) - 1, abs=1e-15)
    assert pytest.approx(2 / (1 + math.exp(-5)) - 1) == MAX_TP


def test_probation_length() -> None:
    assert probation_length(20) == 3
    assert probation_length(4032) == 604
    assert probation_length(15902) == 750  # capped at 15 % of 5000 rows


def test_synthetic_file_scored_by_hand() -> None:
    # 40 rows; probation floor(0.15 * 40) = 6 rows. Window A = rows 10..13 (width 4),
    # window B = rows 25..29 (width 5, never detected).
    ts = _ts(40)
    lf = LabelledFile.build("synthetic", ts, [(_edge(ts, 10), _edge(ts, 13)),
                                               (_edge(ts, 25), _edge(ts, 29))])
    cm = CostMatrix(tp=1.0, fp=0.11, fn=1.0)
    a = np.zeros(40)
    a[[2, 7, 11, 12, 15, 35]] = 1.0
    # row 2: probationary, ignored; row 7: FP before any window, -fp;
    # row 11: first detection in A, position -(13 - 11 + 1) / 4 = -0.75, scaled by maxTP;
    # row 12: later detection in A, worth nothing; row 15: FP 2 rows after A, whose
    # width - 1 = 3: position 2/3; row 35: FP 6 rows after B (width - 1 = 4): 1.5;
    # window B: missed, -fn.
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    tp_a = (2 * sig(-5 * -0.75) - 1) / (2 * sig(5) - 1)
    expected = (-0.11 + tp_a + 0.11 * (2 * sig(-5 * 2 / 3) - 1)
                + 0.11 * (2 * sig(-5 * 1.5) - 1) - 1.0)
    got = score_file(lf, a, 0.5, cm)
    assert got.score == pytest.approx(expected, abs=1e-12)
    assert (got.tp, got.fp, got.fn, got.tn, got.total) == (2, 3, 7, 22, 34)
    # The sweep's score at threshold 1.0 is the same file score.
    sw = sweep([lf], [a], cm)
    assert sw.thresholds.tolist() == [1.1, 1.0, 0.0]
    assert sw.scores[0] == -2.0
    assert sw.scores[1] == pytest.approx(expected, abs=1e-12)


def test_only_first_detection_in_window_counts() -> None:
    ts = _ts(100)
    lf = LabelledFile.build("w", ts, [(_edge(ts, 50), _edge(ts, 59))])
    cm = CostMatrix(tp=1.0, fp=0.11, fn=1.0)
    one, many = np.zeros(100), np.zeros(100)
    one[50] = 1
    many[50:60] = 1
    assert score_file(lf, one, 0.5, cm).score == pytest.approx(1.0)  # start of window: tpWeight
    assert score_file(lf, many, 0.5, cm).score == pytest.approx(1.0)
    late = np.zeros(100)
    late[59] = 1  # last row: position -1/10
    assert score_file(lf, late, 0.5, cm).score == pytest.approx(scaled_sigmoid(-0.1) / MAX_TP)


def _nab_sweep_reference(
    lf: LabelledFile, a: np.ndarray, cm: CostMatrix
) -> list[tuple[float, float]]:
    """A literal transcription of NAB's Sweeper.calcScoreByThreshold loop."""
    rows = [(a[i], (lf.tp_unit[i] * cm.tp if lf.window[i] >= 0 else lf.fp_unit[i] * cm.fp),
             int(lf.window[i])) for i in range(lf.n_rows) if lf.window[i] != -2]
    rows.sort(key=lambda r: r[0], reverse=True)
    parts: dict[object, float] = {"fp": 0.0}
    for _, _, w in rows:
        if w >= 0:
            parts[w] = -cm.fn
    out, cur = [], 1.1
    for s, v, w in rows:
        if s != cur:
            out.append((cur, sum(parts.values())))
            cur = s
        if w < 0:
            parts["fp"] += v
        else:
            parts[w] = max(parts[w], v)
    out.append((cur, sum(parts.values())))
    return out


def test_sweep_matches_nab_loop_and_per_threshold_scoring() -> None:
    rng = np.random.default_rng(7)
    ts = _ts(300)
    lf = LabelledFile.build("r", ts, [(_edge(ts, 60), _edge(ts, 79)),
                                      (_edge(ts, 150), _edge(ts, 160)),
                                      (_edge(ts, 240), _edge(ts, 270))])
    a = np.round(rng.random(300), 2)  # many ties
    for cm in load_profiles().values():
        sw = sweep([lf], [a], cm)
        ref = _nab_sweep_reference(lf, a, cm)
        assert sw.thresholds.tolist() == [t for t, _ in ref]
        np.testing.assert_allclose(sw.scores, [s for _, s in ref], atol=1e-9)
        for t, s in zip(sw.thresholds[1:], sw.scores[1:], strict=True):
            assert score_file(lf, a, float(t), cm).score == pytest.approx(s, abs=1e-9)


def test_best_threshold_prefers_highest_on_ties() -> None:
    ts = _ts(100)
    lf = LabelledFile.build("t", ts, [(_edge(ts, 50), _edge(ts, 59))])
    a = np.zeros(100)
    a[50], a[51] = 0.9, 0.8  # both thresholds detect the window at its start: same score
    t, s = sweep([lf], [a], CostMatrix(1.0, 0.11, 1.0)).best()
    assert (t, s) == (0.9, pytest.approx(1.0))


# -- against NAB's published results ---------------------------------------------------


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_null_detector_per_file_scores_match_nab(corpus: dict[str, LabelledFile],
                                                 profile: str) -> None:
    cm = load_profiles()[profile]
    rows = load_results(NAB_DIR / "results" / f"null_{profile}_scores.csv")
    for name, lf in corpus.items():
        row = rows[name]
        # NAB's null detector outputs 0.5 everywhere; its threshold is above that.
        got = score_file(lf, np.full(lf.n_rows, 0.5), float(row["Threshold"]), cm)
        assert abs(got.score - float(row["Score"])) < 1e-6, name
        assert (got.tp, got.tn, got.fp, got.fn) == tuple(
            int(row[k]) for k in ("TP", "TN", "FP", "FN")), name
        assert int(row["Total_Count"]) == lf.n_rows


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_perfect_and_null_over_present_files(corpus: dict[str, LabelledFile],
                                             profile: str) -> None:
    cm = load_profiles()[profile]
    files = list(corpus.values())
    raw_perfect = raw_null = 0.0
    for lf in files:
        a = np.zeros(lf.n_rows)
        for w in range(lf.n_windows):
            a[np.flatnonzero(lf.window == w)[0]] = 1.0  # each window at its start
        raw_perfect += score_file(lf, a, 0.5, cm).score
        raw_null += score_file(lf, a, 1.1, cm).score
    n_windows = sum(len(v) for k, v in load_windows().items() if k in corpus)
    assert raw_perfect == pytest.approx(perfect_score(files, cm)) == cm.tp * n_windows
    assert raw_null == null_score(files, cm) == -cm.fn * n_windows
    assert normalized(raw_perfect, raw_null, raw_perfect) == pytest.approx(100.0)


def test_normalisation_reproduces_final_results() -> None:
    """Full corpus: 100 * (total - null) / (perfect - null) from each Totals row."""
    profiles = load_profiles()
    final = json.loads((NAB_DIR / "results" / "final_results.json").read_text())
    n_windows = sum(len(v) for v in load_windows().values())
    for det in [*SCOREBOARD, "null"]:
        for prof in PROFILE_NAMES:
            path = NAB_DIR / "results" / f"{det}_{prof}_scores.csv"
            total = [line for line in path.read_text().splitlines() if line.startswith("Totals")]
            raw = float(total[0].split(",")[4])
            cm = profiles[prof]
            got = normalized(raw, -cm.fn * n_windows, cm.tp * n_windows)
            assert got == pytest.approx(final[det][prof], abs=1e-6), (det, prof)


@pytest.mark.parametrize("detector", SCOREBOARD)
def test_published_per_file_counts_are_consistent(corpus: dict[str, LabelledFile],
                                                  detector: str) -> None:
    """What the per-file rows of real detectors allow checking without their anomaly scores.

    * TP + FN = scored rows inside windows and TN + FP = scored rows outside, per file.
    * The score is bounded by the counts: at most one TP reward per window, FPs cost at
      most fpWeight each.
    * When standard and reward_low_FN use the same threshold, their scores differ by the
      number of missed windows (fnWeight 1 vs 2): an integer in [0, windows], and all
      windows are missed when there is no TP.
    """
    profiles = load_profiles()
    rows = {p: load_results(NAB_DIR / "results" / f"{detector}_{p}_scores.csv")
            for p in PROFILE_NAMES}
    for name, lf in corpus.items():
        inside = int(np.sum(lf.window >= 0))
        outside = int(np.sum(lf.window == -1))
        for prof in PROFILE_NAMES:
            r = rows[prof][name]
            tp, tn, fp, fn = (int(r[k]) for k in ("TP", "TN", "FP", "FN"))
            assert (tp + fn, tn + fp) == (inside, outside), (name, prof)
            cm = profiles[prof]
            s = float(r["Score"])
            assert s <= cm.tp * min(tp, lf.n_windows) + 1e-9
            assert s >= -cm.fn * lf.n_windows - cm.fp * fp - 1e-9
        std, low_fn = rows["standard"][name], rows["reward_low_FN_rate"][name]
        if std["Threshold"] == low_fn["Threshold"]:
            missed = float(std["Score"]) - float(low_fn["Score"])
            assert missed == pytest.approx(round(missed), abs=1e-6)
            assert 0 <= round(missed) <= lf.n_windows
            if int(std["TP"]) == 0:
                assert round(missed) == lf.n_windows
