"""The command line, run as a user would (subprocesses, real files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.data import APACHE_CODES, APACHE_LOG

REPO = Path(__file__).resolve().parents[2]


def sw(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "statuswatch", *args], input=stdin, capture_output=True,
        timeout=120, check=False,
    )


@pytest.mark.parametrize("verb", ["run", "backtest", "simulate", "check-config", "demo"])
def test_every_verb_has_help(verb):
    result = sw(verb, "--help")
    assert result.returncode == 0
    assert b"usage: statuswatch " + verb.encode() in result.stdout


def test_check_config_accepts_the_default_and_names_a_bad_key(tmp_path):
    ok = sw("check-config", "--config", str(REPO / "config" / "statuswatch.yaml"))
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("window: {size_seconds: -5}\n")
    result = sw("check-config", "--config", str(bad))
    assert result.returncode != 0
    assert b"window.size_seconds" in result.stderr
    assert b"Traceback" not in result.stderr


def test_backtest_apache_log_counts_every_code_exactly(tmp_path):
    summary = tmp_path / "s.json"
    result = sw("backtest", "--format", "combined", "--summary-out", str(summary), str(APACHE_LOG))
    assert result.returncode == 0, result.stderr
    s = json.loads(summary.read_text())
    assert s["records"] == 10_000
    assert s["invalid"] == 0
    assert s["codes"] == {str(code): n for code, n in APACHE_CODES.items()}
    assert s["windows"] > 0


def test_simulate_to_stdin_backtest_with_labels(tmp_path):
    labels = tmp_path / "labels.json"
    sim = sw("simulate", "--rate", "100", "--duration", "1500", "--seed", "3",
             "--incident", "freeze:start=1200,duration=200,fraction=0.5",
             "--labels-out", str(labels))
    assert sim.returncode == 0, sim.stderr
    alerts_out = tmp_path / "alerts.jsonl"
    bt = sw("backtest", "--alerts-out", str(alerts_out), "-", stdin=sim.stdout)
    assert bt.returncode == 0, bt.stderr
    summary = json.loads(bt.stderr.decode()[bt.stderr.decode().index("{"):])
    assert summary["invalid"] == 0 and summary["records"] == sim.stdout.count(b"\n")
    alerts = [json.loads(x) for x in alerts_out.read_text().splitlines()]
    (label,) = json.loads(labels.read_text())
    fleet = [a for a in alerts if a["state"] == "firing" and a["scope"] == {}]
    assert [(a["code"], a["direction"]) for a in fleet] == [(403, "up")]
    assert label["start"] <= fleet[0]["window_end"] <= label["start"] + 20


def test_docker_compose_is_consistent():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {"kafka", "statuswatch", "simulator", "prometheus"}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    for name in ("statuswatch", "simulator"):
        build = services[name]["build"]
        assert (REPO / build["context"] / build["dockerfile"]).is_file()
    prom = yaml.safe_load((REPO / "config" / "prometheus.yml").read_text())
    targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["statuswatch:9464"]
    assert "9464:9464" in services["statuswatch"]["ports"]


def test_blas_stays_single_threaded_unless_the_user_says_otherwise(monkeypatch):
    from statuswatch.cli import single_threaded_math

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    single_threaded_math()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    assert os.environ["OMP_NUM_THREADS"] == "4"
