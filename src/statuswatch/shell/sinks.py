"""Where alert events go: JSON lines (file or stdout) or a list (tests)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Protocol, TextIO

import numpy as np

from statuswatch.core.columns import code_label
from statuswatch.core.decide import AlertEvent
from statuswatch.core.detector import Detector
from statuswatch.core.window import ClosedWindow
from statuswatch.errors import SinkError


class Sink(Protocol):
    """Where the runner and ``backtest`` write alert events."""

    def write(self, events: list[AlertEvent]) -> None: ...
    def flush(self) -> None: ...


def open_lines_for_append(path: str, what: str) -> TextIO:
    """Open a JSON-lines file for appending, first ending a line a crash cut short.

    A ``kill -9`` mid-write can leave half a line; without the newline the next
    run's first line would be glued to it and both would be unreadable.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "a.jsonl"
    >>> _ = p.write_text('{"a":1}\\n{"b":')
    >>> with open_lines_for_append(str(p), "test") as out:
    ...     _ = out.write('{"c":3}\\n')
    >>> p.read_text().splitlines()
    ['{"a":1}', '{"b":', '{"c":3}']
    """
    file = Path(path)
    torn = False
    try:  # best effort: a write-only file is still appended to
        if file.stat().st_size > 0:
            with file.open("rb") as existing:
                existing.seek(-1, 2)
                torn = existing.read(1) != b"\n"
    except OSError:
        pass
    try:
        stream = file.open("a", encoding="utf-8")
        if torn:
            stream.write("\n")
    except OSError as exc:
        raise SinkError(f"cannot open {what} {path}: {exc.strerror}") from exc
    return stream


class ListSink:
    """Keeps alert objects in memory, for tests."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []

    def write(self, events: list[AlertEvent]) -> None:
        self.alerts.extend(e.to_json() for e in events)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class JsonLinesSink:
    """One JSON object per line; flushed after every write so alerts are never held back."""

    def __init__(self, target: str | TextIO = "-") -> None:
        self._owned = False
        if isinstance(target, str):
            if target == "-":
                self._stream: TextIO = sys.stdout
            else:
                self._stream = open_lines_for_append(target, "alerts output")
                self._owned = True
        else:
            self._stream = target

    def write(self, events: list[AlertEvent]) -> None:
        if not events:
            return
        try:
            for event in events:
                self._stream.write(json.dumps(event.to_json(), separators=(",", ":")) + "\n")
            self._stream.flush()
        except OSError as exc:
            raise SinkError(f"cannot write alerts: {exc.strerror}") from exc

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        if self._owned:
            self._stream.close()


class WindowsSink:
    """Audit log of closed windows: one JSON line per window with its non-zero counts.

    Flushed per window, so what a snapshot covers is always on disk before it.
    """

    def __init__(self, path: str, detector: Detector) -> None:
        self._stream = open_lines_for_append(path, "windows output")
        self._detector = detector

    def write(self, window: ClosedWindow) -> None:
        rows, cols = np.nonzero(window.counts)
        labels, codes = self._detector.scopes.labels, self._detector.codes.codes
        cells = [
            [labels[r], codes[c], int(window.counts[r, c])]
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
        ]
        line = {"start": window.start_ms / 1000, "end": window.end_ms / 1000, "counts": cells}
        self._stream.write(json.dumps(line, separators=(",", ":")) + "\n")
        self._stream.flush()

    def close(self) -> None:
        self._stream.close()


def describe(event: AlertEvent) -> str:
    """A one-line human summary of an alert event."""
    scope = ",".join(f"{k}={v}" for k, v in event.scope.items()) or "fleet"
    ev = event.evidence
    return (
        f"[{event.state.upper()}] {code_label(event.code)} {event.direction} in {scope}: "
        f"share {ev.observed_share:.2%} vs expected {ev.expected_share:.2%} "
        f"({ev.observed_count}/{ev.total} requests, score {ev.score:.1f}) "
        f"window ending {event.window_end_ms / 1000:.0f}"
    )
