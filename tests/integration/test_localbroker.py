"""The local Kafka harness against a real broker: produce, consume, pause, restart."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from statuswatch import localbroker
from statuswatch.errors import BrokerHarnessError
from statuswatch.localbroker import LocalKafka

pytestmark = pytest.mark.broker


async def produce(bootstrap: str, topic: str, values: Sequence[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i, value in enumerate(values):
            await producer.send(topic, value, key=str(i).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def consume(
    bootstrap: str, topic: str, count: int, *, group_id: str | None = None, timeout: float = 30.0
) -> list[tuple[int, bytes]]:
    """Read ``count`` records from the start of ``topic``: ``(partition, value)`` pairs."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[tuple[int, bytes]] = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                got.extend((r.partition, r.value) for r in records)
    finally:
        await consumer.stop()
    return got


async def test_produce_and_consume_100_messages(kafka_broker: LocalKafka, topic: str) -> None:
    values = [f"message-{i}".encode() for i in range(100)]
    await produce(kafka_broker.bootstrap_servers, topic, values)
    # A consumer group exercises the group coordinator (__consumer_offsets) too.
    got = await consume(kafka_broker.bootstrap_servers, topic, 100, group_id=f"group-{topic}")
    assert [value for _, value in got] == values  # one partition: order is kept


@pytest.mark.parametrize("topic", [3], indirect=True)
async def test_topic_with_three_partitions(kafka_broker: LocalKafka, topic: str) -> None:
    values = [f"message-{i}".encode() for i in range(100)]
    await produce(kafka_broker.bootstrap_servers, topic, values)
    got = await consume(kafka_broker.bootstrap_servers, topic, 100)
    assert sorted(value for _, value in got) == sorted(values)
    assert {partition for partition, _ in got} == {0, 1, 2}


async def test_produce_waits_while_paused_then_succeeds(
    kafka_broker: LocalKafka, topic: str
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"before")
        kafka_broker.pause()
        try:
            pending = asyncio.ensure_future(producer.send_and_wait(topic, b"during"))
            # Well below the broker session (2.5 s), so the broker is not fenced.
            done, _ = await asyncio.wait({pending}, timeout=1.0)
        finally:
            kafka_broker.resume()
        assert not done, "a paused broker acknowledged a produce request"
        await asyncio.wait_for(pending, timeout=20)
    finally:
        await producer.stop()
    got = await consume(kafka_broker.bootstrap_servers, topic, 2)
    assert [value for _, value in got] == [b"before", b"during"]


@pytest.mark.slow
async def test_restart_and_kill_keep_topic_data() -> None:
    # A broker of its own: restarting the session broker would disturb other tests.
    with LocalKafka() as broker:
        first_port = broker.bootstrap_servers
        await broker.acreate_topic("kept", partitions=2)
        await produce(broker.bootstrap_servers, "kept", [b"a", b"b", b"c"])

        await asyncio.to_thread(broker.restart)
        assert broker.bootstrap_servers == first_port
        await produce(broker.bootstrap_servers, "kept", [b"d"])
        got = await consume(broker.bootstrap_servers, "kept", 4)
        assert sorted(value for _, value in got) == [b"a", b"b", b"c", b"d"]

        # A crash: no clean shutdown, the log is recovered on start.
        broker.kill()
        assert not broker.running
        await asyncio.to_thread(broker.start)
        got = await consume(broker.bootstrap_servers, "kept", 4)
        assert sorted(value for _, value in got) == [b"a", b"b", b"c", b"d"]
        data_dir = broker.data_dir
    assert not data_dir.exists()  # close() removed the temporary data dir


def test_bad_config_fails_with_the_reason() -> None:
    broker = LocalKafka(extra_properties={"num.network.threads": "zero"})
    try:
        with pytest.raises(BrokerHarnessError, match=r"num\.network\.threads"):
            broker.start(timeout=60)
        assert not broker.running
    finally:
        broker.close()


@pytest.mark.slow
def test_broker_that_exits_fails_with_log_tail() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = LocalKafka(port=taken.getsockname()[1])
        try:
            with pytest.raises(BrokerHarnessError, match="Address already in use"):
                broker.start(timeout=60)
            assert not broker.running
        finally:
            broker.close()


def test_cached_jars_do_not_run_maven(
    kafka_broker: LocalKafka, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_maven(*args: object, **kwargs: object) -> None:
        raise AssertionError("Maven ran although the jar cache is complete")

    monkeypatch.setattr(subprocess, "run", no_maven)
    libs = localbroker.ensure_kafka_jars(kafka_broker.version)
    assert isinstance(libs, Path)
    assert (libs / f"kafka_2.13-{kafka_broker.version}.jar").is_file()


async def test_create_existing_topic(kafka_broker: LocalKafka, topic: str) -> None:
    with pytest.raises(BrokerHarnessError, match="already exists"):
        await kafka_broker.acreate_topic(topic)
    await kafka_broker.acreate_topic(topic, exist_ok=True)
