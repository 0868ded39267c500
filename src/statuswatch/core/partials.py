"""Partial windows: one source partition's counts of one window, between the two stages.

``statuswatch aggregate`` (stage 1) decodes and counts the raw records of the
partitions it owns and, when a window closes for a partition, writes one partial
window (in chunks of at most ``MAX_PARTIAL_BYTES`` when large, see :func:`chunks`):
its sparse counts per (scope, code), that partition's watermark, and the
records, invalid records (by reason) and late records it accounted for since its
previous partial. A partial without a window only moves the watermark or says the
partition is idle. ``statuswatch run --input aggregates`` (stage 2) merges them per
window across all source partitions into the detector's own tables
(:func:`merge_partial`); its windows close on the smallest watermark, as today's.

The record is plain, versioned JSON:

>>> p = Partial("logs", 3, 10_000, 20_000, 21_000, None, [{}, {"service": "a"}],
...             [(0, 200, 7), (1, 200, 7)], records=8, invalid={"invalid_json": 1}, late=0)
>>> Partial.decode(p.encode()) == p
True
>>> p.encode()[:44]
b'{"v":1,"topic":"logs","partition":3,"start_m'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from statuswatch.core.columns import I64
from statuswatch.core.detector import Detector
from statuswatch.core.window import ClosedWindow
from statuswatch.errors import DecodeError

#: Version of the partial-window record; another version is refused.
PARTIAL_VERSION = 1
#: A partial window larger than this (estimated JSON bytes) is written in chunks: a
#: Kafka record must fit the producer's request (1 MiB) and the topic's
#: ``max.message.bytes`` (1 MiB by default), and a partition may see 100,000 scopes.
MAX_PARTIAL_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class Partial:
    """One source partition's counts of one window (or only its progress)."""

    topic: str
    partition: int
    #: the window ``[start_ms, end_ms)``; None for a progress record (watermark, idle)
    start_ms: int | None
    end_ms: int | None
    #: the partition's watermark: its newest event time less the allowed lateness
    watermark_ms: int | None
    #: how long the partition has been silent, if stage 1 found it idle
    idle_ms: int | None
    #: the scope labels the cells refer to by index
    scopes: list[dict[str, str]] = field(default_factory=list)
    #: (scope index, status code, requests)
    cells: list[tuple[int, int, int]] = field(default_factory=list)
    #: records read for the first time since the partition's previous partial
    records: int = 0
    invalid: dict[str, int] = field(default_factory=dict)
    late: int = 0
    #: which chunk of the window's partial this is (see ``chunks``); 0 for most
    chunk: int = 0

    def encode(self) -> bytes:
        return json.dumps({
            "v": PARTIAL_VERSION, "topic": self.topic, "partition": self.partition,
            "start_ms": self.start_ms, "end_ms": self.end_ms,
            "watermark_ms": self.watermark_ms, "idle_ms": self.idle_ms,
            "scopes": self.scopes, "cells": [list(c) for c in self.cells],
            "records": self.records, "invalid": self.invalid, "late": self.late,
            "chunk": self.chunk,
        }, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Partial:
        """Parse a record; ``DecodeError("invalid_partial")`` if it is not one.

        >>> Partial.decode(b'{"v":2}')
        Traceback (most recent call last):
        statuswatch.errors.DecodeError: invalid_partial: version 2, expected 1
        """
        try:
            obj: Any = json.loads(raw)
            if not isinstance(obj, dict):
                raise TypeError("not an object")
            if obj.get("v") != PARTIAL_VERSION:
                raise DecodeError(
                    "invalid_partial", f"version {obj.get('v')!r}, expected {PARTIAL_VERSION}"
                )
            start, end = _opt_int(obj["start_ms"]), _opt_int(obj["end_ms"])
            scopes = [{str(k): str(v) for k, v in s.items()} for s in obj["scopes"]]
            cells = [(int(i), int(c), int(n)) for i, c, n in obj["cells"]]
            if any(not 0 <= i < len(scopes) or n < 0 for i, _, n in cells):
                raise ValueError("a cell refers to no scope or counts below zero")
            return cls(
                str(obj["topic"]), int(obj["partition"]), start, end,
                _opt_int(obj["watermark_ms"]), _opt_int(obj["idle_ms"]), scopes, cells,
                int(obj["records"]), {str(k): int(v) for k, v in obj["invalid"].items()},
                int(obj["late"]), int(obj.get("chunk", 0)),
            )
        except DecodeError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise DecodeError("invalid_partial", str(exc)[:200]) from exc


def _opt_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def chunks(
    scopes: list[dict[str, str]], cells: list[tuple[int, int, int]],
    max_bytes: int | None = None,
) -> list[tuple[list[dict[str, str]], list[tuple[int, int, int]]]]:
    """``(scopes, cells)`` of one window cut into parts of at most about ``max_bytes``
    (``MAX_PARTIAL_BYTES``) of JSON each, every scope with all its cells in one part
    (cells re-indexed).

    >>> chunks([{"app": "a"}, {"app": "b"}], [(0, 200, 2), (1, 200, 1), (1, 503, 1)], 40)
    [([{'app': 'a'}], [(0, 200, 2)]), ([{'app': 'b'}], [(0, 200, 1), (0, 503, 1)])]
    >>> len(chunks([{"app": "a"}], [(0, 200, 2)]))
    1
    """
    limit = MAX_PARTIAL_BYTES if max_bytes is None else max_bytes
    by_scope: list[list[tuple[int, int, int]]] = [[] for _ in scopes]
    for cell in cells:
        by_scope[cell[0]].append(cell)
    out: list[tuple[list[dict[str, str]], list[tuple[int, int, int]]]] = []
    part_scopes: list[dict[str, str]] = []
    part_cells: list[tuple[int, int, int]] = []
    size = 0
    for labels, own in zip(scopes, by_scope, strict=True):
        # the labels' JSON plus ~24 bytes per cell ("[12345,503,1234567],")
        cost = sum(len(k) + len(v) + 6 for k, v in labels.items()) + 3 + 24 * len(own)
        if part_scopes and size + cost > limit:
            out.append((part_scopes, part_cells))
            part_scopes, part_cells, size = [], [], 0
        index = len(part_scopes)
        part_scopes.append(labels)
        part_cells += [(index, code, n) for _, code, n in own]
        size += cost
    if part_scopes or not out:
        out.append((part_scopes, part_cells))
    return out


def window_cells(
    window: ClosedWindow, labels: Sequence[dict[str, str]], codes: Sequence[int]
) -> tuple[list[dict[str, str]], list[tuple[int, int, int]]]:
    """The non-zero counts of ``window`` as (scopes, cells) of a partial.

    >>> w = ClosedWindow(0, 10, np.array([[2, 0], [0, 1]]))
    >>> window_cells(w, [{}, {"app": "x"}], [200, 503])
    ([{}, {'app': 'x'}], [(0, 200, 2), (1, 503, 1)])
    """
    rows, cols = np.nonzero(window.counts)
    used = np.unique(rows)
    index = {r: i for i, r in enumerate(used.tolist())}
    cells = [
        (index[r], codes[c], int(window.counts[r, c]))
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
    ]
    return [labels[r] for r in used.tolist()], cells


def merge_partial(
    detector: Detector, partial: Partial, *, now_ms: int, offset: int | None = None,
    seen_below: int | None = None,
) -> bool:
    """Count ``partial`` in ``detector``'s windows (as the share of its source
    partition) and move that partition's clock; its scopes take the detector's rows
    (top-K, caps) and its codes the detector's columns, as decoded records would.

    A partial at an ``offset`` below ``seen_below`` was read before: its window
    counts only if that window is still open, its counters not again. A source
    partition writes one partial per window (chunks 0, 1, ... of it when large): a
    second copy of a chunk for an open window is a duplicate, dropped (False).
    """
    c = detector.counters
    again = seen_below is not None and offset is not None and offset < seen_below
    if partial.start_ms is not None and detector.windows.holds(
            partial.start_ms, partial.partition, partial.chunk):
        return False
    if not again:
        c.records += partial.records
        c.invalid.update(partial.invalid)
        c.late += partial.late
        # stage 2 judges "mostly invalid" (and the volume drops it explains) as run does
        detector.rejects.add_counts(now_ms, partial.records, partial.invalid)
    if partial.start_ms is not None and partial.cells:
        levels = detector.scopes.levels
        keys: list[tuple[int, tuple[str, ...]]] = []
        for labels in partial.scopes:
            level = tuple(labels)
            if level not in levels:
                raise DecodeError("invalid_partial", f"scope {labels} is of no level {levels}")
            keys.append((levels.index(level), tuple(labels.values())))
        cells = np.asarray(partial.cells, np.int64).reshape(-1, 3)
        records = np.bincount(cells[:, 0], weights=cells[:, 2], minlength=len(keys))
        rows = detector.scopes.rows_of(keys, records.astype(np.int64).tolist())
        cols: I64 = detector.codes.columns(cells[:, 1])
        late = detector.windows.add_counts(
            partial.start_ms, rows[cells[:, 0]], cols, cells[:, 2],
            n_rows=len(detector.scopes), n_cols=len(detector.codes),
            partition=partial.partition, offset=offset, seen_below=seen_below,
            chunk=partial.chunk,
        )
        c.late += late
        if not again:
            fleet = [i for i, labels in enumerate(partial.scopes) if not labels]
            for i, code, n in partial.cells:
                if i in fleet:
                    c.codes[code] += n
            first = partial.start_ms
            c.first_event_ms = first if c.first_event_ms is None else min(c.first_event_ms, first)
    if again:
        return True  # the restored clocks are newer than a re-read partial
    if partial.watermark_ms is not None:
        last = partial.watermark_ms + detector.windows.lateness_ms
        c.last_event_ms = last if c.last_event_ms is None else max(c.last_event_ms, last)
    detector.windows.advance(partial.partition, partial.watermark_ms, now_ms, partial.idle_ms)
    return True


__all__ = ["MAX_PARTIAL_BYTES", "PARTIAL_VERSION", "Partial", "chunks", "merge_partial",
           "window_cells"]
