"""Poison messages never stall a partition; rejected records go to the dead-letter topic.

Good Kong records (``statuswatch.simulate``) are produced to one partition with
bad values interleaved: invalid JSON, invalid UTF-8, wrong types, statuses 999 /
"abc" / -1, missing fields, 100,000 levels of nesting, a 900 KB value, a null
value (tombstone) and an empty one. ``statuswatch run`` (a subprocess, with
``kafka.dead_letter_topic`` set) must consume every record, count each bad one
by reason on /metrics, count the good ones exactly as a run without the bad
ones does, commit to the end of the partition, and produce each bad record to
the dead-letter topic with headers naming its topic, partition, offset, reason.
A stage-1 ``statuswatch aggregate`` worker must do the same, its dead letters
written in the transactions of its partials (read committed, each once).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from statuswatch.config import Settings
from statuswatch.core.detector import Detector
from statuswatch.simulate import SimSpec, encode, generate
from tests.integration.support import eventually, free_port, scrape, start_run, stop_run

pytestmark = [pytest.mark.broker, pytest.mark.slow]

START_MS = 1_680_566_400_000
DURATION_MS = 120_000
MAX_RECORD_BYTES = 512 * 1024
DLQ_MAX_BYTES = 64 * 1024


def good_records() -> tuple[list[bytes], list[int]]:
    spec = SimSpec(seed=3, rate=40.0, n_apps=20)
    values: list[bytes] = []
    statuses: list[int] = []
    for chunk in generate(spec, START_MS, START_MS + DURATION_MS):
        values.extend(encode("kong", chunk, spec))
        statuses.extend(chunk.status.tolist())
    return values, statuses


def poison(template: bytes) -> list[tuple[bytes | None, str]]:
    """Bad values with the reason each must be counted under."""
    base = json.loads(template)

    def variant(**changes: object) -> bytes:
        rec = json.loads(template)
        for key, value in changes.items():
            if key == "status":
                rec["response"]["status"] = value
            elif value is None:
                rec.pop(key)
            else:
                rec[key] = value
        return json.dumps(rec).encode()

    huge = dict(base, pad="x" * 900_000)  # near the broker's 1 MB message limit
    return [
        (b'{"response": {"status": 200}, "started_at": ', "invalid_json"),
        (b'\xff\xfe{"started_at": 1680566400000, "response": {"status": 200}}', "invalid_utf8"),
        (variant(status=[200]), "wrong_type"),
        (variant(status=999), "status_out_of_range"),
        (variant(status="abc"), "wrong_type"),
        (variant(status=-1), "status_out_of_range"),
        (variant(response=None), "missing_field"),
        (variant(started_at=None), "missing_field"),
        (variant(started_at="yesterday"), "wrong_type"),
        (b"[" * 100_000, "too_deep"),
        (b'{"a":' * 100_000, "too_deep"),
        (json.dumps(huge).encode(), "too_large"),
        (b"[1, 2, 3]", "not_an_object"),
        (None, "invalid_json"),  # a tombstone: no value at all
        (b"", "invalid_json"),
        (b"\x1b[2J\n\x00 not a log line", "invalid_json"),
    ]


async def produce(bootstrap: str, topic: str, values: list[bytes | None]) -> list[int]:
    """Produce in order to partition 0; return each record's offset."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_request_size=1_000_000, linger_ms=5
    )
    await producer.start()
    try:
        # a tombstone (null value) needs a key
        futures = [await producer.send(topic, value=v, key=None if v is not None else b"k",
                                       partition=0) for v in values]
        return [(await f).offset for f in futures]
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, n: int, timeout: float = 30.0,
                     isolation_level: str = "read_uncommitted") -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                isolation_level=isolation_level)
    await consumer.start()
    out: list = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(msgs)
        # nothing beyond the n expected (e.g. letters produced twice)
        for msgs in (await consumer.getmany(timeout_ms=1000)).values():
            out.extend(msgs)
    finally:
        await consumer.stop()
    return out


def metric_values(body: str, name: str, label: str) -> dict[str, float]:
    pattern = re.compile(rf'^{name}\{{{label}="([^"]*)"\}} (\S+)$', re.MULTILINE)
    return {k: float(v) for k, v in pattern.findall(body)}


def metric(body: str, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", body, re.MULTILINE)
    return float(m.group(1)) if m else -1.0


@pytest.mark.parametrize("command", ["run", "aggregate"])
async def test_poison_messages_are_counted_dead_lettered_and_never_stall(
    kafka_broker, topic, tmp_path: Path, command: str
):
    records_total, invalid_total = (
        ("statuswatch_records_total", "statuswatch_invalid_records_total") if command == "run"
        else ("statuswatch_aggregate_records_total", "statuswatch_aggregate_invalid_records_total"))
    bootstrap = kafka_broker.bootstrap_servers
    good, good_status = good_records()
    bad = poison(good[0])
    # interleave: the bad values twice, spread evenly through the good ones
    bad_all = bad + bad
    stride = len(good) // (len(bad_all) + 1)
    values: list[bytes | None] = []
    reasons: list[str | None] = []  # None: a good record
    g = 0
    for value, reason in bad_all:
        values.extend(good[g:g + stride])
        reasons.extend([None] * stride)
        g += stride
        values.append(value)
        reasons.append(reason)
    values.extend(good[g:])
    reasons.extend([None] * (len(good) - g))
    offsets = await produce(bootstrap, topic, values)
    assert offsets == list(range(len(values)))

    dlq = f"{topic}-dlq"
    await kafka_broker.acreate_topic(dlq)
    port, group = free_port(), f"sw-{topic}"
    config = tmp_path / "sw.yaml"
    config.write_text(
        f"kafka:\n  bootstrap_servers: {bootstrap}\n  topic: {topic}\n  group_id: {group}\n"
        f"  dead_letter_topic: {dlq}\n  dead_letter_max_bytes: {DLQ_MAX_BYTES}\n"
        f"decode:\n  format: kong\n  max_record_bytes: {MAX_RECORD_BYTES}\n"
        "window:\n  idle_timeout_seconds: 2\n"
        f"alerts:\n  output: {tmp_path / 'alerts.jsonl'}\n"
        f"metrics:\n  port: {port}\n"
    )
    if command == "aggregate":
        group = f"agg-{topic}"
        await kafka_broker.acreate_topic(f"{topic}-aggregates")
        with config.open("a") as out:
            out.write(f"aggregate:\n  topic: {topic}-aggregates\n  group_id: {group}\n")
    proc = start_run(config, command=command)
    try:
        def everything_read() -> str | None:
            try:
                body = scrape(port)
            except OSError:
                return None
            return body if read_once(body) >= len(values) else None

        def read_once(body: str) -> float:  # a worker's re-reads after a rebalance aside
            reread = max(0.0, metric(body, "statuswatch_aggregate_records_reread_total"))
            return metric(body, records_total) - reread

        body = await eventually(everything_read, 120, "every record to be read")
        assert read_once(body) == len(values)

        # each bad record counted under its reason
        invalid = {k: v for k, v in metric_values(
            body, invalid_total, "reason").items() if v}
        assert invalid == dict(Counter(r for r in reasons if r is not None))

        # the good records exactly as the simulator made them ...
        oracle = Counter(good_status)
        n_bad = sum(r is not None for r in reasons)
        if command == "run":  # stage 1 counts codes in its partials, not on /metrics
            requests = metric_values(body, "statuswatch_requests_total", "code")
            assert {int(k): int(v) for k, v in requests.items()} == dict(oracle)
        # ... and exactly as a run over the good records alone counts them
        alone = Detector(Settings())
        alone.process(good, now_ms=START_MS, offsets=np.arange(len(good), dtype=np.int64))
        assert dict(alone.counters.codes) == dict(oracle)
        assert sum(alone.counters.invalid.values()) == 0

        # the partition is committed to its end: nothing stalls on a poison message
        async def committed() -> int | None:
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                        enable_auto_commit=False)
            await consumer.start()
            try:
                return await consumer.committed(TopicPartition(topic, 0))
            finally:
                await consumer.stop()

        deadline = time.monotonic() + 60
        while (await committed()) != len(values):
            assert time.monotonic() < deadline, "the group never committed to the end"
            await asyncio.sleep(1)
        # committed to the end: every letter was acknowledged before, and is counted
        body = scrape(port)
        if command == "run":
            letters_counted = metric_values(body, "statuswatch_dead_letters_total", "result")
            assert letters_counted["produced"] == n_bad, letters_counted
            assert metric(body, "statuswatch_dead_letters_pending") == 0
        else:
            assert metric(body, "statuswatch_aggregate_dead_letters_total") == n_bad
    finally:
        stderr = stop_run(proc)
    text = stderr.decode()
    assert proc.returncode == 0, text[-3000:]
    # rejected records are logged on single lines with their position, control chars escaped
    skipped = [line for line in text.splitlines() if "skipped record" in line]
    assert skipped and all(f"topic={topic} partition=0 offset=" in line for line in skipped)
    assert "\x1b" not in text

    # every bad record is in the dead-letter topic, with its origin and reason
    n_bad = sum(r is not None for r in reasons)
    letters = await read_topic(bootstrap, dlq, n_bad, isolation_level="read_committed")
    assert len(letters) == n_bad
    seen = set()
    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers}
        assert headers["statuswatch.topic"] == topic
        assert headers["statuswatch.partition"] == "0"
        offset = int(headers["statuswatch.offset"])
        assert reasons[offset] is not None, f"a good record was dead-lettered: {offset}"
        assert headers["statuswatch.reason"] == reasons[offset]
        original = values[offset] or b""
        assert letter.value == original[:DLQ_MAX_BYTES]
        assert headers["statuswatch.size"] == str(len(original))
        assert headers["statuswatch.truncated"] == str(len(original) > DLQ_MAX_BYTES).lower()
        seen.add(offset)
    assert seen == {i for i, r in enumerate(reasons) if r is not None}
