"""``KafkaSource`` on the real broker: records in flight while a rebalance runs.

aiokafka calls the assignment callback beside the poll loop and returns records
while it runs. A stage-1 worker starts its transactional producers there and
then seeks to the committed offset; a batch polled from the old position before
that seek must not be taken as read from the new one.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer

from statuswatch.config import KafkaConfig
from statuswatch.shell.kafka_source import KafkaSource
from statuswatch.shell.sources import RawBatch

pytestmark = [pytest.mark.broker]

RECORDS = 200


async def produce(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(RECORDS):
            await producer.send(topic, f'{{"n": {i}}}'.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def poll_some(source: KafkaSource) -> RawBatch:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        batches = await source.poll()
        if batches:
            return batches[0]
    raise AssertionError("no records within 60 s")


async def test_a_batch_polled_before_the_assignment_seek_is_not_current(kafka_broker, topic):
    await produce(kafka_broker.bootstrap_servers, topic)
    cfg = KafkaConfig.model_validate({
        "bootstrap_servers": kafka_broker.bootstrap_servers, "topic": topic,
        "group_id": f"seek-{topic}", "max_batch_records": 50, "fetch_timeout_ms": 200,
    })
    source = KafkaSource(cfg)
    in_callback, release, sought = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def on_assign(partitions: set[int]) -> None:
        in_callback.set()
        await release.wait()  # a worker starting its producers
        await source.seek(0, 0)  # then reading from its commit
        sought.set()

    await source.start(on_assign=on_assign)
    try:
        first = await poll_some(source)
        second = await poll_some(source)
        assert in_callback.is_set() and not sought.is_set()
        assert int(first.offsets[0]) == 0
        assert int(second.offsets[0]) == int(first.offsets[-1]) + 1, "the position moved on"
        assert source.is_current(second) and not source.is_current(first)

        release.set()
        await asyncio.wait_for(sought.wait(), 30)
        assert not source.is_current(second), "polled from the old position, before the seek"

        again = await poll_some(source)
        assert int(again.offsets[0]) == 0 and source.is_current(again)
    finally:
        release.set()
        await source.stop()
