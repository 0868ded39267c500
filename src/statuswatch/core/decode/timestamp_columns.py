"""Vectorised timestamp parsers for the C scanner's str columns (numpy, no Python loop).

Each returns milliseconds and ``ok``; ``ok`` is false wherever a parser cannot
vouch for a value, and the caller then decodes that record with the full decoder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Final

import numpy as np
import numpy.typing as npt

from statuswatch.core.columns import I64
from statuswatch.core.decode.timestamps import END_TS_MS, MIN_TS_MS, MONTH_NAMES

_DAYS_BEFORE_MONTH: Final = np.array(
    [0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334], np.int64
)
_DAYS_IN_MONTH: Final = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)
_DATE_TIME_DIGITS: Final = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
#: ISO-8601 layouts ``iso_column`` parses, by length: (has ``.mmm``, ends in ``Z``).
_ISO_LAYOUTS: Final = {20: (False, True), 24: (True, True), 25: (False, False), 29: (True, False)}


def _same_width(texts: Sequence[str], width: int) -> tuple[I64, npt.NDArray[np.int64] | None]:
    """The indices of the ``texts`` of length ``width`` and their ASCII bytes as
    int64 rows (``None`` if there are none, or one is not ASCII)."""
    lens = np.fromiter(map(len, texts), np.int64, len(texts))
    sel = np.flatnonzero(lens == width)
    if sel.size == 0:
        return sel, None
    chosen = texts if sel.size == len(texts) else [texts[i] for i in sel.tolist()]
    try:
        raw = "".join(chosen).encode("ascii")
    except UnicodeEncodeError:
        return sel, None
    return sel, np.frombuffer(raw, np.uint8).reshape(-1, width).astype(np.int64)


#: Parses the rows of one width: (ASCII bytes, their digit values) -> (ms, ok).
_RowParser = Callable[
    [npt.NDArray[np.int64], npt.NDArray[np.int64]], tuple[I64, npt.NDArray[np.bool_]]
]


def _by_width(
    texts: Sequence[str], parsers: Mapping[int, _RowParser]
) -> tuple[I64, npt.NDArray[np.bool_]]:
    """Milliseconds and ``ok`` of each text, from the parser of its width; ``ok`` false
    for any other width."""
    ms = np.zeros(len(texts), np.int64)
    ok = np.zeros(len(texts), bool)
    for width, parse in parsers.items():
        sel, b = _same_width(texts, width)
        if b is not None:
            ms[sel], ok[sel] = parse(b, b - 48)
    return ms, ok


def _digits_ok(d: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    bad = (d < 0) | (d > 9)
    return np.asarray(np.count_nonzero(bad, axis=1) == 0, dtype=np.bool_)


def _offset_minutes(
    sign: npt.NDArray[np.int64], od: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """A zone offset ``+HHMM`` from its sign byte and four digit values; ``ok``."""
    oh, om = od[:, 0] * 10 + od[:, 1], od[:, 2] * 10 + od[:, 3]
    good = _digits_ok(od) & ((sign == 43) | (sign == 45)) & (oh <= 23) & (om <= 59)  # + -
    return np.where(sign == 43, 1, -1) * (oh * 60 + om), good


def _civil_ms(
    year: I64, month: I64, day: I64, hms: tuple[I64, I64, I64], frac: I64 | int, off_min: I64
) -> tuple[I64, npt.NDArray[np.bool_]]:
    """Milliseconds since the epoch of local civil times with a zone offset (minutes),
    and which are real dates and times within the accepted years."""
    hh, mi, ss = hms
    good = (month >= 1) & (month <= 12) & (hh <= 23) & (mi <= 59) & (ss <= 59)
    month_c = np.clip(month, 1, 12)
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    dim = _DAYS_IN_MONTH[month_c] + ((month_c == 2) & leap)
    good &= (day >= 1) & (day <= dim) & (year >= 1)
    y1 = year - 1
    days = (
        y1 * 365 + y1 // 4 - y1 // 100 + y1 // 400
        + _DAYS_BEFORE_MONTH[month_c] + ((month_c > 2) & leap) + day - 719_163
    )  # fmt: skip
    value = ((days * 86_400 + hh * 3600 + mi * 60 + ss) - off_min * 60) * 1000 + frac
    good &= (value >= MIN_TS_MS) & (value < END_TS_MS)
    return value, good


def iso_column(texts: Sequence[str]) -> tuple[I64, npt.NDArray[np.bool_]]:
    """Vectorised ``iso_to_ms`` for the common layouts; ``ok`` false where it cannot vouch.

    Parses ``YYYY-MM-DDTHH:MM:SS[.mmm]Z`` (20 or 24 characters) and
    ``YYYY-MM-DDTHH:MM:SS[.mmm]+HH:MM`` (25, nginx's ``$time_iso8601``, or 29);
    anything else, impossible dates and out-of-range results get ``ok`` false
    (the caller falls back to ``iso_to_ms``).

    >>> ms, ok = iso_column(["2023-04-04T10:00:00.123Z", "2023-04-04T12:00:00.123+02:00",
    ...                      "2023-04-04T12:00:00+02:00", "2023-02-29T10:00:00.000Z",
    ...                      "yesterday"])
    >>> ms[:3].tolist(), ok.tolist()
    ([1680602400123, 1680602400123, 1680602400000], [True, True, True, False, False])
    """
    layouts = _ISO_LAYOUTS.items()
    return _by_width(texts, {width: partial(_iso_rows, *layout) for width, layout in layouts})


def _iso_rows(
    has_frac: bool, zulu: bool, b: npt.NDArray[np.int64], d: npt.NDArray[np.int64]
) -> tuple[I64, npt.NDArray[np.bool_]]:
    """The rows of one ISO-8601 layout: with ``.mmm`` or not, ``Z`` or ``+HH:MM``."""
    good = _digits_ok(d[:, _DATE_TIME_DIGITS])
    good &= (b[:, 4] == 45) & (b[:, 7] == 45) & (b[:, 10] == 84)  # - - T
    good &= (b[:, 13] == 58) & (b[:, 16] == 58)  # : :
    frac: I64 | int = 0
    zone = 19
    if has_frac:
        good &= (b[:, 19] == 46) & _digits_ok(d[:, 20:23])  # .
        frac = d[:, 20] * 100 + d[:, 21] * 10 + d[:, 22]
        zone = 23
    if zulu:
        good &= b[:, zone] == 90  # Z
        off_min = np.zeros(len(b), np.int64)
    else:
        good &= b[:, zone + 3] == 58  # :
        off_min, off_ok = _offset_minutes(
            b[:, zone], d[:, [zone + 1, zone + 2, zone + 4, zone + 5]]
        )
        good &= off_ok
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month = d[:, 5] * 10 + d[:, 6]
    day = d[:, 8] * 10 + d[:, 9]
    hms = (d[:, 11] * 10 + d[:, 12], d[:, 14] * 10 + d[:, 15], d[:, 17] * 10 + d[:, 18])
    value, in_range = _civil_ms(year, month, day, hms, frac, off_min)
    return value, good & in_range


#: The three letters of each month name as one number (``ord`` big-endian), sorted.
_MONTH_KEYS: Final = np.array(
    sorted((a << 16) | (b << 8) | c for a, b, c in (m.encode() for m in MONTH_NAMES)), np.int64
)
_MONTH_OF_KEY: Final = np.array(
    [
        MONTH_NAMES.index(bytes(((k >> 16) & 255, (k >> 8) & 255, k & 255)).decode()) + 1
        for k in _MONTH_KEYS.tolist()
    ],
    np.int64,
)
_CLF_DIGITS: Final = [0, 1, 7, 8, 9, 10, 12, 13, 15, 16, 18, 19]


def clf_column(texts: Sequence[str]) -> tuple[I64, npt.NDArray[np.bool_]]:
    """Vectorised ``clf_to_ms``; ``ok`` false where it cannot vouch.

    >>> ms, ok = clf_column(["06/Dec/2026:05:30:01 +0000", "06/Dec/2026:06:30:01 +0100",
    ...                      "31/Feb/2026:05:30:01 +0000", "06/Dez/2026:05:30:01 +0000"])
    >>> ms[:2].tolist(), ok.tolist()
    ([1796535001000, 1796535001000], [True, True, False, False])
    """
    return _by_width(texts, {26: _clf_rows})


def _clf_rows(
    b: npt.NDArray[np.int64], d: npt.NDArray[np.int64]
) -> tuple[I64, npt.NDArray[np.bool_]]:
    good = _digits_ok(d[:, _CLF_DIGITS])
    good &= (b[:, 2] == 47) & (b[:, 6] == 47) & (b[:, 11] == 58)  # / / :
    good &= (b[:, 14] == 58) & (b[:, 17] == 58) & (b[:, 20] == 32)  # : : space
    key = (b[:, 3] << 16) | (b[:, 4] << 8) | b[:, 5]
    at = np.minimum(np.searchsorted(_MONTH_KEYS, key), len(_MONTH_KEYS) - 1)
    good &= _MONTH_KEYS[at] == key
    off_min, off_ok = _offset_minutes(b[:, 21], d[:, 22:26])
    year = d[:, 7] * 1000 + d[:, 8] * 100 + d[:, 9] * 10 + d[:, 10]
    day = d[:, 0] * 10 + d[:, 1]
    hms = (d[:, 12] * 10 + d[:, 13], d[:, 15] * 10 + d[:, 16], d[:, 18] * 10 + d[:, 19])
    value, in_range = _civil_ms(year, _MONTH_OF_KEY[at], day, hms, 0, off_min)
    return value, good & off_ok & in_range


def decimal_seconds_column(texts: Sequence[str]) -> tuple[I64, npt.NDArray[np.bool_]]:
    """Vectorised ``epoch_to_ms(text, "s", digit_strings=True)`` for nginx's ``$msec``
    (``"1680600000.123"``: ten digits, a dot, three); ``ok`` false for anything else.

    >>> ms, ok = decimal_seconds_column(["1680600000.123", "1680600000.1234", "168060000a.123"])
    >>> ms[0].item(), ok.tolist()
    (1680600000123, [True, False, False])
    """
    return _by_width(texts, {14: _decimal_seconds_rows})


def _decimal_seconds_rows(
    b: npt.NDArray[np.int64], d: npt.NDArray[np.int64]
) -> tuple[I64, npt.NDArray[np.bool_]]:
    digits = d[:, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13]]
    value = (digits * (10 ** np.arange(12, -1, -1, dtype=np.int64))).sum(axis=1)
    good = _digits_ok(digits) & (b[:, 10] == 46) & (value >= MIN_TS_MS) & (value < END_TS_MS)
    return value, good


