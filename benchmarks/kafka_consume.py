"""Through Kafka: the real ``KafkaRunner`` against raw aiokafka consumption of the same topic.

    python -m benchmarks.kafka_consume [--records 1500000] [--repeat 2] [--sweep] [--quick]

Starts a local single-node KRaft broker (``statuswatch.localbroker``), produces
``--records`` simulated Kong records to a 3-partition topic, then alternates, each
pass in a new consumer group reading the topic from the start:

* **raw aiokafka**: ``AIOKafkaConsumer.getmany`` in a loop, records discarded
  (the most any aiokafka-based consumer can do on this machine);
* **statuswatch**: ``statuswatch.shell.runtime.KafkaRunner`` with a ``Detector``:
  decode, windows, baselines, scores, alerts, manual commits.

A pass is timed from its first record to its last (group join excluded).
``--sweep`` adds the tuning table of ``kafka.max_batch_records`` (getmany's
``max_records``) and ``kafka.max_partition_fetch_bytes``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import uuid
from typing import Any

from benchmarks.common import fmt_rate, machine, table
from statuswatch.config import KafkaConfig, Settings
from statuswatch.core.detector import Detector
from statuswatch.localbroker import LocalKafka
from statuswatch.shell.kafka_client import aiokafka_has_c_extension
from statuswatch.shell.runtime import KafkaRunner
from statuswatch.simulate.output import Plan, produce_kafka
from statuswatch.simulate.spec import SimSpec

RATE = 5000.0
START_MS = 1_680_566_400_000
PARTITIONS = 3


class NullSink:
    def write(self, events: list[Any]) -> None:
        pass

    def flush(self) -> None:
        pass


async def produce(bootstrap: str, topic: str, n: int) -> int:
    spec = SimSpec(seed=1, rate=RATE, n_apps=200)
    end = START_MS + round(n / RATE * 1000)
    return await produce_kafka(Plan(spec, "kong", START_MS, end, realtime=False), bootstrap, topic)


async def raw_pass(bootstrap: str, topic: str, n: int, max_records: int,
                   fetch_bytes: int) -> tuple[float, float]:
    """Records/s of getmany-and-discard from first record to last, and CPU s per M records."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"raw-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False, auto_offset_reset="earliest",
        max_partition_fetch_bytes=fetch_bytes,
    )
    await consumer.start()
    try:
        seen, first, t0, c0 = 0, 0, 0.0, 0.0
        while seen < n:
            got = await consumer.getmany(timeout_ms=500, max_records=max_records)
            count = sum(len(msgs) for msgs in got.values())
            if count and not seen:
                t0, c0, first = time.perf_counter(), time.process_time(), count
            seen += count
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        await consumer.stop()
    return (n - first) / wall, cpu / (n - first) * 1e6


async def runner_pass(bootstrap: str, topic: str, n: int, max_records: int,
                      fetch_bytes: int) -> tuple[float, float]:
    settings = Settings(kafka=KafkaConfig(
        bootstrap_servers=bootstrap, topic=topic, group_id=f"sw-{uuid.uuid4().hex[:8]}",
        max_batch_records=max_records, max_partition_fetch_bytes=fetch_bytes,
    ))
    detector = Detector(settings)
    runner = KafkaRunner(settings, detector, NullSink())
    task = asyncio.create_task(runner.run())
    t0 = c0 = 0.0
    first = 0
    try:
        while detector.counters.records < n:
            if task.done():
                task.result()
                raise RuntimeError("the runner stopped early")
            if not first and detector.counters.records:
                t0, c0, first = time.perf_counter(), time.process_time(), detector.counters.records
            await asyncio.sleep(0.002)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        runner.stop()
        await task
    if detector.counters.records != n or sum(detector.counters.invalid.values()):
        raise RuntimeError(f"statuswatch counted {detector.counters.records} of {n}")
    return (n - first) / wall, cpu / (n - first) * 1e6


async def main_async(n: int, repeat: int, sweep: bool) -> None:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    broker = LocalKafka()
    await asyncio.to_thread(broker.start, 300)
    try:
        topic = "bench-kong"
        await broker.acreate_topic(topic, partitions=PARTITIONS)
        t0 = time.perf_counter()
        sent = await produce(broker.bootstrap_servers, topic, n)
        produce_s = time.perf_counter() - t0
        cfg = KafkaConfig()
        default = (cfg.max_batch_records, cfg.max_partition_fetch_bytes)
        raws, runs = [], []
        for _ in range(repeat):  # alternate, so both see the same machine
            raws.append(await raw_pass(broker.bootstrap_servers, topic, sent, *default))
            runs.append(await runner_pass(broker.bootstrap_servers, topic, sent, *default))
        raw = max(raws)
        run = max(runs)
        print(f"### through Kafka: {sent:,} Kong records, {PARTITIONS} partitions, local broker "
              f"(produced in {produce_s:.0f} s; aiokafka C extension: "
              f"{aiokafka_has_c_extension()}; best of {repeat}; {machine()})\n")
        print(table(
            ("consumer", "records/s", "CPU µs/record", "of raw aiokafka"),
            [
                (f"raw aiokafka getmany (max_records={default[0]})", fmt_rate(raw[0]),
                 f"{raw[1]:.2f}", "100%"),
                ("statuswatch KafkaRunner (decode, windows, detection, commits)",
                 fmt_rate(run[0]), f"{run[1]:.2f}", f"{run[0] / raw[0] * 100:.0f}%"),
            ],
        ))
        if sweep:
            rows = []
            for max_records in (500, 2000, 5000, 20000):
                for fetch in (1 << 20, 4 << 20, 16 << 20):
                    r = await runner_pass(broker.bootstrap_servers, topic, sent, max_records, fetch)
                    rows.append((max_records, f"{fetch >> 20} MiB", fmt_rate(r[0]),
                                 f"{r[1]:.2f}", f"{r[0] / raw[0] * 100:.0f}%"))
            print("\n#### consumer tuning (statuswatch KafkaRunner, one pass each)\n")
            print(table(("max_batch_records", "max_partition_fetch_bytes", "records/s",
                         "CPU µs/record", "of raw aiokafka (default settings)"), rows))
    finally:
        await asyncio.to_thread(broker.close)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=1_500_000)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--sweep", action="store_true", help="also the consumer tuning table")
    p.add_argument("--quick", action="store_true", help="300,000 records, one pass each")
    args = p.parse_args(argv)
    n, repeat = (300_000, 1) if args.quick else (args.records, args.repeat)
    asyncio.run(main_async(n, repeat, args.sweep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
