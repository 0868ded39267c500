"""Type stub of the optional C extension ``_jsonscan.c`` (see its header comment)."""

from collections.abc import Sequence
from typing import Final, final

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

HARD_MAX_DEPTH: Final[int]

def count_lines(data: Buffer, /) -> int:
    """LF bytes of ``data``, and one more if it does not end with LF and is not empty."""

@final
class Scanner:
    """A strict JSON scanner for the fields at ``paths``, one kind per path in ``kinds``."""

    def __init__(
        self, paths: tuple[tuple[bytes, ...], ...], kinds: bytes, max_depth: int, max_bytes: int
    ) -> None: ...
    @property
    def n_ints(self) -> int: ...
    @property
    def n_strs(self) -> int: ...
    @property
    def max_depth(self) -> int: ...
    def scan(
        self,
        values: Sequence[bytes],
        ints: npt.NDArray[np.int64] | Buffer,
        ok: npt.NDArray[np.bool_] | Buffer,
        /,
    ) -> list[list[str]]:
        """Fill ``ints`` (int64, n_ints x len(values)) and ``ok``; the str columns."""
    def scan_lines(
        self,
        data: Buffer,
        ints: npt.NDArray[np.int64] | Buffer,
        ok: npt.NDArray[np.bool_] | Buffer,
        bounds: npt.NDArray[np.int64] | Buffer,
        head: bytes | None = None,
        /,
    ) -> list[list[str]]:
        """``scan`` of ``head`` (if given) and the lines of ``data`` (len(ok) in all);
        ``bounds`` (2 x len(ok)) gets where each line of ``data`` starts and stops."""
