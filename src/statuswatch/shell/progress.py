"""A progress line for ``statuswatch backtest`` on a terminal.

Records, the event time reached, the rate and, for a file of known size, the
share read and the time left, on one line rewritten in place (``\\r``) a few
times a second; a newline at the end. Nothing at all when the stream is not a
terminal (a pipe, a log file), so scripts see only what they asked for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TextIO

from statuswatch.core.counters import Counters
from statuswatch.shell.sources import RawBatch, ReadPosition

#: Seconds between two redraws: four a second reads as live without costing anything.
REDRAW_EVERY_S = 0.25


def progress_line(
    records: int, event_ms: int | None, rate: float, fraction: float | None,
    eta_s: float | None,
) -> str:
    """The text of one progress line.

    >>> progress_line(1234567, 1680566400000, 604321.4, 0.4312, 12.4)
    '1,234,567 records  event time 2023-04-04 00:00:00Z  604,321 rec/s  43%  ETA 0:00:12'
    >>> progress_line(10, None, 0.0, None, None)
    '10 records  event time -  0 rec/s'
    """
    when = "-" if event_ms is None else (
        datetime.fromtimestamp(event_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    )
    parts = [f"{records:,} records", f"event time {when}", f"{rate:,.0f} rec/s"]
    if fraction is not None:
        parts.append(f"{fraction:.0%}")
    if eta_s is not None:
        minutes, seconds = divmod(round(eta_s), 60)
        hours, minutes = divmod(minutes, 60)
        parts.append(f"ETA {hours}:{minutes:02d}:{seconds:02d}")
    return "  ".join(parts)


class Progress:
    """Draws :func:`progress_line` on ``stream`` while batches go through a detector."""

    def __init__(
        self,
        stream: TextIO,
        position: ReadPosition,
        clock: Callable[[], float] = time.monotonic,
        every_s: float = REDRAW_EVERY_S,
    ) -> None:
        self.stream = stream
        self.position = position
        self.clock = clock
        self.every_s = every_s
        self._started = clock()
        self._drawn_at = -float("inf")
        self._width = 0

    @staticmethod
    def wanted(stream: TextIO, quiet: bool) -> bool:
        """Progress only for a person watching: a terminal, and not ``--quiet``."""
        try:
            return not quiet and stream.isatty()
        except ValueError:  # a closed stream
            return False

    def track(self, batches: Iterable[RawBatch], counters: Callable[[], Counters]) -> Iterator[
        RawBatch
    ]:
        """``batches``, redrawing after each has been processed (when the next is asked
        for) at most every ``every_s``; the final state and a newline at the end."""
        try:
            for batch in batches:
                yield batch
                if self.clock() - self._drawn_at >= self.every_s:
                    self.draw(counters())
            self.draw(counters())
        finally:  # an error message after it starts on a line of its own
            self.stream.write("\n")
            self.stream.flush()

    def draw(self, counters: Counters) -> None:
        now = self.clock()
        self._drawn_at = now
        elapsed = max(now - self._started, 1e-9)
        read, total = self.position.read_bytes, self.position.total_bytes
        fraction = eta = None
        if total:
            fraction = min(read / total, 1.0)
            if read > 0:
                eta = elapsed * (total - read) / read
        line = progress_line(
            counters.records, counters.last_event_ms, counters.records / elapsed, fraction, eta
        )
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)
