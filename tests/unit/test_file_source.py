"""Reading log files: plain, gzip-compressed (by content, not by name), and broken."""

from __future__ import annotations

import gzip
import json

import pytest

from statuswatch.errors import SourceError
from statuswatch.shell.sources import ReadPosition, read_file_batches, read_files_batches
from tests.data import APACHE_LOG, apache_lines


def lines_of(path: str, batch_size: int = 8192) -> list[bytes]:
    return [v for batch in read_file_batches(path, batch_size) for v in batch.values]


def test_a_gzip_log_reads_as_its_lines_with_consecutive_offsets():
    batches = list(read_file_batches(str(APACHE_LOG), batch_size=64))
    assert len(batches) > 1
    assert [v for b in batches for v in b.values] == apache_lines()
    offsets = [int(o) for b in batches for o in b.offsets]
    assert offsets == list(range(10_000))


def test_gzip_is_recognised_by_content_not_by_name(tmp_path):
    plain = tmp_path / "access.gz"  # named .gz but not compressed
    plain.write_bytes(b"a\r\nb\nc")
    assert lines_of(str(plain)) == [b"a", b"b", b"c"]
    packed = tmp_path / "access.log"
    packed.write_bytes(gzip.compress(b"x\ny\n"))
    assert lines_of(str(packed)) == [b"x", b"y"]


def test_a_truncated_gzip_file_is_a_source_error_naming_the_file(tmp_path):
    cut = tmp_path / "cut.gz"
    whole = gzip.compress(b"\n".join(apache_lines()))
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SourceError, match=r"cut\.gz"):
        lines_of(str(cut))


def test_a_gzip_stream_on_stdin_is_decompressed_like_a_file(tmp_path):
    from tests.unit.test_cli import sw

    piped = sw("backtest", "--format", "combined", "--output", "json", "-",
               stdin=APACHE_LOG.read_bytes())
    from_file = sw("backtest", "--format", "combined", "--output", "json", str(APACHE_LOG))
    assert piped.returncode == 0, piped.stderr.decode()
    assert piped.stdout == from_file.stdout  # the alerts
    report = json.loads(piped.stderr)
    assert report == json.loads(from_file.stderr)
    assert report["records"] == 10_000 and report["invalid"] == 0


def test_rotated_logs_read_in_the_given_order_each_with_its_own_lines(tmp_path):
    """A gzip-rotated log, then the live one: every line once, in order; each batch
    names its file and numbers its lines from 0; the position covers both files."""
    lines = apache_lines()
    older, newer = tmp_path / "access.log.1.gz", tmp_path / "access.log"
    older.write_bytes(gzip.compress(b"\n".join(lines[:6000]) + b"\n"))
    newer.write_bytes(b"\n".join(lines[6000:]) + b"\n")
    position = ReadPosition()
    seen: list[tuple[int, int]] = []
    batches = []
    for batch in read_files_batches([str(older), str(newer)], 64, position):
        batches.append(batch)
        seen.append((position.read_bytes, position.total_bytes or 0))
    assert [v for b in batches for v in b.values] == lines
    for path, first, count in ((older, 0, 6000), (newer, 6000, 4000)):
        mine = [b for b in batches if b.topic == str(path)]
        assert [int(o) for b in mine for o in b.offsets] == list(range(count)), path
        assert [v for b in mine for v in b.values] == lines[first : first + count]
    total = older.stat().st_size + newer.stat().st_size
    assert {t for _, t in seen} == {total}
    assert [r for r, _ in seen] == sorted(r for r, _ in seen)  # never goes back
    assert position.read_bytes == total


def test_a_missing_rotated_log_is_a_source_error_naming_it(tmp_path):
    present = tmp_path / "access.log"
    present.write_bytes(b"x\n")
    with pytest.raises(SourceError, match=r"access\.log\.1"):
        list(read_files_batches([str(tmp_path / "access.log.1"), str(present)]))


def test_backtest_of_rotated_logs_counts_as_the_whole_log(tmp_path):
    from tests.unit.test_cli import sw

    lines = apache_lines()
    older, newer = tmp_path / "access.log.1.gz", tmp_path / "access.log"
    older.write_bytes(gzip.compress(b"\n".join(lines[:5000]) + b"\n"))
    newer.write_bytes(b"\n".join(lines[5000:]) + b"\n")
    rotated = sw("backtest", "--format", "combined", str(older), str(newer))
    whole = sw("backtest", "--format", "combined", str(APACHE_LOG))
    assert rotated.returncode == 0, rotated.stderr.decode()

    def alerts(out: bytes) -> list[tuple[str, str, int]]:
        return [(a["id"], a["state"], a["window_end"]) for a in map(json.loads, out.splitlines())]

    # the same alerts and counts; a file's end is a batch's end, where a backtest closes
    # the windows its records have passed, so lateness may differ by a few records
    assert alerts(rotated.stdout) == alerts(whole.stdout) != []
    counted, expected = json.loads(rotated.stderr), json.loads(whole.stderr)
    for key in ("records", "invalid", "codes", "windows", "alerts"):
        assert counted[key] == expected[key], key
    mixed = sw("backtest", "--format", "combined", "-", str(newer), stdin=b"")
    assert mixed.returncode != 0
    assert b"- (stdin) cannot be read with other files" in mixed.stderr
