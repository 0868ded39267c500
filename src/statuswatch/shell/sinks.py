"""Where alert events go: JSON lines (file or stdout) or a list (tests)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from statuswatch.core.decide import AlertEvent
from statuswatch.errors import SinkError


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
                try:
                    self._stream = Path(target).open("a", encoding="utf-8")  # noqa: SIM115
                except OSError as exc:
                    raise SinkError(f"cannot open alerts output {target}: {exc.strerror}") from exc
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


def describe(event: AlertEvent) -> str:
    """A one-line human summary of an alert event."""
    scope = ",".join(f"{k}={v}" for k, v in event.scope.items()) or "fleet"
    ev = event.evidence
    return (
        f"[{event.state.upper()}] {event.code} {event.direction} in {scope}: "
        f"share {ev.observed_share:.2%} vs expected {ev.expected_share:.2%} "
        f"({ev.observed_count}/{ev.total} requests, score {ev.score:.1f}) "
        f"window ending {event.window_end_ms / 1000:.0f}"
    )
