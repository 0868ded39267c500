"""The checkpoint's steps, their order, and when they are due."""

from __future__ import annotations

from typing import Any

import numpy as np

from statuswatch.config import Settings
from statuswatch.core.detector import Detector
from statuswatch.shell.checkpoint import COMMIT_EVERY_MS, Checkpoint
from statuswatch.shell.metrics import RuntimeStatus
from statuswatch.shell.offsets import OffsetLedger
from statuswatch.shell.sinks import ListSink

T0 = 1_680_566_400_000


class TapSink(ListSink):
    def __init__(self, steps: list[str]) -> None:
        super().__init__()
        self.steps = steps

    def flush(self) -> None:
        self.steps.append("flush sinks")


def checkpoint(settings: Settings, steps: list[str], **kwargs: Any) -> Checkpoint:
    detector = Detector(settings)

    async def commit(positions: dict[int, int]) -> None:
        steps.append(f"commit {positions}")

    ledger = OffsetLedger(settings.kafka.topic, detector.windows.pending_min_offset)
    return Checkpoint(settings, detector, TapSink(steps), ledger, RuntimeStatus(),
                      commit_offsets=commit, clock=lambda: T0, **kwargs)


async def test_sinks_are_flushed_and_state_written_before_offsets_are_committed(tmp_path):
    steps: list[str] = []
    cp = checkpoint(Settings(state={"dir": str(tmp_path)}), steps)
    assert cp.store is not None
    store, write = cp.store, cp.store.write

    def tap(state: dict[str, Any]) -> None:
        steps.append("snapshot")
        write(state)

    store.write = tap  # type: ignore[method-assign]
    cp.ledger.record(0, np.arange(0, 10, dtype=np.int64))
    cp.status.records_reread = 3
    await cp.run()
    assert steps == ["flush sinks", "snapshot", "flush sinks", "commit {0: 10}"]
    assert cp.ledger.committed() == {0: 10} and cp.status.commits == 1
    assert cp.status.last_snapshot_unix == T0 / 1000
    saved = store.load()
    assert saved is not None
    assert saved["consumer"] == {"topic": cp.settings.kafka.topic, "read_through": {"0": 10},
                                 "accounted": {"0": 10}, "records_reread": 3}
    steps.clear()
    await cp.run()  # nothing new read: a snapshot, no commit
    assert steps == ["flush sinks", "snapshot"]


async def test_without_a_store_only_the_commit_runs_and_at_most_once_a_second():
    steps: list[str] = []
    now = [100.0]
    cp = checkpoint(Settings(), steps, monotonic=lambda: now[0])
    assert cp.store is None
    assert cp.due(T0)
    assert not cp.due(T0)
    now[0] += COMMIT_EVERY_MS / 1000
    assert cp.due(T0)
    await cp.run()  # nothing read: nothing to flush for
    assert steps == []
    cp.ledger.record(2, np.arange(5, 8, dtype=np.int64))
    await cp.run()
    assert steps == ["flush sinks", "commit {2: 8}"]


def test_with_a_store_the_snapshot_is_due_every_interval(tmp_path):
    cp = checkpoint(Settings(state={"dir": str(tmp_path), "interval_seconds": 30}), [])
    assert cp.due(T0)
    cp.snapshot()
    assert not cp.due(T0 + 29_999)
    assert cp.due(T0 + 30_000)
