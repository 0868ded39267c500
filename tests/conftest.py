"""Shared fixtures: one local Kafka broker per test session, a fresh topic per test."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import settings

from statuswatch.localbroker import LocalKafka
from tests.integration.promstack import LocalAlertmanager, Notifications, alertmanager_or_fail
from tests.integration.support import running

# No per-example deadline: the machine is shared (a broker's JVM runs beside the unit
# tests), and a slow example is not a wrong one. Speed is measured in benchmarks/.
settings.register_profile("statuswatch", deadline=None)
settings.load_profile("statuswatch")


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[LocalKafka]:
    """A single-node KRaft broker on 127.0.0.1, shared by the whole session.

    A broker that cannot start fails the tests that need it: skipping would
    let a broken harness pass CI.
    """
    # Generous timeout: the first start on a cold machine also fetches the jars.
    yield from running(LocalKafka(), "the local Kafka broker", timeout=300)


@pytest.fixture
def topic(kafka_broker: LocalKafka, request: pytest.FixtureRequest) -> str:
    """A new, uniquely named topic on ``kafka_broker``; 1 partition by default.

    For more partitions parametrize indirectly::

        @pytest.mark.parametrize("topic", [3], indirect=True)
    """
    partitions = int(getattr(request, "param", 1))
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-")[:120]
    name = f"{stem}-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(name, partitions)
    return name


@pytest.fixture
def notifications() -> Iterator[Notifications]:
    """A webhook receiver standing in for the pager Alertmanager notifies."""
    receiver = Notifications()
    yield receiver
    receiver.close()


@pytest.fixture
def alertmanager(notifications: Notifications) -> Iterator[LocalAlertmanager]:
    """A real Alertmanager (Debian's ``prometheus-alertmanager``) on a free loopback port
    with a temporary data directory, notifying ``notifications``; it fails the test if
    it cannot start."""
    server = alertmanager_or_fail(notifications.url)
    try:
        yield server
    finally:
        server.close()
