"""Decode stage: raw record values (bytes) -> ``DecodedBatch`` columns. Pure.

One module per log format; ``build_decoder`` picks one by ``DecodeConfig.format``.
The shared parts, in the order a record meets them: ``protocol`` (the decoder
protocol, field checks), ``timestamps`` (and ``timestamp_columns``, vectorised),
``batch`` (size, UTF-8 and depth prechecks; the batch builder), ``json_fields``
(a JSON format's table of fields and what is derived from it: the full schema,
the C scanner's fields), ``jsondecoder`` (the JSON decoder: the C scanner
``_jsonscan`` as the fast path, ``scanned_columns`` for its columns, and the full
decoder as the reference and the fallback). ``lines``: a file's block of lines as
a sequence of values, which the C scanner reads in place. ``envelope``: records
behind a syslog header or inside a shipper's JSON event (``decode.envelope``).

>>> from statuswatch.config import DecodeConfig
>>> d = build_decoder(DecodeConfig(format="kong"))
>>> batch = d.decode([
...     b'{"started_at": 1680600000123, "response": {"status": 200}, "service": {"name": "a"}}',
...     b'{"started_at": 1680600000456, "response": {"status": 999}}',
...     b'not json',
... ])
>>> batch.status.tolist(), batch.dims["service"], batch.index.tolist()
([200], ['a'], [0])
>>> [(r.index, r.reason) for r in batch.invalid]
[(1, 'status_out_of_range'), (2, 'invalid_json')]
"""

from __future__ import annotations

from statuswatch.config import DecodeConfig
from statuswatch.core.decode.batch import BaseDecoder
from statuswatch.core.decode.caddy import CaddyDecoder
from statuswatch.core.decode.combined import CombinedDecoder
from statuswatch.core.decode.envelope import Unwrapped, unwrapper
from statuswatch.core.decode.envoy import EnvoyDecoder
from statuswatch.core.decode.generic_json import GenericJsonDecoder
from statuswatch.core.decode.haproxy import HAProxyDecoder
from statuswatch.core.decode.jsondecoder import JsonDecoder
from statuswatch.core.decode.kong import KongDecoder
from statuswatch.core.decode.nginx_json import NginxJsonDecoder
from statuswatch.core.decode.protocol import Decoder, Parsed
from statuswatch.core.decode.timestamps import END_TS_MS, MIN_TS_MS
from statuswatch.errors import ConfigError

__all__ = [
    "DECODERS",
    "END_TS_MS",
    "MIN_TS_MS",
    "BaseDecoder",
    "CaddyDecoder",
    "CombinedDecoder",
    "Decoder",
    "EnvoyDecoder",
    "GenericJsonDecoder",
    "HAProxyDecoder",
    "JsonDecoder",
    "KongDecoder",
    "NginxJsonDecoder",
    "Parsed",
    "Unwrapped",
    "build_decoder",
]

#: Decoder class per ``DecodeConfig.format``.
DECODERS: dict[str, type[BaseDecoder]] = {
    "kong": KongDecoder,
    "envoy": EnvoyDecoder,
    "nginx-json": NginxJsonDecoder,
    "json": GenericJsonDecoder,
    "combined": CombinedDecoder,
    "haproxy": HAProxyDecoder,
    "caddy": CaddyDecoder,
}


def build_decoder(cfg: DecodeConfig) -> Decoder:
    """The decoder for ``cfg.format``; ``ConfigError`` for an unknown format.

    >>> build_decoder(DecodeConfig(format="combined")).name
    'combined'
    """
    try:
        cls = DECODERS[cfg.format]
    except KeyError:
        raise ConfigError(f"decode.format: unknown format {cfg.format!r}") from None
    decoder: Decoder = cls(cfg)
    unwrap = unwrapper(cfg)
    return decoder if unwrap is None else Unwrapped(decoder, unwrap)
