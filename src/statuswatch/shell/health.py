"""Is the process consuming normally? Readiness, liveness and the stuck-consumer watchdog.

The decisions are pure functions of what the runtime observed and the time,
passed in (:func:`assess`, :func:`track_progress`, :func:`readiness`,
:func:`liveness`), so they are unit-tested without a broker or a clock. The
:class:`HealthMonitor` task feeds them every half second and writes the result
into :class:`RuntimeStatus`, which ``/ready``, ``/healthz`` and the metrics read.

How a broker outage is seen. aiokafka hides it: while the broker is down or
frozen, ``getmany()`` just returns nothing after its timeout, exactly as when
there is no new data. But a healthy broker answers the consumer's fetch
requests at least every ``fetch.max.wait.ms`` (500 ms) even when idle, and
aiokafka records the wall time of the last answer per partition
(``consumer.last_poll_timestamp(tp)``). A partition with no answer for
``health.broker_timeout_seconds`` means the broker is unreachable, frozen, or
no longer leads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from statuswatch.config import HealthConfig
from statuswatch.core.rejects import InputVerdict
from statuswatch.errors import UnreadablePartitionError
from statuswatch.shell.kafka_source import UNREADABLE_HINTS, KafkaSource
from statuswatch.shell.metrics import RuntimeStatus, UnreadablePartition

log = logging.getLogger(__name__)

#: How often the monitor wakes up; its sleep overshoot is the event-loop lag.
TICK_SECONDS = 0.5
#: The event-loop lag gauge is the largest overshoot over this many seconds.
LOOP_LAG_WINDOW_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class BrokerProbe:
    """What the consumer knows about its broker connection, at one instant."""

    #: Per assigned partition: seconds since the broker last answered a fetch
    #: for it, or None if it has not answered one since the assignment.
    fetch_ages: Mapping[int, float | None]
    #: Whether the consumer group coordinator is known (used when nothing is assigned).
    coordinator_known: bool = False


def source_probe(source: KafkaSource, status: RuntimeStatus) -> BrokerProbe | None:
    """What ``source`` knows of its broker now (None: not started). A paused,
    unreadable partition gets no fetch answers: that is not a broker outage."""
    ages = source.fetch_ages(exclude=status.unreadable)
    return None if ages is None else BrokerProbe(ages, source.coordinator_known())


def report_unreadable(
    status: RuntimeStatus, exc: UnreadablePartitionError, stuck_timeout_seconds: float
) -> None:
    """Note a partition the source paused: once, with its cause; never as an outage."""
    if exc.partition in status.unreadable:
        return
    exits = (f"exiting in {stuck_timeout_seconds:g}s (health.stuck_timeout_seconds)"
             if stuck_timeout_seconds > 0 else "health.stuck_timeout_seconds=0: not exiting")
    log.error(
        "%s; retrying cannot fix this: %s. The partition is paused, %s",
        exc, UNREADABLE_HINTS[exc.reason], exits,
    )
    status.unreadable[exc.partition] = UnreadablePartition(
        exc.reason, str(exc), time.monotonic()
    )


@dataclass(frozen=True, slots=True)
class Assessment:
    broker_up: bool
    ready: bool
    reason: str


def _parts(partitions: list[int]) -> str:
    return ",".join(str(p) for p in partitions)


def assess(probe: BrokerProbe | None, poll_failures: int, broker_timeout_s: float) -> Assessment:
    """Broker reachability and readiness from one probe.

    >>> assess(BrokerProbe({0: 0.4, 1: 0.2}), 0, 10.0)
    Assessment(broker_up=True, ready=True, reason='consuming')
    >>> assess(BrokerProbe({0: 31.0, 1: 30.5}), 0, 10.0).reason
    'no fetch response from the broker for partitions 0,1 for 31s'
    >>> assess(BrokerProbe({0: 0.1}), 3, 10.0)
    Assessment(broker_up=False, ready=False, reason='3 consecutive polls failed')
    """
    if probe is None:
        return Assessment(False, False, "not connected to Kafka yet")
    ages = probe.fetch_ages
    fresh = [p for p, age in ages.items() if age is not None and age <= broker_timeout_s]
    stale = sorted(p for p, age in ages.items() if age is not None and age > broker_timeout_s)
    unfetched = sorted(p for p, age in ages.items() if age is None)
    if poll_failures > 0:
        return Assessment(False, False, f"{poll_failures} consecutive polls failed")
    if not ages:
        return Assessment(probe.coordinator_known, False, "no partitions assigned")
    broker_up = bool(fresh)
    if stale:
        oldest = max(a for a in ages.values() if a is not None)
        return Assessment(
            broker_up, False,
            f"no fetch response from the broker for partitions {_parts(stale)} for {oldest:.0f}s",
        )
    if unfetched:
        return Assessment(
            broker_up, False, f"waiting for the first fetch of partitions {_parts(unfetched)}"
        )
    return Assessment(True, True, "consuming")


@dataclass(frozen=True, slots=True)
class Progress:
    """Consumed positions last seen, and since when lag > 0 went without progress."""

    positions: Mapping[int, int] = field(default_factory=dict)
    stalled_since: float | None = None
    #: When the last observation showed progress, no lag, or a broker outage.
    last_ok: float | None = None

    def stalled_for(self, now: float) -> float:
        return 0.0 if self.stalled_since is None else max(0.0, now - self.stalled_since)


def track_progress(
    prev: Progress,
    now: float,
    positions: Mapping[int, int],
    lag: Mapping[int, int],
    broker_up: bool,
) -> Progress:
    """The watchdog's state after one observation.

    Stalled means: records are waiting (some partition's lag > 0), the broker
    answers, and no partition's consumed position moved. Any progress, a lag
    of 0, or a broker outage (the lag is then unknown, and restarting would
    not help) resets it.

    >>> p = track_progress(Progress(), 0.0, {0: 10}, {0: 5}, True)  # first look: moved
    >>> p = track_progress(p, 60.0, {0: 10}, {0: 5}, True)
    >>> p.stalled_for(121.0)
    121.0
    >>> track_progress(p, 122.0, {0: 11}, {0: 4}, True).stalled_for(122.0)
    0.0
    """
    positions = dict(positions)
    moved = positions != dict(prev.positions)
    waiting = any(n > 0 for n in lag.values())
    if moved or not waiting or not broker_up:
        return Progress(positions, None, now)
    since = prev.stalled_since
    if since is None:
        since = prev.last_ok if prev.last_ok is not None else now
    return Progress(positions, since, prev.last_ok)


def is_stuck(progress: Progress, now: float, stuck_timeout_s: float) -> bool:
    """Whether the watchdog should end the process (a timeout of 0 disables it).

    >>> p = Progress({0: 1}, stalled_since=10.0)
    >>> is_stuck(p, 130.0, 120.0), is_stuck(p, 129.0, 120.0)
    (True, False)
    >>> is_stuck(p, 1e9, 0.0)
    False
    """
    return stuck_timeout_s > 0 and progress.stalled_for(now) >= stuck_timeout_s


def unreadable_verdict(
    verdict: Assessment, unreadable: Mapping[int, UnreadablePartition]
) -> Assessment:
    """Not ready while a partition cannot be read, whatever the broker does; its cause
    is the reason (the broker answering stays ``broker_up``).

    >>> u = UnreadablePartition("unsupported_codec", "cannot read topic=t partition=0", 0.0)
    >>> unreadable_verdict(Assessment(True, True, "consuming"), {0: u})
    Assessment(broker_up=True, ready=False, reason='cannot read topic=t partition=0')
    >>> unreadable_verdict(Assessment(True, True, "consuming"), {})
    Assessment(broker_up=True, ready=True, reason='consuming')
    """
    if not unreadable:
        return verdict
    first = min(unreadable.values(), key=lambda u: u.since_monotonic)
    more = f" (and {len(unreadable) - 1} more partitions)" if len(unreadable) > 1 else ""
    return Assessment(verdict.broker_up, False, first.message + more)


def unreadable_for(unreadable: Mapping[int, UnreadablePartition], now: float) -> float:
    """Seconds since the first of the partitions that cannot be read was found (0: none).

    >>> unreadable_for({3: UnreadablePartition("corrupt_batch", "m", 10.0)}, 130.0)
    120.0
    """
    if not unreadable:
        return 0.0
    return max(0.0, now - min(u.since_monotonic for u in unreadable.values()))


def liveness(status: RuntimeStatus, now: float, heartbeat_timeout_s: float) -> tuple[bool, str]:
    """``/healthz``: the event loop has run recently (``now`` is ``time.monotonic()``)."""
    silent = now - status.last_heartbeat_monotonic
    if silent > heartbeat_timeout_s:
        return False, f"event loop silent for {silent:.1f}s"
    return True, "ok"


def readiness(status: RuntimeStatus, now: float, heartbeat_timeout_s: float) -> tuple[bool, str]:
    """``/ready``: consuming normally, and the loop that says so is alive."""
    alive, why = liveness(status, now, heartbeat_timeout_s)
    if not alive:
        return False, why
    if not status.ready:
        return False, status.not_ready_reason
    return True, "ready"


class HealthMonitor:
    """A task that measures loop lag, beats the heart, judges readiness, runs the watchdog."""

    def __init__(
        self,
        cfg: HealthConfig,
        status: RuntimeStatus,
        probe: Callable[[], BrokerProbe | None],
        positions: Callable[[], Mapping[int, int]],
        on_stuck: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        input_check: Callable[[], InputVerdict] | None = None,
        topic: str = "",
    ) -> None:
        self.cfg = cfg
        self.status = status
        self._probe = probe
        self._positions = positions
        self._on_stuck = on_stuck
        self._clock = clock
        self._lags: deque[tuple[float, float]] = deque()
        self._progress = Progress()
        self._unready_since: float | None = None
        self._stuck_reported = False
        self._task: asyncio.Task[None] | None = None
        #: is the input mostly invalid (decode.mostly_invalid)? ``topic`` for the log line
        self._input_check = input_check
        self._topic = topic
        self._input_reported = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            before = self._clock()
            await asyncio.sleep(TICK_SECONDS)
            now = self._clock()
            try:
                self.tick(now, max(0.0, now - before - TICK_SECONDS))
            except Exception:
                log.exception("health check failed")

    def tick(self, now: float, overshoot: float) -> None:
        """One observation at monotonic time ``now``."""
        st = self.status
        st.last_heartbeat_monotonic = now
        self._lags.append((now, overshoot))
        while self._lags and self._lags[0][0] < now - LOOP_LAG_WINDOW_SECONDS:
            self._lags.popleft()
        st.event_loop_lag_seconds = max(lag for _, lag in self._lags)

        verdict = unreadable_verdict(
            assess(self._probe(), st.poll_failures, self.cfg.broker_timeout_seconds),
            st.unreadable,
        )
        verdict = self._with_input(verdict)
        if st.ready and not verdict.ready:
            self._unready_since = now
            log.warning("not ready: %s", verdict.reason)
        elif not st.ready and verdict.ready:
            if self._unready_since is None:
                log.info("ready: consuming")
            else:
                log.info("ready again after %.1fs", now - self._unready_since)
        st.broker_up, st.ready, st.not_ready_reason = (
            verdict.broker_up, verdict.ready, verdict.reason
        )

        self._progress = track_progress(
            self._progress, now, self._positions(), st.consumer_lag, verdict.broker_up
        )
        st.stalled_seconds = self._progress.stalled_for(now)
        if self._stuck_reported:
            return
        timeout = self.cfg.stuck_timeout_seconds
        # An unreadable partition ends the process even while the others make progress.
        blocked = Progress(stalled_since=now - unreadable_for(st.unreadable, now))
        if st.unreadable and is_stuck(blocked, now, timeout):
            self._stuck_reported = True
            self._on_stuck(
                f"{unreadable_verdict(verdict, st.unreadable).reason}; unreadable for "
                f"{blocked.stalled_for(now):.0f}s (health.stuck_timeout_seconds={timeout:g}); "
                "exiting so that a supervisor restarts it"
            )
        elif is_stuck(self._progress, now, timeout):
            self._stuck_reported = True
            lag = sum(st.consumer_lag.values())
            cause = f" because {verdict.reason}" if st.unreadable else ""
            self._on_stuck(
                f"consumer stuck{cause}: lag {lag} records and no consumed progress for "
                f"{st.stalled_seconds:.0f}s (health.stuck_timeout_seconds={timeout:g}); "
                "exiting so that a supervisor restarts it"
            )

    def _with_input(self, verdict: Assessment) -> Assessment:
        """``verdict``, unready while the input is mostly invalid; one ERROR line when that
        starts (with a rejected record's position), one INFO line when it ends."""
        if self._input_check is None:
            return verdict
        check = self._input_check()
        st = self.status
        st.input_rejected_ratio = check.rejected.share
        st.input_mostly_invalid = check.mostly_invalid
        if check.mostly_invalid and not self._input_reported:
            self._input_reported = True
            sample = check.rejected.sample
            where = ""
            if sample is not None:
                offset = "?" if sample.offset is None else str(sample.offset)
                where = f" (e.g. topic={self._topic} partition={sample.partition} offset={offset})"
            log.error("%s%s", check.message(), where)
        elif not check.mostly_invalid and self._input_reported:
            self._input_reported = False
            log.info(
                "input valid again: %.0f%% of %d records in the last %gs rejected",
                100 * check.rejected.share, check.rejected.records, check.window_seconds,
            )
        if check.mostly_invalid and verdict.ready:
            return Assessment(verdict.broker_up, False, check.message())
        return verdict
