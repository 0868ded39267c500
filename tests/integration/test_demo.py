"""The README's first command, ``statuswatch demo``: a local broker, simulated gateway
traffic with the April 2023 403 freeze, the detector, and the alert on stdout, on
``/metrics`` and in a real Alertmanager, with nothing set up by hand."""

from __future__ import annotations

import subprocess
import sys

from tests.integration.support import free_port, installed


def test_the_demo_pages_the_freeze_on_stdout_metrics_and_alertmanager() -> None:
    installed("prometheus-alertmanager", "prometheus-alertmanager")
    done = subprocess.run(
        [sys.executable, "-m", "statuswatch", "demo", "--metrics-port", str(free_port()),
         "--live-seconds", "40"],
        capture_output=True, text=True, timeout=900, check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "[FIRING] 403 up in fleet" in out, out[-4000:]
    assert ('statuswatch_alert_active{code="403",direction="up",scope="fleet",'
            'signal="share"} 1.0') in out, out[-4000:]
    assert "{alertname=StatusCodeAnomaly,code=403,direction=up," in out, out[-4000:]
