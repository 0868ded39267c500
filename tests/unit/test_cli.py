"""The command line, run as a user would (subprocesses, real files)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.data import APACHE_CODES, APACHE_LOG, apache_lines

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


def test_backtest_of_an_rsyslog_file_with_the_envelope_flag(tmp_path):
    """The Apache log as rsyslog writes it to a file (RSYSLOG_FileFormat's header)."""
    framed = tmp_path / "access.log"
    framed.write_bytes(b"".join(b"2026-12-06T05:30:01.000000+00:00 www apache2: " + x + b"\n"
                                for x in apache_lines()))
    counts = {}
    for envelope in ("syslog", "none"):
        summary = tmp_path / f"{envelope}.json"
        result = sw("backtest", "--format", "combined", "--envelope", envelope,
                    "--summary-out", str(summary), str(framed))
        assert result.returncode == 0, result.stderr
        counts[envelope] = json.loads(summary.read_text())
    assert counts["syslog"]["records"] == 10_000 and counts["syslog"]["invalid"] == 0
    assert counts["syslog"]["codes"] == {str(code): n for code, n in APACHE_CODES.items()}
    assert counts["none"]["invalid_by_reason"] == {"unparseable_line": 10_000}


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


# --- start-up failures a user can cause: one line naming the key, no traceback, exit != 0


def without_root_file_access() -> list[str]:
    """A prefix that runs a command as root without the capabilities that let root read
    any file (as a user, a chmod 000 file is unreadable without it)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "setpriv (util-linux) is needed to drop root's file access"
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def run_fails(config: Path | None, *extra: str, prefix: Sequence[str] = ()) -> str:
    """``statuswatch run``'s stderr, asserting a non-zero exit and no traceback."""
    args = ["run", *(["--config", str(config)] if config is not None else []), *extra]
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "statuswatch", *args], capture_output=True,
        timeout=120, check=False, text=True,
    )
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def error_line(stderr: str) -> str:
    (line,) = [x for x in stderr.splitlines() if x.startswith("statuswatch: error:")]
    return line


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sw.yaml"
    path.write_text(text + "metrics:\n  port: 0\n" if "metrics:" not in text else text)
    return path


def test_a_taken_metrics_port_is_one_line_naming_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = error_line(run_fails(None, "--metrics-port", str(port)))
    assert f"metrics.port {port}: cannot listen on 127.0.0.1:{port}" in line
    assert "Address already in use" in line


@pytest.mark.parametrize("problem", ["missing", "a directory", "permission denied", "binary",
                                     "not YAML"])
def test_an_unreadable_config_file_is_one_line_naming_it(tmp_path, problem):
    path, prefix = tmp_path / "sw.yaml", []
    if problem == "a directory":
        path.mkdir()
    elif problem == "permission denied":
        path.write_text("metrics:\n  port: 0\n")
        path.chmod(0)
        prefix = without_root_file_access()
    elif problem == "binary":
        path.write_bytes(APACHE_LOG.read_bytes())
    elif problem == "not YAML":
        path.write_text("kafka: [\n")
    line = error_line(run_fails(path, prefix=prefix))
    assert str(path) in line
    expected = {"missing": "No such file", "a directory": "Is a directory",
                "permission denied": "Permission denied", "binary": "not UTF-8",
                "not YAML": "at line 2"}[problem]
    assert expected in line


def test_a_state_dir_that_cannot_be_written_is_one_line_naming_it(tmp_path):
    regular = tmp_path / "a-file"
    regular.write_text("")
    state = regular / "state"  # under a regular file: cannot exist, even for root
    line = error_line(run_fails(config_file(tmp_path, f"state:\n  dir: {state}\n")))
    assert f"state.dir {state}: not a writable directory" in line


def test_a_broker_address_that_does_not_resolve_is_one_line_naming_it(tmp_path):
    config = config_file(
        tmp_path, "kafka:\n  bootstrap_servers: no-such-broker.invalid:9092\n")
    line = error_line(run_fails(config))
    assert "kafka.bootstrap_servers=no-such-broker.invalid:9092" in line
    assert "no-such-broker.invalid does not resolve" in line


@pytest.mark.parametrize("missing", ["tls_cert_file", "tls_key_file", None])
def test_a_metrics_tls_file_that_cannot_be_used_is_one_line_naming_it(tmp_path, missing):
    files = {key: tmp_path / f"{key}.pem" for key in ("tls_cert_file", "tls_key_file")}
    for key, path in files.items():
        if key != missing:
            path.write_text("not PEM\n")
    config = config_file(tmp_path, "metrics:\n  port: 0\n" + "".join(
        f"  {k}: {v}\n" for k, v in files.items()))
    line = error_line(run_fails(config))
    if missing is None:
        assert "metrics.tls_cert_file" in line and "not a usable certificate and key" in line
    else:
        assert f"metrics.{missing} {files[missing]}: cannot read: No such file" in line


@pytest.mark.parametrize("key", ["output", "windows_output"])
def test_an_alerts_output_that_cannot_be_opened_is_one_line_naming_it(tmp_path, key):
    regular = tmp_path / "a-file"
    regular.write_text("")
    outputs = {"output": tmp_path / "alerts.jsonl", "windows_output": tmp_path / "w.jsonl"}
    outputs[key] = regular / "x.jsonl"
    config = config_file(tmp_path, "alerts:\n" + "".join(
        f"  {k}: {v}\n" for k, v in outputs.items()))
    line = error_line(run_fails(config))
    assert f"alerts.{key}: cannot open" in line and str(regular / "x.jsonl") in line

# -- backtest --compare (what-if) and progress ---------------------------------------

LOOSE_CONFIG = "detect: {fire_score: 3, clear_score: 1.5, k: 1, m: 1, min_excess_count: 2}\n"


@pytest.fixture(scope="module")
def freeze(tmp_path_factory):
    """A simulated 403 freeze: the traffic file and its labels."""
    d = tmp_path_factory.mktemp("freeze")
    sim = sw("simulate", "--rate", "50", "--duration", "900", "--seed", "11",
             "--incident", "freeze:start=600,duration=200,fraction=0.3",
             "--labels-out", str(d / "labels.json"), "--out", str(d / "traffic.jsonl"))
    assert sim.returncode == 0, sim.stderr
    (d / "loose.yaml").write_text(LOOSE_CONFIG)
    return d


def _firing(path):
    return [a for a in map(json.loads, path.read_text().splitlines()) if a["state"] == "firing"]


def test_backtest_compare_reports_what_each_configuration_alone_raises(freeze, tmp_path):
    loose, traffic = str(freeze / "loose.yaml"), str(freeze / "traffic.jsonl")
    runs = {}
    for name, config in (("loose", ["--config", loose]), ("default", [])):
        out = tmp_path / f"{name}.jsonl"
        single = sw("backtest", *config, "--alerts-out", str(out), "--summary-out",
                    str(tmp_path / "s.json"), traffic)
        assert single.returncode == 0, single.stderr
        runs[name] = {a["id"] for a in _firing(out)}
    default_yaml = tmp_path / "default.yaml"
    default_yaml.write_text("{}\n")
    result = sw("backtest", "--config", loose, "--compare", str(default_yaml),
                "--output", "json", traffic)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["configs"] == [loose, str(default_yaml)]
    assert report["config"]["alerts"] == len(runs["loose"])
    assert report["compare"]["alerts"] == len(runs["default"])
    only_loose = {a["id"] for a in report["config"]["only_here"]}
    # an alert both raise has one id (same series and episode): the rest is what differs
    assert only_loose and only_loose <= runs["loose"] - runs["default"]
    assert report["in_both"] + len(only_loose) == len(runs["loose"])
    first = report["config"]["only_here"][0]
    assert {"code", "scope", "direction", "first_window", "score"} <= first.keys()
    assert report["config"]["summary"]["records"] == report["compare"]["summary"]["records"]


def test_backtest_compare_table_with_labels_side_by_side(freeze):
    result = sw("backtest", "--config", str(freeze / "loose.yaml"), "--compare",
                str(REPO / "config" / "statuswatch.yaml"), "--labels",
                str(freeze / "labels.json"), str(freeze / "traffic.jsonl"))
    assert result.returncode == 0, result.stderr
    table = result.stdout.decode()
    lines = {line.split("  ")[0]: line for line in table.splitlines()}
    for row in ("alerts", "recall", "median delay (s)", "false alarms/day", "precision"):
        assert row in lines, table
    assert "1.00 (1/1)" in lines["recall"]
    assert "only with " in table and "first window" in table
    assert not result.stdout.lstrip().startswith(b"{")  # alerts are not mixed in


def test_backtest_compare_refuses_configs_that_decode_differently(freeze, tmp_path):
    other = tmp_path / "combined.yaml"
    other.write_text("decode: {format: combined}\n")
    result = sw("backtest", "--compare", str(other), str(freeze / "traffic.jsonl"))
    assert result.returncode == 2
    (line,) = result.stderr.decode().strip().splitlines()
    assert "decode.format" in line and str(other) in line


def _stderr_of_backtest(*args: str, terminal: bool) -> bytes:
    """Run a backtest with stderr on a pseudo-terminal (or a pipe); what it wrote there."""
    command = [sys.executable, "-m", "statuswatch", "backtest", *args]
    if not terminal:
        return subprocess.run(command, capture_output=True, timeout=120, check=True).stderr
    import pty  # noqa: F401 - Unix only, like the pseudo-terminal itself

    leader, follower = os.openpty()
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=follower)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the program closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    assert proc.wait(timeout=120) == 0, out
    return out


def test_backtest_progress_on_a_terminal_only(tmp_path):
    args = ("--format", "combined", "--alerts-out", str(tmp_path / "a.jsonl"),
            "--summary-out", str(tmp_path / "s.json"), str(APACHE_LOG))
    shown = _stderr_of_backtest(*args, terminal=True)
    last = shown.rstrip(b"\r\n").rsplit(b"\r", 1)[-1]
    # gzip input: the share read is of the compressed file, all of it at the end
    assert last.startswith(b"10,000 records  event time 2015-05-")
    assert b"rec/s  100%  ETA 0:00:00" in last
    assert shown.endswith(b"\n")
    assert b"\n" not in shown.rstrip(b"\r\n")  # one line, redrawn in place
    assert b"rec/s" not in _stderr_of_backtest(*args, terminal=False)
    assert b"rec/s" not in _stderr_of_backtest("--quiet", *args, terminal=True)


def test_progress_redraws_at_most_four_times_a_second():
    import io

    from statuswatch.core.counters import Counters
    from statuswatch.shell.progress import Progress
    from statuswatch.shell.sources import RawBatch, ReadPosition

    now = [0.0]

    def clock() -> float:
        now[0] += 0.01  # each batch takes 10 ms
        return now[0]

    stream, position = io.StringIO(), ReadPosition(0, 1000)
    counters = Counters()
    progress = Progress(stream, position, clock=clock)
    batch = RawBatch("t", 0, None, [])  # type: ignore[arg-type]
    for i, _ in enumerate(progress.track([batch] * 300, lambda: counters)):
        counters.records, position.read_bytes = (i + 1) * 10, (i + 1) * 3
    text = stream.getvalue()
    assert 10 <= text.count("\r") <= 13  # about 3 s of clock at 4 redraws a second, + final
    assert text.endswith("\n") and "3,000 records" in text.rsplit("\r", 1)[-1]
    assert "90%" in text.rsplit("\r", 1)[-1]
