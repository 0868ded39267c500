"""Compressed topics written by Apache Kafka's own console producer, read by `statuswatch run`.

Production shippers (Vector, Fluent Bit, librdkafka, Kong's Kafka plugins) compress their
batches; each codec must be readable by a plain install, and a batch that cannot be read
must be reported as what it is, never as a broker outage.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

import pytest

from statuswatch.localbroker import LocalKafka
from tests.data import APACHE_CODES, APACHE_LOG, apache_lines
from tests.integration.support import (
    apache_run_config,
    code_counts,
    free_port,
    get,
    installed,
    records_read_once,
    sample,
    scrape,
    statuswatch_run,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

CODECS = ("gzip", "snappy", "lz4", "zstd")


Producer = Callable[[LocalKafka, str, str, Path], "subprocess.Popen[bytes]"]


def console_produce(
    broker: LocalKafka, topic: str, codec: str, lines: Path
) -> subprocess.Popen[bytes]:
    """Apache Kafka's ConsoleProducer writing each line of ``lines`` as one record."""
    with lines.open("rb") as stdin:
        return subprocess.Popen(
            broker.tool_command(
                "kafka.tools.ConsoleProducer", "--bootstrap-server", broker.bootstrap_servers,
                "--topic", topic, "--compression-codec", codec,
                "--producer-property", "linger.ms=50",
            ),
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )


def librdkafka_produce(
    broker: LocalKafka, topic: str, codec: str, lines: Path
) -> subprocess.Popen[bytes]:
    """librdkafka, the client Fluent Bit, Vector and most log shippers embed, through its
    own command-line producer (kcat, a Debian package): each line of ``lines`` one record."""
    return subprocess.Popen(
        [installed("kcat", "kcat"), "-P", "-b", broker.bootstrap_servers, "-t", topic,
         "-X", f"compression.codec={codec}", "-X", "linger.ms=50", "-l", str(lines)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def produce_all(
    broker: LocalKafka, topics: dict[str, str], lines: Path,
    producer: Producer = console_produce,
) -> None:
    """Run one producer per codec at once (a JVM start costs seconds)."""
    producers = {codec: producer(broker, t, codec, lines) for codec, t in topics.items()}
    for codec, proc in producers.items():
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"{producer.__name__} {codec}:\n{out!r}"


def unique_topics(broker: LocalKafka, stem: str, codecs: Sequence[str]) -> dict[str, str]:
    topics = {codec: f"{stem}-{codec}-{time.monotonic_ns()}" for codec in codecs}
    for name in topics.values():
        broker.create_topic(name)
    return topics


@pytest.mark.parametrize("producer", [console_produce, librdkafka_produce],
                         ids=["kafka-console-producer", "librdkafka"])
def test_every_codec_of_real_producers_is_read(
    kafka_broker: LocalKafka, tmp_path: Path, producer: Producer
):
    lines = tmp_path / "apache.log"
    lines.write_bytes(b"\n".join(apache_lines()) + b"\n")
    assert APACHE_LOG.is_file()
    topics = unique_topics(kafka_broker, "codec", CODECS)
    produce_all(kafka_broker, topics, lines, producer)

    ports = {codec: free_port() for codec in CODECS}
    with ExitStack() as stack:
        for codec, topic in topics.items():
            stack.enter_context(statuswatch_run(
                apache_run_config(tmp_path, kafka_broker, topic, ports[codec]),
                log=tmp_path / f"{codec}.log",
            ))
        for codec, port in ports.items():
            def all_read(port: int = port) -> bool:
                return records_read_once(port) == 10_000

            wait_for(all_read, 120, lambda codec=codec: f"10,000 {codec} records:\n"
                     + (tmp_path / f"{codec}.log").read_text()[-2000:])
            wait_for(lambda port=port: get(port, "/ready")[0] == 200, 30, f"{codec}: /ready")
            body = scrape(port)
            # no record read twice (a rebalance would re-read), so the counts are exact
            assert sample(body, "statuswatch_records_reread_total") == 0, codec
            assert sample(body, "statuswatch_records_total") == 10_000, codec
            assert code_counts(body) == APACHE_CODES, codec
            invalid = re.findall(r"^statuswatch_invalid_records_total\{.*\} (\S+)$", body, re.M)
            assert invalid and all(float(n) == 0 for n in invalid), codec
            assert sample(body, "statuswatch_broker_up") == 1.0, codec


@pytest.mark.parametrize("command", ["run", "aggregate"])
def test_a_codec_the_install_lacks_is_reported_once_and_ends_the_process(
    kafka_broker: LocalKafka, tmp_path: Path, command: str
):
    """An install without the codec libraries (cramjam made unimportable, as if absent)
    reading a zstd topic: the cause on /ready, in a metric and in one ERROR line; the
    broker still counts as up; the watchdog exits non-zero with the cause last. The
    same for a stage-1 worker."""
    lines = tmp_path / "apache.log"
    lines.write_bytes(b"\n".join(apache_lines()[:2000]) + b"\n")
    topics = unique_topics(kafka_broker, "nocodec", ["zstd"])
    produce_all(kafka_broker, topics, lines)
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "cramjam.py").write_text('raise ImportError("cramjam is not installed")\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(stubs), *filter(None, [os.environ.get("PYTHONPATH")])])}

    port, timeout_s = free_port(), 12
    extra = f"health:\n  stuck_timeout_seconds: {timeout_s}\n"
    if command == "aggregate":
        kafka_broker.create_topic(f"{topics['zstd']}-aggregates")
        extra += f"aggregate:\n  topic: {topics['zstd']}-aggregates\n"
    config = apache_run_config(tmp_path, kafka_broker, topics["zstd"], port, extra)
    log = tmp_path / "run.log"
    with statuswatch_run(config, env=env, log=log, command=command) as proc:
        _, body = wait_for(
            lambda: (r := get(port, "/ready"))[0] == 503 and "unsupported_codec" in r[1] and r,
            60, lambda: f"/ready to name the codec:\n{log.read_text()[-2000:]}",
        )
        assert "topic=" + topics["zstd"] in body and "partition=0 offset=0" in body, body
        assert "Libraries for zstd compression codec not found" in body, body
        metrics = scrape(port)
        assert sample(metrics, "statuswatch_broker_up") == 1.0
        unreadable = dict(re.findall(
            r'^statuswatch_consumer_unreadable_partitions\{reason="(\w+)"\} (\S+)$', metrics, re.M))
        assert unreadable == {
            "unsupported_codec": "1.0", "corrupt_batch": "0.0", "record_too_large": "0.0"}
        assert proc.wait(timeout=timeout_s + 30) == 3
    text = log.read_text()
    errors = [x for x in text.splitlines() if " ERROR " in x and "retrying cannot fix" in x]
    assert len(errors) == 1, text[-3000:]
    assert f"topic={topics['zstd']} partition=0 offset=0" in errors[0]
    assert "poll failed" not in text
    assert "not ready: no fetch response" not in text  # never taken for a broker outage
    last = text.rstrip().splitlines()[-1]
    assert " ERROR " in last and "stopped by the watchdog (exit 3)" in last, last
    assert "unsupported_codec" in last and "Libraries for zstd" in last, last


def status_counts(lines: Sequence[bytes]) -> dict[int, int]:
    """Per-code counts of combined-log lines (the code follows the quoted request)."""
    counts = Counter(int(m[1]) for x in lines if (m := re.search(rb'" (\d{3}) ', x)))
    return dict(counts)


async def test_an_unreadable_partition_does_not_hold_up_or_lose_the_others(
    kafka_broker: LocalKafka, tmp_path: Path
):
    """Partition 0 gzip (readable), partition 1 zstd (not, in an install without the codec):
    every record of partition 0 is counted exactly once, though aiokafka drops the records
    it had drained from partition 0 when partition 1 raises in the same poll."""
    from aiokafka import AIOKafkaProducer

    lines = apache_lines()
    assert status_counts(lines) == APACHE_CODES
    readable, unreadable = lines[:2000], lines[2000:3000]
    topic = f"mixed-{time.monotonic_ns()}"
    await kafka_broker.acreate_topic(topic, partitions=2)
    for partition, codec, values in ((0, "gzip", readable), (1, "zstd", unreadable)):
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers,
                                    compression_type=codec, linger_ms=20)
        await producer.start()
        try:
            for value in values:
                await producer.send(topic, value, partition=partition)
            await producer.flush()
        finally:
            await producer.stop()

    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "cramjam.py").write_text('raise ImportError("cramjam is not installed")\n')
    env = {**os.environ, "PYTHONPATH": str(stubs)}
    port, log = free_port(), tmp_path / "run.log"
    config = apache_run_config(tmp_path, kafka_broker, topic, port)
    with statuswatch_run(config, env=env, log=log):
        await asyncio.to_thread(
            wait_for, lambda: records_read_once(port) == len(readable), 60,
            lambda: f"{len(readable)} records of partition 0:\n{log.read_text()[-2000:]}",
        )
        await asyncio.sleep(2)  # nothing more comes
        body = scrape(port)
        assert records_read_once(port) == len(readable)
        # the lost records were never processed: reading them again is no re-read
        assert sample(body, "statuswatch_records_reread_total") == 0
        assert code_counts(body) == status_counts(readable)
        assert 'statuswatch_consumer_unreadable_partitions{reason="unsupported_codec"} 1.0' \
            in body
        assert sample(body, "statuswatch_broker_up") == 1.0
        status, reason = get(port, "/ready")
        assert status == 503 and f"topic={topic} partition=1 offset=0" in reason


async def test_a_corrupt_batch_on_the_broker_is_reported_as_corrupt_not_as_an_outage(
    kafka_broker: LocalKafka, topic: str, tmp_path: Path
):
    """One byte of a record batch flipped in the broker's segment file: the consumer's
    CRC check fails on every fetch; statuswatch names it and exits after the timeout."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers, linger_ms=50)
    await producer.start()
    try:
        for value in apache_lines()[:200]:
            await producer.send(topic, value)
        await producer.flush()
    finally:
        await producer.stop()
    (segment,) = kafka_broker.segment_files(topic)
    data = bytearray(segment.read_bytes())
    assert len(data) > 1000
    data[500] ^= 0xFF  # inside the first batch's records (its header is 61 bytes)
    with segment.open("r+b") as out:  # in place: the broker serves the page cache
        out.seek(500)
        out.write(bytes([data[500]]))

    port, timeout_s, log = free_port(), 8, tmp_path / "run.log"
    config = apache_run_config(tmp_path, kafka_broker, topic, port,
                        f"health:\n  stuck_timeout_seconds: {timeout_s}\n")
    with statuswatch_run(config, log=log) as proc:
        _, body = await asyncio.to_thread(
            wait_for, lambda: (r := get(port, "/ready"))[0] == 503 and "corrupt_batch" in r[1]
            and r, 60, lambda: f"/ready to name the corrupt batch:\n{log.read_text()[-2000:]}",
        )
        assert f"topic={topic} partition=0 offset=0: corrupt_batch" in body, body
        metrics = scrape(port)
        assert 'statuswatch_consumer_unreadable_partitions{reason="corrupt_batch"} 1.0' in metrics
        assert sample(metrics, "statuswatch_broker_up") == 1.0
        assert await asyncio.to_thread(proc.wait, timeout_s + 30) == 3
    last = log.read_text().rstrip().splitlines()[-1]
    assert "stopped by the watchdog (exit 3)" in last and "corrupt_batch" in last, last
