"""Crash safety: `kill -9` at random moments, restart, and nothing is lost or counted twice.

The per-window counts written by the killed-and-restarted process must equal
both a plain oracle computed from the input with ``json.loads`` and an
uninterrupted in-process run; its alerts must equal the uninterrupted run's.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from statuswatch.config import Settings
from statuswatch.core.detector import Detector
from statuswatch.shell.backtest import backtest
from statuswatch.shell.sinks import ListSink
from statuswatch.shell.sources import read_file_batches
from tests.integration.support import free_port, metric

pytestmark = [pytest.mark.broker, pytest.mark.slow]

START = 1_680_566_400
DURATION_S = 2_400
RATE = 150
SIM_ARGS = ["--rate", str(RATE), "--duration", str(DURATION_S), "--start", str(START),
            "--seed", "21", "--apps", "80",
            "--incident", "freeze:start=1500,duration=300,fraction=0.5"]
KILLS = 6
WINDOW_S = 10



def oracle_windows(path: Path) -> dict[float, Counter]:
    """Per-window counts by (scope, code), computed plainly from the raw records."""
    levels = [[], ["service"], ["service", "route"], ["app"]]
    out: dict[float, Counter] = {}
    for line in path.read_bytes().splitlines():
        rec = json.loads(line)
        start = rec["started_at"] // 1000 // WINDOW_S * WINDOW_S
        dims = {"service": rec["service"]["name"], "route": rec["route"]["name"],
                "app": rec["consumer"]["id"]}
        for level in levels:
            scope = json.dumps({d: dims[d] for d in level}, sort_keys=True)
            out.setdefault(float(start), Counter())[(scope, rec["response"]["status"])] += 1
    return out


def as_counters(lines: list[dict]) -> dict[float, Counter]:
    out: dict[float, Counter] = {}
    for w in lines:
        out[w["start"]] = Counter({(json.dumps(s, sort_keys=True), code): n
                                   for s, code, n in w["counts"]})
    return out



def parsed_lines(path: Path, kills: int) -> list[dict]:
    """The JSON lines of an output; a kill may have cut one line short per kill (the
    next run starts a new line; the cut record is written again from the snapshot)."""
    lines, torn = [], 0
    for text in path.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            torn += 1
    assert torn <= kills, f"{torn} unreadable lines in {path.name} after {kills} kills"
    return lines


@pytest.mark.parametrize("topic", [3], indirect=True)
def test_kill_9_and_restart_equals_uninterrupted_run_and_oracle(kafka_broker, topic, tmp_path):
    records = tmp_path / "records.jsonl"
    subprocess.run([sys.executable, "-m", "statuswatch", "simulate", *SIM_ARGS,
                    "--out", str(records)], check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "statuswatch", "simulate", *SIM_ARGS,
                    "--kafka", kafka_broker.bootstrap_servers, "--topic", topic],
                   check=True, timeout=180)

    # The uninterrupted reference, in process, over the same records.
    reference_windows: list[dict] = []
    detector = Detector(Settings())
    detector.window_listener = lambda w: reference_windows.append({
        "start": w.start_ms / 1000,
        "counts": [[detector.scopes.labels[r], detector.codes.codes[c], int(w.counts[r, c])]
                   for r, c in zip(*w.counts.nonzero(), strict=True)],
    })
    reference_alerts = ListSink()
    backtest(detector, read_file_batches(str(records)), reference_alerts)

    port = free_port()
    windows_out, alerts_out = tmp_path / "windows.jsonl", tmp_path / "alerts.jsonl"
    config = tmp_path / "sw.yaml"
    config.write_text(
        f"kafka:\n  bootstrap_servers: {kafka_broker.bootstrap_servers}\n  topic: {topic}\n"
        # a killed member holds its partitions until its session expires: keep that short
        f"  group_id: crash-{topic}\n  max_batch_records: 300\n  session_timeout_ms: 10000\n"
        "window:\n  idle_timeout_seconds: 10\n"
        f"alerts:\n  output: {alerts_out}\n  windows_output: {windows_out}\n"
        f"state:\n  dir: {tmp_path / 'state'}\n  interval_seconds: 0.3\n"
        f"metrics:\n  port: {port}\n"
    )
    rng = random.Random(1234)
    expected_windows = DURATION_S // WINDOW_S
    kills = 0
    while True:
        log_path = tmp_path / f"run{kills}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "statuswatch", "run", "--config",
                                     str(config)], stderr=log)
        if kills < KILLS:
            # Kill once it is consuming, at a random moment (mid-batch, mid-snapshot, ...).
            # Ready: it holds partitions and gets fetch responses (the record count is no
            # sign of that: it comes back from the snapshot).
            deadline = time.monotonic() + 90
            while metric(port, "statuswatch_ready") != 1:
                assert time.monotonic() < deadline, "restarted process never became ready"
                assert proc.poll() is None, log_path.read_text()[-3000:]
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            kills += 1
            continue
        deadline = time.monotonic() + 180
        while (metric(port, "statuswatch_windows_closed_total") or 0) < expected_windows:
            assert time.monotonic() < deadline, "windows did not all close"
            assert proc.poll() is None, log_path.read_text()[-3000:]
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        break

    lines = parsed_lines(windows_out, kills)
    seen: dict[float, dict] = {}
    for w in lines:  # windows re-emitted after a restart must be identical
        if w["start"] in seen:
            assert seen[w["start"]]["counts"] == w["counts"], f"window {w['start']} changed"
        seen[w["start"]] = w
    got = as_counters(list(seen.values()))
    oracle = oracle_windows(records)
    reference = as_counters(reference_windows)
    got_nonempty = {k: v for k, v in got.items() if v}
    mismatches = sum(got_nonempty.get(k) != v for k, v in oracle.items())
    extra = set(got_nonempty) - set(oracle)
    print(f"\nkill -9 test: {kills} kills; windows compared: {len(oracle)}; "
          f"mismatches: {mismatches}; extra windows: {len(extra)}; "
          f"re-emitted after restarts: {len(lines) - len(seen)}")
    assert kills >= 5
    assert mismatches == 0 and not extra
    assert {k: v for k, v in reference.items() if v} == got_nonempty

    alerts = {(a["id"], a["state"]): a for a in parsed_lines(alerts_out, kills)}
    ref = {(a["id"], a["state"]): a for a in reference_alerts.alerts}
    assert set(alerts) == set(ref)
    assert any(a["code"] == 403 and a["scope"] == {} for a in ref.values())
