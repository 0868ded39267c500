from __future__ import annotations

import json

import pytest

from statuswatch.shell.state import SnapshotError, SnapshotStore


def test_newest_intact_snapshot_wins_and_old_ones_are_pruned(tmp_path):
    store = SnapshotStore(tmp_path, keep=2)
    for i in range(5):
        store.write({"i": i})
    assert store.load() == {"i": 4}
    assert len(list(tmp_path.glob("snapshot-*.json"))) == 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_corrupt_newest_falls_back_to_older(tmp_path, damage, caplog):
    store = SnapshotStore(tmp_path)
    store.write({"i": 1})
    store.write({"i": 2, "payload": "x" * 100})
    newest = sorted(tmp_path.glob("snapshot-*.json"))[-1]
    data = newest.read_bytes()
    damaged = {
        "truncate": data[: len(data) // 2],
        "flip": data.replace(b'"x', b'"y', 1),
        "garbage": b"\x00\xff not json",
        "empty": b"",
    }[damage]
    newest.write_bytes(damaged)
    assert store.load() == {"i": 1}
    assert "refusing snapshot" in caplog.text


def test_all_corrupt_is_an_error_not_a_silent_reset(tmp_path):
    store = SnapshotStore(tmp_path)
    store.write({"i": 1})
    for path in tmp_path.glob("snapshot-*.json"):
        path.write_text(json.dumps({"format": "statuswatch-snapshot", "sha256": "0", "state": {}}))
    with pytest.raises(SnapshotError, match="every snapshot"):
        store.load()


def test_no_snapshot_means_none(tmp_path):
    assert SnapshotStore(tmp_path / "new").load() is None


def test_leftover_temp_file_from_a_crash_is_ignored(tmp_path):
    store = SnapshotStore(tmp_path)
    store.write({"i": 1})
    (tmp_path / ".snapshot-000000000002.json.tmp").write_bytes(b'{"format": "statuswatch-snap')
    assert store.load() == {"i": 1}
    store.write({"i": 2})
    assert store.load() == {"i": 2}
