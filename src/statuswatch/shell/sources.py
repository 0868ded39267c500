"""Where raw records come from: Kafka, a file or stdin, or a list (tests).

Every source yields ``RawBatch`` objects: the raw values of one partition with
their offsets, so any log line about a record can name topic, partition, offset.
"""

from __future__ import annotations

import asyncio
import gzip
import importlib
import io
import logging
import operator
import os
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import IO, Any, Protocol

import numpy as np

from statuswatch.config import KafkaConfig, KafkaConnection, TlsConfig
from statuswatch.core.columns import I64
from statuswatch.errors import SourceError, StatuswatchError, UnreadablePartitionError

log = logging.getLogger(__name__)

#: Longest a consumer start (bootstrap, TLS and SASL handshakes) may take.
START_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class RawBatch:
    topic: str
    partition: int
    offsets: I64
    values: list[bytes]

    def __len__(self) -> int:
        return len(self.values)


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _batches_of_lines(stream: _Readable, name: str, batch_size: int) -> Iterator[RawBatch]:
    """Lines (without their trailing CR/LF) in batches of about ``batch_size * 512`` bytes.

    Reads blocks and splits them in C (one ``split`` per block instead of a
    Python call per line); the last, unterminated line of a block waits for the next.
    """
    offset = 0
    carry = b""
    block_size = batch_size * 512
    while block_size:
        block = stream.read(block_size)
        if not block:
            if carry:
                values = [carry.rstrip(b"\r")]
                yield RawBatch(name, 0, np.array([offset], dtype=np.int64), values)
            return
        if carry:
            block = carry + block
        values = block.split(b"\n")
        carry = values.pop()
        if not values:
            continue  # a line longer than the block: read on
        if b"\r" in block:
            values = [v.rstrip(b"\r") for v in values]
        offsets = np.arange(offset, offset + len(values), dtype=np.int64)
        offset += len(values)
        yield RawBatch(name, 0, offsets, values)


#: The first two bytes of every gzip member (RFC 1952).
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(slots=True)
class ReadPosition:
    """How far ``read_file_batches`` has read its file: bytes of the file as stored
    (compressed, for gzip) and the file's size (None for a pipe)."""

    read_bytes: int = 0
    total_bytes: int | None = None


def _tracked(
    batches: Iterator[RawBatch], file: IO[bytes], position: ReadPosition | None
) -> Iterator[RawBatch]:
    if position is None:
        yield from batches
        return
    try:
        stat = os.fstat(file.fileno())
        position.total_bytes = stat.st_size if S_ISREG(stat.st_mode) else None
    except (OSError, ValueError, io.UnsupportedOperation):
        position.total_bytes = None
    for batch in batches:
        if position.total_bytes is not None:
            position.read_bytes = file.tell()
        yield batch
    if position.total_bytes is not None:
        position.read_bytes = file.tell()


def read_file_batches(
    path: str, batch_size: int = 8192, position: ReadPosition | None = None
) -> Iterator[RawBatch]:
    """Lines of a file (``-`` for stdin) as batches; a line's offset is its number.

    A gzip file (rotated logs usually are) is read through ``gzip``, recognised by
    its magic bytes, whatever its name. ``position`` follows the bytes read.
    """
    if path == "-":
        stdin = sys.stdin.buffer
        yield from _tracked(_batches_of_lines(stdin, "stdin", batch_size), stdin, position)
        return
    try:
        with Path(path).open("rb", buffering=io.DEFAULT_BUFFER_SIZE * 16) as raw:
            compressed = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
            yield from _tracked(_batches_of_lines(stream, path, batch_size), raw, position)
    except (OSError, EOFError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SourceError(f"cannot read {path}: {reason}") from exc


class ListSource:
    """A finite source over in-memory values, for tests and examples.

    >>> src = ListSource([[b"a", b"b"], [b"c"]], topic="t")
    >>> [b.offsets.tolist() for b in src.batches()]
    [[0, 1], [2]]
    """

    def __init__(self, batches: Iterable[Sequence[bytes]], topic: str = "list") -> None:
        self._batches = [list(b) for b in batches]
        self.topic = topic

    def batches(self) -> Iterator[RawBatch]:
        offset = 0
        for values in self._batches:
            offsets = np.arange(offset, offset + len(values), dtype=np.int64)
            offset += len(values)
            yield RawBatch(self.topic, 0, offsets, values)

    async def __aiter__(self) -> AsyncIterator[RawBatch]:
        for batch in self.batches():
            yield batch
            await asyncio.sleep(0)


def client_tls_context(
    tls: TlsConfig | None, what: str, error: type[StatuswatchError] = SourceError
) -> ssl.SSLContext:
    """A client TLS context from ``tls`` (system CAs when no ``ca_file``); ``error``
    (naming ``what``) if the files do not load."""
    from aiokafka.helpers import create_ssl_context

    tls = tls or TlsConfig()
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=tls.ca_file,
            certfile=tls.cert_file,
            keyfile=tls.key_file,
            password=tls.key_password_value,  # a callable: read only when needed
        )
    except (OSError, ssl.SSLError) as exc:
        # The messages name files and OpenSSL reasons, never the key password.
        raise error(f"cannot set up TLS for {what}: {exc}") from exc
    context.check_hostname = tls.check_hostname
    return context


def ssl_context(cfg: KafkaConnection) -> ssl.SSLContext:
    """The client TLS context of ``cfg.tls`` (system CAs when no ``ca_file``)."""
    return client_tls_context(cfg.tls, "Kafka")


def security_kwargs(cfg: KafkaConnection) -> dict[str, Any]:
    """The aiokafka client arguments for ``cfg.security_protocol``, ``tls`` and ``sasl``.

    >>> security_kwargs(KafkaConfig())
    {'security_protocol': 'PLAINTEXT'}
    """
    kwargs: dict[str, Any] = {"security_protocol": cfg.security_protocol}
    if cfg.security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = ssl_context(cfg)
    if cfg.sasl is not None:
        try:
            password = cfg.sasl.password_value()
        except OSError as exc:
            raise SourceError(
                f"cannot read kafka.sasl.password_file {cfg.sasl.password_file}: {exc.strerror}"
            ) from exc
        kwargs.update(
            sasl_mechanism=cfg.sasl.mechanism,
            sasl_plain_username=cfg.sasl.username,
            sasl_plain_password=password,
        )
    return kwargs


async def unresolved_hosts(bootstrap_servers: str) -> list[tuple[str, str]]:
    """The bootstrap hosts whose names do not resolve, each with the resolver's reason.

    >>> asyncio.run(unresolved_hosts("127.0.0.1:9092"))
    []
    """
    loop = asyncio.get_running_loop()
    out = []
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        host = host.strip("[]")
        try:
            await loop.getaddrinfo(host, port or None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            out.append((host, exc.strerror or str(exc)))
        except (OSError, UnicodeError):
            continue  # not a resolution failure: aiokafka's own error says more
    return out


async def diagnose_connection(
    cfg: KafkaConfig, security: dict[str, Any], timeout: float = 10.0
) -> str:
    """Why one connection to the first bootstrap server fails ("" if it works).

    aiokafka reports only "Unable to bootstrap" (and logs the cause); this
    names the TLS or SASL reason (``certificate verify failed``,
    ``SaslAuthenticationFailed``) for the error message. No secret is in it.
    """
    from aiokafka.conn import create_conn

    first = cfg.bootstrap_servers.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    try:
        conn = await asyncio.wait_for(
            create_conn(
                host.strip("[]"), int(port), client_id=cfg.client_id,
                request_timeout_ms=round(timeout * 1000), **security,
            ),
            timeout,
        )
    except ssl.SSLCertVerificationError as exc:
        return f"TLS certificate verification failed: {exc.verify_message}"
    except ssl.SSLError as exc:
        return f"TLS handshake failed: {exc.reason or exc}"
    except Exception as exc:  # noqa: BLE001 - a diagnosis: any failure is the answer
        return f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc)
    conn.close()
    return ""


#: What each reason asks of the operator.
UNREADABLE_HINTS = {
    "unsupported_codec": "install statuswatch with its dependencies "
                         "(aiokafka[lz4,snappy,zstd] brings the codecs)",
    "corrupt_batch": "the batch on the broker fails its CRC check; the producer or the "
                     "broker's disk wrote it damaged",
    "record_too_large": "raise kafka.max_partition_fetch_bytes above the largest batch",
}


def unreadable_reason(exc: BaseException) -> str | None:
    """The reason label (``metrics.UNREADABLE_REASONS``) of an aiokafka fetch error that
    retrying cannot heal; None for any other error.

    >>> from aiokafka.errors import UnsupportedCodecError, KafkaConnectionError
    >>> unreadable_reason(UnsupportedCodecError("no zstd")), unreadable_reason(
    ...     KafkaConnectionError())
    ('unsupported_codec', None)
    """
    from aiokafka import errors

    if isinstance(exc, errors.UnsupportedCodecError):
        return "unsupported_codec"
    if isinstance(exc, errors.CorruptRecordException):
        return "corrupt_batch"
    if isinstance(exc, errors.RecordTooLargeError):
        return "record_too_large"
    return None


def failing_partition(exc: BaseException) -> Any:
    """The ``TopicPartition`` whose records raised ``exc`` in ``getmany()``, or None.

    aiokafka does not attach it to the error: the innermost frame of the traceback
    that iterates one partition's records (a local ``tp``) names it.
    """
    from aiokafka import TopicPartition

    found = None
    tb = exc.__traceback__
    while tb is not None:
        tp = tb.tb_frame.f_locals.get("tp")
        if isinstance(tp, TopicPartition):
            found = tp
        tb = tb.tb_next
    if found is None:  # RecordTooLargeError carries it among its arguments
        found = next((a for a in exc.args if isinstance(a, TopicPartition)), None)
    return found


_OFFSET = operator.attrgetter("offset")
_VALUE = operator.attrgetter("value")


def aiokafka_has_c_extension() -> bool:
    """Whether aiokafka decodes record batches with its compiled (Cython) extension.

    Without it (``AIOKAFKA_NO_EXTENSIONS`` set, or a build without a C compiler)
    aiokafka parses every record in pure Python, several times slower.
    aiokafka >= 0.8 keeps the pure-Python classes next to the names it exports:
    the extension loaded when the exported class is not the Python one.
    """
    try:
        from aiokafka.record import default_records, memory_records
    except ImportError:
        return False
    py_batch = getattr(default_records, "_DefaultRecordBatchPy", None)
    py_memory = getattr(memory_records, "_MemoryRecordsPy", None)
    if py_batch is not None and py_memory is not None:
        return (
            getattr(default_records, "DefaultRecordBatch", py_batch) is not py_batch
            and getattr(memory_records, "MemoryRecords", py_memory) is not py_memory
        )
    try:  # another layout: the compiled module must at least import
        importlib.import_module("aiokafka.record._crecords")
    except ImportError:
        return False
    return True


def warn_if_no_c_extension() -> bool:
    """Log a loud warning if aiokafka runs without its C extension; return whether it has it."""
    if aiokafka_has_c_extension():
        return True
    log.warning(
        "!!! aiokafka is running WITHOUT its C extension (aiokafka.record._crecords): "
        "records are parsed in pure Python and consuming is several times slower. "
        "Unset AIOKAFKA_NO_EXTENSIONS or install a binary wheel of aiokafka. !!!"
    )
    return False


class KafkaSource:
    """An aiokafka consumer in a group, with manual commits only."""

    def __init__(
        self, cfg: KafkaConfig, isolation_level: str = "read_uncommitted"
    ) -> None:
        self.cfg = cfg
        #: ``read_committed`` for a topic written in transactions (partial windows)
        self.isolation_level = isolation_level
        self._consumer: Any = None
        self.assigned: set[int] = set()
        #: per partition, the offset after the last record poll() returned since assignment
        self._delivered: dict[int, int] = {}

    async def start(self, on_revoke: Any = None, on_assign: Any = None) -> None:
        from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener

        source = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                if on_revoke is not None:
                    await on_revoke({tp.partition for tp in revoked})
                source.assigned -= {tp.partition for tp in revoked}
                for tp in revoked:
                    source._delivered.pop(tp.partition, None)

            async def on_partitions_assigned(self, assigned: Any) -> None:
                source.assigned |= {tp.partition for tp in assigned}
                if on_assign is not None:
                    await on_assign({tp.partition for tp in assigned})
                log.info("assigned partitions %s", sorted(source.assigned))

        warn_if_no_c_extension()
        cfg = self.cfg
        security = security_kwargs(cfg)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=cfg.bootstrap_servers,
            group_id=cfg.group_id,
            client_id=cfg.client_id,
            enable_auto_commit=False,  # commits only after windows are processed
            auto_offset_reset=cfg.auto_offset_reset,
            max_partition_fetch_bytes=cfg.max_partition_fetch_bytes,
            session_timeout_ms=cfg.session_timeout_ms,
            isolation_level=self.isolation_level,
            **security,
        )
        try:
            await asyncio.wait_for(self._consumer.start(), START_TIMEOUT_S)
        except Exception as exc:  # aiokafka raises many types; all mean "cannot start"
            await self._consumer.stop()
            why = str(exc) or type(exc).__name__
            unresolved = await unresolved_hosts(cfg.bootstrap_servers)
            if unresolved:
                why = "; ".join(f"{host} does not resolve ({err})" for host, err in unresolved)
            elif cfg.security_protocol != "PLAINTEXT":
                why = await diagnose_connection(cfg, security) or why
            raise SourceError(
                f"cannot connect to Kafka at kafka.bootstrap_servers={cfg.bootstrap_servers}: {why}"
            ) from exc
        await self._require_topic()
        self._consumer.subscribe([cfg.topic], listener=Listener())

    async def _require_topic(self) -> None:
        """Fail at start-up on a topic the cluster does not have (or does not show this
        principal): subscribed, it would wait for partitions forever. Listing all
        topics never auto-creates one."""
        from aiokafka.errors import KafkaError

        try:
            topics = await asyncio.wait_for(self._consumer.topics(), START_TIMEOUT_S)
        except (KafkaError, TimeoutError) as exc:
            await self._consumer.stop()
            raise SourceError(
                f"kafka.bootstrap_servers {self.cfg.bootstrap_servers}: cannot list topics: "
                f"{exc!s:.200}"
            ) from exc
        if self.cfg.topic not in topics:
            await self._consumer.stop()
            self._consumer = None
            raise SourceError(
                f"kafka.topic {self.cfg.topic}: no such topic on {self.cfg.bootstrap_servers} "
                "(or this principal may not describe it)"
            )

    async def poll(self) -> list[RawBatch]:
        """The records fetched since the last poll, as one batch per partition.

        A partition whose records cannot be read (``unreadable_reason``) is paused, so
        the others go on, and ``UnreadablePartitionError`` names it; other errors propagate.
        """
        from aiokafka.errors import KafkaError

        try:
            records = await self._consumer.getmany(
                timeout_ms=self.cfg.fetch_timeout_ms, max_records=self.cfg.max_batch_records
            )
        except KafkaError as exc:
            unreadable = await self._unreadable(exc)
            if unreadable is None:
                raise
            raise unreadable from exc
        out = []
        for tp, msgs in records.items():
            if not msgs:
                continue
            first, last = msgs[0].offset, msgs[-1].offset
            if last - first + 1 == len(msgs):  # the usual case: no gaps (compaction, markers)
                offsets = np.arange(first, last + 1, dtype=np.int64)
            else:
                offsets = np.fromiter(map(_OFFSET, msgs), np.int64, len(msgs))
            values = list(map(_VALUE, msgs))
            if None in values:  # a tombstone: an empty (invalid) record
                values = [b"" if v is None else v for v in values]
            out.append(RawBatch(tp.topic, tp.partition, offsets, values))
            self._delivered[tp.partition] = last + 1
        return out

    async def _unreadable(self, exc: BaseException) -> UnreadablePartitionError | None:
        """Pause the partition ``exc`` cannot be healed on and describe it; None if it can."""
        reason = unreadable_reason(exc)
        if reason is None:
            return None
        tp = failing_partition(exc)
        if tp is None:
            assigned = list(self._consumer.assignment())
            if len(assigned) != 1:
                return None  # cannot tell which partition: reported as a failed poll
            tp = assigned[0]
        try:
            offset: int | None = await self._consumer.position(tp)
        except Exception:  # noqa: BLE001 - revoked meanwhile: the offset is only detail
            offset = None
        self._consumer.pause(tp)
        await self._rewind_others(tp)
        name, text = type(exc).__name__, str(exc)
        detail = text if name in text else f"{name}: {text}" if text else name
        return UnreadablePartitionError(reason, tp.topic, tp.partition, offset, detail)

    async def _rewind_others(self, failed: Any) -> None:
        """Seek the other partitions back to what poll() returned.

        ``getmany()`` drains partition after partition; when one raises, the records
        already drained from the others are lost with the exception, although their
        positions moved past them. Seeking back reads them again.
        """
        consumer = self._consumer
        for tp in list(consumer.assignment()):
            if tp == failed:
                continue
            try:
                position = await consumer.position(tp)
                delivered = self._delivered.get(tp.partition)
                if delivered is None:  # nothing returned since assignment: from the commit
                    delivered = await consumer.committed(tp)
                if delivered is None and self.cfg.auto_offset_reset == "earliest":
                    delivered = (await consumer.beginning_offsets([tp]))[tp]
                if delivered is not None and position > delivered:
                    log.info("re-reading topic=%s partition=%d from offset %d (was at %d)",
                             tp.topic, tp.partition, delivered, position)
                    consumer.seek(tp, delivered)
            except Exception as exc:  # noqa: BLE001 - revoked meanwhile: its next owner reads it
                log.warning("cannot re-read topic=%s partition=%d: %r", tp.topic, tp.partition, exc)

    async def commit(self, offsets: dict[int, int]) -> None:
        """Commit ``next offset to read`` per partition of the configured topic."""
        from aiokafka import TopicPartition

        if not offsets:
            return
        await self._consumer.commit(
            {TopicPartition(self.cfg.topic, p): o for p, o in offsets.items()}
        )

    async def committed_with_metadata(
        self, partitions: Iterable[int]
    ) -> dict[int, tuple[int, str]]:
        """The group's committed (offset, metadata) per partition of the topic that has one.

        aiokafka's ``committed()`` drops the metadata; its coordinator keeps it."""
        from aiokafka import TopicPartition

        tps = [TopicPartition(self.cfg.topic, p) for p in partitions]
        found = await self._consumer._coordinator.fetch_committed_offsets(tps)
        return {tp.partition: (int(om.offset), str(om.metadata or ""))
                for tp, om in found.items() if om.offset >= 0}

    async def seek(self, partition: int, offset: int | None) -> None:
        """Read ``partition`` from ``offset`` on; None: from where ``auto_offset_reset`` says.

        Records fetched before are not returned (aiokafka checks the position)."""
        from aiokafka import TopicPartition

        tp = TopicPartition(self.cfg.topic, partition)
        if offset is not None:
            self._consumer.seek(tp, offset)
        elif self.cfg.auto_offset_reset == "earliest":
            await self._consumer.seek_to_beginning(tp)
        else:
            await self._consumer.seek_to_end(tp)

    async def partitions_of(self, topic: str) -> set[int]:
        """The partitions of ``topic`` (another topic than the one read); empty if unknown."""
        cluster = await self._consumer._client.fetch_all_metadata()
        return set(cluster.partitions_for_topic(topic) or ())

    @property
    def group_id(self) -> str:
        return self.cfg.group_id

    async def lag(self) -> dict[int, int]:
        """Consumer lag per assigned partition (high watermark - position)."""
        from aiokafka import TopicPartition

        lags: dict[int, int] = {}
        for p in sorted(self.assigned):
            tp = TopicPartition(self.cfg.topic, p)
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = await self._consumer.position(tp)
            except Exception:  # noqa: BLE001 - partition may be revoked meanwhile
                continue
            lags[p] = max(0, high - position)
        return lags

    def fetch_ages(
        self, exclude: Container[int] = (), now_unix: float | None = None
    ) -> dict[int, float | None] | None:
        """Per assigned partition (but ``exclude``): seconds since the broker last
        answered a fetch for it, None if not since the assignment; None when not
        connected. See ``health.BrokerProbe``."""
        consumer = self._consumer
        if consumer is None:
            return None
        now_ms = (time.time() if now_unix is None else now_unix) * 1000
        ages: dict[int, float | None] = {}
        try:
            for tp in consumer.assignment():
                if tp.partition in exclude:
                    continue
                stamp = consumer.last_poll_timestamp(tp)
                ages[tp.partition] = None if stamp is None else max(0.0, (now_ms - stamp) / 1000)
        except (AssertionError, AttributeError, KeyError):
            # The assignment changed while we looked (a rebalance): nothing is fetched now.
            ages = {}
        return ages

    def coordinator_known(self) -> bool:
        """Whether the consumer knows its group coordinator (aiokafka keeps it private)."""
        coordinator = getattr(self._consumer, "_coordinator", None)
        return getattr(coordinator, "coordinator_id", None) is not None

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
