"""Kafka over TLS and SASL_SSL (SCRAM-SHA-512) against a real broker.

A separate broker has three listeners: PLAINTEXT (the harness's readiness probe
and the test's producer), SSL, and SASL_SSL with a SCRAM-SHA-512 user. Its
certificate is signed by a throwaway CA made for the test (``tlscerts``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaProducer

from statuswatch.config import KafkaConfig
from statuswatch.errors import SourceError
from statuswatch.localbroker import LocalKafka
from statuswatch.shell.kafka_source import KafkaSource
from tests.integration.support import running
from tests.integration.tlscerts import CertSet, make_broker_certs, make_ca

pytestmark = [pytest.mark.broker, pytest.mark.slow]

USER, PASSWORD = "statuswatch", "scram-Pa55word-for-the-test"
#: A refused TLS or SASL handshake must surface quickly, not after a long hang.
FAIL_WITHIN_S = 30.0


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_broker_certs(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def secure_broker(certs: CertSet) -> Iterator[LocalKafka]:
    broker = LocalKafka(
        listeners={"SSL": "SSL", "SASL_SSL": "SASL_SSL"},
        tls_cert_chain=certs.chain,
        tls_key=certs.key,
        scram_users=[("SCRAM-SHA-512", USER, PASSWORD)],
    )
    yield from running(broker, "the TLS broker")


async def produce(broker: LocalKafka, topic: str, n: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)  # PLAINTEXT
    await producer.start()
    try:
        for i in range(n):
            await producer.send(topic, f'{{"n": {i}}}'.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def consume_all(cfg: KafkaConfig, n: int, timeout: float = 60.0) -> list[bytes]:
    source = KafkaSource(cfg)
    await source.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        while len(values) < n and time.monotonic() < deadline:
            for batch in await source.poll():
                values.extend(batch.values)
    finally:
        await source.stop()
    return values


def kafka_cfg(bootstrap: str, topic: str, **kw: object) -> KafkaConfig:
    return KafkaConfig.model_validate(
        {"bootstrap_servers": bootstrap, "topic": topic, "group_id": f"g-{topic}", **kw}
    )


async def expect_source_error(cfg: KafkaConfig) -> SourceError:
    source = KafkaSource(cfg)
    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        await asyncio.wait_for(source.start(), FAIL_WITHIN_S + 10)
    assert time.monotonic() - started < FAIL_WITHIN_S
    await source.stop()
    return err.value


async def test_consumes_over_tls_with_the_right_ca(secure_broker, certs):
    topic = "tls-ok"
    await secure_broker.acreate_topic(topic)
    await produce(secure_broker, topic, 50)
    cfg = kafka_cfg(secure_broker.listener_bootstrap("SSL"), topic,
                    security_protocol="SSL", tls={"ca_file": certs.ca})
    values = await consume_all(cfg, 50)
    assert values == [f'{{"n": {i}}}'.encode() for i in range(50)]


async def test_wrong_ca_fails_fast_with_a_clear_error(secure_broker, tmp_path):
    other_ca, _ = make_ca(tmp_path, "some-other-ca")
    cfg = kafka_cfg(secure_broker.listener_bootstrap("SSL"), "tls-wrong-ca",
                    security_protocol="SSL", tls={"ca_file": other_ca})
    error = await expect_source_error(cfg)
    assert "certificate verify failed" in str(error) or "verification failed" in str(error)
    assert secure_broker.listener_bootstrap("SSL") in str(error)


async def test_hostname_is_checked(secure_broker, certs):
    """The certificate is for 127.0.0.1 and localhost: any other name is refused."""
    port = secure_broker.listener_port("SSL")
    cfg = kafka_cfg(f"localhost:{port}", "tls-hostname", security_protocol="SSL",
                    tls={"ca_file": certs.ca})
    # localhost is in the certificate: fine. (Resolving it may yield ::1 first; the broker
    # listens on 127.0.0.1 only, and aiokafka tries each address.)
    await secure_broker.acreate_topic("tls-hostname")
    await produce(secure_broker, "tls-hostname", 1)
    assert len(await consume_all(cfg, 1)) == 1


async def test_sasl_ssl_with_scram_sha_512(secure_broker, certs, tmp_path):
    topic = "sasl-ok"
    await secure_broker.acreate_topic(topic)
    await produce(secure_broker, topic, 20)
    password_file = tmp_path / "kafka-password"
    password_file.write_text(PASSWORD + "\n")
    cfg = kafka_cfg(
        secure_broker.listener_bootstrap("SASL_SSL"), topic, security_protocol="SASL_SSL",
        tls={"ca_file": certs.ca},
        sasl={"mechanism": "SCRAM-SHA-512", "username": USER, "password_file": password_file},
    )
    assert len(await consume_all(cfg, 20)) == 20


async def test_sasl_wrong_password_fails_fast(secure_broker, certs):
    cfg = kafka_cfg(
        secure_broker.listener_bootstrap("SASL_SSL"), "sasl-wrong", security_protocol="SASL_SSL",
        tls={"ca_file": certs.ca},
        sasl={"mechanism": "SCRAM-SHA-512", "username": USER, "password": "wrong-Pa55word"},
    )
    error = await expect_source_error(cfg)
    assert "wrong-Pa55word" not in str(error) and PASSWORD not in str(error)
    assert "uthentication" in str(error), str(error)


async def test_plaintext_client_on_the_tls_port_fails_fast(secure_broker):
    cfg = kafka_cfg(secure_broker.listener_bootstrap("SSL"), "tls-plain")
    await expect_source_error(cfg)


