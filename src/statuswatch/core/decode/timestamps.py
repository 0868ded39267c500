"""Event times: epoch numbers, ISO-8601 and common-log-format times, one value at a time.

Every parser returns milliseconds since the epoch within the accepted years
(2000-2200) or fails with ``bad_timestamp`` (``wrong_type`` for a JSON value of
another type). ``timestamp_columns`` holds the vectorised versions the C
scanner's columns go through. A time written without an offset is read in the
``LocalZone`` of ``decode.timezone`` (UTC unless set).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo

from statuswatch.core.decode.protocol import fail

#: 2000-01-01T00:00:00Z: earlier event times are rejected as ``bad_timestamp``.
MIN_TS_MS: Final = 946_684_800_000
#: 2201-01-01T00:00:00Z: this and later event times are rejected (year > 2200).
END_TS_MS: Final = 7_289_654_400_000

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class LocalZone:
    """The zone of event times written without an offset (``decode.timezone``): an
    IANA name (``Europe/Berlin``) or ``UTC``. In the hour a change to winter time
    repeats, a time is read as its first occurrence (summer time); a time skipped by
    the change to summer time, with the offset before it.

    >>> berlin = LocalZone("Europe/Berlin")
    >>> berlin.utc_ms(clf_time_ms(b"06/Dec/2026:06:30:01 +0000")) == clf_time_ms(
    ...     b"06/Dec/2026:05:30:01 +0000")
    True
    """

    #: offsets remembered (by civil minute) before the memo starts afresh
    MEMO_MINUTES: Final = 4096

    def __init__(self, name: str) -> None:
        #: whether civil times are UTC already (then ``utc_ms`` need not be called)
        self.is_utc = name == "UTC"
        self.tzinfo: tzinfo = UTC
        if not self.is_utc:  # UTC needs no zone database; the config checked the name
            self.tzinfo = ZoneInfo(name)
        self._offset_ms: dict[int, int] = {}

    def utc_ms(self, civil_ms: int) -> int:
        """Milliseconds since the epoch of a civil time in this zone, given as the
        milliseconds it would be if it were UTC."""
        # Offsets change on whole civil minutes (every change since 2000 does).
        minute = civil_ms // 60_000
        offset = self._offset_ms.get(minute)
        if offset is None:
            civil = datetime(1970, 1, 1) + timedelta(minutes=minute)
            delta = civil.replace(tzinfo=self.tzinfo).utcoffset()
            offset = 0 if delta is None else delta // timedelta(milliseconds=1)
            if len(self._offset_ms) >= self.MEMO_MINUTES:
                self._offset_ms.clear()
            self._offset_ms[minute] = offset
        return civil_ms - offset


#: ``decode.timezone``'s default
UTC_ZONE: Final = LocalZone("UTC")


def check_ts_ms(ts_ms: int, field: str = "") -> int:
    """Return ``ts_ms`` if it lies in the years 2000-2200 (UTC).

    >>> check_ts_ms(1_680_600_000_123)
    1680600000123
    >>> check_ts_ms(1_680_600_000)   # seconds, not milliseconds: 1970
    Traceback (most recent call last):
    ...
    statuswatch.errors.DecodeError: bad_timestamp
    """
    if MIN_TS_MS <= ts_ms < END_TS_MS:
        return ts_ms
    fail("bad_timestamp", field)

#: Milliseconds per unit, as a fraction (numerator, denominator).
MS_PER_UNIT: Final[dict[str, tuple[int, int]]] = {
    "s": (1000, 1),
    "ms": (1, 1),
    "us": (1, 1000),
    "ns": (1, 1_000_000),
}


def _round_div(num: int, den: int) -> int:
    """``num / den`` rounded half up (``den`` > 0)."""
    return (2 * num + den) // (2 * den)


def epoch_to_ms(value: object, unit: str, *, digit_strings: bool = False) -> int:
    """Milliseconds since the epoch from a number in ``unit`` (s, ms, us, ns).

    Integers and floats (not booleans) are accepted; with ``digit_strings`` also
    decimal strings such as nginx's ``$msec``. The result is rounded to the
    nearest millisecond and checked with ``check_ts_ms``.

    >>> epoch_to_ms(1680600000.123, "s")
    1680600000123
    >>> epoch_to_ms("1680600000.123", "s", digit_strings=True)
    1680600000123
    >>> epoch_to_ms(1680600000123456789, "ns")
    1680600000123
    >>> epoch_to_ms("1680600000.123", "s")
    Traceback (most recent call last):
    ...
    statuswatch.errors.DecodeError: wrong_type
    """
    num, den = MS_PER_UNIT[unit]
    if type(value) is int:
        ms = _round_div(value * num, den)
    elif type(value) is float:
        if not math.isfinite(value):
            fail("bad_timestamp")
        scaled = value * num / den
        if not -1e18 < scaled < 1e18:
            fail("bad_timestamp")
        ms = round(scaled)
    elif type(value) is str and digit_strings:
        whole, _, frac = value.partition(".")
        digits = whole + frac  # [0-9]{1,20}(\.[0-9]{0,20})?
        if not (digits.isascii() and digits.isdigit() and whole and len(digits) <= 40):
            fail("wrong_type")
        ms = _round_div(int(digits) * num, den * 10 ** len(frac))
    else:
        fail("wrong_type")
    return check_ts_ms(ms)


def iso_to_ms(text: str, zone: LocalZone = UTC_ZONE) -> int:
    """Milliseconds since the epoch from an ISO-8601 timestamp (one without an offset
    is in ``zone``).

    >>> iso_to_ms("2023-04-04T10:00:00.123Z")
    1680602400123
    >>> iso_to_ms("2023-04-04T12:00:00.123+02:00")
    1680602400123
    >>> iso_to_ms("2023-04-04T12:00:00.123", LocalZone("Europe/Berlin"))
    1680602400123
    >>> iso_to_ms("yesterday")
    Traceback (most recent call last):
    ...
    statuswatch.errors.DecodeError: bad_timestamp
    """
    try:
        dt = datetime.fromisoformat(text)
    except (ValueError, TypeError):
        fail("bad_timestamp")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone.tzinfo)
    try:
        delta = dt - _EPOCH
    except OverflowError:  # an offset pushing year 1 or 9999 out of range
        fail("bad_timestamp")
    ms = delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000
    if MIN_TS_MS <= ms < END_TS_MS:
        return ms
    fail("bad_timestamp")


def iso_value(value: object, zone: LocalZone = UTC_ZONE) -> int:
    """``iso_to_ms`` for a JSON value: anything but a string is ``wrong_type``."""
    if type(value) is not str:
        fail("wrong_type")
    return iso_to_ms(value, zone)


MONTH_NAMES: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                      "Nov", "Dec")
_CLF_TIME: Final = re.compile(
    rb"([0-9]{2})/([A-Z][a-z]{2})/([0-9]{4})"  # 17/May/2015
    rb":([0-9]{2}):([0-9]{2}):([0-9]{2})"  # :10:05:03
    rb" ([+-])([0-9]{2})([0-9]{2})"  # +0000
)
#: HAProxy's accept date: the same with milliseconds, and a zone only in ``%trl``
_HAPROXY_TIME_BYTES: Final = len(b"17/May/2015:10:05:03.125")
_DOT: Final = ord(".")
_MONTH_NUMBER: Final = {m.encode(): n for n, m in enumerate(MONTH_NAMES, 1)}
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


@lru_cache(maxsize=4096)
def clf_time_ms(text: bytes) -> int | None:
    """Milliseconds since the epoch of a common-log-format time, ``None`` if malformed
    or out of range (Apache's ``%t``, nginx's ``$time_local``).

    Pure, so memoised: log lines arrive roughly in time order and share seconds.

    >>> clf_time_ms(b"17/May/2015:10:05:03 +0000")
    1431857103000
    >>> clf_time_ms(b"17/May/2015:03:05:03 -0700")
    1431857103000
    >>> clf_time_ms(b"31/Feb/2015:10:05:03 +0000") is None
    True
    """
    m = _CLF_TIME.fullmatch(text)
    if m is None:
        return None
    day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
    month = _MONTH_NUMBER.get(mon)
    h, mi, s, zh, zm = int(hh), int(mm), int(ss), int(oh), int(om)
    if month is None or h > 23 or mi > 59 or s > 59 or zh > 23 or zm > 59:
        return None
    try:
        days = date(int(year), month, int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    ms = (days * 86400 + h * 3600 + mi * 60 + s - (zh * 3600 + zm * 60) * (
        1 if sign == b"+" else -1)) * 1000
    return ms if MIN_TS_MS <= ms < END_TS_MS else None


def haproxy_time_ms(text: bytes, zone: LocalZone = UTC_ZONE) -> int | None:
    """Milliseconds since the epoch of HAProxy's accept date (``%tr`` in its HTTP log:
    the common log format's time with milliseconds and no offset, in the local time of
    HAProxy's host: ``zone``), or of the same with an offset (``%trl``); ``None`` if
    malformed or out of range. The second goes through ``clf_time_ms`` (and its memo:
    lines of one second share it).

    >>> haproxy_time_ms(b"17/May/2015:10:05:03.125")
    1431857103125
    >>> haproxy_time_ms(b"17/May/2015:12:05:03.125 +0200")
    1431857103125
    >>> haproxy_time_ms(b"17/May/2015:12:05:03.125", LocalZone("Europe/Berlin"))
    1431857103125
    >>> haproxy_time_ms(b"17/May/2015:10:05:03") is None
    True
    """
    # Fixed width: "17/May/2015:10:05:03.125", then " +0200" or nothing; clf_time_ms
    # checks the second and the zone.
    civil = len(text) == _HAPROXY_TIME_BYTES
    if civil:
        offset = b" +0000"
    elif len(text) == _HAPROXY_TIME_BYTES + 6:
        offset = text[_HAPROXY_TIME_BYTES:]
    else:
        return None
    millis = text[21:24]
    if text[20] != _DOT or not millis.isdigit():
        return None
    ms = clf_time_ms(text[:20] + offset)
    if ms is None:
        return None
    ms += int(millis)
    if civil and not zone.is_utc:
        ms = zone.utc_ms(ms)
    return ms if MIN_TS_MS <= ms < END_TS_MS else None


def clf_value(value: object) -> int:
    """Milliseconds since the epoch from a JSON string in the common log format's time
    (``timestamp_unit: clf``); other JSON types are ``wrong_type``.

    >>> clf_value("06/Dec/2026:05:30:01 +0000")
    1796535001000
    >>> clf_value("2026-12-06T05:30:01+00:00")
    Traceback (most recent call last):
    ...
    statuswatch.errors.DecodeError: bad_timestamp
    """
    if type(value) is not str:
        fail("wrong_type")
    try:
        ms = clf_time_ms(value.encode("ascii"))
    except UnicodeEncodeError:
        ms = None
    if ms is None:
        fail("bad_timestamp")
    return ms


def timestamp_value(
    value: object, unit: str, *, digit_strings: bool = False, zone: LocalZone = UTC_ZONE
) -> int:
    """Milliseconds since the epoch from a JSON value in ``unit`` (a ``timestamp_unit``;
    ``zone``: of an ISO-8601 time without an offset).

    >>> timestamp_value("2023-04-04T10:00:00.123Z", "iso8601"), timestamp_value(1680600000, "s")
    (1680602400123, 1680600000000)
    """
    if unit == "iso8601":
        return iso_value(value, zone)
    if unit == "clf":
        return clf_value(value)
    return epoch_to_ms(value, unit, digit_strings=digit_strings)

