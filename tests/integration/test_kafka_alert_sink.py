"""The Kafka alert sink on the real broker: the alert JSON keyed by its id, idempotent."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from statuswatch.config import Settings
from statuswatch.core.decide import AlertEvent, Evidence
from statuswatch.shell.delivery import AlertDelivery
from statuswatch.shell.sinks import ListSink
from statuswatch.shell.transports import KafkaTransport

pytestmark = [pytest.mark.broker]


def event(id_: str, state: str) -> AlertEvent:
    evidence = Evidence(True, False, False, 9.0, 50, 5.0, 0.05, 0.005, 1000)
    return AlertEvent(id_, state, 429, "up", "share", {"app": "a7"},  # type: ignore[arg-type]
                      1_680_566_400_000, 1_680_566_410_000, 1_680_566_390_000, evidence)


async def consume_all(bootstrap: str, topic: str, n: int) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        records: list[Any] = []
        while len(records) < n:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, f"only {len(records)} of {n} alerts on {topic}"
            records.extend(r for rs in batch.values() for r in rs)
        return records
    finally:
        await consumer.stop()


@pytest.mark.parametrize("own_cluster", [True, False], ids=["own-cluster", "input-cluster"])
async def test_alerts_are_produced_keyed_by_id(
    kafka_broker: Any, topic: str, own_cluster: bool
) -> None:
    if own_cluster:  # as for another cluster than the input's, which must not be used
        settings = Settings(
            kafka={"bootstrap_servers": "127.0.0.1:1"},
            alerts={"sinks": [{"type": "kafka", "name": "bus", "topic": topic,
                               "cluster": {"bootstrap_servers": kafka_broker.bootstrap_servers}}]},
        )
    else:
        settings = Settings(
            kafka={"bootstrap_servers": kafka_broker.bootstrap_servers},
            alerts={"sinks": [{"type": "kafka", "name": "bus", "topic": topic}]},
        )
    lines = ListSink()
    delivery = AlertDelivery(settings, lines)
    (worker,) = delivery.workers
    assert isinstance(worker.transport, KafkaTransport)
    await delivery.start()
    try:
        delivery.write([event("e1", "firing"), event("e2", "firing")])
        delivery.write([event("e1", "resolved")])
        for w in delivery.workers:
            assert await w.drain(60), f"{len(w.queue)} alerts still queued"
        producer = worker.transport._producer
        assert producer._txn_manager is not None  # the idempotent producer (acks=all)
    finally:
        await delivery.stop(5.0)
    records = await consume_all(kafka_broker.bootstrap_servers, topic, 3)
    assert [(r.key.decode(), json.loads(r.value)) for r in records] == [
        (a["id"], a) for a in lines.alerts
    ]
    assert worker.results["delivered"] == 3 and worker.results["failed"] == 0
