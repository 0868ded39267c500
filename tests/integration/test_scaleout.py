"""Scale-out: two `statuswatch run` processes in one consumer group share a 4-partition topic.

Both get partitions, every record is counted exactly once across the two (the sum
of their ``statuswatch_records_total``, scraped over HTTP), nothing is invalid and
neither logs an error. (Records are produced once both hold their partitions: a
rebalance while records are in flight re-reads uncommitted records by design.)
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from statuswatch.simulate import SimSpec, encode, generate
from tests.integration.support import free_port, records_read_once, scrape, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.slow]

START_MS = 1_680_566_400_000
ASSIGNED = re.compile(r"assigned partitions \[([0-9, ]*)\]")



def scrape_total(port: int, name: str) -> float:
    """The sum of every sample of ``name``, labelled or not."""
    body = scrape(port)
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith((f"{name} ", f"{name}{{"))
    )


def assignment(log: Path) -> set[int] | None:
    """The partitions a process holds now, from its last 'assigned partitions' log line."""
    found = ASSIGNED.findall(log.read_text(errors="replace")) if log.exists() else []
    if not found:
        return None
    return {int(p) for p in found[-1].split(",") if p.strip()}


async def produce(bootstrap: str, topic: str) -> int:
    spec = SimSpec(seed=9, rate=400.0, n_apps=60)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10)
    await producer.start()
    sent = 0
    try:
        for chunk in generate(spec, START_MS, START_MS + 60_000, chunk_ms=10_000):
            futures = []
            for value, app in zip(encode("kong", chunk, spec), chunk.app.tolist(), strict=True):
                futures.append(await producer.send(topic, value=value, key=spec.apps[app].encode()))
            for fut in futures:
                await fut
            sent += len(futures)
    finally:
        await producer.stop()
    return sent


@pytest.mark.parametrize("topic", [4], indirect=True)
async def test_two_processes_share_the_partitions_and_count_each_record_once(
    kafka_broker, topic, tmp_path: Path
):
    ports = [free_port(), free_port()]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port, log in zip(ports, logs, strict=True):
            config = tmp_path / f"sw-{port}.yaml"
            config.write_text(
                f"kafka:\n  bootstrap_servers: {kafka_broker.bootstrap_servers}\n"
                f"  topic: {topic}\n  group_id: scaleout-{topic}\n"
                "  session_timeout_ms: 10000\n"
                "window:\n  idle_timeout_seconds: 2\n"
                f"alerts:\n  output: {tmp_path / f'alerts-{port}.jsonl'}\n"
                f"metrics:\n  port: {port}\n"
            )
            with log.open("wb") as err:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "statuswatch", "run", "--config", str(config)],
                    stdout=subprocess.DEVNULL, stderr=err,
                ))

        def split() -> bool:
            a, b = assignment(logs[0]), assignment(logs[1])
            return bool(a and b and not a & b and a | b == {0, 1, 2, 3})

        wait_for(split, 90, "both processes to hold partitions of the topic")
        sent = await produce(kafka_broker.bootstrap_servers, topic)
        assert sent > 10_000

        def counted() -> list[float] | None:
            totals = [records_read_once(p) or 0.0 for p in ports]
            return totals if sum(totals) >= sent else None

        totals = wait_for(counted, 120, f"{sent} records counted across both processes")
        time.sleep(2.0)  # nothing more arrives: counted once, not more
        totals = [records_read_once(p) or 0.0 for p in ports]
        assert sum(totals) == sent, totals
        assert all(t > 0 for t in totals), totals
        assert split(), "the assignment changed while counting"
        invalid = sum(scrape_total(p, "statuswatch_invalid_records_total") for p in ports)
        assert invalid == 0
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=30) for proc in procs]
    assert codes == [0, 0], [log.read_text(errors="replace")[-2000:] for log in logs]
    for log in logs:
        text = log.read_text(errors="replace")
        # A new group has no coordinator for its first moments: aiokafka logs that
        # transient (and retries) at ERROR level. Anything else is an error.
        errors = [line for line in text.splitlines()
                  if " ERROR " in line and "GroupCoordinatorNotAvailable" not in line]
        assert not errors and "Traceback" not in text, text[-3000:]
