"""HTTP logs written by a real HAProxy (Debian's ``haproxy``), not by hand: its
``option httplog`` lines sent to syslog over UDP, bare (``format raw``) and behind
HAProxy's RFC 3164 header. Requests with a known mix of outcomes go in: the backend's
statuses, the frontend's own 403 (``http-request deny``) and no response at all
(``http-request silent-drop``, status -1). Each log decodes to exactly that mix, with
the backend (or the frontend that answered) as the service, and ``statuswatch
backtest --format haproxy`` counts the bare lines. HAProxy runs in ``HOST_ZONE``: its
accept date is that zone's local time, read right with ``decode.timezone``."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from statuswatch.config import DecodeConfig
from statuswatch.core.columns import NO_RESPONSE
from statuswatch.core.decode import build_decoder
from tests.integration.support import (
    RequestMix,
    answering,
    ask,
    assert_backtest_counts,
    free_port,
    installed,
    mix_counts,
    mix_routes,
    serving,
    syslog_receiver,
    wait_for,
)

pytestmark = pytest.mark.slow

#: the backend's answers, then the frontend's own
BACKEND_MIX: RequestMix = {
    "/v1/charges": (200, 90), "/v1/refunds": (201, 8), "/v2/apps": (403, 30),
    "/v2/missing": (404, 12), "/v1/boom": (500, 3), "/v1/busy": (503, 5),
}
FRONTEND_MIX: RequestMix = {"/blocked/scraper": (403, 6), "/drop/abuser": (NO_RESPONSE, 4)}
MIX = {**BACKEND_MIX, **FRONTEND_MIX}
BACKEND, FRONTEND = "billing", "public"
#: HAProxy's local time (no daylight saving: the offset is known)
HOST_ZONE, HOST_OFFSET_MS = "Asia/Kolkata", 19_800_000


@contextmanager
def haproxy(tmp_path: Path, backend_port: int, raw_port: int, framed_port: int) -> Iterator[int]:
    """HAProxy in the foreground on 127.0.0.1 (its port yielded), logging each request
    over UDP bare to ``raw_port`` and behind its syslog header to ``framed_port``."""
    port = free_port()
    conf = tmp_path / "haproxy.cfg"
    conf.write_text(
        "global\n"
        f"  log 127.0.0.1:{raw_port} format raw local0\n"
        f"  log 127.0.0.1:{framed_port} local0\n"
        # dontlognull, as Debian's stock config: the harness's port probe is no request
        "defaults\n  mode http\n  log global\n  option httplog\n  option dontlognull\n"
        "  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n"
        f"frontend {FRONTEND}\n  bind 127.0.0.1:{port}\n"
        "  http-request deny if { path_beg /blocked }\n"
        "  http-request silent-drop if { path_beg /drop }\n"
        f"  default_backend {BACKEND}\n"
        f"backend {BACKEND}\n  server s1 127.0.0.1:{backend_port}\n"
    )
    with serving([installed("haproxy", "haproxy"), "-db", "-f", str(conf)], port,
                 tmp_path / "haproxy.out", env={"TZ": HOST_ZONE}):
        yield port


def test_real_haproxy_logs_decode_to_the_requests_it_answered(tmp_path: Path):
    started_ms = int(time.time() * 1000) - 1000
    n = sum(mix_counts(MIX).values())
    with ExitStack() as stack:
        raw_port, raw = stack.enter_context(syslog_receiver())
        framed_port, framed = stack.enter_context(syslog_receiver())
        backend_port = stack.enter_context(
            answering(BACKEND_MIX))
        port = stack.enter_context(haproxy(tmp_path, backend_port, raw_port, framed_port))
        # silent-drop keeps even the close from the client: it only times out
        seen = ask(port, MIX, silent=lambda path: path.startswith("/drop"))
        wait_for(lambda: len(raw) >= n and len(framed) >= n, 10,
                 lambda: f"{len(raw)} and {len(framed)} syslog datagrams of {n}")
    ended_ms = int(time.time() * 1000) + 1000
    assert seen == mix_counts(MIX)
    assert framed[0].startswith(b"<134>")  # local0.info behind HAProxy's header
    decoded = {
        "raw": build_decoder(DecodeConfig(format="haproxy", timezone=HOST_ZONE)).decode(raw),
        "framed": build_decoder(
            DecodeConfig(format="haproxy", envelope="syslog", timezone=HOST_ZONE)).decode(framed),
    }
    # read as UTC (the default), the local times are the zone's offset late
    as_utc = build_decoder(DecodeConfig(format="haproxy")).decode(raw).ts_ms
    assert (as_utc - decoded["raw"].ts_ms == HOST_OFFSET_MS).all()
    want_services = Counter({BACKEND: sum(n for _, n in BACKEND_MIX.values()),
                             FRONTEND: sum(n for _, n in FRONTEND_MIX.values())})
    want_routes = mix_routes(MIX)
    for name, batch in decoded.items():
        assert not batch.invalid, (name, batch.invalid[:3])
        assert Counter(batch.status.tolist()) == seen, name
        assert Counter(batch.dims["service"]) == want_services, name
        assert Counter(batch.dims["route"]) == want_routes, name
        assert started_ms <= batch.ts_ms.min() and batch.ts_ms.max() <= ended_ms, name

    log = tmp_path / "haproxy.log"
    log.write_bytes(b"".join(line.rstrip(b"\n") + b"\n" for line in raw))
    config = tmp_path / "statuswatch.yaml"
    config.write_text(f"decode:\n  format: haproxy\n  timezone: {HOST_ZONE}\n")
    assert_backtest_counts(log, seen, "--config", str(config))

