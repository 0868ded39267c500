"""Where a simulation run goes: a stream (a file, stdout) or a Kafka topic, paced to
the wall clock with ``--realtime``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from statuswatch.errors import SinkError
from statuswatch.simulate.encode import encode
from statuswatch.simulate.spec import SimSpec
from statuswatch.simulate.traffic import generate

#: Kafka: sends in flight before we wait for their acknowledgements.
_MAX_PENDING: Final = 20_000
#: Records per chunk (on average) when not pacing to the wall clock.
_CHUNK_RECORDS: Final = 20_000


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run will do, decided from the arguments (and the clock if realtime)."""

    spec: SimSpec
    fmt: str
    start_ms: int
    end_ms: int
    realtime: bool


#: Clock and sleeps, replaced in tests to run ``--realtime`` without waiting.
_monotonic: Callable[[], float] = time.monotonic
_sleep: Callable[[float], None] = time.sleep
_async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


class _Pacer:
    """Maps event time to the wall clock: a chunk is released when it has happened."""

    def __init__(self, start_ms: int) -> None:
        self.start_ms = start_ms
        self.anchor = _monotonic()

    def delay(self, event_ms: int) -> float:
        return self.anchor + (event_ms - self.start_ms) / 1000 - _monotonic()

    def wait(self, event_ms: int) -> None:
        delay = self.delay(event_ms)
        if delay > 0:
            _sleep(delay)

    async def async_wait(self, event_ms: int) -> None:
        delay = self.delay(event_ms)
        if delay > 0:
            await _async_sleep(delay)


def _batches(p: Plan) -> Iterator[tuple[int, list[bytes], list[int]]]:
    """(chunk end, encoded records, app index of each record) for each chunk."""
    # Realtime: release a chunk per second. Otherwise: ~20k records per chunk, which
    # keeps memory bounded (a few MB) and the per-chunk overhead negligible.
    chunk_ms = (
        1000
        if p.realtime
        else max(1, min(5000, round(_CHUNK_RECORDS * 1000 / max(p.spec.rate, 1.0))))
    )
    for chunk in generate(p.spec, p.start_ms, p.end_ms, chunk_ms):
        yield chunk.end_ms, encode(p.fmt, chunk, p.spec), chunk.app.tolist()


def write_stream(p: Plan, out: IO[bytes]) -> int:
    """Write every record of ``p`` to ``out``, one per line; return the count."""
    pacer = _Pacer(p.start_ms) if p.realtime else None
    count = 0
    for end_ms, records, _ in _batches(p):
        if pacer is not None:
            pacer.wait(end_ms)
        if records:
            out.write(b"\n".join(records))
            out.write(b"\n")
            count += len(records)
        if pacer is not None:
            out.flush()
    out.flush()
    return count


def _make_producer(bootstrap: str) -> Any:
    """An aiokafka producer tuned for throughput (replaced by a fake in unit tests)."""
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="statuswatch-simulate",
        acks=1,
        linger_ms=20,
        max_batch_size=512 * 1024,
        max_request_size=1024 * 1024,
        request_timeout_ms=30_000,
    )


async def _settle(pending: list[asyncio.Future[Any]]) -> None:
    results = await asyncio.gather(*pending, return_exceptions=True)
    pending.clear()
    for result in results:
        if isinstance(result, BaseException):
            raise SinkError(f"kafka: delivery failed: {result!r}") from result


async def produce_kafka(p: Plan, bootstrap: str, topic: str, *, keyed: bool = True) -> int:
    """Produce every record of ``p`` to ``topic``, keyed by app id (``keyed``: an app's
    records share a partition) or without a key (spread evenly, as a log shipper
    without a key spreads them); return the count.

    Records carry the broker-assigned (wall clock) Kafka timestamp, not the event
    time: old event times would make the broker's retention delete them at once.
    """
    from aiokafka.errors import KafkaError

    keys: list[bytes | None] = [app.encode() if keyed else None for app in p.spec.apps]
    producer = _make_producer(bootstrap)
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        raise SinkError(f"kafka: cannot connect to {bootstrap}: {exc}") from exc
    pacer = _Pacer(p.start_ms) if p.realtime else None
    pending: list[asyncio.Future[Any]] = []
    count = 0
    try:
        for end_ms, records, apps in _batches(p):
            if pacer is not None:
                await pacer.async_wait(end_ms)
            for value, app in zip(records, apps, strict=True):
                pending.append(await producer.send(topic, value=value, key=keys[app]))
                if len(pending) >= _MAX_PENDING:
                    await _settle(pending)
            count += len(records)
            if pacer is not None:
                await _settle(pending)
        await _settle(pending)
    except KafkaError as exc:
        raise SinkError(f"kafka: producing to {topic!r} failed: {exc}") from exc
    finally:
        for fut in pending:  # only left on error: do not leave exceptions unretrieved
            fut.cancel()
        await producer.stop()
    return count


def write_labels(p: Plan, path: str) -> None:
    """Write the incident labels of ``p`` as a JSON list."""
    text = json.dumps(p.spec.labels(), indent=2) + "\n"
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SinkError(f"cannot write labels to {path}: {exc.strerror}") from exc


def write_output(p: Plan, path: str) -> None:
    """Write every record of ``p`` to the file ``path``, or to stdout for ``-``."""
    if path == "-":
        stdout = sys.stdout.buffer
        try:
            write_stream(p, stdout)
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): stop quietly, like other tools.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return
    try:
        with open(path, "wb", buffering=1 << 20) as out:
            write_stream(p, out)
    except OSError as exc:
        raise SinkError(f"cannot write to {path}: {exc.strerror}") from exc
