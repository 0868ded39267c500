"""Access logs shipped through syslog: util-linux ``logger`` sends the real Apache log to
a real syslog daemon whose Kafka output writes each line to Kafka (lz4, by librdkafka)
three ways: behind its default template's header
(``2026-12-06T05:30:01+00:00 host apache2: ...``), alone (the operations guide's
template), and in the ``message`` of a JSON event. Both daemons: rsyslog with
``omkafka`` (Debian's ``rsyslog-kafka``) and syslog-ng with its ``kafka-c()``
destination (``syslog-ng-mod-rdkafka``, unpacked by ``.ci/run``: its packages conflict
with rsyslog's). ``statuswatch run`` counts every record exactly with
``decode.envelope: syslog``, ``none`` and ``json`` respectively; the framed records
without the envelope are mostly invalid and ``/ready`` says why."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

import pytest

from statuswatch.localbroker import LocalKafka
from tests.data import APACHE_CODES, apache_lines
from tests.integration.support import (
    apache_run_config,
    code_counts,
    free_port,
    get,
    installed,
    records_read_once,
    sample,
    scrape,
    serving,
    statuswatch_run,
    unpacked_syslog_ng,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]

#: rsyslog templates of the line alone (the operations guide's) and of a JSON event
#: holding it in ``message``, as shippers that wrap lines send them.
RSYSLOG_TEMPLATES = (
    'template(name="line" type="string" string="%msg:2:$%")\n'
    'template(name="event" type="list" option.jsonf="on") {\n'
    '  property(outname="@timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")\n'
    '  property(outname="host" name="hostname" format="jsonf")\n'
    '  property(outname="message" name="msg" position.from="2" format="jsonf")\n'
    "}\n"
)

#: syslog-ng's message templates of the same (None: the kafka destination's default)
SYSLOG_NG_TEMPLATES = {
    "line": "$MSG",
    "event": "$(format-json @timestamp=$ISODATE host=$HOST message=$MSG)",
}

#: A shipper: given the test's directory, the broker and {topic: template name, or None
#: for the daemon's default}, a context manager yielding its TCP syslog port.
Shipper = Callable[[Path, LocalKafka, dict[str, str | None]], AbstractContextManager[int]]


@contextmanager
def rsyslog_to_kafka(
    tmp_path: Path, broker: LocalKafka, topics: dict[str, str | None]
) -> Iterator[int]:
    """rsyslogd in the foreground: a TCP syslog input on 127.0.0.1 (its port yielded)
    and one omkafka action per topic, with its template (None: omkafka's default);
    stopped on exit."""
    port = free_port()
    conf = tmp_path / "rsyslog.conf"
    kafka = (f'type="omkafka" broker=["{broker.bootstrap_servers}"] '
             'confParam=["compression.codec=lz4", "linger.ms=50"]')
    actions = "".join(
        f'  action({kafka} topic="{topic}"'
        + ("" if template is None else f' template="{template}"') + ")\n"
        for topic, template in topics.items()
    )
    conf.write_text(
        f'global(workDirectory="{tmp_path}")\n'
        'module(load="imtcp")\n'
        'module(load="omkafka")\n'
        + RSYSLOG_TEMPLATES
        + f'input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="to-kafka")\n'
        'ruleset(name="to-kafka") {\n' + actions + "}\n"
    )
    # rsyslogd flushes its queues on SIGTERM
    with serving([installed("rsyslogd", "rsyslog-kafka"), "-n", "-f", str(conf),
                  "-i", str(tmp_path / "rsyslogd.pid")], port, tmp_path / "rsyslogd.log"):
        yield port


@contextmanager
def syslog_ng_to_kafka(
    tmp_path: Path, broker: LocalKafka, topics: dict[str, str | None]
) -> Iterator[int]:
    """syslog-ng in the foreground: a TCP syslog source on 127.0.0.1 (its port yielded)
    and one ``kafka-c()`` destination per topic, with its message template (None: the
    destination's default); stopped on exit."""
    port = free_port()
    program = unpacked_syslog_ng()
    conf = tmp_path / "syslog-ng.conf"
    destinations = "".join(
        f'destination d{i} {{ kafka-c(bootstrap-servers("{broker.bootstrap_servers}") '
        f'topic("{topic}") config("compression.codec" => "lz4", "linger.ms" => "50")'
        + ("" if template is None else f' message("{SYSLOG_NG_TEMPLATES[template]}")')
        + "); };\n"
        for i, (topic, template) in enumerate(topics.items())
    )
    conf.write_text(
        f"@version: {program.version}\n"
        "options { stats_freq(0); };\n"
        f'source s_tcp {{ network(ip("127.0.0.1") port({port}) transport("tcp")); }};\n'
        + destinations
        + "log { source(s_tcp); "
        + "".join(f"destination(d{i}); " for i in range(len(topics))) + "};\n"
    )
    # syslog-ng flushes its destinations on SIGTERM
    with serving([*program.command, "-F", "-f", str(conf),
                  f"--persist-file={tmp_path / 'syslog-ng.persist'}",
                  f"--pidfile={tmp_path / 'syslog-ng.pid'}",
                  f"--control={tmp_path / 'syslog-ng.ctl'}"],
                 port, tmp_path / "syslog-ng.log", env=program.env):
        yield port


@pytest.mark.parametrize("shipper", [rsyslog_to_kafka, syslog_ng_to_kafka],
                         ids=["rsyslog", "syslog-ng"])
def test_the_apache_log_through_syslog_is_counted_exactly(
    kafka_broker: LocalKafka, tmp_path: Path, shipper: Shipper
):
    lines = apache_lines()
    source = tmp_path / "access.log"
    source.write_bytes(b"\n".join(lines) + b"\n")
    stamp = time.monotonic_ns()
    topics = {f"syslog-{stamp}": None, f"line-{stamp}": "line", f"event-{stamp}": "event"}
    framed, line_only, events = topics
    for topic in topics:
        kafka_broker.create_topic(topic)
    with shipper(tmp_path, kafka_broker, topics) as syslog_port:
        sent = subprocess.run(
            [installed("logger", "bsdutils"), "--tcp", "--server", "127.0.0.1",
             "--port", str(syslog_port), "--rfc3164", "--tag", "apache2", "--size", "4096",
             "--file", str(source)],
            check=False, capture_output=True, timeout=120,
        )
        assert sent.returncode == 0, sent.stderr

        runs = {  # name: (topic, decode.envelope, its port)
            "framed": (framed, "syslog", free_port()),
            "bare": (framed, "none", free_port()),
            "alone": (line_only, "none", free_port()),
            "events": (events, "json", free_port()),
            "bare events": (events, "none", free_port()),
        }
        with ExitStack() as stack:
            for name, (topic, envelope, port) in runs.items():
                config = apache_run_config(tmp_path, kafka_broker, topic, port,
                                           name=f"{topic}-{name}", envelope=envelope)
                stack.enter_context(statuswatch_run(config, log=tmp_path / f"{name}.log"))

            for name in ("framed", "alone", "events"):
                port = runs[name][2]
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

            for name, top_reason, advice in (
                ("bare", "unparseable_line", "set decode.envelope: syslog"),
                ("bare events", "unparseable_line",
                 "set decode.envelope: json and decode.envelope_field: message"),
            ):
                port = runs[name][2]
                _, reason = wait_for(
                    lambda port=port: (r := get(port, "/ready"))[0] == 503
                    and "mostly invalid" in r[1] and r,
                    60, lambda name=name: f"/ready of {name}:\n"
                    + (tmp_path / f"{name}.log").read_text()[-2000:],
                )
                assert f"top reason {top_reason}" in reason, reason
                assert advice in reason, reason
                assert code_counts(scrape(port)) == {}, name
