"""Pictures of alert episodes for ``statuswatch backtest --plots DIR``.

:class:`SeriesRecorder` listens to a detector's scored windows
(``Detector.report_listener``) and alerts, and keeps, for every series that
pages, its observed share (or volume) with the expected value and the band the
score allows, from ``PRE_ROLL_S`` before the page to ``POST_ROLL_S`` after the
resolution. Memory stays bounded: the windows before a page come from a ring of
the last windows' matrices (at most ``RING_BYTES``); only paging series are
kept beyond it.

:func:`render` draws one :class:`Trace` as a PNG with matplotlib, an optional
extra (``pip install 'statuswatch[plots]'``), on the Agg canvas (no display, no
pyplot state).
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from statuswatch.core.decide import AlertEvent
from statuswatch.core.detector import Detector, WindowReport
from statuswatch.core.rules import resolve
from statuswatch.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["Mark", "SeriesRecorder", "Trace", "render", "require_matplotlib"]

#: Context shown before an episode pages, and after it resolves.
PRE_ROLL_S = 3600
POST_ROLL_S = 1800
#: Most memory the ring of recent windows may take (three float32 matrices a window).
RING_BYTES = 256 * 2**20

INSTALL_HINT = "--plots needs matplotlib: pip install 'statuswatch[plots]'"

F32 = npt.NDArray[np.float32]


def require_matplotlib() -> None:
    """Fail early, in one line, when the plots extra is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ConfigError(INSTALL_HINT) from exc
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # its font cache notes


@dataclass(frozen=True, slots=True)
class _Frame:
    """One scored window, every series, compactly."""

    start_ms: int
    share: F32  # observed share (rows, cols)
    expected: F32  # expected share, floor included (rows, cols)
    dispersion: F32  # (rows, cols)
    totals: npt.NDArray[np.int64]  # requests per row
    volume_expected: F32
    volume_dispersion: F32
    warm: npt.NDArray[np.bool_]  # rows whose baseline is past its warm-up

    @classmethod
    def of(cls, report: WindowReport) -> _Frame:
        s, e = report.shares, report.expectation
        totals = s.totals
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = np.where(totals[:, None] > 0, s.expected_count / totals[:, None], np.nan)
        return cls(
            report.window.start_ms, s.observed_share.astype(np.float32),
            expected.astype(np.float32), e.share_dispersion.astype(np.float32),
            totals.copy(), report.volume.expected.astype(np.float32),
            e.volume_dispersion.astype(np.float32), e.warm.copy(),
        )

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.share, self.expected, self.dispersion, self.totals,
                                      self.volume_expected, self.volume_dispersion, self.warm))


@dataclass(slots=True)
class Trace:
    """One paging series around its episode: per window (start), what it was, what was
    expected, and the band in which the score stays below the fire score."""

    alert_id: str
    scope: dict[str, str]
    code: int | str
    direction: str
    signal: str
    quantity: str  # "share" or "volume"
    fire_score: float
    fired_ms: int  # start of the window that paged
    resolved_ms: int | None = None  # end of the window that resolved it
    times_ms: list[int] = field(default_factory=list)
    observed: list[float] = field(default_factory=list)
    expected: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)


@dataclass(slots=True)
class _Track:
    """A trace being recorded: per window what the band is computed from, at the end
    (one vectorised call per trace, not one per point)."""

    trace: Trace
    row: int
    col: int  # -1: volume
    level: list[float] = field(default_factory=list)  # expected share, or volume
    requests: list[float] = field(default_factory=list)  # the scope's total (shares)
    dispersion: list[float] = field(default_factory=list)
    warm: list[bool] = field(default_factory=list)

    def add(self, frame: _Frame) -> None:
        row, col = self.row, self.col
        if row >= len(frame.totals) or col >= frame.share.shape[1]:
            return  # a window closed before the series had a row or column
        self.trace.times_ms.append(frame.start_ms)
        self.warm.append(bool(frame.warm[row]))
        if col < 0:
            self.trace.observed.append(float(frame.totals[row]))
            self.level.append(float(frame.volume_expected[row]))
            self.dispersion.append(float(frame.volume_dispersion[row]))
            self.requests.append(float(frame.totals[row]))
        else:
            total = int(frame.totals[row])
            self.trace.observed.append(float(frame.share[row, col]) if total > 0 else np.nan)
            self.level.append(float(frame.expected[row, col]))
            self.dispersion.append(float(frame.dispersion[row, col]))
            self.requests.append(float(total))

    def close(self) -> Trace:
        """The trace with its expected values and band. The band is where the one-sided
        tail probability stays above ``10**-fire_score`` (quasi-binomial or quasi-Poisson,
        as scored); none while the scope's baseline warms up."""
        from scipy import stats  # slow to import: only when plotting

        t = self.trace
        tail = 10.0 ** -t.fire_score
        level, n = np.asarray(self.level, np.float64), np.asarray(self.requests, np.float64)
        phi = np.maximum(np.nan_to_num(np.asarray(self.dispersion, np.float64), nan=1.0), 1.0)
        warm = np.asarray(self.warm, bool)
        if self.col < 0:
            valid = warm & (level > 0)
            lam = np.where(valid, level, 1.0) / phi
            low = stats.poisson.ppf(tail, lam) * phi
            high = stats.poisson.isf(tail, lam) * phi
        else:
            valid = warm & (n > 0) & np.isfinite(level)
            p = np.where(valid, np.clip(np.nan_to_num(level), 1e-12, 1 - 1e-12), 0.5)
            n_eff = np.maximum(np.round(n / phi), 1.0)
            low = stats.binom.ppf(tail, n_eff, p) / n_eff
            high = stats.binom.isf(tail, n_eff, p) / n_eff
        t.expected = np.where(valid, level, np.nan).tolist()
        t.low = np.where(valid, low, np.nan).tolist()
        t.high = np.where(valid, high, np.nan).tolist()
        return t


class SeriesRecorder:
    """Traces of the series a detector pages on (see the module docstring)."""

    def __init__(
        self, detector: Detector, pre_roll_s: float = PRE_ROLL_S,
        post_roll_s: float = POST_ROLL_S, ring_bytes: int = RING_BYTES,
    ) -> None:
        self.detector = detector
        self.pre_roll_ms = round(pre_roll_s * 1000)
        self.post_roll_ms = round(post_roll_s * 1000)
        self.ring_bytes = ring_bytes
        self._ring: deque[_Frame] = deque()
        self._ring_size = 0
        self._open: dict[str, _Track] = {}
        #: finished traces by alert id
        self.traces: dict[str, Trace] = {}
        detector.report_listener = self.on_report

    def _until_ms(self, track: _Track) -> float:
        """Start of the first window past the trace's post-roll."""
        resolved = track.trace.resolved_ms
        return float("inf") if resolved is None else resolved + self.post_roll_ms

    def on_report(self, report: WindowReport) -> None:
        frame = _Frame.of(report)
        self._ring.append(frame)
        self._ring_size += frame.nbytes
        while self._ring_size > self.ring_bytes:
            self._ring_size -= self._ring.popleft().nbytes
        for track in self._open.values():
            if frame.start_ms < self._until_ms(track):
                track.add(frame)

    def on_events(self, events: Sequence[AlertEvent]) -> None:
        """The alerts of the windows closed since the last call (every sink write).

        Those windows are in the ring already, and may be many (a whole file closes at
        once at its end): a page's trace takes from the ring the windows from its
        pre-roll to its post-roll, its resolution being known when it is among them.
        """
        resolved = {e.id: e.window_end_ms for e in events if e.state == "resolved"}
        for event in events:
            if event.state == "firing" and event.id not in self._open \
                    and event.id not in self.traces:
                self._start(event)
        for alert_id, track in list(self._open.items()):
            if alert_id in resolved:
                track.trace.resolved_ms = resolved[alert_id]
                # windows past the post-roll may have been added before it was known
                keep = sum(t < self._until_ms(track) for t in track.trace.times_ms)
                for values in (track.trace.times_ms, track.trace.observed, track.level,
                               track.requests, track.dispersion, track.warm):
                    del values[keep:]
            if self._ring and self._ring[-1].start_ms >= self._until_ms(track):
                self.traces[alert_id] = self._open.pop(alert_id).close()
        # Only now, after the alerts of every window just closed: a page in the first of
        # them still finds its whole pre-roll.
        while self._ring and self._ring[-1].start_ms - self._ring[0].start_ms > self.pre_roll_ms:
            self._ring_size -= self._ring.popleft().nbytes

    def _start(self, event: AlertEvent) -> None:
        d = self.detector
        try:
            row = d.scopes.labels.index(event.scope)
        except ValueError:
            return  # the scope's row went to another scope meanwhile
        rules = resolve(d.settings.detect, d.scopes.labels, d.codes.codes)
        if event.signal == "volume":
            col, quantity = -1, "volume"
            fire_score = float(rules.volume.fire_score[row])
        else:
            # a blast radius is about the fleet's share of its code (row 0)
            col, quantity = d.codes.codes.index(event.code), "share"
            fire_score = float(rules.fire_score[row, col])
        code = event.to_json()["code"]
        track = _Track(Trace(
            event.id, dict(event.scope), code, event.direction, event.signal, quantity,
            fire_score, event.window_start_ms,
        ), row, col)
        for frame in self._ring:  # the windows before the page, and those closed since
            if frame.start_ms >= event.window_start_ms - self.pre_roll_ms:
                track.add(frame)
        self._open[event.id] = track

    def finish(self) -> dict[str, Trace]:
        """Every trace, the still-open ones up to the end of the input."""
        for alert_id, track in self._open.items():
            self.traces[alert_id] = track.close()
        self._open.clear()
        return self.traces


@dataclass(frozen=True, slots=True)
class Mark:
    """One configuration's episode on a plot: when it paged and when it resolved."""

    config: str
    fired_ms: int
    resolved_ms: int | None
    side: int = 0  # which configuration: 0 the first, 1 the compared one


#: Colours of the configurations' marks: first, second.
MARK_COLOURS = ("tab:red", "tab:purple")


def _utc(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _num(ms: int) -> float:
    """Epoch milliseconds as matplotlib's date number."""
    from matplotlib import dates as mdates

    return float(mdates.date2num(_utc(ms)))  # type: ignore[no-untyped-call]


def _plain(text: str) -> str:
    """Text from the logs as matplotlib shows it literally (``$`` starts math)."""
    return text.replace("$", r"\$")


def scope_text(scope: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in scope.items()) or "fleet"


def file_name(trace: Trace) -> str:
    """A safe, sortable file name for a trace's PNG.

    >>> t = Trace("0123456789abcdef", {"service": "bill/ing $x"}, 403, "up", "share",
    ...           "share", 6.0, 1680566400000)
    >>> file_name(t)
    '20230404T000000Z-403-up-share-service=bill_ing__x-01234567.png'
    """
    when = _utc(trace.fired_ms).strftime("%Y%m%dT%H%M%SZ")
    scope = re.sub(r"[^A-Za-z0-9.=,_-]", "_", scope_text(trace.scope))[:80]
    series = "volume" if trace.quantity == "volume" else trace.code
    return f"{when}-{series}-{trace.direction}-{trace.signal}-{scope}-{trace.alert_id[:8]}.png"


def _needs_log_scale(trace: Trace) -> bool:
    """A rise far above a small baseline: the picture needs both on a log scale.

    >>> t = Trace("a", {}, 403, "up", "share", "share", 6.0, 0)
    >>> t.observed, t.high = [0.01, 0.4], [0.02, 0.02]
    >>> _needs_log_scale(t), _needs_log_scale(Trace("a", {}, 403, "down", "share", "share",
    ...                                              6.0, 0, observed=[0.4], high=[0.02]))
    (True, False)
    """
    high = np.asarray(trace.high, np.float64)
    observed = np.asarray(trace.observed, np.float64)
    positive = high[high > 0]
    if trace.direction != "up" or positive.size == 0 or not (observed > 0).any():
        return False
    return bool(np.nanmax(observed) > 10 * np.median(positive))


def render(trace: Trace, marks: Sequence[Mark], path: Path) -> Path:
    """Draw ``trace`` with the fire and resolve ``marks`` of each configuration."""
    from matplotlib import dates as mdates
    from matplotlib import ticker
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax: Axes = fig.add_subplot()
    times = mdates.date2num([_utc(t) for t in trace.times_ms])  # type: ignore[no-untyped-call]
    observed, expected = np.asarray(trace.observed), np.asarray(trace.expected)
    low, high = np.asarray(trace.low), np.asarray(trace.high)
    ax.fill_between(times, low, high, step="post", color="tab:blue", alpha=0.18, lw=0,
                    label=f"band (score below {trace.fire_score:g})")
    ax.step(times, expected, where="post", color="tab:blue", ls="--", lw=1.2,
            label="expected")
    ax.step(times, observed, where="post", color="black", lw=1.4, label="observed")
    end_ms = trace.times_ms[-1] if trace.times_ms else trace.fired_ms
    for mark in marks:
        i = mark.side
        colour = MARK_COLOURS[i % len(MARK_COLOURS)]
        until = mark.resolved_ms if mark.resolved_ms is not None else end_ms
        resolved = "still firing at the end" if mark.resolved_ms is None else (
            f"resolved {_utc(mark.resolved_ms):%H:%M:%S}")
        ax.axvspan(_num(mark.fired_ms), _num(until), color=colour, alpha=0.08 + 0.04 * i,
                   hatch=None if i == 0 else "//", lw=0)
        ax.axvline(_num(mark.fired_ms), color=colour, lw=1.6, ls="-" if i == 0 else "--",
                   label=f"{_plain(mark.config)}: fired {_utc(mark.fired_ms):%H:%M:%S}, "
                         f"{resolved}")
        if mark.resolved_ms is not None:
            ax.axvline(_num(mark.resolved_ms), color=colour, lw=1.6, ls=":")
    if trace.quantity == "volume":
        what, series = "requests per window", "volume"
    else:
        what, series = f"share of {trace.code}", str(trace.code)
    signal = " (blast radius)" if trace.signal == "blast_radius" else ""
    ax.set_title(
        _plain(f"{series} {trace.direction} in {scope_text(trace.scope)}{signal}")
        + f"\nalert {trace.alert_id}, paged {_utc(trace.fired_ms):%Y-%m-%d %H:%M:%S} UTC",
        fontsize=11, loc="left",
    )
    ax.set_xlabel("time (UTC)")
    if _needs_log_scale(trace):  # else the baseline is a flat line at the bottom
        ax.set_yscale("log")
        what += " (log scale)"
        floor = np.concatenate([observed[observed > 0], expected[expected > 0]])
        ax.set_ylim(bottom=float(floor.min()) / 2)  # a window without any: off the bottom
        if trace.quantity == "share":
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda y, _: f"{y * 100:g}%"))
    else:
        ax.set_ylim(bottom=0)
        if trace.quantity == "share":
            ax.yaxis.set_major_formatter(ticker.PercentFormatter(xmax=1.0))
    ax.set_ylabel(what)
    locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(locator, tz=UTC)  # type: ignore[no-untyped-call]
    )
    ax.xaxis_date(tz=UTC)
    if trace.times_ms:  # the whole span, windows without requests (no share) included
        ax.set_xlim(_num(trace.times_ms[0]), _num(max(trace.times_ms[-1], end_ms)))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    fig.savefig(path, format="png")
    return path
