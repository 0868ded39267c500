"""Readiness, liveness and the stuck-consumer watchdog, with the time passed in."""

from __future__ import annotations

import pytest

from statuswatch.config import HealthConfig, Settings
from statuswatch.core.detector import Detector
from statuswatch.shell.health import (
    BrokerProbe,
    HealthMonitor,
    Progress,
    assess,
    is_stuck,
    liveness,
    readiness,
    track_progress,
)
from statuswatch.shell.metrics import RuntimeStatus
from statuswatch.shell.runtime import KafkaRunner
from statuswatch.shell.sinks import ListSink


@pytest.mark.parametrize(
    ("probe", "failures", "up", "ready", "reason"),
    [
        (BrokerProbe({0: 0.3, 1: 0.1}), 0, True, True, "consuming"),
        (None, 0, False, False, "not connected"),
        (BrokerProbe({0: 0.3}), 2, False, False, "2 consecutive polls failed"),
        (BrokerProbe({}, coordinator_known=True), 0, True, False, "no partitions assigned"),
        (BrokerProbe({}, coordinator_known=False), 0, False, False, "no partitions assigned"),
        (BrokerProbe({0: 12.0, 1: 11.0}), 0, False, False, "partitions 0,1 for 12s"),
        # one partition's leader is away: the broker answers, but we are partly blind
        (BrokerProbe({0: 0.2, 1: 30.0}), 0, True, False, "partitions 1 for 30s"),
        (BrokerProbe({0: 0.2, 1: None}), 0, True, False, "first fetch of partitions 1"),
    ],
)
def test_assess(probe, failures, up, ready, reason):
    verdict = assess(probe, failures, broker_timeout_s=10.0)
    assert (verdict.broker_up, verdict.ready) == (up, ready)
    assert reason in verdict.reason


def observe(progress: Progress, now: float, position: int, lag: int, up: bool = True) -> Progress:
    return track_progress(progress, now, {0: position}, {0: lag}, up)


def test_watchdog_fires_after_the_timeout_of_lag_without_progress():
    p = observe(Progress(), 0.0, 100, 50)  # the last progress seen
    for t in range(1, 120):
        p = observe(p, float(t), 100, 50)
        assert not is_stuck(p, float(t), 120.0)
    p = observe(p, 120.0, 100, 50)
    assert p.stalled_for(120.0) == 120.0
    assert is_stuck(p, 120.0, 120.0)


def test_watchdog_progress_resets_the_clock():
    p = observe(Progress(), 0.0, 100, 50)
    p = observe(p, 100.0, 100, 50)
    p = observe(p, 110.0, 101, 49)  # one record consumed
    assert p.stalled_for(110.0) == 0.0
    p = observe(p, 229.0, 101, 49)
    assert not is_stuck(p, 229.0, 120.0)
    assert is_stuck(observe(p, 230.0, 101, 49), 230.0, 120.0)


def test_watchdog_no_lag_or_broker_down_is_not_stuck():
    p = observe(Progress(), 0.0, 100, 0)
    p = observe(p, 500.0, 100, 0)  # idle input: nothing to consume
    assert not is_stuck(p, 500.0, 120.0)
    q = observe(Progress(), 0.0, 100, 50, up=False)
    q = observe(q, 500.0, 100, 50, up=False)  # outage: /ready reports it, a restart cannot help
    assert not is_stuck(q, 500.0, 120.0)
    assert not is_stuck(Progress({0: 1}, 0.0), 1e6, 0.0)  # 0 disables the watchdog


def test_liveness_and_readiness_follow_the_heartbeat():
    st = RuntimeStatus(last_heartbeat_monotonic=100.0)
    assert liveness(st, 105.0, 10.0) == (True, "ok")
    assert readiness(st, 105.0, 10.0) == (False, "starting")
    st.ready = True
    assert readiness(st, 105.0, 10.0) == (True, "ready")
    alive, why = liveness(st, 111.0, 10.0)
    assert not alive and "silent for 11.0s" in why
    assert readiness(st, 111.0, 10.0)[0] is False  # a stalled loop cannot vouch for itself


class FakeConsumer:
    def __init__(self) -> None:
        self.ages: dict[int, float | None] = {0: 0.1}
        self.position = 0
        self.lag = 10


def make_monitor(fake: FakeConsumer, stuck: list[str], timeout: float = 120.0):
    status = RuntimeStatus()
    monitor = HealthMonitor(
        HealthConfig(stuck_timeout_seconds=timeout, broker_timeout_seconds=10.0), status,
        probe=lambda: BrokerProbe(dict(fake.ages)),
        positions=lambda: {0: fake.position},
        on_stuck=stuck.append,
    )
    return monitor, status


def test_monitor_sets_status_and_fires_the_watchdog_once():
    fake, stuck = FakeConsumer(), []
    monitor, status = make_monitor(fake, stuck)
    status.consumer_lag = {0: 10}
    monitor.tick(1.0, 0.002)
    assert status.ready and status.broker_up and status.last_heartbeat_monotonic == 1.0
    fake.ages = {0: 15.0}
    monitor.tick(2.0, 0.8)
    assert not status.ready and not status.broker_up
    assert "no fetch response" in status.not_ready_reason
    assert status.event_loop_lag_seconds == 0.8
    fake.ages = {0: 0.2}  # back; the outage does not count as a stall
    for t in range(3, 122):
        monitor.tick(float(t), 0.0)
    assert status.ready and status.stalled_seconds == 119.0 and not stuck
    assert status.event_loop_lag_seconds == 0.0  # the 0.8 s sample left the window
    monitor.tick(122.0, 0.0)
    monitor.tick(123.0, 0.0)
    assert len(stuck) == 1
    assert "consumer stuck: lag 10 records and no consumed progress for 120s" in stuck[0]


def test_runner_exits_non_zero_when_the_watchdog_fires():
    settings = Settings()
    runner = KafkaRunner(settings, Detector(settings), ListSink())
    runner.monitor._on_stuck("consumer stuck: test")
    assert runner.exit_code == 3
    assert runner._stop.is_set()


def test_runner_reports_not_connected_before_its_consumer_starts():
    settings = Settings()
    runner = KafkaRunner(settings, Detector(settings), ListSink())
    assert runner.source.fetch_ages() is None and not runner.source.coordinator_known()
    runner.monitor.tick(1.0, 0.0)
    assert not runner.status.ready and not runner.status.broker_up
    assert runner.status.not_ready_reason == "not connected to Kafka yet"


def test_repeated_kafka_errors_are_rate_limited():
    import logging

    from statuswatch.shell.app import RepeatFilter

    now = [0.0]
    flt = RepeatFilter(30.0, clock=lambda: now[0])

    def rec(msg: str) -> logging.LogRecord:
        return logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, msg, (1,), None)

    assert flt.filter(rec("Unable connect to node with id %s"))
    for t in range(1, 30):
        now[0] = float(t)
        assert not flt.filter(rec("Unable connect to node with id %s"))
    assert flt.filter(rec("Failed fetch messages from %s"))  # another message passes
    now[0] = 30.0
    again = rec("Unable connect to node with id %s")
    assert flt.filter(again)
    assert again.getMessage() == "Unable connect to node with id 1 (29 similar suppressed in 30s)"


# -- mostly invalid input, seen over HTTP -----------------------------------------


def _get(url: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _gauge(body: str, name: str) -> float:
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not on /metrics")


def test_mostly_invalid_input_is_reported_on_ready_metrics_and_once_in_the_log(caplog):
    """A gateway upgrade renames the time field: every record is rejected. The runner's
    own monitor turns /ready 503 naming the reason, the field and the key to set; the
    metrics say so; one ERROR line (with a record's position), not one per batch."""
    import logging
    import time

    import numpy as np

    from statuswatch.config import DecodeConfig
    from statuswatch.shell.http import serve
    from statuswatch.shell.metrics import build_registry
    from statuswatch.shell.sources import RawBatch

    settings = Settings(decode=DecodeConfig(format="nginx-json"))
    detector = Detector(settings)
    status = RuntimeStatus()
    now_ms = [1_796_515_200_000]
    runner = KafkaRunner(settings, detector, ListSink(), status, clock=lambda: now_ms[0])
    runner.monitor._probe = lambda: BrokerProbe({0: 0.1})  # a healthy broker
    server, port = serve(build_registry(detector, status), "127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    offset = 0

    def second(time_key: str) -> None:
        nonlocal offset
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now_ms[0] // 1000))
        values = [f'{{"{time_key}":"{stamp}","status":"200"}}'.encode()] * 50
        offsets = np.arange(offset, offset + 50, dtype=np.int64)
        runner.take(RawBatch(settings.kafka.topic, 0, offsets, values), now_ms[0])
        offset += 50
        now_ms[0] += 1000
        runner.monitor.tick(time.monotonic(), 0.0)

    try:
        with caplog.at_level(logging.INFO, logger="statuswatch"):
            for _ in range(5):
                second("time_iso8601")
            assert _get(base + "/ready") == (200, "ready\n")
            for _ in range(30):  # the upgrade: "@timestamp" instead of "time_iso8601"
                second("@timestamp")
            code, reason = _get(base + "/ready")
            metrics = _get(base + "/metrics")[1]
            errors = [r for r in caplog.records if r.levelno == logging.ERROR]
            for _ in range(61):  # fixed: a minute of good records
                second("time_iso8601")
            code_after = _get(base + "/ready")[0]
            metrics_after = _get(base + "/metrics")[1]
    finally:
        server.shutdown()

    assert code == 503
    assert "input mostly invalid" in reason and "missing_field" in reason
    assert "field msec/time_iso8601/time_local/time, decode.fields.timestamp" in reason
    assert "set decode.fields.timestamp" in reason
    assert _gauge(metrics, "statuswatch_input_mostly_invalid") == 1.0
    assert _gauge(metrics, "statuswatch_input_rejected_ratio") == pytest.approx(1500 / 1750)
    assert len(errors) == 1, [r.getMessage() for r in errors]
    line = errors[0].getMessage()
    assert "set decode.fields.timestamp" in line
    assert "topic=gateway-logs partition=0 offset=" in line
    assert code_after == 200
    assert _gauge(metrics_after, "statuswatch_input_mostly_invalid") == 0.0
    assert _gauge(metrics_after, "statuswatch_input_rejected_ratio") == 0.0
    assert any("input valid again" in r.getMessage() for r in caplog.records)
def test_an_unreadable_partition_is_unready_but_not_a_broker_outage_and_ends_the_process():
    from statuswatch.shell.metrics import UnreadablePartition

    fake, stuck = FakeConsumer(), []
    monitor, status = make_monitor(fake, stuck, timeout=30.0)
    fake.ages = {1: 0.1}  # partition 0 is paused: the probe leaves it out
    status.unreadable[0] = UnreadablePartition(
        "corrupt_batch", "cannot read topic=t partition=0 offset=7: corrupt_batch (CRC)", 5.0
    )
    for t in range(5, 35):
        fake.position += 1  # the other partition makes progress
        monitor.tick(float(t), 0.0)
        assert not status.ready and status.broker_up
        assert status.not_ready_reason.startswith("cannot read topic=t partition=0 offset=7")
    assert not stuck
    monitor.tick(35.0, 0.0)
    monitor.tick(36.0, 0.0)
    assert len(stuck) == 1
    assert "partition=0 offset=7: corrupt_batch (CRC); unreadable for 30s" in stuck[0]


def test_only_errors_a_retry_cannot_heal_are_unreadable():
    from aiokafka import TopicPartition
    from aiokafka import errors as ke

    from statuswatch.shell.kafka_source import (
        UNREADABLE_HINTS,
        failing_partition,
        unreadable_reason,
    )
    from statuswatch.shell.metrics import UNREADABLE_REASONS

    tp = TopicPartition("t", 4)
    too_large = ke.RecordTooLargeError("There are some messages at %s=%s", tp, 9, 1024)
    reasons = [unreadable_reason(e) for e in (
        ke.UnsupportedCodecError("Libraries for lz4 compression codec not found"),
        ke.CorruptRecordException("Invalid CRC - TopicPartition(topic='t', partition=4)"),
        too_large,
    )]
    assert reasons == list(UNREADABLE_REASONS) == list(UNREADABLE_HINTS)
    for retriable in (ke.KafkaConnectionError(), ke.NotLeaderForPartitionError(),
                      ke.KafkaTimeoutError(), ke.RequestTimedOutError()):
        assert unreadable_reason(retriable) is None
    assert failing_partition(too_large) == tp

    def unpack(tp: TopicPartition) -> None:  # the frame that iterates one partition's records
        raise ke.CorruptRecordException(f"Invalid CRC - {tp}")

    try:
        for part in (TopicPartition("t", 2), TopicPartition("t", 3)):
            unpack(part)
    except ke.CorruptRecordException as exc:
        assert failing_partition(exc) == TopicPartition("t", 2)
