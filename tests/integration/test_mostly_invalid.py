"""A renamed time field, end to end: real Kafka -> `statuswatch run` (or a stage-1
`statuswatch aggregate` worker) -> /ready, /metrics, log.

nginx-json records (``statuswatch.simulate``) are produced to a topic and
``statuswatch run`` or ``aggregate`` (a subprocess, default ``decode.fields``) reads
them. Then
the "gateway upgrade" renames ``time`` to ``@timestamp``: every new record is
rejected. /ready must answer 503 naming the reason, the field and the key to
set, /metrics must show the rejected share, and the log must hold exactly one
ERROR line about it, naming the topic, partition and an offset.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from statuswatch.simulate import SimSpec, encode, generate
from tests.integration.support import (
    free_port,
    get,
    sample,
    scrape,
    start_run,
    stop_run,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

START_MS = 1_680_566_400_000


def nginx_lines(seconds: int) -> list[bytes]:
    spec = SimSpec(seed=5, rate=50.0, n_apps=10)
    out: list[bytes] = []
    for chunk in generate(spec, START_MS, START_MS + seconds * 1000):
        out.extend(encode("nginx-json", chunk, spec))
    return out


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for value in values:
            await producer.send(topic, value=value, partition=0)
        await producer.flush()
    finally:
        await producer.stop()


#: per command: its counter of records read and of records rejected
COUNTERS = {
    "run": ("statuswatch_records_total", "statuswatch_invalid_records_total"),
    "aggregate": ("statuswatch_aggregate_records_total",
                  "statuswatch_aggregate_invalid_records_total"),
}


@pytest.mark.parametrize("command", ["run", "aggregate"])
async def test_a_renamed_time_field_is_reported_not_mistaken_for_a_traffic_drop(
    kafka_broker, topic, tmp_path: Path, command: str
):
    records_total, invalid_total = COUNTERS[command]
    good = nginx_lines(60)
    assert all(b'"time":"' in v for v in good)
    renamed = [v.replace(b'"time":"', b'"@timestamp":"') for v in nginx_lines(60)]
    await produce(kafka_broker.bootstrap_servers, topic, good)

    port = free_port()
    config = tmp_path / "sw.yaml"
    config.write_text(
        f"kafka:\n  bootstrap_servers: {kafka_broker.bootstrap_servers}\n  topic: {topic}\n"
        f"  group_id: sw-{topic}\n"
        "decode:\n  format: nginx-json\n  fields: {service: service, route: route, app: app}\n"
        f"alerts:\n  output: {tmp_path / 'alerts.jsonl'}\n"
        f"metrics:\n  port: {port}\n"
    )
    if command == "aggregate":
        await kafka_broker.acreate_topic(f"{topic}-aggregates", partitions=1)
        with config.open("a") as out:
            out.write(f"aggregate:\n  topic: {topic}-aggregates\n  group_id: agg-{topic}\n")
    # the log goes to a file: a pipe nobody reads would fill up with the "skipped record"
    # warnings and block the process
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log_file:
        proc = start_run(config, stderr=log_file, command=command)
    try:
        def read_all_good() -> bool:
            try:
                body = scrape(port)
            except ConnectionError:
                return False
            return (sample(body, records_total) or 0) >= len(good)

        wait_for(read_all_good, 120, "the good records to be read")
        wait_for(lambda: get(port, "/ready")[0] == 200, 60, "/ready 200")
        body = scrape(port)
        assert sample(body, "statuswatch_input_mostly_invalid") == 0.0
        assert sum(int(float(v)) for v in re.findall(
            rf'{invalid_total}\{{reason="[a-z_]+"\}} ([0-9.e+]+)', body)) == 0

        await produce(kafka_broker.bootstrap_servers, topic, renamed)
        _, reason = wait_for(
            lambda: (r := get(port, "/ready"))[0] == 503 and "mostly invalid" in r[1] and r,
            60, lambda: f"/ready 503 (now {get(port, '/ready')})",
        )
        assert "top reason missing_field" in reason
        assert "field msec/time_iso8601/time_local/time, decode.fields.timestamp" in reason
        assert "hint: set decode.fields.timestamp" in reason
        body = scrape(port)
        assert sample(body, "statuswatch_input_mostly_invalid") == 1.0
        ratio = sample(body, "statuswatch_input_rejected_ratio") or 0.0
        assert 0.5 <= ratio <= 1.0
        assert f'{invalid_total}{{reason="missing_field"}} {float(len(renamed))}' in body
    finally:
        stop_run(proc)
    log = log_path.read_text(errors="replace")
    assert proc.returncode == 0, log[-2000:]
    # statuswatch's own ERROR lines (aiokafka may log one while the group forms)
    errors = [line for line in log.splitlines() if " ERROR statuswatch." in line]
    assert len(errors) == 1, errors
    assert "input mostly invalid" in errors[0] and "set decode.fields.timestamp" in errors[0]
    assert re.search(rf"topic={re.escape(topic)} partition=0 offset=\d+", errors[0]), errors[0]

