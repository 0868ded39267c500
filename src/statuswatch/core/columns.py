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
#: The outcome of a request that got no response at all (a reset, a disconnect):
#: Envoy's ``response_code`` 0, nginx's ``000``, a ``-`` status in a combined log.
#: Counted as a code of its own, like any status.
NO_RESPONSE: Final = 0
#: The code of a scope's volume series (all its requests; its alerts have column -1).
#: Not a status: it must not collide with ``NO_RESPONSE`` or a class (1..5).
VOLUME_CODE: Final = -1
#: The code of a record without a status (format ``json`` with ``decode.fields.status:
#: null``: an event stream such as support tickets). Each record is one event; a scope's
#: only code, so its share is 1 in every window and only its volume can move. Above
#: every status, so it is neither a status nor a class.
EVENT_CODE: Final = MAX_STATUS + 1


def is_class(code: int) -> bool:
    """Whether a code column is a status class's summed series (1..5 for 1xx..5xx).

    >>> is_class(5), is_class(NO_RESPONSE), is_class(503), is_class(VOLUME_CODE)
    (True, False, False, False)
    """
    return 0 < code < MIN_STATUS


def is_status(code: int) -> bool:
    """Whether ``code`` is an outcome a record may carry: 100-599, or ``NO_RESPONSE``.

    >>> is_status(0), is_status(99), is_status(599), is_status(600)
    (True, False, True, False)
    """
    return code == NO_RESPONSE or MIN_STATUS <= code <= MAX_STATUS


def code_label(code: int) -> str:
    """How a code column is named in metrics and alerts: ``all`` for a volume series
    (all requests), ``5xx`` for a status class's summed series, ``event`` for records
    without a status, else the code itself (``0``: no response).

    >>> code_label(403), code_label(5), code_label(VOLUME_CODE), code_label(NO_RESPONSE)
    ('403', '5xx', 'all', '0')
    >>> code_label(EVENT_CODE)
    'event'
    """
    if code == VOLUME_CODE:
        return "all"
    if code == EVENT_CODE:
        return "event"
    return f"{code}xx" if is_class(code) else str(code)

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
