"""Reading log files: plain, gzip-compressed (by content, not by name), and broken."""

from __future__ import annotations

import gzip
import json

import pytest

from statuswatch.errors import SourceError
from statuswatch.shell.sources import read_file_batches
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
