"""Wiring for ``statuswatch run``: detector + Kafka + alert sink + /metrics, /ready, /healthz."""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from statuswatch.config import Settings
from statuswatch.core import kernels
from statuswatch.core.decide import AlertEvent
from statuswatch.core.detector import Detector
from statuswatch.errors import ConfigError, SinkError
from statuswatch.shell.delivery import AlertDelivery, DeliveryCollector, default_external_url
from statuswatch.shell.http import serve
from statuswatch.shell.metrics import RuntimeStatus, StatusRegistry, build_registry
from statuswatch.shell.reload import ConfigReloader, ReloadCollector
from statuswatch.shell.runtime import (
    KafkaRunner,
    install_acknowledge_handler,
    install_signal_handlers,
)
from statuswatch.shell.sinks import JsonLinesSink, WindowsSink, describe

log = logging.getLogger(__name__)


#: aiokafka loggers that repeat one ERROR line many times a second while a broker is away.
NOISY_LOGGERS = (
    "aiokafka", "aiokafka.conn", "aiokafka.client",
    "aiokafka.consumer.fetcher", "aiokafka.consumer.group_coordinator",
)


class RepeatFilter(logging.Filter):
    """Let one record per (logger, level, message template) through every ``every_s``.

    While the broker is down aiokafka logs each reconnect attempt (~70 lines/s); the
    outage itself is reported by ``/ready`` and ``statuswatch_broker_up``. The first
    line after a quiet spell says how many were dropped.
    """

    def __init__(self, every_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every_s = every_s
        self.clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        last, dropped = self._seen.get(key, (None, 0))
        if last is not None and now - last < self.every_s:
            self._seen[key] = (last, dropped + 1)
            return False
        if len(self._seen) > 1000:  # bounded: message templates are few
            self._seen.clear()
        self._seen[key] = (now, 0)
        if dropped:
            record.msg = f"{record.msg} ({dropped} similar suppressed in {self.every_s:g}s)"
        return True


def quiet_repeats(every_s: float = 30.0) -> RepeatFilter:
    flt = RepeatFilter(every_s)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).addFilter(flt)
    return flt


def warn_if_no_native_code(detector: Detector) -> bool:
    """Log a loud warning for each of statuswatch's C extensions the run goes without."""
    missing = []
    if detector.decoder.scanner_missing:  # not with a format without it (combined)
        missing.append(
            f"C scanner (statuswatch.core.decode._jsonscan) is not built: "
            f"{detector.decoder.name} records are decoded one by one on the full decoder, "
            "about 5x slower"
        )
    if not kernels.ENABLED:
        missing.append(
            "C kernels (statuswatch.core._kernels) are not built: every window's share "
            "scores and learning run on numpy, about 1.5x slower"
        )
    for what in missing:
        log.warning("!!! statuswatch's %s. Reinstall with a C compiler present "
                    "(pip install -e .). !!!", what)
    return not missing


def listener_error(
    exc: OSError, host: str, port: int, cert_file: str | None, key_file: str | None
) -> ConfigError:
    """One line naming the ``metrics.*`` key behind a listener that could not start.

    >>> import errno
    >>> str(listener_error(OSError(errno.EADDRINUSE, "Address already in use"),
    ...     "127.0.0.1", 9464, None, None))
    'metrics.port 9464: cannot listen on 127.0.0.1:9464: Address already in use'
    """
    why = exc.strerror or str(exc)
    for key, path in (("metrics.tls_cert_file", cert_file), ("metrics.tls_key_file", key_file)):
        if path is None:
            continue
        try:  # ssl names neither file when one cannot be opened
            Path(path).open("rb").close()
        except OSError as err:
            return ConfigError(f"{key} {path}: cannot read: {err.strerror or err}")
    if isinstance(exc, ssl.SSLError):
        return ConfigError(
            f"metrics.tls_cert_file {cert_file} / metrics.tls_key_file {key_file}: "
            f"not a usable certificate and key: {exc.reason or exc}"
        )
    if isinstance(exc, socket.gaierror):
        return ConfigError(f"metrics.host {host}: cannot listen on {host}:{port}: {why}")
    return ConfigError(f"metrics.port {port}: cannot listen on {host}:{port}: {why}")


def log_events(events: list[AlertEvent]) -> None:
    for event in events:
        log.warning("%s", describe(event))


async def run_forever(
    settings: Settings,
    metrics_port: int | None = None,
    on_events: Callable[[list[AlertEvent]], None] | None = log_events,
    runner_hook: Callable[[KafkaRunner], None] | None = None,
    config_path: str | Path | None = None,
    reload_settings: Callable[[], Settings] | None = None,
) -> int:
    """Run until SIGINT/SIGTERM (exit 0) or the stuck-consumer watchdog fires (exit 3).

    ``reload_settings`` loads the configuration again (from ``config_path`` and the
    environment) on SIGHUP or, with ``reload.watch``, when the file changes.
    """
    quiet_repeats()
    detector = Detector(settings)
    warn_if_no_native_code(detector)
    status = RuntimeStatus()
    server = None
    registry = None
    try:
        sink = JsonLinesSink(settings.alerts.output)
    except SinkError as exc:
        raise ConfigError(f"alerts.output: {exc}") from exc
    delivery = AlertDelivery(settings, sink, still_firing=detector.alerts.firing_ids)

    def apply(new: Settings) -> None:
        delivery.reconfigure(new)  # first: it may refuse, before anything changed
        detector.reconfigure(new)

    reloader = ConfigReloader(
        config_path, settings, reload_settings or (lambda: settings), apply
    )
    if settings.metrics.enabled:
        m = settings.metrics
        port = m.port if metrics_port is None else metrics_port
        registry = build_registry(detector, status)
        registry.register(DeliveryCollector(delivery))
        registry.register(ReloadCollector(reloader))
        try:
            server, bound = serve(
                registry, m.host, port, status=status,
                tls_cert_file=m.tls_cert_file, tls_key_file=m.tls_key_file,
                heartbeat_timeout_s=settings.health.heartbeat_timeout_seconds,
                alerts=delivery.firing.alerts,
            )
        except OSError as exc:
            raise listener_error(exc, m.host, port, m.tls_cert_file, m.tls_key_file) from exc
        scheme = "https" if m.tls_cert_file else "http"
        if settings.alerts.external_url is None:
            delivery.external_url = default_external_url(m.host, bound).replace(
                "http://", f"{scheme}://", 1)
        log.info("metrics on %s://%s:%d/metrics (also /ready, /healthz, /alerts)",
                 scheme, m.host, bound)
    windows_sink = None
    if settings.alerts.windows_output:
        try:
            windows_sink = WindowsSink(settings.alerts.windows_output, detector)
        except SinkError as exc:
            sink.close()
            raise ConfigError(f"alerts.windows_output: {exc}") from exc
        detector.window_listener = windows_sink.write
    if settings.kafka.input == "aggregates":
        from statuswatch.shell.merging import PartialsCollector, PartialsRunner

        merging = PartialsRunner(settings, detector, delivery, status=status, on_events=on_events)
        if registry is not None:
            registry.register(PartialsCollector(merging))
        runner: KafkaRunner = merging
    else:
        runner = KafkaRunner(settings, detector, delivery, status, on_events=on_events)
    if registry is not None and runner.dead_letters is not None:
        from statuswatch.shell.deadletter import DeadLetterCollector

        registry.register(DeadLetterCollector(runner.dead_letters))
    install_signal_handlers(runner.stop)
    install_acknowledge_handler(detector)
    watch = reloader.install()
    if runner_hook is not None:
        runner_hook(runner)
    log.info(
        "consuming topic %s from %s as group %s",
        runner.source.cfg.topic, settings.kafka.bootstrap_servers, settings.kafka.group_id,
    )
    await delivery.start()
    try:
        await runner.run()
    finally:
        watch.cancel()
        await delivery.stop(settings.health.shutdown_timeout_seconds)
        sink.close()
        if windows_sink is not None:
            windows_sink.close()
        if server is not None:
            server.shutdown()
    if runner.exit_code:
        log.error("stopped by the watchdog (exit %d): %s", runner.exit_code, runner.exit_reason)
        return runner.exit_code
    log.info("stopped cleanly")
    return 0


async def aggregate_forever(settings: Settings, metrics_port: int | None = None) -> int:
    """``statuswatch aggregate`` until SIGINT/SIGTERM (exit 0), exit 3 when the
    stuck-consumer watchdog fires (as ``run``), or exit 4 when a transaction fails
    (this worker was fenced, or the broker refused it)."""
    from statuswatch.shell.aggregate import Aggregator, AggregatorCollector

    quiet_repeats()
    aggregator = Aggregator(settings)
    install_signal_handlers(aggregator.stop)
    server = None
    if settings.metrics.enabled:
        m = settings.metrics
        port = m.port if metrics_port is None else metrics_port
        status = aggregator.runtime
        registry = StatusRegistry(status)
        registry.register(AggregatorCollector(aggregator))
        try:
            server, bound = serve(registry, m.host, port, status=status,
                                  tls_cert_file=m.tls_cert_file, tls_key_file=m.tls_key_file,
                                  heartbeat_timeout_s=settings.health.heartbeat_timeout_seconds)
        except OSError as exc:
            raise listener_error(exc, m.host, port, m.tls_cert_file, m.tls_key_file) from exc
        log.info("metrics on %s:%d/metrics", m.host, bound)
    try:
        await aggregator.run()
    finally:
        if server is not None:
            server.shutdown()
    if aggregator.exit_code:
        if aggregator.exit_reason:
            log.error("stopped by the watchdog (exit %d): %s", aggregator.exit_code,
                      aggregator.exit_reason)
        return aggregator.exit_code
    log.info("stopped cleanly")
    return 0
