"""Partial windows: the record round-trips, and the two stages in process (stage-1
counting per partition, partials encoded and decoded, merged into a second detector)
give the windows and alerts of one detector reading every partition."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from statuswatch.config import DecodeConfig, KafkaConfig, Settings
from statuswatch.core.detector import Detector
from statuswatch.core.partials import Partial, merge_partial
from statuswatch.core.window import ClosedWindow
from statuswatch.errors import DecodeError
from statuswatch.shell.aggregate import Aggregator, offset_metadata, parse_offset_metadata
from statuswatch.shell.merging import NEVER_MS
from statuswatch.shell.sources import RawBatch
from statuswatch.simulate.encode import encode
from statuswatch.simulate.incidents import Incident
from statuswatch.simulate.spec import SimSpec
from statuswatch.simulate.traffic import generate
from tests.unit.test_input_mostly_invalid import OFF, kong

T0 = 1_680_566_400_000
ONSET = T0 + 10 * 60_000
PARTITIONS = 4

labels = st.dictionaries(st.sampled_from(["service", "route", "app"]), st.text(max_size=8))


@given(
    scopes=st.lists(labels, min_size=1, max_size=5),
    cells=st.lists(st.tuples(st.integers(0, 4), st.integers(100, 599), st.integers(0, 10**9)),
                   max_size=20),
    watermark=st.none() | st.integers(0, 2**50),
    idle=st.none() | st.integers(0, 10**7),
    invalid=st.dictionaries(st.text(min_size=1, max_size=12), st.integers(0, 10**6)),
)
def test_a_partial_round_trips(scopes, cells, watermark, idle, invalid):
    cells = [(i % len(scopes), c, n) for i, c, n in cells]
    p = Partial("logs", 7, 10_000, 20_000, watermark, idle, scopes, cells, 12, invalid, 3)
    assert Partial.decode(p.encode()) == p


@pytest.mark.parametrize("raw", [
    b"", b"[]", b'{"v":1}', b'{"v":1,"topic":"t","partition":0,"start_ms":null,"end_ms":null,'
    b'"watermark_ms":null,"idle_ms":null,"scopes":[],"cells":[[0,200,1]],"records":0,'
    b'"invalid":{},"late":0}',
])
def test_what_is_not_a_partial_is_refused_with_a_reason(raw):
    with pytest.raises(DecodeError) as exc:
        Partial.decode(raw)
    assert exc.value.reason == "invalid_partial"


def test_offset_metadata_round_trips_and_foreign_metadata_means_nothing():
    assert parse_offset_metadata(offset_metadata(None, 5)) == (None, 5)
    assert parse_offset_metadata('{"v":9}') == (None, None)
    assert parse_offset_metadata("not json") == (None, None)


def partitioned_traffic() -> list[RawBatch]:
    """Twenty minutes with a 403 freeze of half the apps, keyed by app into partitions,
    as batches in the order a consumer would interleave them."""
    freeze = Incident("freeze", ONSET, ONSET + 5 * 60_000, code=403, fraction=0.5)
    spec = SimSpec(seed=5, rate=120, n_apps=60, incidents=(freeze,))
    batches, next_offset = [], [0] * PARTITIONS
    for chunk in generate(spec, T0, T0 + 20 * 60_000, 5_000):
        values = encode("kong", chunk, spec)
        part = chunk.app % PARTITIONS
        for p in range(PARTITIONS):
            take = [values[i] for i in np.flatnonzero(part == p).tolist()]
            offsets = np.arange(next_offset[p], next_offset[p] + len(take), dtype=np.int64)
            next_offset[p] += len(take)
            batches.append(RawBatch("logs", p, offsets, take))
    return batches


def window_log(detector: Detector, out: list[tuple[int, dict[tuple[str, int], int]]]) -> None:
    def listen(w: ClosedWindow) -> None:
        rows, cols = np.nonzero(w.counts)
        out.append((w.start_ms, {
            (str(sorted(detector.scopes.labels[r].items())), detector.codes.codes[c]):
            int(w.counts[r, c]) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)}))
    detector.window_listener = listen


@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "chunked"])
@pytest.mark.parametrize("in_flight", [False, True], ids=["committed-at-once", "in-flight"])
def test_two_stages_in_process_equal_one_detector(in_flight, chunked, monkeypatch):
    """``in_flight``: each partition's transaction is committed only after the next
    batches were taken (and more windows closed), as when the worker's loop goes on
    reading while a transaction runs. ``chunked``: every window's partial is cut into
    chunks of a few scopes, and stage 2 closes what it can after each record it reads
    (a poll may end anywhere in a transaction's records)."""
    if chunked:
        monkeypatch.setattr("statuswatch.core.partials.MAX_PARTIAL_BYTES", 300)
    settings = Settings()
    batches = partitioned_traffic()

    one = Detector(settings)
    one_windows: list[tuple[int, dict[tuple[str, int], int]]] = []
    window_log(one, one_windows)
    one_alerts = []
    for b in batches:
        one_alerts += one.process(
            b.values, now_ms=0, partition=b.partition, offsets=b.offsets).events
    one_alerts += one.finish()

    stage1 = Aggregator(settings)
    for p in range(PARTITIONS):
        stage1.own(p, 0)
    two = Detector(settings)
    two.windows.idle_timeout_ms = NEVER_MS  # as stage 2 runs it: only stage 1 says idle
    two_windows: list[tuple[int, dict[tuple[str, int], int]]] = []
    window_log(two, two_windows)
    two_alerts = []

    transactions: dict[int, tuple[int, list[Partial]]] = {}
    seen: list[tuple[int, list[Partial]]] = []

    def begin(now_ms: int) -> None:  # one transaction per partition
        for p, part in stage1.parts.items():
            if p not in transactions and part.unwritten():
                transactions[p] = (len(part.pending), stage1.outgoing(p, now_ms))
                seen.append(transactions[p])

    def commit(now_ms: int) -> None:
        for p, (taken, sent) in transactions.items():
            for partial in sent:
                merge_partial(two, Partial.decode(partial.encode()), now_ms=now_ms)
                if chunked:
                    two_alerts.extend(two.close_ready(now_ms))
            stage1.written(p, now_ms, taken, sent[-1])
        transactions.clear()

    def deliver(now_ms: int) -> None:
        if in_flight:  # what began last time commits now, then the next begins
            commit(now_ms)
            begin(now_ms)
        else:
            begin(now_ms)
            commit(now_ms)

    for i, b in enumerate(batches):
        stage1.take(b, 0)
        if i % PARTITIONS == PARTITIONS - 1:
            stage1.close(0)
            deliver(0)
            two_alerts.extend(two.close_ready(0))
    end = round(settings.window.idle_timeout_seconds * 1000)  # every partition goes idle
    stage1.close(end)
    assert not any(part.idle_reported for part in stage1.parts.values()), "records wait"
    stage1.status.consumer_lag = dict.fromkeys(range(PARTITIONS), 0)  # read to the end
    stage1.close(end)
    deliver(end)
    deliver(end)
    assert not transactions and not any(part.unwritten() for part in stage1.parts.values())
    two_alerts.extend(two.close_ready(end))

    last = one_windows[-1][0]
    assert len(one_windows) == 120
    assert [w for w in two_windows if w[0] <= last] == one_windows
    assert two.counters.records == one.counters.records == sum(len(b) for b in batches)
    assert two.counters.codes == one.counters.codes
    got = [e.to_json() for e in two_alerts if e.window_end_ms <= last + 10_000]
    ref = [e.to_json() for e in one_alerts]
    assert any(a["code"] == 403 and a["scope"] == {} for a in ref)
    assert got == ref
    if chunked:
        assert max(partial.chunk for _, sent in seen for partial in sent) >= 3


def test_a_second_partial_of_one_window_and_partition_is_dropped():
    detector = Detector(Settings())
    p = Partial("logs", 2, 0, 10_000, 10_000, None, [{}], [(0, 200, 5)])
    assert merge_partial(detector, p, now_ms=0, offset=1)
    assert not merge_partial(detector, p, now_ms=0, offset=2)
    other = Partial("logs", 3, 0, 10_000, 10_000, None, [{}], [(0, 200, 2)])
    assert merge_partial(detector, other, now_ms=0, offset=3)
    closed = detector.windows.close_ready(0)
    assert [int(w.counts.sum()) for w in closed] == [7]


def test_the_chunks_of_a_window_count_once_each_and_a_repeated_chunk_is_dropped():
    """A partition's window in three chunks, then the same three again (a new owner
    writing the window its previous owner wrote): each chunk counts once."""
    detector = Detector(Settings())
    labels = [{"service": f"s{i}"} for i in range(3)]
    parts = [Partial("logs", 2, 0, 10_000, None, None, [labels[i]], [(0, 200, i + 1)], chunk=i)
             for i in range(3)]
    parts[-1] = replace(parts[-1], watermark_ms=10_000)
    assert [merge_partial(detector, p, now_ms=0) for p in parts] == [True] * 3
    assert [merge_partial(detector, p, now_ms=0) for p in parts] == [False] * 3
    closed = detector.windows.close_ready(0)
    assert [int(w.counts.sum()) for w in closed] == [6]


def test_only_the_last_record_of_a_transaction_moves_stage_2s_clock():
    """Two windows closed at once and a window's partial in chunks: stage 2 reading the
    records one by one closes no window before it has read them all."""
    stage1 = Aggregator(Settings())
    stage1.own(0, 0)
    apps = [f"app-{i}" for i in range(40)]
    values = [kong(T0 + 3_000 + j * 10, j, "a").replace(b'"name": "a"', f'"name": "{a}"'.encode())
              for j, a in enumerate(apps)]
    values += [kong(T0 + 13_000 + j * 10, j, "a") for j in range(5)]  # the next window
    values += [kong(T0 + 40_000, 0, "a")]  # a watermark past both
    stage1.take(RawBatch("logs", 0, np.arange(len(values), dtype=np.int64), values), 0)
    stage1.close(0)
    sent = stage1.outgoing(0, 0)
    assert len(sent) >= 3 and [p.watermark_ms is None for p in sent[:-1]] == [True] * (
        len(sent) - 1) and sent[-1].watermark_ms is not None
    stage2 = Detector(Settings())
    stage2.windows.idle_timeout_ms = NEVER_MS
    closed: list[ClosedWindow] = []
    stage2.window_listener = closed.append
    for partial in sent:
        assert not closed, "a window closed before the transaction was read"
        merge_partial(stage2, Partial.decode(partial.encode()), now_ms=0)
        stage2.close_ready(0)
    one = Detector(Settings())  # the oracle: one detector reading the same records
    reference: list[ClosedWindow] = []
    one.window_listener = reference.append
    one.process(values, now_ms=0)
    one.finish()

    def fleet(detector: Detector, windows: list[ClosedWindow]) -> list[int]:
        row = detector.scopes.labels.index({})
        return [int(w.counts[row].sum()) for w in windows]

    assert fleet(stage2, closed)[:2] == fleet(one, reference)[:2]
    assert [w.start_ms for w in closed[:2]] == [T0, T0 + 10_000]


@given(silent_for_ms=st.integers(60_000, 10**12))
def test_a_silent_source_partition_holds_stage_2_until_its_next_owner_writes(silent_for_ms):
    """A worker killed mid-window writes nothing more and says nothing: stage 2 must not
    take that silence for idleness, however long its wall clock runs (only stage 1
    reports a partition idle), or the partition's records come too late for their window."""
    detector = Detector(Settings())
    detector.windows.idle_timeout_ms = NEVER_MS  # as the stage-2 runner sets it
    detector.windows.assign([0, 1], 0)

    def merge(partition: int, start: int | None, requests: int, watermark: int,
              now_ms: int, idle_ms: int | None = None) -> None:
        end = None if start is None else start + 10_000
        cells = [(0, 200, requests)] if requests else []
        merge_partial(detector, Partial("logs", partition, start, end, watermark, idle_ms,
                                        [{}] if cells else [], cells), now_ms=now_ms)

    merge(0, T0, 5, T0 + 20_000, now_ms=0)
    merge(1, None, 0, T0 + 5_000, now_ms=0)  # partition 1's last word before its worker died
    assert detector.windows.close_ready(silent_for_ms) == []
    merge(0, None, 0, T0 + 20_000, now_ms=silent_for_ms, idle_ms=10_000)  # the other goes idle
    assert detector.windows.close_ready(silent_for_ms) == []
    merge(1, T0, 3, T0 + 12_000, now_ms=silent_for_ms)  # its next owner writes the window
    closed = detector.windows.close_ready(silent_for_ms)
    assert [(w.start_ms, int(w.counts.sum())) for w in closed] == [(T0, 8)]


@pytest.mark.parametrize("check", ["on", "off"])
def test_stage_2_takes_mostly_invalid_input_from_the_partials_counts(check):
    """A renamed time field, seen only by stage 1's decoder: stage 2 learns of the
    rejected records from the partials, reports the input mostly invalid, and pages
    no "traffic fell" for it (with the check off: it does, as run would)."""
    decode = DecodeConfig() if check == "on" else DecodeConfig(mostly_invalid=OFF)
    settings = Settings(decode=decode)
    stage1, stage2 = Aggregator(settings), Detector(settings)
    stage1.own(0, 0)
    stage1.status.consumer_lag = {0: 0}  # read to the end at every step
    events, offset = [], 0
    for sec in range(900):
        ts = T0 + sec * 1000
        values = [kong(ts + j * 7, j, service, sec >= 600) for service in ("a", "b")
                  for j in range(10)]
        offsets = np.arange(offset, offset + len(values), dtype=np.int64)
        offset += len(values)
        now = ts + 1500
        stage1.take(RawBatch("logs", 0, offsets, values), now)
        stage1.close(now)
        taken, sent = len(stage1.parts[0].pending), stage1.outgoing(0, now)
        for partial in sent:
            merge_partial(stage2, Partial.decode(partial.encode()), now_ms=now)
        stage1.written(0, now, taken, sent[-1])
        events += stage2.close_ready(now)
    drops = [e for e in events if e.signal == "volume" and e.state == "firing"]
    verdict = stage2.input_verdict(T0 + 900_500)
    assert verdict.rejected.share == 1.0 and verdict.rejected.top_reason == "missing_field"
    if check == "on":
        assert verdict.mostly_invalid and drops == []
    else:
        assert not verdict.mostly_invalid and {} in [e.scope for e in drops]


def test_dead_letters_leave_with_their_transaction_and_not_before():
    """Rejected records wait for the next transaction of their partition; those
    rejected while it is in flight wait for the one after."""
    settings = Settings(kafka=KafkaConfig(dead_letter_topic="logs-dlq"))
    stage1 = Aggregator(settings)
    stage1.own(0, 0)
    good = kong(T0, 1, "a")

    def batch(first: int, values: list[bytes]) -> RawBatch:
        return RawBatch("logs", 0, np.arange(first, first + len(values), dtype=np.int64), values)

    stage1.take(batch(0, [good, b"{", good, b"[]"]), 0)
    part = stage1.parts[0]
    assert [(d.offset, d.reason) for d in part.dead_letters] == [
        (1, "invalid_json"), (3, "not_an_object")]
    taken, sent, letters = len(part.pending), stage1.outgoing(0, 0), len(part.dead_letters)
    stage1.take(batch(4, [b"{"]), 0)  # while the transaction is in flight
    stage1.written(0, 0, taken, sent[-1], letters)
    assert [d.offset for d in part.dead_letters] == [4]
    assert dict(part.invalid) == {"invalid_json": 1} and part.unwritten()
