"""The broker process: its configuration (KRaft, extra listeners with TLS and SASL), start,
stop, crash and freeze, and Kafka's own tools from the cached jars."""

from __future__ import annotations

import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from statuswatch.errors import BrokerHarnessError
from statuswatch.localbroker.admin import acreate_topic, fetch_metadata
from statuswatch.localbroker.jars import DEFAULT_KAFKA_VERSION, ensure_kafka_jars
from statuswatch.localbroker.process import (
    HOST,
    JVM_OPTIONS,
    die_with_parent,
    find_java,
    free_ports,
    run_to_end,
    tail_file,
)

NODE_ID = 1

_LOG4J = """\
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log_file}
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
# One INFO line each for "started" and "shut down", so a log shows the broker's life.
log4j.logger.kafka.server.KafkaRaftServer=INFO
"""

# Small internal topics: the defaults (50 partitions each) make the first
# consumer group or transaction on a fresh broker take seconds.
# A short broker session: after a kill() the restarted broker is refused
# (DUPLICATE_BROKER_REGISTRATION) until its previous session expires, and it
# retries with exponential backoff: with the default 9 s a restart after a
# kill took ~15 s, with 2.5 s it takes ~5 s. The price: a pause() longer than
# ~2 s fences the broker, which unfences itself within a second of resume().
_SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={node_id}@{host}:{controller_port}
listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}
advertised.listeners=PLAINTEXT://{host}:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={log_dirs}
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=2500
"""


def _new_cluster_id() -> str:
    """A Kafka ``Uuid`` string: 16 random bytes, URL-safe base64, unpadded.

    >>> len(_new_cluster_id())
    22
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cid.startswith("-"):  # would read as an option on the command line
            return cid


def _properties_value(text: str) -> str:
    r"""``text`` as one Java properties value: newlines and backslashes escaped.

    >>> _properties_value("a\nb")
    'a\\nb'
    """
    return text.strip().replace("\\", "\\\\").replace("\n", "\\n")


class LocalKafka:
    """A single-node KRaft broker on 127.0.0.1, for tests and demos.

    Ports are picked at construction, so ``bootstrap_servers`` is known before
    ``start()``, and they stay the same across ``restart()``. ``data_dir``
    defaults to a temporary directory that ``close()`` removes.
    """

    def __init__(
        self,
        *,
        version: str = DEFAULT_KAFKA_VERSION,
        cache_dir: Path | None = None,
        data_dir: Path | None = None,
        port: int | None = None,
        controller_port: int | None = None,
        extra_properties: dict[str, str] | None = None,
        listeners: Mapping[str, str] | None = None,
        tls_cert_chain: Path | None = None,
        tls_key: Path | None = None,
        scram_users: Sequence[tuple[str, str, str]] = (),
        jvm_options: Sequence[str] = JVM_OPTIONS,
    ) -> None:
        """``listeners`` adds listeners beside PLAINTEXT (which the harness itself uses):
        name -> security protocol (``SSL``, ``SASL_SSL``, ``SASL_PLAINTEXT``), each on a
        free port (``listener_port(name)``). ``tls_cert_chain`` and ``tls_key`` are the
        broker's PEM certificate chain and unencrypted PKCS#8 key for the TLS listeners.
        ``scram_users`` are ``(mechanism, user, password)`` credentials written into the
        metadata at format time (``SCRAM-SHA-512`` or ``SCRAM-SHA-256``); the SASL
        listeners then accept those mechanisms.
        ``jvm_options`` are the broker JVM's options (``KAFKA_SCRIPT_JVM_OPTIONS``: those of
        Kafka's start script, for measurements).
        """
        self.version = version
        self._cache_dir = cache_dir
        self._owns_data_dir = data_dir is None
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix="statuswatch-kafka-"))
            if data_dir is None
            else data_dir.absolute()
        )
        extra_listeners = dict(listeners or {})
        for name, protocol in extra_listeners.items():
            if name in ("PLAINTEXT", "CONTROLLER") or not name.isidentifier():
                raise BrokerHarnessError(f"bad listener name {name!r}")
            if protocol not in ("SSL", "SASL_SSL", "SASL_PLAINTEXT", "PLAINTEXT"):
                raise BrokerHarnessError(f"bad security protocol {protocol!r} for {name}")
        picked = free_ports(2 + len(extra_listeners))
        self.port = port if port is not None else picked[0]
        self.controller_port = controller_port if controller_port is not None else picked[1]
        self.listeners = extra_listeners
        self.listener_ports = dict(zip(extra_listeners, picked[2:], strict=True))
        self._tls = (tls_cert_chain, tls_key)
        self._scram_users = list(scram_users)
        self._extra = dict(extra_properties or {})
        self.jvm_options = tuple(jvm_options)
        self._proc: subprocess.Popen[bytes] | None = None
        self._atexit_registered = False

    # --- paths and state

    @property
    def bootstrap_servers(self) -> str:
        """``"127.0.0.1:PORT"``."""
        return f"{HOST}:{self.port}"

    def listener_port(self, name: str) -> int:
        """The port of the extra listener ``name``."""
        return self.listener_ports[name]

    def listener_bootstrap(self, name: str) -> str:
        """``"127.0.0.1:PORT"`` of the extra listener ``name``."""
        return f"{HOST}:{self.listener_ports[name]}"

    @property
    def log_file(self) -> Path:
        """The broker's log4j log (WARN and above)."""
        return self.data_dir / "broker.log"

    @property
    def console_file(self) -> Path:
        """The JVM's stdout and stderr (crashes, JVM errors)."""
        return self.data_dir / "console.log"

    @property
    def running(self) -> bool:
        """Whether the broker process is alive (it may be paused)."""
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the broker log and of the JVM console."""
        parts = []
        for path in (self.log_file, self.console_file):
            text = tail_file(path, lines)
            if text:
                parts.append(f"--- {path.name} ---\n{text}")
        return "\n".join(parts) or "(the broker wrote no log)"

    # --- lifecycle

    def start(self, timeout: float = 60.0) -> None:
        """Fetch the jars if needed, start the broker, wait until it serves metadata requests."""
        if self.running:
            raise BrokerHarnessError("the local Kafka broker is already running")
        deadline = time.monotonic() + timeout
        libs = ensure_kafka_jars(self.version, self._cache_dir)
        java = find_java()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        server_props = self._write_config()
        classpath = str(libs / "*")
        jvm = [java, *self.jvm_options, f"-Dlog4j.configuration={self._log4j_file.as_uri()}"]
        if not (self._kraft_dir / "meta.properties").exists():
            self._format_storage(jvm, classpath, server_props, deadline)

        with self.console_file.open("ab") as console:
            try:
                self._proc = subprocess.Popen(
                    [*jvm, "-cp", classpath, "kafka.Kafka", str(server_props)],
                    cwd=self.data_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=console,
                    stderr=subprocess.STDOUT,
                    # Own session and process group: signals go to the whole
                    # group, and a Ctrl-C in the terminal does not reach it.
                    start_new_session=True,
                    # PDEATHSIG fires when the forking *thread* exits, so only
                    # use it from the main thread, which lives as long as we do.
                    preexec_fn=(  # noqa: PLW1509 - only prctl, no locks taken
                        die_with_parent(os.getpid())
                        if threading.current_thread() is threading.main_thread()
                        else None
                    ),
                )
            except OSError as exc:
                raise BrokerHarnessError(f"cannot run {java}: {exc.strerror}") from exc
        if not self._atexit_registered:
            atexit.register(self._stop_at_exit)
            self._atexit_registered = True

        while True:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise BrokerHarnessError(
                    f"the Kafka broker exited with code {code} while starting\n{self.log_tail()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tail = self.log_tail()
                self.kill()
                raise BrokerHarnessError(
                    f"the Kafka broker did not become ready within {timeout:g}s\n{tail}"
                )
            meta = fetch_metadata(self.port, [], timeout=min(2.0, remaining))
            # Listed in the metadata means registered and unfenced: topics can
            # be created and produced to.
            if meta is not None and NODE_ID in meta.brokers:
                return
            time.sleep(0.1)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL after ``timeout`` seconds."""
        proc = self._proc
        if proc is None:
            return
        self._signal(signal.SIGCONT)  # a stopped JVM cannot act on SIGTERM
        self._signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            proc.wait()
        self._proc = None

    def kill(self) -> None:
        """SIGKILL the broker: a crash, with no clean shutdown."""
        proc = self._proc
        if proc is None:
            return
        self._signal(signal.SIGKILL)
        proc.wait()
        self._proc = None

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open, nothing is answered."""
        self._require_running()
        self._signal(signal.SIGSTOP)
        # SIGSTOP is asynchronous: wait until the kernel shows the JVM stopped, so
        # a caller's next request really meets a frozen broker.
        assert self._proc is not None
        stat = Path(f"/proc/{self._proc.pid}/stat")
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                state = stat.read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                return
            if state in ("T", "t"):
                return
            time.sleep(0.01)

    def resume(self) -> None:
        """Unfreeze a paused broker (SIGCONT)."""
        self._require_running()
        self._signal(signal.SIGCONT)

    def restart(self, timeout: float = 60.0) -> None:
        """Stop cleanly, then start again with the same ports and data."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        """Stop the broker and remove the data dir if this object created it."""
        self.stop()
        if self._atexit_registered:
            atexit.unregister(self._stop_at_exit)
            self._atexit_registered = False
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        if not self.running:
            try:
                self.start()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def segment_files(self, topic: str, partition: int = 0) -> list[Path]:
        """The log segment files of one partition (``log.dirs``), oldest first; tests
        damage them to see how a consumer meets a corrupt batch."""
        return sorted((self._kraft_dir / f"{topic}-{partition}").glob("*.log"))

    def tool_command(self, main_class: str, *args: str) -> list[str]:
        """The command line that runs one of Apache Kafka's own tools from the cached jars
        under the machine's ``java``, e.g. ``tool_command("kafka.tools.ConsoleProducer",
        "--bootstrap-server", broker.bootstrap_servers, "--topic", "t")``."""
        libs = ensure_kafka_jars(self.version, self._cache_dir)
        return [find_java(), *JVM_OPTIONS, "-cp", str(libs / "*"), main_class, *args]

    # --- topics

    def create_topic(
        self, name: str, partitions: int = 1, *, exist_ok: bool = False, timeout: float = 30.0
    ) -> None:
        """Create a topic and wait until every partition has a leader."""
        # A thread of its own, so this works whether or not the caller's thread
        # runs an event loop.
        with concurrent.futures.ThreadPoolExecutor(1, "localbroker-topic") as pool:
            pool.submit(
                lambda: asyncio.run(
                    self.acreate_topic(name, partitions, exist_ok=exist_ok, timeout=timeout)
                )
            ).result()

    async def acreate_topic(
        self, name: str, partitions: int = 1, *, exist_ok: bool = False, timeout: float = 30.0
    ) -> None:
        """Create a topic and wait until every partition has a leader."""
        await acreate_topic(self.port, name, partitions, exist_ok=exist_ok, timeout=timeout)

    # --- internals

    @property
    def _kraft_dir(self) -> Path:
        return self.data_dir / "kraft"

    @property
    def _log4j_file(self) -> Path:
        return self.data_dir / "log4j.properties"

    def _write_config(self) -> Path:
        props = _SERVER_PROPERTIES.format(
            node_id=NODE_ID,
            host=HOST,
            port=self.port,
            controller_port=self.controller_port,
            log_dirs=self._kraft_dir,
        )
        props += self._listener_properties()
        props += "".join(f"{key}={value}\n" for key, value in self._extra.items())
        path = self.data_dir / "server.properties"
        path.write_text(props, encoding="utf-8")
        self._log4j_file.write_text(_LOG4J.format(log_file=self.log_file), encoding="utf-8")
        return path

    def _listener_properties(self) -> str:
        """Properties of the extra listeners; later lines override the template's."""
        if not self.listeners:
            return ""
        extra = [f"{name}://{HOST}:{port}" for name, port in self.listener_ports.items()]
        lines = [
            f"listeners=PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port},"
            + ",".join(extra),
            f"advertised.listeners=PLAINTEXT://{HOST}:{self.port}," + ",".join(extra),
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
            + ",".join(f"{name}:{protocol}" for name, protocol in self.listeners.items()),
        ]
        chain, key = self._tls
        if chain is not None and key is not None:
            # PEM inline (Kafka >= 2.7): a properties value's \n escapes become newlines.
            lines += [
                "ssl.keystore.type=PEM",
                "ssl.keystore.certificate.chain=" + _properties_value(chain.read_text()),
                "ssl.keystore.key=" + _properties_value(key.read_text()),
            ]
        mechanisms = sorted({mech for mech, _, _ in self._scram_users})
        if mechanisms:
            lines.append("sasl.enabled.mechanisms=" + ",".join(mechanisms))
            for name, protocol in self.listeners.items():
                if protocol.startswith("SASL_"):
                    for mech in mechanisms:
                        lines.append(
                            f"listener.name.{name.lower()}.{mech.lower()}.sasl.jaas.config="
                            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                        )
        return "".join(line + "\n" for line in lines)

    def _format_storage(
        self, jvm: list[str], classpath: str, server_props: Path, deadline: float
    ) -> None:
        # Kafka 3.9 StorageTool: `format --config FILE --cluster-id ID`; with a
        # static controller.quorum.voters no --standalone/--initial-controllers.
        cmd = [
            *jvm,
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "--config",
            str(server_props),
            "--cluster-id",
            _new_cluster_id(),
            "--ignore-formatted",
        ]
        for mech, user, password in self._scram_users:
            cmd += ["--add-scram", f"{mech}=[name={user},password={password}]"]
        run_to_end(
            cmd, self.data_dir, max(1.0, deadline - time.monotonic()),
            "kafka StorageTool format failed",
        )

    def _signal(self, sig: signal.Signals) -> None:
        proc = self._proc
        # poll() reaps an exited broker; until it is reaped its pid (and so its
        # process group id) cannot be reused, so killpg cannot hit a stranger.
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    def _require_running(self) -> None:
        if not self.running:
            raise BrokerHarnessError("the local Kafka broker is not running")

    def _stop_at_exit(self) -> None:
        self.stop(timeout=10.0)
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
