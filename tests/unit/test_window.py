"""Window counting against a plain per-record oracle."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from statuswatch.core.window import WindowCounter

SIZE = 1_000


def oracle(ts: list[int], cols: list[int], size: int) -> Counter[tuple[int, int]]:
    return Counter(((t // size) * size, c) for t, c in zip(ts, cols, strict=True))


def counted(windows: list) -> Counter[tuple[int, int]]:
    out: Counter[tuple[int, int]] = Counter()
    for w in windows:
        for col, n in enumerate(w.counts[0].tolist()):
            if n:
                out[(w.start_ms, col)] += n
    return out


records = st.lists(
    st.tuples(st.integers(0, 20_000), st.integers(0, 3)), min_size=1, max_size=300
)


@given(records, st.integers(1, 50))
@settings(max_examples=150, deadline=None)
def test_sorted_input_in_any_batching_matches_oracle(recs, batch):
    recs = sorted(recs)
    w = WindowCounter(SIZE, lateness_ms=0)
    closed = []
    for i in range(0, len(recs), batch):
        chunk = recs[i : i + batch]
        ts = np.array([t for t, _ in chunk], np.int64)
        cols = np.array([c for _, c in chunk], np.int64)
        assert w.add(ts, np.zeros((1, len(chunk)), np.int64), cols, n_rows=1, n_cols=4) == 0
        closed += w.close_ready(now_ms=0)
    closed += w.close_all()
    assert counted(closed) == oracle([t for t, _ in recs], [c for _, c in recs], SIZE)
    starts = [c.start_ms for c in closed]
    assert starts == list(range(starts[0], starts[-1] + SIZE, SIZE)), "gap-free, in order"


@given(records, st.randoms(use_true_random=False))
@settings(max_examples=150, deadline=None)
def test_shuffles_within_lateness_match_sorted(recs, rnd):
    """Any arrival order whose delay stays within the lateness counts like sorted input."""
    lateness = 3 * SIZE
    recs = sorted(recs)
    # Delay each record by at most `lateness` of event time: arrival key = ts + jitter.
    arrival = sorted(recs, key=lambda r: r[0] + rnd.randint(0, lateness))
    w = WindowCounter(SIZE, lateness_ms=lateness)
    closed = []
    for t, c in arrival:
        w.add(np.array([t]), np.zeros((1, 1), np.int64), np.array([c]), n_rows=1, n_cols=4)
        closed += w.close_ready(now_ms=0)
    closed += w.close_all()
    assert w.late_records == 0
    assert counted(closed) == oracle([t for t, _ in recs], [c for _, c in recs], SIZE)


def test_records_behind_closed_windows_are_late_and_not_counted():
    w = WindowCounter(SIZE, lateness_ms=0)
    one = np.zeros((1, 1), np.int64)
    w.add(np.array([500]), one, np.array([0]), n_rows=1, n_cols=1)
    w.add(np.array([2_500]), one, np.array([0]), n_rows=1, n_cols=1)
    closed = w.close_ready(now_ms=0)
    assert [c.start_ms for c in closed] == [0, 1_000]
    assert w.add(np.array([900]), one, np.array([0]), n_rows=1, n_cols=1) == 1
    assert w.late_records == 1
    rest = w.close_all()
    assert sum(int(c.counts.sum()) for c in closed + rest) == 2


def test_idle_partition_stops_holding_the_watermark():
    w = WindowCounter(SIZE, lateness_ms=0, idle_timeout_ms=5_000)
    one = np.zeros((1, 1), np.int64)
    w.add(np.array([100]), one, np.array([0]), n_rows=1, n_cols=1, partition=0, now_ms=0)
    w.add(np.array([9_100]), one, np.array([0]), n_rows=1, n_cols=1, partition=1, now_ms=0)
    assert w.close_ready(now_ms=1_000) == []  # partition 0 holds the watermark at 100
    w.add(np.array([9_200]), one, np.array([0]), n_rows=1, n_cols=1, partition=1, now_ms=6_000)
    assert [c.start_ms for c in w.close_ready(now_ms=6_000)][-1] == 8_000


def test_silence_closes_empty_windows_by_wall_clock():
    w = WindowCounter(SIZE, lateness_ms=0, idle_timeout_ms=2_000)
    w.add(np.array([100]), np.zeros((1, 1), np.int64), np.array([0]), n_rows=1, n_cols=1, now_ms=0)
    closed = w.close_ready(now_ms=10_000)
    assert [int(c.counts.sum()) for c in closed] == [1] + [0] * 9


def test_pending_offsets_track_open_windows():
    w = WindowCounter(SIZE, lateness_ms=0)
    one = np.zeros((1, 2), np.int64)
    w.add(np.array([100, 1_100]), one, np.array([0, 0]), n_rows=1, n_cols=1,
          partition=3, offsets=np.array([40, 41]))
    assert w.pending_min_offset(3) == 40
    w.close_ready(now_ms=0)  # closes [0, 1000)
    assert w.pending_min_offset(3) == 41
    w.close_all()
    assert w.pending_min_offset(3) is None


def test_multiple_scope_levels_count_each_record_once_per_level():
    w = WindowCounter(SIZE, lateness_ms=0)
    rows = np.array([[0, 0, 0], [1, 2, -1]])
    w.add(np.array([1, 2, 3]), rows, np.array([0, 1, 1]), n_rows=3, n_cols=2)
    (win,) = w.close_all()
    assert win.counts.tolist() == [[1, 2], [1, 0], [0, 1]]


def test_assigned_partition_holds_the_watermark_until_read_or_idle():
    w = WindowCounter(SIZE, lateness_ms=0, idle_timeout_ms=5_000)
    one = np.zeros((1, 1), np.int64)
    w.assign([0, 1], now_ms=0)
    w.add(np.array([9_100]), one, np.array([0]), n_rows=1, n_cols=1, partition=0, now_ms=0)
    assert w.close_ready(now_ms=1_000) == []  # partition 1 not read yet
    w.add(np.array([500]), one, np.array([0]), n_rows=1, n_cols=1, partition=1, now_ms=1_000)
    closed = w.close_ready(now_ms=1_000)
    assert [c.start_ms for c in closed] == [] and w.late_records == 0
    w.add(np.array([9_000]), one, np.array([0]), n_rows=1, n_cols=1, partition=1, now_ms=2_000)
    closed = w.close_ready(now_ms=2_000)
    assert closed[0].start_ms == 0 and int(closed[0].counts.sum()) == 1
    w.revoke([1])
    w.add(np.array([20_000]), one, np.array([0]), n_rows=1, n_cols=1, partition=0, now_ms=3_000)
    assert w.close_ready(now_ms=3_000)[-1].end_ms == 20_000


def test_revoke_drops_the_partition_share_of_open_windows():
    w = WindowCounter(SIZE, lateness_ms=0)
    one = np.zeros((1, 1), np.int64)
    w.add(np.array([100]), one, np.array([0]), n_rows=1, n_cols=1, partition=0,
          offsets=np.array([7]))
    w.add(np.array([200, 300]), np.zeros((1, 2), np.int64), np.array([0, 0]), n_rows=1,
          n_cols=1, partition=1, offsets=np.array([3, 4]))
    w.revoke([1])
    assert w.pending_min_offset(1) is None and w.pending_min_offset(0) == 7
    (win,) = w.close_all()
    assert win.counts.tolist() == [[1]]  # partition 1's two records went with it


def test_rereads_after_a_rebalance_count_once_and_are_not_late():
    w = WindowCounter(SIZE, lateness_ms=0)

    def add(ts: list[int], offsets: list[int], seen_below: int | None = None) -> int:
        return w.add(np.array(ts), np.zeros((1, len(ts)), np.int64), np.zeros(len(ts), np.int64),
                     n_rows=1, n_cols=1, offsets=np.array(offsets), seen_below=seen_below)

    add([100, 600, 1_100, 2_600], [0, 1, 2, 3])
    closed = w.close_ready(now_ms=0)  # [0, 1000) and [1000, 2000)
    assert [c.start_ms for c in closed] == [0, 1_000]
    w.revoke([0])  # the open window's record (offset 3) leaves with the partition
    # Re-delivered from an older commit: offsets 1-2 were counted in closed windows,
    # offset 3 in the dropped share; offset 4 is new and genuinely late.
    assert add([600, 1_100, 2_600, 500], [1, 2, 3, 4], seen_below=4) == 1
    assert w.late_records == 1
    closed += w.close_all()
    assert [int(c.counts.sum()) for c in closed] == [2, 1, 1]  # each record counted once
