"""Helpers shared by the integration tests: ports, scraping /metrics, waiting, running
``statuswatch`` as a subprocess."""

from __future__ import annotations

import asyncio
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from statuswatch.core.columns import NO_RESPONSE, code_label
from statuswatch.errors import BrokerHarnessError
from statuswatch.localbroker import LocalKafka
from statuswatch.localbroker.jars import cache_root


def running(broker: LocalKafka, what: str, timeout: float = 300) -> Iterator[LocalKafka]:
    """Start ``broker`` for a fixture, failing (never skipping) if it cannot start;
    close it when the fixture ends."""
    try:
        broker.start(timeout=timeout)
    except BrokerHarnessError as exc:
        broker.close()
        pytest.fail(f"{what} did not start:\n{exc}", pytrace=False)
    try:
        yield broker
    finally:
        broker.close()


def installed(program: str, package: str) -> str:
    """The path of ``program``; fails (never skips) naming the Debian ``package`` that
    ``.ci/run`` installs for it."""
    # daemons live in sbin, which is not on every user's PATH
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    path = shutil.which(program, path=search)
    if path is None:
        pytest.fail(f"{program} is not installed (Debian package {package!r}; .ci/run "
                    "installs it)", pytrace=False)
    return path


@dataclass(frozen=True)
class UnpackedProgram:
    """A program unpacked from its Debian packages rather than installed."""

    command: list[str]
    env: dict[str, str]
    version: str


def unpacked_syslog_ng() -> UnpackedProgram:
    """syslog-ng with its Kafka destination, as ``.ci/run`` unpacks it into
    ``$STATUSWATCH_CACHE/syslog-ng`` (else ``~/.cache/statuswatch/syslog-ng``): Debian's
    syslog-ng packages conflict with rsyslog's, so both cannot be installed. Fails
    (never skips) when it is not there."""
    root = cache_root() / "syslog-ng"
    program = root / "usr" / "sbin" / "syslog-ng"
    modules = sorted((root / "usr" / "lib" / "syslog-ng").glob("*/libkafka.so"))
    if not program.exists() or not modules:
        pytest.fail(f"syslog-ng with its Kafka destination is not unpacked in {root} "
                    "(.ci/run unpacks Debian's syslog-ng-core and syslog-ng-mod-rdkafka "
                    "there)", pytrace=False)
    module_dir = modules[-1].parent
    return UnpackedProgram(
        command=[str(program), f"--module-path={module_dir}"],
        # the binary looks for its own library in /usr/lib/syslog-ng
        env={"LD_LIBRARY_PATH": str(module_dir.parent)},
        version=module_dir.name,
    )


def free_port() -> int:
    """A loopback port free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> tuple[int, str]:
    """(status, body) of ``GET http://127.0.0.1:port/path``; (0, error) if unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def scrape(port: int) -> str:
    """The /metrics body; ``OSError`` while nothing listens yet."""
    code, body = get(port, "/metrics")
    if code == 0:
        raise ConnectionError(body)
    assert code == 200, f"/metrics answered {code}: {body[:200]}"
    return body


def sample(body: str, name: str) -> float | None:
    """The value of the unlabelled sample ``name`` in a /metrics body."""
    for line in body.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


def metric(port: int, name: str) -> float | None:
    """The unlabelled sample ``name`` scraped from ``port``; None if unreachable."""
    code, body = get(port, "/metrics")
    return sample(body, name) if code == 200 else None


def records_read_once(port: int) -> float | None:
    """``statuswatch_records_total`` less the re-reads (Kafka delivers at least once),
    from one scrape; None if unreachable."""
    code, body = get(port, "/metrics")
    if code != 200:
        return None
    read, reread = sample(body, "statuswatch_records_total"), sample(
        body, "statuswatch_records_reread_total")
    return None if read is None or reread is None else read - reread


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str | Callable[[], str]
) -> Any:
    """The first truthy ``predicate()``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout}s waiting for "
                f"{what if isinstance(what, str) else what()}")


async def eventually(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """``wait_for`` for a test on the event loop: the first truthy ``predicate()``, run in
    a thread so that the loop goes on; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        await asyncio.sleep(0.25)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def simulate_into(bootstrap: str, topic: str, *args: str) -> None:
    """``statuswatch simulate --kafka bootstrap --topic topic *args``; fail with its stderr
    if it fails."""
    produced = subprocess.run(
        [sys.executable, "-m", "statuswatch", "simulate", "--kafka", bootstrap,
         "--topic", topic, *args],
        capture_output=True, timeout=180, check=False,
    )
    assert produced.returncode == 0, produced.stderr.decode()


def start_run(
    config: Path, stderr: int | IO[bytes] = subprocess.PIPE, command: str = "run",
    env: dict[str, str] | None = None, stdout: int | None = None,
) -> subprocess.Popen[bytes]:
    """``statuswatch run --config config`` (or another ``command``: ``aggregate``) as a
    user runs it; its log (stderr) kept for ``stop_run`` unless it goes to ``stderr``."""
    return subprocess.Popen(
        [sys.executable, "-m", "statuswatch", command, "--config", str(config)],
        stdout=stdout, stderr=stderr, env=env,
    )


@contextmanager
def statuswatch_run(
    config: Path, env: dict[str, str] | None = None, log: Path | None = None,
    command: str = "run",
) -> Iterator[subprocess.Popen[bytes]]:
    """``start_run`` with its log in the file ``log`` (else dropped), stopped (SIGTERM,
    then kill) on exit if it still runs."""
    with ExitStack() as stack:
        stderr = stack.enter_context(log.open("wb")) if log is not None else subprocess.DEVNULL
        proc = start_run(config, stderr, command, env, stdout=subprocess.DEVNULL)
        try:
            yield proc
        finally:
            terminate(proc)


@contextmanager
def serving(
    command: list[str], port: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A server (``command``, in the foreground, writing to ``log``; ``env``: added to
    the environment) until it accepts TCP connections on 127.0.0.1:``port``; stopped on
    exit (SIGTERM, then kill after 30 s). Fails with its log if it exits or does not
    listen within 30 s."""
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                env=None if env is None else {**os.environ, **env})
    try:
        def listening() -> bool:
            assert proc.poll() is None, f"{command[0]} exited:\n{log.read_text()}"
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, 30, lambda: f"{command[0]} on port {port}:\n{log.read_text()}")
        yield proc
    finally:
        terminate(proc)


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """Stop ``proc`` if it still runs: SIGTERM, then kill after 30 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def apache_run_config(
    tmp_path: Path, broker: LocalKafka, topic: str, port: int, extra: str = "", *,
    name: str | None = None, envelope: str = "none",
) -> Path:
    """A ``statuswatch run`` config reading ``topic`` as the combined format (the Apache
    log); ``name`` (default the topic) names its file, its consumer group and its alerts
    file."""
    name = topic if name is None else name
    config = tmp_path / f"{name}.yaml"
    config.write_text(
        f"kafka:\n  bootstrap_servers: {broker.bootstrap_servers}\n  topic: {topic}\n"
        f"  group_id: sw-{name}\n"
        f"decode:\n  format: combined\n  envelope: {envelope}\n"
        # hour windows: 3.5 days of sparse traffic close in ~84 evaluations, not 30,000
        "window:\n  size_seconds: 3600\n"
        f"alerts:\n  output: {tmp_path / (name + '.alerts.jsonl')}\n"
        f"metrics:\n  port: {port}\n" + extra
    )
    return config


def code_counts(body: str) -> dict[int, int]:
    """Requests per code on a ``/metrics`` body."""
    return {
        int(m[1]): int(float(m[2]))
        for m in re.finditer(r'^statuswatch_requests_total\{code="(\d+)"\} (\S+)$', body, re.M)
    }


def stop_run(proc: subprocess.Popen[bytes]) -> bytes:
    """Stop ``proc`` as a user does (SIGTERM) and wait for it; kill it and raise if it has
    not ended after 30 s. Its stderr, if ``start_run`` kept it."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return stderr or b""


def fleet_wide(alerts_path: Path, code: int) -> list[dict[str, Any]]:
    """The fleet-wide alerts on ``code`` in the JSON-lines alert file so far."""
    if not alerts_path.exists():
        return []
    alerts = [json.loads(line) for line in alerts_path.read_text().splitlines()]
    return [a for a in alerts if a["code"] == code and a["scope"] == {}]


@contextmanager
def syslog_receiver() -> Iterator[tuple[int, list[bytes]]]:
    """A UDP syslog server on 127.0.0.1: its port, and the datagrams it got (read as they
    come, so a burst never overflows the socket's buffer)."""
    got: list[bytes] = []
    stop = threading.Event()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.1)

        def drain() -> None:
            while not stop.is_set():
                with suppress(TimeoutError):
                    got.append(sock.recv(65536))

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            yield sock.getsockname()[1], got
        finally:
            stop.set()
            reader.join()


#: path -> (status, how many requests): the outcomes a test asks a proxy for
RequestMix = dict[str, tuple[int, int]]


@contextmanager
def answering(mix: RequestMix) -> Iterator[int]:
    """An HTTP server on 127.0.0.1 answering each path of ``mix`` with its status (its
    port yielded): the backend behind a proxy under test."""
    statuses = {path: status for path, (status, _) in mix.items()}

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(statuses[self.path])
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass  # the proxy's log is the one under test

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def ask(
    port: int, mix: RequestMix, headers: Callable[[str], dict[str, str]] = lambda path: {},
    silent: Callable[[str], bool] = lambda path: False,
) -> Counter[int]:
    """Send every request of ``mix`` to 127.0.0.1:``port``, each on its own connection
    with ``headers(path)``; the outcomes seen (``NO_RESPONSE`` where none came). Where
    ``silent(path)`` the proxy is expected to send nothing at all, not even a close, so
    the client waits only a second."""
    seen: Counter[int] = Counter()
    for path, (_, times) in mix.items():
        for _ in range(times):
            conn = http.client.HTTPConnection("127.0.0.1", port,
                                              timeout=1 if silent(path) else 10)
            try:
                conn.request("GET", path, headers=headers(path))
                response = conn.getresponse()
                response.read()
                seen[response.status] += 1
            except (http.client.RemoteDisconnected, ConnectionResetError, TimeoutError):
                seen[NO_RESPONSE] += 1
            finally:
                conn.close()
    return seen


def mix_counts(mix: RequestMix) -> Counter[int]:
    """How many requests of ``mix`` should end in each status."""
    out: Counter[int] = Counter()
    for status, n in mix.values():
        out[status] += n
    return out


def mix_routes(mix: RequestMix) -> Counter[str]:
    """How many requests of ``mix`` go to each route (the first path segment)."""
    out: Counter[str] = Counter()
    for path, (_, times) in mix.items():
        out["/" + path.split("/")[1]] += times
    return out


def assert_backtest_counts(log: Path, seen: Counter[int], *options: str) -> None:
    """``statuswatch backtest`` of ``log`` with ``options`` (a format, a config) succeeds
    and counts every line, none invalid, with exactly the outcomes ``seen``."""
    summary = log.with_name(log.name + ".summary.json")
    result = subprocess.run(
        [sys.executable, "-m", "statuswatch", "backtest", *options, "--summary-out",
         str(summary), str(log)],
        capture_output=True, check=False, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    counted = json.loads(summary.read_text())
    assert counted["invalid"] == 0 and counted["records"] == sum(seen.values()), counted
    assert counted["codes"] == {code_label(code): k for code, k in sorted(seen.items())}

