"""The decoders' fast paths never change a result (hypothesis).

The batch path (``decode``) of every format takes a fast path for the common
record shape and falls back to the full decoder for anything else. Here random
records, valid and broken in every way a field can be (absent, ``null``, of
another type, out of range, an impossible date, nginx's ``"-"``, bytes cut or
inserted), must decode in a batch exactly as ``decode_one`` decodes them one by
one: same values, same reasons, same indices. Records start from what the
simulator writes, so the fast paths are really taken.

Every case runs on both batch paths of the JSON formats: the C scanner's fast
path (``_jsonscan``, which CI builds: its cases fail if it is missing) and the
full decoder record by record (the fallback without the extension).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statuswatch.config import DecodeConfig, FieldMap
from statuswatch.core.decode import Decoder, JsonDecoder, Parsed, build_decoder, jsondecoder
from statuswatch.simulate import SimSpec, encode, generate
from tests.unit.decode_samples import (
    CONFIGS,
    LINE_FORMATS,
    batch_outcomes,
    outcomes,
    realistic_batch,
)

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: The formats as the simulator writes them (these configurations take the fast paths).
SIM_CONFIGS: dict[str, DecodeConfig] = {
    "kong": DecodeConfig(format="kong"),
    "envoy": DecodeConfig(format="envoy", fields=FieldMap(app="x_app_id")),
    "nginx-json": DecodeConfig(
        format="nginx-json", fields=FieldMap(service="service", route="route", app="app")
    ),
    "json": DecodeConfig(
        format="json",
        fields=FieldMap(timestamp="ts", timestamp_unit="ms", status="status", service="svc",
                        route="route", app="app"),
    ),
    "combined": DecodeConfig(format="combined"),
    "haproxy": DecodeConfig(format="haproxy"),
    "caddy": DecodeConfig(format="caddy", fields=FieldMap(app="user_id")),
}

_SPEC = SimSpec(rate=300.0, n_apps=30)
_CHUNK = next(generate(_SPEC, 1_680_566_400_000, 1_680_566_401_000))
SIM_RECORDS: dict[str, list[bytes]] = {fmt: encode(fmt, _CHUNK, _SPEC)[:40] for fmt in SIM_CONFIGS}

DECODERS: dict[str, tuple[Decoder, list[bytes]]] = {}
for _fmt, _cfg in SIM_CONFIGS.items():
    DECODERS[f"sim-{_fmt}"] = (build_decoder(_cfg), SIM_RECORDS[_fmt])
for _fmt, _cfg in CONFIGS.items():
    DECODERS[f"samples-{_fmt}"] = (build_decoder(_cfg), realistic_batch(_fmt, 40, seed=3)[0])
DECODERS["kong-tight"] = (
    build_decoder(DecodeConfig(format="kong", max_depth=3, max_record_bytes=740)),
    SIM_RECORDS["kong"],
)
DECODERS["json-seconds"] = (
    build_decoder(DecodeConfig(format="json", fields=FieldMap(
        timestamp="ts", timestamp_unit="s", status="status", service="svc"))),
    SIM_RECORDS["json"],
)
DECODERS["json-ns"] = (
    build_decoder(DecodeConfig(format="json", fields=FieldMap(
        timestamp="ts", timestamp_unit="ns", status="status", app="app"))),
    SIM_RECORDS["json"],
)

_NGINX_TIMES = [
    b'{"time_local":"04/Apr/2023:00:00:00 +0000","status":"200","upstream_name":"a"}',
    b'{"time_iso8601":"2023-04-04T02:00:00+02:00","status":"503","upstream_name":"b"}',
    b'{"msec":"1680566400.123","status":"404","upstream_name":"-"}',
    b'{"msec":"","time_local":"04/Apr/2023:01:00:00 +0100","time_iso8601":"-","status":"200"}',
    b'{"time":"2023-04-04T00:00:00.5Z","time_local":"04/Apr/2023:00:00:00 +0000","status":"000"}',
]
DECODERS["nginx-default-times"] = (
    build_decoder(DecodeConfig(format="nginx-json", fields=FieldMap(service="upstream_name"))),
    _NGINX_TIMES * 8,
)
DECODERS["nginx-time-local"] = (
    build_decoder(DecodeConfig(format="nginx-json", fields=FieldMap(timestamp="time_local"))),
    _NGINX_TIMES[:1] * 40,
)
DECODERS["json-clf"] = (
    build_decoder(DecodeConfig(format="json", fields=FieldMap(
        timestamp="time_local", timestamp_unit="clf", status="status"))),
    [v.replace(b'"status":"200"', b'"status":200') for v in _NGINX_TIMES[:1]] * 40,
)

# Events without a status (decode.fields.status: null): an epoch-ms table with the
# simulator's records (their status is not read), and a table of strings only.
DECODERS["json-events"] = (
    build_decoder(DecodeConfig(format="json", fields=FieldMap(
        timestamp="ts", timestamp_unit="ms", status=None, service="svc", app="app"))),
    SIM_RECORDS["json"],
)
TICKETS = [
    b'{"created_at":"2026-12-06T07:00:00Z","category":"billing","customer":{"id":"c-1"}}',
    b'{"created_at":"2026-12-06T07:00:01.250Z","category":"login"}',
    b'{"created_at":"2026-12-06T08:00:02+01:00","category":"","customer":{"id":"c-2"}}',
    b'{"created_at":"2026-12-06T07:00:03Z","customer":{"id":"c-3"},"status":"open"}',
]
DECODERS["json-events-iso"] = (
    build_decoder(DecodeConfig(format="json", fields=FieldMap(
        timestamp="created_at", status=None, service="category", app="customer.id"))),
    TICKETS * 10,
)

#: The cases without any fast path (text lines).
NO_FAST_PATH = {f"{source}-{fmt}" for source in ("sim", "samples") for fmt in LINE_FORMATS}

#: The batch paths: the C scanner, and the full decoder (no fast path) as without it.
PATHS = ["native", "full_decoder"]


@contextmanager
def fast_path(decoder: Decoder, path: str) -> Iterator[None]:
    """Run ``decoder``'s batches on ``path`` ("native" or "full_decoder")."""
    if path == "native":
        assert jsondecoder.NATIVE_SCANNER is not None, (
            "the C extension statuswatch.core.decode._jsonscan is not built "
            "(pip install -e . builds it; it needs a C compiler)"
        )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jsondecoder, "NATIVE_SCAN", path == "native")
        if isinstance(decoder, JsonDecoder):
            assert decoder.fast_path == ("native" if path == "native" else "none")
            decoder._skip_fast = 0  # a batch of mostly bad records before must not rest the path
        yield


#: Values a field may be replaced with: every type, both sides of every range.
ODD_VALUES: list[Any] = [
    None, "", "-", "abc", "200", "0200", "99", "600", "é", 200, 403, 200.0, 403.5, True, False,
    [], {}, {"name": "x"}, [1], -1, 0, 99, 100, 599, 600, 2**63, 2**64 + 1, 10**30, -(2**63),
    "2023-04-04T10:00:00.123Z", "2023-04-04T10:00:00.123+02:00", "2023-04-04T10:00:00.123-05:30",
    "2023-02-29T00:00:00.000Z", "2024-02-29T00:00:00.000Z", "2023-04-31T00:00:00.000Z",
    "2023-04-04T24:00:00.000Z", "2023-04-04T10:60:00.000Z", "2023-04-04T10:00:60.000Z",
    "1999-12-31T23:59:59.999Z", "2200-12-31T23:59:59.999Z", "2201-01-01T00:00:00.000Z",
    "2023-04-04T10:00:00.123+24:00", "2023-04-04 10:00:00.123Z", "2023-04-04T10:00:00.123",
    "2023-04-04T10:00:00.1234Z", "\uff12\uff10\uff12\uff13-04-04T10:00:00.123Z",
    "2023-13-04T10:00:00.000Z",
    1_680_600_000_123, 1_680_600_000, 946_684_800_000, 946_684_799_999, 7_289_654_399_999,
    7_289_654_400_000, 1_680_600_000.5, 1_680_600_000_123_456_789, "1680600000.123",
    'a"b', "a\\b", "\x00", "\x1f", "\u2028", "\U0001f600", 2**63 - 1, 2**63, -(2**63) - 1,
    # common-log-format times, nginx's $msec and $time_iso8601, no-response statuses
    "04/Apr/2023:00:00:00 +0000", "04/Apr/2023:02:00:00 +0200", "31/Feb/2023:00:00:00 +0000",
    "04/Apr/2023:24:00:00 +0000", "04/apr/2023:00:00:00 +0000", "04/Apr/2023:00:00:00 +2400",
    "04/Apr/2023:00:00:00", "04/Apr/1999:00:00:00 +0000", "1680566400.123", "1680566400.1234",
    "0680566400.123", "1680566400,123", "2023-04-04T02:00:00+02:00", "2023-04-04T00:00:00Z",
    "2023-04-04T00:00:00+24:00", "000", "0", "00",
]

#: JSON texts of values (not all valid): escapes, surrogates, numbers at the grammar's edges.
RAW_VALUES: list[str] = [
    '"\\ud800"', '"\\udc00"', '"\\ud83d\\ude00"', '"\\ud83d\\u0041"', '"\\u00e9\\n\\/"',
    '"\\x"', '"\\u12"', "1e400", "-0", "1E+2", "-1.5e-3", "01", "1.", ".5", "-", "+1",
    "[1,[2,{}]]", "[1,]", "{,}", '{"a":1,}', "tru", "nulll", '"\t"', "[" * 64 + "]" * 64,
]


def _paths(obj: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.append((*prefix, key))
            out += _paths(value, (*prefix, key))
    return out


def _set(obj: dict[str, Any], path: tuple[str, ...], value: Any, delete: bool) -> None:
    for key in path[:-1]:
        inner = obj.get(key)
        if not isinstance(inner, dict):
            return
        obj = inner
    if delete:
        obj.pop(path[-1], None)
    else:
        obj[path[-1]] = value


@st.composite
def json_record(draw: st.DrawFn, base: bytes) -> bytes:
    obj = json.loads(base)
    paths = _paths(obj)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(paths))
        delete = draw(st.booleans()) and draw(st.booleans())
        # a copy: a later path may lead into it, and the list must stay as it is
        _set(obj, path, copy.deepcopy(draw(st.sampled_from(ODD_VALUES))), delete)
    if draw(st.integers(0, 9)) == 0:  # deep nesting somewhere
        depth = draw(st.integers(1, 70))
        obj["extra"] = json.loads("[" * depth + "]" * depth)
    ascii_only = draw(st.booleans())
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii_only)
    kind = draw(st.integers(0, 9))
    if kind == 0 and obj:  # a key twice, one of them with an odd value
        key = draw(st.sampled_from(paths))[0]
        pair = json.dumps({key: draw(st.sampled_from(ODD_VALUES))}, separators=(",", ":"))
        text = pair[:-1] + "," + text[1:] if draw(st.booleans()) else text[:-1] + "," + pair[1:]
    elif kind == 1 and obj:  # a key spelled with an escape
        key = draw(st.sampled_from(paths))[-1]
        if key:
            quoted = json.dumps(key) + ":"
            text = text.replace(quoted, f'"\\u{ord(key[0]):04x}{quoted[2:]}', 1)
    elif kind == 2:  # whitespace between the tokens
        text = json.dumps(obj, indent=draw(st.sampled_from(["", " ", "\t", " \r"])),
                          ensure_ascii=ascii_only)
    elif kind == 3 and obj:  # a skipped value the scanner must parse right
        fragment = draw(st.sampled_from(RAW_VALUES))
        text = text[:-1] + ',"extra2":' + fragment + "}"
    value = text.encode()
    return draw(_mutated(value))


@st.composite
def _mutated(draw: st.DrawFn, value: bytes) -> bytes:
    kind = draw(st.integers(0, 11))
    if kind == 0 and value:  # cut
        return value[: draw(st.integers(0, len(value) - 1))]
    if kind == 1:  # insert a byte
        at = draw(st.integers(0, len(value)))
        return value[:at] + draw(st.sampled_from([b"{", b"}", b"[", b'"', b",", b"\n", b"\xff",
                                                  b" ", b"\\", b"\x00"])) + value[at:]
    if kind == 2:  # whitespace around
        return b" \n" + value + b"\r\n"
    if kind == 3:
        return value + value  # two records in one
    return value


@st.composite
def combined_line(draw: st.DrawFn, base: bytes) -> bytes:
    line = base
    if draw(st.booleans()):
        old = draw(st.sampled_from([b"GET", b"HTTP/1.1", b" 200 ", b"+0000", b"Apr", b"2023",
                                    b"[", b"]", b'"', b"/"]))
        new = draw(st.sampled_from([b"", b"XX", b" 600 ", b" 099 ", b"+2400", b"Foo", b"1999",
                                    b"31/Feb", b"\xff", b'\\"', b"//", b" 404 "]))
        line = line.replace(old, new, 1)
    return draw(_mutated(line))


@st.composite
def batch_for(draw: st.DrawFn, name: str) -> list[bytes]:
    decoder, bases = DECODERS[name]
    make = combined_line if decoder.name in LINE_FORMATS else json_record
    values = []
    for _ in range(draw(st.integers(1, 30))):
        base = draw(st.sampled_from(bases))
        values.append(base if draw(st.booleans()) else draw(make(base)))
    return values


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", sorted(DECODERS))
@SETTINGS
@given(data=st.data())
def test_fast_path_agrees_with_decode_one(name: str, path: str, data: st.DataObject) -> None:
    decoder = DECODERS[name][0]
    values = data.draw(batch_for(name))
    with fast_path(decoder, path):
        assert batch_outcomes(decoder, values) == outcomes(decoder, values)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", sorted(DECODERS))
def test_the_fast_path_is_taken_and_exact_on_clean_records(name: str, path: str) -> None:
    decoder, bases = DECODERS[name]
    values = bases * 20  # several fast chunks
    with fast_path(decoder, path):
        native = path == "native" and name not in NO_FAST_PATH
        assert decoder.fast_path == ("native" if native else "none")
        assert batch_outcomes(decoder, values) == outcomes(decoder, values)
        if name in ("json-seconds", "json-ns", "kong-tight"):  # ms timestamps; size limit
            return
        assert not decoder.decode(values).invalid
        if isinstance(decoder, JsonDecoder) and native:
            # the fast path vouches for every one of them: the full decoder is not called
            full = decoder._full
            calls: list[bytes] = []

            def counting(value: bytes) -> Parsed | str:
                calls.append(value)
                return full(value)

            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(decoder, "_full", counting)
                decoder.decode(values)
            assert not calls


_SENTINEL = "@@inner@@"


def _tricky_keys(base: bytes) -> list[bytes]:
    """``base`` with each key spelled with an escape, and with each key of the top-level
    object and of the objects in it twice (before and after, with other values)."""
    obj = json.loads(base)
    text = json.dumps(obj, separators=(",", ":"))
    out: list[str] = []
    for path in _paths(obj):
        quoted = json.dumps(path[-1]) + ":"
        if path[-1]:
            out += [text.replace(quoted, f'"\\u{ord(path[-1][0]):04x}{quoted[2:]}', 1)]

    def twice(obj_text: str, key: str, value: Any) -> list[str]:
        pair = json.dumps({key: value}, separators=(",", ":"))
        return [pair[:-1] + "," + obj_text[1:], obj_text[:-1] + "," + pair[1:]]

    for key, value in obj.items():
        for other in ({}, None, {"x": 1}, "zz", 12345, value):
            out += twice(text, key, other)
        if isinstance(value, dict) and value:
            outer = json.dumps({**obj, key: _SENTINEL}, separators=(",", ":"))
            inner = json.dumps(value, separators=(",", ":"))
            for key2, value2 in value.items():
                for other in ({}, None, "zz", 12345, value2):
                    out += [outer.replace(f'"{_SENTINEL}"', v) for v in twice(inner, key2, other)]
    return [v.encode() for v in out]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", sorted(DECODERS))
def test_duplicate_and_escaped_keys(name: str, path: str) -> None:
    decoder, bases = DECODERS[name]
    if decoder.name in LINE_FORMATS:
        return
    values = [v for base in bases[:3] for v in _tricky_keys(base)]
    with fast_path(decoder, path):
        assert batch_outcomes(decoder, values) == outcomes(decoder, values)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", sorted(DECODERS))
def test_large_batches_with_scattered_bad_records(name: str, path: str) -> None:
    decoder, bases = DECODERS[name]
    values = [bases[i % len(bases)] for i in range(2000)]
    for i in range(0, 2000, 97):
        values[i] = values[i][: len(values[i]) // 2]
    values[5] = b""
    values[1999] = b"\xff\xfe"
    with fast_path(decoder, path):
        assert batch_outcomes(decoder, values) == outcomes(decoder, values)
