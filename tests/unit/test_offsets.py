"""The offset ledger on its own: what it commits, what it keeps, what a snapshot holds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from statuswatch.shell.offsets import OffsetLedger, SavedOffsets

PARTITIONS = st.integers(0, 2)


class LedgerAgainstABroker(RuleBasedStateMachine):
    """The ledger driven as the runner drives it, against a model of the broker
    (committed offsets, each partition's read position) and of the open windows
    (the offsets they hold, per partition).

    Reads continue from the position; a revocation or a restart rewinds it to the
    broker's commit. Records below ``accounted_through`` are re-reads the windows
    skip; the others are held in open windows until those close.
    """

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[int, set[int]] = {}
        self.ledger = self._ledger()
        self.broker_committed: dict[int, int] = {}
        self.position: dict[int, int] = {}
        self.ever_read: dict[int, int] = {}  # offset after the last record ever read
        self.assigned: set[int] = set()

    def _ledger(self) -> OffsetLedger:
        return OffsetLedger("logs", lambda p: min(self.held[p]) if self.held.get(p) else None)

    @rule(partition=PARTITIONS)
    def assign(self, partition: int) -> None:
        if partition not in self.assigned:
            self.assigned.add(partition)
            self.position[partition] = self.broker_committed.get(partition, 0)

    @precondition(lambda self: self.assigned)
    @rule(data=st.data(), size=st.integers(1, 40))
    def read(self, data: st.DataObject, size: int) -> None:
        p = data.draw(st.sampled_from(sorted(self.assigned)))
        first = self.position[p]
        offsets = np.arange(first, first + size, dtype=np.int64)
        seen_below = self.ledger.accounted_through(p)
        before = self.ledger.read_through(p)
        counted = [int(o) for o in offsets if seen_below is None or o >= seen_below]
        self.held.setdefault(p, set()).update(counted)
        rereads = self.ledger.record(p, offsets)
        assert rereads == (0 if before is None else int(np.count_nonzero(offsets < before)))
        self.position[p] = first + size
        self.ever_read[p] = max(self.ever_read.get(p, 0), first + size)

    @rule(partition=PARTITIONS, closing=st.integers(0, 40))
    def windows_close(self, partition: int, closing: int) -> None:
        """The oldest ``closing`` held records' windows close: they are accounted for."""
        held = sorted(self.held.get(partition, ()))
        self.held[partition] = set(held[closing:])

    @rule(ok=st.booleans(), only=st.one_of(st.none(), st.sets(PARTITIONS)))
    def commit(self, ok: bool, only: set[int] | None) -> None:
        before = self.ledger.committed()
        positions = self.ledger.to_commit(None if only is None else sorted(only))
        for p, position in positions.items():
            assert p in self.assigned and (only is None or p in only)
            # the oldest record still held in an open window, else all that was read;
            # never past what is accounted (which runs ahead of it while a partition
            # restored from a snapshot is read again up to there)
            held = self.held.get(p)
            assert position == (min(held) if held else self.ledger.consumed()[p])
            assert position <= self.ledger.accounted_through(p)
            assert position > before.get(p, -1)  # only what moved
        if ok:
            self.ledger.mark_committed(positions)
            self.broker_committed.update(positions)

    @precondition(lambda self: self.assigned)
    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        p = data.draw(st.sampled_from(sorted(self.assigned)))
        accounted = self.ledger.accounted_through(p)
        self.ledger.revoke([p])
        self.held.pop(p, None)  # the windows drop the partition's share
        self.assigned.discard(p)
        assert self.ledger.accounted_through(p) == accounted
        assert p not in self.ledger.consumed() and p not in self.ledger.committed()
        assert self.ledger.to_commit([p]) == {}

    @rule()
    def restart(self) -> None:
        """Snapshot (through JSON, as on disk), stop, start a new ledger from it."""
        saved = json.loads(json.dumps({**self.ledger.dump(), "records_reread": 0}))
        old = self.ledger
        accounted = {p: old.accounted_through(p) for p in range(3)}
        self.held.clear()  # open windows are not in the snapshot
        self.ledger = self._ledger()
        self.ledger.restore(SavedOffsets.parse(saved, "logs"))
        for p in range(3):
            assert self.ledger.read_through(p) == old.read_through(p)
            assert self.ledger.accounted_through(p) == accounted[p]
        self.assigned.clear()

    @invariant()
    def offsets_are_ordered(self) -> None:
        """broker commit <= accounted-through <= read-through, consumed-next <= read-through.

        Accounted-through may run ahead of consumed-next: while a partition is read again
        after a revocation, what the closed windows had counted before stays accounted.
        """
        consumed = self.ledger.consumed()
        for p, end in self.ever_read.items():
            assert self.ledger.read_through(p) == end
            accounted = self.ledger.accounted_through(p)
            if p in consumed:
                assert accounted is not None
                assert self.broker_committed.get(p, 0) <= accounted <= end
                assert consumed[p] <= end
            if p in self.ledger.committed():
                assert self.ledger.committed()[p] == self.broker_committed[p]


LedgerAgainstABroker.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                                  deadline=None)
TestLedgerAgainstABroker = LedgerAgainstABroker.TestCase


def test_a_snapshot_written_before_the_ledger_restores_the_same():
    """The consumer section as snapshots have held it: partition keys as strings."""
    section = {"topic": "logs", "read_through": {"0": 120, "3": 7},
               "accounted": {"0": 100}, "records_reread": 42}
    saved = SavedOffsets.parse(section, "logs")
    ledger = OffsetLedger("logs", lambda p: None)
    ledger.restore(saved)
    assert (ledger.read_through(0), ledger.read_through(3)) == (120, 7)
    assert (ledger.accounted_through(0), ledger.accounted_through(3)) == (100, None)
    assert saved.records_reread == 42
    assert ledger.dump() == {"topic": "logs", "read_through": {"0": 120, "3": 7},
                             "accounted": {"0": 100}}
    assert ledger.to_commit() == {}  # nothing read since: nothing to commit


@pytest.mark.parametrize("section", [{}, {"topic": "elsewhere", "read_through": {"0": 5}}])
def test_offsets_of_another_topic_or_none_are_not_restored(section):
    assert SavedOffsets.parse(section, "logs") == SavedOffsets()


@pytest.mark.parametrize("section", [
    {"topic": "logs", "read_through": {"zero": 5}},
    {"topic": "logs", "accounted": {"0": None}},
    {"topic": "logs", "records_reread": "many"},
])
def test_a_consumer_section_that_does_not_parse_is_refused(section):
    with pytest.raises((ValueError, TypeError)):
        SavedOffsets.parse(section, "logs")


def test_a_commit_stops_at_the_first_record_an_open_window_holds():
    held = {0: 37}
    ledger = OffsetLedger("logs", held.get)
    ledger.record(0, np.arange(0, 50, dtype=np.int64))
    ledger.record(1, np.arange(10, 20, dtype=np.int64))
    assert ledger.to_commit() == {0: 37, 1: 20}
    assert ledger.to_commit([1, 2]) == {1: 20}
    ledger.mark_committed({0: 37})
    assert ledger.to_commit() == {1: 20}
    del held[0]
    assert ledger.to_commit() == {0: 50, 1: 20}


def test_a_partition_restored_and_read_again_commits_what_it_has_read_so_far():
    """Records 0 and 1 were counted in closed windows before a restart that the broker
    never saw committed: read again, they are skipped (accounted through 2), and the
    commit follows the reading (1 after record 0), never ahead of it."""
    before = OffsetLedger("logs", lambda p: None)
    before.record(1, np.array([0, 1], np.int64))
    ledger = OffsetLedger("logs", lambda p: None)
    ledger.restore(SavedOffsets.parse({**before.dump(), "records_reread": 0}, "logs"))
    assert ledger.record(1, np.array([0], np.int64)) == 1  # a re-read
    assert ledger.accounted_through(1) == 2
    assert ledger.to_commit() == {1: 1}
