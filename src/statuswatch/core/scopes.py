"""Scope and status-code tables: map strings and codes to dense matrix indices.

A *scope* is a set of dimension values, e.g. ``{"service": "email-api"}``;
``{}`` is the whole fleet and is always row 0. Each configured level
(``[]``, ``["service"]``, ...) may hold at most ``max_per_level`` scopes; the
rest fold into one ``other`` scope per level, so memory and metric labels stay
bounded whatever the input contains.

Which scopes keep a row is decided by volume, not by who came first: the
table counts the traffic of the folded scopes it has seen (the heaviest few
thousand per level), and ``rebalance`` swaps a folded scope in when its
rate is well above the lightest tracked scope's, recycling that scope's row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import add
from typing import Any

import numpy as np
import numpy.typing as npt

from statuswatch.core.columns import (
    EVENT_CODE,
    I64,
    MIN_STATUS,
    VOLUME_CODE,
    is_class,
    is_status,
)
from statuswatch.core.scope_lookup import ID_BITS, RowLookup, picked

OTHER = "other"

#: A folded scope takes a tracked scope's row when its rate is this many times larger:
#: hysteresis, so two scopes of similar volume do not swap back and forth.
SWAP_RATIO = 2.0
#: Fewest records per window a folded scope needs to be swapped in at all.
MIN_SWAP_RATE = 1.0
#: Most rows recycled per level and call of ``rebalance``: a burst of new scopes
#: changes the table gradually.
MAX_SWAPS_PER_CALL = 20
#: Folded scopes whose rate is remembered per level (the heaviest are kept).
MAX_CANDIDATES = 2_000



def _is_other(values: tuple[str, ...]) -> bool:
    """Whether a scope's values name the fold row (every dimension is ``other``).

    >>> _is_other(("other",)), _is_other(("other", "x")), _is_other(())
    (True, False, False)
    """
    return bool(values) and all(v == OTHER for v in values)


def _heaviest_first(item: tuple[tuple[str, ...], float]) -> tuple[float, tuple[str, ...]]:
    """Sort key of folded scopes: by rate, ties by name, so the choice of a swap
    does not depend on the order the interning caches happened to see them."""
    return -item[1], item[0]


class FoldRates:
    """The rates of one level's folded scopes: each scope's slot in one array, so a
    call fades them all with one in-place multiply (the same products as one ``*=``
    per scope) and the heaviest come from ``np.partition``, not a sort of them all.
    The slot dict keeps the order scopes arrived in: the snapshot's order.

    A one-dimension level's counts arrive by value id (``fade_ids``): the slot of
    each id is kept too, so only scopes without a slot yet are looked up by name.

    >>> r = FoldRates()
    >>> r.fade({("a",): 4, ("b",): 2}, 1.0)
    >>> r.fade({("b",): 6, ("c",): 1}, 0.5)
    >>> r.items(), r.heaviest(2)
    ([(('a',), 2.0), (('b',), 4.0), (('c',), 0.5)], [(('b',), 4.0), (('a',), 2.0)])
    >>> names = [("",), ("c",), ("d",)]
    >>> r.fade_ids(np.array([2, 1]), np.array([3, 5]), names, 0.5)
    >>> r.items()
    [(('a',), 1.0), (('b',), 2.0), (('c',), 2.75), (('d',), 1.5)]
    """

    def __init__(self, items: Iterable[tuple[tuple[str, ...], float]] = ()) -> None:
        self._slot: dict[tuple[str, ...], int] = {}
        self._keys: list[tuple[str, ...]] = []
        self._rate = np.zeros(64)
        #: the id list ``fade_ids`` was last given (ids of one generation), each id's
        #: slot and each slot's id (-1: not known)
        self._ids_of: list[tuple[str]] | None = None
        self._slot_of_id = np.zeros(0, np.int64)
        self._id_of_slot = np.full(64, -1, np.int64)
        for key, rate in items:
            self.set(key, rate)

    def __len__(self) -> int:
        return len(self._keys)

    def items(self) -> list[tuple[tuple[str, ...], float]]:
        """(scope, rate) in arrival order."""
        rates = self._rate.tolist()
        return [(key, rates[slot]) for key, slot in self._slot.items()]

    def _append(self, keys: list[tuple[str, ...]], ids: I64 | None = None) -> None:
        """New scopes in the next slots (rates set by the caller)."""
        first = len(self._keys)
        for key in keys:
            self._slot[key] = len(self._keys)
            self._keys.append(key)
        size = len(self._keys)
        if size > len(self._rate):
            grown = max(size, 2 * len(self._rate)) - len(self._rate)
            self._rate = np.pad(self._rate, (0, grown))
            self._id_of_slot = np.pad(self._id_of_slot, (0, grown), constant_values=-1)
        self._id_of_slot[first:size] = -1 if ids is None else ids
        if ids is not None:
            self._slot_of_id[ids] = np.arange(first, size)

    def set(self, key: tuple[str, ...], rate: float) -> None:
        slot = self._slot.get(key)
        if slot is None:
            slot = len(self._keys)
            self._append([key])
        self._rate[slot] = rate

    def pop(self, key: tuple[str, ...]) -> None:
        """Forget ``key``: the last slot's scope moves into its slot."""
        slot = self._slot.pop(key)
        last = len(self._keys) - 1
        gone = int(self._id_of_slot[slot])
        if gone >= 0:
            self._slot_of_id[gone] = -1
        if slot != last:
            moved = self._keys[slot] = self._keys[last]
            self._slot[moved] = slot  # an existing key: its arrival order stays
            self._rate[slot] = self._rate[last]
            moved_id = self._id_of_slot[slot] = self._id_of_slot[last]
            if moved_id >= 0:
                self._slot_of_id[moved_id] = slot
        self._keys.pop()

    def fade(self, pending: dict[tuple[str, ...], int], alpha: float) -> None:
        """One more call: the ``pending`` scopes move towards their new count (from 0,
        as tracked rows' rates start: a one-off burst does not evict), the others fade;
        scopes new here arrive in ``pending``'s order."""
        slots = np.fromiter(map(self._slot.get, pending, repeat(-1)), np.int64, len(pending))
        count = np.fromiter(pending.values(), np.float64, len(pending))
        new = slots < 0
        self._move(slots, count, alpha, list(compress(pending, new.tolist())))

    def fade_ids(
        self, ids: I64, counts: I64, keys: list[tuple[str]], alpha: float
    ) -> None:
        """``fade`` of the pending counts ``{keys[i]: n for i, n in zip(ids, counts)}``
        (``ids`` in the order the dict would hold them)."""
        if keys is not self._ids_of:  # ids of another generation: slots by name again
            self._ids_of = keys
            self._slot_of_id = np.full(len(keys), -1, np.int64)
            self._id_of_slot[:] = -1
        if len(self._slot_of_id) < len(keys):
            self._slot_of_id = np.pad(
                self._slot_of_id, (0, len(keys) - len(self._slot_of_id)), constant_values=-1
            )
        slots = self._slot_of_id[ids]
        unknown = np.flatnonzero(slots < 0)
        if len(unknown):
            names = picked(keys, ids[unknown].tolist())
            found = np.fromiter(map(self._slot.get, names, repeat(-1)), np.int64, len(names))
            slots[unknown] = found
            known = found >= 0
            self._slot_of_id[ids[unknown[known]]] = found[known]
            self._id_of_slot[found[known]] = ids[unknown[known]]
        new = slots < 0
        new_ids = ids[new]
        self._move(slots, counts.astype(np.float64), alpha, picked(keys, new_ids.tolist()),
                   new_ids)

    def _move(
        self, slots: I64, count: npt.NDArray[np.float64], alpha: float,
        new_keys: list[tuple[str, ...]], new_ids: I64 | None = None,
    ) -> None:
        """The fade of ``fade``: ``slots`` (-1: the scopes of ``new_keys``, in order)."""
        n = len(self._keys)
        old = np.where(slots >= 0, self._rate[slots], 0.0)
        moved = old + alpha * (count - old)
        self._rate[:n] *= 1.0 - alpha
        if new_keys:
            self._append(new_keys, new_ids)
            slots[slots < 0] = np.arange(n, len(self._keys))
        self._rate[slots] = moved

    def max(self) -> float:
        return float(self._rate[: len(self._keys)].max()) if self._keys else -np.inf

    def _heaviest_slots(
        self, n: int, at_least: float = -np.inf, above: float = -np.inf
    ) -> list[int]:
        rates = self._rate[: len(self._keys)]
        candidates = np.flatnonzero((rates >= at_least) & (rates > above))
        negated = -rates
        if n < len(candidates):
            nth = np.partition(negated[candidates], n - 1)[n - 1] if n > 0 else -np.inf
            candidates = candidates[negated[candidates] <= nth]
        slots = candidates.tolist()
        names = map(self._keys.__getitem__, slots)
        ranked = sorted(zip(negated[candidates].tolist(), names, slots, strict=True))[:n]
        return [slot for _, _, slot in ranked]

    def heaviest(
        self, n: int, at_least: float = -np.inf, above: float = -np.inf
    ) -> list[tuple[tuple[str, ...], float]]:
        """The ``n`` heaviest scopes of rate >= ``at_least`` and > ``above``, in
        ``_heaviest_first`` order: the scopes as heavy as the n-th (ties included) are
        ranked by (-rate, name), pairs that compare in C; the rest never are."""
        slots = self._heaviest_slots(n, at_least, above)
        return list(zip(picked(self._keys, slots), self._rate[slots].tolist(), strict=True))

    def keep_heaviest(self, n: int) -> None:
        """Forget all but the ``n`` heaviest, which take the heaviest-first order."""
        slots = self._heaviest_slots(n)
        self._keys = picked(self._keys, slots)
        self._slot = dict(zip(self._keys, range(len(slots)), strict=True))
        self._rate = np.concatenate([self._rate[slots], np.zeros(64)])
        ids = np.concatenate([self._id_of_slot[slots], np.full(64, -1, np.int64)])
        self._id_of_slot = ids
        self._slot_of_id[:] = -1
        at = np.flatnonzero(ids >= 0)
        self._slot_of_id[ids[at]] = at


@dataclass(slots=True)
class IdCounts:
    """A one-dimension level's records of folded scopes since the last ``rebalance``,
    by value id (one ``np.bincount`` a batch), and the batch each id was first seen
    in: the order the pending dict would have taken them in.

    >>> c = IdCounts([("",), ("a",), ("b",), ("c",)])
    >>> c.add(np.array([0, 0, 0, 2])); c.add(np.array([0, 1, 4]))
    >>> [(c.keys[i], n) for i, n in zip(*(a.tolist() for a in c.drain()))]
    [(('c',), 2), (('a',), 1), (('b',), 4)]
    """

    keys: list[tuple[str]]  # the lookup's one-value keys by id, of the generation counted
    counts: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    first_seen: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    batches: int = 0

    def add(self, freq: I64) -> None:
        if len(self.counts) < len(freq):
            grown = len(freq) - len(self.counts)
            self.counts = np.pad(self.counts, (0, grown))
            self.first_seen = np.pad(self.first_seen, (0, grown))
        counts = self.counts[: len(freq)]
        self.first_seen[: len(freq)][(counts == 0) & (freq > 0)] = self.batches
        counts += freq
        self.batches += 1

    def drain(self) -> tuple[I64, I64]:
        """(ids, counts) in the pending dict's order; starts counting afresh."""
        ids = np.flatnonzero(self.counts)
        ids = ids[np.lexsort((ids, self.first_seen[ids]))]
        counts = self.counts[ids]
        self.counts[:] = 0
        self.batches = 0
        return ids, counts


class CodeTable:
    """Dense column index for each status code seen, in order of first sight.

    ``classes`` (1..5 for 1xx..5xx) take the first columns: each holds its class's
    summed counts (``class_members`` says which columns add up to it), so a rise
    spread over 500, 502 and 503 is one series too.

    >>> t = CodeTable(classes=[5])
    >>> t.columns(np.array([200, 503, 200, 500])).tolist()
    [1, 3, 1, 2]
    >>> t.codes, [(c, m.tolist()) for c, m in t.class_members()]
    ([5, 200, 500, 503], [(0, [2, 3])])
    """

    def __init__(self, classes: Sequence[int] = ()) -> None:
        self._col_of = np.full(EVENT_CODE + 1, -1, dtype=np.int64)  # statuses, events
        self.codes: list[int] = []
        for digit in classes:
            if not 1 <= digit <= 5 or self._col_of[digit] >= 0:
                raise ValueError(f"status class {digit}xx: 1..5, once each")
            self._col_of[digit] = len(self.codes)
            self.codes.append(int(digit))
        self.classes = list(classes)
        self._members: list[tuple[int, I64]] = []
        self._members_for = -1  # len(codes) when _members was built

    def class_members(self) -> list[tuple[int, I64]]:
        """(class column, columns of the codes in that class) for each class."""
        if self._members_for != len(self.codes):
            digits = np.array([c // 100 for c in self.codes], dtype=np.int64)
            self._members = [
                (int(self._col_of[d]), np.flatnonzero(digits == d)) for d in self.classes
            ]
            self._members_for = len(self.codes)
        return self._members

    def class_of(self, col: int) -> int:
        """The class column ``col``'s code belongs to (-1: none, or ``col`` is a class).

        >>> t = CodeTable(classes=[4])
        >>> t.codes[t.columns(np.array([403]))[0]], t.codes[t.columns(np.array([200]))[0]]
        (403, 200)
        >>> t.class_of(1), t.class_of(2), t.class_of(0)
        (0, -1, -1)
        >>> t.class_of(t.columns(np.array([0]))[0])  # no response: in no class
        -1
        """
        code = self.codes[col]
        if code < MIN_STATUS:  # a class, or no response (in no class)
            return -1
        return int(self._col_of[code // 100])

    def is_class(self, col: int) -> bool:
        return is_class(self.codes[col])

    def __len__(self) -> int:
        return len(self.codes)

    def columns(self, status: I64) -> I64:
        cols = self._col_of[status]
        missing = cols < 0
        if missing.any():
            for code in np.unique(status[missing]).tolist():
                self._col_of[code] = len(self.codes)
                self.codes.append(int(code))
            cols = self._col_of[status]
        return cols

    def code_at(self, col: int) -> int:
        """The code of column ``col``; ``VOLUME_CODE`` for -1, a volume alert's column."""
        return self.codes[col] if col >= 0 else VOLUME_CODE

    def column(self, code: int) -> int:
        """Column of ``code``, or -1 if never seen."""
        if not is_status(code) and code != EVENT_CODE:
            return -1
        return int(self._col_of[code])

    def restore(self, codes: Sequence[int]) -> None:
        """Take a snapshot's columns; its classes must be this table's."""
        classes = [int(c) for c in codes if is_class(int(c))]
        if classes != self.classes or list(codes[: len(classes)]) != classes:
            raise ValueError(f"snapshot status classes {classes} != config {self.classes}")
        for code in codes[len(classes):]:
            self.columns(np.array([code], dtype=np.int64))


@dataclass(frozen=True, slots=True)
class Recycled:
    """A row handed from a light tracked scope to a heavier folded one."""

    row: int
    level: int
    old: dict[str, str]
    new: dict[str, str]
    other: int  # the level's fold row, where the old scope's records go from now on


class ScopeTable:
    """Rows of the count matrix: one per scope, bounded per level.

    >>> t = ScopeTable([[], ["service"]], max_per_level=1)
    >>> rows = t.rows({"service": ["a", "b", "a", ""], "route": [""] * 4, "app": [""] * 4})
    >>> rows.tolist()
    [[0, 0, 0, 0], [1, 2, 1, -1]]
    >>> [t.labels[r] for r in range(len(t))]
    [{}, {'service': 'a'}, {'service': 'other'}]
    """

    def __init__(self, levels: Sequence[Sequence[str]], max_per_level: int) -> None:
        self.levels = [tuple(level) for level in levels]
        self.max_per_level = max_per_level
        self.labels: list[dict[str, str]] = []
        self.level_of_row: list[int] = []
        self._level_of_row = np.zeros(0, np.int64)  # level_of_row as an array
        self._level_of_row_at = 0  # len(level_of_row) when _level_of_row was built
        self._row_of: dict[tuple[int, tuple[str, ...]], int] = {}
        self._other_row: dict[int, int] = {}
        self._per_level = [0] * len(self.levels)
        #: scopes that could not get a row of their own, per level
        self.folded = [0] * len(self.levels)
        self._folded_keys: list[set[tuple[str, ...]]] = [set() for _ in self.levels]
        #: per level, folded scope -> records since the last ``rebalance``
        self._fold_pending: list[dict[tuple[str, ...], int]] = [{} for _ in self.levels]
        #: per one-dimension level, the same counts while they arrive by value id; the
        #: pending dict takes them over (``_pending_by_name``) before anyone reads it
        self._fold_pending_ids: list[IdCounts | None] = [None for _ in self.levels]
        #: per level, folded scope -> exponentially weighted records per window
        self._fold_rate = [FoldRates() for _ in self.levels]
        #: per row, records since the last ``rebalance`` and their weighted rate per call
        self._row_pending = np.zeros(0, np.int64)
        self._row_rate = np.zeros(0)
        #: rows handed from one scope to another, per level
        self.recycled = [0] * len(self.levels)
        self._lookup = RowLookup(self._row)
        for i, level in enumerate(self.levels):
            if not level:
                self._row(i, ())

    def __len__(self) -> int:
        return len(self.labels)

    def _new_row(self, level: int, label: dict[str, str]) -> int:
        row = len(self.labels)
        self.labels.append(label)
        self.level_of_row.append(level)
        return row

    def _row(self, level: int, values: tuple[str, ...]) -> int:
        key = (level, values)
        row = self._row_of.get(key)
        if row is not None:
            return row
        if _is_other(values):
            # A scope literally named "other" shares the fold row, which carries that
            # label: two rows with one label set would be duplicate metric series.
            return self._fold_row(level)
        if self._per_level[level] < self.max_per_level:
            self._per_level[level] += 1
            row = self._new_row(level, dict(zip(self.levels[level], values, strict=True)))
            self._row_of[key] = row
            return row
        # Fold: bounded memory and label sets matter more than naming a tail scope.
        folded = self._folded_keys[level]
        if len(folded) < 100_000 and values not in folded:
            folded.add(values)
            self.folded[level] = len(folded)
        return self._fold_row(level)

    def _fold_row(self, level: int) -> int:
        other = self._other_row.get(level)
        if other is None:
            other = self._new_row(level, dict.fromkeys(self.levels[level], OTHER))
            self._other_row[level] = other
        return other

    def rows(self, dims: dict[str, list[str]]) -> I64:
        """Row per (level, record); -1 where the record lacks a dimension of the level.

        Each dimension value is interned to a small integer id (a dict lookup per
        record, no sort of strings); a level's row then comes from a lookup table
        by id (one dimension) or from a dict keyed by the combined ids of its
        unique combinations (several). The interning tables are caches of
        ``_row``, bounded and rebuilt when full.
        """
        n = len(next(iter(dims.values()))) if dims else 0
        out = np.full((len(self.levels), n), -1, dtype=np.int64)
        if n == 0:
            return out
        needed = list(dict.fromkeys(dim for level in self.levels for dim in level))
        while True:  # again if the caches started afresh meanwhile: ids of one generation
            generation = self._lookup.generation
            ids = {dim: self._lookup.intern(dim, dims[dim]) for dim in needed}
            if generation == self._lookup.generation:
                break
        for level_idx, level in enumerate(self.levels):
            if not level:
                out[level_idx] = self._row(level_idx, ())
                continue
            if len(level) == 1:
                out[level_idx] = self._lookup.rows_1d(level_idx, level[0], ids[level[0]])
            else:
                out[level_idx] = self._lookup.rows_nd(level_idx, level, [ids[d] for d in level])
            other = self._other_row.get(level_idx)
            if other is not None:
                self._count_folded(level_idx, level, ids, out[level_idx] == other)
        flat = out.reshape(-1)
        seen = np.bincount(flat[flat >= 0], minlength=len(self.labels))
        if len(self._row_pending) < len(seen):
            self._row_pending = np.pad(self._row_pending, (0, len(seen) - len(self._row_pending)))
        self._row_pending[: len(seen)] += seen
        return out

    def rows_of(self, scopes: Sequence[tuple[int, tuple[str, ...]]], records: Sequence[int]) -> I64:
        """Row of each (level index, values) scope, counting ``records`` requests for it
        towards the top-K, as ``rows`` does for scopes counted record by record (the
        counts of another process's partial windows).

        >>> t = ScopeTable([[], ["service"]], max_per_level=1)
        >>> t.rows_of([(0, ()), (1, ("a",)), (1, ("b",))], [5, 3, 2]).tolist()
        [0, 1, 2]
        >>> t.labels[2], t.folded
        ({'service': 'other'}, [0, 1])
        """
        rows = np.fromiter(
            (self._row(level, values) for level, values in scopes), np.int64, len(scopes)
        )
        for level_idx in range(len(self.levels)):
            self._pending_by_name(level_idx)
        for (level, values), row, n in zip(scopes, rows.tolist(), records, strict=True):
            if row == self._other_row.get(level) and not _is_other(values):
                pending = self._fold_pending[level]
                pending[values] = pending.get(values, 0) + int(n)
        if len(self._row_pending) < len(self.labels):
            self._row_pending = np.pad(
                self._row_pending, (0, len(self.labels) - len(self._row_pending))
            )
        np.add.at(self._row_pending, rows, np.asarray(records, np.int64))
        return rows

    # -- top-K by volume ---------------------------------------------------------

    def _count_folded(
        self, level_idx: int, level: tuple[str, ...], ids: dict[str, I64],
        folded: npt.NDArray[np.bool_],
    ) -> None:
        """Add the records of folded scopes to their pending counts."""
        if not folded.any():
            return
        pending = self._fold_pending[level_idx]
        if len(level) == 1:  # a count per id: no sort of rows (same order: by id)
            freq = np.bincount(ids[level[0]][folded])
            other_id = self._lookup.ids[level[0]].get(OTHER)
            if other_id is not None and other_id < len(freq):
                freq[other_id] = 0  # "other" itself is never a candidate for a row
            keys = self._lookup.singletons[level[0]]
            held = self._fold_pending_ids[level_idx]
            if held is None or held.keys is not keys:  # ids of a new generation
                self._pending_by_name(level_idx)
                held = self._fold_pending_ids[level_idx] = IdCounts(keys)
            held.add(freq)
            return
        combo = ids[level[0]][folded]
        for d in level[1:]:  # one int per combination, in the order of its ids
            combo = (combo << ID_BITS) | ids[d][folded]
        uniq, freq = np.unique(combo, return_counts=True)
        tables = [self._lookup.values[d] for d in level]
        mask, last = (1 << ID_BITS) - 1, len(level) - 1
        for key, n in zip(uniq.tolist(), freq.tolist(), strict=True):
            values = tuple(
                t[(key >> (ID_BITS * (last - k))) & mask] for k, t in enumerate(tables)
            )
            if not _is_other(values):  # "other" itself is never a candidate for a row
                pending[values] = pending.get(values, 0) + n

    def rebalance(self, alpha: float, protected: set[int]) -> list[Recycled]:
        """Fold light scopes and give their rows to heavier folded ones.

        Call once per closed window. Every scope's rate, tracked or folded, is
        the exponentially weighted mean (weight ``alpha``) of its records
        between calls. Rows in ``protected`` (an alert is live on them) keep
        their scope. Returns the recycled rows: the caller resets their state.

        >>> t = ScopeTable([[], ["service"]], max_per_level=1)
        >>> _ = t.rows({"service": ["a"] + ["b"] * 9, "route": [""] * 10, "app": [""] * 10})
        >>> [(r.row, r.old, r.new) for r in t.rebalance(1.0, set())]
        [(1, {'service': 'a'}, {'service': 'b'})]
        >>> t.rows({"service": ["a", "b"], "route": [""] * 2, "app": [""] * 2}).tolist()
        [[0, 0], [2, 1]]
        """
        n = len(self.labels)
        if len(self._row_rate) < n:
            self._row_rate = np.pad(self._row_rate, (0, n - len(self._row_rate)))
        if len(self._row_pending) < n:
            self._row_pending = np.pad(self._row_pending, (0, n - len(self._row_pending)))
        self._row_rate += alpha * (self._row_pending - self._row_rate)
        self._row_pending[:] = 0
        out: list[Recycled] = []
        for level_idx, level in enumerate(self.levels):
            rates = self._fold_rate[level_idx]
            pending = self._fold_pending[level_idx]
            held = self._fold_pending_ids[level_idx]
            if pending or held is None:
                self._pending_by_name(level_idx)
                if not rates and not pending:
                    continue
                rates.fade(pending, alpha)
                pending.clear()
            else:  # this call's counts arrived by id only
                ids, counts = held.drain()
                if not rates and not len(ids):
                    continue
                rates.fade_ids(ids, counts, held.keys, alpha)
            if len(rates) > MAX_CANDIDATES:
                rates.keep_heaviest(MAX_CANDIDATES // 2)
            out += self._swap(level_idx, level, protected)
        for swap in out:  # the lookup tables still map both scopes to their old rows
            level = self.levels[swap.level]
            for label in (swap.old, swap.new):
                self._lookup.forget(swap.level, level, tuple(label[d] for d in level))
        return out

    def _swap(
        self, level_idx: int, level: tuple[str, ...], protected: set[int]
    ) -> list[Recycled]:
        rates = self._fold_rate[level_idx]
        other = self._other_row.get(level_idx)
        if other is None or not rates or rates.max() < MIN_SWAP_RATE:
            return []
        rows = self._tracked_rows(level_idx)
        if protected:
            rows = rows[~np.isin(rows, np.fromiter(protected, np.int64, len(protected)))]
        if not len(rows):
            return []
        row_rates = self._row_rate[rows]
        # Only scopes heavier than the lightest tracked one can take a row: ranking
        # just those gives the same leading candidates as ranking all of them.
        bar = SWAP_RATIO * float(row_rates.min())
        best = rates.heaviest(MAX_SWAPS_PER_CALL, at_least=MIN_SWAP_RATE, above=bar)
        lightest = rows[np.lexsort((rows, row_rates))[: len(best)]].tolist()
        out = []
        for (values, rate), row in zip(best, lightest, strict=False):
            tracked_rate = float(self._row_rate[row])
            if rate < MIN_SWAP_RATE or rate <= SWAP_RATIO * tracked_rate:
                break
            old_values = tuple(self.labels[row][d] for d in level)
            del self._row_of[(level_idx, old_values)]
            rates.pop(values)
            rates.set(old_values, tracked_rate)
            self._row_rate[row] = rate
            self._row_of[(level_idx, values)] = row
            old_label = self.labels[row]
            self.labels[row] = dict(zip(level, values, strict=True))
            self.recycled[level_idx] += 1
            out.append(Recycled(row, level_idx, old_label, self.labels[row], other))
        return out

    def _tracked_rows(self, level_idx: int) -> I64:
        """The rows of a level's tracked scopes (all but its fold row), ascending."""
        if self._level_of_row_at != len(self.level_of_row):
            self._level_of_row = np.array(self.level_of_row, np.int64)
            self._level_of_row_at = len(self.level_of_row)
        rows = np.flatnonzero(self._level_of_row == level_idx)
        other = self._other_row.get(level_idx)
        return rows if other is None else rows[rows != other]

    def _pending_by_name(self, level_idx: int) -> None:
        """Move the level's counts by id into its pending dict, in the dict's order."""
        held = self._fold_pending_ids[level_idx]
        if held is None:
            return
        ids, counts = held.drain()
        pending = self._fold_pending[level_idx]
        keys = picked(held.keys, ids.tolist())
        totals = map(add, map(pending.get, keys, repeat(0)), counts.tolist())
        pending.update(zip(keys, totals, strict=True))  # keys unique: each read first

    def forget_pending(self) -> None:
        """Drop the records counted since the last ``rebalance``: they are about to be
        read again (a restart re-reads from the oldest open window)."""
        self._row_pending[:] = 0
        for pending in self._fold_pending:
            pending.clear()
        self._fold_pending_ids = [None for _ in self.levels]

    def fold_state(self) -> dict[str, Any]:
        """The folded scopes' rates and pending counts, as plain JSON."""
        for level_idx in range(len(self.levels)):
            self._pending_by_name(level_idx)
        return {
            "rates": [[[*k, v] for k, v in r.items()] for r in self._fold_rate],
            "pending": [[[*k, v] for k, v in p.items()] for p in self._fold_pending],
            "row_rate": self._row_rate.tolist(),
            "row_pending": self._row_pending.tolist(),
            "recycled": list(self.recycled),
        }

    def restore_fold_state(self, state: dict[str, Any]) -> None:
        self._fold_rate = [
            FoldRates((tuple(e[:-1]), e[-1]) for e in entries) for entries in state["rates"]
        ]
        self._fold_pending_ids = [None for _ in self.levels]
        for level_idx, entries in enumerate(state["pending"]):
            self._fold_pending[level_idx].clear()
            self._fold_pending[level_idx].update((tuple(e[:-1]), e[-1]) for e in entries)
        self._row_rate = np.array(state["row_rate"], dtype=np.float64)
        self._row_pending = np.array(state["row_pending"], dtype=np.int64)
        self.recycled = [int(n) for n in state["recycled"]]

    def ancestors(self, row: int) -> list[int]:
        """Rows of the scopes that contain ``row``'s scope (fleet first).

        >>> t = ScopeTable([[], ["service"], ["service", "route"]], max_per_level=5)
        >>> _ = t.rows({"service": ["a"], "route": ["x"], "app": [""]})
        >>> t.ancestors(2)
        [0, 1]
        """
        label = self.labels[row]
        out = []
        for level_idx, level in enumerate(self.levels):
            if len(level) < len(label) and set(level) <= set(label):
                found = self._row_of.get((level_idx, tuple(label[d] for d in level)))
                if found is not None:
                    out.append(found)
        return out

    def parents(self) -> I64:
        """Each row's closest containing scope, ``ancestors(row)[-1]`` (-1: none),
        with the containing levels of each level worked out once.

        >>> t = ScopeTable([[], ["service"], ["service", "route"]], max_per_level=5)
        >>> _ = t.rows({"service": ["a"], "route": ["x"], "app": [""]})
        >>> t.parents().tolist()
        [-1, 0, 1]
        """
        within = [
            [(j, inner) for j, inner in enumerate(self.levels)
             if len(inner) < len(level) and set(inner) <= set(level)][::-1]
            for level in self.levels
        ]
        out = []
        for label, level_idx in zip(self.labels, self.level_of_row, strict=True):
            parent = -1
            for j, inner in within[level_idx]:
                found = self._row_of.get((j, tuple(label[d] for d in inner)))
                if found is not None:
                    parent = found
                    break
            out.append(parent)
        return np.array(out, np.int64)

    def restore(self, labels: Sequence[dict[str, str]], level_of_row: Sequence[int]) -> None:
        """Rebuild rows in the same order as a snapshot took them."""
        self._lookup.reset()
        self.labels, self.level_of_row = [], []
        self._level_of_row_at = -1
        self._row_of.clear()
        self._other_row.clear()
        self._per_level = [0] * len(self.levels)
        for label, level in zip(labels, level_of_row, strict=True):
            values = tuple(label[d] for d in self.levels[level])
            if _is_other(values):
                self._other_row[level] = self._new_row(level, dict(label))
            else:
                self._per_level[level] += 1
                self._row_of[(level, values)] = self._new_row(level, dict(label))
