"""Prometheus metrics, collected from the detector at scrape time.

A custom collector reads the detector's counters and its latest window, so the
hot path never touches prometheus-client objects. Label values come only from
closed sets: codes 100-599, capped scopes, and the fixed invalid reasons.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from statuswatch import __version__
from statuswatch.core.columns import INVALID_REASONS, code_label
from statuswatch.core.detector import Detector


def scope_label(scope: dict[str, str]) -> str:
    """Stable label value of a scope.

    >>> scope_label({})
    'fleet'
    >>> scope_label({"service": "a", "route": "b"})
    'service=a,route=b'
    """
    return ",".join(f"{k}={v}" for k, v in scope.items()) or "fleet"


#: Why a partition cannot be read when fetching it again cannot heal it: the closed set of
#: ``shell.kafka_source.unreadable_reason`` and of a metric label.
UNREADABLE_REASONS = ("unsupported_codec", "corrupt_batch", "record_too_large")


@dataclass(frozen=True, slots=True)
class UnreadablePartition:
    """A partition the consumer paused because retrying cannot heal its records."""

    reason: str  # one of UNREADABLE_REASONS
    message: str  # names topic, partition, offset and the cause
    since_monotonic: float


@dataclass(slots=True)
class RuntimeStatus:
    """What the shell knows and the pure detector does not."""

    consumer_lag: dict[int, int] = field(default_factory=dict)
    ready: bool = False
    last_processed_unix: float | None = None
    commits: int = 0
    records_reread: int = 0  # read again after a rebalance, failed commit or restart
    last_snapshot_unix: float | None = None
    # Health, set by the runtime's monitor task (shell/health.py).
    not_ready_reason: str = "starting"
    broker_up: bool = False
    poll_failures: int = 0  # consecutive failed polls
    last_heartbeat_monotonic: float = field(default_factory=time.monotonic)
    event_loop_lag_seconds: float = 0.0
    stalled_seconds: float = 0.0  # lag > 0 and no consumed progress for this long
    # The rejected share of the input (decode.mostly_invalid), set by the monitor task.
    input_rejected_ratio: float = 0.0
    input_mostly_invalid: bool = False
    #: Partitions paused because their records cannot be read (see UnreadablePartition).
    unreadable: dict[int, UnreadablePartition] = field(default_factory=dict)


class DetectorCollector(Collector):
    def __init__(self, detector: Detector, status: RuntimeStatus) -> None:
        self.detector = detector
        self.status = status

    def collect(self) -> Iterator[Metric]:
        det, c = self.detector, self.detector.counters
        yield _counter("statuswatch_records", "Records read (valid and invalid).", c.records)
        yield _counter(
            "statuswatch_records_reread",
            "Records read again after a rebalance, a failed commit or a restart "
            "(Kafka delivers at least once); windows do not count them twice.",
            self.status.records_reread,
        )
        invalid = CounterMetricFamily(
            "statuswatch_invalid_records", "Records skipped, by reason.", labels=["reason"]
        )
        for reason in INVALID_REASONS:
            invalid.add_metric([reason], c.invalid.get(reason, 0))
        yield invalid
        yield _counter("statuswatch_late_records", "Records later than the lateness.", c.late)
        yield _counter("statuswatch_windows_closed", "Windows closed.", c.windows_closed)
        yield _counter("statuswatch_alerts_fired", "Alerts that started firing.", c.alerts_fired)
        requests = CounterMetricFamily(
            "statuswatch_requests", "Requests decoded, by status code.", labels=["code"]
        )
        for code, n in sorted(c.codes.items()):
            requests.add_metric([str(code)], n)
        yield requests
        last = GaugeMetricFamily(
            "statuswatch_last_event_timestamp_seconds", "Event time of the newest record."
        )
        if c.last_event_ms is not None:
            last.add_metric([], c.last_event_ms / 1000)
        yield last
        processed = GaugeMetricFamily(
            "statuswatch_last_processed_timestamp_seconds", "Wall time of the last processed batch."
        )
        if self.status.last_processed_unix is not None:
            processed.add_metric([], self.status.last_processed_unix)
        yield processed
        lag = GaugeMetricFamily(
            "statuswatch_consumer_lag",
            "Offsets behind the end of the partition (the high watermark; read committed: the "
            "last stable offset).", labels=["partition"]
        )
        for partition, n in sorted(self.status.consumer_lag.items()):
            lag.add_metric([str(partition)], n)
        yield lag
        yield from status_metrics(self.status)
        yield _gauge("statuswatch_scopes", "Scopes tracked (rows).", len(det.scopes))
        folded = CounterMetricFamily(
            "statuswatch_scopes_folded", "Scopes folded into 'other' by the cap.", labels=["level"]
        )
        recycled = CounterMetricFamily(
            "statuswatch_scopes_recycled",
            "Rows handed from a light tracked scope to a heavier folded one (top-K by volume).",
            labels=["level"],
        )
        for level, n_folded, n_recycled in zip(
            det.scopes.levels, det.scopes.folded, det.scopes.recycled, strict=True
        ):
            name = "+".join(level) or "fleet"
            folded.add_metric([name], n_folded)
            recycled.add_metric([name], n_recycled)
        yield folded
        yield recycled
        yield _gauge(
            "statuswatch_scopes_cap", "Most scopes tracked per level (scopes.max_per_level).",
            det.scopes.max_per_level,
        )
        yield from self._window_metrics()

    def _window_metrics(self) -> Iterator[Metric]:
        det = self.detector
        labels = ["scope", "code"]
        observed = GaugeMetricFamily(
            "statuswatch_share_observed", "Share of the scope's requests in the last window.",
            labels=labels,
        )
        expected = GaugeMetricFamily(
            "statuswatch_share_expected", "Baseline share expected for the last window.",
            labels=labels,
        )
        score = GaugeMetricFamily(
            "statuswatch_anomaly_score",
            "-log10 tail probability of the last window (code=\"all\": the scope's volume).",
            labels=[*labels, "direction"],
        )
        vol_observed = GaugeMetricFamily(
            "statuswatch_volume_observed", "Requests of the scope in the last window.",
            labels=["scope"],
        )
        vol_expected = GaugeMetricFamily(
            "statuswatch_volume_expected", "Requests expected in the last window.", labels=["scope"]
        )
        warming = GaugeMetricFamily(
            "statuswatch_scope_warming_up", "1 while a scope has too little history to alert.",
            labels=["scope"],
        )
        report = det.last_report
        if report is not None:
            shares, exp = report.exact_shares(), report.expectation
            rows, cols = shares.up.shape
            nz = (shares.observed_share > 0) | (exp.share[:rows, :cols] > 0)
            for r, c in zip(*np.nonzero(nz), strict=True):
                lv = [scope_label(det.scopes.labels[r]), code_label(det.codes.codes[c])]
                observed.add_metric(lv, float(shares.observed_share[r, c]))
                expected.add_metric(lv, float(exp.share[r, c]))
                score.add_metric([*lv, "up"], float(shares.up[r, c]))
                score.add_metric([*lv, "down"], float(shares.down[r, c]))
            for r in range(rows):
                scope = scope_label(det.scopes.labels[r])
                warming.add_metric([scope], float(not exp.warm[r]))
                vol_observed.add_metric([scope], float(shares.totals[r]))
                vol_expected.add_metric([scope], float(report.volume.expected[r]))
                score.add_metric([scope, "all", "up"], float(report.volume.up[r]))
                score.add_metric([scope, "all", "down"], float(report.volume.down[r]))
        yield from (observed, expected, score, vol_observed, vol_expected, warming)
        active = GaugeMetricFamily(
            "statuswatch_alert_active",
            "1 while an alert fires (alerts folded into another alert are not listed).",
            labels=["scope", "code", "direction", "signal"],
        )
        for r, c, d, sig in sorted(det.alerts.firing_keys(paged_only=True)):
            code = code_label(det.codes.code_at(c))
            active.add_metric([scope_label(det.scopes.labels[r]), code, d, sig], 1.0)
        yield active
        shadow = CounterMetricFamily(
            "statuswatch_shadow_alerts",
            "Alerts that shadow-mode rules would have fired, by rule.", labels=["rule"],
        )
        for rule in det.settings.detect.rules:
            if rule.shadow:
                shadow.add_metric([rule.name], det.counters.shadow_fired.get(rule.name, 0))
        yield shadow


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def build_registry(detector: Detector, status: RuntimeStatus) -> CollectorRegistry:
    registry = StatusRegistry(status)
    registry.register(DetectorCollector(detector, status))
    return registry


def status_metrics(st: RuntimeStatus) -> Iterator[Metric]:
    """Readiness, the broker, the watchdog and the input's rejected share: the same
    for ``run`` and ``aggregate``."""
    yield _gauge("statuswatch_ready", "1 when consuming normally.", float(st.ready))
    yield from _health_metrics(st)
    yield from _input_metrics(st)


def _health_metrics(st: RuntimeStatus) -> Iterator[Metric]:
    yield _gauge(
        "statuswatch_broker_up",
        "1 while the consumer gets fetch responses from the broker.", float(st.broker_up),
    )
    yield _gauge(
        "statuswatch_event_loop_lag_seconds",
        "Largest asyncio sleep overshoot over the last seconds.", st.event_loop_lag_seconds,
    )
    yield _gauge(
        "statuswatch_consumer_stalled_seconds",
        "How long lag has been > 0 with no consumed progress (the watchdog exits at "
        "health.stuck_timeout_seconds).", st.stalled_seconds,
    )
    unreadable = GaugeMetricFamily(
        "statuswatch_consumer_unreadable_partitions",
        "Partitions paused because their records cannot be read and retrying cannot "
        "heal it, by reason (the watchdog exits at health.stuck_timeout_seconds).",
        labels=["reason"],
    )
    for reason in UNREADABLE_REASONS:
        n = sum(1 for u in list(st.unreadable.values()) if u.reason == reason)
        unreadable.add_metric([reason], n)
    yield unreadable
    snapshot = GaugeMetricFamily(
        "statuswatch_snapshot_age_seconds", "Seconds since the last durable state snapshot."
    )
    if st.last_snapshot_unix is not None:
        snapshot.add_metric([], max(0.0, time.time() - st.last_snapshot_unix))
    yield snapshot
    build = GaugeMetricFamily(
        "statuswatch_build_info", "Always 1; the version as a label.", labels=["version"]
    )
    build.add_metric([__version__], 1.0)
    yield build


def _input_metrics(st: RuntimeStatus) -> Iterator[Metric]:
    yield _gauge(
        "statuswatch_input_rejected_ratio",
        "Share of the records read in the last decode.mostly_invalid.window_seconds "
        "that were rejected (the invalid records counter has the reasons).",
        st.input_rejected_ratio,
    )
    yield _gauge(
        "statuswatch_input_mostly_invalid",
        "1 while at least decode.mostly_invalid.share of at least .min_records records "
        "were rejected: /ready says why, volume drops it explains do not page.",
        float(st.input_mostly_invalid),
    )


class StatusRegistry(CollectorRegistry):
    """A registry that also carries the runtime status, for ``/ready`` and ``/healthz``."""

    def __init__(self, status: RuntimeStatus) -> None:
        super().__init__(auto_describe=False)
        self.status = status
