"""Encode simulated records as gateway log records (pure).

Formats (one ``bytes`` per record, no trailing newline):

* ``kong``: the JSON a Kong kafka-log/http-log plugin writes (``started_at`` in
  epoch ms, ``response.status``, ``service.name``, ``route.name``, ``consumer.id``).
  ``consumer.id`` carries the app id (``app-0001``) so that it matches the labels;
  real Kong puts a UUID there (the UUID is in ``consumer.custom_id`` here).
* ``envoy``: an Envoy JSON access log (``start_time`` ISO-8601 with ms and ``Z``,
  ``response_code``, ``upstream_cluster`` = service, ``route_name`` = route,
  ``x_app_id`` = app).
* ``nginx-json``: an NGINX ``log_format ... escape=json`` line; every value is a
  string as NGINX writes them (``"status":"200"``); ``time`` is ISO-8601 with ms
  and ``+00:00``; ``service``/``route``/``app`` keys.
* ``json``: a generic shape: ``ts`` (epoch ms), ``status``, ``svc``, ``route``, ``app``.
* ``combined``: NGINX/Apache combined log lines, the app id as the remote user,
  second resolution; the path is ``/<service>/<route>[/<id>]``.
* ``haproxy``: HAProxy ``option httplog`` lines, the backend named after the service;
  a 429 is the frontend's own answer (``<NOSRV>``, termination ``PR--``), a 504 the
  server timeout (``sH--``).

Every format derives its per-record variety (ids, client IP, latencies) from the
record's columns, so equal chunks encode to equal bytes.

>>> from statuswatch.simulate import SimSpec, generate
>>> spec = SimSpec(rate=20.0, n_apps=5)
>>> chunk = next(generate(spec, 1_680_566_400_000, 1_680_566_401_000))
>>> line = encode("combined", chunk, spec)[0].decode()
>>> line.split(" [")[1][:27]
'04/Apr/2023:00:00:00 +0000]'
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import msgspec
import numpy as np
import numpy.typing as npt

from statuswatch.errors import ConfigError
from statuswatch.simulate.spec import SimSpec
from statuswatch.simulate.traffic import Chunk

#: The supported output formats.
FORMATS: Final[tuple[str, ...]] = ("kong", "envoy", "nginx-json", "json", "combined",
                                    "haproxy", "caddy")

GATEWAY_HOST: Final = "api.example.com"
KONG_VERSION: Final = "3.4.2"

_NS: Final = uuid.UUID("6f1c2f64-56a5-4b1e-9a0c-2d8c3c5e7a10")
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
_COMPANIES: Final = (
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "tyrell",
    "dyne",
    "soylent",
    "wonka",
    "vandelay",
    "piper",
    "aperture",
    "oscorp",
    "duff",
    "monarch",
    "nakatomi",
)
_PRODUCTS: Final = (
    "crm-sync",
    "inbox",
    "calendly",
    "mobile",
    "helpdesk",
    "insights",
    "backup",
    "notifier",
    "hiring",
    "dialer",
    "notetaker",
    "archiver",
)
_LIBS: Final = (
    "python-requests/2.31.0",
    "okhttp/4.11.0",
    "axios/1.6.2",
    "Go-http-client/2.0",
    "node-fetch/3.3.2",
    "Java-http-client/17",
    "Faraday v2.7.10",
    "curl/8.4.0",
)


def _uuid(name: str) -> str:
    return str(uuid.uuid5(_NS, name))


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


@dataclass(frozen=True, slots=True)
class _Route:
    service: str
    route: str
    method: str
    gw_prefix: str  # "/email-api/get-message" (+ "/<id>" when has_id)
    gw_path: str  # gw_prefix + query, the URI when there is no id
    has_id: bool
    query: str  # "" or "?limit=50"
    qs_json: str  # the querystring object
    has_body: bool
    port: int
    pods: tuple[str, ...]
    kong_blocks: str  # '"route":{...},"service":{...}'


@dataclass(frozen=True, slots=True)
class _App:
    app: str
    ua: str
    ips: tuple[str, str]
    kong_consumer: str  # '"consumer":{...}'


@dataclass(frozen=True, slots=True)
class _Tables:
    routes: tuple[_Route, ...]
    apps: tuple[_App, ...]


@lru_cache(maxsize=8)
def _tables(spec: SimSpec) -> _Tables:
    routes = []
    for r, rd in enumerate(spec.route_defs):
        s = int(spec.route_service[r])
        sd = spec.service_defs[s]
        has_id = "{id}" in rd.path
        query = "?limit=50" if rd.kind == "list" else ""
        gw = f"/{sd.name}/{rd.name}"
        svc_id = _uuid(f"service/{sd.name}")
        route_obj = {
            "id": _uuid(f"route/{rd.name}"),
            "name": rd.name,
            "paths": [gw],
        }
        service_obj = {
            "id": svc_id,
            "name": sd.name,
            "host": sd.name,
            "port": sd.port,
            "protocol": "http",
        }
        routes.append(
            _Route(
                service=sd.name,
                route=rd.name,
                method=rd.method,
                gw_prefix=gw,
                gw_path=gw + query,
                has_id=has_id,
                query=query,
                qs_json='{"limit":"50"}' if query else "{}",
                has_body=rd.method in ("POST", "PUT", "PATCH"),
                port=sd.port,
                pods=tuple(f"10.8.{s}.{k}" for k in (11, 12, 13)),
                kong_blocks=f'"route":{_json(route_obj)},"service":{_json(service_obj)}',
            )
        )
    apps = []
    for i, name in enumerate(spec.apps):
        h = int(uuid.uuid5(_NS, f"app/{name}").int)
        company = _COMPANIES[h % len(_COMPANIES)]
        product = _PRODUCTS[(h >> 8) % len(_PRODUCTS)]
        lib = _LIBS[(h >> 16) % len(_LIBS)]
        ua = lib if h & 0x100000000 else f"{product}/{1 + (h >> 24) % 5}.{(h >> 28) % 20}"
        nets = ("203.0.113", "198.51.100", "192.0.2")
        ips = (f"{nets[i % 3]}.{1 + (h >> 32) % 254}", f"{nets[(i + 1) % 3]}.{1 + (h >> 40) % 254}")
        consumer = {
            "id": name,
            "username": f"{company}-{product}",
        }
        apps.append(_App(app=name, ua=ua, ips=ips, kong_consumer=f'"consumer":{_json(consumer)}'))
    return _Tables(routes=tuple(routes), apps=tuple(apps))


def _seconds(ts: list[int], fmt: Callable[[int], str]) -> list[str]:
    """``fmt(second)`` for each record, computed once per distinct second."""
    out: list[str] = []
    last, text = -1, ""
    for t in ts:
        sec = t // 1000
        if sec != last:
            last, text = sec, fmt(sec)
        out.append(text)
    return out


def _iso_second(sec: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))


def _clf_second(sec: int) -> str:
    return f"{_clf_second_no_zone(sec)} +0000"


def _clf_second_no_zone(sec: int) -> str:
    tm = time.gmtime(sec)
    return (
        f"{tm.tm_mday:02d}/{_MONTHS[tm.tm_mon - 1]}/{tm.tm_year}:"
        f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"
    )


_HEX_DIGITS: Final = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_K1: Final = np.uint64(0x9E3779B97F4A7C15)
_K2: Final = np.uint64(0xC2B2AE3D27D4EB4F)


def _hex_ascii(words: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint8]:
    """Rows of uint64 words -> rows of ASCII hex digits (16 per word, big-endian)."""
    raw = np.ascontiguousarray(words, dtype=">u8").view(np.uint8).reshape(words.shape[0], -1)
    out = np.empty((raw.shape[0], raw.shape[1] * 2), dtype=np.uint8)
    out[:, 0::2] = _HEX_DIGITS[raw >> 4]
    out[:, 1::2] = _HEX_DIGITS[raw & 15]
    return out


def _split(rows: npt.NDArray[np.uint8]) -> list[str]:
    """Rows of ASCII bytes -> one ``str`` per row (one decode for the whole chunk)."""
    width = rows.shape[1]
    text = np.ascontiguousarray(rows).tobytes().decode("ascii")
    return [text[i : i + width] for i in range(0, len(text), width)]


def _request_hex(chunk: Chunk) -> npt.NDArray[np.uint8]:
    """32 hex digits per record, derived from its random bits and time."""
    words = np.empty((len(chunk), 2), dtype=np.uint64)
    words[:, 0] = chunk.rid * _K1
    words[:, 1] = (chunk.rid ^ chunk.ts_ms.astype(np.uint64)) * _K2
    return _hex_ascii(words)


def _request_uuids(chunk: Chunk) -> list[str]:
    """A version-4-shaped UUID per record."""
    h = _request_hex(chunk)
    u = np.empty((h.shape[0], 36), dtype=np.uint8)
    u[:, 0:8], u[:, 9:13], u[:, 15:18] = h[:, 0:8], h[:, 8:12], h[:, 13:16]
    u[:, 20:23], u[:, 24:36] = h[:, 17:20], h[:, 20:32]
    u[:, [8, 13, 18, 23]] = ord("-")
    u[:, 14], u[:, 19] = ord("4"), ord("a")
    return _split(u)


@dataclass(frozen=True, slots=True)
class _Rows:
    """Per-record values shared by the formats, as Python lists."""

    ts: list[int]
    status: list[int]
    latency: list[int]
    size: list[int]
    routes: list[_Route]
    apps: list[_App]
    uri: list[str]
    client_ip: list[str]
    upstream_ip: list[str]
    gateway_ms: list[int]  # time spent in the gateway itself
    body: list[int]  # request body bytes (0 without a body)


def _rows(chunk: Chunk, t: _Tables) -> _Rows:
    rid = chunk.rid
    routes = [t.routes[r] for r in chunk.route.tolist()]
    apps = [t.apps[a] for a in chunk.app.tolist()]
    ids = _split(_hex_ascii(rid >> np.uint64(32))[:, 8:])  # 8 hex digits
    uri = [
        f"{rt.gw_prefix}/{ident}{rt.query}" if rt.has_id else rt.gw_path
        for rt, ident in zip(routes, ids, strict=True)
    ]
    has_body = np.array([rt.has_body for rt in routes], dtype=bool)
    body = np.where(has_body, 300 + (rid >> np.uint64(20)) % np.uint64(700), 0)
    return _Rows(
        ts=chunk.ts_ms.tolist(),
        status=chunk.status.tolist(),
        latency=chunk.latency_ms.tolist(),
        size=chunk.size.tolist(),
        routes=routes,
        apps=apps,
        uri=uri,
        client_ip=[
            ap.ips[k]
            for ap, k in zip(apps, ((rid >> np.uint64(2)) & np.uint64(1)).tolist(), strict=True)
        ],
        upstream_ip=[
            rt.pods[k] for rt, k in zip(routes, (rid % np.uint64(3)).tolist(), strict=True)
        ],
        gateway_ms=(1 + (rid >> np.uint64(4)) % np.uint64(4)).astype(np.int64).tolist(),
        body=body.astype(np.int64).tolist(),
    )


def _encode_kong(chunk: Chunk, t: _Tables) -> list[bytes]:
    w = _rows(chunk, t)
    rids = _split(_request_hex(chunk))
    head_sizes = (380 + (chunk.rid >> np.uint64(12)) % np.uint64(120)).astype(np.int64).tolist()
    out: list[bytes] = []
    for ts, st, rt, ap, uri, lat, size, gw, body, head, rid, cip, uip in zip(
        w.ts, w.status, w.routes, w.apps, w.uri, w.latency, w.size, w.gateway_ms, w.body,
        head_sizes, rids, w.client_ip, w.upstream_ip, strict=True,
    ):  # fmt: skip
        # a 429 is answered by the gateway's rate limiter: no upstream try
        tries = "[]" if st == 429 else f'[{{"ip":"{uip}","port":{rt.port}}}]'
        out.append(
            f'{{"request":{{"method":"{rt.method}","uri":"{uri}","size":{head + body},'
            f'"querystring":{rt.qs_json},"headers":{{"host":"{GATEWAY_HOST}",'
            f'"user-agent":"{ap.ua}","x-request-id":"{rid}"}}}},'
            f'"response":{{"status":{st},"size":{size + 310},'
            f'"headers":{{"content-type":"application/json"}}}},'
            f"{rt.kong_blocks},{ap.kong_consumer},"
            f'"latencies":{{"request":{lat + gw},"kong":{gw},"proxy":{lat}}},'
            f'"tries":{tries},"client_ip":"{cip}","started_at":{ts}}}'.encode()
        )
    return out


def _encode_envoy(chunk: Chunk, t: _Tables) -> list[bytes]:
    w = _rows(chunk, t)
    prefixes = _seconds(w.ts, _iso_second)
    rids = _request_uuids(chunk)
    out: list[bytes] = []
    for ts, pre, st, rt, ap, uri, lat, size, gw, body, rid, cip, uip in zip(
        w.ts, prefixes, w.status, w.routes, w.apps, w.uri, w.latency, w.size, w.gateway_ms,
        w.body, rids, w.client_ip, w.upstream_ip, strict=True,
    ):  # fmt: skip
        if st == 429:  # local reply of the rate limiter
            flags, ust, host = "RL", "null", "null"
        else:
            flags = "UT" if st == 504 else "-"
            ust, host = f'"{lat}"', f'"{uip}:{rt.port}"'
        out.append(
            f'{{"start_time":"{pre}.{ts % 1000:03d}Z","method":"{rt.method}","path":"{uri}",'
            f'"protocol":"HTTP/1.1","response_code":{st},"response_flags":"{flags}",'
            f'"bytes_received":{body},"bytes_sent":{size},"duration":{lat + gw},'
            f'"upstream_service_time":{ust},"x_forwarded_for":"{cip}",'
            f'"user_agent":"{ap.ua}","request_id":"{rid}",'
            f'"authority":"{GATEWAY_HOST}","upstream_host":{host},'
            f'"upstream_cluster":"{rt.service}","route_name":"{rt.route}",'
            f'"x_app_id":"{ap.app}"}}'.encode()
        )
    return out


def _encode_nginx_json(chunk: Chunk, t: _Tables) -> list[bytes]:
    w = _rows(chunk, t)
    prefixes = _seconds(w.ts, _iso_second)
    rids = _split(_request_hex(chunk))
    out: list[bytes] = []
    for ts, pre, st, rt, ap, uri, lat, size, gw, rid, cip in zip(
        w.ts, prefixes, w.status, w.routes, w.apps, w.uri, w.latency, w.size, w.gateway_ms,
        rids, w.client_ip, strict=True,
    ):  # fmt: skip
        total = lat + gw
        upstream = "-" if st == 429 else f"{lat // 1000}.{lat % 1000:03d}"
        out.append(
            f'{{"time":"{pre}.{ts % 1000:03d}+00:00","remote_addr":"{cip}",'
            f'"request":"{rt.method} {uri} HTTP/1.1","status":"{st}",'
            f'"body_bytes_sent":"{size}","request_time":"{total // 1000}.{total % 1000:03d}",'
            f'"upstream_response_time":"{upstream}","http_user_agent":"{ap.ua}",'
            f'"request_id":"{rid}","service":"{rt.service}",'
            f'"route":"{rt.route}","app":"{ap.app}"}}'.encode()
        )
    return out


def _encode_json(chunk: Chunk, t: _Tables) -> list[bytes]:
    w = _rows(chunk, t)
    rids = _request_uuids(chunk)
    return [
        f'{{"ts":{ts},"status":{st},"svc":"{rt.service}","route":"{rt.route}",'
        f'"app":"{ap.app}","method":"{rt.method}","path":"{uri}",'
        f'"latency_ms":{lat},"bytes":{size},"request_id":"{rid}"}}'.encode()
        for ts, st, rt, ap, uri, lat, size, rid in zip(
            w.ts, w.status, w.routes, w.apps, w.uri, w.latency, w.size, rids, strict=True
        )
    ]


def _encode_combined(chunk: Chunk, t: _Tables) -> list[bytes]:
    w = _rows(chunk, t)
    stamps = _seconds(w.ts, _clf_second)
    return [
        f'{cip} - {ap.app} [{stamp}] "{rt.method} {uri} HTTP/1.1" {st} {size} "-" "{ap.ua}"'
        .encode()
        for stamp, st, rt, ap, uri, size, cip in zip(
            stamps, w.status, w.routes, w.apps, w.uri, w.size, w.client_ip, strict=True
        )
    ]  # fmt: skip


def _encode_haproxy(chunk: Chunk, t: _Tables) -> list[bytes]:
    w = _rows(chunk, t)
    stamps = _seconds(w.ts, _clf_second_no_zone)
    out: list[bytes] = []
    for ts, stamp, st, rt, uri, lat, size, gw, cip in zip(
        w.ts, stamps, w.status, w.routes, w.uri, w.latency, w.size, w.gateway_ms,
        w.client_ip, strict=True,
    ):  # fmt: skip
        if st == 429:  # the frontend's own rate limit: no backend server
            where, timers, state = "gateway/<NOSRV>", f"{gw}/-1/-1/-1/{gw}", "PR--"
        elif st == 504:  # the server timed out
            where, timers, state = f"{rt.service}/{rt.service}-1", f"{gw}/0/1/-1/{lat}", "sH--"
        else:
            where, timers, state = (f"{rt.service}/{rt.service}-1", f"{gw}/0/1/{lat}/{lat + gw}",
                                    "----")
        out.append(
            f"{cip}:{10_000 + ts % 50_000} [{stamp}.{ts % 1000:03d}] gateway~ {where} {timers} "
            f'{st} {size} - - {state} 12/12/3/1/0 0/0 "{rt.method} {uri} HTTP/1.1"'.encode()
        )
    return out


def _encode_caddy(chunk: Chunk, t: _Tables) -> list[bytes]:
    """Caddy's JSON access log, one site per service (its host), the app the
    authenticated user; the time in seconds with more digits than milliseconds, as
    Caddy writes a float."""
    w = _rows(chunk, t)
    out: list[bytes] = []
    for ts, st, rt, ap, uri, lat, size, gw, cip in zip(
        w.ts, w.status, w.routes, w.apps, w.uri, w.latency, w.size, w.gateway_ms,
        w.client_ip, strict=True,
    ):  # fmt: skip
        level = "error" if st >= 400 else "info"
        total = lat + gw
        out.append(
            f'{{"level":"{level}","ts":{ts // 1000}.{ts % 1000:03d}2,'
            f'"logger":"http.log.access.log0","msg":"handled request",'
            f'"request":{{"remote_ip":"{cip}","remote_port":"{10_000 + ts % 50_000}",'
            f'"proto":"HTTP/1.1","method":"{rt.method}","host":"{rt.service}",'
            f'"uri":"{uri}","headers":{{"User-Agent":["{ap.ua}"],"Accept":["*/*"]}}}},'
            f'"user_id":"{ap.app}","duration":{total // 1000}.{total % 1000:03d},'
            f'"size":{size},"status":{st},"resp_headers":{{"Server":["Caddy"]}}}}'.encode()
        )
    return out


_ENCODERS: Final[dict[str, Callable[[Chunk, _Tables], list[bytes]]]] = {
    "kong": _encode_kong,
    "envoy": _encode_envoy,
    "nginx-json": _encode_nginx_json,
    "json": _encode_json,
    "combined": _encode_combined,
    "haproxy": _encode_haproxy,
    "caddy": _encode_caddy,
}


def encode(fmt: str, chunk: Chunk, spec: SimSpec) -> list[bytes]:
    """Encode each record of ``chunk`` (generated from ``spec``) in format ``fmt``.

    >>> from statuswatch.simulate import SimSpec, generate
    >>> spec = SimSpec(rate=20.0, n_apps=5)
    >>> chunk = next(generate(spec, 1_680_566_400_000, 1_680_566_401_000))
    >>> import json
    >>> rec = json.loads(encode("kong", chunk, spec)[0])
    >>> rec["started_at"] == int(chunk.ts_ms[0]), rec["consumer"]["id"] in spec.apps
    (True, True)
    """
    try:
        encoder = _ENCODERS[fmt]
    except KeyError:
        raise ConfigError(
            f"simulate.format: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}"
        ) from None
    if len(chunk) == 0:
        return []
    return encoder(chunk, _tables(spec))
