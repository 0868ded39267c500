"""The interning caches behind ``ScopeTable.rows``: value ids and row tables.

Each dimension value becomes a small integer id, and a level's ids map to its row:
a cache of ``resolve`` (``ScopeTable``'s own row lookup by values), bounded and
started afresh when full.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np

from statuswatch.core.columns import I64

#: Most distinct values of one dimension kept interned before the caches start afresh.
INTERN_LIMIT = 1 << 17
#: Largest dense row table of a multi-dimension level (entries), e.g. 1,024 services x 1,024 routes.
DENSE_COMBOS = 1 << 20
#: Bits per dimension id in a combined key (three dimensions fit in an int64).
ID_BITS = 20
_UNKNOWN = -2

def picked(items: Any, at: Sequence[Any]) -> list[Any]:
    """``[items[i] for i in at]``, the lookups in C (``itemgetter``).

    >>> picked({"a": 1, "b": 2}, ["b", "a", "b"]), picked("xyz", [2]), picked("xyz", [])
    ([2, 1, 2], ['z'], [])
    """
    if len(at) > 1:
        return list(itemgetter(*at)(items))
    return [items[at[0]]] if at else []


def _ids(table: dict[str, int], values: Sequence[str]) -> I64:
    """The id of each of ``values`` (``KeyError`` for one not interned)."""
    if len(values) > 1:
        return np.fromiter(itemgetter(*values)(table), np.int64, len(values))
    return np.array([table[v] for v in values], np.int64)


class RowLookup:
    """Dimension value -> id per dimension; (level, ids) -> row, from ``resolve``."""

    def __init__(self, resolve: Callable[[int, tuple[str, ...]], int]) -> None:
        self._resolve = resolve
        self.generation = 0
        self.reset()

    def reset(self) -> None:
        """Start afresh: new ids, empty tables (a new generation)."""
        self.generation += 1
        self.ids: dict[str, dict[str, int]] = {}
        self.values: dict[str, list[str]] = {}
        #: per dimension, ``(value,)`` for each id: the keys of a one-dimension level
        self.singletons: dict[str, list[tuple[str]]] = {}
        self._lut: dict[int, I64] = {}
        self._combo_row: dict[int, dict[int, int]] = {}
        #: per multi-dimension level: (capacity per dimension, dense row table)
        self._combo_lut: dict[int, tuple[tuple[int, ...], I64]] = {}

    def forget(
        self, level_idx: int, level: tuple[str, ...], values: tuple[str, ...]
    ) -> None:
        """Drop the cached row of one scope: its next record asks ``resolve`` again.

        Cheaper than starting the caches afresh after a swap, which would resolve
        every folded tail scope through ``resolve`` again on the next batch.
        """
        ids = [self.ids.get(d, {}).get(v) for d, v in zip(level, values, strict=True)]
        if any(i is None for i in ids):
            return  # not interned in this generation: nothing cached
        known = [int(i) for i in ids if i is not None]
        if len(level) == 1:
            lut = self._lut.get(level_idx)
            if lut is not None and known[0] < len(lut):
                lut[known[0]] = _UNKNOWN
            return
        held = self._combo_lut.get(level_idx)
        if held is not None and all(i < c for i, c in zip(known, held[0], strict=True)):
            flat = known[0]
            for part, cap in zip(known[1:], held[0][1:], strict=True):
                flat = flat * cap + part
            held[1][flat] = _UNKNOWN
        combo = known[0]
        for part in known[1:]:
            combo = (combo << ID_BITS) | part
        self._combo_row.get(level_idx, {}).pop(combo, None)

    def intern(self, dim: str, values: list[str]) -> I64:
        """The id of each value of ``dim`` ("" is id 0), interning new values."""
        table = self.ids.get(dim)
        if table is None:
            table = self.ids[dim] = {"": 0}
            self.values[dim] = [""]
            self.singletons[dim] = [("",)]
        try:
            return _ids(table, values)
        except KeyError:
            pass
        new = [v for v in dict.fromkeys(values) if v not in table]  # first-seen order
        if len(table) + len(new) > INTERN_LIMIT and len(table) > 1:
            self.reset()  # bounded memory whatever the input: start afresh
            return self.intern(dim, values)
        known, singletons = self.values[dim], self.singletons[dim]
        for value in new:
            table[value] = len(known)
            known.append(value)
            singletons.append((value,))
        return _ids(table, values)

    def rows_1d(self, level_idx: int, dim: str, ids: I64) -> I64:
        lut = self._lut.get(level_idx)
        size = len(self.values[dim])
        if lut is None or len(lut) < size:
            grown = np.full(max(size, 64) * 2, _UNKNOWN, np.int64)
            grown[0] = -1  # "": the record lacks the dimension
            if lut is not None:
                grown[: len(lut)] = lut
            lut = self._lut[level_idx] = grown
        rows = lut[ids]
        missing = rows == _UNKNOWN
        if missing.any():
            values = self.values[dim]
            for i in np.unique(ids[missing]).tolist():
                lut[i] = self._resolve(level_idx, (values[i],))
            rows = lut[ids]
        return rows

    def rows_nd(self, level_idx: int, level: tuple[str, ...], ids: list[I64]) -> I64:
        """Rows of a level of several dimensions: a dense table indexed by the ids
        (no sort) while the combinations fit, else ``np.unique`` of combined keys."""
        caps = tuple(1 << max(len(self.values[d]) - 1, 1).bit_length() for d in level)
        if np.prod(caps) <= DENSE_COMBOS:
            held = self._combo_lut.get(level_idx)
            if held is None or held[0] != caps:
                held = self._combo_lut[level_idx] = (
                    caps, np.full(int(np.prod(caps)), _UNKNOWN, np.int64)
                )
            lut = held[1]
            flat = ids[0]
            for part, cap in zip(ids[1:], caps[1:], strict=True):
                flat = flat * cap + part
            rows = lut[flat]
            missing = rows == _UNKNOWN
            if missing.any():
                first = np.unique(flat[missing], return_index=True)[1]
                where = np.sort(np.flatnonzero(missing)[first])  # in order of first sight
                lut[flat[where]] = self._rows_by_key(level_idx, level, [i[where] for i in ids])
                rows = lut[flat]
            return rows
        return self._rows_by_key(level_idx, level, ids)

    def _rows_by_key(self, level_idx: int, level: tuple[str, ...], ids: list[I64]) -> I64:
        combo = ids[0]
        for part in ids[1:]:
            combo = (combo << ID_BITS) | part
        ucombo, first, inverse = np.unique(combo, return_index=True, return_inverse=True)
        cache = self._combo_row.setdefault(level_idx, {})
        keys = ucombo.tolist()
        arrival = [keys[i] for i in np.argsort(first, kind="stable").tolist()]
        try:
            found = np.fromiter(map(cache.__getitem__, keys), np.int64, len(keys))
        except KeyError:
            mask = (1 << ID_BITS) - 1
            tables = [self.values[d] for d in level]
            for key in arrival:  # new scopes take rows in order of first sight
                if key in cache:
                    continue
                last = len(level) - 1
                vids = [(key >> (ID_BITS * (last - k))) & mask for k in range(len(level))]
                if 0 in vids:  # some dimension is ""
                    cache[key] = -1
                else:
                    values = tuple(t[v] for t, v in zip(tables, vids, strict=True))
                    cache[key] = self._resolve(level_idx, values)
            found = np.fromiter(map(cache.__getitem__, keys), np.int64, len(keys))
        return found[inverse.reshape(-1)]
