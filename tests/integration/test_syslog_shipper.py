"""Access logs shipped through syslog: util-linux ``logger`` sends the real Apache log to
rsyslog (Debian's ``rsyslog-kafka``), whose ``omkafka`` writes each line to Kafka behind
its default template's header (``2026-12-06T05:30:01+00:00 host apache2: ...``), lz4
compressed by librdkafka. ``statuswatch run`` with ``decode.envelope: syslog`` counts
every record exactly; without it the input is mostly invalid and ``/ready`` says why; a
template of the line alone (the operations guide's) needs no envelope."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from statuswatch.localbroker import LocalKafka
from tests.data import APACHE_CODES, apache_lines
from tests.integration.support import (
    free_port,
    get,
    installed,
    records_read_once,
    sample,
    scrape,
    wait_for,
)
from tests.integration.test_compression import code_counts, run_config, statuswatch_run

pytestmark = [pytest.mark.broker, pytest.mark.slow]

@contextmanager
def rsyslog_to_kafka(
    tmp_path: Path, broker: LocalKafka, framed: str, line_only: str
) -> Iterator[int]:
    """rsyslogd in the foreground: a TCP syslog input on 127.0.0.1 (its port yielded),
    an omkafka action with its default template into topic ``framed`` and one with the
    template of the line alone that the operations guide gives into ``line_only``;
    stopped on exit."""
    port = free_port()
    conf = tmp_path / "rsyslog.conf"
    kafka = (f'type="omkafka" broker=["{broker.bootstrap_servers}"] '
             'confParam=["compression.codec=lz4", "linger.ms=50"]')
    conf.write_text(
        f'global(workDirectory="{tmp_path}")\n'
        'module(load="imtcp")\n'
        'module(load="omkafka")\n'
        'template(name="line" type="string" string="%msg:2:$%")\n'
        f'input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="to-kafka")\n'
        'ruleset(name="to-kafka") {\n'
        f'  action({kafka} topic="{framed}")\n'
        f'  action({kafka} topic="{line_only}" template="line")\n'
        "}\n"
    )
    log = tmp_path / "rsyslogd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [installed("rsyslogd", "rsyslog-kafka"), "-n", "-f", str(conf),
             "-i", str(tmp_path / "rsyslogd.pid")],
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        def listening() -> bool:
            assert proc.poll() is None, log.read_text()
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, 30, lambda: f"rsyslogd on {port}:\n{log.read_text()}")
        yield port
    finally:
        proc.terminate()  # rsyslogd flushes its queues on SIGTERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_apache_log_through_rsyslog_is_counted_exactly(
    kafka_broker: LocalKafka, tmp_path: Path
):
    lines = apache_lines()
    source = tmp_path / "access.log"
    source.write_bytes(b"\n".join(lines) + b"\n")
    topic, line_only = f"syslog-{time.monotonic_ns()}", f"syslog-line-{time.monotonic_ns()}"
    kafka_broker.create_topic(topic)
    kafka_broker.create_topic(line_only)
    with rsyslog_to_kafka(tmp_path, kafka_broker, topic, line_only) as syslog_port:
        sent = subprocess.run(
            [installed("logger", "bsdutils"), "--tcp", "--server", "127.0.0.1",
             "--port", str(syslog_port), "--rfc3164", "--tag", "apache2", "--size", "4096",
             "--file", str(source)],
            check=False, capture_output=True, timeout=120,
        )
        assert sent.returncode == 0, sent.stderr

        framed, bare, alone = free_port(), free_port(), free_port()
        with ExitStack() as stack:
            for port, name, envelope, read in ((framed, "framed", "syslog", topic),
                                               (bare, "bare", "none", topic),
                                               (alone, "alone", "none", line_only)):
                config = run_config(tmp_path, kafka_broker, read, port, name=f"{read}-{name}",
                                    envelope=envelope)
                stack.enter_context(statuswatch_run(config, log=tmp_path / f"{name}.log"))

            for port, name in ((framed, "framed"), (alone, "alone")):
                wait_for(lambda port=port: records_read_once(port) == len(lines), 120,
                         lambda name=name: f"{len(lines)} records, {name}:\n"
                         + (tmp_path / f"{name}.log").read_text()[-2000:])
                body = scrape(port)
                assert code_counts(body) == APACHE_CODES, name
                assert sample(body, "statuswatch_records_total") == len(lines), name
                invalid = re.findall(r"^statuswatch_invalid_records_total\{.*\} (\S+)$", body,
                                     re.M)
                assert invalid and all(float(n) == 0 for n in invalid), name
                wait_for(lambda port=port: get(port, "/ready")[0] == 200, 30,
                         lambda port=port, name=name: f"/ready of {name}: {get(port, '/ready')}")

            _, reason = wait_for(
                lambda: (r := get(bare, "/ready"))[0] == 503 and "mostly invalid" in r[1] and r,
                60, lambda: "/ready of the bare run:\n"
                + (tmp_path / "bare.log").read_text()[-2000:],
            )
            assert "top reason unparseable_line" in reason, reason
            assert "set decode.envelope: syslog" in reason, reason
            assert code_counts(scrape(bare)) == {}
