"""Input going silent pages; a failed commit after a rebalance does not crash the loop."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from aiokafka.errors import CommitFailedError

from statuswatch.config import Settings
from statuswatch.core.detector import Detector
from statuswatch.shell.runtime import KafkaRunner
from statuswatch.shell.sinks import ListSink
from statuswatch.shell.sources import RawBatch
from statuswatch.simulate.encode import encode
from statuswatch.simulate.spec import SimSpec
from statuswatch.simulate.traffic import generate

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
    assert [(e.signal, e.direction, e.scope, e.to_json()["code"]) for e in firing] == [
        ("volume", "down", {}, "all")
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
    runner.offsets.record(0, np.arange(0, 10, dtype=np.int64))
    with caplog.at_level(logging.WARNING):
        await runner.checkpoint.commit()
        await runner.checkpoint.commit()
    assert runner.source.attempts == 2  # retried on the next checkpoint, no exception
    assert runner.offsets.committed() == {}
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
        runner.checkpoint.restore()  # an upgrade's old snapshot: no crash loop
    assert "does not fit this version or configuration" in caplog.text
    assert detector.counters.records == 0
    SnapshotStore(tmp_path, 3).write({"detector": old.snapshot()})
    runner.checkpoint.restore()  # a fitting one is used
    assert detector.counters.records == 123


def a_minute_of_kong(seed: int) -> list[bytes]:
    """A minute of simulated Kong records at 50 req/s, in time order."""
    spec = SimSpec(seed=seed, rate=50)
    return [v for chunk in generate(spec, T0, T0 + 60_000, 10_000)
            for v in encode("kong", chunk, spec)]


def taker(values: list[bytes]) -> Callable[[KafkaRunner, int, int, int], None]:
    """``take(runner, first, last, now_ms)``: hand ``values[first:last]`` of partition 0,
    at their offsets, to the runner."""

    def take(runner: KafkaRunner, first: int, last: int, now_ms: int) -> None:
        offsets = np.arange(first, last, dtype=np.int64)
        runner.take(RawBatch("logs", 0, offsets, values[first:last]), now_ms)

    return take


async def test_rereads_are_counted_apart_from_late_records_and_survive_a_restart(tmp_path):
    settings = Settings(state={"dir": str(tmp_path)}, window={"allowed_lateness_seconds": 0})
    values = a_minute_of_kong(4)
    half, end = len(values) // 2, len(values)
    take = taker(values)

    runner = KafkaRunner(settings, Detector(settings), ListSink())
    runner.source = FailingSource()  # type: ignore[assignment]
    take(runner, 0, half, T0 + 30_000)
    assert runner.detector.counters.windows_closed >= 2
    await runner.on_revoke({0})  # the session expired: the commit fails, the group rebalances
    take(runner, 0, end, T0 + 60_000)  # assigned again: re-read from the last commit (none)
    assert runner.status.records_reread == half
    assert runner.detector.counters.late == 0  # closed windows had counted them: not late
    runner.detector.close_ready(T0 + 10 * 60_000)  # input idle: every window closes
    runner.checkpoint.snapshot()

    restarted = KafkaRunner(settings, Detector(settings), ListSink())
    restarted.checkpoint.restore()
    take(restarted, end - 30, end, T0 + 11 * 60_000)  # a restart re-reads past the commit
    assert restarted.status.records_reread == half + 30
    assert restarted.detector.counters.late == 0
    assert restarted.detector.counters.records - restarted.status.records_reread == end
    # offsets of another topic mean nothing: a run on a new topic keeps only the detector
    moved = Settings(state={"dir": str(tmp_path)}, window={"allowed_lateness_seconds": 0},
                     kafka={"topic": "elsewhere"})
    elsewhere = KafkaRunner(moved, Detector(moved), ListSink())
    elsewhere.checkpoint.restore()
    assert elsewhere.detector.counters.records == restarted.detector.counters.records - 30
    assert elsewhere.status.records_reread == 0 and elsewhere.offsets.accounted_through(0) is None


async def test_a_reread_in_several_batches_is_counted_as_rereads_not_late():
    """After a failed commit and a revocation the partition is read again from the
    start, in batches smaller than what had been accounted for: every batch's
    already-counted records are re-reads, none is late."""
    settings = Settings(window={"allowed_lateness_seconds": 0})
    values = a_minute_of_kong(5)
    half, end = len(values) // 2, len(values)
    take = taker(values)

    runner = KafkaRunner(settings, Detector(settings), ListSink())
    runner.source = FailingSource()  # type: ignore[assignment]
    take(runner, 0, half, T0 + 30_000)
    accounted = runner.offsets.accounted_through(0)
    assert accounted is not None and accounted > 100
    await runner.on_revoke({0})
    for first in range(0, accounted, 100):  # re-read in batches of 100
        take(runner, first, min(first + 100, accounted), T0 + 30_000)
    take(runner, accounted, end, T0 + 60_000)
    assert runner.detector.counters.late == 0
    assert runner.status.records_reread == half


async def test_records_dropped_with_a_revoked_partition_are_late_when_read_again():
    """A revocation drops the partition's share of the open windows. If they close
    before it comes back, its re-read records of those windows were never counted:
    they are late (seen in the metric), not skipped as re-reads. Those of windows
    closed before the revocation are skipped, not late."""

    settings = Settings(window={"allowed_lateness_seconds": 0})
    runner = KafkaRunner(settings, Detector(settings), ListSink())
    runner.source = FailingSource()  # type: ignore[assignment]

    def windows_of(seed: int, n: int) -> list[list[bytes]]:  # one list per 10 s window
        spec = SimSpec(seed=seed, rate=50)
        return [encode("kong", c, spec) for c in generate(spec, T0, T0 + n * 10_000, 10_000)]

    def take(partition: int, values: list[bytes], first: int, now_ms: int) -> None:
        offsets = np.arange(first, first + len(values), dtype=np.int64)
        runner.take(RawBatch("logs", partition, offsets, values), now_ms)

    p0, p1 = windows_of(1, 4), windows_of(2, 6)
    p0_first_30s = [v for w in p0[:3] for v in w]
    await runner.on_assign({0, 1})
    take(0, p0_first_30s, 0, T0 + 30_000)
    take(1, [v for w in p1[:3] for v in w], 0, T0 + 30_000)
    assert runner.detector.windows.next_start_ms == T0 + 20_000  # [20 s, 30 s) is open
    assert runner.detector.counters.late == 0
    await runner.on_revoke({0})
    take(1, [v for w in p1[3:] for v in w], len(p1[0]) + len(p1[1]) + len(p1[2]), T0 + 60_000)
    assert runner.detector.windows.next_start_ms >= T0 + 40_000  # closed without p0's share
    await runner.on_assign({0})
    take(0, [v for w in p0 for v in w], 0, T0 + 61_000)  # re-read from offset 0
    assert runner.status.records_reread == len(p0_first_30s)
    assert runner.detector.counters.late == len(p0[2]) + len(p0[3])
