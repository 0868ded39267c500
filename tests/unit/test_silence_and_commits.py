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


async def test_rereads_are_counted_apart_from_late_records_and_survive_a_restart(tmp_path):
    from statuswatch.shell.sources import RawBatch

    settings = Settings(state={"dir": str(tmp_path)}, window={"allowed_lateness_seconds": 0})
    spec = SimSpec(seed=4, rate=50)
    values = [v for chunk in generate(spec, T0, T0 + 60_000, 10_000)
              for v in encode("kong", chunk, spec)]
    half, end = len(values) // 2, len(values)

    def take(runner: KafkaRunner, first: int, last: int, now_ms: int) -> None:
        offsets = np.arange(first, last, dtype=np.int64)
        runner.take(RawBatch("logs", 0, offsets, values[first:last]), now_ms)

    runner = KafkaRunner(settings, Detector(settings), ListSink())
    runner.source = FailingSource()  # type: ignore[assignment]
    take(runner, 0, half, T0 + 30_000)
    assert runner.detector.counters.windows_closed >= 2
    await runner._on_revoke({0})  # the session expired: the commit fails, the group rebalances
    take(runner, 0, end, T0 + 60_000)  # assigned again: re-read from the last commit (none)
    assert runner.status.records_reread == half
    assert runner.detector.counters.late == 0  # closed windows had counted them: not late
    runner.detector.close_ready(T0 + 10 * 60_000)  # input idle: every window closes
    runner.checkpoint()

    restarted = KafkaRunner(settings, Detector(settings), ListSink())
    restarted.restore()
    take(restarted, end - 30, end, T0 + 11 * 60_000)  # a restart re-reads past the commit
    assert restarted.status.records_reread == half + 30
    assert restarted.detector.counters.late == 0
    assert restarted.detector.counters.records - restarted.status.records_reread == end
