"""Property tests of the decode stage (hypothesis).

* Any bytes: ``decode`` never raises and accounts for every record;
  ``decode_one`` raises nothing but ``DecodeError`` with a known reason.
* Random mixes of valid and broken records: the batch path and ``decode_one``
  agree record by record, and valid records decode to what they encode.
* Nesting: a record is ``too_deep`` exactly when it nests deeper than ``max_depth``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statuswatch.config import DecodeConfig, FieldMap
from statuswatch.core.columns import NO_RESPONSE
from statuswatch.core.decode import END_TS_MS, MIN_TS_MS, Decoder, Parsed, build_decoder
from statuswatch.core.decode.batch import json_depth
from tests.unit.decode_samples import CONFIGS, LINE_FORMATS, batch_outcomes, outcomes

SETTINGS = settings(
    max_examples=150,
    deadline=None,  # the machine is shared; timing is asserted where it matters
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Every format, plus configurations that exercise the limits and other field maps.
DECODERS: dict[str, Decoder] = {name: build_decoder(cfg) for name, cfg in CONFIGS.items()}
DECODERS.update(
    {
        "kong-tight": build_decoder(DecodeConfig(format="kong", max_depth=3, max_record_bytes=300)),
        "envoy-no-app": build_decoder(DecodeConfig(format="envoy")),
        "json-flat": build_decoder(
            DecodeConfig(
                format="json",
                fields=FieldMap(timestamp="t", timestamp_unit="s", status="s", service="a"),
            )
        ),
        "nginx-default": build_decoder(DecodeConfig(format="nginx-json")),
        "combined-tight": build_decoder(DecodeConfig(format="combined", max_record_bytes=120)),
        "combined-routes": build_decoder(DecodeConfig(format="combined", route_segments=3)),
        "nginx-routes": build_decoder(DecodeConfig(
            format="nginx-json", fields=FieldMap(route="request_uri"), route_segments=2)),
        "caddy-no-app": build_decoder(DecodeConfig(format="caddy")),
    }
)


def assert_agree(decoder: Decoder, values: list[bytes]) -> list[tuple[int, Parsed | str]]:
    expected = outcomes(decoder, values)
    assert batch_outcomes(decoder, values) == expected
    return expected


# -- any bytes ------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELD_NAMES = [
    "started_at", "response", "status", "service", "route", "consumer", "name", "id",
    "username", "start_time", "response_code", "upstream_cluster", "route_name",
    "x_api_key_id", "msec", "upstream_name", "location", "http_x_app", "timestamp", "http",
    "status_code", "client", "app", "t", "s", "a", "time", "ts", "request", "host", "uri",
    "user_id", "request_uri",
]  # fmt: skip
keyed_json = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(FIELD_NAMES), inner, max_size=5)
    ),
    max_leaves=25,
)


def encoded(value: Any) -> bytes:
    return json.dumps(value).encode()


def mutate(data: st.DataObject, value: bytes) -> bytes:
    """Break a value at the byte level: truncate, insert, replace or duplicate."""
    how = data.draw(st.sampled_from(["truncate", "insert", "replace", "double", "keep"]))
    if not value or how == "keep":
        return value
    at = data.draw(st.integers(0, len(value)))
    if how == "truncate":
        return value[:at]
    if how == "insert":
        return value[:at] + data.draw(st.binary(min_size=1, max_size=4)) + value[at:]
    if how == "replace":
        return value[:at] + data.draw(st.binary(max_size=2)) + value[at + 2 :]
    return value + value


any_values = st.lists(
    st.binary(max_size=300)
    | json_values.map(encoded)
    | keyed_json.map(encoded)
    | st.text(max_size=200).map(str.encode),
    max_size=12,
)


@SETTINGS
@given(values=any_values, name=st.sampled_from(sorted(DECODERS)))
def test_any_bytes_never_raise_and_paths_agree(values: list[bytes], name: str) -> None:
    assert_agree(DECODERS[name], values)


# -- valid records, by format -----------------------------------------------------

ts_ms = st.integers(MIN_TS_MS, END_TS_MS - 1)
statuses = st.integers(100, 599)
dims = st.text(max_size=12)
MISSING: Any = object()


def put(rec: dict[str, Any], key: str, value: Any) -> None:
    if value is not MISSING:
        rec[key] = value


def with_noise(data: st.DataObject, rec: dict[str, Any]) -> bytes:
    """Add unknown fields and shuffle the keys."""
    noise = data.draw(
        st.dictionaries(st.text(max_size=6).map("x_".__add__), json_values, max_size=3)
    )
    items = data.draw(st.permutations([*rec.items(), *noise.items()]))
    return json.dumps(dict(items), ensure_ascii=data.draw(st.booleans())).encode()


def optional_dim(data: st.DataObject) -> tuple[Any, str]:
    """A dimension as written (a string, null or absent) and as decoded."""
    value = data.draw(st.one_of(dims, st.none(), st.just(MISSING)))
    return value, value if isinstance(value, str) else ""


def kong_valid(data: st.DataObject) -> tuple[bytes, Parsed]:
    ts, status = data.draw(ts_ms), data.draw(statuses)
    rec: dict[str, Any] = {"started_at": ts, "response": {"status": status, "size": 1}}
    service, want_service = optional_dim(data)
    route, want_route = optional_dim(data)
    if service is not MISSING:
        rec["service"] = {"name": service, "id": "s"}
    if data.draw(st.booleans()):
        rec["route"] = None if route is MISSING else {"name": route}
        want_route = "" if route is MISSING else want_route
    else:
        want_route = ""
    cid, want_id = optional_dim(data)
    user, want_user = optional_dim(data)
    consumer: dict[str, Any] = {}
    put(consumer, "id", cid)
    put(consumer, "username", user)
    if data.draw(st.booleans()):
        rec["consumer"] = consumer
        app = want_id or want_user
    else:
        app = ""
    return with_noise(data, rec), Parsed(ts, status, want_service, want_route, app)


def iso(ms: int, data: st.DataObject) -> str:
    """An ISO-8601 form of ``ms`` (Z, an offset, or naive; 3 to 9 fraction digits)."""
    offset = data.draw(st.integers(-14 * 60, 14 * 60)) if data.draw(st.booleans()) else 0
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    local = moment + timedelta(minutes=offset)
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}"
    text += data.draw(st.sampled_from(["", "456", "999999"]))[: data.draw(st.integers(0, 3))]
    if offset:
        sign = "+" if offset > 0 else "-"
        text += f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    else:
        text += data.draw(st.sampled_from(["Z", "+00:00", ""]))
    return text


def envoy_valid(data: st.DataObject) -> tuple[bytes, Parsed]:
    ts, status = data.draw(ts_ms), data.draw(statuses)
    rec: dict[str, Any] = {"start_time": iso(ts, data), "response_code": status}
    want = []
    for key in ("upstream_cluster", "route_name", "x_api_key_id"):
        value = data.draw(st.one_of(dims, st.none(), st.just(MISSING), st.just("-")))
        put(rec, key, value)
        want.append(value if isinstance(value, str) and value != "-" else "")
    return with_noise(data, rec), Parsed(ts, status, *want)


def nginx_valid(data: st.DataObject) -> tuple[bytes, Parsed]:
    ts, status = data.draw(ts_ms), data.draw(statuses)
    msec = data.draw(
        st.sampled_from(
            [
                f"{ts // 1000}.{ts % 1000:03d}",
                f"{ts // 1000}.{ts % 1000:03d}0",
                ts / 1000,
            ]
        )
    )
    rec: dict[str, Any] = {
        "msec": msec,
        "status": data.draw(st.sampled_from([status, str(status)])),
    }
    want = []
    for key in ("upstream_name", "location", "http_x_app"):
        value = data.draw(st.one_of(dims, st.none(), st.just(MISSING), st.just("-")))
        put(rec, key, value)
        want.append(value if isinstance(value, str) and value != "-" else "")
    return with_noise(data, rec), Parsed(ts, status, *want)


def json_valid(data: st.DataObject) -> tuple[bytes, Parsed]:
    ts, status = data.draw(ts_ms), data.draw(statuses)
    http: dict[str, Any] = {
        "response": {
            "status_code": data.draw(st.sampled_from([status, str(status), float(status)]))
        }
    }
    rec: dict[str, Any] = {"timestamp": iso(ts, data), "http": http}
    service, want_service = optional_dim(data)
    route, want_route = optional_dim(data)
    app, want_app = optional_dim(data)
    if service is not MISSING or data.draw(st.booleans()):
        rec["service"] = {"name": service} if service is not MISSING else None
    put(http, "route", route)
    if app is not MISSING:
        rec["client"] = {"app": app, "ip": "192.0.2.1"}
    return with_noise(data, rec), Parsed(ts, status, want_service, want_route, want_app)


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
segments = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.~%", max_size=8)


def combined_valid(data: st.DataObject) -> tuple[bytes, Parsed]:
    ts = data.draw(ts_ms) // 1000 * 1000
    status = data.draw(statuses)
    offset = data.draw(st.integers(-12 * 60, 14 * 60))
    local = datetime(1970, 1, 1) + timedelta(milliseconds=ts, minutes=offset)
    sign = "+" if offset >= 0 else "-"
    stamp = (
        f"{local.day:02d}/{MONTHS[local.month - 1]}/{local.year}:{local:%H:%M:%S}"
        f" {sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
    )
    path = data.draw(st.lists(segments, min_size=1, max_size=4))
    query = data.draw(st.sampled_from(["", "?q=1", "?a=b/c", "#x"]))
    target = "/" + "/".join(path) + query
    method = data.draw(st.sampled_from(["GET", "POST", "HEAD", "PROPFIND"]))
    proto = data.draw(st.sampled_from([" HTTP/1.1", " HTTP/2.0", ""]))
    size = data.draw(st.sampled_from(["-", "0", "1234"]))
    tail = data.draw(st.sampled_from(["", ' "-" "-"', ' "http://r/" "Mozilla/5.0 (X11)" extra']))
    end = data.draw(st.sampled_from(["", "\n", "\r\n"]))
    user = data.draw(st.sampled_from(["-", "frank"]))
    client = data.draw(st.sampled_from(["10.0.0.1", "2001:db8::1", "::1", "10.0.0.1:4242"]))
    # Apache's vhost_combined: the virtual host and port first, the host the service
    vhost = data.draw(st.sampled_from(["", "api.example.com", "localhost", "10.1.1.1"]))
    prefix = f"{vhost}:{data.draw(st.sampled_from([80, 443, 8080]))} " if vhost else ""
    line = (f'{prefix}{client} - {user} [{stamp}] "{method} {target}{proto}" {status} {size}'
            f"{tail}{end}")
    route = "/" + path[0] if path[0] else ""
    return line.encode(), Parsed(ts, status, vhost, route, "")


def haproxy_valid(data: st.DataObject) -> tuple[bytes, Parsed]:
    ts = data.draw(ts_ms)
    status = data.draw(statuses | st.just(NO_RESPONSE))  # -1: no response
    local = datetime(1970, 1, 1) + timedelta(milliseconds=ts)
    stamp = f"{local.day:02d}/{MONTHS[local.month - 1]}/{local.year}:{local:%H:%M:%S}"
    stamp += f".{ts % 1000:03d}"
    path = data.draw(st.lists(segments, min_size=1, max_size=4))
    query = data.draw(st.sampled_from(["", "?q=1", "?a=b/c", "#x"]))
    authority = data.draw(st.sampled_from(["", "https://api.example.com", "http://h:8080"]))
    method = data.draw(st.sampled_from(["GET", "POST", "HEAD", "PROPFIND"]))
    proto = data.draw(st.sampled_from([" HTTP/1.1", " HTTP/2.0", ""]))
    backend = data.draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.:", min_size=1,
                                max_size=12))
    frontend = data.draw(st.sampled_from(["fe", "fe~", "public-api"]))
    server = data.draw(st.sampled_from(["s1", "<NOSRV>", "web-03"]))
    timers = data.draw(st.sampled_from(["0/0/1/2/3", "-1/-1/-1/-1/0", "10/0/30/-1/2001"]))
    size = data.draw(st.sampled_from(["0", "1234", "+2750"]))
    captures = data.draw(st.sampled_from(["", " {Mozilla/5.0 (X11)|h}", " {a} {b|c}"]))
    tail = data.draw(st.sampled_from(["", " 0/0000000000000000/0/0/0 - TLSv1.3"]))
    end = data.draw(st.sampled_from(["", "\n", "\r\n"]))
    code = "-1" if status == NO_RESPONSE else str(status)
    line = (f"10.0.0.1:4242 [{stamp}] {frontend} {backend}/{server} {timers} {code} {size}"
            f' - - ---- 1/1/0/0/0 0/0{captures} "{method} {authority}/{"/".join(path)}{query}'
            f'{proto}"{tail}{end}')
    route = "/" + path[0] if path[0] else ""
    return line.encode(), Parsed(ts, status, backend, route, "")


def caddy_valid(data: st.DataObject) -> tuple[bytes, Parsed]:
    ts = data.draw(ts_ms)
    status = data.draw(statuses | st.just(NO_RESPONSE))  # 0: abort, a client gone
    # Caddy's float seconds: whole milliseconds, or under half of one more
    extra = data.draw(st.sampled_from([0, 0.000_2, 0.000_45]))
    seconds: float | int = ts / 1000 + extra if extra or data.draw(st.booleans()) else ts // 1000
    if isinstance(seconds, int):
        ts = ts // 1000 * 1000
    path = data.draw(st.lists(segments, min_size=1, max_size=4))
    query = data.draw(st.sampled_from(["", "?q=1", "?a=b/c"]))
    request: dict[str, Any] = {"method": "GET", "proto": "HTTP/2.0",
                               "headers": {"User-Agent": ["curl/8.1.2"]}}
    host, want_host = optional_dim(data)
    put(request, "host", host)
    uri = data.draw(st.sampled_from([MISSING, None, "/" + "/".join(path) + query]))
    put(request, "uri", uri)
    want_route = "/" + path[0] if isinstance(uri, str) and path[0] else ""
    user, want_user = optional_dim(data)
    rec: dict[str, Any] = {"level": "info", "ts": seconds, "logger": "http.log.access.log0",
                           "msg": "handled request", "request": request, "status": status,
                           "size": 0, "duration": 0.001}
    put(rec, "user_id", user)
    return with_noise(data, rec), Parsed(ts, status, want_host, want_route, want_user)


VALID = {
    "kong": kong_valid,
    "envoy": envoy_valid,
    "nginx-json": nginx_valid,
    "json": json_valid,
    "combined": combined_valid,
    "haproxy": haproxy_valid,
    "caddy": caddy_valid,
}


def broken_json(data: st.DataObject, value: bytes) -> bytes:
    """A valid JSON record with one used field replaced or removed, or mangled bytes."""
    if data.draw(st.booleans()):
        return mutate(data, value)
    rec = json.loads(value)
    key = data.draw(st.sampled_from(sorted(rec)))
    if data.draw(st.booleans()):
        del rec[key]
    else:
        rec[key] = data.draw(keyed_json)
    return encoded(rec)


@SETTINGS
@given(data=st.data(), fmt=st.sampled_from(sorted(VALID)))
def test_valid_records_decode_to_what_they_encode(data: st.DataObject, fmt: str) -> None:
    pairs = [VALID[fmt](data) for _ in range(data.draw(st.integers(1, 8)))]
    values = [v for v, _ in pairs]
    assert assert_agree(DECODERS[fmt], values) == [(i, p) for i, (_, p) in enumerate(pairs)]


@SETTINGS
@given(data=st.data(), fmt=st.sampled_from(sorted(VALID)))
def test_batch_and_decode_one_agree_on_mixes(data: st.DataObject, fmt: str) -> None:
    values: list[bytes] = []
    valid: dict[int, Parsed] = {}
    for i in range(data.draw(st.integers(1, 16))):
        value, parsed = VALID[fmt](data)
        kind = data.draw(st.sampled_from(["valid", "valid", "broken", "random"]))
        if kind == "valid":
            valid[i] = parsed
        elif kind == "broken":
            value = broken_json(data, value) if fmt not in LINE_FORMATS else mutate(data, value)
        else:
            value = data.draw(st.binary(max_size=100) | keyed_json.map(encoded))
        values.append(value)
    result = dict(assert_agree(DECODERS[fmt], values))
    for i, parsed in valid.items():
        assert result[i] == parsed


# -- nesting ----------------------------------------------------------------------


def nest(data: st.DataObject, depth: int) -> str:
    """JSON text nested ``depth`` levels deep, mixing arrays and objects."""
    text = data.draw(st.sampled_from(["1", '"[{"', "null", '"}}]"']))
    for _ in range(depth):
        text = f"[{text}]" if data.draw(st.booleans()) else f'{{"k": {text}}}'
    return text


@SETTINGS
@given(data=st.data(), depth=st.integers(0, 130))
def test_too_deep_exactly_beyond_max_depth(data: st.DataObject, depth: int) -> None:
    decoder = DECODERS["kong"]  # max_depth 64
    value = (
        b'{"started_at": 1680600000000, "response": {"status": 200}, "extra": '
        + nest(data, depth).encode()
        + b"}"
    )
    assert json_depth(value) == max(depth + 1, 2)  # the record object, response
    outcome = assert_agree(decoder, [value])[0][1]
    if depth + 1 > 64:
        assert outcome == "too_deep"
    else:
        assert isinstance(outcome, Parsed)


@settings(max_examples=10, deadline=None)
@given(kind=st.sampled_from(["[", '{"a":', "[{"]), closed=st.booleans())
def test_huge_nesting_is_rejected_quickly(kind: str, closed: bool) -> None:
    levels = 100_000 // len(kind) * len(kind)
    opener = kind.encode() * (levels // len(kind))
    closer = (b"}" if kind == '{"a":' else b"]" if kind == "[" else b"}]") * (levels // len(kind))
    value = opener + (b"1" + closer if closed else b"")
    for decoder in DECODERS.values():
        start = time.process_time()
        outcome = assert_agree(decoder, [value])[0][1]
        # CPU seconds, not a speed figure: a super-linear path takes minutes on this
        # input, a linear one milliseconds; the bound only catches the former
        assert time.process_time() - start < 2.0
        if decoder.name in LINE_FORMATS:
            assert outcome in ("unparseable_line", "too_large")
        else:
            assert outcome in ("too_deep", "too_large")
