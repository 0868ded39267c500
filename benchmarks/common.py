"""Shared pieces of the performance benchmarks: data, references, timing, tables.

Every benchmark measures statuswatch and its references in the same process and
run, so ratios hold on a shared or slow machine even when absolute figures move.
Rates "per core" divide by the CPU time of this process (``time.process_time``):
other processes on the machine then cost less accuracy than with wall time.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from river import stats

from statuswatch.config import DecodeConfig, FieldMap, Settings
from statuswatch.simulate import SimSpec, encode, generate

#: 2023-04-04T00:00:00Z, a Tuesday: the simulator's default start.
START_MS = 1_680_566_400_000
WINDOW_MS = 10_000

#: Each format as the simulator writes it (``statuswatch.simulate.encode``).
FORMAT_CONFIGS: dict[str, DecodeConfig] = {
    "kong": DecodeConfig(format="kong"),
    "envoy": DecodeConfig(format="envoy", fields=FieldMap(app="x_app_id")),
    "nginx-json": DecodeConfig(
        format="nginx-json", fields=FieldMap(service="service", route="route", app="app")
    ),
    "combined": DecodeConfig(format="combined"),
    "haproxy": DecodeConfig(format="haproxy"),
    "caddy": DecodeConfig(format="caddy", fields=FieldMap(app="user_id")),
    "json": DecodeConfig(
        format="json",
        fields=FieldMap(
            timestamp="ts", timestamp_unit="ms", status="status", service="svc", route="route",
            app="app",
        ),
    ),
}


def settings_for(fmt: str, **overrides: Any) -> Settings:
    return Settings(decode=FORMAT_CONFIGS[fmt], **overrides)


def cache_dir() -> Path:
    """Where generated inputs are kept between runs (``STATUSWATCH_BENCH_CACHE``)."""
    path = Path(os.environ.get("STATUSWATCH_BENCH_CACHE", Path.home() / ".cache/statuswatch/bench"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def records(fmt: str, n: int, *, rate: float = 5000.0, n_apps: int = 200, seed: int = 1,
            start_ms: int = START_MS) -> list[bytes]:
    """``n`` simulated records of format ``fmt`` (realistic: 130-800 bytes by format)."""
    spec = SimSpec(seed=seed, rate=rate, n_apps=n_apps)
    out: list[bytes] = []
    end = start_ms + int(n / rate * 1000 * 1.2) + 10_000
    for chunk in generate(spec, start_ms, end, chunk_ms=10_000):
        out += encode(fmt, chunk, spec)
        if len(out) >= n:
            break
    return out[:n]


def kong_file(n: int, *, rate: float = 2500.0) -> Path:
    """A file of ``n`` simulated Kong records (one per line), generated once and cached."""
    path = cache_dir() / f"kong-{n}-r{int(rate)}.log"
    if path.exists() and path.stat().st_size > 0:
        return path
    tmp = path.with_suffix(".tmp")
    spec = SimSpec(seed=1, rate=rate, n_apps=200)
    written = 0
    with tmp.open("wb") as out:
        for chunk in generate(spec, START_MS, START_MS + int(n / rate * 1200) + 60_000,
                              chunk_ms=10_000):
            values = encode("kong", chunk, spec)[: n - written]
            out.write(b"\n".join(values) + b"\n")
            written += len(values)
            if written >= n:
                break
    tmp.rename(path)
    return path


# -- the naive reference pipeline -------------------------------------------------

_COMBINED = re.compile(
    rb'^\S+ \S+ \S+ \[([^\]]+)\] "\S+ (/[^/?\s"]*)[^"]*" (\d{3}) \S+'
)
_HAPROXY = re.compile(
    rb'^\S+ \[([^\]]+)\] \S+ ([^/\s]+)/\S+ \S+ (-?\d+) .*?"\S+ (/[^/?\s"]*)[^"]*"'
)
_MONTHS = {m: i for i, m in enumerate(
    (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
     b"Dec"), 1)}


def _iso_ms(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text).timestamp() * 1000)


def _naive_fields(fmt: str) -> Callable[[bytes], tuple[int, int, str, str, str]]:
    """Per-record field extraction as one would write it first: json.loads (a regex)."""
    loads = json.loads
    if fmt == "kong":
        def kong(v: bytes) -> tuple[int, int, str, str, str]:
            r = loads(v)
            return (r["started_at"], r["response"]["status"], (r.get("service") or {}).get("name")
                    or "", (r.get("route") or {}).get("name") or "",
                    (r.get("consumer") or {}).get("id") or "")
        return kong
    if fmt == "envoy":
        def envoy(v: bytes) -> tuple[int, int, str, str, str]:
            r = loads(v)
            return (_iso_ms(r["start_time"]), r["response_code"], r.get("upstream_cluster") or "",
                    r.get("route_name") or "", r.get("x_app_id") or "")
        return envoy
    if fmt == "nginx-json":
        def nginx(v: bytes) -> tuple[int, int, str, str, str]:
            r = loads(v)
            return (_iso_ms(r["time"]), int(r["status"]), r.get("service") or "",
                    r.get("route") or "", r.get("app") or "")
        return nginx
    if fmt == "json":
        def generic(v: bytes) -> tuple[int, int, str, str, str]:
            r = loads(v)
            return (r["ts"], r["status"], r.get("svc") or "", r.get("route") or "",
                    r.get("app") or "")
        return generic
    if fmt == "combined":
        from datetime import datetime

        def combined(v: bytes) -> tuple[int, int, str, str, str]:
            m = _COMBINED.match(v)
            assert m is not None
            stamp, route, code = m.groups()
            dt = datetime.strptime(stamp.decode(), "%d/%b/%Y:%H:%M:%S %z")
            return int(dt.timestamp() * 1000), int(code), "", route.decode(), ""
        return combined
    if fmt == "haproxy":
        from datetime import datetime

        def haproxy(v: bytes) -> tuple[int, int, str, str, str]:
            m = _HAPROXY.match(v)
            assert m is not None
            stamp, backend, code, route = m.groups()
            dt = datetime.strptime(stamp.decode() + "+0000", "%d/%b/%Y:%H:%M:%S.%f%z")
            return int(dt.timestamp() * 1000), int(code), backend.decode(), route.decode(), ""
        return haproxy
    if fmt == "caddy":
        def caddy(v: bytes) -> tuple[int, int, str, str, str]:
            r = loads(v)
            request = r["request"]
            route = "/" + request["uri"].split("?", 1)[0].split("/")[1]
            return (round(r["ts"] * 1000), r["status"], request.get("host") or "",
                    route, r.get("user_id") or "")
        return caddy
    raise ValueError(fmt)


#: A line as shippers put it in their envelopes (``decode.envelope``): behind rsyslog
#: omkafka's default header, and as the ``message`` of a Vector event.
ENVELOPES: dict[str, Callable[[bytes], bytes]] = {
    "syslog": lambda line: b"2026-12-06T05:30:01.123456+00:00 web-1 gateway: " + line,
    "json": lambda line: (b'{"file":"/var/log/gateway/access.log","host":"web-1","message":'
                          + json.dumps(line.decode()).encode()
                          + b',"source_type":"file","timestamp":"2026-12-06T05:30:01.123Z"}'),
}


def _naive_unwrap(envelope: str | None) -> Callable[[bytes], bytes] | None:
    """The line out of its envelope as one would write it first: split after the syslog
    tag's ": ", or json.loads and the field."""
    if envelope == "syslog":
        return lambda v: v.split(b": ", 1)[1]
    if envelope == "json":
        return lambda v: json.loads(v)["message"].encode()
    return None


class NaivePipeline:
    """The reference: per record, parse (json.loads / a regex), count in a dict keyed by
    (window, scope, code) for the four default scope levels, and update a River
    ``stats.EWMean`` of the record's error indicator for its service. ``envelope``: each
    record's line is first taken out of it (``ENVELOPES``)."""

    def __init__(self, fmt: str, envelope: str | None = None) -> None:
        fields, unwrap = _naive_fields(fmt), _naive_unwrap(envelope)
        self.fields = fields if unwrap is None else lambda v: fields(unwrap(v))
        self.counts: defaultdict[tuple[int, tuple[str, ...], int], int] = defaultdict(int)
        self.means: dict[str, Any] = {}
        self.records = 0

    def add(self, values: Sequence[bytes]) -> None:
        fields, counts, means = self.fields, self.counts, self.means
        for v in values:
            ts, status, service, route, app = fields(v)
            window = ts // WINDOW_MS * WINDOW_MS
            counts[(window, (), status)] += 1
            if service:
                counts[(window, (service,), status)] += 1
                if route:
                    counts[(window, (service, route), status)] += 1
            if app:
                counts[(window, (app,), status)] += 1
            mean = means.get(service)
            if mean is None:
                mean = means[service] = stats.EWMean(fading_factor=0.05)
            mean.update(1.0 if status >= 500 else 0.0)
        self.records += len(values)


# -- timing and output ---------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    cpu_s: float
    wall_s: float


def timed(fn: Callable[[], object]) -> Timing:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return Timing(time.process_time() - c0, time.perf_counter() - w0)


def best_of(fn: Callable[[], object], repeat: int) -> Timing:
    """Fastest of ``repeat`` runs by CPU time (the least disturbed by other processes)."""
    runs = [timed(fn) for _ in range(repeat)]
    return min(runs, key=lambda t: t.cpu_s)


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def batches_of(values: Sequence[bytes], size: int) -> Iterator[Sequence[bytes]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def machine() -> str:
    import platform

    return (f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
