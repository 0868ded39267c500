"""Alert sinks: configuration, webhook signing and headers, retries, deadlines, queues,
``GET /alerts`` -- against real local HTTP(S) servers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statuswatch.config import DeliveryConfig, Settings, load_settings
from statuswatch.core.decide import AlertEvent, Evidence
from statuswatch.core.detector import Detector
from statuswatch.errors import ConfigError, SinkError
from statuswatch.shell.alertformat import SIGNATURE_HEADER, alertmanager_alert
from statuswatch.shell.delivery import AlertDelivery, SinkWorker
from statuswatch.shell.http import serve
from statuswatch.shell.metrics import RuntimeStatus, build_registry
from statuswatch.shell.sinks import ListSink
from tests.integration.support import free_port, get
from tests.integration.tlscerts import make_broker_certs


class Receiver:
    """A local HTTP(S) server recording each POST; answers the statuses in ``script``
    (then 200)."""

    def __init__(self, script: list[int] | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.script = list(script or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((dict(self.headers.items()), body))
                status = outer.script.pop(0) if outer.script else 200
                self.send_response(status)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"ok\n")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def event(state: str = "firing", code: int = 503, scope: dict[str, str] | None = None,
          id_: str = "a1") -> AlertEvent:
    evidence = Evidence(True, False, False, 12.5, 90, 10.0, 0.09, 0.01, 1000)
    return AlertEvent(id_, state, code, "up", "share", scope or {"service": "checkout"},  # type: ignore[arg-type]
                      1_680_566_400_000, 1_680_566_410_000, 1_680_566_390_000, evidence,
                      [{"scope": {"service": "checkout", "app": "a7"},
                        "observed": {"count": 80}, "expected": {"count": 2.0}}])


def delivery_with(sink: dict[str, Any], **settings: Any) -> tuple[AlertDelivery, ListSink]:
    lines = ListSink()
    cfg = Settings(alerts={"sinks": [sink]}, **settings)
    return AlertDelivery(cfg, lines, external_url="http://sw.example:9464"), lines


async def settle(delivery: AlertDelivery, timeout: float = 10.0) -> None:
    for worker in delivery.workers:
        assert await worker.drain(timeout), f"{worker.name} still holds {len(worker.queue)}"


async def deliver(delivery: AlertDelivery, *events: AlertEvent) -> None:
    """Start ``delivery``, write ``events``, wait until every sink is done with them, stop."""
    await delivery.start()
    try:
        delivery.write(list(events))
        await settle(delivery)
    finally:
        await delivery.stop(1.0)


# --- configuration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("alerts: {sinks: [{type: pager}]}", "alerts.sinks.0", "does not match any of the"),
        ("alerts: {sinks: [{type: alertmanager, urls: []}]}", "alerts.sinks.0.alertmanager.urls",
         "at least 1"),
        ("alerts: {sinks: [{type: alertmanager, urls: [am:9093]}]}",
         "alerts.sinks.0.alertmanager.urls", "http:// or https://"),
        ("alerts: {sinks: [{type: webhook, url: 'http://h', hmac_secret: a, hmac_secret_file: b}]}",
         "alerts.sinks.0.webhook", "not both"),
        ("alerts: {sinks: [{type: webhook, url: 'http://h', auth: {username: u}}]}",
         "alerts.sinks.0.webhook.auth", "needs both username and password"),
        ("alerts: {sinks: [{type: webhook, url: 'http://h', backoff_initial_seconds: 9, "
         "backoff_max_seconds: 1}]}", "alerts.sinks.0.webhook", "backoff_max_seconds"),
        ("alerts: {sinks: [{type: kafka, topic: t, cluster: {security_protocol: SASL_SSL}}]}",
         "alerts.sinks.0.kafka.cluster", "needs a sasl section"),
        ("alerts: {sinks: [{type: kafka, topic: t, name: x}, {type: webhook, url: 'http://h', "
         "name: x}]}", "alerts", "two sinks are named 'x'"),
        ("detect: {rules: [{name: r, severity: 'wake me'}]}", "detect.rules.0.severity",
         "should match pattern"),
    ],
)
def test_bad_sink_values_name_the_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert f"{key}:" in str(err.value)
    assert problem in str(err.value)


def test_secrets_are_never_echoed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("alerts: {sinks: [{type: webhook, url: 'http://h', hmac_secret: hunter2, "
                    "hmac_secret_file: /nonexistent}]}")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "hunter2" not in str(err.value)


# --- what each receiver gets -------------------------------------------------------


def test_alertmanager_alert_carries_labels_and_ends_only_on_resolve() -> None:
    alert = event(scope={"service": "checkout", "route": "pay"}).to_json()
    fired = alertmanager_alert(alert, "ticket", "http://sw/alerts", now_s=2e9)
    assert fired["labels"] == {
        "alertname": "StatusCodeAnomaly", "code": "503", "direction": "up", "signal": "share",
        "service": "checkout", "route": "pay", "severity": "ticket",
    }
    assert "endsAt" not in fired
    assert fired["startsAt"] == "2023-04-03T23:59:50.000000Z"
    resolved = alertmanager_alert(event("resolved").to_json(), "page", "http://sw/alerts", 2e9)
    assert resolved["endsAt"] == "2023-04-04T00:00:10.000000Z"
    # an end in the future (clock skew) would keep the alert open: capped at now
    assert alertmanager_alert(event("resolved").to_json(), "page", "u", 1_680_566_405)[
        "endsAt"] == "2023-04-04T00:00:05.000000Z"


async def test_webhook_posts_the_alert_json_signed_with_custom_headers(
    receiver: Receiver,
) -> None:
    delivery, lines = delivery_with({
        "type": "webhook", "url": f"{receiver.url}/hook?team=sre", "hmac_secret": "s3cret",
        "headers": {"X-Team": "sre"}, "auth": {"bearer_token": "tok"},
    })
    await deliver(delivery, event())
    ((headers, body),) = receiver.requests
    assert json.loads(body) == lines.alerts[0]  # the JSON line's object, unchanged
    assert headers["X-Team"] == "sre"
    assert headers["Authorization"] == "Bearer tok"
    t, sig = headers[SIGNATURE_HEADER].split(",")
    stamp = t.removeprefix("t=")
    assert abs(int(stamp) - time.time()) < 60
    expected = hmac.new(b"s3cret", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert sig == f"sha256={expected}"


async def test_basic_auth_from_a_secret_file_over_tls_with_a_client_certificate(
    tmp_path: Path,
) -> None:
    certs = make_broker_certs(tmp_path / "server")
    client = make_broker_certs(tmp_path / "client", usage="clientAuth")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(certs.chain, certs.key)
    server_tls.load_verify_locations(client.ca)
    server_tls.verify_mode = ssl.CERT_REQUIRED  # no client certificate, no answer
    secret = tmp_path / "password"
    secret.write_text("pa:ss\n")
    with Receiver(tls=server_tls) as receiver:
        delivery, _ = delivery_with({
            "type": "alertmanager", "urls": [receiver.url],
            "auth": {"username": "sw", "password_file": str(secret)},
            "tls": {"ca_file": str(certs.ca), "cert_file": str(client.chain),
                    "key_file": str(client.key)},
        })
        await deliver(delivery, event())
    ((headers, body),) = receiver.requests
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"sw:pa:ss").decode()
    (sent,) = json.loads(body)
    assert sent["labels"]["service"] == "checkout"
    assert sent["generatorURL"] == "http://sw.example:9464/alerts?id=a1"
    assert delivery.workers[0].results["delivered"] == 1


# --- retries, deadlines, queues ------------------------------------------------------


async def test_failed_attempts_are_retried_and_counted() -> None:
    with Receiver(script=[503, 502, 429]) as receiver:
        delivery, _ = delivery_with({
            "type": "webhook", "name": "hook", "url": receiver.url,
            "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05,
        })
        await deliver(delivery, event())
    assert len(receiver.requests) == 4
    results = delivery.workers[0].results
    assert (results["failed"], results["delivered"]) == (3, 1)


async def test_a_4xx_is_rejected_without_retrying(caplog: pytest.LogCaptureFixture) -> None:
    with Receiver(script=[400]) as receiver:
        delivery, _ = delivery_with({"type": "webhook", "url": receiver.url})
        await deliver(delivery, event())
    assert len(receiver.requests) == 1
    assert delivery.workers[0].results["rejected"] == 1
    assert "HTTP 400" in caplog.text


async def test_an_undeliverable_alert_expires_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    delivery, _ = delivery_with({
        "type": "alertmanager", "urls": [dead], "deadline_seconds": 0.5,
        "backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.1,
    })
    with caplog.at_level(logging.ERROR):
        await deliver(delivery, event(id_="lost-1"))
    results = delivery.workers[0].results
    assert results["expired"] == 1 and results["delivered"] == 0 and results["failed"] >= 2
    assert "lost-1" in caplog.text and "not delivered within 0.5s" in caplog.text


async def test_a_full_queue_drops_its_oldest_alert_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = SinkWorker("q", None, DeliveryConfig(queue_size=2))  # type: ignore[arg-type]
    for i in range(3):
        worker.submit(event(id_=f"id{i}").to_json(), "page")
    assert [p.alert["id"] for p in worker.queue] == ["id1", "id2"]
    assert worker.results["dropped"] == 1
    assert "dropped firing alert id0" in caplog.text


async def test_write_never_waits_for_a_dead_sink() -> None:
    """The consume loop's call returns with the alert queued, not delivered."""
    dead = f"http://127.0.0.1:{free_port()}"
    delivery, lines = delivery_with({"type": "webhook", "url": dead})
    await delivery.start()
    try:
        delivery.write([event()])  # synchronous: it cannot await the sink
        assert lines.alerts and len(delivery.workers[0].queue) == 1
    finally:
        await delivery.stop(0.1)
    assert delivery.workers[0].results["expired"] == 1  # counted at shutdown


async def test_firing_alerts_are_resent_and_resolved_ones_are_not(receiver: Receiver) -> None:
    delivery, _ = delivery_with({"type": "alertmanager", "urls": [receiver.url]})
    await delivery.start()
    try:
        delivery.write([event(id_="a"), event(id_="b")])
        await settle(delivery)
        delivery.write([event("resolved", id_="b")])
        await settle(delivery)
        delivery.resend_firing()
        await settle(delivery)
    finally:
        await delivery.stop(1.0)
    sent = [[a["annotations"]["alert_id"] for a in json.loads(body)]
            for _, body in receiver.requests]
    assert [a for batch in sent for a in batch] == ["a", "b", "b", "a"]


@given(st.integers(1, 200), st.floats(0.01, 5), st.floats(1, 60))
def test_backoff_grows_and_stays_within_its_bounds(
    failures: int, initial: float, ceiling: float
) -> None:
    cfg = DeliveryConfig(backoff_initial_seconds=initial,
                         backoff_max_seconds=max(initial, ceiling))
    worker = SinkWorker("b", None, cfg)  # type: ignore[arg-type]
    cap = min(cfg.backoff_max_seconds, initial * 2.0 ** (failures - 1))
    assert cap / 2 <= worker.backoff(failures) <= cap


# --- GET /alerts ----------------------------------------------------------------------


def test_get_alerts_serves_the_firing_alerts_as_json_lines_objects() -> None:
    lines = ListSink()
    delivery = AlertDelivery(Settings(), lines)
    status = RuntimeStatus()
    server, port = serve(build_registry(Detector(Settings()), status), "127.0.0.1", 0,
                         alerts=delivery.firing.alerts)
    try:
        delivery.write([event(id_="x"), event(id_="y", code=404)])
        delivery.write([event("resolved", id_="x")])
        code, body = get(port, "/alerts")
        assert code == 200
        assert json.loads(body) == [lines.alerts[1]]
        code, body = get(port, "/alerts?id=nope")
        assert json.loads(body) == []
    finally:
        server.shutdown()


def test_no_sinks_means_no_workers_and_no_resends() -> None:
    delivery = AlertDelivery(Settings(), ListSink())
    assert delivery.workers == [] and delivery.generator_url() == "http://127.0.0.1:9464/alerts"


async def test_firing_alerts_survive_a_restart_until_they_stop_firing(
    tmp_path: Path, receiver: Receiver,
) -> None:
    state = {"dir": str(tmp_path / "state")}
    sink = {"type": "alertmanager", "urls": [receiver.url]}
    before, lines = delivery_with(sink, state=state)
    before.write([event(id_="a"), event(id_="b", code=404), event(id_="c", code=502)])
    before.write([event("resolved", id_="c")])

    # A new process on the same state: /alerts has them at once; the re-sends go on for
    # the one the restored detector still fires and forget the other.
    after, _ = delivery_with(sink, state=state)
    assert sorted(after.firing.alerts(), key=lambda a: a["id"]) == lines.alerts[:2]
    after.still_firing = lambda: {"a"}
    await after.start()
    try:
        after.resend_firing()
        await settle(after)
    finally:
        await after.stop(1.0)
    ((_, body),) = receiver.requests
    assert [a["annotations"]["alert_id"] for a in json.loads(body)] == ["a"]
    assert [a["id"] for a in delivery_with(sink, state=state)[0].firing.alerts()] == ["a"]


# --- reconfiguring the sinks (a config reload) -------------------------------------------


def webhook(name: str, url: str) -> dict[str, Any]:
    return {"type": "webhook", "name": name, "url": url, "backoff_initial_seconds": 0.05,
            "backoff_max_seconds": 0.1, "timeout_seconds": 2}


def ids_posted(receiver: Receiver) -> list[tuple[str, str]]:
    return [(a["id"], a["state"]) for a in (json.loads(body) for _, body in receiver.requests)]


async def test_a_reload_keeps_unchanged_sinks_moves_the_queue_of_changed_ones_and_catches_up_new(
) -> None:
    kept_rx, moved_rx, new_rx = Receiver(), Receiver(), Receiver()
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: alerts wait in the queue
    lines = ListSink()
    before = Settings(alerts={"sinks": [webhook("kept", kept_rx.url), webhook("moved", dead)]})
    delivery = AlertDelivery(before, lines)
    await delivery.start()
    try:
        delivery.write([event(id_="x"), event(id_="y", code=404)])
        delivery.write([event("resolved", id_="y", code=404)])
        kept, moved = delivery.workers
        assert await kept.drain(5)
        await asyncio.sleep(0.2)  # a few failed attempts at the dead URL
        assert len(moved.queue) == 3 and moved.results["failed"] > 0
        failed = moved.results["failed"]

        delivery.reconfigure(Settings(
            alerts={"sinks": [webhook("kept", kept_rx.url), webhook("moved", moved_rx.url),
                              webhook("new", new_rx.url)]},
            detect={"rules": [{"name": "r", "codes": ["503"], "severity": "ticket"}]},
        ))
        assert delivery.workers[0] is kept and delivery.workers[1] is not moved
        assert moved.queue == deque()
        await settle(delivery)
        # the queued alerts reach the moved sink once, in order; the new sink gets what
        # fires now; the kept sink gets nothing twice
        assert ids_posted(moved_rx) == [("x", "firing"), ("y", "firing"), ("y", "resolved")]
        assert ids_posted(new_rx) == [("x", "firing")]
        assert ids_posted(kept_rx) == [("x", "firing"), ("y", "firing"), ("y", "resolved")]
        assert delivery.workers[1].results["failed"] == failed  # counters go on
        assert delivery.workers[1].results["delivered"] == 3
        assert delivery.firing.items()[0][1] == "page"  # severity of an alert already sent
        delivery.write([event(id_="z")])
        assert delivery.firing.items()[-1][1] == "ticket"  # the new rules name severities
        delivery.write([event("resolved", id_="x")])  # an episode keeps its severity
        assert [p.severity for p in delivery.workers[0].queue] == ["ticket", "page"]

        delivery.reconfigure(Settings(alerts={"sinks": [webhook("kept", kept_rx.url)]}))
        assert [w.name for w in delivery.workers] == ["kept"]
        await settle(delivery)
    finally:
        await delivery.stop(1.0)
        for rx in (kept_rx, moved_rx, new_rx):
            rx.close()
    assert ("z", "firing") in ids_posted(kept_rx) and ("z", "firing") not in ids_posted(new_rx)
    assert ("x", "resolved") in ids_posted(kept_rx)


async def test_a_sink_that_cannot_be_built_leaves_the_delivery_unchanged(tmp_path: Path) -> None:
    delivery, _ = delivery_with(webhook("hook", "http://127.0.0.1:9"))
    workers = list(delivery.workers)
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate")
    bad = Settings(alerts={"sinks": [{"type": "webhook", "name": "tls", "url": "https://h",
                                      "tls": {"ca_file": str(ca)}}]})
    with pytest.raises(SinkError):
        delivery.reconfigure(bad)
    assert delivery.workers == workers
