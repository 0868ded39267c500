"""What the detector has seen, as the metrics endpoint and the backtest report show it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from statuswatch.core.columns import DecodedBatch


@dataclass(slots=True)
class Counters:
    """Records, rejects by reason, late records, windows, alerts and codes seen.

    >>> c = Counters()
    >>> c.records += 3
    >>> c.codes.update({403: 2})
    >>> Counters.from_json(c.to_json()) == c
    True
    """

    records: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    late: int = 0
    windows_closed: int = 0
    alerts_fired: int = 0
    first_event_ms: int | None = None
    last_event_ms: int | None = None
    codes: Counter[int] = field(default_factory=Counter)
    #: alerts that shadow-mode rules would have fired, by rule name
    shadow_fired: Counter[str] = field(default_factory=Counter)

    def add_batch(self, batch: DecodedBatch) -> None:
        """Count a decoded batch: its records, rejects, codes and event-time span."""
        self.records += len(batch) + len(batch.invalid)
        self.invalid.update(r.reason for r in batch.invalid)
        if len(batch) == 0:
            return
        freq = np.bincount(batch.status)  # statuses are 100..599: no sort per batch
        codes = np.flatnonzero(freq)
        self.codes.update(dict(zip(codes.tolist(), freq[codes].tolist(), strict=True)))
        first, last = int(batch.ts_ms.min()), int(batch.ts_ms.max())
        self.first_event_ms = first if self.first_event_ms is None else min(
            self.first_event_ms, first)
        self.last_event_ms = last if self.last_event_ms is None else max(
            self.last_event_ms, last)

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "invalid": dict(self.invalid),
            "late": self.late,
            "windows_closed": self.windows_closed,
            "alerts_fired": self.alerts_fired,
            "first_event_ms": self.first_event_ms,
            "last_event_ms": self.last_event_ms,
            "codes": {str(k): v for k, v in self.codes.items()},
            "shadow_fired": dict(self.shadow_fired),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Counters:
        return cls(
            records=int(data["records"]),
            invalid=Counter(data["invalid"]),
            late=int(data["late"]),
            windows_closed=int(data["windows_closed"]),
            alerts_fired=int(data["alerts_fired"]),
            first_event_ms=data["first_event_ms"],
            last_event_ms=data["last_event_ms"],
            codes=Counter({int(k): int(v) for k, v in data["codes"].items()}),
            shadow_fired=Counter(data["shadow_fired"]),
        )
