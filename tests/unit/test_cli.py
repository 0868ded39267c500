"""The command line, run as a user would (subprocesses, real files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def host_port(service: dict[str, Any], container_port: int) -> int:
    """The host port that ``"host:container"`` in ``service["ports"]`` publishes."""
    (published,) = [p for p in service["ports"] if p.endswith(f":{container_port}")]
    return int(published.split(":")[0])


def bind_mounts(service: dict[str, Any]) -> dict[str, tuple[Path, str]]:
    """{container path: (repository path, mode)} of a service's ``./...`` volumes."""
    out = {}
    for volume in service.get("volumes", []):
        source, target, mode = volume.split(":")
        assert source.startswith("./"), volume
        out[target] = (REPO / source, mode)
    return out


def test_docker_compose_is_consistent(monkeypatch):
    from statuswatch.config import load_settings

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {"kafka", "statuswatch", "simulator", "prometheus", "alertmanager",
                             "grafana"}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["alertmanager"]["image"].startswith("prom/alertmanager:")
    assert services["grafana"]["image"].startswith("grafana/grafana-oss:")
    for name in ("statuswatch", "simulator"):
        build = services[name]["build"]
        assert (REPO / build["context"] / build["dockerfile"]).is_file()
    for name, service in services.items():  # every mounted file is in the repository
        for source, mode in bind_mounts(service).values():
            assert source.exists() and mode == "ro", (name, source)

    # statuswatch as the image runs it: the shipped config, overridden by the environment.
    for key, value in services["statuswatch"]["environment"].items():
        monkeypatch.setenv(key, str(value))
    settings = load_settings(REPO / "config" / "statuswatch.yaml")
    assert settings.metrics.host == "0.0.0.0"
    assert host_port(services["statuswatch"], settings.metrics.port) == settings.metrics.port
    prom = yaml.safe_load((REPO / "config" / "prometheus.yml").read_text())
    targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"statuswatch:{settings.metrics.port}"]

    # Both routes reach the compose Alertmanager on the port it listens on (9093).
    assert host_port(services["alertmanager"], 9093) == 9093
    assert "/etc/alertmanager/alertmanager.yml" in bind_mounts(services["alertmanager"])
    (sink,) = settings.alerts.sinks
    assert sink.type == "alertmanager" and sink.urls == ["http://alertmanager:9093"]
    (alerting,) = prom["alerting"]["alertmanagers"]
    assert alerting["static_configs"][0]["targets"] == ["alertmanager:9093"]

    # Grafana: the provisioned datasource is the compose Prometheus, and the dashboard
    # provider reads the directory the dashboard is mounted in.
    grafana_mounts = bind_mounts(services["grafana"])
    provisioning = {target: source for target, (source, _) in grafana_mounts.items()
                    if target.startswith("/etc/grafana/provisioning/")}
    datasources = provisioning["/etc/grafana/provisioning/datasources"]
    (datasource,) = [d for f in datasources.glob("*.yml")
                     for d in yaml.safe_load(f.read_text())["datasources"]]
    assert datasource["type"] == "prometheus" and datasource["isDefault"] is True
    assert datasource["url"] == f"http://prometheus:{host_port(services['prometheus'], 9090)}"
    # $__rate_interval spans at least four scrapes when Grafana knows the scrape interval
    assert datasource["jsonData"]["timeInterval"] == prom["global"]["scrape_interval"]
    dashboards = provisioning["/etc/grafana/provisioning/dashboards"]
    (provider,) = [p for f in dashboards.glob("*.yml")
                   for p in yaml.safe_load(f.read_text())["providers"]]
    (dashboard_target,) = [t for t, (source, _) in grafana_mounts.items()
                           if source == REPO / "config" / "grafana" / "statuswatch.json"]
    assert Path(dashboard_target).parent == Path(provider["options"]["path"])
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == dashboard_target


def test_blas_stays_single_threaded_unless_the_user_says_otherwise(monkeypatch):
    from statuswatch.cli import single_threaded_math

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    single_threaded_math()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    assert os.environ["OMP_NUM_THREADS"] == "4"
