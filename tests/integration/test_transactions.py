"""A topic written in transactions, as an exactly-once job (Flink, Kafka Streams, Kafka
Connect) writes it: the real Apache log in committed transactions, with an aborted
transaction of duplicates between them and a transaction left open at the end.

With ``kafka.isolation_level: read_committed``, ``statuswatch run`` counts exactly the
committed records and, while the open transaction holds the last stable offset back,
reports no lag, stays ready and is not taken for a stuck consumer; once it commits,
its records are counted. With Kafka's default ``read_uncommitted`` every record is read,
the aborted duplicates and the open transaction's records too.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from statuswatch.localbroker import LocalKafka
from tests.data import APACHE_CODES, apache_lines
from tests.integration.support import (
    apache_run_config,
    code_counts,
    free_port,
    get,
    records_read_once,
    scrape,
    statuswatch_run,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

#: the aborted transaction repeats this many lines of the log; the open one holds as many
ABORTED = 500
OPEN = 300
#: the watchdog's timeout in the read-committed run: the open transaction outlasts it
STUCK_TIMEOUT_S = 4.0


def _status(line: bytes) -> int:
    match = re.search(rb'" (\d{3}) ', line)
    assert match, line
    return int(match[1])


async def _send(producer: Any, topic: str, lines: list[bytes]) -> None:
    batch = [await producer.send(topic, line, partition=0) for line in lines]
    await asyncio.gather(*batch)


@contextmanager
def apache_log_in_transactions(broker: LocalKafka, topic: str) -> Iterator[Callable[[], None]]:
    """The Apache log in two committed transactions with an aborted one of duplicates
    between them, then an open transaction of ``OPEN`` more lines; yields a function
    that commits it. aiokafka's transactional producer, on an event loop of its own."""
    from aiokafka import AIOKafkaProducer

    lines = apache_lines()
    half = len(lines) // 2
    loop = asyncio.new_event_loop()
    producers: list[Any] = []

    async def write() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers,
                                    transactional_id=f"writer-{topic}", linger_ms=20)
        await producer.start()
        producers.append(producer)
        for chunk, commit in ((lines[:half], True), (lines[:ABORTED], False),
                              (lines[half:], True), (lines[:OPEN], None)):
            await producer.begin_transaction()
            await _send(producer, topic, chunk)
            if commit:
                await producer.commit_transaction()
            elif commit is not None:
                await producer.abort_transaction()

    try:
        loop.run_until_complete(write())
        yield lambda: loop.run_until_complete(producers[0].commit_transaction())
    finally:
        for producer in producers:
            loop.run_until_complete(producer.stop())
        loop.close()


def test_read_committed_counts_committed_records_and_waits_for_open_ones(
    kafka_broker: LocalKafka, tmp_path: Path
):
    lines = apache_lines()
    topic = f"txn-{time.monotonic_ns()}"
    kafka_broker.create_topic(topic)
    committed_port, uncommitted_port = free_port(), free_port()
    committed = apache_run_config(
        tmp_path, kafka_broker, topic, committed_port, name="committed",
        extra=f"health:\n  stuck_timeout_seconds: {STUCK_TIMEOUT_S}\n",
    )
    committed.write_text(committed.read_text().replace(
        "  group_id:", "  isolation_level: read_committed\n  group_id:"))
    uncommitted = apache_run_config(tmp_path, kafka_broker, topic, uncommitted_port,
                                    name="uncommitted")
    open_codes = Counter(_status(line) for line in lines[:OPEN])
    with apache_log_in_transactions(kafka_broker, topic) as commit_the_open_one, \
            statuswatch_run(committed, log=tmp_path / "committed.log") as proc, \
            statuswatch_run(uncommitted, log=tmp_path / "uncommitted.log"):

        def committed_log() -> str:
            return (tmp_path / "committed.log").read_text()[-3000:]

        wait_for(lambda: records_read_once(committed_port) == len(lines), 120,
                 lambda: f"{len(lines)} committed records:\n{committed_log()}")
        assert code_counts(scrape(committed_port)) == APACHE_CODES

        def lag() -> list[str]:
            code, body = get(committed_port, "/metrics")
            if code != 200:
                return [f"/metrics answered {code}: {body[:200]}"]
            return re.findall(r'^statuswatch_consumer_lag\{partition="0"\} (\S+)$', body, re.M)

        # the open transaction's records and the aborted one's marker are not lag
        wait_for(lambda: lag() == ["0.0"], 30, lambda: f"lag {lag()}:\n{committed_log()}")
        # Past the watchdog's timeout the open transaction still holds the records back:
        # the run stays up and ready, and reads nothing more.
        time.sleep(STUCK_TIMEOUT_S + 3.0)
        assert proc.poll() is None, committed_log()
        assert get(committed_port, "/ready")[0] == 200, get(committed_port, "/ready")
        assert records_read_once(committed_port) == len(lines)

        everything = len(lines) + ABORTED + OPEN
        wait_for(lambda: records_read_once(uncommitted_port) == everything, 120,
                 lambda: "every record, read uncommitted:\n"
                 + (tmp_path / "uncommitted.log").read_text()[-3000:])
        aborted_codes = Counter(_status(line) for line in lines[:ABORTED])
        assert code_counts(scrape(uncommitted_port)) == dict(
            Counter(APACHE_CODES) + aborted_codes + open_codes)

        commit_the_open_one()
        wait_for(lambda: records_read_once(committed_port) == len(lines) + OPEN, 60,
                 lambda: f"the open transaction once committed:\n{committed_log()}")
        assert code_counts(scrape(committed_port)) == dict(Counter(APACHE_CODES) + open_codes)
