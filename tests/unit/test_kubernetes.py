"""The Kubernetes sidecar example agrees with the config schema, the image and the HTTP
endpoints: the config it mounts validates, and ports, paths and mounts line up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from statuswatch.config import load_settings
from statuswatch.shell.http import ENDPOINTS
from tests.unit.test_packaging import DOCKERFILE, stages

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "deploy" / "kubernetes" / "statuswatch-sidecar.yaml"


def documents() -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(MANIFEST.read_text())}


def statuswatch_container(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in pod["containers"] if c["name"] == "statuswatch"]
    return container


def test_the_mounted_config_validates_and_matches_ports_paths_and_mounts(tmp_path):
    docs = documents()
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    container = statuswatch_container(pod)
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}

    # The config file named on the command line is the ConfigMap's key, mounted there.
    args = container["args"]
    config_path = Path(args[args.index("--config") + 1])
    config_volume = volumes["config"]["configMap"]["name"]
    assert config_volume == docs["ConfigMap"]["metadata"]["name"]
    assert Path(mounts["config"]["mountPath"]) == config_path.parent
    text = docs["ConfigMap"]["data"][config_path.name]
    local = tmp_path / config_path.name
    local.write_text(text)
    settings = load_settings(local)

    # Probes and scrapes reach the metrics listener on the address and port it binds.
    assert settings.metrics.host == "0.0.0.0"
    (port,) = [p for p in container["ports"] if p["name"] == "metrics"]
    assert port["containerPort"] == settings.metrics.port
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert {"/ready", "/healthz", "/metrics"} <= set(ENDPOINTS)
    annotations = docs["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(settings.metrics.port)
    (endpoint,) = docs["PodMonitor"]["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] in ENDPOINTS

    # State goes to a writable volume: the root filesystem is read-only.
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["allowPrivilegeEscalation"] is False
    assert settings.state.dir is not None
    assert Path(mounts["state"]["mountPath"]) == Path(settings.state.dir)
    assert not mounts["state"].get("readOnly", False)

    # It runs as the image's unprivileged user.
    _, runtime = stages(DOCKERFILE.read_text())
    (user,) = [line.split()[1] for line in runtime if line.upper().startswith("USER ")]
    assert str(security["runAsUser"]) == user
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["resources"]["limits"] and container["resources"]["requests"]
