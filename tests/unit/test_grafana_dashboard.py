"""The Grafana dashboard is well formed and queries only what statuswatch exports.

Its queries are run against a real Prometheus in tests/integration/test_dashboard.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily

from statuswatch.config import Settings
from statuswatch.core.detector import Detector
from statuswatch.shell.delivery import AlertDelivery, DeliveryCollector
from statuswatch.shell.metrics import RuntimeStatus, build_registry
from statuswatch.shell.sinks import ListSink
from statuswatch.simulate import SimSpec, encode, generate
from tests import grafana

START_MS = 1_680_566_400_000

#: What the dashboard must show (the metrics behind each of its sections).
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


def test_every_panel_queries_exported_metrics_and_covers_each_section():
    dashboard = grafana.load()
    used = {m for _, t in grafana.queries(dashboard) for m in grafana.METRIC.findall(t["expr"])}
    used |= {m for v in grafana.variables(dashboard).values() if v["type"] == "query"
             for m in grafana.METRIC.findall(grafana.label_values(v)[0])}
    assert used - exported_names() == set()
    assert REQUIRED - used == set()


def test_every_variable_used_is_defined_and_every_query_uses_the_datasource_variable():
    dashboard = grafana.load()
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


def test_panels_have_unique_ids_and_refids_and_do_not_overlap():
    dashboard = grafana.load()
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


def test_substitution_replaces_every_form_and_refuses_unknown_variables():
    values = {"code": "403", "__rate_interval": "5s"}
    expr = 'rate(x{code=~"$code", c="${code}", d="${code:regex}", e="[[code]]"}[$__rate_interval])'
    assert grafana.substitute(expr, values) == \
        'rate(x{code=~"403", c="403", d="403", e="403"}[5s])'
    with pytest.raises(KeyError, match="scope"):
        grafana.substitute('x{a=~"$scope"}', values)
