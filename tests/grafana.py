"""The Grafana dashboards' panels and template variables, read as Grafana reads them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "config" / "grafana" / "statuswatch.json"
#: The two-stage layout's: ``statuswatch aggregate`` workers and stage 2.
SCALE_OUT = REPO / "config" / "grafana" / "statuswatch-scale-out.json"

#: Variables Grafana fills in itself.
BUILTINS = frozenset({"__rate_interval", "__interval", "__range"})
#: ``$name``, ``${name}``, ``${name:format}`` and the deprecated ``[[name]]``.
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]")
METRIC = re.compile(r"\bstatuswatch_\w+")
LABEL_VALUES = re.compile(r"^label_values\((.+),\s*(\w+)\)$")


def load(path: Path = DASHBOARD) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that queries, rows' nested (collapsed) panels included."""
    out = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def queries(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every target of every panel."""
    return [(p, t) for p in panels(dashboard) for t in p["targets"]]


def metrics_used(dashboard: dict[str, Any]) -> set[str]:
    """The metric names of every query, the query variables' included."""
    used = {m for _, t in queries(dashboard) for m in METRIC.findall(t["expr"])}
    return used | {m for v in variables(dashboard).values() if v["type"] == "query"
                   for m in METRIC.findall(label_values(v)[0])}


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def variables_in(text: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in VARIABLE.finditer(text)}


def substitute(text: str, values: dict[str, str]) -> str:
    """``text`` with every variable replaced; ``KeyError`` for one not in ``values``."""
    return VARIABLE.sub(lambda m: values[next(g for g in m.groups() if g)], text)


def multi_value(values: list[str]) -> str:
    r"""What Grafana puts for a multi-value variable (or "All" without a custom value) into
    a Prometheus query: the values, regex-escaped inside a PromQL string, as alternatives.

    >>> print(multi_value(["127.0.0.1:9464", "stage2:9464"]))
    (127\\.0\\.0\\.1:9464|stage2:9464)
    """
    return "(" + "|".join(re.escape(v).replace("\\", "\\\\") for v in values) + ")"


def label_values(variable: dict[str, Any]) -> tuple[str, str]:
    """(series selector, label) of a ``label_values(selector, label)`` query variable."""
    query = variable["query"]
    text = query["query"] if isinstance(query, dict) else query
    match = LABEL_VALUES.match(text.strip())
    assert match, f"variable {variable['name']}: not a label_values() query: {text}"
    return match[1], match[2]
