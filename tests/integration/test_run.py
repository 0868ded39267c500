"""`statuswatch simulate` -> real Kafka -> `statuswatch run` -> alerts, /metrics, commits."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.integration.support import (
    fleet_wide,
    free_port,
    sample,
    scrape,
    simulate_into,
    start_run,
    stop_run,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

START = 1_680_566_400  # 2023-04-04T00:00:00Z
DURATION_S = 1_500
ONSET_S = 1_200


@pytest.mark.parametrize("topic", [3], indirect=True)
async def test_run_detects_the_403_freeze_and_commits(kafka_broker, topic, tmp_path: Path):
    simulate_into(kafka_broker.bootstrap_servers, topic, "--rate", "200",
                  "--duration", str(DURATION_S), "--start", str(START), "--seed", "4",
                  "--apps", "100",
                  "--incident", f"freeze:start={ONSET_S},duration=300,fraction=0.5")

    alerts_path, port = tmp_path / "alerts.jsonl", free_port()
    group = f"sw-{topic}"
    config = tmp_path / "sw.yaml"
    config.write_text(
        f"kafka:\n  bootstrap_servers: {kafka_broker.bootstrap_servers}\n  topic: {topic}\n"
        f"  group_id: {group}\n"
        "window:\n  idle_timeout_seconds: 10\n"
        f"alerts:\n  output: {alerts_path}\n"
        f"metrics:\n  port: {port}\n"
    )
    proc = start_run(config)
    try:
        def fleet_403() -> list[dict]:
            return [a for a in fleet_wide(alerts_path, 403) if a["state"] == "firing"]

        (alert,) = wait_for(fleet_403, 120, "the fleet-wide 403 alert")
        assert alert["direction"] == "up"
        assert 0 < alert["window_end"] - (START + ONSET_S) <= 20
        assert alert["observed"]["share"] > 0.2
        body = scrape(port)
        active = 'statuswatch_alert_active{code="403",direction="up",scope="fleet",signal="share"}'
        assert f"{active} 1.0" in body
        assert "statuswatch_alerts_fired_total 1.0" in body, alerts_path.read_text()

        # Input went idle: every window closes by wall clock, then all is committable.
        wait_for(lambda: (sample(scrape(port), "statuswatch_windows_closed_total") or 0)
                 >= DURATION_S // 10, 60, "all windows to close")
        body = scrape(port)
        assert (sample(body, "statuswatch_records_total") or 0) > 0.9 * 200 * DURATION_S
        # all three partitions hold the watermark from assignment on: nothing is late
        assert sample(body, "statuswatch_late_records_total") == 0
    finally:
        stderr = stop_run(proc)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert b"stopped cleanly" in stderr

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_broker.bootstrap_servers, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]
        ends = await consumer.end_offsets(tps)
        committed = {tp: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()
    # every window was closed and its alerts flushed, so every record is committed
    assert committed == ends
