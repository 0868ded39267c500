"""Columnar batch types passed between the pure stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

#: Scope dimensions a decoder may fill, in canonical order.
DIMENSIONS: Final = ("service", "route", "app")

#: Bounded set of reasons a record is rejected (also metric label values).
INVALID_REASONS: Final = (
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "too_deep",
    "too_large",
    "missing_field",
    "wrong_type",
    "status_out_of_range",
    "bad_timestamp",
    "unparseable_line",
)

MIN_STATUS: Final = 100
MAX_STATUS: Final = 599
#: The code of a scope's volume series (all its requests; its alerts have column -1).
VOLUME_CODE: Final = 0


def code_label(code: int) -> str:
    """How a code column is named in metrics and alerts: 0 is a volume series (all
    requests), 1..5 a status class's summed series, anything else a status code.

    >>> code_label(403), code_label(5), code_label(VOLUME_CODE)
    ('403', '5xx', 'all')
    """
    if code == VOLUME_CODE:
        return "all"
    return f"{code}xx" if code < MIN_STATUS else str(code)

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class InvalidRecord:
    """A record the decoder rejected: its index in the input batch and why."""

    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """The good records of one input batch, as columns.

    ``index[i]`` is the position of good record ``i`` in the input batch, so the
    shell can map it back to (topic, partition, offset).
    ``dims[d][i]`` is the value of dimension ``d`` ("" when the log lacks it).
    """

    ts_ms: I64
    status: I64
    dims: dict[str, list[str]]
    index: I64
    invalid: list[InvalidRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    @staticmethod
    def empty() -> DecodedBatch:
        """A batch with no records.

        >>> len(DecodedBatch.empty())
        0
        """
        z = np.zeros(0, dtype=np.int64)
        return DecodedBatch(z, z.copy(), {d: [] for d in DIMENSIONS}, z.copy(), [])
