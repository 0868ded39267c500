"""JSON access logs written by a real Caddy (Debian's ``caddy``), not by hand: Caddy
as a reverse proxy with ``log { format json }``, requests with a known mix of outcomes
(the backend's statuses, Caddy's own 403 from ``respond``, and no response at all from
``abort``, status 0), some with an authenticated user (``basicauth``). ``--format
caddy`` decodes the log to exactly that mix, with the site as the service, the first
path segment (or two, with ``decode.route_segments``) as the route and the user as the
app; ``statuswatch backtest`` counts it."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from statuswatch.config import DecodeConfig, FieldMap
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
    wait_for,
)

pytestmark = pytest.mark.slow

#: the backend's answers (``/v2`` behind basicauth), then Caddy's own
BACKEND_MIX: RequestMix = {
    "/v1/charges/1": (200, 60), "/v1/refunds/2?full=1": (201, 8), "/v2/apps/3": (403, 30),
    "/v2/missing": (404, 12), "/v1/boom": (500, 3), "/v1/busy": (503, 5),
}
CADDY_MIX: RequestMix = {"/blocked/scraper": (403, 6), "/drop/abuser": (NO_RESPONSE, 4)}
MIX = {**BACKEND_MIX, **CADDY_MIX}
SITE, USER, PASSWORD = "api.example.com", "shop", "s3cret"


@contextmanager
def caddy(tmp_path: Path, backend_port: int, log: Path) -> Iterator[int]:
    """Caddy in the foreground on 127.0.0.1 (its port yielded), proxying to
    ``backend_port`` and writing its JSON access log to ``log``."""
    binary = installed("caddy", "caddy")
    hashed = subprocess.run([binary, "hash-password", "--plaintext", PASSWORD],
                            capture_output=True, text=True, check=True).stdout.strip()
    port = free_port()
    conf = tmp_path / "Caddyfile"
    conf.write_text(
        "{\n  admin off\n  auto_https off\n}\n"
        f"http://:{port} {{\n  bind 127.0.0.1\n"
        f"  log {{\n    output file {log}\n    format json\n  }}\n"
        f"  basicauth /v2/* {{\n    {USER} {hashed}\n  }}\n"
        "  respond /blocked/* 403\n  abort /drop/*\n"
        f"  reverse_proxy 127.0.0.1:{backend_port}\n}}\n"
    )
    # Caddy keeps its data under $HOME or $XDG_DATA_HOME: the test's own directory
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    with serving([binary, "run", "--config", str(conf), "--adapter", "caddyfile"], port,
                 tmp_path / "caddy.out", env=env):
        yield port


def headers(path: str) -> dict[str, str]:
    """The site's name, and the user's credentials where the path needs them."""
    out = {"Host": SITE}
    if path.startswith("/v2"):
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        out["Authorization"] = f"Basic {token}"
    return out


def test_real_caddy_logs_decode_to_the_requests_it_answered(tmp_path: Path) -> None:
    started_ms = int(time.time() * 1000) - 1000
    n = sum(mix_counts(MIX).values())
    log = tmp_path / "access.log"
    with ExitStack() as stack:
        backend_port = stack.enter_context(answering(BACKEND_MIX))
        port = stack.enter_context(caddy(tmp_path, backend_port, log))
        seen = ask(port, MIX, headers)

        def lines() -> list[bytes]:
            return log.read_bytes().splitlines() if log.exists() else []

        wait_for(lambda: len(lines()) >= n, 10, lambda: f"{len(lines())} log lines of {n}")
    ended_ms = int(time.time() * 1000) + 1000
    assert seen == mix_counts(MIX)
    records = lines()
    assert json.loads(records[0])["logger"].startswith("http.log.access")

    batch = build_decoder(DecodeConfig(format="caddy", fields=FieldMap(app="user_id"))).decode(
        records)
    assert not batch.invalid, batch.invalid[:3]
    assert Counter(batch.status.tolist()) == seen
    assert Counter(batch.dims["service"]) == Counter({SITE: n})
    assert Counter(batch.dims["route"]) == mix_routes(MIX)
    authenticated = sum(times for path, (_, times) in MIX.items() if path.startswith("/v2"))
    assert Counter(batch.dims["app"]) == Counter({USER: authenticated, "": n - authenticated})
    assert started_ms <= batch.ts_ms.min() and batch.ts_ms.max() <= ended_ms
    # two segments: the query is no part of the route
    deeper = build_decoder(DecodeConfig(format="caddy", route_segments=2)).decode(records)
    assert Counter(deeper.dims["route"])["/v1/refunds"] == 8

    assert_backtest_counts(log, seen, "--format", "caddy")
