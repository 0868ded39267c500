"""From what the C scanner read to checked columns: the fast path's numpy half.

The scanner (``_jsonscan``) reads a table's fields of a whole batch into int64
rows and str columns (``json_fields.scan_plan`` says which); ``scanned_columns``
turns them into timestamps in milliseconds, statuses and dimensions, and says
which records it vouches for (``FastColumns.ok``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from statuswatch.core.columns import EVENT_CODE, I64, MAX_STATUS, MIN_STATUS, NO_RESPONSE
from statuswatch.core.decode.json_fields import DIMENSION_ROLES, FieldTable, ScanPlan
from statuswatch.core.decode.timestamp_columns import (
    clf_column,
    decimal_seconds_column,
    iso_column,
)
from statuswatch.core.decode.timestamps import END_TS_MS, MIN_TS_MS, MS_PER_UNIT

Bools = npt.NDArray[np.bool_]


class FastColumns(NamedTuple):
    """What the fast path read from a whole batch.

    ``ok[i]`` says the fast path vouches for record ``i``: its fields are all
    present, of the common type and in range, so ``decode_one`` would return
    exactly these values. Records with ``ok[i]`` false go through the full
    decoder, which gives their value or their reason; the other entries of
    such a record are placeholders and never used.
    """

    ts_ms: I64
    status: I64
    service: list[str]
    route: list[str]
    app: list[str]
    ok: Bools


def in_ranges(ts_ms: I64, status: I64) -> Bools:
    """Which records have a status in 100-599 (or 0) and a timestamp in the accepted years.

    >>> in_ranges(np.array([1_680_600_000_000, 0]), np.array([0, 200])).tolist()
    [True, False]
    """
    ok: Bools = (
        (((status >= MIN_STATUS) & (status <= MAX_STATUS)) | (status == NO_RESPONSE))
        & (ts_ms >= MIN_TS_MS) & (ts_ms < END_TS_MS)
    )
    return ok


def digit_status(texts: Sequence[str]) -> tuple[I64, Bools]:
    """Three-digit status strings as ints; ``ok`` false for anything else.

    >>> status, ok = digit_status(["200", "000", "2000", "2a0"])
    >>> status[:2].tolist(), ok.tolist()
    ([200, 0], [True, True, False, False])
    """
    n = len(texts)
    status = np.zeros(n, np.int64)
    ok = np.zeros(n, bool)
    lens = np.fromiter(map(len, texts), np.int64, n)
    sel = np.flatnonzero(lens == 3)
    if sel.size == 0:
        return status, ok
    chosen = texts if sel.size == n else [texts[i] for i in sel.tolist()]
    try:
        raw = "".join(chosen).encode("ascii")
    except UnicodeEncodeError:
        return status, ok
    d = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int64) - 48
    status[sel] = d[:, 0] * 100 + d[:, 1] * 10 + d[:, 2]
    ok[sel] = ((d >= 0) & (d <= 9)).all(axis=1)
    return status, ok


#: The parser of a timestamp read as a string, by unit.
_STR_COLUMNS: Final[dict[str, Callable[[Sequence[str]], tuple[I64, Bools]]]] = {
    "iso8601": iso_column,
    "clf": clf_column,
    "s": decimal_seconds_column,  # nginx's $msec
}


def str_timestamps(unit: str, texts: Sequence[str]) -> tuple[I64, Bools]:
    """Timestamps read as strings, in ``unit``; ``ok`` false where not vouched for."""
    parse = _STR_COLUMNS.get(unit)
    if parse is None:  # a digit string in ms, us or ns: the full decoder's job
        return np.zeros(len(texts), np.int64), np.zeros(len(texts), np.bool_)
    return parse(texts)


def epoch_timestamps(unit: str, ints: I64) -> tuple[I64, Bools]:
    """Epoch integers in ``unit`` as milliseconds (rounded half up, as ``epoch_to_ms``);
    ``ok`` false where the arithmetic could overflow.

    >>> ms, ok = epoch_timestamps("us", np.array([1_680_600_000_123_500, 2**62]))
    >>> ms[0].item(), ok.tolist()
    (1680600000124, [True, False])
    """
    num, den = MS_PER_UNIT[unit]
    limit = (1 << 61) // num
    ok = (ints > -limit) & (ints < limit)
    return (2 * np.where(ok, ints, 0) * num + den) // (2 * den), ok


def first_timestamp(columns: Sequence[Sequence[str]], units: Sequence[str]
                    ) -> tuple[I64, Bools]:
    """Each record's timestamp from the first of the str columns it has (not "")."""
    n = len(columns[0])
    ts = np.zeros(n, np.int64)
    ok = np.zeros(n, np.bool_)
    taken = np.zeros(n, np.bool_)
    for column, unit in zip(columns, units, strict=True):
        absent = list(column).count("")  # C speed; usually all or none
        if absent == n:
            continue
        if absent == 0 and not taken.any():  # every record has this field
            return str_timestamps(unit, column)
        present = np.fromiter(map(bool, column), np.bool_, n) & ~taken
        if not present.any():
            continue
        at = np.flatnonzero(present)
        ms, good = str_timestamps(unit, [column[i] for i in at.tolist()])
        ts[at], ok[at] = ms, good
        taken |= present
        if taken.all():
            break
    return ts, ok


def scanned_columns(
    table: FieldTable, plan: ScanPlan, ints: I64, strs: list[list[str]], ok: Bools
) -> FastColumns:
    """The checked columns of a batch the scanner read (``ok``: the records it vouched
    for), for ``table`` as laid out by ``plan``."""
    n = len(ok)

    def ref(i: int) -> tuple[str, int]:
        at = plan.columns[i]
        assert at is not None, "an 'f' field is folded into the one before it"
        return at

    def ints_of(i: int) -> I64:
        kind, at = ref(i)
        assert kind in ("i", "m")
        row: I64 = ints[at]
        return row

    def strs_of(i: int) -> list[str]:
        kind, at = ref(i)
        assert kind == "s"
        return strs[at]

    stamps = table.of("timestamp")
    if len(stamps) > 1:
        ts, good = first_timestamp([strs_of(i) for i, _ in stamps],
                                   [f.unit or "iso8601" for _, f in stamps])
    else:
        [(i, f)] = stamps
        unit = f.unit or "iso8601"
        if f.type == "int":
            # "m": the scanner read epoch seconds, fraction and all, as milliseconds
            kind, at = ref(i)
            ts, good = epoch_timestamps("ms" if kind == "m" else unit, ints[at])
        else:
            ts, good = str_timestamps(unit, strs_of(i))
    ok = ok & good
    statuses = table.of("status")
    if not statuses:  # events without a status: only the timestamp's range to check
        ok &= (ts >= MIN_TS_MS) & (ts < END_TS_MS)
        status = np.full(n, EVENT_CODE, np.int64)
    elif statuses[0][1].type == "int":
        status = ints_of(statuses[0][0])
    else:
        status, good = digit_status(strs_of(statuses[0][0]))
        ok &= good
    taken: set[int] = set()
    dims: list[list[str]] = []
    for role in DIMENSION_ROLES:
        fields = table.of(role)
        if not fields:
            dims.append([""] * n)
            continue
        values = strs_of(fields[0][0])  # the scanner folds later alternatives into it
        dims.append(list(values) if id(values) in taken else values)  # one list per column
        taken.add(id(values))
    service, route, app = dims
    if statuses:
        ok &= in_ranges(ts, status)
    return FastColumns(ts, status, service, route, app, ok)
