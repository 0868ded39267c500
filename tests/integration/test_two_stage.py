"""The two-stage layout equals one process: `statuswatch aggregate` x3 + `run --input
aggregates` against `statuswatch run` alone, on one 6-partition topic with an incident.

Per-window counts for every scope and code and the alerts (ids included) must be
identical: undisturbed, with stage-1 workers killed with SIGKILL and stage 2 killed
once (transactions and the snapshot), and with workers joining and leaving.
The traffic is produced in chunks while everything runs, so kills and rebalances
fall mid-run.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.support import free_port, metric

pytestmark = [pytest.mark.broker, pytest.mark.slow]

START = 1_680_566_400
DURATION_S = 1_200
WINDOW_S = 10
SIM_ARGS = ["--rate", "150", "--duration", str(DURATION_S), "--start", str(START),
            "--seed", "14", "--apps", "80",
            "--incident", "freeze:start=600,duration=300,fraction=0.5"]
CHUNKS = 8


@dataclass
class Layout:
    """The processes of one test and where their configs and outputs are."""

    tmp: Path
    bootstrap: str
    topic: str
    aggregates: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    logs: dict[str, list[Path]] = field(default_factory=dict)
    #: records the workers alive at the end read again after a previous owner
    reread: float = 0.0
    #: second partials of a window and partition stage 2 dropped
    duplicates: float = 0.0
    late: float = 0.0

    def config(self, name: str, *, stage2: bool = False, state: bool = False) -> Path:
        port = self.ports.setdefault(name, free_port())
        out = self.tmp / name
        out.mkdir(exist_ok=True)
        text = (
            f"kafka:\n  bootstrap_servers: {self.bootstrap}\n  topic: {self.topic}\n"
            f"  group_id: {name}-{self.topic}\n  session_timeout_ms: 6000\n"
            f"  input: {'aggregates' if stage2 else 'raw'}\n"
            "window:\n  idle_timeout_seconds: 10\n"
            f"aggregate:\n  topic: {self.aggregates}\n  group_id: agg-{self.topic}\n"
            "  transaction_interval_seconds: 0.3\n"
            f"alerts:\n  output: {out / 'alerts.jsonl'}\n"
            f"  windows_output: {out / 'windows.jsonl'}\n"
            f"metrics:\n  port: {port}\n"
        )
        if state:
            text += f"state:\n  dir: {out / 'state'}\n  interval_seconds: 0.5\n"
        path = out / "sw.yaml"
        path.write_text(text)
        return path

    def start(self, name: str, verb: str, config: Path) -> None:
        log = self.tmp / f"{name}.{len(self.logs.get(name, []))}.log"
        self.logs.setdefault(name, []).append(log)
        with log.open("wb") as err:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "statuswatch", verb, "--config", str(config)],
                stdout=subprocess.DEVNULL, stderr=err)

    def log_of(self, name: str) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs[name])

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(timeout=10)

    def stop(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=40)
        assert code == 0, self.log_of(name)[-3000:]

    def alive(self, name: str) -> None:
        proc = self.procs[name]
        assert proc.poll() is None, f"{name} exited {proc.returncode}:\n{self.log_of(name)[-3000:]}"

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()


def windows_of(path: Path) -> dict[float, Counter[tuple[str, int]]]:
    """Per-window counts by (scope, code) of a windows output; a window written again
    after a restart must be identical (a kill may cut one line short)."""
    seen: dict[float, list[list[object]]] = {}
    for text in path.read_text().splitlines():
        try:
            w = json.loads(text)
        except json.JSONDecodeError:
            continue
        if w["start"] in seen:
            assert seen[w["start"]] == w["counts"], f"window {w['start']} written twice, changed"
        seen[w["start"]] = w["counts"]
    return {start: Counter({(json.dumps(s, sort_keys=True), int(c)): int(n) for s, c, n in cells})
            for start, cells in seen.items() if cells}


def alerts_of(path: Path) -> dict[tuple[str, str], dict[str, object]]:
    """The alerts of the produced traffic's windows. After it ends, each process closes
    empty windows on its own idle clock until it is stopped, and the fleet's volume drop
    may fire in one and not yet in the other: not a difference of the layouts."""
    out = {}
    for text in path.read_text().splitlines():
        try:
            a = json.loads(text)
        except json.JSONDecodeError:
            continue
        if a["window_end"] <= START + DURATION_S:
            out[(a["id"], a["state"])] = a
    return out


async def produce(bootstrap: str, topic: str, lines: list[bytes],
                  between: Callable[[int], None]) -> None:
    """``lines`` in ``CHUNKS`` chunks, keyed by app (a gateway's partitioning), calling
    ``between(i)`` after chunk i."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        size = -(-len(lines) // CHUNKS)
        for i in range(CHUNKS):
            futures = []
            for line in lines[i * size:(i + 1) * size]:
                app = json.loads(line)["consumer"]["id"].encode()
                futures.append(await producer.send(topic, value=line, key=app))
            await asyncio.gather(*futures)
            await asyncio.to_thread(between, i)
    finally:
        await producer.stop()


def partials_of(layout: Layout, start_ms: float) -> list[tuple[int | None, ...]]:
    """(aggregates offset, source partition, watermark, fleet requests) of every committed
    partial of the window at ``start_ms``, and of the progress records: what went wrong."""
    from aiokafka import AIOKafkaConsumer

    from statuswatch.core.partials import Partial

    async def read() -> list[tuple[int | None, ...]]:
        consumer = AIOKafkaConsumer(layout.aggregates, bootstrap_servers=layout.bootstrap,
                                    auto_offset_reset="earliest",
                                    isolation_level="read_committed")
        await consumer.start()
        out = []
        try:
            while batches := await consumer.getmany(timeout_ms=2000):
                for msgs in batches.values():
                    for m in msgs:
                        p = Partial.decode(m.value)
                        if p.start_ms is None or abs(p.start_ms - start_ms) <= 30_000:
                            fleet = sum(n for i, _, n in p.cells if not p.scopes[i])
                            out.append((m.offset, p.partition, p.start_ms, p.watermark_ms,
                                        p.idle_ms, fleet, p.records, p.late))
        finally:
            await consumer.stop()
        return out

    return asyncio.run(read())


def windows_closed(port: int) -> float:
    return metric(port, "statuswatch_windows_closed_total") or 0.0


def two_stage(kafka_broker, topic: str, tmp_path: Path,
              between: Callable[[Layout, int], None], *, state: bool = False) -> Layout:
    """Run ``run`` alone and aggregate x3 + stage 2 over the same traffic; ``between``
    disturbs the layout after each produced chunk. Returns the finished layout."""
    aggregates = f"{topic}-aggregates"
    kafka_broker.create_topic(aggregates, 3)
    records = tmp_path / "records.jsonl"
    subprocess.run([sys.executable, "-m", "statuswatch", "simulate", *SIM_ARGS,
                    "--out", str(records)], check=True, timeout=120)
    lines = records.read_bytes().splitlines()
    layout = Layout(tmp_path, kafka_broker.bootstrap_servers, topic, aggregates)
    try:
        layout.start("alone", "run", layout.config("alone"))
        for w in ("w0", "w1", "w2"):
            layout.start(w, "aggregate", layout.config(w))
        layout.start("stage2", "run", layout.config("stage2", stage2=True, state=state))
        # every worker holds partitions before the traffic starts
        deadline = time.monotonic() + 90
        while any(metric(layout.ports[w], "statuswatch_aggregate_partitions") in (None, 0.0)
                  for w in ("w0", "w1", "w2")):
            assert time.monotonic() < deadline, "workers never all held partitions"
            for name in layout.procs:
                layout.alive(name)
            time.sleep(0.25)
        asyncio.run(produce(layout.bootstrap, topic, lines,
                            lambda i: between(layout, i)))
        expected = DURATION_S // WINDOW_S
        deadline = time.monotonic() + 240
        while (windows_closed(layout.ports["alone"]) < expected
               or windows_closed(layout.ports["stage2"]) < expected):
            assert time.monotonic() < deadline, (
                f"windows did not all close: alone {windows_closed(layout.ports['alone'])}, "
                f"stage 2 {windows_closed(layout.ports['stage2'])} of {expected}")
            layout.alive("alone")
            layout.alive("stage2")
            time.sleep(0.5)
        for name, port in layout.ports.items():
            if layout.procs[name].poll() is None and name.startswith("w"):
                layout.reread += metric(port, "statuswatch_aggregate_records_reread_total") or 0
        stage2 = layout.ports["stage2"]
        layout.duplicates = metric(stage2, "statuswatch_partials_duplicate_total") or 0.0
        layout.late = metric(stage2, "statuswatch_late_records_total") or 0.0
        for name in list(layout.procs):
            if layout.procs[name].poll() is None:
                layout.stop(name)
    finally:
        layout.stop_all()
    alone = windows_of(tmp_path / "alone" / "windows.jsonl")
    staged = windows_of(tmp_path / "stage2" / "windows.jsonl")
    assert len(alone) == DURATION_S // WINDOW_S
    differ = [s for s in alone if alone[s] != staged.get(s)]
    print(f"stage 2 dropped {layout.duplicates:.0f} duplicate partials")
    assert not differ and set(staged) == set(alone), (
        f"{len(differ)} windows differ, first {differ[:3]} "
        f"({layout.duplicates:.0f} duplicate partials dropped, {layout.late:.0f} late); "
        f"partials of the first: {partials_of(layout, differ[0] * 1000 if differ else 0)}; "
        f"only in stage 2: {sorted(set(staged) - set(alone))[:3]}")
    ref = alerts_of(tmp_path / "alone" / "alerts.jsonl")
    got = alerts_of(tmp_path / "stage2" / "alerts.jsonl")
    assert any(a["code"] == 403 and a["scope"] == {} for a in ref.values()), "no incident paged"
    assert set(got) == set(ref)
    assert got == ref
    for name in layout.procs:
        assert "Traceback" not in layout.log_of(name), layout.log_of(name)[-3000:]
    return layout


@pytest.mark.parametrize("topic", [6], indirect=True)
def test_aggregate_x3_and_stage_2_equal_run_alone(kafka_broker, topic, tmp_path):
    two_stage(kafka_broker, topic, tmp_path, lambda layout, i: None)


@pytest.mark.parametrize("topic", [6], indirect=True)
def test_kill_9_of_workers_and_stage_2_changes_nothing(kafka_broker, topic, tmp_path):
    kills: list[str] = []

    def disturb(layout: Layout, chunk: int) -> None:
        # mid-run: after chunks 1 and 4 a worker, after chunk 3 stage 2; each restarted
        victim = {1: "w1", 3: "stage2", 4: "w1"}.get(chunk)
        if victim is None:
            return
        time.sleep(0.5)  # let it be busy with the chunk
        layout.kill(victim)
        kills.append(victim)
        stage2 = victim == "stage2"
        layout.start(victim, "run" if stage2 else "aggregate",
                     layout.config(victim, stage2=stage2, state=stage2))

    layout = two_stage(kafka_broker, topic, tmp_path, disturb, state=True)
    assert kills == ["w1", "stage2", "w1"]
    assert layout.reread > 0, "no worker re-read what a killed one had not written"
    assert "restored snapshot" in layout.log_of("stage2")


@pytest.mark.parametrize("topic", [6], indirect=True)
def test_workers_joining_and_leaving_change_nothing(kafka_broker, topic, tmp_path):
    def disturb(layout: Layout, chunk: int) -> None:
        if chunk == 1:  # a fourth worker joins
            layout.start("w3", "aggregate", layout.config("w3"))
        elif chunk == 3:  # one leaves cleanly
            layout.stop("w0")
        elif chunk == 5:  # and another
            layout.stop("w3")
        time.sleep(1.0)

    layout = two_stage(kafka_broker, topic, tmp_path, disturb)
    assert layout.reread > 0, "no worker took over a partition mid-window"
