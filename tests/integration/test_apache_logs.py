"""Access logs written by a real Apache httpd (Debian's ``apache2``), not by hand: Apache
as a reverse proxy with two virtual hosts, logging each request in Debian's
``combined`` and ``vhost_combined`` formats (the latter is what Debian's
``other_vhosts_access.log`` holds: the virtual host and port first). Requests with a
known mix of outcomes go in: the backend's statuses and Apache's own 403 (``Require all
denied``). ``--format combined`` reads both logs to exactly that mix; in the
vhost_combined one each virtual host is its service. ``statuswatch backtest`` counts
it."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from statuswatch.config import DecodeConfig
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

API, ADMIN = "api.example.com", "admin.example.com"
#: the backend's answers (``/admin`` paths asked of ADMIN), then Apache's own
BACKEND_MIX: RequestMix = {
    "/v1/charges": (200, 50), "/v1/refunds?full=1": (201, 8), "/v2/apps": (403, 20),
    "/v2/missing": (404, 10), "/v1/boom": (500, 3), "/admin/users": (200, 15),
    "/admin/busy": (503, 4),
}
APACHE_MIX: RequestMix = {"/blocked/scraper": (403, 6)}
MIX = {**BACKEND_MIX, **APACHE_MIX}
MODULES = ("mpm_event", "authz_core", "proxy", "proxy_http")
#: Debian's LogFormat lines (``/etc/apache2/apache2.conf``)
LOG_FORMATS = (
    'LogFormat "%v:%p %h %l %u %t \\"%r\\" %>s %O \\"%{Referer}i\\" \\"%{User-Agent}i\\"" '
    "vhost_combined\n"
    'LogFormat "%h %l %u %t \\"%r\\" %>s %O \\"%{Referer}i\\" \\"%{User-Agent}i\\"" combined\n'
)


def host_of(path: str) -> str:
    return ADMIN if path.startswith("/admin") else API


@contextmanager
def apache(tmp_path: Path, backend_port: int) -> Iterator[int]:
    """Apache in the foreground on 127.0.0.1 (its port yielded), proxying both virtual
    hosts to ``backend_port`` and writing ``combined.log`` and ``vhost.log``."""
    binary = installed("apache2", "apache2")
    port = free_port()
    modules = "".join(f"LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so\n"
                      for m in MODULES)
    # as root, the workers run as nobody (the logs are opened before, by root)
    user = "User nobody\nGroup nogroup\n" if os.geteuid() == 0 else ""
    conf = tmp_path / "httpd.conf"
    conf.write_text(
        f"ServerRoot {tmp_path}\nServerName localhost\nListen 127.0.0.1:{port}\n"
        f"PidFile {tmp_path}/httpd.pid\nErrorLog {tmp_path}/error.log\n{user}{modules}"
        f"{LOG_FORMATS}CustomLog {tmp_path}/vhost.log vhost_combined\n"
        f"CustomLog {tmp_path}/combined.log combined\n"
        f"<VirtualHost 127.0.0.1:{port}>\n  ServerName {API}\n"
        "  <Location /blocked>\n    Require all denied\n  </Location>\n"
        f"  ProxyPass /blocked !\n  ProxyPass / http://127.0.0.1:{backend_port}/\n"
        "</VirtualHost>\n"
        f"<VirtualHost 127.0.0.1:{port}>\n  ServerName {ADMIN}\n"
        f"  ProxyPass / http://127.0.0.1:{backend_port}/\n</VirtualHost>\n"
    )
    with serving([binary, "-f", str(conf), "-DFOREGROUND"], port, tmp_path / "apache.out"):
        yield port


def test_real_apache_logs_decode_to_the_requests_it_answered(tmp_path: Path) -> None:
    started_ms = int(time.time() * 1000) - 1000
    n = sum(mix_counts(MIX).values())
    logs = {"combined": tmp_path / "combined.log", "vhost_combined": tmp_path / "vhost.log"}

    def lines(path: Path) -> list[bytes]:
        return path.read_bytes().splitlines() if path.exists() else []

    with ExitStack() as stack:
        backend_port = stack.enter_context(answering(BACKEND_MIX))
        port = stack.enter_context(apache(tmp_path, backend_port))
        seen = ask(port, MIX, lambda path: {"Host": host_of(path)})
        wait_for(lambda: all(len(lines(p)) >= n for p in logs.values()), 10,
                 lambda: ", ".join(f"{k} {len(lines(p))}" for k, p in logs.items()))
    ended_ms = int(time.time() * 1000) + 1000
    assert seen == mix_counts(MIX)
    assert lines(logs["vhost_combined"])[0].startswith(f"{API}:".encode())

    want_services = Counter({API: 0, ADMIN: 0})
    for asked, (_, times) in MIX.items():
        want_services[host_of(asked)] += times
    decoder = build_decoder(DecodeConfig(format="combined"))
    for name, log in logs.items():
        batch = decoder.decode(lines(log))
        assert not batch.invalid, (name, batch.invalid[:3])
        assert Counter(batch.status.tolist()) == seen, name
        assert Counter(batch.dims["route"]) == mix_routes(MIX), name
        services = Counter(batch.dims["service"])
        assert services == (want_services if name == "vhost_combined" else Counter({"": n}))
        assert started_ms <= batch.ts_ms.min() and batch.ts_ms.max() <= ended_ms, name

    assert_backtest_counts(logs["vhost_combined"], seen, "--format", "combined")
