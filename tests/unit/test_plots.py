"""``statuswatch backtest --plots``: one picture per alert episode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from statuswatch.config import Settings
from statuswatch.core.detector import Detector
from statuswatch.plots import Mark, SeriesRecorder, file_name, render
from statuswatch.shell.backtest import backtest
from statuswatch.shell.sinks import ListSink
from statuswatch.shell.sources import read_file_batches

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FREEZE_START_S = 1680566400 + 600  # the simulator's default start + the incident's


def sw(*args: str, code: str | None = None) -> subprocess.CompletedProcess[bytes]:
    prefix = ["-c", code] if code else ["-m", "statuswatch"]
    return subprocess.run([sys.executable, *prefix, *args], capture_output=True, timeout=300,
                          check=False)


@pytest.fixture(scope="module")
def freeze(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plots") / "traffic.jsonl"
    sim = sw("simulate", "--rate", "50", "--duration", "1200", "--seed", "4",
             "--incident", "freeze:start=600,duration=200,fraction=0.3", "--out", str(path))
    assert sim.returncode == 0, sim.stderr
    return path


def _pngs(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.png"))


def test_backtest_plots_one_png_per_episode(freeze: Path, tmp_path: Path) -> None:
    alerts_out, plots = tmp_path / "alerts.jsonl", tmp_path / "plots"
    result = sw("backtest", "--alerts-out", str(alerts_out), "--summary-out",
                str(tmp_path / "s.json"), "--plots", str(plots), str(freeze))
    assert result.returncode == 0, result.stderr
    firing = [a for a in map(json.loads, alerts_out.read_text().splitlines())
              if a["state"] == "firing"]
    files = _pngs(plots)
    assert firing and len(files) == len(firing)
    for alert in firing:
        (png,) = [f for f in files if f.name.endswith(f"-{alert['id'][:8]}.png")]
        series = "volume" if alert["signal"] == "volume" else alert["code"]
        assert f"-{series}-{alert['direction']}-{alert['signal']}-" in png.name
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 20_000
    assert f"{len(files)} plots in {plots}".encode() in result.stderr


@pytest.mark.parametrize("batch_size", [2048, 10**6], ids=["windows-close-as-read",
                                                       "all-windows-close-at-the-end"])
def test_recorder_traces_the_freeze_against_its_band(freeze: Path, batch_size: int) -> None:
    detector = Detector(Settings())
    recorder = SeriesRecorder(detector, pre_roll_s=300, post_roll_s=120)
    sink = ListSink()

    class Tap(ListSink):
        def write(self, events):  # type: ignore[no-untyped-def]
            recorder.on_events(events)
            sink.write(events)

    backtest(detector, read_file_batches(str(freeze), batch_size), Tap())
    traces = recorder.finish()
    (alert,) = [a for a in sink.alerts if a["state"] == "firing" and a["scope"] == {}
                and a["code"] == 403]
    trace = traces[alert["id"]]
    times = np.asarray(trace.times_ms) / 1000
    assert trace.quantity == "share" and trace.fired_ms == alert["window_start"] * 1000
    # the surrounding windows: from the pre-roll before the page to the post-roll after
    assert times[0] == pytest.approx(alert["window_start"] - 300, abs=10)
    assert trace.resolved_ms is not None
    assert times[-1] == pytest.approx(trace.resolved_ms / 1000 + 120, abs=10)
    assert np.all(np.diff(times) == 10)  # one point a window, none twice
    observed, high = np.asarray(trace.observed), np.asarray(trace.high)
    low = np.asarray(trace.low)
    during = (times >= FREEZE_START_S) & (times < FREEZE_START_S + 200)
    before = times < FREEZE_START_S
    assert np.all(observed[during] > high[during])  # the freeze leaves the band
    inside = (observed[before] >= low[before]) & (observed[before] <= high[before])
    assert inside.mean() > 0.95  # and ordinary windows stay in it


def test_ring_memory_is_bounded(freeze: Path) -> None:
    detector = Detector(Settings())
    recorder = SeriesRecorder(detector, ring_bytes=200_000)
    sizes = []
    listener = detector.report_listener
    assert listener is not None

    def watch(report):  # type: ignore[no-untyped-def]
        listener(report)
        sizes.append(sum(f.nbytes for f in recorder._ring))

    detector.report_listener = watch
    backtest(detector, read_file_batches(str(freeze)), ListSink())
    assert len(sizes) > 100 and max(sizes) <= 200_000


def test_plot_with_both_configurations_marked(tmp_path: Path, freeze: Path) -> None:
    loose = tmp_path / "loose.yaml"
    loose.write_text("detect: {fire_score: 3, clear_score: 1.5, k: 1, m: 1}\n")
    plots = tmp_path / "plots"
    result = sw("backtest", "--config", str(loose), "--compare",
                str(Path(__file__).parents[2] / "config" / "statuswatch.yaml"),
                "--output", "json", "--plots", str(plots), str(freeze))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    incidents = (report["in_both"] + len(report["config"]["only_here"])
                 + len(report["compare"]["only_here"]))
    assert len(_pngs(plots)) == incidents > report["in_both"] >= 1


def test_render_names_and_draws_a_trace(tmp_path: Path) -> None:
    from statuswatch.plots import Trace

    start = 1680566400000
    trace = Trace("abcdef0123456789", {"service": "$billing"}, 403, "up", "share", "share",
                  6.0, start + 600_000, start + 800_000)
    for i in range(120):
        trace.times_ms.append(start + i * 10_000)
        trace.observed.append(0.4 if 60 <= i < 80 else 0.01)
        trace.expected.append(0.01)
        trace.low.append(0.0)
        trace.high.append(0.03)
    path = render(trace, [Mark("new.yaml", start + 600_000, start + 800_000),
                          Mark("current.yaml", start + 610_000, None, side=1)],
                  tmp_path / file_name(trace))
    assert path.name.startswith("20230404T001000Z-403-up-share-service=_billing-abcdef01")
    assert path.read_bytes().startswith(PNG_MAGIC)
    if "STATUSWATCH_KEEP_PLOTS" in os.environ:  # to look at it: the path is printed
        print(path)


def test_plots_without_matplotlib_say_how_to_install_it(tmp_path: Path, freeze: Path) -> None:
    blocked = ("import sys; sys.modules['matplotlib'] = None; "
               "from statuswatch.cli import main; sys.exit(main(sys.argv[1:]))")
    result = sw("backtest", "--plots", str(tmp_path / "p"), str(freeze), code=blocked)
    assert result.returncode == 2
    (line,) = result.stderr.decode().strip().splitlines()
    assert "pip install 'statuswatch[plots]'" in line
    assert not (tmp_path / "p").exists() and result.stdout == b""  # refused before the run
