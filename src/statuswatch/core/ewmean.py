"""Exponentially weighted means in River's arithmetic on numpy arrays: where the
baseline keeps its share, dispersion and volume series.

* ``RiverSeries``: one ``river.stats.EWMean`` per row, the reference learner;
* ``RiverVector``: the same, one numpy expression for a vector of rows, bit for bit;
* ``DenseEWMean``: the same update for a whole (rows, cols) matrix of series;
* ``Dispersion``: the over-dispersion phi of a matrix of count series.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from statuswatch.core.columns import I64

if TYPE_CHECKING:
    from river import stats

F64 = npt.NDArray[np.float64]

MAX_DISPERSION = 50.0
#: Expected events of prior weight at phi = 1 in a share series' dispersion estimate.
DISPERSION_PRIOR_EVENTS = 5.0


def fading_factor(half_life_windows: float) -> float:
    """EWMean weight of the newest value so that old values halve every half-life.

    >>> round(fading_factor(1.0), 3)
    0.5
    """
    return float(1.0 - 0.5 ** (1.0 / half_life_windows))


class RiverSeries:
    """One River ``EWMean`` per row (the volume level and its dispersion)."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.models: dict[int, stats.EWMean] = {}

    def update(self, row: int, value: float) -> float:
        model = self.models.get(row)
        if model is None:
            from river import stats  # deferred: only the reference path uses River

            model = self.models[row] = stats.EWMean(fading_factor=self.alpha)
        model.update(value)
        return float(model.get())

    def fit(self, rows: int) -> None:
        """Nothing to size: a model is made on a row's first value."""

    def forget(self, rows: I64) -> None:
        for row in rows.tolist():
            self.models.pop(row, None)

    def snapshot(self) -> list[list[float]]:
        return [[row, float(m.get())] for row, m in self.models.items()]

    def restore(self, items: list[list[float]]) -> list[tuple[int, float]]:
        self.models.clear()
        return [(int(row), self.update(int(row), float(v))) for row, v in items]


class RiverVector:
    """River's ``EWMean`` for a vector of series, one per row, in River's own arithmetic:
    a series' first value is its mean, later ones ``a * x + (1 - a) * mean``.

    Bit for bit the same as ``RiverSeries`` (one ``river.stats.EWMean`` per row, the
    reference learner: ``Baseline(reference=True)``), checked against it in
    ``tests/unit/test_baseline.py``; one numpy expression per window instead of a
    Python call per row.
    """

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.mean = np.zeros(0)
        self.started = np.zeros(0, dtype=bool)

    def fit(self, rows: int) -> None:
        self.mean = grown(self.mean, (rows,), 0.0)
        self.started = grown(self.started, (rows,), False)

    def update(self, rows: I64, values: F64) -> F64:
        """Teach ``values[i]`` to series ``rows[i]`` (distinct); returns their means."""
        old = self.mean[rows]
        new: F64 = np.where(
            self.started[rows], self.alpha * values + (1.0 - self.alpha) * old, values
        )
        self.mean[rows] = new
        self.started[rows] = True
        return new

    def forget(self, rows: I64) -> None:
        self.mean[rows] = 0.0
        self.started[rows] = False

    def snapshot(self) -> list[list[float]]:
        rows = np.flatnonzero(self.started)
        return [[r, v] for r, v in zip(rows.tolist(), self.mean[rows].tolist(), strict=True)]

    def restore(self, items: list[list[float]]) -> list[tuple[int, float]]:
        self.mean[:] = 0.0
        self.started[:] = False
        out = [(int(row), float(v)) for row, v in items]
        if out:
            rows = np.array([r for r, _ in out], np.int64)
            self.fit(int(rows.max()) + 1)
            self.mean[rows] = [v for _, v in out]
            self.started[rows] = True
        return out


class DenseEWMean:
    """River's ``EWMean`` update for a whole (rows, cols) matrix of series at once.

    A series' first value becomes its mean; later values move it by ``alpha``,
    exactly as ``river.stats.EWMean`` does (``tests/unit/test_baseline.py``
    checks the two against each other). One matrix instead of one River object
    per (scope, code) keeps memory flat at ~17 bytes per series and the update
    one numpy expression per closed window.
    """

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.mean = np.zeros((0, 0))
        self.started = np.zeros((0, 0), dtype=bool)

    def fit(self, rows: int, cols: int) -> None:
        self.mean = grown(self.mean, (rows, cols), 0.0)
        self.started = grown(self.started, (rows, cols), False)

    def update(self, rows: I64, cols: I64, values: F64) -> None:
        """Teach ``values[i]`` to series ``(rows[i], cols[i])`` (pairs are distinct)."""
        mean, at = flat_cells(self.mean, rows, cols)
        # ``fit`` grows both alike (same shape, C-contiguous): one flat index serves both.
        started = self.started.reshape(-1)
        old = mean[at]
        # River's own expression, not the algebraically equal old + a * (x - old): the
        # two round differently, and a threshold on the mean (dispersion is learned from
        # 5 expected events) must decide as River's would.
        moved = self.alpha * values + (1.0 - self.alpha) * old
        mean[at] = np.where(started[at], moved, values)
        started[at] = True

    def snapshot(self) -> list[list[float]]:
        rows, cols = np.nonzero(self.started)
        values = self.mean[rows, cols].tolist()
        return [[r, c, v] for r, c, v in zip(rows.tolist(), cols.tolist(), values, strict=True)]

    def restore(self, items: list[list[float]]) -> None:
        self.mean[:] = 0.0
        self.started[:] = False
        if items:
            arr = np.array(items, dtype=np.float64).reshape(-1, 3)
            rows, cols = arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64)
            self.mean[rows, cols] = arr[:, 2]
            self.started[rows, cols] = True


class Dispersion:
    """Over-dispersion phi of a (rows, cols) matrix of count series: the ratio of
    exponentially weighted sums, ``(sum (x - e)^2 / (1 - p) + k) / (sum e + k)``.

    Each window weighs by its expected count ``e``, so a sparse series (e well under
    one a window: a quiet scope, a rare code, bursty traffic between gaps) learns its
    dispersion as surely as a busy one, without the noise of ``(x - e)^2 / e`` at tiny
    ``e``; ``k`` (``DISPERSION_PRIOR_EVENTS``) pseudo-events at phi = 1 keep a series
    with little history near 1. Under binomial noise both sums grow alike: phi ~ 1.

    >>> d = Dispersion(fading_factor(100))
    >>> d.fit(1, 1)
    >>> for x in [0, 0, 0, 9] * 50:  # one request in 4 windows expected, 9 at a time
    ...     d.update(np.array([0]), np.array([0]), np.array([x]), np.array([1.0]),
    ...              np.array([0.25]))
    >>> bool(d.phi(1, 1)[0, 0] > 5)
    True
    """

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.resid = np.zeros((0, 0))  # EW mean of (x - e)^2 / (1 - p), from 0
        self.expected = np.zeros((0, 0))  # EW mean of e, from 0

    def fit(self, rows: int, cols: int) -> None:
        self.resid = grown(self.resid, (rows, cols), 0.0)
        self.expected = grown(self.expected, (rows, cols), 0.0)

    def update(self, rows: I64, cols: I64, count: I64, total: I64 | F64, p: F64) -> None:
        """Teach one window of series ``(rows[i], cols[i])`` (pairs are distinct)."""
        expected = total * p
        ok = (p > 0.0) & (p < 1.0)
        rows, cols, count, expected, p = rows[ok], cols[ok], count[ok], expected[ok], p[ok]
        # One window moves phi by at most what the old per-window cap allowed.
        resid = np.minimum((count - expected) ** 2 / (1.0 - p),
                           MAX_DISPERSION * 4 * np.maximum(expected, 1.0))
        # ``fit`` grows both alike (same shape, C-contiguous): one flat index serves both.
        _, at = flat_cells(self.resid, rows, cols)
        for dense, value in ((self.resid, resid), (self.expected, expected)):
            flat = dense.reshape(-1)
            flat[at] += self.alpha * (value - flat[at])

    @property
    def prior(self) -> float:
        """``DISPERSION_PRIOR_EVENTS`` on the EW-mean scale: what both sums start from."""
        return DISPERSION_PRIOR_EVENTS * self.alpha

    def phi(self, n_rows: int, n_cols: int, rows: I64 | None = None) -> F64:
        """phi of the first ``n_rows`` rows, or of ``rows`` only."""
        k = self.prior
        sel: slice | I64 = slice(0, n_rows) if rows is None else rows
        ratio = (self.resid[sel, :n_cols] + k) / (self.expected[sel, :n_cols] + k)
        out: F64 = np.clip(ratio, 1.0, MAX_DISPERSION)
        return out

    def forget(self, rows: I64) -> None:
        self.resid[rows] = 0.0
        self.expected[rows] = 0.0

    def snapshot(self) -> list[list[float]]:
        rows, cols = np.nonzero(self.expected)
        return [
            [r, c, x, e] for r, c, x, e in zip(
                rows.tolist(), cols.tolist(), self.resid[rows, cols].tolist(),
                self.expected[rows, cols].tolist(), strict=True,
            )
        ]

    def restore(self, items: list[list[float]]) -> None:
        self.resid[:] = 0.0
        self.expected[:] = 0.0
        if items:
            arr = np.array(items, dtype=np.float64).reshape(-1, 4)
            rows, cols = arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64)
            self.resid[rows, cols] = arr[:, 2]
            self.expected[rows, cols] = arr[:, 3]


def flat_cells(a: npt.NDArray[Any], rows: I64, cols: I64) -> tuple[npt.NDArray[Any], I64]:
    """A flat view of the matrix ``a`` and where its cells ``(rows[i], cols[i])`` are in
    it: one flat index is several times faster than (row, col) pairs, same cells.

    >>> a = np.arange(6.0).reshape(2, 3)
    >>> flat, at = flat_cells(a, np.array([1, 0]), np.array([2, 1]))
    >>> flat[at] = -1.0
    >>> a.tolist()
    [[0.0, -1.0, 2.0], [3.0, 4.0, -1.0]]
    """
    if not a.flags.c_contiguous:
        raise ValueError("flat_cells needs a C-contiguous matrix")
    at: I64 = rows * a.shape[1] + cols
    return a.reshape(-1), at


def grown(a: Any, shape: tuple[int, ...], fill: Any) -> Any:
    """``a`` padded with ``fill`` to at least ``shape``; capacity grows by a quarter
    along rows, so scopes appearing one by one do not copy the matrix every window
    and at most a fifth of it is slack."""
    have = a.shape
    if have[0] >= shape[0] and (len(shape) == 1 or have[1:] == shape[1:] or all(
        s >= n for s, n in zip(have, shape, strict=True)
    )):
        return a  # the common case, checked without a generator
    rows = a.shape[0] if a.shape[0] >= shape[0] else max(shape[0], a.shape[0] + a.shape[0] // 4)
    target = (
        rows,
        *(max(s, n) for s, n in zip(a.shape[1:], shape[1:], strict=True)),
    )
    out = np.full(target, fill, dtype=a.dtype)
    out[tuple(slice(0, s) for s in a.shape)] = a
    return out
