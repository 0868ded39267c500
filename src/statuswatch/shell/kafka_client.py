"""How an aiokafka client connects: TLS and SASL arguments, why a connection fails,
and whether aiokafka runs with its C extension. Shared by the consumer
(``kafka_source``), the dead-letter producer and the Kafka alert transport.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import socket
import ssl
from typing import Any

from statuswatch.config import KafkaConfig, KafkaConnection, TlsConfig
from statuswatch.errors import SourceError, StatuswatchError

log = logging.getLogger(__name__)


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
