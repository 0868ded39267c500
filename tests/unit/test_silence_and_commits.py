"""Input going silent pages; a failed commit after a rebalance does not crash the loop."""

from __future__ import annotations

import logging

import numpy as np
from aiokafka.errors import CommitFailedError

from statuswatch.config import Settings
from statuswatch.core.detector import Detector
from statuswatch.shell.runtime import KafkaRunner
from statuswatch.shell.sinks import ListSink
from statuswatch.simulate.encode import encode
from statuswatch.simulate.traffic import SimSpec, generate

T0 = 1_680_566_400_000


def test_input_going_silent_raises_a_volume_alert_by_wall_clock():
    settings = Settings(window={"idle_timeout_seconds": 30})
    detector = Detector(settings)
    spec = SimSpec(seed=4, rate=100)
    end = T0 + 20 * 60_000
    for chunk in generate(spec, T0, end, 10_000):
        # wall clock follows event time while traffic flows
        detector.process(encode("kong", chunk, spec), now_ms=chunk.end_ms)
    assert detector.alerts.live_keys() == set()
    events = []
    for now in range(end, end + 120_000, 5_000):  # two silent minutes, no records at all
        events += detector.close_ready(now_ms=now)
    firing = [e for e in events if e.state == "firing"]
    assert [(e.signal, e.direction, e.scope, e.code) for e in firing] == [
        ("volume", "down", {}, 0)
    ]
    assert firing[0].evidence.observed_count == 0
    assert firing[0].window_end_ms - end <= 60_000  # within a minute of the silence


class FailingSource:
    """A source whose commits fail as after a rebalance."""

    def __init__(self) -> None:
        self.attempts = 0

    async def commit(self, offsets: dict[int, int]) -> None:
        self.attempts += 1
        raise CommitFailedError("group rebalanced")


async def test_commit_failed_after_rebalance_is_logged_not_fatal(caplog):
    runner = KafkaRunner(Settings(), Detector(Settings()), ListSink())
    runner.source = FailingSource()  # type: ignore[assignment]
    runner._consumed_next = {0: 10}
    with caplog.at_level(logging.WARNING):
        await runner._commit()
        await runner._commit()
    assert runner.source.attempts == 2  # retried on the next checkpoint, no exception
    assert runner._committed == {}
    assert "commit failed after a rebalance" in caplog.text
    assert np.all([r.levelno < logging.ERROR for r in caplog.records])


def test_a_snapshot_that_does_not_fit_is_refused_and_the_run_starts_fresh(tmp_path, caplog):
    from statuswatch.shell.state import SnapshotStore

    settings = Settings(state={"dir": str(tmp_path)})
    old = Detector(settings)
    old.counters.records = 123
    SnapshotStore(tmp_path, 3).write({"detector": {**old.snapshot(), "version": 1}})
    detector = Detector(settings)
    runner = KafkaRunner(settings, detector, ListSink())
    with caplog.at_level(logging.ERROR):
        runner.restore()  # an upgrade's old snapshot: no crash loop
    assert "does not fit this version or configuration" in caplog.text
    assert detector.counters.records == 0
    SnapshotStore(tmp_path, 3).write({"detector": old.snapshot()})
    runner.restore()  # a fitting one is used
    assert detector.counters.records == 123
