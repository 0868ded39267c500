"""Wiring for ``statuswatch run``: detector + Kafka + alert sink + /metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable

from statuswatch.config import Settings
from statuswatch.core.decide import AlertEvent
from statuswatch.core.detector import Detector
from statuswatch.shell.metrics import RuntimeStatus, build_registry, serve
from statuswatch.shell.runtime import KafkaRunner, install_signal_handlers
from statuswatch.shell.sinks import JsonLinesSink, describe

log = logging.getLogger(__name__)


def log_events(events: list[AlertEvent]) -> None:
    for event in events:
        log.warning("%s", describe(event))


async def run_forever(
    settings: Settings,
    metrics_port: int | None = None,
    on_events: Callable[[list[AlertEvent]], None] | None = log_events,
    runner_hook: Callable[[KafkaRunner], None] | None = None,
) -> int:
    """Run until SIGINT/SIGTERM; return the exit code."""
    detector = Detector(settings)
    status = RuntimeStatus()
    server = None
    if settings.metrics.enabled:
        port = settings.metrics.port if metrics_port is None else metrics_port
        server, bound = serve(build_registry(detector, status), settings.metrics.host, port)
        log.info("metrics on http://%s:%d/metrics", settings.metrics.host, bound)
    sink = JsonLinesSink(settings.alerts.output)
    runner = KafkaRunner(settings, detector, sink, status, on_events=on_events)
    install_signal_handlers(runner.stop)
    if runner_hook is not None:
        runner_hook(runner)
    log.info(
        "consuming topic %s from %s as group %s",
        settings.kafka.topic, settings.kafka.bootstrap_servers, settings.kafka.group_id,
    )
    try:
        await runner.run()
    finally:
        sink.close()
        if server is not None:
            server.shutdown()
    log.info("stopped cleanly")
    return 0
