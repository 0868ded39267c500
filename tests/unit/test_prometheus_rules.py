"""The Prometheus alerting rules are valid and behave as their unit tests say (promtool)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "config" / "prometheus" / "statuswatch-rules.yml"
RULE_TESTS = REPO / "config" / "prometheus" / "statuswatch-rules.test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:  # never skip: an unchecked rules file must fail CI
        pytest.fail("promtool is not installed (Debian package 'prometheus'; .ci/run installs it)",
                    pytrace=False)
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120,
                          check=False, cwd=RULES.parent)


def test_rules_are_valid():
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_unit_tests_pass():
    done = promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_unit_tested_and_the_scrape_config_loads_the_rules():
    rules = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tested = {t["alertname"] for case in tests["tests"] for t in case["alert_rule_test"]}
    assert alerts - tested == set()
    prom = yaml.safe_load((REPO / "config" / "prometheus.yml").read_text())
    assert prom["rule_files"] == ["prometheus/statuswatch-rules.yml"]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = compose["services"]["prometheus"]["volumes"]
    # the same relative layout in the container as in the repository
    assert "./config/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    assert ("./config/prometheus/statuswatch-rules.yml:"
            "/etc/prometheus/prometheus/statuswatch-rules.yml:ro") in mounts
    done = promtool("check", "config", str(REPO / "config" / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    # every statuswatch process of the compose file is scraped by that job
    job, = (j for j in prom["scrape_configs"] if j["job_name"] == "statuswatch")
    scraped = {t.split(":")[0] for c in job["static_configs"] for t in c["targets"]}
    scraped |= {n for c in job.get("dns_sd_configs", []) for n in c["names"]}
    ours = {name for name, svc in compose["services"].items()
            if svc.get("build", {}).get("dockerfile") == "config/Dockerfile"
            and svc.get("command", [None])[0] in ("run", "aggregate")}
    assert ours == scraped, (ours, scraped)


def test_compose_alertmanager_config_is_valid_and_prometheus_sends_to_it():
    exe = shutil.which("amtool")
    if exe is None:  # never skip, as for promtool
        pytest.fail("amtool is not installed (Debian package 'prometheus-alertmanager'; .ci/run "
                    "installs it)", pytrace=False)
    config = REPO / "config" / "alertmanager.yml"
    done = subprocess.run([exe, "check-config", str(config)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    prom = yaml.safe_load((REPO / "config" / "prometheus.yml").read_text())
    targets = [t for am in prom["alerting"]["alertmanagers"]
               for s in am["static_configs"] for t in s["targets"]]
    assert targets == ["alertmanager:9093"]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert "./config/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in \
        compose["services"]["alertmanager"]["volumes"]
