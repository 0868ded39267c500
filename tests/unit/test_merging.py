"""Stage 2 after a restore: the partials read before the snapshot are read again from
the commit before any window closes, whichever aggregates partition answers first."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from statuswatch.config import Settings
from statuswatch.core.detector import Detector
from statuswatch.core.partials import Partial
from statuswatch.shell.merging import PartialsRunner
from statuswatch.shell.sinks import ListSink
from statuswatch.shell.sources import RawBatch

T0 = 1_680_566_400_000
WINDOW_END = T0 + 10_000


class AggregatesTopic:
    """The aggregates topic as a stage-2 runner sees it: two partitions, one source
    partition on each, read from ``positions`` after an assignment."""

    def __init__(self, positions: dict[int, int]) -> None:
        self.positions = positions
        self.cfg = Settings().kafka.model_copy(update={"topic": "aggs"})

    async def partitions_of(self, topic: str) -> set[int]:
        return {0, 1}

    async def position(self, partition: int) -> int:
        return self.positions[partition]

    def is_current(self, batch: RawBatch) -> bool:
        return True

    async def commit(self, offsets: dict[int, int]) -> None:
        pass


def runner_from(state: Path, positions: dict[int, int]) -> PartialsRunner:
    settings = Settings(kafka={"topic": "logs"}, aggregate={"topic": "aggs"},
                        state={"dir": str(state)})
    runner = PartialsRunner(settings, Detector(settings), ListSink())
    runner.source = AggregatesTopic(positions)  # type: ignore[assignment]
    return runner


def partial_batch(partition: int, offset: int, partial: Partial) -> RawBatch:
    return RawBatch("aggs", partition, np.array([offset], np.int64), [partial.encode()])


def window_of(source: int, requests: int, watermark: int) -> Partial:
    return Partial("logs", source, T0, WINDOW_END, watermark, None, [{}], [(0, 200, requests)])


def closed_requests(runner: PartialsRunner, now_ms: int) -> list[int]:
    return [int(w.counts.sum()) for w in runner.detector.windows.close_ready(now_ms)]


async def test_a_restored_stage_2_closes_no_window_before_reading_again(tmp_path):
    before = runner_from(tmp_path, {0: 0, 1: 0})
    before.checkpoint.restore(keep_clocks=True)
    await before.on_assign({0, 1})
    # source 0 wrote its window; source 1 is behind: the window stays open
    before.take(partial_batch(0, 0, window_of(0, 5, WINDOW_END + 2_000)), 0)
    before.take(partial_batch(1, 0, Partial("logs", 1, None, None, T0 + 5_000, None)), 0)
    assert closed_requests(before, 0) == []
    before.checkpoint.snapshot()  # then killed: the commit of partition 0 stays at 0

    after = runner_from(tmp_path, {0: 0, 1: 1})
    after.checkpoint.restore(keep_clocks=True)
    await after.on_assign({0, 1})
    assert after.rereading == {0: 1}
    # partition 1 answers first, with source 1's window: source 0's is still to come
    after.take(partial_batch(1, 1, window_of(1, 3, WINDOW_END + 1_000)), 1_000)
    assert closed_requests(after, 1_000) == []
    after.take(partial_batch(0, 0, window_of(0, 5, WINDOW_END + 2_000)), 1_000)
    assert after.rereading == {}
    assert closed_requests(after, 1_000) == [8]


async def test_nothing_to_read_again_holds_nothing(tmp_path):
    runner = runner_from(tmp_path, {0: 0, 1: 0})
    await runner.on_assign({0, 1})
    runner.take(partial_batch(0, 0, window_of(0, 5, WINDOW_END)), 0)
    runner.take(partial_batch(1, 0, window_of(1, 3, WINDOW_END)), 0)
    assert runner.rereading == {}
    assert closed_requests(runner, 0) == [8]
