"""Start-up failures that need the real broker: one line naming the key, exit non-zero."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from statuswatch.localbroker import LocalKafka

pytestmark = [pytest.mark.broker]


async def test_a_topic_that_does_not_exist_is_one_line_naming_it(
    kafka_broker: LocalKafka, topic: str, tmp_path: Path
):
    from aiokafka import AIOKafkaConsumer

    missing = f"{topic}-missing"
    config = tmp_path / "sw.yaml"
    config.write_text(
        f"kafka:\n  bootstrap_servers: {kafka_broker.bootstrap_servers}\n  topic: {missing}\n"
        "metrics:\n  port: 0\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "statuswatch", "run", "--config", str(config)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("statuswatch: error:")]
    assert f"kafka.topic {missing}: no such topic on {kafka_broker.bootstrap_servers}" in line

    # The check itself created nothing (the broker auto-creates topics on request).
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_broker.bootstrap_servers)
    await consumer.start()
    try:
        topics = await consumer.topics()
    finally:
        await consumer.stop()
    assert topic in topics and missing not in topics
