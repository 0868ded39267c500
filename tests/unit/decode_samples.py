"""Realistic log records for the decode tests and the decode benchmark.

Each ``*_record`` function returns ``(value, expected)``: the raw bytes of one
record (300-800 bytes, shaped like what the gateway really writes) and the
``Parsed`` the decoder must return for it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from statuswatch.config import DecodeConfig, FieldMap
from statuswatch.core.columns import DIMENSIONS, EVENT_CODE, INVALID_REASONS
from statuswatch.core.decode import END_TS_MS, MIN_TS_MS, Decoder, Parsed
from statuswatch.errors import DecodeError

BASE_MS = 1_680_600_000_000  # 2023-04-04T09:20:00Z

SERVICES = ("billing", "orders", "users", "search", "catalog")
STATUSES = (200,) * 20 + (201, 204, 301, 304, 400, 401, 403, 404, 429, 500, 502, 503, 504)
AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
    "curl/8.1.2",
    "okhttp/4.12.0",
    "python-requests/2.31.0",
)
BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
)

#: The configuration of each format for these samples.
CONFIGS: dict[str, DecodeConfig] = {
    "kong": DecodeConfig(format="kong"),
    "envoy": DecodeConfig(format="envoy", fields=FieldMap(app="x_api_key_id")),
    "nginx-json": DecodeConfig(
        format="nginx-json",
        fields=FieldMap(
            timestamp="msec",
            timestamp_unit="s",
            status="status",
            service="upstream_name",
            route="location",
            app="http_x_app",
        ),
    ),
    "json": DecodeConfig(
        format="json",
        fields=FieldMap(
            timestamp="timestamp",
            timestamp_unit="iso8601",
            status="http.response.status_code",
            service="service.name",
            route="http.route",
            app="client.app",
        ),
    ),
    "combined": DecodeConfig(format="combined"),
    "haproxy": DecodeConfig(format="haproxy"),
    "caddy": DecodeConfig(format="caddy", fields=FieldMap(app="user_id")),
}
#: The formats of text lines (no JSON, no fast path)
LINE_FORMATS = frozenset({"combined", "haproxy"})


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _iso(ms: int) -> str:
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def kong_record(rng: random.Random, i: int) -> tuple[bytes, Parsed]:
    ts = BASE_MS + i * 7 + rng.randrange(5)
    status = rng.choice(STATUSES)
    svc = rng.choice(SERVICES)
    app = f"c0ffee00-0000-4000-8000-{rng.randrange(40):012d}"
    rec = {
        "request": {
            "method": rng.choice(("GET", "POST")),
            "uri": f"/{svc}/v1/items/{rng.randrange(10**6)}",
            "size": rng.randrange(100, 900),
            "headers": {"host": "api.example.com", "user-agent": rng.choice(AGENTS)},
        },
        "upstream_uri": f"/v1/items/{i}",
        "response": {"status": status, "size": rng.randrange(200, 5000)},
        "route": {"id": "b3c1f9a2-1234-4b7e-9d1e-3c0f7f1a2b3c", "name": f"{svc}-v1"},
        "service": {"id": "5a8a7c1e-4c11-4e5b-8d42-0f6a2a9c0d11", "name": svc, "port": 80},
        "consumer": {"id": app, "username": f"app-{i % 40}"},
        "latencies": {"request": rng.randrange(1, 300), "kong": 1, "proxy": rng.randrange(290)},
        "client_ip": f"10.0.{i % 256}.{rng.randrange(256)}",
        "started_at": ts,
    }
    return _dumps(rec), Parsed(ts, status, svc, f"{svc}-v1", app)


def envoy_record(rng: random.Random, i: int) -> tuple[bytes, Parsed]:
    ts = BASE_MS + i * 7 + rng.randrange(5)
    status = rng.choice(STATUSES)
    svc = rng.choice(SERVICES)
    app = f"key-{rng.randrange(40)}"
    rec = {
        "start_time": _iso(ts),
        "method": "GET",
        "path": f"/{svc}/v1/items/{rng.randrange(10**6)}?page={i % 9}",
        "protocol": "HTTP/1.1",
        "response_code": status,
        "response_flags": "-",
        "bytes_received": 0,
        "bytes_sent": rng.randrange(200, 5000),
        "duration": rng.randrange(1, 300),
        "upstream_service_time": str(rng.randrange(1, 290)),
        "x_forwarded_for": f"203.0.113.{rng.randrange(256)}",
        "user_agent": rng.choice(AGENTS),
        "request_id": f"4f8a2c1e-9b3d-4e5f-a6b7-{rng.randrange(16**12):012x}",
        "authority": "api.example.com",
        "upstream_host": f"10.1.{rng.randrange(256)}.{rng.randrange(256)}:8080",
        "upstream_cluster": svc,
        "route_name": f"{svc}_route",
        "x_api_key_id": app,
    }
    return _dumps(rec), Parsed(ts, status, svc, f"{svc}_route", app)


def nginx_record(rng: random.Random, i: int) -> tuple[bytes, Parsed]:
    ts = BASE_MS + i * 7 + rng.randrange(5)
    status = rng.choice(STATUSES)
    svc = rng.choice(SERVICES)
    app = rng.choice(("web", "ios", "android", "-"))
    rec = {
        "msec": f"{ts // 1000}.{ts % 1000:03d}",
        "remote_addr": f"198.51.100.{rng.randrange(256)}",
        "request_method": "GET",
        "request_uri": f"/{svc}/v1/items/{rng.randrange(10**6)}",
        "status": str(status),
        "body_bytes_sent": str(rng.randrange(200, 5000)),
        "request_time": f"0.{rng.randrange(1000):03d}",
        "upstream_name": svc,
        "upstream_addr": f"10.1.{rng.randrange(256)}.{rng.randrange(256)}:8080",
        "upstream_status": str(status),
        "upstream_response_time": f"0.{rng.randrange(1000):03d}",
        "http_user_agent": rng.choice(AGENTS),
        "http_referer": "-",
        "location": f"/{svc}",
        "http_x_app": app,
    }
    return _dumps(rec), Parsed(ts, status, svc, f"/{svc}", "" if app == "-" else app)


def json_record(rng: random.Random, i: int) -> tuple[bytes, Parsed]:
    ts = BASE_MS + i * 7 + rng.randrange(5)
    status = rng.choice(STATUSES)
    svc = rng.choice(SERVICES)
    app = f"app-{rng.randrange(40)}"
    rec = {
        "timestamp": _iso(ts),
        "level": "info",
        "message": "request completed",
        "service": {"name": svc, "version": "1.4.2", "environment": "prod"},
        "http": {
            "request": {"method": "GET", "bytes": rng.randrange(1000)},
            "response": {"status_code": status, "bytes": rng.randrange(200, 5000)},
            "route": f"/{svc}/v1/items/{{id}}",
            "version": "1.1",
        },
        "url": {"path": f"/{svc}/v1/items/{rng.randrange(10**6)}"},
        "client": {"ip": f"192.0.2.{rng.randrange(256)}", "app": app},
        "event": {"duration": rng.randrange(10**6, 10**8)},
        "trace": {"id": f"{rng.randrange(16**32):032x}"},
    }
    return _dumps(rec), Parsed(ts, status, svc, f"/{svc}/v1/items/{{id}}", app)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def combined_record(rng: random.Random, i: int) -> tuple[bytes, Parsed]:
    ts = (BASE_MS + i * 7 + rng.randrange(5)) // 1000 * 1000
    status = rng.choice(STATUSES)
    svc = rng.choice(SERVICES)
    offset_h = rng.choice((0, 2, -5))
    local = datetime(1970, 1, 1) + timedelta(milliseconds=ts, hours=offset_h)
    stamp = (
        f"{local.day:02d}/{_MONTHS[local.month - 1]}/{local.year}:"
        f"{local:%H:%M:%S} {'+' if offset_h >= 0 else '-'}{abs(offset_h):02d}00"
    )
    line = (
        f"203.0.113.{rng.randrange(256)} - - [{stamp}] "
        f'"GET /{svc}/v1/items/{rng.randrange(10**6)}?page={i % 9}&sort=desc HTTP/1.1" '
        f"{status} {rng.randrange(200, 50000)} "
        f'"https://www.example.com/{svc}/overview?ref=newsletter&utm_campaign=spring_sale" '
        f'"{rng.choice(BROWSERS)}"'
    )
    return line.encode(), Parsed(ts, status, "", f"/{svc}", "")


def haproxy_record(rng: random.Random, i: int) -> tuple[bytes, Parsed]:
    ts = BASE_MS + i * 7 + rng.randrange(5)
    status = rng.choice(STATUSES)
    svc = rng.choice(SERVICES)
    local = datetime(1970, 1, 1) + timedelta(milliseconds=ts)
    stamp = f"{local.day:02d}/{_MONTHS[local.month - 1]}/{local.year}:{local:%H:%M:%S}"
    # ``capture request header User-Agent``, ``Host`` and ``X-Request-Id``
    captures = f" {{{rng.choice(BROWSERS)}|api.example.com|{rng.getrandbits(64):016x}}}"
    line = (
        f"203.0.113.{rng.randrange(256)}:{rng.randrange(1024, 65536)} "
        f"[{stamp}.{ts % 1000:03d}] public~ {svc}/{svc}-{rng.randrange(3)} "
        f"0/0/1/{rng.randrange(500)}/{rng.randrange(500, 900)} {status} "
        f"{rng.randrange(200, 50000)} - - ---- 17/17/4/1/0 0/0{captures} "
        f'"GET /{svc}/v1/items/{rng.randrange(10**6)}?page={i % 9} HTTP/1.1"'
    )
    return line.encode(), Parsed(ts, status, svc, f"/{svc}", "")


def caddy_record(rng: random.Random, i: int) -> tuple[bytes, Parsed]:
    ts = BASE_MS + i * 7 + rng.randrange(5)
    status = rng.choice((*STATUSES, 0))  # 0: ``abort``, or the client left
    svc = rng.choice(SERVICES)
    user = f"app-{rng.randrange(40)}" if rng.random() < 0.8 else ""
    # Caddy's float: more digits than milliseconds, under half of one
    stamp = f"{ts // 1000}.{ts % 1000:03d}{rng.randrange(45):02d}{rng.randrange(10**5):05d}"
    rec = {
        "level": "error" if status >= 400 else "info",
        "ts": float(stamp),
        "logger": "http.log.access.log0",
        "msg": "handled request",
        "request": {
            "remote_ip": f"203.0.113.{rng.randrange(256)}",
            "remote_port": str(rng.randrange(1024, 65536)),
            "proto": "HTTP/2.0",
            "method": rng.choice(("GET", "POST")),
            "host": f"{svc}.example.com",
            "uri": f"/{svc}/v1/items/{rng.randrange(10**6)}?page={i % 9}",
            "headers": {"User-Agent": [rng.choice(BROWSERS)], "Accept": ["*/*"]},
            "tls": {"resumed": False, "version": 772, "proto": "h2",
                    "server_name": f"{svc}.example.com"},
        },
        "user_id": user,
        "duration": rng.randrange(1, 300_000) / 1e6,
        "size": rng.randrange(200, 50_000),
        "status": status,
        "resp_headers": {"Server": ["Caddy"], "Content-Type": ["application/json"]},
    }
    return _dumps(rec), Parsed(ts, status, f"{svc}.example.com", f"/{svc}", user)


SAMPLERS: dict[str, Callable[[random.Random, int], tuple[bytes, Parsed]]] = {
    "kong": kong_record,
    "envoy": envoy_record,
    "nginx-json": nginx_record,
    "json": json_record,
    "combined": combined_record,
    "haproxy": haproxy_record,
    "caddy": caddy_record,
}


def realistic_batch(fmt: str, n: int, seed: int = 0) -> tuple[list[bytes], list[Parsed]]:
    """``n`` realistic records of format ``fmt`` and the records they decode to."""
    rng = random.Random(seed)
    pairs = [SAMPLERS[fmt](rng, i) for i in range(n)]
    return [v for v, _ in pairs], [p for _, p in pairs]


def outcomes(decoder: Decoder, values: list[bytes]) -> list[tuple[int, Parsed | str]]:
    """What ``decode_one`` says about each value: the record or the reason."""
    out: list[tuple[int, Parsed | str]] = []
    for i, value in enumerate(values):
        try:
            out.append((i, decoder.decode_one(value)))
        except DecodeError as exc:
            assert exc.reason in INVALID_REASONS
            out.append((i, exc.reason))
    return out


def batch_outcomes(decoder: Decoder, values: list[bytes]) -> list[tuple[int, Parsed | str]]:
    """What ``decode`` says about each value, checking the batch's shape on the way."""
    batch = decoder.decode(values)
    assert len(batch) + len(batch.invalid) == len(values)
    assert batch.ts_ms.shape == batch.status.shape == batch.index.shape == (len(batch),)
    assert all(len(batch.dims[d]) == len(batch) for d in DIMENSIONS)
    assert set(batch.dims) == set(DIMENSIONS)
    good = [
        (int(i), Parsed(*r))
        for i, *r in zip(
            batch.index.tolist(),
            batch.ts_ms.tolist(),
            batch.status.tolist(),
            *(batch.dims[d] for d in DIMENSIONS),
            strict=True,
        )
    ]
    bad: list[tuple[int, Parsed | str]] = [(r.index, r.reason) for r in batch.invalid]
    assert [i for i, _ in good] == sorted(i for i, _ in good)
    assert [i for i, _ in bad] == sorted(i for i, _ in bad)
    for _, p in good:
        assert MIN_TS_MS <= p.ts_ms < END_TS_MS
        if getattr(decoder, "status_name", "") is None:  # events: no status field
            assert p.status == EVENT_CODE
        else:
            assert 100 <= p.status <= 599 or p.status == 0  # 0: no response
    return sorted(good + bad, key=lambda pair: pair[0])
