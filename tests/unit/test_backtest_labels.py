"""``statuswatch backtest --labels``: alerts scored against the simulator's labels."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def sw(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "statuswatch", *args], input=stdin, capture_output=True,
        timeout=120, check=False,
    )


def test_backtest_scores_a_simulated_freeze(tmp_path: Path) -> None:
    labels = tmp_path / "labels.json"
    sim = sw("simulate", "--rate", "100", "--duration", "900", "--seed", "5",
             "--incident", "freeze:start=600,duration=200,fraction=0.3",
             "--labels-out", str(labels))
    assert sim.returncode == 0, sim.stderr
    alerts_out, summary_out = tmp_path / "alerts.jsonl", tmp_path / "summary.json"
    bt = sw("backtest", "--alerts-out", str(alerts_out), "--summary-out", str(summary_out),
            "--labels", str(labels), "-", stdin=sim.stdout)
    assert bt.returncode == 0, bt.stderr
    ev = json.loads(summary_out.read_text())["evaluation"]
    (res,) = ev["labels"]
    assert res["name"] == "freeze-1" and res["caught"] is True
    assert 0 <= res["delay_s"] <= 20
    assert ev["caught"] == 1 and ev["labels_total"] == 1 and ev["recall"] == 1.0
    # the alerts still reach --alerts-out, and the evaluation saw the same ones
    written = [json.loads(x) for x in alerts_out.read_text().splitlines()]
    firing = [a for a in written if a["state"] == "firing"]
    assert ev["firing_alerts"] == len(firing) and set(res["alert_ids"]) <= {a["id"] for a in firing}
    # the span is the event time of the input, not of the labels
    assert ev["span"]["start"] < 1680566401 and ev["span"]["end"] > 1680567299
    # the human table goes to stderr
    assert b"freeze-1" in bt.stderr and b"caught 1/1" in bt.stderr


def test_backtest_without_labels_has_no_evaluation(tmp_path: Path) -> None:
    sim = sw("simulate", "--rate", "50", "--duration", "60")
    summary_out = tmp_path / "summary.json"
    bt = sw("backtest", "--alerts-out", str(tmp_path / "a.jsonl"),
            "--summary-out", str(summary_out), "-", stdin=sim.stdout)
    assert bt.returncode == 0, bt.stderr
    assert "evaluation" not in json.loads(summary_out.read_text())


def test_unreadable_labels_fail_cleanly(tmp_path: Path) -> None:
    bad = tmp_path / "labels.json"
    bad.write_text('{"not": "a list"}')
    for path in (str(bad), str(tmp_path / "missing.json")):
        bt = sw("backtest", "--labels", path, "-", stdin=b"")
        assert bt.returncode == 2
        assert b"labels" in bt.stderr and b"Traceback" not in bt.stderr
