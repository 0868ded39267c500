"""Is most of the input being rejected? The rejected share over the last minute. Pure.

A gateway upgrade that renames a log field, or a wrong ``decode.format``, makes
every record invalid. Without this the only visible effect would be a volume
drop ("traffic fell"), which sends the on-call person the wrong way. The
detector feeds every batch's record and rejection counts in (with the time,
passed in), and asks at any instant whether the input is *mostly invalid*: at
least ``decode.mostly_invalid.share`` of at least ``min_records`` records in the
last ``window_seconds`` were rejected. The shell turns that into ``/ready``, a
log line and a metric; the detector suppresses the volume drops it explains.

>>> from statuswatch.config import MostlyInvalidConfig
>>> t = RejectTracker(MostlyInvalidConfig(share=0.5, min_records=10, window_seconds=60))
>>> t.add(1_000, 20, [InvalidRecord(i, "missing_field") for i in range(15)])
>>> v = t.assess(2_000)
>>> v.mostly_invalid, v.share, v.top_reason
(True, 0.75, 'missing_field')
>>> t.assess(62_000).mostly_invalid  # a minute later, with nothing new
False
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

from statuswatch.config import DecodeConfig, MostlyInvalidConfig
from statuswatch.core.columns import InvalidRecord
from statuswatch.core.decode import Decoder, build_decoder
from statuswatch.errors import DecodeError

#: Width of one bucket of the sliding window (the window slides by it).
BUCKET_MS: Final = 1_000


@dataclass(slots=True)
class _Bucket:
    start_ms: int
    records: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Sample:
    """One rejected record: its value and where it came from (for the log line)."""

    value: bytes
    partition: int
    offset: int | None


@dataclass(frozen=True, slots=True)
class RejectedInput:
    """The input over the last ``window_ms``: how much of it was rejected, and why."""

    records: int
    rejected: int
    #: The most frequent reason (None: nothing rejected) and a record rejected for it.
    top_reason: str | None
    sample: Sample | None
    #: ``rejected / records`` (0 with no records).
    share: float
    #: Milliseconds the counts cover: at most the window, less just after a start.
    span_ms: int
    mostly_invalid: bool

    def rejected_per(self, ms: int) -> float:
        """Records rejected in ``ms`` milliseconds, at the rate of this window."""
        return self.rejected * ms / max(self.span_ms, BUCKET_MS)


class RejectTracker:
    """Records and rejections per second over a sliding window."""

    def __init__(self, cfg: MostlyInvalidConfig) -> None:
        self.cfg = cfg
        self.window_ms = round(cfg.window_seconds * 1000)
        self._buckets: deque[_Bucket] = deque()
        self._samples: dict[str, Sample] = {}
        #: (sample value, its field, the other settings it reads with): once per sample
        self._explained: tuple[bytes, str, str | None] | None = None

    def add(
        self,
        now_ms: int,
        records: int,
        invalid: Sequence[InvalidRecord],
        values: Sequence[bytes] | None = None,
        partition: int = 0,
        offsets: Sequence[int] | None = None,
    ) -> None:
        """Count one batch of ``records`` records, ``invalid`` of them rejected.

        ``values`` (and ``offsets``) keep one rejected record per reason as a sample.
        """
        reasons = Counter(r.reason for r in invalid)
        self.add_counts(now_ms, records, reasons)
        if invalid and values is not None:
            last = {r.reason: r.index for r in invalid}
            for reason, index in last.items():
                offset = None if offsets is None else int(offsets[index])
                self._samples[reason] = Sample(values[index], partition, offset)

    def add_counts(self, now_ms: int, records: int, reasons: Mapping[str, int]) -> None:
        """Count ``records`` records, ``reasons[r]`` of them rejected for ``r`` (counts
        without the records themselves, as stage 2 gets them from stage 1)."""
        if records == 0:
            return
        start = now_ms - now_ms % BUCKET_MS
        if not self._buckets or self._buckets[-1].start_ms < start:
            self._buckets.append(_Bucket(start))
        bucket = self._buckets[-1]  # a clock going back adds to the newest bucket
        bucket.records += records
        bucket.rejected += sum(reasons.values())
        bucket.reasons.update(reasons)
        self._prune(now_ms)

    def _prune(self, now_ms: int) -> None:
        while self._buckets and self._buckets[0].start_ms <= now_ms - self.window_ms:
            self._buckets.popleft()

    def assess(self, now_ms: int) -> RejectedInput:
        """The rejected share of the records of the last window before ``now_ms``."""
        self._prune(now_ms)
        records = sum(b.records for b in self._buckets)
        rejected = sum(b.rejected for b in self._buckets)
        reasons: Counter[str] = Counter()
        for b in self._buckets:
            reasons.update(b.reasons)
        top = max(reasons, key=lambda r: (reasons[r], r)) if reasons else None
        share = rejected / records if records else 0.0
        span = 0
        if self._buckets:
            span = min(self.window_ms, max(BUCKET_MS, now_ms - self._buckets[0].start_ms))
        mostly = records >= self.cfg.min_records and share >= self.cfg.share
        return RejectedInput(
            records, rejected, top, None if top is None else self._samples.get(top),
            share, span, mostly,
        )


    def verdict(self, now_ms: int, decoder: Decoder, cfg: DecodeConfig) -> InputVerdict:
        """``assess(now_ms)`` for an operator: with the field the top reason concerns
        (from decoding one record rejected for it again) and a hint (``reading_hint``
        where the record reads with other settings). Worked out once per sample, and
        only while the input is mostly invalid (when it is shown)."""
        rejected = self.assess(now_ms)
        field, reading = "", None
        sample = rejected.sample
        if rejected.mostly_invalid and sample is not None:
            if self._explained is None or self._explained[0] is not sample.value:
                try:
                    decoder.decode_one(sample.value)
                except DecodeError as exc:
                    detail = exc.detail
                else:  # accepted now: rejected for a reason decode_one does not see
                    detail = ""
                self._explained = (sample.value, detail,
                                   reading_hint(rejected.top_reason, sample.value, cfg))
            _, field, reading = self._explained
        return InputVerdict.of(rejected, field, decoder, cfg, reading)


#: What to do about a reason when no configured field is to blame.
_REASON_HINTS: Final = {
    "too_large": "raise decode.max_record_bytes if such records are expected",
    "too_deep": "raise decode.max_depth if such records are expected",
}


#: Reasons a record of another format (or inside an envelope) is rejected for: what
#: ``reading_hint`` looks past. Others (a bad status, a bad time, a size) are the
#: record's own.
_SHAPE_REASONS: Final = frozenset(
    {"invalid_json", "not_an_object", "unparseable_line", "missing_field"})
#: The fields shippers that tail a file put each line in.
_SHIPPER_FIELDS: Final = ("message", "log")
#: Formats tried for another reading, with their default fields (``json`` has none worth
#: guessing).
_OTHER_FORMATS: Final = ("kong", "envoy", "nginx-json", "combined", "haproxy", "caddy")
#: Each envelope: its settings, and where it puts the line.
_ENVELOPES: Final[tuple[tuple[dict[str, str], str], ...]] = (
    ({"envelope": "none"}, ""),
    ({"envelope": "syslog"}, " behind a syslog header"),
    *(({"envelope": "json", "envelope_field": f},
       f" in the JSON field {f} (as Fluent Bit, Vector or Filebeat send it)")
      for f in _SHIPPER_FIELDS),
)
_SYSLOG_ADVICE: Final = (
    ", or have the shipper send the line alone (rsyslog: a template of %msg%; "
    'syslog-ng: template("$MSG"))'
)


def _readings(cfg: DecodeConfig) -> list[tuple[DecodeConfig, str]]:
    """Other ways to read a record than ``cfg``'s, most alike first, each with the
    advice to take it: ``cfg``'s format in another envelope, then the other formats (with
    their default fields) in each envelope."""

    def envelope_of(c: DecodeConfig) -> tuple[str, str]:
        return c.envelope, c.envelope_field if c.envelope == "json" else ""

    out: list[tuple[DecodeConfig, str]] = []
    for fmt in (cfg.format, *(f for f in _OTHER_FORMATS if f != cfg.format)):
        for update, where in _ENVELOPES:
            other = (cfg.model_copy(update=update) if fmt == cfg.format
                     else DecodeConfig(format=fmt, **update))
            settings = [] if fmt == cfg.format else [f"decode.format: {fmt}"]
            if envelope_of(other) != envelope_of(cfg):
                settings.append(f"decode.envelope: {other.envelope}")
                if other.envelope == "json":
                    settings.append(f"decode.envelope_field: {other.envelope_field}")
            if not settings:
                continue  # cfg itself
            advice = f"the records are {fmt}{where}: set {' and '.join(settings)}"
            if "decode.envelope: syslog" in settings:
                advice += _SYSLOG_ADVICE
            out.append((other, advice))
    return out


@lru_cache(maxsize=32)
def _decoder_of(cfg: DecodeConfig) -> Decoder:
    return build_decoder(cfg)


def reading_hint(reason: str | None, value: bytes, cfg: DecodeConfig) -> str | None:
    """What to set when the rejected ``value`` reads as an access log with other
    ``decode`` settings: the configured format inside an envelope, or another format
    (None: no reading fits, or ``reason`` is the record's own, not its shape).

    >>> import json
    >>> line = '1.2.3.4 - - [06/Dec/2026:05:30:01 +0000] "GET / HTTP/1.1" 200 5'
    >>> combined = DecodeConfig(format="combined")
    >>> reading_hint("unparseable_line", json.dumps({"log": line}).encode(), combined)[-56:]
    'set decode.envelope: json and decode.envelope_field: log'
    >>> reading_hint("invalid_json", line.encode(), DecodeConfig(format="kong"))
    'the records are combined: set decode.format: combined'
    >>> reading_hint("invalid_json", b'{"log": "no access log"}', combined) is None
    True
    """
    if reason not in _SHAPE_REASONS:
        return None
    for other, advice in _readings(cfg):
        try:
            _decoder_of(other).decode_one(value)
        except DecodeError:
            continue
        return advice
    return None


def hint(reason: str | None, field: str, key: str | None, fmt: str) -> str:
    """What to check for the top reason, naming the configuration key.

    >>> hint("missing_field", "time", "decode.fields.timestamp", "nginx-json")[:27]
    'set decode.fields.timestamp'
    >>> hint("invalid_json", "", None, "kong")
    'check decode.format (now kong): the records are not in that format'
    """
    if reason in _REASON_HINTS:
        return _REASON_HINTS[reason]
    if key == "decode.fields.timestamp":
        if reason in ("bad_timestamp", "wrong_type"):
            return "check decode.fields.timestamp_unit (s, ms, us, ns, iso8601, clf)"
        return (
            "set decode.fields.timestamp (and decode.fields.timestamp_unit) to the field "
            "that holds the request time"
        )
    if key is not None:
        return f"set {key} to the field that holds it"
    return f"check decode.format (now {fmt}): the records are not in that format"


@dataclass(frozen=True, slots=True)
class InputVerdict:
    """``RejectedInput`` with what it means for an operator."""

    rejected: RejectedInput
    #: the field the top reason concerns ("" unknown) and its configuration key
    field: str
    key: str | None
    hint: str
    window_seconds: float

    @property
    def mostly_invalid(self) -> bool:
        return self.rejected.mostly_invalid

    @staticmethod
    def of(
        rejected: RejectedInput, field: str, decoder: Decoder, cfg: DecodeConfig,
        reading: str | None = None,
    ) -> InputVerdict:
        """``reading``: the settings the rejected records read with, if any (the hint)."""
        key = decoder.config_key(field) if field else None
        advice = reading if reading is not None else hint(
            rejected.top_reason, field, key, cfg.format)
        return InputVerdict(rejected, field, key, advice, cfg.mostly_invalid.window_seconds)

    def message(self) -> str:
        """One line: how much was rejected, the top reason, the field, the hint.

        >>> from statuswatch.config import DecodeConfig
        >>> r = RejectedInput(1200, 1200, "missing_field", None, 1.0, 60_000, True)
        >>> print(InputVerdict(r, "time", "decode.fields.timestamp", "set it", 60.0).message())
        ... # doctest: +NORMALIZE_WHITESPACE
        input mostly invalid: 100% of 1200 records in the last 60s rejected, top reason
        missing_field (field time, decode.fields.timestamp); hint: set it
        """
        r = self.rejected
        field = ""
        if self.field:
            field = f" (field {self.field}" + (f", {self.key})" if self.key else ")")
        return (
            f"input mostly invalid: {r.share:.0%} of {r.records} records in the last "
            f"{self.window_seconds:g}s rejected, top reason {r.top_reason}{field}; "
            f"hint: {self.hint}"
        )
