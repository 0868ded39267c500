"""The local broker's metadata and topics, through aiokafka's admin client."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from statuswatch.errors import BrokerHarnessError
from statuswatch.localbroker.process import HOST

CLIENT_ID = "statuswatch-localbroker"


@dataclass(frozen=True)
class Metadata:
    brokers: list[int]
    # topic -> (error code, {partition: leader id})
    topics: dict[str, tuple[int, dict[int, int]]] = field(default_factory=dict)


def _port_open(port: int, timeout: float) -> bool:
    # A plain connect first: the admin client logs every refused connection as an error.
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


async def _ametadata(bootstrap: str, topics: Sequence[str], timeout: float) -> Metadata:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id=CLIENT_ID,
        request_timeout_ms=max(1, int(timeout * 1000)),
    )
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        described = await admin.describe_topics(list(topics)) if topics else []
    finally:
        await admin.close()
    found = {
        str(t["topic"]): (
            int(t["error_code"]),
            {int(p["partition"]): int(p["leader"]) for p in t["partitions"]},
        )
        for t in described
    }
    return Metadata([int(b["node_id"]) for b in cluster["brokers"]], found)


def fetch_metadata(port: int, topics: Sequence[str], timeout: float) -> Metadata | None:
    """The broker list and the topics' leaders, or None while the broker cannot answer.

    Runs its own event loop in a worker thread, so it serves callers with or
    without a running loop.
    """
    if not _port_open(port, timeout):
        return None
    with concurrent.futures.ThreadPoolExecutor(1, "localbroker-metadata") as pool:
        future = pool.submit(
            lambda: asyncio.run(
                asyncio.wait_for(_ametadata(f"{HOST}:{port}", topics, timeout), timeout)
            )
        )
        try:
            return future.result()
        except (KafkaError, OSError, TimeoutError):
            return None



# Kafka error codes that a create_topic caller may meet.
_TOPIC_ALREADY_EXISTS = 36


async def acreate_topic(
    port: int, name: str, partitions: int = 1, *, exist_ok: bool = False, timeout: float = 30.0
) -> None:
    """Create a topic on the broker at ``HOST:port`` and wait until every partition has a
    leader."""
    deadline = time.monotonic() + timeout
    admin = AIOKafkaAdminClient(
        bootstrap_servers=f"{HOST}:{port}",
        client_id=CLIENT_ID,
        request_timeout_ms=max(1, int(timeout * 1000)),
    )
    try:
        await admin.start()
        response = await admin.create_topics(
            [NewTopic(name, partitions, 1)], timeout_ms=max(1, int(timeout * 1000))
        )
    except (KafkaError, OSError, TimeoutError) as exc:
        raise BrokerHarnessError(f"cannot create topic {name!r}: {exc!r}") from exc
    finally:
        await admin.close()
    for entry in response.topic_errors:
        code = int(entry[1])
        if code == 0 or (code == _TOPIC_ALREADY_EXISTS and exist_ok):
            continue
        message = entry[2] if len(entry) > 2 and entry[2] else f"error code {code}"
        raise BrokerHarnessError(f"cannot create topic {entry[0]!r}: {message}")
    await asyncio.to_thread(_wait_for_leaders, port, name, deadline)

def _wait_for_leaders(port: int, name: str, deadline: float) -> None:
    # CreateTopics answers once the controller has the topic; the broker's
    # metadata cache (which producers and consumers read) follows shortly.
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerHarnessError(f"topic {name!r} has no leader for every partition")
        meta = fetch_metadata(port, [name], timeout=min(2.0, remaining))
        if meta is not None and name in meta.topics:
            error, leaders = meta.topics[name]
            if error == 0 and leaders and all(leader >= 0 for leader in leaders.values()):
                return
        time.sleep(0.05)
