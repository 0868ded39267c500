"""The broker's JVM process: which ``java`` and options, free loopback ports, a child
that dies with its parent, and the tails of its logs."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from statuswatch.errors import BrokerHarnessError

#: Every port of the broker is on loopback.
HOST = "127.0.0.1"

JVM_OPTIONS = (
    "-Xms128m",
    "-Xmx512m",
    # A test broker on a small shared machine: the client compiler alone and a
    # serial GC leave the CPUs to the tests and start about a second faster.
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    # No /tmp/hsperfdata_* file per broker.
    "-XX:-UsePerfData",
    "-Djava.awt.headless=true",
)

#: What Kafka's own ``kafka-server-start.sh`` gives a broker (heap and performance
#: options): for measurements, where the broker's CPU per record is part of a figure.
KAFKA_SCRIPT_JVM_OPTIONS = (
    "-Xms1g",
    "-Xmx1g",
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:-UsePerfData",
    "-Djava.awt.headless=true",
)


def find_java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise BrokerHarnessError("cannot start Kafka: java is not on PATH (and JAVA_HOME unset)")
    return java


def free_ports(count: int) -> list[int]:
    # All sockets stay bound until every port is picked, so the ports differ.
    # The kernel may hand a port to someone else before the broker binds it;
    # on loopback with ephemeral ports that race is rare enough for tests.
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def tail_text(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def tail_file(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 256 * 1024))
            data = fh.read()
    except OSError:
        return ""
    # Java stack frames would push the one line that says what went wrong
    # ("Caused by: ... Address already in use") out of a short tail.
    kept = [
        line
        for line in data.decode("utf-8", "replace").splitlines()
        if not line.startswith(("\tat ", "\t... "))
    ]
    return "\n".join(kept[-lines:])


def run_to_end(cmd: list[str], cwd: Path, timeout: float, failure: str) -> None:
    """Run ``cmd`` to its end, its output captured; ``BrokerHarnessError`` starting with
    ``failure`` if it cannot run, times out or exits non-zero (with its output's tail)."""
    try:
        done = subprocess.run(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerHarnessError(f"{failure}: {exc}") from exc
    if done.returncode != 0:
        raise BrokerHarnessError(
            f"{failure} (exit {done.returncode}):\n" + tail_text(done.stdout + done.stderr, 40)
        )


_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> Callable[[], None]:
    def preexec() -> None:
        # Linux: the kernel SIGKILLs the broker when the process that forked it
        # dies, even by SIGKILL, where atexit never runs.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec

