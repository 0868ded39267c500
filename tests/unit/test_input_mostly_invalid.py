"""Mostly invalid input: the rejected share, its verdict, and the volume drops it explains.

The pure core: ``RejectTracker`` (core/rejects.py) and the detector's suppression of
the volume drops that rejected records explain. The shell's side (``/ready``, the
metric, the ERROR line) is tested over HTTP in tests/unit/test_health.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statuswatch.config import DecodeConfig, FieldMap, MostlyInvalidConfig, Settings, load_settings
from statuswatch.core.columns import VOLUME_CODE, InvalidRecord
from statuswatch.core.decide import AlertEvent
from statuswatch.core.detector import Detector
from statuswatch.core.rejects import RejectTracker
from statuswatch.errors import ConfigError

T0 = 1_796_515_200_000  # 2026-12-06T00:00:00Z
OFF = MostlyInvalidConfig(min_records=10**9)  # never mostly invalid: the reference


def kong(ts: int, i: int, service: str, renamed: bool = False) -> bytes:
    """A Kong record; ``renamed``: as after an upgrade that renamed ``started_at``."""
    key = "request_started" if renamed else "started_at"
    status = 500 if i % 50 == 0 else 200
    return json.dumps({key: ts, "response": {"status": status}, "service": {"name": service}}
                      ).encode()


def replay(
    detector: Detector, seconds: int, per_second: dict[str, int], renamed_from: int,
    renamed: set[str], silent_from: int = 10**9, silent: frozenset[str] = frozenset(),
) -> list[AlertEvent]:
    """One batch a second, ``per_second`` records of each service; from ``renamed_from``
    the services in ``renamed`` write records with a renamed time field, from
    ``silent_from`` the services in ``silent`` write nothing."""
    events: list[AlertEvent] = []
    offset = 0
    for sec in range(seconds):
        ts = T0 + sec * 1000
        values = []
        for service, n in per_second.items():
            if sec >= silent_from and service in silent:
                continue
            bad = sec >= renamed_from and service in renamed
            values += [kong(ts + j * 7, j, service, bad) for j in range(n)]
        offsets = np.arange(offset, offset + len(values), dtype=np.int64)
        offset += len(values)
        events += detector.process(values, now_ms=ts + 1500, offsets=offsets).events
    return events


def volume_drops(events: list[AlertEvent]) -> list[dict[str, str]]:
    return [e.scope for e in events
            if e.state == "firing" and e.signal == "volume" and e.direction == "down"]


def test_a_renamed_field_pages_as_invalid_input_not_as_a_traffic_drop() -> None:
    traffic = {"a": 10, "b": 10}
    reference = Detector(Settings(decode=DecodeConfig(mostly_invalid=OFF)))
    blind = replay(reference, 900, traffic, renamed_from=600, renamed={"a", "b"})
    assert {} in volume_drops(blind)  # without the check: "traffic fell" in the fleet
    assert {e.to_json()["code"] for e in blind if e.signal == "volume"} == {"all"}

    detector = Detector(Settings())
    events = replay(detector, 900, traffic, renamed_from=600, renamed={"a", "b"})
    assert volume_drops(events) == []
    assert [e for e in events if e.signal == "volume"] == []
    verdict = detector.input_verdict(T0 + 900_500)
    assert verdict.mostly_invalid and verdict.rejected.share == 1.0
    assert verdict.rejected.top_reason == "missing_field" and verdict.field == "started_at"
    assert "decode.format (now kong)" in verdict.hint
    assert verdict.rejected.sample is not None and verdict.rejected.sample.offset is not None


def test_volume_learning_pauses_while_records_are_rejected() -> None:
    traffic = {"a": 10, "b": 10}
    detector = Detector(Settings())
    replay(detector, 600, traffic, renamed_from=10**9, renamed=set())
    before = float(detector.baseline.expect(1, 1, window_start_ms=T0 + 600_000,
                                            window_ms=10_000, parents=np.array([-1])).volume[0])
    replay(detector, 300, traffic, renamed_from=0, renamed={"a", "b"})
    after = float(detector.baseline.expect(1, 1, window_start_ms=T0 + 900_000,
                                           window_ms=10_000, parents=np.array([-1])).volume[0])
    assert after == pytest.approx(before, rel=0.05)


def test_a_drop_larger_than_the_rejected_records_still_pages() -> None:
    # Service a (100/s) goes silent while b (5/s) writes renamed records: the input is
    # all invalid, but 5 rejected records a second cannot explain a's 100 missing ones.
    traffic = {"a": 100, "b": 5}
    detector = Detector(Settings())
    events = replay(detector, 900, traffic, renamed_from=600, renamed={"b"},
                    silent_from=600, silent=frozenset({"a"}))
    assert detector.input_verdict(T0 + 900_500).mostly_invalid
    fleet = [e for e in events if e.state == "firing" and e.signal == "volume" and not e.scope]
    assert len(fleet) == 1 and fleet[0].direction == "down"
    # one incident, one page: the service that went silent leads its contributors
    assert fleet[0].contributors[0]["scope"] == {"service": "a"}


def test_a_few_rejected_records_change_nothing() -> None:
    traffic = {"a": 10, "b": 10}
    with_check = Detector(Settings())
    without = Detector(Settings(decode=DecodeConfig(mostly_invalid=OFF)))
    got = replay(with_check, 900, traffic, renamed_from=600, renamed={"b"})  # 50% < share?
    want = replay(without, 900, traffic, renamed_from=600, renamed={"b"})
    # half the records rejected is "mostly invalid" at the default share 0.5 ...
    assert with_check.input_verdict(T0 + 900_500).mostly_invalid
    # ... and at share 0.6 it is not, and the alerts are exactly those without the check
    strict = Detector(Settings(decode=DecodeConfig(mostly_invalid=MostlyInvalidConfig(share=0.6))))
    assert replay(strict, 900, traffic, renamed_from=600, renamed={"b"}) == want
    assert not strict.input_verdict(T0 + 900_500).mostly_invalid
    assert len(got) <= len(want)


def test_tracker_needs_enough_records_and_forgets_after_the_window() -> None:
    t = RejectTracker(MostlyInvalidConfig(share=0.5, min_records=100, window_seconds=60))
    for sec in range(9):
        t.add(T0 + sec * 1000, 10, [InvalidRecord(i, "bad_timestamp") for i in range(10)])
    assert not t.assess(T0 + 9_000).mostly_invalid  # 90 records: a trickle
    t.add(T0 + 9_000, 10, [InvalidRecord(i, "bad_timestamp") for i in range(10)])
    v = t.assess(T0 + 9_500)
    assert v.mostly_invalid and v.records == 100 and v.top_reason == "bad_timestamp"
    assert v.span_ms == 9_500 and v.rejected_per(9_500) == pytest.approx(100)
    assert not t.assess(T0 + 69_001).mostly_invalid and t.assess(T0 + 69_001).records == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200_000), st.integers(0, 50), st.integers(0, 50)),
                max_size=60))
def test_tracker_share_is_the_rejected_share_of_the_window(
    batches: list[tuple[int, int, int]],
) -> None:
    cfg = MostlyInvalidConfig(share=0.5, min_records=1, window_seconds=60)
    t = RejectTracker(cfg)
    now = T0
    kept: list[tuple[int, int, int]] = []
    for step, good, bad in batches:
        now += step
        t.add(now, good + bad, [InvalidRecord(i, "invalid_json") for i in range(bad)])
        if good + bad:
            kept.append((now, good + bad, bad))
    v = t.assess(now)
    recent = [(n, b) for at, n, b in kept if at - at % 1000 > now - 60_000]
    records, rejected = sum(n for n, _ in recent), sum(b for _, b in recent)
    assert (v.records, v.rejected) == (records, rejected)
    assert v.mostly_invalid == (records >= 1 and rejected >= 0.5 * records)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("decode: {mostly_invalid: {share: 0}}", "decode.mostly_invalid.share"),
        ("decode: {mostly_invalid: {share: 1.5}}", "decode.mostly_invalid.share"),
        ("decode: {mostly_invalid: {min_records: 0}}", "decode.mostly_invalid.min_records"),
        ("decode: {mostly_invalid: {window_seconds: 0.5}}",
         "decode.mostly_invalid.window_seconds"),
        ("decode: {fields: {timestamp_unit: apache}}", "decode.fields.timestamp_unit"),
    ],
)
def test_settings_are_validated_with_the_key_named(
    text: str, key: str, tmp_path: pytest.TempPathFactory
) -> None:
    path = tmp_path / "c.yaml"  # type: ignore[operator]
    path.write_text(text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(path)


def test_the_hint_names_the_timestamp_key_for_json_formats() -> None:
    cfg = DecodeConfig(format="nginx-json", fields=FieldMap(service="upstream_name"))
    detector = Detector(Settings(decode=cfg))
    line = b'{"@timestamp":"2026-12-06T05:30:01+00:00","status":"200"}'
    for sec in range(5):
        detector.process([line] * 30, now_ms=T0 + sec * 1000)
    verdict = detector.input_verdict(T0 + 5_000)
    assert verdict.mostly_invalid and verdict.key == "decode.fields.timestamp"
    assert verdict.field == "msec/time_iso8601/time_local/time"
    assert "set decode.fields.timestamp" in verdict.message()
    assert VOLUME_CODE == -1  # the volume series is not code 0 (no response)
