"""``statuswatch backtest``: one configuration, or two compared, over files in time order.

One run writes its alerts (JSON lines) and a summary, and with labels scores
the alerts against them. With ``--compare`` the second configuration's
detector is fed the same decoded records (``shell.backtest.backtest``), and the
comparison (:mod:`statuswatch.whatif`) is the output. ``--plots`` draws every
episode (:mod:`statuswatch.plots`); a terminal on stderr gets a progress line.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from statuswatch.config import Settings
from statuswatch.core.decide import AlertEvent
from statuswatch.core.detector import Detector
from statuswatch.errors import ConfigError, SourceError
from statuswatch.evaluate import Report, evaluate
from statuswatch.plots import Mark, SeriesRecorder, file_name, render, require_matplotlib
from statuswatch.shell.backtest import BacktestSummary, backtest
from statuswatch.shell.progress import Progress
from statuswatch.shell.sinks import JsonLinesSink
from statuswatch.shell.sources import ReadPosition, read_files_batches
from statuswatch.whatif import Comparison, compare, decode_difference, episodes


@dataclass(frozen=True, slots=True)
class BacktestRequest:
    """What ``statuswatch backtest`` was asked to do."""

    inputs: tuple[str, ...]  # files in time order, or ("-",) for stdin
    config_name: str
    alerts_out: str | None = None  # None: stdout for one run, nowhere when comparing
    summary_out: str | None = None
    labels: str | None = None
    compare: Settings | None = None
    compare_name: str = ""
    output: Literal["table", "json"] = "table"
    plots: str | None = None
    quiet: bool = False


class _RunSink:
    """Writes alerts through to ``inner`` (if any), keeps their JSON for the report,
    and shows them to the plot recorder."""

    def __init__(self, inner: JsonLinesSink | None, recorder: SeriesRecorder | None) -> None:
        self.inner = inner
        self.recorder = recorder
        self.alerts: list[dict[str, Any]] = []

    def write(self, events: list[AlertEvent]) -> None:
        if self.inner is not None:
            self.inner.write(events)
        if self.recorder is not None:
            self.recorder.on_events(events)
        self.alerts.extend(e.to_json() for e in events)

    def flush(self) -> None:
        if self.inner is not None:
            self.inner.flush()

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()


def read_labels(path: str) -> list[dict[str, Any]]:
    """The incident labels of ``statuswatch simulate --labels-out``."""
    try:
        labels = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SourceError(f"cannot read labels {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise SourceError(f"labels {path}: not JSON: {exc}") from exc
    if not (isinstance(labels, list) and all(
        isinstance(x, dict) and {"start", "end", "direction"} <= x.keys() for x in labels
    )):
        raise SourceError(f"labels {path}: expected a JSON list of labels (start, end, ...)")
    return labels


def _evaluate(alerts: list[dict[str, Any]], labels: list[dict[str, Any]],
              detector: Detector) -> Report:
    c = detector.counters
    first, last = c.first_event_ms, c.last_event_ms
    span = (0.0, 0.0) if first is None or last is None else (first / 1000, last / 1000)
    return evaluate(alerts, labels, *span)


def _prepare_plots(directory: str) -> Path:
    require_matplotlib()
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--plots {directory}: cannot create it: {exc.strerror}") from exc
    return out


def run_backtest(
    settings: Settings, request: BacktestRequest, stdout: TextIO = sys.stdout,
    stderr: TextIO = sys.stderr,
) -> int:
    """Run the request; return the exit code."""
    if "-" in request.inputs and len(request.inputs) > 1:
        raise ConfigError("backtest: - (stdin) cannot be read with other files")
    labels = read_labels(request.labels) if request.labels else None
    if request.compare is not None:
        differs = decode_difference(settings, request.compare)
        if differs is not None:
            raise ConfigError(
                f"--compare: {differs} differs between {request.config_name} and "
                f"{request.compare_name}; both must decode the records alike"
            )
    plots_dir = _prepare_plots(request.plots) if request.plots else None
    detector = Detector(settings)
    detector.serves_metrics = False
    recorder = SeriesRecorder(detector) if plots_dir else None
    comparing = request.compare is not None
    alerts_out = request.alerts_out or (None if comparing else "-")
    sink = _RunSink(JsonLinesSink(alerts_out) if alerts_out else None, recorder)
    other: tuple[Detector, _RunSink, SeriesRecorder | None] | None = None
    if request.compare is not None:
        other_detector = Detector(request.compare, detector.decoder)
        other_detector.serves_metrics = False
        other_recorder = SeriesRecorder(other_detector) if plots_dir else None
        other = (other_detector, _RunSink(None, other_recorder), other_recorder)
    position = ReadPosition()
    batches = read_files_batches(request.inputs, position=position)
    if Progress.wanted(stderr, request.quiet):
        batches = Progress(stderr, position).track(batches, lambda: detector.counters)
    try:
        summary = backtest(
            detector, batches, sink, None if other is None else (other[0], other[1])
        )
    finally:
        sink.close()
    reports = None
    if labels is not None:
        reports = [_evaluate(sink.alerts, labels, detector)]
        if other is not None:
            reports.append(_evaluate(other[1].alerts, labels, detector))

    comparison = None
    if other is None:
        result = summary.to_json()
        if reports:
            print(reports[0].format_table(), file=stderr)
            result["evaluation"] = reports[0].to_json()
        _write_summary(result, request.summary_out, stderr)
    else:
        names = (request.config_name, request.compare_name)
        comparison = compare(
            sink.alerts, other[1].alerts, names,
            None if reports is None else (reports[0], reports[1]),
            (summary.to_json(), BacktestSummary.of(other[0]).to_json()),
        )
        if request.output == "json":
            print(json.dumps(comparison.to_json(), indent=2), file=stdout)
        else:
            print(comparison.format_table(), file=stdout)
        if request.summary_out:
            _write_summary(comparison.to_json(), request.summary_out, stderr)
    if plots_dir is not None:
        written = _draw(plots_dir, request, sink, recorder, other, comparison)
        print(f"{written} plots in {plots_dir}", file=stderr)
    return 0


def _write_summary(result: dict[str, Any], path: str | None, stderr: TextIO) -> None:
    text = json.dumps(result, indent=2)
    if path:
        Path(path).write_text(text + "\n", encoding="utf-8")
    else:
        print(text, file=stderr)


def _draw(
    directory: Path, request: BacktestRequest, sink: _RunSink,
    recorder: SeriesRecorder | None,
    other: tuple[Detector, _RunSink, SeriesRecorder | None] | None,
    comparison: Comparison | None,
) -> int:
    """One PNG per episode; when comparing, one per incident of either configuration,
    the series as the first configuration saw it where it paged too."""
    assert recorder is not None
    traces = recorder.finish()
    if other is None:
        written = 0
        for ep in episodes(sink.alerts):
            trace = traces.get(ep.id)
            if trace is not None:
                render(trace, [Mark(request.config_name, trace.fired_ms, trace.resolved_ms)],
                       directory / file_name(trace))
                written += 1
        return written
    other_recorder = other[2]
    assert other_recorder is not None
    other_traces = other_recorder.finish()
    assert comparison is not None
    written = 0
    for mine, theirs in comparison.pairs:
        marks, trace = [], None
        for side, (name, episode, found) in enumerate((
            (request.config_name, mine, traces), (request.compare_name, theirs, other_traces),
        )):
            t = None if episode is None else found.get(episode.id)
            if t is not None:
                trace = trace or t
                marks.append(Mark(name, t.fired_ms, t.resolved_ms, side))
        if trace is not None:
            render(trace, marks, directory / file_name(trace))
            written += 1
    return written
