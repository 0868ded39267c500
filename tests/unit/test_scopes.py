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
