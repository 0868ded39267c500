"""Records that carry the access log line inside something else: behind a syslog header,
or in a string field of a shipper's JSON event.

``decode.envelope: syslog``. Shippers that speak syslog put a header before each line
they forward to Kafka: rsyslog's ``omkafka`` with its default template
(``RSYSLOG_FileFormat``), syslog-ng's ``kafka`` destination with its default template,
NGINX logging with ``access_log syslog:...`` through a relay. Three header shapes cover
them:

* RFC 3164, as on the wire: ``<190>Dec  6 05:30:01 web-1 nginx: ``
  (the priority and the hostname may be absent, the tag may carry ``[pid]``);
* the same with an RFC 3339 time, as rsyslog and syslog-ng write files and Kafka records:
  ``2026-12-06T05:30:01.123456+00:00 web-1 nginx: ``;
* RFC 5424: ``<190>1 2026-12-06T05:30:01.123Z web-1 nginx 812 - - `` (structured data
  ``-`` or ``[id k="v"]...``; a UTF-8 BOM before the message is dropped too).

``decode.envelope: json``. Shippers that tail a file send each line as a string field
of a JSON event: Vector and Filebeat ``{"message": "<line>", "host": ..., ...}``, Fluent
Bit ``{"log": "<line>", ...}``; ``decode.envelope_field`` names it (a dotted path).

Either way, a record without the envelope is decoded as it is (a topic fed by several
shippers), and the event time is the access log's own, never the envelope's.

>>> syslog_message(b'<190>Dec  6 05:30:01 web-1 nginx: {"status":"403"}')
b'{"status":"403"}'
>>> syslog_message(b'2026-12-06T05:30:01.123456+00:00 web-1 nginx[812]: 1.2.3.4 - -')
b'1.2.3.4 - -'
>>> syslog_message(b'<14>1 2026-12-06T05:30:01Z web-1 nginx 812 - [a b="]"] {}')
b'{}'
>>> syslog_message(b'{"status": 200}')
b'{"status": 200}'
>>> json_field("log")(b'{"log": "1.2.3.4 - - [06/Dec/2026:05:30:01 +0000]", "stream": "stdout"}')
b'1.2.3.4 - - [06/Dec/2026:05:30:01 +0000]'
>>> json_field("event.original")(b'{"event": {"original": "GET /"}, "host": "a"}')
b'GET /'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, Final

import msgspec

from statuswatch.config import DecodeConfig
from statuswatch.core.columns import DecodedBatch
from statuswatch.core.decode.protocol import Decoder, Parsed

_RFC3339: Final = rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)"
_HEADER: Final = re.compile(
    rb"(?:<\d{1,3}>)?+"  # the priority
    rb"(?:"
    # RFC 5424: VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA, each
    # field "-" when absent; structured data "-" or [id name="value" ...] elements
    rb"1 (?:" + _RFC3339 + rb"|-) \S{1,255} \S{1,48} \S{1,128} \S{1,32} "
    rb'(?:-|(?:\[[^\]\s"=]+(?: [^\]\s"=]+="(?:[^"\\]|\\.)*+")*+\])++)(?: (?:\xef\xbb\xbf)?+|$)'
    # RFC 3164 (Mmm dd hh:mm:ss) or an RFC 3339 time, [HOSTNAME] TAG[pid]:
    rb"|(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|" + _RFC3339 + rb")"
    rb" (?:[^\s:\[\]]{1,255} (?=[^\s:\[\]]{1,48}(?:\[[^\]\s]{0,32}\])?:))?+"
    rb"[^\s:\[\]]{1,48}(?:\[[^\]\s]{0,32}\])?: ?"
    rb")",
)


def syslog_header_length(value: bytes) -> int:
    """The length of the syslog header ``value`` begins with (0: none)."""
    m = _HEADER.match(value)
    return m.end() if m else 0


def syslog_message(value: bytes) -> bytes:
    """``value`` without the syslog header it begins with, if any."""
    n = syslog_header_length(value)
    return value[n:] if n else value


@lru_cache(maxsize=16)
def json_field(path: str) -> Callable[[bytes], bytes]:
    """The unwrapping of ``decode.envelope: json``: a record's string at the dotted
    ``path`` as UTF-8; the record itself where it is no JSON object with a string there."""
    schema: Any = str
    for depth, key in reversed(list(enumerate(path.split(".")))):
        schema = msgspec.defstruct(f"Envelope{depth}", [("inner", schema | None, None)],
                                   rename={"inner": key}, gc=False)
    decoder = msgspec.json.Decoder(schema)

    def unwrap(value: bytes) -> bytes:
        try:
            found: Any = decoder.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return value
        while found is not None and not isinstance(found, str):
            found = found.inner
        return value if found is None else found.encode("utf-8", "surrogatepass")

    return unwrap


def unwrapper(cfg: DecodeConfig) -> Callable[[bytes], bytes] | None:
    """How ``cfg.envelope`` takes a record's line out of its envelope (None: none)."""
    if cfg.envelope == "syslog":
        return syslog_message
    if cfg.envelope == "json":
        return json_field(cfg.envelope_field)
    return None


class Unwrapped:
    """A decoder whose records are taken out of their envelope before ``inner`` reads them.

    Decoding takes the full path of ``inner`` on a list of the lines (its C scanner
    still does the JSON), not the in-place scan of a file's blocks.

    >>> from statuswatch.core.decode import build_decoder
    >>> d = build_decoder(DecodeConfig(format="nginx-json", envelope="syslog"))
    >>> batch = d.decode([b'<190>Dec  6 05:30:01 web-1 nginx: {"time_local": '
    ...                   b'"06/Dec/2026:05:30:01 +0000", "status": "403"}', b'x'])
    >>> batch.status.tolist(), [(r.index, r.reason) for r in batch.invalid]
    ([403], [(1, 'invalid_json')])
    """

    def __init__(self, inner: Decoder, unwrap: Callable[[bytes], bytes]) -> None:
        self.inner = inner
        self.unwrap = unwrap
        self.name = inner.name

    @property
    def fast_path(self) -> str:
        return self.inner.fast_path

    @property
    def scanner_missing(self) -> bool:
        return self.inner.scanner_missing

    def decode(self, values: Sequence[bytes]) -> DecodedBatch:
        unwrap = self.unwrap
        return self.inner.decode([unwrap(v) for v in values])

    def decode_one(self, value: bytes) -> Parsed:
        return self.inner.decode_one(self.unwrap(value))

    def config_key(self, field: str) -> str | None:
        return self.inner.config_key(field)


__all__ = ["Unwrapped", "json_field", "syslog_header_length", "syslog_message", "unwrapper"]
