"""A file's blocks of lines (``Lines``) decode exactly as the lists of their lines.

The file source hands the decoders whole blocks; the JSON decoders scan a block in
C (``Scanner.scan_lines``), which finds the lines itself. These properties read
random files (valid, invalid, empty, CRLF and over-long lines, the last one maybe
unterminated) through the real source in reads of random sizes, and check every
batch against the per-line path: the same lines, the same ``DecodedBatch``.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statuswatch.config import DecodeConfig, FieldMap
from statuswatch.core.columns import DecodedBatch
from statuswatch.core.decode import JsonDecoder, build_decoder
from statuswatch.core.decode.lines import Lines, count_lines
from statuswatch.shell.sources import _batches_of_lines, read_file_batches
from tests.data import APACHE_CODES, apache_lines
from tests.unit.test_fast_path import DECODERS, batch_for, fast_path

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: The source reads blocks of BATCH_SIZE * 512 bytes: shorter than many records.
BATCH_SIZE = 2


class Trickle:
    """A stream that returns fewer bytes than asked, as a pipe may."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data, self.at, self.sizes, self.reads = data, 0, sizes, 0

    def read(self, size: int = -1, /) -> bytes:
        take = min(size, self.sizes[self.reads % len(self.sizes)])
        self.reads += 1
        out = self.data[self.at : self.at + take]
        self.at += len(out)
        return out


def reference_lines(data: bytes) -> list[bytes]:
    """The lines of a file as ``readlines`` gives them, without CR/LF at their ends."""
    return [line.rstrip(b"\r\n") for line in io.BytesIO(data).readlines()]


@st.composite
def log_file(draw: st.DrawFn, name: str) -> bytes:
    """A file of the records of ``name``'s set-up, some mutated, blank or padded long."""
    parts = []
    for record in draw(batch_for(name)):
        kind = draw(st.integers(0, 9))
        line = record
        if kind == 0:
            line = b""
        elif kind == 1:  # longer than a block, and than kong-tight's record limit
            line = b" " * draw(st.integers(500, 3000)) + record
        parts.append(line + draw(st.sampled_from([b"\n", b"\r\n", b"\r\r\n", b"\n\r\n"])))
    data = b"".join(parts)
    if draw(st.booleans()):  # the last line unterminated
        data = data.rstrip(b"\r\n")
    return data


def as_dict(batch: DecodedBatch) -> dict[str, Any]:
    return {
        "ts": batch.ts_ms.tolist(), "status": batch.status.tolist(), "dims": batch.dims,
        "index": batch.index.tolist(), "invalid": batch.invalid,
    }


@pytest.mark.parametrize("name", sorted(DECODERS))
@SETTINGS
@given(data=st.data())
def test_a_block_decodes_as_the_list_of_its_lines(name: str, data: st.DataObject) -> None:
    decoder = DECODERS[name][0]
    text = data.draw(log_file(name))
    sizes = data.draw(st.lists(st.integers(1, BATCH_SIZE * 512), min_size=1, max_size=8))
    expected = reference_lines(text)
    seen = 0
    with fast_path(decoder, "native"):
        for batch in _batches_of_lines(Trickle(text, sizes), "f", BATCH_SIZE):
            offsets = batch.offsets.tolist()
            assert offsets == list(range(seen, seen + len(batch)))
            seen += len(batch)
            lines = expected[offsets[0] : offsets[-1] + 1]
            assert isinstance(batch.values, Lines)
            if isinstance(decoder, JsonDecoder):
                decoder._skip_fast = 0  # the block path itself, not a rest after bad input
            got = decoder.decode(batch.values)
            # a rejected line is sliced out where the scan found it
            assert [batch.values[r.index] for r in got.invalid] == [
                lines[r.index] for r in got.invalid]
            assert list(batch.values) == lines
            if isinstance(decoder, JsonDecoder):
                decoder._skip_fast = 0
            assert as_dict(got) == as_dict(decoder.decode(lines))
    assert seen == len(expected)


@SETTINGS
@given(
    text=st.binary(max_size=300).map(lambda b: b.replace(b"a", b"\n").replace(b"b", b"\r")),
    cut=st.integers(0, 300),
    head=st.none() | st.binary(max_size=5),
)
def test_lines_index_slice_and_count_like_the_split_block(
    text: bytes, cut: int, head: bytes | None
) -> None:
    start = text.find(b"\n") + 1
    end = text.rfind(b"\n", 0, cut) + 1 if cut < len(text) else len(text)
    end = max(start, end)
    expected = ([] if head is None else [head]) + reference_lines(text[start:end])
    lines = Lines(text, start, end, head)
    assert len(lines) == count_lines(lines.data) + (head is not None) == len(expected)
    assert [lines[i] for i in range(-len(lines), len(lines))] == expected * 2
    assert lines[1:3] == expected[1:3]
    with pytest.raises(IndexError):
        lines[len(expected)]


def test_the_scanner_checks_the_number_of_lines() -> None:
    decoder = DECODERS["sim-kong"][0]
    assert isinstance(decoder, JsonDecoder) and decoder._scanner is not None
    scanner = decoder._scanner
    cases = [(b"{}\n{}\n", 1, None), (b"{}\n{}\n", 3, None), (b"", 1, None),
             (b"{}\n", 2, None), (b"{}\n", 1, b"{}"), (b"", 0, b"{}"), (b"{}", 3, b"{}")]
    for data, n, head in cases:
        ints, ok = np.empty((scanner.n_ints, n), np.int64), np.empty(n, np.bool_)
        with pytest.raises(ValueError, match="lines"):
            scanner.scan_lines(data, ints, ok, np.empty((2, n), np.int64), head)
    ints, ok = np.empty((scanner.n_ints, 2), np.int64), np.empty(2, np.bool_)
    with pytest.raises(TypeError, match="read-only"):  # bytes a finalizer could change
        scanner.scan_lines(bytearray(b"{}\n{}"), ints, ok, np.empty((2, 2), np.int64))
    with pytest.raises(ValueError, match="bounds"):
        scanner.scan_lines(b"{}\n{}", ints, ok, np.empty((2, 3), np.int64))


def _apache_as_json() -> bytes:
    """The real Apache log as JSON lines (CRLF), one record per line of the log."""
    pattern = re.compile(rb'\[([^\]]+)\] "[^"]*" (\d{3}) ')
    out = []
    for line in apache_lines():
        match = pattern.search(line)
        assert match is not None, line
        record = {"time": match.group(1).decode(), "code": int(match.group(2)),
                  "host": line.split(b" ", 1)[0].decode()}
        out.append(json.dumps(record).encode() + b"\r\n")
    return b"".join(out)


def test_the_real_apache_log_as_json_decodes_to_its_known_codes(tmp_path: Any) -> None:
    path = tmp_path / "apache.json.gz"
    path.write_bytes(gzip.compress(_apache_as_json()))
    decoder = build_decoder(DecodeConfig(format="json", fields=FieldMap(
        timestamp="time", timestamp_unit="clf", status="code", app="host")))
    codes: Counter[int] = Counter()
    with fast_path(decoder, "native"):
        vouched = 0
        for batch in read_file_batches(str(path), batch_size=64):
            assert isinstance(batch.values, Lines)
            decoded = decoder.decode(batch.values)
            assert not decoded.invalid
            codes.update(decoded.status.tolist())
            vouched += len(decoded)
    assert vouched == 10_000
    assert codes == Counter(APACHE_CODES)


def test_the_real_apache_log_decodes_alike_as_blocks_and_as_lists() -> None:
    """A format without the C scanner (combined) decodes a block as its lines."""
    from tests.data import APACHE_LOG

    decoder = build_decoder(DecodeConfig(format="combined"))
    codes: Counter[int] = Counter()
    for batch in read_file_batches(str(APACHE_LOG), batch_size=64):
        assert isinstance(batch.values, Lines)
        got = decoder.decode(batch.values)
        assert as_dict(got) == as_dict(decoder.decode(list(batch.values)))
        codes.update(got.status.tolist())
    assert codes == Counter(APACHE_CODES)


def test_lines_count_alike_without_the_c_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    from statuswatch.core.decode import lines as lines_module

    blocks = [b"", b"\n", b"a", b"a\n", b"a\r\n\nb", b"\r", b"x" * 40 + b"\n" * 17 + b"y"]
    native = [lines_module.count_lines(memoryview(b)) for b in blocks]
    monkeypatch.setattr(lines_module, "_COUNT_LINES", None)
    assert [lines_module.count_lines(memoryview(b)) for b in blocks] == native
    assert native == [len(reference_lines(b)) for b in blocks]
