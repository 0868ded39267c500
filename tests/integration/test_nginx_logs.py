"""Access logs written by a real NGINX (Debian's ``nginx``), not by hand: a JSON log
(``log_format ... escape=json``), the stock ``combined`` log, and the same JSON lines sent
with ``access_log syslog:``. Requests with a known mix of statuses go in; each log decodes
to exactly that mix, with the request's app and route, and ``statuswatch backtest`` counts
it from the files with the shipped defaults of each format."""

from __future__ import annotations

import http.client
import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from statuswatch.config import DecodeConfig, FieldMap
from statuswatch.core.decode import build_decoder
from tests.integration.support import (
    assert_backtest_counts,
    free_port,
    installed,
    serving,
    syslog_receiver,
    wait_for,
)

#: path -> (status, requests): what NGINX answers and how often it is asked
MIX = {
    "/ok": (200, 120), "/created": (201, 10), "/moved": (301, 7), "/forbidden": (403, 25),
    "/missing": (404, 15), "/boom": (500, 3), "/unavailable": (503, 5),
}
#: ``log_format ... escape=json`` with the time variables NGINX users log
JSON_FORMAT = (
    "'{\"time_local\":\"$time_local\",\"time_iso8601\":\"$time_iso8601\",\"msec\":\"$msec\","
    "\"status\":\"$status\",\"request_uri\":\"$request_uri\",\"upstream\":\"$upstream_addr\","
    "\"http_x_app\":\"$http_x_app\",\"http_user_agent\":\"$http_user_agent\"}'"
)


@contextmanager
def nginx(tmp_path: Path, syslog_port: int) -> Iterator[int]:
    """NGINX in the foreground on 127.0.0.1 (its port yielded): a JSON access log, the
    combined one, and the JSON lines to syslog over UDP at ``syslog_port``."""
    port = free_port()
    locations = "".join(
        f"    location = {path} {{ return {status}{' /ok' if status == 301 else ''}; }}\n"
        for path, (status, _) in MIX.items()
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "daemon off;\nmaster_process off;\n"
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        + "".join(f"  {kind}_temp_path {tmp_path}/{kind};\n"
                  for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        + f"  log_format sw escape=json {JSON_FORMAT};\n"
        f"  access_log {tmp_path}/access.json sw;\n"
        f"  access_log {tmp_path}/access.log combined;\n"
        f"  access_log syslog:server=127.0.0.1:{syslog_port},tag=nginx sw;\n"
        f"  server {{\n    listen 127.0.0.1:{port};\n{locations}  }}\n"
        "}\n"
    )
    log = tmp_path / "error.log"  # nginx writes its errors there itself
    with serving([installed("nginx", "nginx"), "-p", str(tmp_path), "-e", str(log),
                  "-c", str(conf)], port, log):
        yield port


def ask(port: int) -> tuple[Counter[int], Counter[str]]:
    """Send ``MIX`` (apps by turn), return the statuses NGINX answered and the apps."""
    statuses: Counter[int] = Counter()
    apps: Counter[str] = Counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        n = 0
        for path, (_, times) in MIX.items():
            for _ in range(times):
                app = f"app-{n % 4}"
                conn.request("GET", f"{path}?page={n % 3}",  # $request_uri has the query
                             headers={"X-App": app, "User-Agent": 'a "quoted" ua'})
                response = conn.getresponse()
                response.read()
                statuses[response.status] += 1
                apps[app] += 1
                n += 1
    finally:
        conn.close()
    return statuses, apps


def test_real_nginx_logs_decode_to_the_requests_it_answered(tmp_path: Path):
    started_ms = int(time.time() * 1000) - 1000
    with syslog_receiver() as (syslog_port, datagrams):
        with nginx(tmp_path, syslog_port) as port:
            statuses, apps = ask(port)
        wait_for(lambda: len(datagrams) >= sum(statuses.values()), 10,
                 lambda: f"{len(datagrams)} syslog datagrams of {sum(statuses.values())}")
    ended_ms = int(time.time() * 1000) + 1000
    assert statuses == Counter({status: n for status, n in MIX.values()})

    json_lines = (tmp_path / "access.json").read_bytes().splitlines()
    combined_lines = (tmp_path / "access.log").read_bytes().splitlines()
    assert datagrams[0].startswith(b"<190>")  # local7.info, as NGINX sends by default
    # $request_uri is a path with its query: the route is its first segment
    fields = FieldMap(app="http_x_app", route="request_uri")
    decoded = {
        "json file": build_decoder(DecodeConfig(format="nginx-json", fields=fields,
                                                route_segments=1)).decode(json_lines),
        "syslog": build_decoder(DecodeConfig(format="nginx-json", fields=fields,
                                             envelope="syslog", route_segments=1)).decode(
            datagrams),
        "combined file": build_decoder(DecodeConfig(format="combined")).decode(combined_lines),
    }
    for name, batch in decoded.items():
        assert not batch.invalid, (name, batch.invalid[:3])
        assert Counter(batch.status.tolist()) == statuses, name
        assert started_ms <= batch.ts_ms.min() and batch.ts_ms.max() <= ended_ms, name
        assert Counter(batch.dims["route"]) == Counter(
            {path: n for path, (_, n) in MIX.items()}), name
    for name in ("json file", "syslog"):
        assert Counter(decoded[name].dims["app"]) == apps, name
    # without route_segments the field is taken as it is: every query its own route
    verbatim = build_decoder(DecodeConfig(format="nginx-json", fields=fields)).decode(json_lines)
    assert {route.split("?")[0] for route in verbatim.dims["route"]} == set(MIX)
    assert len(set(verbatim.dims["route"])) == 3 * len(MIX)
    # the JSON log's times agree with each other (msec, time_iso8601, time_local: seconds)
    for line in json_lines:
        record = json.loads(line)
        assert record["http_user_agent"] == 'a "quoted" ua'
        assert abs(float(record["msec"]) * 1000 - decoded["json file"].ts_ms[0]) < 60_000


@pytest.mark.parametrize(("log", "fmt"), [("access.json", "nginx-json"),
                                          ("access.log", "combined")])
def test_backtest_counts_a_real_nginx_log_with_the_defaults(tmp_path: Path, log: str, fmt: str):
    with syslog_receiver() as (syslog_port, _), nginx(tmp_path, syslog_port) as port:
        statuses, _ = ask(port)
    assert_backtest_counts(tmp_path / log, statuses, "--format", fmt)
