from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from statuswatch.core.scopes import OTHER, CodeTable, ScopeTable

LEVELS = [[], ["service"], ["service", "route"], ["app"]]


def dims(service, route, app):
    return {"service": list(service), "route": list(route), "app": list(app)}


def test_rows_match_per_record_oracle():
    t = ScopeTable(LEVELS, max_per_level=100)
    d = dims(["a", "a", "b", ""], ["x", "y", "x", "x"], ["1", "", "2", "1"])
    rows = t.rows(d)
    labels = [[t.labels[r] if r >= 0 else None for r in level] for level in rows.tolist()]
    assert labels[0] == [{}] * 4
    assert labels[1] == [{"service": "a"}, {"service": "a"}, {"service": "b"}, None]
    assert labels[2] == [
        {"service": "a", "route": "x"},
        {"service": "a", "route": "y"},
        {"service": "b", "route": "x"},
        None,
    ]
    assert labels[3] == [{"app": "1"}, None, {"app": "2"}, {"app": "1"}]


@given(st.lists(st.text(alphabet="abcdefgh", min_size=1, max_size=3), min_size=1, max_size=200))
def test_cap_bounds_rows_and_folds_the_rest(services):
    t = ScopeTable([[], ["service"]], max_per_level=5)
    n = len(services)
    rows = t.rows(dims(services, [""] * n, [""] * n))
    assert len(t) <= 1 + 5 + 1
    distinct = len(set(services))
    assert t.folded[1] == max(0, distinct - 5)
    for value, row in zip(services, rows[1].tolist(), strict=True):
        assert t.labels[row] in ({"service": value}, {"service": OTHER})


def test_rows_are_stable_across_batches_and_restore():
    t = ScopeTable(LEVELS, max_per_level=10)
    first = t.rows(dims(["a", "b"], ["x", "x"], ["1", "2"]))
    again = t.rows(dims(["b", "a"], ["x", "x"], ["2", "1"]))
    assert first[:, ::-1].tolist() == again.tolist()
    u = ScopeTable(LEVELS, max_per_level=10)
    u.restore(t.labels, t.level_of_row)
    assert u.rows(dims(["a", "b"], ["x", "x"], ["1", "2"])).tolist() == first.tolist()


def test_code_table_assigns_columns_in_order_of_first_sight():
    t = CodeTable()
    assert t.columns(np.array([503, 200, 503])).tolist() == [1, 0, 1]
    assert t.codes == [200, 503]
    assert t.column(404) == -1
    assert t.columns(np.array([404])).tolist() == [2]


def feed(t: ScopeTable, volumes: dict[str, int]) -> None:
    """One window's records: ``volumes[name]`` records of service ``name``."""
    services = [name for name, n in volumes.items() for _ in range(n)]
    n = len(services)
    t.rows(dims(services, [""] * n, [""] * n))


def test_top_k_by_volume_a_heavy_late_scope_takes_the_lightest_row():
    t = ScopeTable([[], ["service"]], max_per_level=3)
    volumes = {"a": 50, "b": 2, "c": 40}
    feed(t, volumes)
    late = {**volumes, "d": 30, "e": 1}  # d is heavy but came after the cap was full
    swaps = []
    for _ in range(30):
        feed(t, late)
        swaps += t.rebalance(alpha=0.2, protected=set())
    tracked = {t.labels[r]["service"] for (lvl, _), r in t._row_of.items() if lvl == 1}
    assert tracked == {"a", "c", "d"}  # the top 3 by volume
    assert [(s.old, s.new) for s in swaps] == [({"service": "b"}, {"service": "d"})]
    assert t.recycled == [0, 1]
    # b's records now go to 'other'; d's to the row b had
    rows = t.rows(dims(["b", "d"], ["", ""], ["", ""]))[1].tolist()
    assert t.labels[rows[0]] == {"service": OTHER}
    assert rows[1] == swaps[0].row and t.labels[rows[1]] == {"service": "d"}


@given(
    st.lists(st.dictionaries(st.sampled_from([*"abcdefghij", OTHER]), st.integers(0, 40),
                             min_size=1),
             min_size=1, max_size=25),
    st.sets(st.integers(1, 5)),
)
def test_rebalance_keeps_the_cap_never_moves_protected_rows_and_swaps_only_heavier(
    windows, protected
):
    cap = 4
    t = ScopeTable([[], ["service"]], max_per_level=cap)
    for volumes in windows:
        feed(t, volumes)
        before = [dict(label) for label in t.labels]
        for s in t.rebalance(alpha=0.5, protected=protected):
            assert s.row not in protected
            assert before[s.row] == s.old and t.labels[s.row] == s.new
            assert s.old != {"service": OTHER} and s.new != {"service": OTHER}
        assert sum(1 for (lvl, _) in t._row_of if lvl == 1) <= cap
        names = [label["service"] for label in t.labels[1:] if label]
        assert len(names) == len(set(names))  # a scope has one row at most, "other" included
        for (lvl, values), row in t._row_of.items():  # the index agrees with the labels
            assert t.labels[row] == dict(zip(t.levels[lvl], values, strict=True))


def test_fold_state_survives_a_snapshot_as_plain_json():
    import json

    t = ScopeTable([[], ["service"]], max_per_level=1)
    feed(t, {"a": 1, "b": 5})
    t.rebalance(alpha=0.5, protected={1})
    state = json.loads(json.dumps(t.fold_state()))
    u = ScopeTable([[], ["service"]], max_per_level=1)
    u.restore(t.labels, t.level_of_row)
    u.restore_fold_state(state)
    assert u.fold_state() == t.fold_state()


@given(st.lists(
    st.lists(st.tuples(st.sampled_from(["", "a", "b", "c", "d", "e", OTHER]),
                       st.one_of(st.text(alphabet="xyz", max_size=3), st.just(OTHER))),
             min_size=1, max_size=40),
    min_size=1, max_size=8,
))
def test_multi_dimension_rows_match_the_labels_across_batches(batches):
    """The service+route level's dense row table, rebuilt as new values appear, always
    gives each record the row labelled with its own values (or -1 if one is empty)."""
    t = ScopeTable(LEVELS, max_per_level=1_000)
    for batch in batches:
        services, routes = zip(*batch, strict=True)
        rows = t.rows(dims(services, routes, [""] * len(batch)))[2].tolist()
        for service, route, row in zip(services, routes, rows, strict=True):
            if not service or not route:
                assert row == -1
            else:
                assert t.labels[row] == {"service": service, "route": route}
        labels = [tuple(sorted(label.items())) for label in t.labels]
        assert len(labels) == len(set(labels))  # one row per label set, "other" included


def test_a_one_off_burst_does_not_evict_a_steady_scope():
    t = ScopeTable([[], ["service"]], max_per_level=1)
    for _ in range(200):
        feed(t, {"steady": 10})
        assert t.rebalance(alpha=0.023, protected=set()) == []
    feed(t, {"steady": 10, "junk": 25})  # one window of a scanner's junk service
    assert t.rebalance(alpha=0.023, protected=set()) == []


def test_new_multi_dimension_scopes_take_rows_in_order_of_first_sight():
    # "a" is interned first (its record lacks a route), so (a, q) has the smaller ids;
    # yet (b, q), seen first, gets the only free row
    t = ScopeTable([[], ["service", "route"]], max_per_level=1)
    rows = t.rows(dims(["a", "b", "a"], ["", "q", "q"], [""] * 3))[1].tolist()
    assert rows[0] == -1
    assert t.labels[rows[1]] == {"service": "b", "route": "q"}
    assert t.labels[rows[2]] == {"service": OTHER, "route": OTHER}


def test_a_scope_named_other_shares_the_fold_row_and_survives_restore():
    """Its label would collide with the fold row's (duplicate metric series), and a
    restore would take it for the fold row."""
    t = ScopeTable([[], ["service"]], max_per_level=5)
    rows = t.rows(dims([OTHER, "a", OTHER], [""] * 3, [""] * 3))[1].tolist()
    assert rows[0] == rows[2] != rows[1]
    assert t.labels[rows[0]] == {"service": OTHER}
    for _ in range(3):  # heavy, yet never handed a row of its own
        t.rows(dims([OTHER] * 50, [""] * 50, [""] * 50))
        assert t.rebalance(alpha=1.0, protected=set()) == []
    u = ScopeTable([[], ["service"]], max_per_level=5)
    u.restore(t.labels, t.level_of_row)
    assert u.rows(dims([OTHER, "a", "b"], [""] * 3, [""] * 3))[1].tolist() == [
        rows[0], rows[1], len(t.labels)]


def _faded_per_scope(rates, pending, alpha):
    """The per-scope loops ``FoldRates.fade`` replaces: its reference."""
    out = dict(rates)
    for key in out.keys() - pending.keys():
        out[key] *= 1.0 - alpha
    for key, n in pending.items():
        out[key] = out.get(key, 0.0) + alpha * (n - out.get(key, 0.0))
    return out


names = st.tuples(st.sampled_from(["a", "b", "c", "d", "e", "f"]), st.sampled_from(["x", "y"]))
rate_values = st.sampled_from([0.0, 0.5, 1.0, 3.0]) | st.floats(0, 1e6)


@given(
    rates=st.dictionaries(names, rate_values),
    pendings=st.lists(st.dictionaries(names, st.integers(0, 10_000)), max_size=4),
    alpha=st.sampled_from([1.0, 0.5, 0.0231]) | st.floats(1e-6, 1.0),
    keep=st.integers(0, 12),
    bars=st.tuples(rate_values, rate_values),
    swaps=st.lists(st.tuples(names, rate_values), max_size=6),
)
def test_folded_rates_fade_rank_and_swap_as_a_dict_of_rates_did(
    rates, pendings, alpha, keep, bars, swaps
):
    from statuswatch.core.scopes import FoldRates, _heaviest_first

    held, reference = FoldRates(rates.items()), dict(rates)
    for pending in pendings:
        held.fade(pending, alpha)
        reference = _faded_per_scope(reference, pending, alpha)
        assert held.items() == list(reference.items())  # same floats, same key order
    at_least, above = bars
    ranked = sorted(reference.items(), key=_heaviest_first)
    assert held.heaviest(keep) == ranked[:keep]
    assert held.heaviest(keep, at_least, above) == [
        kv for kv in ranked if kv[1] >= at_least and kv[1] > above][:keep]
    for key, rate in swaps:  # a folded scope takes a row, the row's scope folds
        if reference:
            gone = next(iter(reference))
            held.pop(gone)
            del reference[gone]
        held.set(key, rate)
        reference[key] = rate
        assert held.items() == list(reference.items())
    held.keep_heaviest(keep)
    assert held.items() == sorted(reference.items(), key=_heaviest_first)[:keep]


@given(
    rates=st.dictionaries(st.sampled_from("abcdefgh").map(lambda v: (v,)), rate_values),
    batches=st.lists(st.lists(st.integers(0, 6), max_size=6), max_size=5),
    calls=st.lists(
        st.tuples(st.sampled_from([1.0, 0.5, 0.0231]), st.booleans(), st.integers(0, 9)),
        min_size=1, max_size=4,
    ),
)
def test_counts_by_id_fade_as_the_pending_dict_did(rates, batches, calls):
    """Counts by value id drain in the order the pending dict took them (by first
    batch, then id); fading from ids equals fading from that dict, across swaps
    (pop and set) and a new generation of ids."""
    from statuswatch.core.scopes import FoldRates, IdCounts

    by_id, by_name = FoldRates(rates.items()), FoldRates(rates.items())
    generation = [("",)] + [(v,) for v in "abcdefg"]
    for alpha, new_generation, swapped in calls:
        if new_generation:  # the same names under fresh ids
            generation = [("",)] + [(v,) for v in "gfedcba"]
        held, pending = IdCounts(generation), {}
        for batch in batches:
            freq = np.bincount(np.array(batch, np.int64), minlength=1)
            held.add(freq)
            for i in np.flatnonzero(freq).tolist():  # the per-id loop counts replace
                key = generation[i]
                pending[key] = pending.get(key, 0) + int(freq[i])
        ids, counts = held.drain()
        drained = zip(ids.tolist(), counts.tolist(), strict=True)
        assert [(generation[i], n) for i, n in drained] == list(pending.items())
        by_id.fade_ids(ids, counts, generation, alpha)
        by_name.fade(pending, alpha)
        assert by_id.items() == by_name.items()
        if len(by_id) and swapped:  # a folded scope takes a row, the row's scope folds
            gone = by_id.items()[swapped % len(by_id)][0]
            for r in (by_id, by_name):
                r.pop(gone)
                r.set(("h",) if gone != ("h",) else ("a",), float(swapped))
            assert by_id.items() == by_name.items()
        if swapped > 5:  # too many candidates: only the heaviest stay
            by_id.keep_heaviest(3)
            by_name.keep_heaviest(3)
            assert by_id.items() == by_name.items()
