"""Every query of the scale-out dashboard returns data from a real Prometheus scraping a
real ``statuswatch aggregate`` worker and a real ``statuswatch run --input aggregates`` on
the real broker, after simulated traffic with invalid records in it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import grafana
from tests.integration.promstack import RULES, LocalPrometheus, started
from tests.integration.support import free_port, metric, simulate_into, wait_for
from tests.integration.test_dashboard import run_query
from tests.integration.test_poison import produce as produce_values
from tests.integration.test_two_stage import Layout

START_S = 1_680_566_400  # 2023-04-04T00:00:00Z
SOURCE_PARTITIONS = 2
INVALID = 5  #: records that are not JSON, produced twice: the invalid-records rate moves

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def scraping(targets: list[str]) -> LocalPrometheus:
    """A Prometheus scraping every target as job ``statuswatch`` (as the compose
    Prometheus scrapes the workers and stage 2), with the shipped rules, alerting nowhere."""
    prometheus = LocalPrometheus(targets[0], RULES, f"127.0.0.1:{free_port()}")
    config = yaml.safe_load(prometheus.config.read_text())
    config["scrape_configs"][0]["static_configs"][0]["targets"] = targets
    del config["alerting"]
    prometheus.config.write_text(yaml.safe_dump(config))
    return prometheus


def series_of(targets: list[tuple[str, dict[str, Any], str]], title: str,
              ref: str) -> tuple[dict[str, Any], str]:
    """(target, substituted query) of the panel ``title``'s target ``ref``."""
    (found,) = [(t, expr) for panel, t, expr in targets if panel == title and t["refId"] == ref]
    return found


@pytest.mark.parametrize("topic", [SOURCE_PARTITIONS], indirect=True)
def test_every_scale_out_dashboard_query_returns_data(
    kafka_broker: Any, topic: str, tmp_path: Path,
) -> None:
    dashboard = grafana.load(grafana.SCALE_OUT)
    bootstrap = kafka_broker.bootstrap_servers
    aggregates = f"{topic}-aggregates"
    kafka_broker.create_topic(aggregates, 1)
    layout = Layout(tmp_path, bootstrap, topic, aggregates)
    configs = {"worker": layout.config("worker"), "stage2": layout.config("stage2", stage2=True)}
    instances = {name: f"127.0.0.1:{port}" for name, port in layout.ports.items()}
    prometheus = scraping(list(instances.values()))
    started(prometheus)
    start = time.time()

    def scraped(query: str) -> list[dict[str, Any]]:
        """``query``'s instant result, while checking that both processes still run."""
        layout.alive("worker")
        layout.alive("stage2")
        return prometheus.query(query)

    try:
        layout.start("worker", "aggregate", configs["worker"])
        layout.start("stage2", "run", configs["stage2"])

        def owning() -> bool:
            layout.alive("worker")
            owned = metric(layout.ports["worker"], "statuswatch_aggregate_partitions")
            return owned == SOURCE_PARTITIONS

        wait_for(owning, 90, "the worker to own every source partition")
        # Prometheus has seen both before the traffic: the rates start from zero.
        wait_for(lambda: len(scraped("count_over_time(statuswatch_build_info[1m]) >= 2")) == 2,
                 30, "two scrapes of each process")

        simulate_into(bootstrap, topic, "--rate", "100", "--duration", "300",
                      "--start", str(START_S), "--seed", "4", "--apps", "20")
        invalid = "statuswatch_aggregate_invalid_records_total{reason=\"invalid_json\"}"
        for produced in (INVALID, 2 * INVALID):
            asyncio.run(produce_values(bootstrap, topic, [b"\x1b[2J not a log line"] * INVALID))
            wait_for(lambda n=produced: scraped(f"{invalid} == {n}"), 30,
                     f"Prometheus to scrape {produced} invalid records")
        # Stage 1 wrote every window and reported both partitions idle, stage 2 read it.
        wait_for(lambda: len(scraped("statuswatch_partials_source_idle == 1"))
                 == SOURCE_PARTITIONS, 60, "stage 2 to see every source partition idle")

        values = {"instance": grafana.multi_value(sorted(instances.values())),
                  "__rate_interval": "5s", "__interval": "1s", "__range": "5m"}
        # The instance variable offers both processes (and Grafana's "All" means them).
        selector, label = grafana.label_values(grafana.variables(dashboard)["instance"])
        assert {s[label] for s in prometheus.series(selector)} == set(instances.values())

        targets = [(p["title"], t, grafana.substitute(t["expr"], values))
                   for p, t in grafana.queries(dashboard)]

        def empty() -> list[str]:
            return [f"{title} [{t['refId']}]: {expr}" for title, t, expr in targets
                    if not run_query(prometheus, t, expr, start)]

        wait_for(lambda: not empty(), 30,  # rates need two scrapes
                 lambda: "queries without data:\n" + "\n".join(empty()))

        def shown(title: str, ref: str) -> list[dict[str, Any]]:
            target, expr = series_of(targets, title, ref)
            return run_query(prometheus, target, expr, start)

        def peak(title: str, ref: str = "A") -> float:
            return max((float(v) for s in shown(title, ref) for _, v in s["values"]), default=0)

        def last(title: str, ref: str = "A") -> list[float]:
            return [float(s["values"][-1][1]) for s in shown(title, ref)]

        def labels(title: str, *names: str) -> set[tuple[str, ...]]:
            return {tuple(s["metric"][n] for n in names) for s in shown(title, "A")}

        worker = instances["worker"]
        partitions = {str(p) for p in range(SOURCE_PARTITIONS)}
        invalid_panel = "Invalid, late and dead-lettered records per second"
        # What the panels show is what happened: the worker read and rejected records,
        # wrote partials in transactions, owned both partitions; stage 2 heard from both.
        # Polled: a range query's last step may fall just before the newest scrape, and a
        # slow start may have let the partitions go idle before the traffic (the wait above
        # then passed early; they are idle again window.idle_timeout_seconds after it).
        happened: dict[str, Callable[[], bool]] = {
            "records read": lambda: peak("Records read per second", "B") > 0,
            "invalid records by reason": lambda: (
                labels(invalid_panel, "reason") == {("invalid_json",)}
                and peak(invalid_panel) > 0),
            "partials written": lambda: peak("Partials and transactions per second") > 0,
            "transactions": lambda: peak("Partials and transactions per second", "B") > 0,
            "every partition owned": lambda: (
                last("Partitions owned per worker", "B") == [SOURCE_PARTITIONS]),
            "lag per worker and partition": lambda: labels(
                "Consumer lag per worker and partition", "instance", "partition")
            == {(worker, p) for p in partitions},
            "the worker's last transaction": lambda: labels(
                "Seconds since the last committed transaction", "instance") == {(worker,)},
            "the age of each source partition's partials": lambda: labels(
                "Age of the newest partial per source partition", "source_partition")
            == {(p,) for p in partitions},
            "every source partition idle": lambda: (
                last("Idle source partitions") == [1.0] * SOURCE_PARTITIONS),
            "windows closed at stage 2": lambda: peak("Windows closed per second") > 0,
        }
        for what, shows in happened.items():
            wait_for(shows, 60, f"the dashboard to show {what}")
    finally:
        # The processes first: a scrape cut short by Prometheus stopping is logged by the
        # metrics listener (BrokenPipeError), which is not what this test is about.
        layout.stop_all()
        prometheus.close()
    for name in ("worker", "stage2"):
        assert layout.procs[name].returncode == 0, layout.log_of(name)[-3000:]
