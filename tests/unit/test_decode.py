"""Decode stage: every format, every invalid reason, mixed batches, a real log file."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import msgspec
import numpy as np
import pytest

from statuswatch.config import DecodeConfig, FieldMap, load_settings
from statuswatch.core.columns import DIMENSIONS, INVALID_REASONS, NO_RESPONSE, DecodedBatch
from statuswatch.core.decode import (
    DECODERS,
    CombinedDecoder,
    Decoder,
    EnvoyDecoder,
    GenericJsonDecoder,
    HAProxyDecoder,
    KongDecoder,
    NginxJsonDecoder,
    Parsed,
    build_decoder,
)
from statuswatch.core.decode.batch import json_depth, precheck_batch
from statuswatch.errors import ConfigError, DecodeError
from tests.data import APACHE_CODES, apache_lines
from tests.unit.decode_samples import CONFIGS, LINE_FORMATS, realistic_batch

TS = 1_680_600_000_123  # 2023-04-04T09:20:00.123Z
ISO = "2023-04-04T09:20:00.123Z"


def rows(batch: DecodedBatch) -> list[Parsed]:
    """The good records of a batch as ``Parsed`` tuples."""
    return [
        Parsed(*r)
        for r in zip(
            batch.ts_ms.tolist(),
            batch.status.tolist(),
            *(batch.dims[d] for d in DIMENSIONS),
            strict=True,
        )
    ]


def reason_of(decoder: Decoder, value: bytes) -> str:
    """The reason ``decode_one`` rejects ``value``; also checks the batch path agrees."""
    with pytest.raises(DecodeError) as info:
        decoder.decode_one(value)
    batch = decoder.decode([value])
    assert len(batch) == 0
    assert [(r.index, r.reason) for r in batch.invalid] == [(0, info.value.reason)]
    assert info.value.reason in INVALID_REASONS
    return info.value.reason


def dumps(obj: object) -> bytes:
    return json.dumps(obj).encode()


def nested(depth: int) -> object:
    """A list nested ``depth`` levels deep."""
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


# -- the registry ---------------------------------------------------------------


def test_build_decoder_picks_the_format() -> None:
    for fmt, cls in DECODERS.items():
        decoder = build_decoder(DecodeConfig(format=fmt))  # type: ignore[arg-type]
        assert type(decoder) is cls
        assert decoder.name == fmt
    assert set(DECODERS) == {"kong", "envoy", "nginx-json", "json", "combined", "haproxy",
                             "caddy"}


def test_build_decoder_rejects_an_unknown_format() -> None:
    cfg = DecodeConfig.model_construct(format="syslog")  # bypasses validation
    with pytest.raises(ConfigError, match=r"decode\.format"):
        build_decoder(cfg)


def test_empty_batch() -> None:
    for cfg in CONFIGS.values():
        batch = build_decoder(cfg).decode([])
        assert len(batch) == 0 and batch.invalid == []
        assert batch.ts_ms.dtype == np.int64 and batch.index.dtype == np.int64
        assert batch.dims == {d: [] for d in DIMENSIONS}


# -- realistic batches: batch path == decode_one == expected ---------------------


@pytest.mark.parametrize("fmt", list(CONFIGS))
def test_realistic_batch_decodes_exactly(fmt: str) -> None:
    values, expected = realistic_batch(fmt, 5000, seed=7)
    assert all(300 <= len(v) <= 800 for v in values)
    decoder = build_decoder(CONFIGS[fmt])
    batch = decoder.decode(values)
    assert batch.invalid == []
    assert rows(batch) == expected
    assert batch.index.tolist() == list(range(5000))
    assert [decoder.decode_one(v) for v in values] == expected
    assert batch.ts_ms.dtype == np.int64 and batch.status.dtype == np.int64


def with_overrides(rec: dict[str, object], over: dict[str, object]) -> bytes:
    """``rec`` as JSON with ``over`` applied: a value replaces the key's, ``...`` drops it."""
    for key, value in over.items():
        if value is ...:
            rec.pop(key, None)
        else:
            rec[key] = value
    return dumps(rec)


# -- kong -----------------------------------------------------------------------

KONG = KongDecoder(DecodeConfig(format="kong"))


def kong(**over: object) -> bytes:
    rec: dict[str, object] = {
        "request": {"method": "GET", "uri": "/orders/1", "headers": {"x": ["a", "b"]}},
        "response": {"status": 200, "size": 12},
        "service": {"name": "orders", "id": "s1"},
        "route": {"name": "orders-v1", "paths": ["/orders"]},
        "consumer": {"id": "c-1", "username": "shop"},
        "started_at": TS,
        "latencies": {"request": 12},
    }
    return with_overrides(rec, over)


def test_kong_good() -> None:
    assert KONG.decode_one(kong()) == Parsed(TS, 200, "orders", "orders-v1", "c-1")
    # optional objects may be absent or null; the app falls back to the username
    assert KONG.decode_one(kong(service=..., route=None, consumer={"username": "shop"})) == (
        Parsed(TS, 200, "", "", "shop")
    )
    assert KONG.decode_one(kong(consumer={}, service={"name": None})) == Parsed(
        TS, 200, "", "orders-v1", ""
    )
    # unknown fields of any shape are skipped
    assert KONG.decode_one(kong(extra={"deep": [[[{"x": None}]]]}, tries=[1, 2])).status == 200


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (kong(started_at=...), "missing_field"),
        (kong(response=...), "missing_field"),
        (kong(response={"size": 1}), "missing_field"),
        (kong(response={"status": "abc"}), "wrong_type"),
        (kong(response={"status": "200"}), "wrong_type"),
        (kong(response={"status": True}), "wrong_type"),
        (kong(response={"status": [200]}), "wrong_type"),
        (kong(response={"status": 200.0}), "wrong_type"),
        (kong(response={"status": None}), "wrong_type"),
        (kong(response=[200]), "wrong_type"),
        (kong(started_at="1680600000123"), "wrong_type"),
        (kong(started_at=False), "wrong_type"),
        (kong(service="orders"), "wrong_type"),
        (kong(service={"name": 7}), "wrong_type"),
        (kong(consumer={"id": ["c"]}), "wrong_type"),
        (kong(response={"status": 999}), "status_out_of_range"),
        (kong(response={"status": -1}), "status_out_of_range"),
        (kong(response={"status": 99}), "status_out_of_range"),
        (kong(response={"status": 600}), "status_out_of_range"),
        (kong(response={"status": 2**70}), "status_out_of_range"),  # beyond 64 bits
        (kong(started_at=1_680_600_000), "bad_timestamp"),  # seconds
        (kong(started_at=946_684_799_999), "bad_timestamp"),  # 1999-12-31T23:59:59.999Z
        (kong(started_at=7_289_654_400_000), "bad_timestamp"),  # 2201-01-01
        (kong(started_at=-5), "bad_timestamp"),
        (b'{"started_at": 1, ', "invalid_json"),
        (b"", "invalid_json"),
        (b"   ", "invalid_json"),
        (b"hello", "invalid_json"),
        (kong() + b" trailing", "invalid_json"),
        (kong() + b"\n" + kong(), "invalid_json"),
        (b'{"a": 1}{"b": 2}', "invalid_json"),
        (b'{"a": "\\ud800"}', "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"text"', "not_an_object"),
        (b"42", "not_an_object"),
        (b"null", "not_an_object"),
        (b'{"started_at": "\xff"}', "invalid_utf8"),
        (b'{"ignored": "\xc3("}', "invalid_utf8"),
        (b"\xef\xbb\xbf" + kong(), "invalid_json"),  # a BOM is not JSON
        (b'{"x": ' + b"[" * 65 + b"]" * 65 + b"}", "too_deep"),
        (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
        (b"[" * 100_000, "too_deep"),
        (b'{"a":' * 100_000, "too_deep"),
    ],
)
def test_kong_invalid(value: bytes, reason: str) -> None:
    assert reason_of(KONG, value) == reason


def test_edges_of_the_accepted_ranges() -> None:
    assert KONG.decode_one(kong(started_at=946_684_800_000)).ts_ms == 946_684_800_000
    assert KONG.decode_one(kong(started_at=7_289_654_399_999)).ts_ms == 7_289_654_399_999
    assert KONG.decode_one(kong(response={"status": 100})).status == 100
    assert KONG.decode_one(kong(response={"status": 599})).status == 599


def test_depth_limit_is_exact_and_configurable() -> None:
    at_limit = b'{"x": ' + b"[" * 63 + b"]" * 63 + b"}"  # depth 64
    assert json_depth(at_limit) == 64
    assert KONG.decode_one(kong()[:-1] + b', "x": ' + b"[" * 63 + b"]" * 63 + b"}").status == 200
    assert reason_of(KONG, at_limit) == "missing_field"  # not too deep: the fields are missing
    shallow = KongDecoder(DecodeConfig(format="kong", max_depth=2))
    assert reason_of(shallow, kong()) == "too_deep"  # request.headers.x is depth 4
    assert shallow.decode_one(b'{"started_at": %d, "response": {"status": 201}}' % TS).status == 201


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    noisy = kong(note="[" * 200 + "{" * 200 + '\\"]]', path="}" * 50)
    assert KONG.decode_one(noisy).status == 200
    assert json_depth(noisy) == 4  # {"request": {"headers": {"x": [
    assert KONG.decode([noisy]).invalid == []


def test_too_large() -> None:
    small = KongDecoder(DecodeConfig(format="kong", max_record_bytes=400))
    big = kong(pad="x" * 300)
    assert reason_of(small, big) == "too_large"
    assert reason_of(small, b"\xff" * 401) == "too_large"  # size is checked first
    assert small.decode_one(kong()).status == 200
    exact = kong(pad="")
    fits = KongDecoder(DecodeConfig(format="kong", max_record_bytes=len(exact)))
    assert fits.decode_one(exact).status == 200


def test_deep_nesting_is_rejected_quickly() -> None:
    values = [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b"[" * 999_999,
        b'{"s": "' + b"[" * 500_000 + b'"}',  # not deep: one string
    ]
    for cfg in CONFIGS.values():
        decoder = build_decoder(cfg)
        start = time.process_time()
        batch = decoder.decode(values)
        one = []
        for v in values:
            try:
                decoder.decode_one(v)
            except DecodeError as exc:
                one.append(exc.reason)
        # CPU seconds, not a speed figure: a super-linear path takes minutes on this
        # input, a linear one milliseconds; the bound only catches the former
        assert time.process_time() - start < 2.0
        reasons = [r.reason for r in batch.invalid]
        assert reasons == one
        if cfg.format in LINE_FORMATS:
            assert reasons == ["unparseable_line"] * 4
        else:
            assert reasons == ["too_deep", "too_deep", "too_deep", "missing_field"]


# -- envoy ----------------------------------------------------------------------

ENVOY = EnvoyDecoder(DecodeConfig(format="envoy", fields=FieldMap(app="x_app")))


def envoy(**over: object) -> bytes:
    rec: dict[str, object] = {
        "start_time": ISO,
        "method": "GET",
        "path": "/orders/1",
        "response_code": 503,
        "response_flags": "UF",
        "upstream_cluster": "orders",
        "route_name": "orders_route",
        "x_app": "shop",
        "duration": 3,
    }
    return with_overrides(rec, over)


def test_envoy_good() -> None:
    assert ENVOY.decode_one(envoy()) == Parsed(TS, 503, "orders", "orders_route", "shop")
    assert ENVOY.decode_one(envoy(upstream_cluster=None, route_name="-", x_app=...)) == (
        Parsed(TS, 503, "", "", "")
    )
    assert ENVOY.decode_one(envoy(start_time="2023-04-04T11:20:00.123+02:00")).ts_ms == TS
    assert ENVOY.decode_one(envoy(start_time="2023-04-04T09:20:00.123")).ts_ms == TS  # naive
    assert ENVOY.decode_one(envoy(start_time="2023-04-04T09:20:00.123456789Z")).ts_ms == TS
    no_app = EnvoyDecoder(DecodeConfig(format="envoy"))
    assert no_app.decode_one(envoy()).app == ""


def test_envoy_app_field_may_reuse_a_dimension_field() -> None:
    d = EnvoyDecoder(DecodeConfig(format="envoy", fields=FieldMap(app="route_name")))
    assert d.decode_one(envoy()) == Parsed(TS, 503, "orders", "orders_route", "orders_route")
    with pytest.raises(ConfigError, match=r"decode\.fields\.app"):
        EnvoyDecoder(DecodeConfig(format="envoy", fields=FieldMap(app="response_code")))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (envoy(start_time=...), "missing_field"),
        (envoy(response_code=...), "missing_field"),
        (envoy(response_code=-1), "status_out_of_range"),
        (envoy(response_code=99), "status_out_of_range"),
        (envoy(response_code=999), "status_out_of_range"),
        (envoy(response_code="503"), "wrong_type"),
        (envoy(response_code=True), "wrong_type"),
        (envoy(start_time=TS), "wrong_type"),
        (envoy(start_time=None), "wrong_type"),
        (envoy(x_app=5), "wrong_type"),
        (envoy(upstream_cluster=["a"]), "wrong_type"),
        (envoy(start_time="yesterday"), "bad_timestamp"),
        (envoy(start_time="2023-13-04T09:20:00Z"), "bad_timestamp"),
        (envoy(start_time="1999-12-31T23:59:59.999Z"), "bad_timestamp"),
        (envoy(start_time="2201-01-01T00:00:00Z"), "bad_timestamp"),
        (envoy(start_time="-"), "bad_timestamp"),
        (envoy(start_time=""), "bad_timestamp"),
        (b"[]", "not_an_object"),
        (b"{", "invalid_json"),
        (b'{"path": "\xfe"}', "invalid_utf8"),
        (b'{"a": ' * 70 + b"1" + b"}" * 70, "too_deep"),
    ],
)
def test_envoy_invalid(value: bytes, reason: str) -> None:
    assert reason_of(ENVOY, value) == reason


def test_envoy_200_years() -> None:
    assert ENVOY.decode_one(envoy(start_time="2200-12-31T23:59:59.999Z")).ts_ms == (
        7_289_654_399_999
    )
    assert ENVOY.decode_one(envoy(start_time="2000-01-01T00:00:00Z")).ts_ms == 946_684_800_000


# -- json and nginx-json ----------------------------------------------------------

JSON_FIELDS = FieldMap(
    timestamp="ts",
    timestamp_unit="ms",
    status="http.status",
    service="svc.name",
    route="route",
    app="client.app.id",
)
GENERIC = GenericJsonDecoder(DecodeConfig(format="json", fields=JSON_FIELDS))
NGINX = NginxJsonDecoder(DecodeConfig(format="nginx-json", fields=JSON_FIELDS))


def generic(**over: object) -> bytes:
    rec: dict[str, object] = {
        "ts": TS,
        "http": {"status": 404, "method": "GET"},
        "svc": {"name": "orders"},
        "route": "/orders/{id}",
        "client": {"app": {"id": "shop", "v": 2}, "ip": "1.2.3.4"},
        "msg": "done",
    }
    return with_overrides(rec, over)


def test_generic_good() -> None:
    want = Parsed(TS, 404, "orders", "/orders/{id}", "shop")
    for d in (GENERIC, NGINX):
        assert d.decode_one(generic()) == want
        assert d.decode_one(generic(http={"status": "404"})) == want  # digit strings
        assert d.decode_one(generic(http={"status": 404.0})) == want  # integral floats
        assert d.decode_one(generic(ts=float(TS))) == want
        # optional paths: absent, null, or a null / absent object on the way
        assert d.decode_one(generic(svc=..., route=None, client={"app": None})) == (
            Parsed(TS, 404, "", "", "")
        )
        assert d.decode_one(generic(svc=None, client={})) == Parsed(TS, 404, "", "/orders/{id}", "")
    assert GENERIC.decode_one(generic(route="-")).route == "-"
    assert NGINX.decode_one(generic(route="-", svc={"name": "-"})).route == ""


@pytest.mark.parametrize("decoder", [GENERIC, NGINX], ids=["json", "nginx-json"])
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (generic(ts=...), "missing_field"),
        (generic(http={"method": "GET"}), "missing_field"),
        (generic(http=...), "missing_field"),
        (generic(http=None), "missing_field"),
        (generic(http=5), "wrong_type"),
        (generic(http={"status": "abc"}), "wrong_type"),
        (generic(http={"status": "20 0"}), "wrong_type"),
        (generic(http={"status": "²⁰⁰"}), "wrong_type"),
        (generic(http={"status": 404.5}), "wrong_type"),
        (generic(http={"status": True}), "wrong_type"),
        (generic(http={"status": [404]}), "wrong_type"),
        (generic(http={"status": None}), "wrong_type"),
        (generic(http={"status": "9999999999999"}), "status_out_of_range"),
        (generic(http={"status": "099"}), "status_out_of_range"),
        (generic(http={"status": 999}), "status_out_of_range"),
        (generic(http={"status": -1}), "status_out_of_range"),
        (generic(ts="soon"), "wrong_type"),
        (generic(ts=True), "wrong_type"),
        (generic(ts=[TS]), "wrong_type"),
        (generic(ts=TS // 1000), "bad_timestamp"),  # seconds, configured as ms
        (generic(ts=1e300), "bad_timestamp"),
        (generic(svc={"name": 5}), "wrong_type"),
        (generic(route={"a": 1}), "wrong_type"),
        (generic(svc="orders"), "wrong_type"),
        (b"[1]", "not_an_object"),
        (b"{]", "invalid_json"),
        (b"\x80", "invalid_utf8"),
        (generic(deep=nested(70)), "too_deep"),
    ],
)
def test_generic_invalid(decoder: Decoder, value: bytes, reason: str) -> None:
    assert reason_of(decoder, value) == reason


def test_nginx_quirks() -> None:
    fields = FieldMap(timestamp="msec", timestamp_unit="s", status="status", app="app")
    nginx = NginxJsonDecoder(DecodeConfig(format="nginx-json", fields=fields))
    generic_ = GenericJsonDecoder(DecodeConfig(format="json", fields=fields))
    line = b'{"msec": "1680600000.123", "status": "502", "app": "-"}'
    assert nginx.decode_one(line) == Parsed(TS, 502, "", "", "")
    assert reason_of(generic_, line) == "wrong_type"  # json: timestamps must be numbers
    assert generic_.decode_one(b'{"msec": 1680600000.123, "status": "502", "app": "-"}') == (
        Parsed(TS, 502, "", "", "-")
    )
    for bad, reason in [
        (b'{"msec": "-", "status": "502"}', "missing_field"),
        (b'{"msec": "1680600000.123", "status": "-"}', "missing_field"),
        (b'{"msec": "1680600000.1.2", "status": "502"}', "wrong_type"),
        (b'{"msec": "1.6806e9", "status": "502"}', "wrong_type"),
        (b'{"msec": ".5", "status": "502"}', "wrong_type"),
        (b'{"msec": "1680600", "status": "502"}', "bad_timestamp"),
    ]:
        assert reason_of(nginx, bad) == reason, bad


# What ``log_format main escape=json '{...}'`` writes: every value a string, "" for an
# unset variable, quotes, backslashes and control characters escaped, UTF-8 as is.
NGINX_LINES = [
    # '"time_iso8601":"$time_iso8601"', a user agent with a quote and a backslash
    (rb'{"time_iso8601":"2026-12-06T05:30:01+00:00","remote_addr":"203.0.113.9",'
     rb'"request":"GET /api/v1/search?q=%22a%22 HTTP/1.1","status":"403",'
     rb'"body_bytes_sent":"153","request_time":"0.000","http_referer":"",'
     rb'"http_user_agent":"Mozilla/5.0 \"curious\" bot\\1.0","upstream_addr":"",'
     rb'"upstream_name":"search"}',
     Parsed(1_796_535_001_000, 403, "search", "", "")),
    # '"time_local":"$time_local"', a non-ASCII path, a control character escaped
    ('{"time_local":"06/Dec/2026:06:30:01 +0100","remote_addr":"198.51.100.7",'
     '"request_uri":"/caf\u00e9/men\u00fc\\u0009x","status":"200","upstream_name":"shop",'
     '"http_user_agent":"curl/8.5.0"}'.encode(),
     Parsed(1_796_535_001_000, 200, "shop", "", "")),
    # '"msec":"$msec"', the status of a request the upstream never answered
    (rb'{"msec":"1796535001.250","status":"502","upstream_name":"-",'
     rb'"upstream_status":"","request":"POST /pay HTTP/2.0"}',
     Parsed(1_796_535_001_250, 502, "", "", "")),
    # all three: $msec wins (millisecond resolution)
    (rb'{"time_local":"06/Dec/2026:05:30:01 +0000","time_iso8601":"2026-12-06T05:30:01+00:00",'
     rb'"msec":"1796535001.999","status":"404","upstream_name":"search"}',
     Parsed(1_796_535_001_999, 404, "search", "", "")),
    # an unset $msec ("") falls through to the next field
    (rb'{"msec":"","time_iso8601":"2026-12-06T05:30:01+00:00","status":"301"}',
     Parsed(1_796_535_001_000, 301, "", "", "")),
]


@pytest.mark.parametrize("native", [True, False], ids=["native", "full_decoder"])
def test_nginx_default_fields_decode_real_escape_json_lines(
    native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from statuswatch.core.decode import jsondecoder

    native = native and jsondecoder.NATIVE_SCANNER is not None
    monkeypatch.setattr(jsondecoder, "NATIVE_SCAN", native)
    d = build_decoder(DecodeConfig(format="nginx-json", fields=FieldMap(service="upstream_name")))
    values = [line for line, _ in NGINX_LINES]
    want = [parsed for _, parsed in NGINX_LINES]
    assert [d.decode_one(v) for v in values] == want
    batch = d.decode(values * 30)  # large enough for the fast path
    assert batch.invalid == [] and rows(batch) == want * 30
    assert d.fast_path == ("native" if native else "none")


def test_nginx_default_fields_name_the_missing_ones() -> None:
    d = build_decoder(DecodeConfig(format="nginx-json"))
    with pytest.raises(DecodeError) as info:
        d.decode_one(b'{"timestamp":"2026-12-06T05:30:01+00:00","status":"200"}')
    assert info.value.reason == "missing_field"
    assert info.value.detail == "msec/time_iso8601/time_local/time"
    for bad, reason in [
        (b'{"time_local":"06/Dec/2026:05:30:01","status":"200"}', "bad_timestamp"),
        (b'{"time_local":"2026-12-06T05:30:01+00:00","status":"200"}', "bad_timestamp"),
        (b'{"time_iso8601":"06/Dec/2026:05:30:01 +0000","status":"200"}', "bad_timestamp"),
        (b'{"msec":"-","time_local":"-","status":"200"}', "missing_field"),
        (b'{"msec":[1796535001.25],"status":"200"}', "wrong_type"),
        (b'{"time_local":"06/Dec/2026:05:30:01 +0000","status":""}', "missing_field"),
    ]:
        assert reason_of(d, bad) == reason, bad
    # unquoted in log_format: a JSON number, fine too
    assert d.decode_one(b'{"msec":1796535001.25,"status":200}').ts_ms == 1_796_535_001_250


def test_nginx_time_field_units_follow_the_variable() -> None:
    for name, value in [("time_local", "06/Dec/2026:05:30:01 +0000"), ("msec", "1796535001.000"),
                        ("time_iso8601", "2026-12-06T05:30:01+00:00")]:
        d = build_decoder(DecodeConfig(format="nginx-json", fields=FieldMap(timestamp=name)))
        assert d.decode_one(dumps({name: value, "status": "200"})).ts_ms == 1_796_535_001_000
    with pytest.raises(ConfigError, match=r"decode\.fields\.timestamp_unit"):
        build_decoder(DecodeConfig(format="nginx-json", fields=FieldMap(timestamp_unit="s")))


def test_clf_unit_for_json() -> None:
    fields = FieldMap(timestamp="t", timestamp_unit="clf", status="s")
    d = GenericJsonDecoder(DecodeConfig(format="json", fields=fields))
    assert d.decode_one(dumps({"t": "04/Apr/2023:11:20:00 +0200", "s": 200})).ts_ms == (
        TS // 1000 * 1000
    )
    assert reason_of(d, dumps({"t": TS, "s": 200})) == "wrong_type"
    assert reason_of(d, dumps({"t": "31/Apr/2023:11:20:00 +0200", "s": 200})) == "bad_timestamp"
    assert reason_of(d, dumps({"t": "04/Apr/2023:11:20:00 +0200 ", "s": 200})) == "bad_timestamp"


@pytest.mark.parametrize(
    ("unit", "value", "ms"),
    [
        ("s", 1_680_600_000, 1_680_600_000_000),
        ("s", 1_680_600_000.123, TS),
        ("ms", TS, TS),
        ("ms", TS + 0.4, TS),
        ("us", TS * 1000 + 499, TS),
        ("us", TS * 1000 + 500, TS + 1),
        ("ns", TS * 1_000_000 + 1, TS),
        ("iso8601", ISO, TS),
        ("iso8601", "2023-04-04T11:20:00.123+02:00", TS),
        ("iso8601", "2023-04-04 09:20:00.123", TS),
    ],
)
def test_timestamp_units(unit: str, value: object, ms: int) -> None:
    fields = FieldMap(timestamp="t", timestamp_unit=unit, status="s")  # type: ignore[arg-type]
    d = GenericJsonDecoder(DecodeConfig(format="json", fields=fields))
    assert d.decode_one(dumps({"t": value, "s": 200})).ts_ms == ms


def test_iso_timestamp_must_be_a_string() -> None:
    fields = FieldMap(timestamp="t", timestamp_unit="iso8601", status="s")
    d = GenericJsonDecoder(DecodeConfig(format="json", fields=fields))
    assert reason_of(d, dumps({"t": TS, "s": 200})) == "wrong_type"
    assert reason_of(d, dumps({"t": "2023-02-30T00:00:00Z", "s": 200})) == "bad_timestamp"


def test_generic_keys_that_are_not_identifiers() -> None:
    fields = FieldMap(
        timestamp="@timestamp", status="http-status", service="a.b.c.d", route="", app="f0"
    )
    d = GenericJsonDecoder(DecodeConfig(format="json", fields=fields))
    value = dumps(
        {"@timestamp": ISO, "http-status": 201, "a": {"b": {"c": {"d": "x"}}}, "": "r", "f0": "z"}
    )
    assert d.decode_one(value) == Parsed(TS, 201, "x", "r", "z")
    assert d.decode_one(dumps({"@timestamp": ISO, "http-status": 201, "a": {"b": None}})) == (
        Parsed(TS, 201, "", "", "")
    )


def test_generic_path_through_another_paths_leaf() -> None:
    # service names a value that route descends into: nonsense, but must not crash
    fields = FieldMap(timestamp="t", timestamp_unit="ms", status="s", service="u", route="u.n")
    d = GenericJsonDecoder(DecodeConfig(format="json", fields=fields))
    assert d.decode_one(dumps({"t": TS, "s": 200})) == Parsed(TS, 200, "", "", "")
    assert d.decode_one(dumps({"t": TS, "s": 200, "u": None})) == Parsed(TS, 200, "", "", "")
    assert reason_of(d, dumps({"t": TS, "s": 200, "u": "x"})) == "wrong_type"
    assert reason_of(d, dumps({"t": TS, "s": 200, "u": {"n": "r"}})) == "wrong_type"
    same = FieldMap(timestamp="t", timestamp_unit="ms", status="t")  # one field for both
    assert reason_of(
        GenericJsonDecoder(DecodeConfig(format="json", fields=same)), dumps({"t": TS})
    ) == ("status_out_of_range")


# -- no response ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decoder", "value"),
    [
        (ENVOY, envoy(response_code=0)),  # a reset or a disconnect: Envoy sent nothing
        (build_decoder(DecodeConfig(format="nginx-json")),
         b'{"time_iso8601":"2023-04-04T09:20:00+00:00","status":"000"}'),
        (build_decoder(DecodeConfig(format="nginx-json")),
         b'{"time_iso8601":"2023-04-04T09:20:00+00:00","status":"0"}'),
        (GENERIC, generic(http={"status": 0})),
        (KONG, kong(response={"status": 0})),
        (CombinedDecoder(DecodeConfig(format="combined")),
         b'1.2.3.4 - - [04/Apr/2023:09:20:00 +0000] "GET / HTTP/1.1" 000 0 "-" "-"'),
        (CombinedDecoder(DecodeConfig(format="combined")),
         b'1.2.3.4 - - [04/Apr/2023:09:20:00 +0000] "GET / HTTP/1.1" - - "-" "-"'),
    ],
)
def test_no_response_is_code_zero_in_every_format(decoder: Decoder, value: bytes) -> None:
    assert decoder.decode_one(value).status == 0
    batch = decoder.decode([value] * 100)  # the fast paths too
    assert batch.invalid == [] and batch.status.tolist() == [0] * 100


def test_no_status_at_all_is_still_a_missing_field() -> None:
    assert reason_of(KONG, kong(response={})) == "missing_field"
    assert reason_of(ENVOY, envoy(response_code=...)) == "missing_field"
    nginx = build_decoder(DecodeConfig(format="nginx-json"))
    for status in (b'"-"', b'""'):
        value = b'{"time_iso8601":"2023-04-04T09:20:00+00:00","status":' + status + b"}"
        assert reason_of(nginx, value) == "missing_field"


# -- combined -------------------------------------------------------------------

COMBINED = CombinedDecoder(DecodeConfig(format="combined"))
LINE = (
    b'83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash/kibana.png'
    b' HTTP/1.1" 200 203023 "http://semicomplete.com/presentations/" "Mozilla/5.0 (X11)"'
)
T0 = 1_431_857_103_000  # 2015-05-17T10:05:03Z


def clf(request: str = "GET /a/b HTTP/1.1", stamp: str = "17/May/2015:10:05:03 +0000") -> bytes:
    return f'1.2.3.4 - frank [{stamp}] "{request}" 200 512 "-" "curl/8"'.encode()


def test_combined_good() -> None:
    assert COMBINED.decode_one(LINE) == Parsed(T0, 200, "", "/presentations", "")
    assert COMBINED.decode_one(LINE + b"\r\n").route == "/presentations"
    assert COMBINED.decode_one(LINE + b"\n") == COMBINED.decode_one(LINE)
    common = b'127.0.0.1 user-id frank [10/Oct/2000:13:55:36 -0700] "GET /x.gif HTTP/1.0" 200 -'
    assert COMBINED.decode_one(common) == Parsed(971211336000, 200, "", "/x.gif", "")
    assert COMBINED.decode_one(clf(stamp="17/May/2015:12:05:03 +0200")).ts_ms == T0
    assert COMBINED.decode_one(clf(stamp="16/May/2015:23:35:03 -1030")).ts_ms == T0
    extra = LINE + b' "10.0.0.1" rt=0.012'  # fields appended after the agent
    assert COMBINED.decode_one(extra).status == 200


@pytest.mark.parametrize(
    ("request_line", "route"),
    [
        ("GET /presentations/x/y.png HTTP/1.1", "/presentations"),
        ("GET /favicon.ico HTTP/1.1", "/favicon.ico"),
        ("POST /search?q=a/b HTTP/1.1", "/search"),
        ("GET /a#frag HTTP/2.0", "/a"),
        ("GET / HTTP/1.1", ""),
        ("GET /?q=1 HTTP/1.1", ""),
        ("GET //double HTTP/1.1", ""),
        ("GET /a", "/a"),  # HTTP/0.9 style
        ("GET http://example.com/a HTTP/1.1", ""),
        ("OPTIONS * HTTP/1.1", ""),
        ("-", ""),
        ("", ""),
        ("GET", ""),
        ("\\x16\\x03\\x01\\x00", ""),
        ('GET /a\\"b HTTP/1.1', ""),
        ("GET /a b HTTP/1.1", ""),
        ("GET /caf\u00e9/x HTTP/1.1", "/caf\u00e9"),
    ],
)
def test_combined_routes(request_line: str, route: str) -> None:
    assert COMBINED.decode_one(clf(request_line)).route == route


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "unparseable_line"),
        (b"hello world", "unparseable_line"),
        (b'{"started_at": 1}', "unparseable_line"),
        (LINE.replace(b" 200 ", b" 2000 "), "unparseable_line"),
        (LINE.replace(b" 200 ", b" 20 "), "unparseable_line"),
        (LINE.replace(b" 200 ", b" abc "), "unparseable_line"),
        (LINE.replace(b" 203023 ", b" 12k "), "unparseable_line"),
        (LINE.replace(b"[17/May", b"17/May"), "unparseable_line"),
        (LINE + b"\nsecond line", "unparseable_line"),
        (b"\n" + LINE, "unparseable_line"),
        (LINE.replace(b" 200 ", b" 999 "), "status_out_of_range"),
        (LINE.replace(b" 200 ", b" 001 "), "status_out_of_range"),
        (LINE.replace(b" 200 ", b" -- "), "unparseable_line"),
        (LINE.replace(b" 200 ", b" 099 "), "status_out_of_range"),
        (clf(stamp="32/May/2015:10:05:03 +0000"), "bad_timestamp"),
        (clf(stamp="29/Feb/2015:10:05:03 +0000"), "bad_timestamp"),
        (clf(stamp="17/may/2015:10:05:03 +0000"), "bad_timestamp"),
        (clf(stamp="17/May/2015:24:05:03 +0000"), "bad_timestamp"),
        (clf(stamp="17/May/2015:10:05:03"), "bad_timestamp"),
        (clf(stamp="2015-05-17T10:05:03Z"), "bad_timestamp"),
        (clf(stamp=""), "bad_timestamp"),
        (clf(stamp="31/Dec/1999:23:59:59 +0000"), "bad_timestamp"),
        (clf(stamp="01/Jan/2000:00:30:00 +0100"), "bad_timestamp"),  # 1999 in UTC
        (LINE.replace(b"Mozilla", b"Mo\xffzilla"), "invalid_utf8"),
    ],
)
def test_combined_invalid(value: bytes, reason: str) -> None:
    assert reason_of(COMBINED, value) == reason


def test_vhost_combined_names_the_virtual_host_as_the_service() -> None:
    """Apache's vhost_combined (``%v:%p`` first); a bad line among them shifts no
    service onto another line, and plain lines (an IPv6 client, a client with its
    port) keep no service."""
    d = CombinedDecoder(DecodeConfig(format="combined"))
    rest = b' - - [17/May/2015:10:05:03 +0000] "GET /v1/x HTTP/1.1" 200 1 "-" "curl"'
    lines = [b"api.example.com:443 10.0.0.1" + rest,
             b"admin.example.com:80 10.0.0.2" + rest.replace(b" 200 ", b" 999 "),
             b"2001:db8::1" + rest, b"10.0.0.3:51234" + rest,
             b"admin.example.com:80 ::1" + rest]
    batch = d.decode(lines)
    assert batch.index.tolist() == [0, 2, 3, 4]
    assert batch.dims["service"] == ["api.example.com", "", "", "admin.example.com"]
    assert [r.reason for r in batch.invalid] == ["status_out_of_range"]
    assert [d.decode_one(lines[i]).service for i in (0, 2, 3, 4)] == batch.dims["service"]


def test_combined_too_large() -> None:
    small = CombinedDecoder(DecodeConfig(format="combined", max_record_bytes=100))
    assert reason_of(small, LINE) == "too_large"


def test_combined_pathological_lines_are_fast() -> None:
    n = 300_000
    values = [
        b'1.2.3.4 - - [x] "GET /' + b"a" * n + b' HTTP/1.1" xyz',
        b'1.2.3.4 - - [x] "GET /' + b"a/" * n + b' HTTP/1.1" 200 1 x\nz',
        b'1.2.3.4 - - [x] "' + b"\\a" * n + b" 200 1",
        b"a " * n,
        b"a" * n,
        b'1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 1 ' + b" " * n + b"\n-",
        b"[" * n,
    ]
    start = time.process_time()
    batch = COMBINED.decode(values)
    # CPU seconds, not a speed figure: a super-linear path takes minutes on this
    # input, a linear one milliseconds; the bound only catches the former
    assert time.process_time() - start < 2.0
    assert [r.reason for r in batch.invalid] == ["unparseable_line"] * len(values)


def test_apache_logs() -> None:
    lines = apache_lines()
    assert len(lines) == 10_000
    batch = COMBINED.decode(lines)
    assert batch.invalid == []
    assert len(batch) == 10_000
    counts = Counter(batch.status.tolist())
    assert counts == APACHE_CODES
    assert batch.ts_ms[0] == T0  # 17/May/2015:10:05:03 +0000
    assert batch.dims["route"][0] == "/presentations"
    assert set(batch.dims["service"]) == {""} and set(batch.dims["app"]) == {""}
    assert (np.diff(batch.index) == 1).all()


# -- haproxy ----------------------------------------------------------------------

HAPROXY = HAProxyDecoder(DecodeConfig(format="haproxy"))


def haproxy(request: str = "GET /v1/charges HTTP/1.1", *, status: str = "403",
            stamp: str = "17/May/2015:10:05:03.250", middle: str = "") -> bytes:
    return (f"10.0.1.2:33317 [{stamp}] api~ billing/s1 10/0/30/69/109 {status} 2750 - - "
            f'---- 1/1/1/1/0 0/0{middle} "{request}"').encode()


def test_haproxy_good() -> None:
    assert HAPROXY.decode_one(haproxy()) == Parsed(T0 + 250, 403, "billing", "/v1", "")
    assert HAPROXY.decode_one(haproxy() + b"\r\n").route == "/v1"
    # no response: the client left, or a timeout struck, before the server answered
    assert HAPROXY.decode_one(haproxy(status="-1")).status == NO_RESPONSE
    # the frontend answered itself: the backend field names it
    denied = haproxy().replace(b"billing/s1", b"api/<NOSRV>")
    assert HAPROXY.decode_one(denied).service == "api"
    # with the zone (%trl in a log-format)
    assert HAPROXY.decode_one(haproxy(stamp="17/May/2015:12:05:03.250 +0200")).ts_ms == T0 + 250
    # captured headers, and httpslog's fields after the request
    captured = haproxy(middle=" {Mozilla/5.0 (X11; Linux)|api.example.com} {-}")
    assert HAPROXY.decode_one(captured).route == "/v1"
    tls = haproxy() + b" 0/0000000000000000/0/0/0 api.example.com/TLSv1.3/TLS_AES_256_GCM_SHA384"
    assert HAPROXY.decode_one(tls).status == 403
    logasap = haproxy().replace(b" 2750 ", b" +2750 ")
    assert HAPROXY.decode_one(logasap).status == 403


@pytest.mark.parametrize(
    ("request_line", "route"),
    [
        ("GET /v1/charges?limit=5 HTTP/1.1", "/v1"),
        ("GET https://api.example.com/v2/apps HTTP/2.0", "/v2"),  # HTTP/2: absolute URI
        ("CONNECT api.example.com:443 HTTP/1.1", ""),
        ("GET / HTTP/1.1", ""),
        ("<BADREQ>", ""),
        ("", ""),
    ],
)
def test_haproxy_routes(request_line: str, route: str) -> None:
    assert HAPROXY.decode_one(haproxy(request_line)).route == route


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"hello world", "unparseable_line"),
        (LINE, "unparseable_line"),  # a combined line
        (haproxy(status="999"), "status_out_of_range"),
        (haproxy(status="-2"), "status_out_of_range"),
        (haproxy(status="abc"), "unparseable_line"),
        (haproxy(stamp="17/May/2015:10:05:03"), "bad_timestamp"),  # no milliseconds
        (haproxy(stamp="32/May/2015:10:05:03.000"), "bad_timestamp"),
        (haproxy().replace(b"billing/s1", b"billing"), "unparseable_line"),
        (haproxy().replace(b"billing", b"bi\xffing"), "invalid_utf8"),
    ],
)
def test_haproxy_invalid(value: bytes, reason: str) -> None:
    assert reason_of(HAPROXY, value) == reason


def test_haproxy_pathological_lines_are_fast() -> None:
    n = 300_000
    values = [
        haproxy().replace(b"{", b"") + b" {" * n,
        haproxy(middle=" {" + "a" * n),
        haproxy("GET /" + "a/" * n),
        b"a " * n,
        b"1.2.3.4:1 [" * n,
    ]
    start = time.process_time()
    batch = HAPROXY.decode(values)
    # CPU seconds, not a speed figure: a super-linear path takes minutes on this
    # input, a linear one milliseconds; the bound only catches the former
    assert time.process_time() - start < 2.0
    assert batch.index.tolist() == [0, 2]  # fields after the request; a long path
    assert [r.reason for r in batch.invalid] == ["unparseable_line", "unparseable_line",
                                                 "too_large"]


# -- caddy ------------------------------------------------------------------------

CADDY_LINE = (b'{"level":"error","ts":1796607789.3989055,"logger":"http.log.access.log0",'
              b'"msg":"handled request","request":{"remote_ip":"127.0.0.1","remote_port":'
              b'"45206","proto":"HTTP/1.1","method":"GET","host":"api.example.com","uri":'
              b'"/v1/charges/42?x=1","headers":{"User-Agent":["curl/7.88.1"],"Accept":["*/*"]}},'
              b'"user_id":"shop","duration":0.003910755,"size":335,"status":404,'
              b'"resp_headers":{"Server":["Caddy"]}}')


def test_caddy_good() -> None:
    d = build_decoder(DecodeConfig(format="caddy", fields=FieldMap(app="user_id")))
    want = Parsed(1_796_607_789_399, 404, "api.example.com", "/v1", "shop")
    assert d.decode_one(CADDY_LINE) == want
    batch = d.decode([CADDY_LINE] * 3)
    assert not batch.invalid and batch.dims["route"] == ["/v1"] * 3
    assert batch.dims["app"] == ["shop"] * 3
    # without fields.app there is no app; abort (or a client gone) is status 0
    plain = build_decoder(DecodeConfig(format="caddy"))
    assert plain.decode_one(CADDY_LINE).app == ""
    aborted = CADDY_LINE.replace(b'"status":404', b'"status":0')
    assert plain.decode_one(aborted).status == NO_RESPONSE
    deeper = build_decoder(DecodeConfig(format="caddy", route_segments=2))
    assert deeper.decode_one(CADDY_LINE).route == "/v1/charges"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (CADDY_LINE.replace(b'"ts":1796607789.3989055', b'"ts":"yesterday"'), "wrong_type"),
        (CADDY_LINE.replace(b'"ts":1796607789.3989055,', b""), "missing_field"),
        (CADDY_LINE.replace(b'"status":404', b'"status":"404x"'), "wrong_type"),
        (CADDY_LINE.replace(b'"status":404', b'"status":1000'), "status_out_of_range"),
        (CADDY_LINE.replace(b'"host":"api.example.com"', b'"host":["a"]'), "wrong_type"),
    ],
)
def test_caddy_invalid(value: bytes, reason: str) -> None:
    assert reason_of(build_decoder(DecodeConfig(format="caddy")), value) == reason


@pytest.mark.parametrize("app", ["request", "request.uri", "status.x"])
def test_caddy_app_must_be_a_field_of_its_own(app: str) -> None:
    with pytest.raises(ConfigError, match=r"decode\.fields\.app"):
        build_decoder(DecodeConfig(format="caddy", fields=FieldMap(app=app)))


# -- route segments -----------------------------------------------------------------


@pytest.mark.parametrize("segments", [None, 1, 2, 3, 9])
def test_route_segments_cut_the_path_alike_in_every_path_format(segments: int | None) -> None:
    uri = "/api/v1/charges/42?expand=all"
    line_cfg = DecodeConfig(format="combined", route_segments=segments)
    line = f'10.0.0.1 - - [17/May/2015:10:05:03 +0000] "GET {uri} HTTP/1.1" 200 1'.encode()
    nginx_cfg = DecodeConfig(format="nginx-json", fields=FieldMap(route="request_uri"),
                             route_segments=segments)
    nginx = json.dumps({"time_local": "17/May/2015:10:05:03 +0000", "status": "200",
                        "request_uri": uri}).encode()
    caddy_cfg = DecodeConfig(format="caddy", route_segments=segments)
    caddy = CADDY_LINE.replace(b"/v1/charges/42?x=1", uri.encode())
    want = {None: "/api", 1: "/api", 2: "/api/v1", 3: "/api/v1/charges",
            9: "/api/v1/charges/42"}[segments]
    if segments is None:  # json formats take the field as it is, unless told
        assert build_decoder(nginx_cfg).decode_one(nginx).route == uri
    else:
        assert build_decoder(nginx_cfg).decode_one(nginx).route == want
        assert build_decoder(nginx_cfg).decode([nginx] * 2).dims["route"] == [want] * 2
    for cfg, value in ((line_cfg, line), (caddy_cfg, caddy)):
        assert build_decoder(cfg).decode_one(value).route == want
        assert build_decoder(cfg).decode([value] * 2).dims["route"] == [want] * 2


@pytest.mark.parametrize("fmt", ["kong", "envoy"])
def test_route_segments_are_refused_where_routes_have_names(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / "statuswatch.yaml"
    path.write_text(f"decode:\n  format: {fmt}\n  route_segments: 2\n")
    with pytest.raises(ConfigError, match=rf"decode\.route_segments.*format {fmt} names"):
        load_settings(path)


# -- mixed batches ----------------------------------------------------------------

BAD_JSON: list[tuple[bytes, str]] = [
    (b"\xff\xfe", "invalid_utf8"),
    (b"{nope", "invalid_json"),
    (b"[]", "not_an_object"),
    (b"[" * 1000, "too_deep"),
    (b'{"x": "' + b"y" * 2000 + b'"}', "too_large"),
    (b"{}", "missing_field"),
]


@pytest.mark.parametrize("fmt", ["kong", "envoy", "nginx-json", "json"])
def test_mixed_batch_keeps_good_records_and_counts_bad_ones(fmt: str) -> None:
    cfg = CONFIGS[fmt].model_copy(update={"max_record_bytes": 1500})
    decoder = build_decoder(cfg)
    good, expected = realistic_batch(fmt, 40, seed=3)
    values: list[bytes] = []
    want_index: list[int] = []
    want_invalid: list[tuple[int, str]] = []
    for i, value in enumerate(good):
        want_index.append(len(values))
        values.append(value)
        bad, reason = BAD_JSON[i % len(BAD_JSON)]
        if i % 3 == 0:
            want_invalid.append((len(values), reason))
            values.append(bad)
    batch = decoder.decode(values)
    assert rows(batch) == expected
    assert batch.index.tolist() == want_index
    assert [(r.index, r.reason) for r in batch.invalid] == want_invalid
    assert len(batch) + len(batch.invalid) == len(values)
    assert Counter(r.reason for r in batch.invalid) == Counter(r for _, r in want_invalid)


def test_mixed_batch_combined() -> None:
    good, expected = realistic_batch("combined", 30, seed=4)
    bad = [
        (b"garbage", "unparseable_line"),
        (LINE.replace(b" 200 ", b" 999 "), "status_out_of_range"),
        (clf(stamp="30/Feb/2015:10:05:03 +0000"), "bad_timestamp"),
        (b"\xc3\x28", "invalid_utf8"),
    ]
    values = good[:10] + [b for b, _ in bad] + good[10:]
    batch = COMBINED.decode(values)
    assert rows(batch) == expected
    assert batch.index.tolist() == list(range(10)) + list(range(14, 34))
    assert [(r.index, r.reason) for r in batch.invalid] == [
        (10 + i, reason) for i, (_, reason) in enumerate(bad)
    ]


def test_batch_with_only_bad_records() -> None:
    batch = KONG.decode([b"x", b"[]", b"{}"])
    assert len(batch) == 0
    assert [r.reason for r in batch.invalid] == ["invalid_json", "not_an_object", "missing_field"]
    assert batch.dims == {d: [] for d in DIMENSIONS}


def test_precheck_batch_spots_bad_values_anywhere() -> None:
    values = [b'{"a": 1}'] * 2000
    values[3] = b"\xff"
    values[700] = b"[" * 70
    values[1500] = b"x" * 101
    values[1999] = b""
    ok, bad = precheck_batch(values, 100, 64)
    assert bad == {3: "invalid_utf8", 700: "too_deep", 1500: "too_large"}
    assert ok == [i for i in range(2000) if i not in bad]
    assert precheck_batch([b""], 100, 64) == ([0], {})
    assert precheck_batch([b"", b""], 100, 64) == ([0, 1], {})


def test_decoders_satisfy_the_protocol() -> None:
    def use(decoder: Decoder) -> str:
        return decoder.name

    for cfg in CONFIGS.values():
        assert use(build_decoder(cfg)) == cfg.format


def test_msgspec_is_what_we_assume() -> None:
    # the failure classification relies on this subclass relation
    assert issubclass(msgspec.ValidationError, msgspec.DecodeError)
