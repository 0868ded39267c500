"""The checkpoint: the ordered steps after which consumed input may be forgotten.

As in quix-streams' ``Checkpoint``, the steps run in one order: flush the alert
sinks, write the snapshot, wait until the dead letters are acknowledged, commit
the offsets. A crash between any two steps re-reads input that the later steps
do not yet cover, never the other way round. ``restore`` is the way back: the
newest intact snapshot, offsets included.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable

from statuswatch.config import Settings
from statuswatch.core.detector import Detector
from statuswatch.shell.deadletter import DeadLetterQueue
from statuswatch.shell.metrics import RuntimeStatus
from statuswatch.shell.offsets import OffsetLedger, SavedOffsets
from statuswatch.shell.sinks import Sink
from statuswatch.shell.state import open_store

log = logging.getLogger(__name__)

#: Without a state store, offsets are committed at most this often: a commit is a
#: broker round trip, and one per poll costs throughput for no safety (on a restart
#: the records after the last commit are read again either way).
COMMIT_EVERY_MS = 1_000


class Checkpoint:
    """Flush sinks, snapshot, wait for dead-letter acknowledgements, commit offsets.

    ``commit_offsets`` commits ``next offset to read`` per partition of the
    ledger's topic (``KafkaSource.commit``); ``clock`` is wall time in ms. Without
    ``state.dir`` there is no snapshot step, and commits are throttled to one per
    ``COMMIT_EVERY_MS``.
    """

    def __init__(
        self,
        settings: Settings,
        detector: Detector,
        sink: Sink,
        ledger: OffsetLedger,
        status: RuntimeStatus,
        commit_offsets: Callable[[dict[int, int]], Awaitable[None]],
        clock: Callable[[], int],
        dead_letters: DeadLetterQueue | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.detector = detector
        self.sink = sink
        self.ledger = ledger
        self.status = status
        self.dead_letters = dead_letters
        self._commit_offsets = commit_offsets
        self._clock = clock
        self._monotonic = monotonic
        st = settings.state
        self.store = open_store(st.dir, st.keep) if st.dir else None
        self._snapshot_every_ms = round(st.interval_seconds * 1000)
        self._last_snapshot_ms = 0
        self._last_commit = -math.inf  # monotonic time of the last throttled commit

    def due(self, now_ms: int) -> bool:
        """Whether the periodic checkpoint is due; without a store, saying so starts
        the next commit interval."""
        if self.store is not None:
            return now_ms - self._last_snapshot_ms >= self._snapshot_every_ms
        if self._monotonic() - self._last_commit < COMMIT_EVERY_MS / 1000:
            return False
        self._last_commit = self._monotonic()
        return True

    async def run(self, partitions: Iterable[int] | None = None) -> None:
        """Every step, in order; only ``partitions`` (default all read) are committed."""
        self.snapshot()
        await self.commit(partitions)

    def snapshot(self) -> None:
        """Flush alerts, then persist state covering everything consumed so far
        (nothing without a store)."""
        if self.store is None:
            return
        self.sink.flush()
        self.store.write({
            "detector": self.detector.snapshot(),
            "consumer": {**self.ledger.dump(), "records_reread": self.status.records_reread},
        })
        self._last_snapshot_ms = self._clock()
        self.status.last_snapshot_unix = self._last_snapshot_ms / 1000

    async def commit(self, partitions: Iterable[int] | None = None) -> None:
        """Flush alerts and wait for the dead letters, then commit what the ledger
        allows; a failed commit is logged and retried at the next checkpoint."""
        positions = self.ledger.to_commit(partitions)
        if not positions:
            return
        self.sink.flush()
        if self.dead_letters is not None and not await self.dead_letters.flush():
            # a committed record's dead letter must be safe: commit on a later poll
            log.warning("%d dead letters not yet acknowledged: commit postponed",
                        self.dead_letters.pending)
            return
        from aiokafka.errors import CommitFailedError, KafkaError

        try:
            await self._commit_offsets(positions)
        except CommitFailedError as exc:
            # A rebalance took the partitions; the new owner re-reads from the last commit.
            log.warning("commit failed after a rebalance: %s", exc)
            return
        except KafkaError as exc:
            log.warning("commit failed, will retry on the next poll: %s", exc)
            return
        self.ledger.mark_committed(positions)
        self.status.commits += 1

    def restore(self, keep_clocks: bool = False) -> None:
        """Continue from the newest intact snapshot, if there is one.

        Baselines, alert states, scopes and the closed-window frontier come back;
        open windows are rebuilt by re-reading from the committed offsets, which
        never pass a record of an open window. Records of windows that had
        already closed are dropped as late, so nothing is counted twice, even if
        another instance consumed a partition meanwhile. ``keep_clocks``: the
        partition clocks stay as restored (see ``WindowCounter.forget_open``).
        """
        if self.store is None:
            return
        state = self.store.load()
        if state is None:
            log.info("no snapshot in %s: starting fresh", self.store.directory)
            return
        try:  # on a scratch detector first: a refused snapshot leaves the live one untouched
            Detector(self.settings, self.detector.decoder).restore(
                state["detector"], self._clock()
            )
            # the consumer section is absent in snapshots written before it was
            saved = SavedOffsets.parse(state.get("consumer", {}), self.ledger.topic)
        except (ValueError, KeyError, TypeError) as exc:
            log.error(
                "the snapshot in %s does not fit this version or configuration (%s): "
                "starting fresh; newer snapshots will replace it", self.store.directory, exc,
            )
            return
        self.detector.restore(state["detector"], self._clock())
        self.ledger.restore(saved)
        self.status.records_reread = saved.records_reread
        self.detector.windows.forget_open(keep_clocks)
        self.detector.scopes.forget_pending()
        log.info("restored snapshot from %s", self.store.directory)


__all__ = ["COMMIT_EVERY_MS", "Checkpoint"]
