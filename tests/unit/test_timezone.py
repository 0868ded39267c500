"""``decode.timezone``: event times written without an offset (HAProxy's accept date,
ISO-8601 without ``Z``) are read in the configured zone, checked against the standard
library's conversion of the same instants."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statuswatch.config import DecodeConfig, FieldMap, load_settings
from statuswatch.core.decode import GenericJsonDecoder, build_decoder
from statuswatch.core.decode.timestamps import MIN_TS_MS, LocalZone
from statuswatch.errors import ConfigError

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
         "America/St_Johns", "Pacific/Chatham", "UTC"]


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def haproxy_line(civil: datetime) -> bytes:
    stamp = civil.strftime("%d/%b/%Y:%H:%M:%S.") + f"{civil.microsecond // 1000:03d}"
    return (f'10.0.1.2:33317 [{stamp}] api~ billing/s1 10/0/30/69/109 403 2750 - - '
            f'---- 1/1/1/1/0 0/0 "GET /v1/charges HTTP/1.1"').encode()


def json_decoder(zone: str) -> GenericJsonDecoder:
    fields = FieldMap(timestamp="t", timestamp_unit="iso8601", status="s")
    return GenericJsonDecoder(DecodeConfig(format="json", fields=fields, timezone=zone))


def unambiguous(civil: datetime, zone: ZoneInfo) -> bool:
    """Whether a civil time exists once in ``zone`` (not skipped, not repeated)."""
    first, second = civil.replace(tzinfo=zone), civil.replace(tzinfo=zone, fold=1)
    return first.utcoffset() == second.utcoffset()


@settings(max_examples=300, deadline=None)
@given(
    # a day in: the civil time of the first instant is in 1999 west of Greenwich
    instant_ms=st.integers(MIN_TS_MS + 86_400_000, ms(datetime(2100, 1, 1, tzinfo=UTC))),
    zone_name=st.sampled_from(ZONES),
)
def test_a_civil_time_reads_back_as_the_instant_it_was_written_at(
    instant_ms: int, zone_name: str
) -> None:
    zone = ZoneInfo(zone_name)
    civil = datetime.fromtimestamp(instant_ms / 1000, UTC).astimezone(zone).replace(tzinfo=None)
    if not unambiguous(civil, zone):
        return  # the repeated hour: see test_daylight_saving_changes
    decoded = build_decoder(DecodeConfig(format="haproxy", timezone=zone_name)).decode_one(
        haproxy_line(civil))
    assert decoded.ts_ms == instant_ms
    iso = json_decoder(zone_name).decode_one(
        json.dumps({"t": civil.isoformat(timespec="milliseconds"), "s": 200}).encode())
    assert iso.ts_ms == instant_ms


def test_daylight_saving_changes() -> None:
    berlin = LocalZone("Europe/Berlin")

    def read(civil: datetime) -> datetime:
        as_if_utc = ms(civil.replace(tzinfo=UTC))
        return datetime.fromtimestamp(berlin.utc_ms(as_if_utc) / 1000, UTC)

    # the hour repeated on 25 Oct 2026: its first occurrence, still summer time (+2)
    assert read(datetime(2026, 10, 25, 2, 30)) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert read(datetime(2026, 10, 25, 3, 0)) == datetime(2026, 10, 25, 2, 0, tzinfo=UTC)
    # the hour skipped on 29 Mar 2026: the offset before the change (+1)
    assert read(datetime(2026, 3, 29, 2, 30)) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert read(datetime(2026, 3, 29, 1, 59)) == datetime(2026, 3, 29, 0, 59, tzinfo=UTC)
    assert read(datetime(2026, 3, 29, 3, 0)) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_the_offset_memo_starts_afresh_without_changing_a_result() -> None:
    zone = LocalZone("America/New_York")
    start = ms(datetime(2026, 3, 1, tzinfo=UTC))
    minutes = [start + k * 60_000 for k in range(0, 3 * LocalZone.MEMO_MINUTES, 7)]
    first = [zone.utc_ms(t) for t in minutes]
    assert len(zone._offset_ms) <= LocalZone.MEMO_MINUTES
    assert [LocalZone("America/New_York").utc_ms(t) for t in reversed(minutes)] == first[::-1]
    # winter (-5) and summer (-4) both in the range: the memo cannot be one offset
    assert {civil - utc for civil, utc in zip(minutes, first, strict=True)} == {
        -5 * 3_600_000, -4 * 3_600_000}


def test_times_with_an_offset_ignore_the_zone() -> None:
    line = haproxy_line(datetime(2026, 12, 6, 5, 30, 1, 250_000)).replace(
        b".250]", b".250 +0000]")
    for zone in ("UTC", "Asia/Kolkata"):
        decoded = build_decoder(DecodeConfig(format="haproxy", timezone=zone)).decode_one(line)
        assert decoded.ts_ms == ms(datetime(2026, 12, 6, 5, 30, 1, 250_000, tzinfo=UTC))
    zulu = json.dumps({"t": "2026-12-06T05:30:01.250Z", "s": 200}).encode()
    batch = json_decoder("Asia/Kolkata").decode([zulu])
    assert batch.ts_ms.tolist() == [ms(datetime(2026, 12, 6, 5, 30, 1, 250_000, tzinfo=UTC))]


def test_a_batch_reads_its_zone_less_times_in_the_zone() -> None:
    civil = datetime(2026, 7, 1, 12, 0, 0)
    want = ms(datetime(2026, 7, 1, 10, 0, 0, tzinfo=UTC))  # Berlin in summer: +2
    lines = [haproxy_line(civil)] * 3
    batch = build_decoder(DecodeConfig(format="haproxy", timezone="Europe/Berlin")).decode(lines)
    assert batch.ts_ms.tolist() == [want] * 3 and not batch.invalid
    iso = [json.dumps({"t": "2026-07-01T12:00:00", "s": 200}).encode()] * 3
    batch = json_decoder("Europe/Berlin").decode(iso)
    assert batch.ts_ms.tolist() == [want] * 3 and not batch.invalid
    # the default reads them as UTC
    batch = build_decoder(DecodeConfig(format="haproxy")).decode(lines)
    assert batch.ts_ms.tolist() == [ms(civil.replace(tzinfo=UTC))] * 3


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "Europe", "../etc/passwd", "+02:00"])
def test_an_unknown_zone_fails_at_start_naming_the_key(tmp_path: Path, name: str) -> None:
    path = tmp_path / "statuswatch.yaml"
    path.write_text(f"decode:\n  format: haproxy\n  timezone: {json.dumps(name)}\n")
    with pytest.raises(ConfigError, match=r"decode\.timezone.*unknown time zone"):
        load_settings(path)
