"""Detection latency: from the produce time of an incident's first record to its alert.

    python -m benchmarks.latency [--rate 2000] [--lateness 0] [--window 10] [--quick]

Starts a local broker and a 3-partition topic; produces six minutes of normal
Kong history (event time before now, as fast as it goes: the baselines warm
up), then live traffic paced to the wall clock in 100 ms chunks, in which, at a
window boundary a minute in, half of the apps get 403 on every call (the
simulator's ``freeze``). The real ``KafkaRunner`` consumes all of it in this
process; its ``on_events`` hook stamps each alert with the wall clock.

Latency = wall time of the first firing 403 alert - wall time at which the first
incident record was handed to the producer. An event-time window can only close
once the watermark passes its end plus the allowed lateness, so the floor is
``window + lateness`` after a window's first record; the rest is the pipeline
(producer linger, broker, fetch, decode, windows, scoring).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import uuid
from typing import Any

from benchmarks.common import machine, table
from statuswatch.config import KafkaConfig, Settings, WindowConfig
from statuswatch.core.decide import AlertEvent
from statuswatch.core.detector import Detector
from statuswatch.localbroker import LocalKafka
from statuswatch.shell.runtime import KafkaRunner
from statuswatch.simulate import encode, generate
from statuswatch.simulate.incidents import Incident
from statuswatch.simulate.output import Plan, _make_producer, produce_kafka
from statuswatch.simulate.spec import SimSpec

HISTORY_S = 6 * 60
CHUNK_MS = 100


class NullSink:
    def write(self, events: list[Any]) -> None:
        pass

    def flush(self) -> None:
        pass


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


async def live(bootstrap: str, topic: str, spec: SimSpec, start_ms: int, end_ms: int,
               incident_ms: int, marks: dict[str, int]) -> int:
    producer = _make_producer(bootstrap)
    await producer.start()
    keys = [app.encode() for app in spec.apps]
    sent = 0
    try:
        for chunk in generate(spec, start_ms, end_ms, chunk_ms=CHUNK_MS):
            delay = (chunk.end_ms - wall_ms()) / 1000
            if delay > 0:
                await asyncio.sleep(delay)
            values = encode("kong", chunk, spec)
            apps = chunk.app.tolist()
            first_incident = -1
            in_incident = chunk.ts_ms.size and chunk.ts_ms[-1] >= incident_ms
            if "first_incident" not in marks and in_incident:
                first_incident = int((chunk.ts_ms >= incident_ms).argmax())
            futures = []
            for i, (value, app) in enumerate(zip(values, apps, strict=True)):
                if i == first_incident:
                    marks["first_incident"] = wall_ms()
                futures.append(await producer.send(topic, value=value, key=keys[app]))
            await asyncio.gather(*futures)
            sent += len(values)
    finally:
        await producer.stop()
    return sent


async def main_async(rate: float, lateness: float, window_s: float, after_s: float) -> None:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    broker = LocalKafka()
    await asyncio.to_thread(broker.start, 300)
    try:
        topic = "latency"
        await broker.acreate_topic(topic, partitions=3)
        bootstrap = broker.bootstrap_servers
        window_ms = round(window_s * 1000)
        live_start = wall_ms() + 15_000  # time to produce the history first
        history = Plan(SimSpec(seed=5, rate=rate), "kong", live_start - HISTORY_S * 1000,
                       live_start, realtime=False)
        n_history = await produce_kafka(history, bootstrap, topic)
        incident_ms = (live_start + round(after_s * 1000)) // window_ms * window_ms + window_ms
        live_end = incident_ms + 3 * window_ms + round(lateness * 1000) + 5_000
        freeze = Incident("freeze", incident_ms, live_end + 60_000, code=403, fraction=0.5)
        spec = SimSpec(seed=5, rate=rate, incidents=(freeze,))

        settings = Settings(
            kafka=KafkaConfig(bootstrap_servers=bootstrap, topic=topic,
                              group_id=f"latency-{uuid.uuid4().hex[:8]}"),
            window=WindowConfig(size_seconds=window_s, allowed_lateness_seconds=lateness),
        )
        detector = Detector(settings)
        alerts: list[tuple[int, AlertEvent]] = []

        def on_events(events: list[AlertEvent]) -> None:
            now = wall_ms()
            alerts.extend((now, e) for e in events if e.state == "firing")

        runner = KafkaRunner(settings, detector, NullSink(), on_events=on_events)
        task = asyncio.create_task(runner.run())
        marks: dict[str, int] = {}
        n_live = await live(bootstrap, topic, spec, live_start, live_end, incident_ms, marks)
        await asyncio.sleep(1.0)
        runner.stop()
        await task
        fired = [(t, e) for t, e in alerts
                 if e.code == 403 and e.direction == "up" and e.window_end_ms > incident_ms]
        if not fired or "first_incident" not in marks:
            raise SystemExit(f"no 403 alert fired after the incident ({len(alerts)} alerts)")
        t_alert, event = fired[0]
        latency = (t_alert - marks["first_incident"]) / 1000
        floor = window_s + lateness
        print(f"### detection latency ({rate:,.0f} req/s live, {n_history:,} records of history, "
              f"{n_live:,} live; {machine()})\n")
        print(table(
            ("window", "allowed lateness", "first alert", "latency (produce -> alert)",
             "window + lateness", "pipeline overhead", "target (one window + < 1 s)"),
            [(f"{window_s:g} s", f"{lateness:g} s",
              f"{event.code} {event.direction} scope={event.scope or 'fleet'}",
              f"{latency:.2f} s", f"{floor:g} s", f"{latency - floor:+.2f} s",
              "met" if latency < window_s + 1 else "not met")],
        ))
    finally:
        await asyncio.to_thread(broker.close)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=2000.0, help="requests/s, live and history")
    p.add_argument("--lateness", type=float, default=0.0, help="window.allowed_lateness_seconds")
    p.add_argument("--window", type=float, default=10.0, help="window.size_seconds")
    p.add_argument("--after", type=float, default=30.0, help="seconds of live traffic before it")
    p.add_argument("--quick", action="store_true", help="1,000 requests/s")
    args = p.parse_args(argv)
    rate = 1000.0 if args.quick else args.rate
    asyncio.run(main_async(rate, args.lateness, args.window, args.after))
    return 0


if __name__ == "__main__":
    sys.exit(main())
