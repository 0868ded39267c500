"""Attacker-controlled fields that are logged have their control characters escaped."""

from __future__ import annotations

import logging

import numpy as np

from statuswatch.config import Settings
from statuswatch.core.detector import Detector
from statuswatch.shell.processing import MAX_INVALID_LOGGED, process_batch
from statuswatch.shell.sources import RawBatch

EVIL = (
    b'{"started_at": "\x1b[2J\x1b[31mFAKE ALERT\x1b[0m\n2023-04-04 INFO statuswatch: all good\r\n'
    b'\x07\x08\x00", "response": {"status": 200}}'
)


def test_rejected_record_is_logged_on_one_escaped_line(caplog):
    detector = Detector(Settings())
    batch = RawBatch("gateway\nlogs\x1b[0m", 3, np.array([41, 42], dtype=np.int64),
                     [b'{"started_at": 1680566400000, "response": {"status": 200}}', EVIL])
    with caplog.at_level(logging.WARNING, logger="statuswatch.shell.processing"):
        process_batch(detector, batch, now_ms=1_680_566_400_000)
    (record,) = [r for r in caplog.records if "skipped record" in r.getMessage()]
    line = record.getMessage()
    assert "\n" not in line and "\r" not in line
    assert not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in line), repr(line)
    assert "\\x1b[2J" in line and "\\n2023-04-04" in line  # escaped, still readable
    assert "topic=gateway\\nlogs\\x1b[0m" in line
    assert "partition=3" in line and "offset=42" in line
    assert "reason=invalid_json" in line  # raw control characters are not JSON
    # the handler's formatted output is one line too
    assert "\n" not in logging.Formatter("%(levelname)s %(name)s: %(message)s").format(record)


def test_many_rejects_are_summarised_not_logged_one_by_one(caplog):
    detector = Detector(Settings())
    n = MAX_INVALID_LOGGED + 20
    batch = RawBatch("t", 0, np.arange(100, 100 + n, dtype=np.int64), [EVIL] * n)
    with caplog.at_level(logging.WARNING, logger="statuswatch.shell.processing"):
        process_batch(detector, batch, now_ms=0)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("skipped record" in m for m in messages) == MAX_INVALID_LOGGED
    (summary,) = [m for m in messages if "more records" in m]
    assert "skipped 20 more records" in summary and f"offsets=100..{100 + n - 1}" in summary
