"""Where raw records come from: a file or stdin, or a list (tests); Kafka in
``kafka_source``.

Every source yields ``RawBatch`` objects: the raw values of one partition with
their offsets, so any log line about a record can name topic, partition, offset.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import sys
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import IO, Protocol

import numpy as np

from statuswatch.core.columns import I64
from statuswatch.core.decode.lines import Lines
from statuswatch.errors import SourceError


@dataclass(frozen=True, slots=True)
class RawBatch:
    topic: str
    partition: int
    offsets: I64
    values: Sequence[bytes]  # a list, or a file's block of lines (``Lines``)

    def __len__(self) -> int:
        return len(self.values)


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _batches_of_lines(stream: _Readable, name: str, batch_size: int) -> Iterator[RawBatch]:
    """Lines (without their trailing CR/LF) in batches of about ``batch_size * 512`` bytes.

    Each batch's values are the whole lines of one block read (``Lines``), not split
    here: the JSON decoders scan the block itself. The last, unterminated line of a
    block waits for the next.
    """
    offset = 0
    carry = b""
    block_size = batch_size * 512
    while block_size:
        block = stream.read(block_size)
        if not block:
            if carry:
                yield RawBatch(name, 0, np.array([offset], dtype=np.int64), Lines(carry))
            return
        end = block.rfind(b"\n") + 1
        if not end:
            carry += block
            continue  # a line longer than the block: read on
        # The line begun in the block before is completed on its own, not by joining
        # the blocks: a copy of the block costs more in fresh memory than in bytes.
        start, head = 0, None
        if carry:
            start = block.find(b"\n") + 1
            head = (carry + block[: start - 1]).rstrip(b"\r")
        carry = block[end:]
        lines = Lines(block, start, end, head)
        offsets = np.arange(offset, offset + len(lines), dtype=np.int64)
        offset += len(lines)
        yield RawBatch(name, 0, offsets, lines)


#: The first two bytes of every gzip member (RFC 1952).
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(slots=True)
class ReadPosition:
    """How far ``read_file_batches`` has read its file: bytes of the file as stored
    (compressed, for gzip) and the file's size (None for a pipe)."""

    read_bytes: int = 0
    total_bytes: int | None = None


def _tracked(
    batches: Iterator[RawBatch], file: IO[bytes], position: ReadPosition | None
) -> Iterator[RawBatch]:
    if position is None:
        yield from batches
        return
    try:
        stat = os.fstat(file.fileno())
        position.total_bytes = stat.st_size if S_ISREG(stat.st_mode) else None
    except (OSError, ValueError, io.UnsupportedOperation):
        position.total_bytes = None
    for batch in batches:
        if position.total_bytes is not None:
            position.read_bytes = file.tell()
        yield batch
    if position.total_bytes is not None:
        position.read_bytes = file.tell()


def read_file_batches(
    path: str, batch_size: int = 8192, position: ReadPosition | None = None
) -> Iterator[RawBatch]:
    """Lines of a file (``-`` for stdin) as batches; a line's offset is its number.

    A gzip file or stream (rotated logs usually are; ``zcat`` is not needed) is read
    through ``gzip``, recognised by its magic bytes, whatever its name. ``position``
    follows the bytes read.
    """
    name = "stdin" if path == "-" else path
    try:
        if path == "-":
            stdin = sys.stdin.buffer
            stream = _decompressed(stdin, stdin.peek(2)[:2] if hasattr(stdin, "peek") else b"")
            yield from _tracked(_batches_of_lines(stream, name, batch_size), stdin, position)
            return
        with Path(path).open("rb", buffering=io.DEFAULT_BUFFER_SIZE * 16) as raw:
            head = raw.read(2)
            raw.seek(0)
            yield from _tracked(
                _batches_of_lines(_decompressed(raw, head), name, batch_size), raw, position
            )
    except (OSError, EOFError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SourceError(f"cannot read {name}: {reason}") from exc


def read_files_batches(
    paths: Sequence[str], batch_size: int = 8192, position: ReadPosition | None = None
) -> Iterator[RawBatch]:
    """``read_file_batches`` of each of ``paths`` in turn: rotated logs, oldest first,
    each plain or gzip. A batch names its own file, and its offsets are line numbers in
    it. ``position`` follows the bytes read of all of them (no total if one is a pipe)."""
    sizes = [_regular_size(p) for p in paths]
    if position is not None:
        position.total_bytes = None if None in sizes else sum(s or 0 for s in sizes)
    done = 0
    for path, size in zip(paths, sizes, strict=True):
        here = ReadPosition()
        for batch in read_file_batches(path, batch_size, here):
            if position is not None and position.total_bytes is not None:
                position.read_bytes = done + here.read_bytes
            yield batch
        done += size or 0
        if position is not None and position.total_bytes is not None:
            position.read_bytes = done


def _regular_size(path: str) -> int | None:
    """The size of ``path`` if it is a regular file (None: stdin, a pipe, missing)."""
    if path == "-":
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None  # read_file_batches says why
    return stat.st_size if S_ISREG(stat.st_mode) else None


def _decompressed(raw: IO[bytes], head: bytes) -> _Readable:
    """``raw`` itself, or read through ``gzip`` if ``head`` (its first bytes) says so."""
    return gzip.GzipFile(fileobj=raw, mode="rb") if head == GZIP_MAGIC else raw


class ListSource:
    """A finite source over in-memory values, for tests and examples.

    >>> src = ListSource([[b"a", b"b"], [b"c"]], topic="t")
    >>> [b.offsets.tolist() for b in src.batches()]
    [[0, 1], [2]]
    """

    def __init__(self, batches: Iterable[Sequence[bytes]], topic: str = "list") -> None:
        self._batches = [list(b) for b in batches]
        self.topic = topic

    def batches(self) -> Iterator[RawBatch]:
        offset = 0
        for values in self._batches:
            offsets = np.arange(offset, offset + len(values), dtype=np.int64)
            offset += len(values)
            yield RawBatch(self.topic, 0, offsets, values)

    async def __aiter__(self) -> AsyncIterator[RawBatch]:
        for batch in self.batches():
            yield batch
            await asyncio.sleep(0)
