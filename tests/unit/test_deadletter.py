"""The dead-letter queue: bounded in flight, retried, and flushed before offsets commit."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from statuswatch.config import KafkaConfig, Settings
from statuswatch.core.columns import InvalidRecord
from statuswatch.core.detector import Detector
from statuswatch.shell.deadletter import DeadLetterQueue
from statuswatch.shell.runtime import KafkaRunner
from statuswatch.shell.sinks import ListSink
from statuswatch.shell.sources import RawBatch


class FakeProducer:
    """Accepts sends at once; deliveries complete only when the test says so."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, list[tuple[str, bytes]]]] = []
        self.futures: list[asyncio.Future[Any]] = []
        self.stopped = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: bytes, headers: Any) -> Any:
        fut = asyncio.get_running_loop().create_future()
        self.sent.append((topic, value, headers))
        self.futures.append(fut)
        return fut

    def deliver(self, fail: bool = False) -> int:
        n = 0
        for fut in self.futures:
            if not fut.done():
                if fail:
                    fut.set_exception(ConnectionError("broker gone"))
                else:
                    fut.set_result(None)
                n += 1
        return n


def config(**kw: Any) -> KafkaConfig:
    return KafkaConfig.model_validate({"dead_letter_topic": "dlq", **kw})


def batch(n: int, value: bytes = b"junk") -> tuple[RawBatch, list[InvalidRecord]]:
    raw = RawBatch("logs", 1, np.arange(500, 500 + n, dtype=np.int64), [value] * n)
    return raw, [InvalidRecord(i, "invalid_json") for i in range(n)]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_in_flight_is_bounded_and_flush_waits_for_acks():
    producer = FakeProducer()
    dlq = DeadLetterQueue(config(dead_letter_max_in_flight=10, max_batch_records=5),
                          lambda cfg: producer)
    await dlq.start()
    dlq.submit(*batch(16))  # the in-flight bound plus more than one batch
    await settle()
    assert len(producer.sent) == 10  # no more than the in-flight bound
    assert not await dlq.flush(timeout=0.05)  # nothing acknowledged yet
    # over the bound (in flight + one batch): the consume loop has to wait
    stop = asyncio.Event()
    waiter = asyncio.ensure_future(dlq.wait_for_room(stop))
    await settle()
    assert not waiter.done()
    producer.deliver()
    await settle()
    assert waiter.done()
    assert len(producer.sent) == 16
    producer.deliver()
    assert await dlq.flush(timeout=1)
    assert dlq.produced == 16 and dlq.pending == 0
    topic, value, headers = producer.sent[3]
    assert (topic, value) == ("dlq", b"junk")
    assert dict(headers)["statuswatch.offset"] == b"503"
    await dlq.stop()
    assert producer.stopped


async def test_failed_letters_are_retried_until_delivered():
    producer = FakeProducer()
    dlq = DeadLetterQueue(config(), lambda cfg: producer)
    await dlq.start()
    dlq.submit(*batch(3))
    await settle()
    producer.deliver(fail=True)
    await settle()
    assert not await dlq.flush(timeout=0.05)
    assert dlq.failures == 3 and dlq.pending == 3
    await settle()
    producer.deliver()
    assert await dlq.flush(timeout=1)
    assert len(producer.sent) == 6 and dlq.produced == 3
    await dlq.stop()


async def test_stop_ends_the_wait_for_room():
    producer = FakeProducer()
    dlq = DeadLetterQueue(config(dead_letter_max_in_flight=1, max_batch_records=1),
                          lambda cfg: producer)
    await dlq.start()
    dlq.submit(*batch(5))
    stop = asyncio.Event()
    waiter = asyncio.ensure_future(dlq.wait_for_room(stop))
    await settle()
    assert not waiter.done()
    stop.set()
    await asyncio.wait_for(waiter, 1)
    await dlq.stop(timeout=0.05)  # undelivered at shutdown: logged, not raised


async def test_offsets_are_committed_only_after_the_dead_letters_are_acknowledged():
    settings = Settings(kafka={"dead_letter_topic": "dlq", "dead_letter_timeout_seconds": 0.1})
    runner = KafkaRunner(settings, Detector(settings), ListSink())
    producer = FakeProducer()
    assert runner.dead_letters is not None
    runner.dead_letters._factory = lambda cfg: producer
    await runner.dead_letters.start()
    commits: list[dict[int, int]] = []

    class Source:
        async def commit(self, offsets: dict[int, int]) -> None:
            commits.append(dict(offsets))

    runner.source = Source()  # type: ignore[assignment]
    raw, bad = batch(2)
    runner.dead_letters.submit(raw, bad)
    runner.offsets.record(1, raw.offsets)
    await runner.checkpoint.commit()
    assert commits == []  # letters not acknowledged: no commit
    producer.deliver()
    await runner.checkpoint.commit()
    assert commits == [{1: 502}]
    await runner.dead_letters.stop()
