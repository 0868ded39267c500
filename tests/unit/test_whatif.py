"""What-if backtests: two configurations over one decoding, their alerts compared."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statuswatch.config import DecodeConfig, FieldMap, Settings, load_settings
from statuswatch.core.columns import DecodedBatch
from statuswatch.core.detector import Detector
from statuswatch.shell.backtest import backtest
from statuswatch.shell.sinks import ListSink
from statuswatch.shell.sources import read_file_batches
from statuswatch.whatif import compare, decode_difference, episodes

#: Thresholds low enough to page on noise: a configuration that differs visibly.
LOOSE = """
detect:
  fire_score: 3
  clear_score: 1.5
  k: 1
  m: 1
  min_excess_count: 2
  min_share_ratio: 1.2
"""


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whatif") / "traffic.jsonl"
    subprocess.run(
        [sys.executable, "-m", "statuswatch", "simulate", "--rate", "80", "--duration", "1200",
         "--seed", "11", "--incident", "freeze:start=900,duration=200,fraction=0.3",
         "--out", str(out)],
        check=True, capture_output=True, timeout=120,
    )
    return out


def _loose(tmp_path: Path) -> Settings:
    path = tmp_path / "loose.yaml"
    path.write_text(LOOSE)
    return load_settings(str(path))


class _CountingDecoder:
    """The real decoder, counting its calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def decode(self, values: list[bytes]) -> DecodedBatch:
        self.calls += 1
        result: DecodedBatch = self.inner.decode(values)
        return result


def _alone(settings: Settings, path: Path) -> list[dict[str, Any]]:
    sink = ListSink()
    backtest(Detector(settings), read_file_batches(str(path)), sink)
    return sink.alerts


def test_compare_run_equals_two_separate_runs_with_one_decoding(
    traffic: Path, tmp_path: Path
) -> None:
    default, loose = Settings(), _loose(tmp_path)
    first = Detector(default)
    decoder = _CountingDecoder(first.decoder)
    first.decoder = decoder  # type: ignore[assignment]
    second = Detector(loose)
    sinks = ListSink(), ListSink()
    batches = list(read_file_batches(str(traffic)))
    summary = backtest(first, batches, sinks[0], (second, sinks[1]))

    assert decoder.calls == len(batches)  # once per batch, not once per configuration
    assert summary.records == second.counters.records > 50_000
    assert sinks[0].alerts == _alone(default, traffic)
    assert sinks[1].alerts == _alone(loose, traffic)
    # the two configurations really differ, so the comparison has something to say
    c = compare(sinks[1].alerts, sinks[0].alerts, ("loose", "default"))
    assert c.only(0) and c.both >= 1
    assert len(c.runs[0]) == sum(a["state"] == "firing" for a in sinks[1].alerts)


def _alert(alert_id: str, start: float, end: float | None = None, code: int = 403,
           scope: dict[str, str] | None = None) -> list[dict[str, Any]]:
    fire = {"id": alert_id, "state": "firing", "code": code, "direction": "up",
            "signal": "share", "scope": scope or {}, "window_start": start,
            "window_end": start + 10, "episode_start": start - 10, "score": 7.0}
    if end is None:
        return [fire]
    return [fire, {**fire, "state": "resolved", "window_start": end - 10, "window_end": end}]


def test_episodes_match_by_id_then_by_series_and_overlap() -> None:
    new = _alert("same", 100, 200) + _alert("early", 1000, 1100) + _alert("new-only", 5000)
    current = (_alert("same", 100, 200) + _alert("late", 1050, 1200)
               + _alert("elsewhere", 1000, 1100, scope={"service": "a"})
               + _alert("old-only", 3000, 3100))
    c = compare(new, current, ("new", "current"))
    pairs = {(a.id if a else None, b.id if b else None) for a, b in c.pairs}
    assert ("same", "same") in pairs and ("early", "late") in pairs
    assert [e.id for e in c.only(0)] == ["new-only"]
    assert sorted(e.id for e in c.only(1)) == ["elsewhere", "old-only"]
    assert c.both == 2
    # an unresolved episode runs to the end of the input
    (open_episode,) = [e for e in episodes(new) if e.id == "new-only"]
    assert open_episode.end is None


alert_lists = st.lists(
    st.tuples(st.sampled_from([403, 500]), st.integers(0, 50), st.integers(1, 5)),
    max_size=8,
).map(lambda specs: [
    a for i, (code, start, length) in enumerate(specs)
    for a in _alert(f"{code}-{i}", start * 10.0, (start + length) * 10.0, code=code)
])


@given(alert_lists, alert_lists)
def test_matching_is_one_to_one_and_symmetric(a: list[dict[str, Any]],
                                               b: list[dict[str, Any]]) -> None:
    c, swapped = compare(a, b, ("a", "b")), compare(b, a, ("b", "a"))
    seen = [e.id for pair in c.pairs for e in pair if e is not None]
    assert sorted(seen) == sorted(e.id for run in c.runs for e in run)  # each once
    assert len(c.only(0)) + c.both == len(c.runs[0])
    assert len(c.only(1)) + c.both == len(c.runs[1])
    assert c.both == swapped.both
    assert compare(a, a, ("a", "a")).only(0) == []


def test_decode_difference_names_the_nested_key() -> None:
    base = Settings()
    other = base.model_copy(update={"decode": DecodeConfig(
        fields=FieldMap(status="http_status"))})
    assert decode_difference(base, other) == "decode.fields.status"
    assert decode_difference(base, Settings()) is None
