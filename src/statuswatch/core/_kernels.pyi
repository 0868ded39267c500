"""Type stub of the optional C extension ``_kernels.c`` (see its header comment)."""

import numpy as np
import numpy.typing as npt

def share_cells(
    counts: npt.NDArray[np.int64], share: npt.NDArray[np.float64],
    floor: npt.NDArray[np.float64] | None, dispersion: npt.NDArray[np.float64] | None,
    totals: npt.NDArray[np.int64], down_totals: npt.NDArray[np.float64] | None,
    rows: npt.NDArray[np.bool_] | None, exact: npt.NDArray[np.bool_] | None,
    n_cols: int, limit: float, mean_side: bool,
    observed: npt.NDArray[np.float64], expected: npt.NDArray[np.float64],
    up_expected: npt.NDArray[np.float64], tail_idx: npt.NDArray[np.int64],
    tail_at: npt.NDArray[np.float64], /,
) -> tuple[int, int]:
    """One pass of ``score._score_shares`` screened at ``limit``: the candidate counts
    of the rise and the drop tail (see the C source)."""

def learn_cells(
    rows: npt.NDArray[np.int64], counts: npt.NDArray[np.int64], totals: npt.NDArray[np.int64],
    frozen: npt.NDArray[np.bool_] | None, debias: npt.NDArray[np.float64],
    long_counts: npt.NDArray[np.int64] | None, long_totals: npt.NDArray[np.int64] | None,
    frozen_long: npt.NDArray[np.bool_] | None, known: npt.NDArray[np.bool_],
    mean: npt.NDArray[np.float64], started: npt.NDArray[np.bool_],
    disp_mean: npt.NDArray[np.float64], disp_started: npt.NDArray[np.bool_],
    long_resid: npt.NDArray[np.float64], long_expected: npt.NDArray[np.float64],
    n_cols: int, stride: int, alphas: tuple[float, float, float], min_expected: float,
    max_resid: float, /,
) -> None:
    """``Baseline.learn``'s share learning of ``rows``, in place (see the C source)."""

def expect_cells(
    rows: npt.NDArray[np.int64], debias: npt.NDArray[np.float64], mean: npt.NDArray[np.float64],
    disp_mean: npt.NDArray[np.float64], disp_started: npt.NDArray[np.bool_],
    long_resid: npt.NDArray[np.float64], long_expected: npt.NDArray[np.float64],
    n_cols: int, stride: int, prior: float, max_dispersion: float,
    share: npt.NDArray[np.float64], share_phi: npt.NDArray[np.float64],
    long_phi: npt.NDArray[np.float64], /,
) -> None:
    """``Baseline.expect``'s per-cell part of ``rows``, into the outputs (see the C source)."""

def rises_possible(
    horizons: tuple[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64],
                          npt.NDArray[np.float64], npt.NDArray[np.float64], bool,
                          npt.NDArray[np.bool_], npt.NDArray[np.bool_], int], ...],
    minute: npt.NDArray[np.int64], minute_totals: npt.NDArray[np.int64], minute_span: int,
    warm: npt.NDArray[np.bool_], learned: npt.NDArray[np.float64],
    floor: npt.NDArray[np.float64], ref_counts: npt.NDArray[np.float64],
    ref_totals: npt.NDArray[np.float64], ref_cols: int, alpha: float,
    row_ids: npt.NDArray[np.int64] | None, n_cols: int, recent_rate: float, /,
) -> bool:
    """Whether a cell of the horizons given may pass its rise gates (see the C source)."""

def ew_rows(
    rows: npt.NDArray[np.int64], values: npt.NDArray[np.float64], totals: npt.NDArray[np.int64],
    sums: npt.NDArray[np.float64], row_totals: npt.NDArray[np.float64], n_cols: int,
    stride: int, alpha: float, /,
) -> None:
    """``LongReference.learn_rows``' EW update of ``rows``, in place (see the C source)."""
