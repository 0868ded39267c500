"""The Grafana dashboards are well formed and query only what statuswatch exports.

Their queries are run against a real Prometheus in tests/integration/test_dashboard.py
(``run``) and tests/integration/test_scale_out_dashboard.py (the two-stage layout).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily

from statuswatch.config import Settings
from statuswatch.core.detector import Detector
from statuswatch.shell.aggregate import Aggregator, AggregatorCollector
from statuswatch.shell.delivery import AlertDelivery, DeliveryCollector
from statuswatch.shell.merging import PartialsCollector, PartialsRunner
from statuswatch.shell.metrics import RuntimeStatus, StatusRegistry, build_registry
from statuswatch.shell.sinks import ListSink
from statuswatch.shell.sources import RawBatch
from statuswatch.simulate import SimSpec, encode, generate
from tests import grafana
from tests.unit.test_cli import bind_mounts

START_MS = 1_680_566_400_000

#: What the ``run`` dashboard must show (the metrics behind each of its sections).
REQUIRED = {
    "statuswatch_share_observed", "statuswatch_share_expected",  # share against expected
    "statuswatch_anomaly_score",
    "statuswatch_alert_active",  # firing alerts
    "statuswatch_records_total", "statuswatch_consumer_lag", "statuswatch_invalid_records_total",
    "statuswatch_scopes_folded_total", "statuswatch_scope_warming_up",
    "statuswatch_alert_deliveries_total", "statuswatch_alert_queue",
}


def exported_names() -> set[str]:
    """Every metric name on /metrics of a detector that has closed windows, with a sink."""
    settings = Settings(alerts={"sinks": [
        {"type": "webhook", "name": "hook", "url": "http://127.0.0.1:9/"}]})
    detector = Detector(settings)
    spec = SimSpec(seed=2, rate=50.0, n_apps=20)
    offset = 0
    for chunk in generate(spec, START_MS, START_MS + 120_000, chunk_ms=10_000):
        values = encode("kong", chunk, spec)
        detector.process(values, now_ms=int(chunk.ts_ms[-1]),
                         offsets=np.arange(offset, offset + len(values), dtype=np.int64))
        offset += len(values)
    registry = build_registry(detector, RuntimeStatus(consumer_lag={0: 0}))
    registry.register(DeliveryCollector(AlertDelivery(settings, ListSink())))
    return names_of(registry)


def names_of(registry: CollectorRegistry) -> set[str]:
    names = set()
    for family in registry.collect():
        names.add(family.name)
        if isinstance(family, CounterMetricFamily):
            names.add(f"{family.name}_total")
        names.update(s.name for s in family.samples)
    return names


#: What the scale-out dashboard must show, stage 1 and stage 2.
REQUIRED_SCALE_OUT = {
    "statuswatch_aggregate_records_total",  # per worker and in total
    "statuswatch_aggregate_consumer_lag",  # per worker and partition
    "statuswatch_aggregate_invalid_records_total",  # by reason
    "statuswatch_aggregate_partials_total", "statuswatch_aggregate_transactions_total",
    "statuswatch_aggregate_last_transaction_timestamp_seconds",
    "statuswatch_aggregate_partitions",  # rebalances
    "statuswatch_partials_age_seconds", "statuswatch_partials_source_idle",
    "statuswatch_partials_duplicate_total", "statuswatch_partials_invalid_total",
}


def scale_out_exported_names() -> set[str]:
    """Every metric name on /metrics of a stage-1 worker that counted a partition's
    records (one of them invalid) and of a stage 2 that merged the worker's partials."""
    settings = Settings(kafka={"topic": "logs"}, aggregate={"topic": "aggs"})
    worker = Aggregator(settings)
    worker.own(0, START_MS)
    spec = SimSpec(seed=2, rate=20.0, n_apps=5)
    (chunk,) = generate(spec, START_MS, START_MS + 30_000, chunk_ms=30_000)
    values = [*encode("kong", chunk, spec), b"not a log line"]
    worker.take(RawBatch("logs", 0, np.arange(len(values), dtype=np.int64), values), START_MS)
    worker.status.consumer_lag = {0: 0}
    worker.close(START_MS + 60_000)
    partials = worker.outgoing(0, START_MS + 60_000)
    assert worker.status.invalid and len(partials) > 1  # closed windows, then the progress
    stage1 = StatusRegistry(worker.runtime)
    stage1.register(AggregatorCollector(worker))

    runner = PartialsRunner(settings, Detector(settings), ListSink())
    runner.take(RawBatch("aggs", 0, np.arange(len(partials), dtype=np.int64),
                         [p.encode() for p in partials]), START_MS + 60_000)
    assert runner.last_partial and not runner.invalid_partials
    stage2 = build_registry(runner.detector, runner.status)
    stage2.register(PartialsCollector(runner))
    return names_of(stage1) | names_of(stage2)


#: (dashboard, what it may query, what it must query)
DASHBOARDS = {
    "run": (grafana.DASHBOARD, exported_names, REQUIRED),
    "scale-out": (grafana.SCALE_OUT, scale_out_exported_names, REQUIRED_SCALE_OUT),
}
dashboards = pytest.mark.parametrize("path", [d[0] for d in DASHBOARDS.values()],
                                     ids=list(DASHBOARDS))


@pytest.mark.parametrize(("path", "exported", "required"), DASHBOARDS.values(),
                         ids=list(DASHBOARDS))
def test_every_panel_queries_exported_metrics_and_covers_each_section(
    path: Path, exported: Callable[[], set[str]], required: set[str]
) -> None:
    used = grafana.metrics_used(grafana.load(path))
    assert used - exported() == set()
    assert required - used == set()


def test_the_scale_out_instances_are_the_workers_and_stage_2():
    """Its instance variable offers the processes with a stage's own metrics (not a ``run``
    beside them), and "All" means those: no catch-all regex."""
    instance = grafana.variables(grafana.load(grafana.SCALE_OUT))["instance"]
    selector, label = grafana.label_values(instance)
    assert label == "instance"
    assert set(grafana.METRIC.findall(selector)) == {
        "statuswatch_aggregate_partitions", "statuswatch_partials_duplicate_total"}
    assert instance["includeAll"] and not instance.get("allValue")


@dashboards
def test_every_variable_used_is_defined_and_every_query_uses_the_datasource_variable(
    path: Path,
) -> None:
    dashboard = grafana.load(path)
    defined = set(grafana.variables(dashboard))
    assert grafana.variables(dashboard)["DS_PROMETHEUS"]["type"] == "datasource"
    datasource = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    for panel, target in grafana.queries(dashboard):
        where = f"panel {panel['title']!r} target {target['refId']}"
        assert grafana.variables_in(target["expr"]) - defined - grafana.BUILTINS == set(), where
        assert "instance" in grafana.variables_in(target["expr"]), where  # one instance at a time
        assert target["datasource"] == panel["datasource"] == datasource, where
        assert target["expr"].strip(), where
    for variable in grafana.variables(dashboard).values():
        if variable["type"] == "query":
            selector, _ = grafana.label_values(variable)
            assert grafana.variables_in(selector) - defined == set(), variable["name"]
            assert variable["datasource"] == datasource
    repeated = {p["repeat"] for p in grafana.panels(dashboard) if "repeat" in p}
    assert repeated <= {n for n, v in grafana.variables(dashboard).items() if v.get("multi")}


@dashboards
def test_panels_have_unique_ids_and_refids_and_do_not_overlap(path: Path) -> None:
    dashboard = grafana.load(path)
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in grafana.panels(dashboard):
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        assert panel["title"] and panel["description"], panel["id"]
    boxes = [p["gridPos"] for p in dashboard["panels"]]
    for box in boxes:
        assert box["x"] >= 0 and box["x"] + box["w"] <= 24 and box["h"] > 0
    for a, b in itertools.combinations(boxes, 2):
        overlap_x = a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
        overlap_y = a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
        assert not (overlap_x and overlap_y), (a, b)


def test_docker_compose_provisions_every_dashboard():
    """Grafana's compose service mounts each dashboard where the provider reads them."""
    compose = yaml.safe_load((grafana.REPO / "docker-compose.yml").read_text())
    mounted = {source: Path(target)
               for target, (source, _) in bind_mounts(compose["services"]["grafana"]).items()}
    providers = grafana.REPO / "config" / "grafana" / "provisioning" / "dashboards"
    (provider,) = [p for f in providers.glob("*.yml")
                   for p in yaml.safe_load(f.read_text())["providers"]]
    shipped = sorted((grafana.REPO / "config" / "grafana").glob("*.json"))
    assert {grafana.DASHBOARD, grafana.SCALE_OUT} <= set(shipped)
    for path in shipped:
        assert mounted[path].parent == Path(provider["options"]["path"]), path
    uids = [grafana.load(path)["uid"] for path in shipped]
    assert len(uids) == len(set(uids))


def test_the_scale_out_dashboard_links_to_the_detection_dashboard():
    (link,) = grafana.load(grafana.SCALE_OUT)["links"]
    assert link["url"].startswith(f"/d/{grafana.load()['uid']}/")


def test_substitution_replaces_every_form_and_refuses_unknown_variables():
    values = {"code": "403", "__rate_interval": "5s"}
    expr = 'rate(x{code=~"$code", c="${code}", d="${code:regex}", e="[[code]]"}[$__rate_interval])'
    assert grafana.substitute(expr, values) == \
        'rate(x{code=~"403", c="403", d="403", e="403"}[5s])'
    with pytest.raises(KeyError, match="scope"):
        grafana.substitute('x{a=~"$scope"}', values)
