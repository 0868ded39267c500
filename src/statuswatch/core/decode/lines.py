"""The lines of one block of a log file, as a sequence of record values.

A file source reads blocks of many lines; splitting each block into one bytes
object per line costs more than decoding most of them. ``Lines`` is a block that
behaves as the list of its lines (each without its LF and trailing CRs), so every
caller that takes ``Sequence[bytes]`` works on it, while the JSON decoders' fast
path scans the block itself (``Scanner.scan_lines``) and only the lines it does not
vouch for become bytes objects.

>>> lines = Lines(b'{"a": 1}\\r\\n\\nlast')
>>> len(lines), lines[0], lines[-1], list(lines)
(3, b'{"a": 1}', b'last', [b'{"a": 1}', b'', b'last'])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Final, overload

from statuswatch.core.columns import I64


def _native_count() -> Callable[[memoryview], int] | None:
    try:
        from statuswatch.core.decode._jsonscan import count_lines
    except ImportError:
        return None
    return count_lines


#: The C scanner's line counter; ``None`` when the optional extension is not built.
_COUNT_LINES: Final = _native_count()


def count_lines(data: memoryview) -> int:
    """The lines of ``data``: its LF bytes, and one more if it does not end with LF.

    >>> [count_lines(memoryview(b)) for b in (b"a\\nb", b"a\\n", b"")]
    [2, 1, 0]
    """
    if _COUNT_LINES is not None:
        return _COUNT_LINES(data)
    return data.tobytes().count(b"\n") + (len(data) > 0 and data[-1] != ord("\n"))


class Lines(Sequence[bytes]):
    """The lines of ``block[start:end]``: what ``split(b"\\n")`` gives without a last
    empty item, each without its trailing CRs (``rstrip(b"\\r")``); after ``head``,
    a line given on its own (one that began in the block before), if any.

    ``block[start:end]`` must be whole lines: every one ends with LF, except that the
    last may end at ``end`` (the end of a file). A line is sliced out of the block
    when it is asked for; iterating or slicing splits the whole block once.

    >>> lines = Lines(b'x"}\\n{"b": 2}\\n{"c"', start=4, end=13, head=b'{"a": "x"}')
    >>> len(lines), list(lines)
    (2, [b'{"a": "x"}', b'{"b": 2}'])
    """

    __slots__ = ("_bounds", "_count", "_lines", "block", "end", "head", "start")

    def __init__(
        self, block: bytes, start: int = 0, end: int | None = None, head: bytes | None = None
    ) -> None:
        self.block = block
        self.start = start
        self.end = len(block) if end is None else end
        self.head = head
        self._count = count_lines(self.data) + (head is not None)
        self._lines: list[bytes] | None = None
        self._bounds: I64 | None = None

    @property
    def data(self) -> memoryview:
        """The bytes of the lines after ``head``, ``block[start:end]``, without a copy."""
        return memoryview(self.block)[self.start : self.end]

    def keep_bounds(self, bounds: I64) -> None:
        """Where each line starts (row 0) and stops (row 1) in ``data``, as a scan of
        these lines found them: indexing a line then slices it out at once."""
        assert bounds.shape == (2, self._count), bounds.shape
        self._bounds = bounds

    def tolist(self) -> list[bytes]:
        """Every line as bytes (split once, then kept)."""
        if self._lines is None:
            whole = self.start == 0 and self.end == len(self.block)
            block = self.block if whole else self.block[self.start : self.end]
            lines = block.split(b"\n")
            if lines[-1] == b"":
                lines.pop()
            if b"\r" in block:
                lines = [line.rstrip(b"\r") for line in lines]
            self._lines = lines if self.head is None else [self.head, *lines]
        return self._lines

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice) or self._lines is not None or self._bounds is None:
            return self.tolist()[index]
        n = self._count
        if not -n <= index < n:
            raise IndexError("line index out of range")
        at = index % n
        if at == 0 and self.head is not None:
            return self.head
        start = self.start
        return self.block[start + int(self._bounds[0, at]) : start + int(self._bounds[1, at])]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.tolist())

    def __repr__(self) -> str:
        return f"<Lines: {self._count} lines, {self.end - self.start} bytes>"


def indexable(values: Sequence[bytes]) -> Sequence[bytes]:
    """``values``, as a list if they are ``Lines``: for decoders that index every value
    (a list's ``[i]`` is a C call, a ``Lines``' a Python one)."""
    return values.tolist() if isinstance(values, Lines) else values
