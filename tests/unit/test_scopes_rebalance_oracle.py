"""ScopeTable's top-K bookkeeping against a plain per-scope model of it.

The table keeps folded scopes' counts by value id, their rates in arrays and the
row tables as caches; the model keeps dicts of scope -> count and rate, updated one
scope at a time, and ranks by sorting everything. Every batch's rows, every
rebalance's swaps and the rates must be the same, snapshot and restore included.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statuswatch.core.scopes import (
    MAX_SWAPS_PER_CALL,
    MIN_SWAP_RATE,
    OTHER,
    SWAP_RATIO,
    ScopeTable,
)

LEVELS = [[], ["service"], ["service", "route"], ["app"]]
Key = tuple[str, ...]


class Model:
    """The folded scopes' counts and rates, one dict entry per scope."""

    def __init__(self, table: ScopeTable) -> None:
        self.levels = table.levels
        self.row_of: list[dict[Key, int]] = [{} for _ in self.levels]
        self.other: dict[int, int] = {}
        self.pending: list[Counter[Key]] = [Counter() for _ in self.levels]
        self.rates: list[dict[Key, float]] = [{} for _ in self.levels]
        self.row_pending: Counter[int] = Counter()
        self.row_rate: dict[int, float] = {}
        self.max_candidates = 0  # set by the test

    def learn_new_rows(self, table: ScopeTable, seen: int) -> None:
        """Rows the table created since it had ``seen``: first sight is its business."""
        for row in range(seen, len(table.labels)):
            level = table.level_of_row[row]
            values = tuple(table.labels[row][d] for d in self.levels[level])
            if values and all(v == OTHER for v in values):
                self.other[level] = row
            else:
                self.row_of[level][values] = row

    def expected_row(self, level: int, values: Key) -> int:
        if "" in values:
            return -1
        if values and all(v == OTHER for v in values):
            return self.other[level]
        return self.row_of[level].get(values, self.other.get(level, -2))

    def count(self, level: int, values: Key, row: int, n: int) -> None:
        if row == self.other.get(level) and not all(v == OTHER for v in values):
            self.pending[level][values] += n
        self.row_pending[row] += n

    def rebalance(self, alpha: float, protected: set[int]) -> list[tuple[int, int, Key, Key]]:
        rows = set(self.row_rate) | set(self.row_pending)
        for row in rows:
            rate = self.row_rate.get(row, 0.0)
            self.row_rate[row] = rate + alpha * (self.row_pending[row] - rate)
        self.row_pending.clear()
        out = []
        for level in range(len(self.levels)):
            rates, pending = self.rates[level], self.pending[level]
            for key in rates.keys() - pending.keys():
                rates[key] *= 1.0 - alpha
            for key, n in pending.items():
                old = rates.get(key, 0.0)
                rates[key] = old + alpha * (n - old)
            pending.clear()
            if len(rates) > self.max_candidates:
                kept = sorted(rates.items(), key=lambda kv: (-kv[1], kv[0]))
                self.rates[level] = rates = dict(kept[: self.max_candidates // 2])
            if level not in self.other or not rates or max(rates.values()) < MIN_SWAP_RATE:
                continue
            tracked = sorted(
                (self.row_rate.get(row, 0.0), row, values)
                for values, row in self.row_of[level].items() if row not in protected
            )
            if not tracked:
                continue
            heavier = sorted(
                (kv for kv in rates.items()
                 if kv[1] >= MIN_SWAP_RATE and kv[1] > SWAP_RATIO * tracked[0][0]),
                key=lambda kv: (-kv[1], kv[0]),
            )
            for (values, rate), (tracked_rate, row, old) in zip(
                heavier[:MAX_SWAPS_PER_CALL], tracked, strict=False
            ):
                if rate <= SWAP_RATIO * tracked_rate:
                    break
                del self.row_of[level][old]
                del rates[values]
                rates[old] = tracked_rate
                self.row_rate[row] = rate
                self.row_of[level][values] = row
                out.append((row, level, old, values))
        return out


record = st.tuples(st.integers(0, 4), st.integers(0, 3), st.integers(0, 9))
step = st.tuples(
    st.lists(record, min_size=1, max_size=60),
    st.sampled_from(["rows", "rows", "rows", "rows_of", "snapshot"]),
    st.sampled_from([1.0, 0.5, 0.137]),
    st.sets(st.integers(0, 20), max_size=3),
)


@settings(max_examples=80, deadline=None)
@given(steps=st.lists(step, min_size=1, max_size=14), cap=st.integers(1, 3),
       max_candidates=st.sampled_from([2, 5, 2_000]))
def test_rows_swaps_and_rates_match_a_per_scope_model(steps, cap, max_candidates):
    import statuswatch.core.scopes as scopes_module

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scopes_module, "MAX_CANDIDATES", max_candidates)
        _run(steps, cap, max_candidates)


def _run(steps, cap, max_candidates):
    table = ScopeTable(LEVELS, max_per_level=cap)
    model = Model(table)
    model.max_candidates = max_candidates
    model.learn_new_rows(table, 0)
    for records, how, alpha, protected in steps:
        service = [f"s{s}" if s < 4 else OTHER for s, _, _ in records]
        route = [f"r{r}" if r else "" for _, r, _ in records]
        app = [f"a{a}" if a else "" for _, _, a in records]
        columns = {"service": service, "route": route, "app": app}
        seen = len(table.labels)
        if how == "rows_of":  # counts summed per scope, as another process sends them
            scopes = Counter(
                (level, tuple(columns[d][i] for d in dims_))
                for i in range(len(records)) for level, dims_ in enumerate(table.levels)
            )
            scopes = Counter({k: n for k, n in scopes.items() if "" not in k[1]})
            got = table.rows_of(list(scopes), list(scopes.values())).tolist()
            model.learn_new_rows(table, seen)
            for ((level, values), n), row in zip(scopes.items(), got, strict=True):
                assert row == model.expected_row(level, values)
                model.count(level, values, row, n)
        else:
            got = table.rows(columns).tolist()
            model.learn_new_rows(table, seen)
            for level, dims_ in enumerate(table.levels):
                for i in range(len(records)):
                    values = tuple(columns[d][i] for d in dims_)
                    assert got[level][i] == model.expected_row(level, values)
                    if got[level][i] >= 0:
                        model.count(level, values, got[level][i], 1)
        if how == "snapshot":  # continue in a table restored from plain JSON
            state = json.loads(json.dumps(table.fold_state()))
            restored = ScopeTable(LEVELS, max_per_level=cap)
            restored.restore(table.labels, table.level_of_row)
            restored.restore_fold_state(state)
            table = restored
        swaps = table.rebalance(alpha, protected)
        assert [(s.row, s.level, tuple(s.old.values()), tuple(s.new.values())) for s in swaps] \
            == model.rebalance(alpha, protected)
        state = table.fold_state()
        for level, entries in enumerate(state["rates"]):
            assert {tuple(e[:-1]): e[-1] for e in entries} == model.rates[level]
            assert len(entries) == len(model.rates[level])
        assert all(p == [] for p in state["pending"])
        for row, rate in model.row_rate.items():
            assert state["row_rate"][row] == rate
