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


def count_lines(block: bytes, end: int) -> int:
    """The lines of ``block[:end]``: its LF bytes, and one more if it does not end with LF.

    >>> count_lines(b"a\\nb", 3), count_lines(b"a\\nb", 2), count_lines(b"a", 0)
    (2, 1, 0)
    """
    if _COUNT_LINES is not None:
        return _COUNT_LINES(memoryview(block)[:end])
    return block.count(b"\n", 0, end) + (end > 0 and block[end - 1] != ord("\n"))


class Lines(Sequence[bytes]):
    """The lines of ``block[:end]``: what ``split(b"\\n")`` gives without a last empty
    item, each without its trailing CRs (``rstrip(b"\\r")``).

    ``block[:end]`` must be whole lines: every one ends with LF, except that the last
    may end at ``end`` (the end of a file). A line is sliced out of the block when it
    is asked for; iterating or slicing splits the whole block once.
    """

    __slots__ = ("_bounds", "_count", "_lines", "block", "end")

    def __init__(self, block: bytes, end: int | None = None) -> None:
        self.block = block
        self.end = len(block) if end is None else end
        self._count = count_lines(block, self.end)
        self._lines: list[bytes] | None = None
        self._bounds: I64 | None = None

    @property
    def data(self) -> memoryview:
        """The lines' bytes, ``block[:end]``, without a copy."""
        return memoryview(self.block)[: self.end]

    def keep_bounds(self, bounds: I64) -> None:
        """Where each line starts (row 0) and stops (row 1) in the block, as a scan of
        these lines found them: indexing a line then slices it out at once."""
        assert bounds.shape == (2, self._count), bounds.shape
        self._bounds = bounds

    def tolist(self) -> list[bytes]:
        """Every line as bytes (split once, then kept)."""
        if self._lines is None:
            block = self.block if self.end == len(self.block) else self.block[: self.end]
            lines = block.split(b"\n")
            if lines[-1] == b"":
                lines.pop()
            if b"\r" in block:
                lines = [line.rstrip(b"\r") for line in lines]
            self._lines = lines
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
        return self.block[int(self._bounds[0, at]) : int(self._bounds[1, at])]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.tolist())

    def __repr__(self) -> str:
        return f"<Lines: {self._count} lines, {self.end} bytes>"

