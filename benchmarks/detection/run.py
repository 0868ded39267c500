"""Detection benchmark: statuswatch and three reference detectors on one labelled day.

    python -m benchmarks.detection.run [--scenario all|standard|lowrate] [--hours 24]
        [--rate R] [--seed S | --seeds 1-5] [--json PATH]

Simulates ``--hours`` of diurnal gateway traffic (every service, the low-traffic
``admin-api`` included, and the sparse and bursty scopes of ``SimSpec(sparse=True)``:
``reports-api``'s bursts, ``partner-api``'s near-zero nights, ``crawler-bot``'s crawls)
with eight incidents at spread-out times after a 2-hour
warm-up, feeds the decoded columns straight to ``statuswatch.core.detector.Detector``
(``count`` / ``close_ready`` / ``finish``: this measures detection, not parsing)
and, in the same run, the same 10 s window counts to the reference detectors
of ``references.py``. Every detector's alerts are scored by
``statuswatch.evaluate.evaluate`` against the simulator's labels over
``[start + warm-up, end]``; alerts of the warm-up are not scored (statuswatch's
are counted and shown). Prints Markdown tables and the wall time.

``--scenario lowrate`` runs only the low-rate day of :mod:`benchmarks.detection.lowrate`
(deep night lulls, a benign 2.5x surge, the sparse scopes; a 429 storm of one app at
about 2 requests a minute, a 403 freeze of 5 % of the apps at night, a 5xx creep over
40 minutes), scored the same way; ``--hours 10.5`` still holds all of it. The default
runs both and adds the whole suite's totals. ``--seeds 1-5`` runs one scenario once
per seed and prints every incident's delay per seed and the worst over them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.detection import lowrate
from benchmarks.detection.references import (
    HalfSpaceTreesDetector,
    Reference,
    StaticThreshold,
    ZScore,
)
from statuswatch.config import Settings
from statuswatch.core.columns import DecodedBatch
from statuswatch.core.detector import Detector
from statuswatch.evaluate import Report, evaluate
from statuswatch.simulate.fleet import CRAWLER_APP
from statuswatch.simulate.incidents import Incident
from statuswatch.simulate.spec import SimSpec
from statuswatch.simulate.traffic import Chunk, crawls, generate

START = "2023-04-04T00:00:00+00:00"  # a Tuesday: a weekday profile
WARMUP_H = 2.0
CHUNK_MS = 60_000
H = 3_600_000
M = 60_000

#: (hour, minutes, incident) on the 24-hour schedule; other lengths rescale after the warm-up.
SCHEDULE: tuple[tuple[float, int, dict[str, Any]], ...] = (
    (3.0, 20, {"kind": "freeze", "fraction": 0.1, "name": "freeze-403-10%-apps"}),
    (6.0, 15, {"kind": "freeze", "fraction": 0.5, "name": "freeze-403-50%-apps"}),
    (9.0, 30, {"kind": "creep", "service": "calendar-api", "name": "creep-5xx-calendar-api"}),
    (12.0, 10, {"kind": "outage", "service": "auth-api", "name": "outage-401-auth-api"}),
    (14.0, 15, {"kind": "storm", "name": "storm-429-one-app"}),
    (16.5, 15, {"kind": "spike", "route": "create-event", "name": "spike-404-create-event"}),
    (19.0, 10, {"kind": "drop", "fraction": 0.3, "name": "drop-fleet-to-30%"}),
    (21.5, 20, {"kind": "newcode", "service": "webhooks-api", "name": "newcode-418-webhooks"}),
)


def incidents(start_ms: int, hours: float) -> tuple[Incident, ...]:
    """The schedule, rescaled so that it fits ``hours`` after the warm-up."""
    scale = (hours - WARMUP_H) / (24.0 - WARMUP_H)
    out = []
    for hour, minutes, kw in SCHEDULE:
        t0 = start_ms + round((WARMUP_H + (hour - WARMUP_H) * scale) * H)
        out.append(Incident(start_ms=t0, end_ms=t0 + round(minutes * M * min(1.0, scale)), **kw))
    return tuple(out)


def batches(spec: SimSpec, start_ms: int, end_ms: int) -> Iterator[tuple[Chunk, DecodedBatch]]:
    """Simulator chunks and the same records as decoded columns (names via the spec tables)."""
    services = np.array(spec.services, dtype=object)
    routes = np.array(spec.routes, dtype=object)
    apps = np.array(spec.apps, dtype=object)
    for chunk in generate(spec, start_ms, end_ms, CHUNK_MS):
        dims = {
            "service": services[chunk.service].tolist(),
            "route": routes[chunk.route].tolist(),
            "app": apps[chunk.app].tolist(),
        }
        index = np.arange(len(chunk), dtype=np.int64)
        yield chunk, DecodedBatch(chunk.ts_ms, chunk.status, dims, index)


def window_counts(chunk: Chunk, size_ms: int, code_index: np.ndarray, n_services: int,
                  n_codes: int) -> Iterator[tuple[int, np.ndarray]]:
    """(window start, counts[service, code]) for each window of a window-aligned chunk."""
    n_win = (chunk.end_ms - chunk.start_ms) // size_ms
    win = (chunk.ts_ms - chunk.start_ms) // size_ms
    keys = (win * n_services + chunk.service) * n_codes + code_index[chunk.status]
    counts = np.bincount(keys, minlength=n_win * n_services * n_codes)
    counts = counts.reshape(n_win, n_services, n_codes)
    for i in range(n_win):
        yield chunk.start_ms + i * size_ms, counts[i]


def detect(spec: SimSpec, start_ms: int, end_ms: int, warmup_h: float,
           seed: int) -> dict[str, Any]:
    """Feed ``[start_ms, end_ms)`` of ``spec`` to statuswatch and the references: the alerts."""
    settings = Settings()
    size_ms = settings.window.size_ms
    warmup_windows = round(warmup_h * H / size_ms)
    codes = spec.codes
    code_index = np.full(600, -1, dtype=np.int64)
    code_index[list(codes)] = np.arange(len(codes))
    refs: list[Reference] = [
        StaticThreshold(codes, spec.services, warmup_windows),
        ZScore(codes, spec.services, warmup_windows),
        HalfSpaceTreesDetector(codes, spec.services, warmup_windows, seed=seed),
    ]
    alerts: dict[str, list[dict[str, Any]]] = {"statuswatch": []}
    alerts.update((r.name, []) for r in refs)
    timing = {"simulate": 0.0, "statuswatch": 0.0, "references": 0.0}
    detector = Detector(settings)
    records = 0
    t_start = time.perf_counter()
    t = t_start
    for chunk, batch in batches(spec, start_ms, end_ms):
        t1 = time.perf_counter()
        timing["simulate"] += t1 - t
        records += len(chunk)
        if len(batch):
            now_ms = int(batch.ts_ms.max())
            detector.count(batch, now_ms=now_ms)
            alerts["statuswatch"].extend(e.to_json() for e in detector.close_ready(now_ms))
        t2 = time.perf_counter()
        for w_start, counts in window_counts(chunk, size_ms, code_index, len(spec.services),
                                             len(codes)):
            for ref in refs:
                alerts[ref.name].extend(ref.observe(w_start, w_start + size_ms, counts))
        t = time.perf_counter()
        timing["statuswatch"] += t2 - t1
        timing["references"] += t - t2
    t1 = time.perf_counter()
    alerts["statuswatch"].extend(e.to_json() for e in detector.finish())
    timing["statuswatch"] += time.perf_counter() - t1
    wall = time.perf_counter() - t_start
    return {"alerts": alerts, "timing": timing, "records": records,
            "windows": detector.counters.windows_closed, "wall_s": wall}


def score(alerts: dict[str, list[dict[str, Any]]], labels: list[dict[str, Any]],
          eval_start_s: float, end_s: float
          ) -> tuple[dict[str, Report], dict[str, list[dict[str, Any]]]]:
    """Each detector's report over ``[eval_start_s, end_s]`` and its warm-up firings."""
    reports: dict[str, Report] = {}
    warmup_alerts: dict[str, list[dict[str, Any]]] = {}
    for name, found in alerts.items():
        scored = [a for a in found if a["window_end"] > eval_start_s]
        warmup_alerts[name] = [
            a for a in found if a["state"] == "firing" and a["window_end"] <= eval_start_s
        ]
        reports[name] = evaluate(scored, labels, eval_start_s, end_s)
    return reports, warmup_alerts


def run(hours: float, rate: float, seed: int) -> dict[str, Any]:
    start_ms = round(datetime.fromisoformat(START).timestamp() * 1000)
    end_ms = start_ms + round(hours * H)
    spec = SimSpec(seed=seed, rate=rate, diurnal=True, incidents=incidents(start_ms, hours),
                   sparse=True)
    labels = spec.labels()
    found = detect(spec, start_ms, end_ms, WARMUP_H, seed)
    eval_start_s = (start_ms + WARMUP_H * H) / 1000
    reports, warmup_alerts = score(found["alerts"], labels, eval_start_s, end_ms / 1000)
    crawl_spans = crawls(spec, round(eval_start_s * 1000), end_ms)
    sparse = {
        name: sparse_false_alarms(r.false_alarms, crawl_spans) for name, r in reports.items()
    }
    return {
        **found, "scenario": "standard",
        "sparse_false_alarms": sparse, "scored_days": (end_ms / 1000 - eval_start_s) / 86400,
        "hours": hours, "rate": rate, "seed": seed,
        "labels": labels, "reports": reports, "warmup_alerts": warmup_alerts,
    }


#: The sparse and bursty scopes of the normal traffic, as the tables name them.
SPARSE_SHAPES = ("reports-api (bursts)", "partner-api (near-zero nights)",
                 "crawler-bot (crawls)")


def sparse_false_alarms(
    false_alarms: list[dict[str, Any]], crawl_spans: list[tuple[int, int]]
) -> dict[str, int]:
    """False alarms on each sparse shape: in its service (any of its scopes), or for
    the crawler, naming its app or landing during a crawl (to its end + 60 s) in the
    fleet or ``contacts-api`` (the references see only the fleet and services)."""
    out = dict.fromkeys(SPARSE_SHAPES, 0)
    for fa in false_alarms:
        scope = fa["scope"]
        if scope.get("service") == "reports-api":
            out[SPARSE_SHAPES[0]] += 1
        elif scope.get("service") == "partner-api":
            out[SPARSE_SHAPES[1]] += 1
        elif scope.get("app") == CRAWLER_APP or (
            scope.get("service", "contacts-api") == "contacts-api"
            and any(a <= fa["window_end"] <= b + 60 for a, b in crawl_spans)
        ):
            out[SPARSE_SHAPES[2]] += 1
    return out


def _fmt(x: float | None, spec: str = ".0f") -> str:
    return "-" if x is None else format(x, spec)


def _when(t_s: float) -> str:
    return datetime.fromtimestamp(t_s, UTC).strftime("%H:%M:%S")


def _scope(scope: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in scope.items()) or "fleet"


def _summary(reports: dict[str, Report], n: int) -> list[str]:
    lines = [
        f"| detector | incidents caught (of {n}) | median delay (s) | max delay (s) "
        "| false alarms per day | precision |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in reports.items():
        d = r.delays
        lines.append(
            f"| {name} | {r.caught} | {_fmt(statistics.median(d) if d else None)} "
            f"| {_fmt(max(d) if d else None)} | {_fmt(r.false_alarms_per_day, '.1f')} "
            f"| {_fmt(r.precision, '.2f')} |"
        )
    return lines


def _per_day(title: str, found: dict[str, dict[str, int]], shapes: tuple[str, ...],
             days: float) -> list[str]:
    lines = ["", title, "", "| detector | " + " | ".join(shapes) + " |",
             "|---|" + "---|" * len(shapes)]
    for name, per_shape in found.items():
        lines.append(f"| {name} | "
                     + " | ".join(f"{per_shape[s] / days:.1f}" for s in shapes) + " |")
    return lines


def _delays(result: dict[str, Any]) -> list[str]:
    reports: dict[str, Report] = result["reports"]
    lines = ["", "Detection delay per incident (s; `-` = missed):", ""]
    lines.append("| incident | start (UTC) | minutes | " + " | ".join(reports) + " |")
    lines.append("|---|---|---|" + "---|" * len(reports))
    for i, label in enumerate(result["labels"]):
        cells = [_fmt(r.labels[i].delay_s) for r in reports.values()]
        minutes = (label["end"] - label["start"]) / 60
        lines.append(
            f"| {label['name']} | {_when(label['start'])} | {minutes:.0f} | "
            + " | ".join(cells) + " |"
        )
    return lines


def _statuswatch_alerts(result: dict[str, Any]) -> list[str]:
    sw: Report = result["reports"]["statuswatch"]
    lines = ["", f"statuswatch false alarms ({len(sw.false_alarms)}):", ""]
    for fa in sw.false_alarms:
        lines.append(
            f"- {_when(fa['window_end'])} {fa.get('signal', 'share')} {fa['code']} "
            f"{fa['direction']} in {_scope(fa['scope'])} (score {fa.get('score')})"
        )
    warm = result["warmup_alerts"]["statuswatch"]
    lines.append(f"\nstatuswatch alerts during the {WARMUP_H:g} h warm-up (not scored): "
                 f"{len(warm)}")
    for fa in warm:
        lines.append(f"- {_when(fa['window_end'])} {fa.get('signal', 'share')} {fa['code']} "
                     f"{fa['direction']} in {_scope(fa['scope'])}")
    tm = result["timing"]
    lines.append(
        f"\n{result['hours']:g} h simulated, {result['records']:,} records "
        f"({result['records'] / (result['hours'] * 3600):.0f}/s on average), "
        f"{result['windows']} windows; wall time {result['wall_s']:.0f} s "
        f"(simulate {tm['simulate']:.0f} s, statuswatch {tm['statuswatch']:.0f} s, "
        f"references {tm['references']:.0f} s)"
    )
    return lines


def markdown(result: dict[str, Any]) -> str:
    lines = _summary(result["reports"], len(result["labels"]))
    lines += _per_day("False alarms per day on the sparse and bursty scopes of the normal "
                      "traffic:", result["sparse_false_alarms"], SPARSE_SHAPES,
                      result["scored_days"])
    lines += _delays(result)
    lines += _statuswatch_alerts(result)
    return "\n".join(lines)


def run_lowrate(hours: float, rate: float, seed: int) -> dict[str, Any]:
    """The low-rate scenario (:mod:`benchmarks.detection.lowrate`), scored as :func:`run`."""
    start_ms = round(datetime.fromisoformat(lowrate.START).timestamp() * 1000)
    sc = lowrate.scenario(start_ms, hours, rate, seed)
    spec = sc.spec
    labels = spec.labels()
    found = detect(spec, sc.start_ms, sc.end_ms, lowrate.WARMUP_H, seed)
    eval_start_s = (start_ms + lowrate.WARMUP_H * H) / 1000
    reports, warmup_alerts = score(found["alerts"], labels, eval_start_s, sc.end_ms / 1000)
    crawl_spans = crawls(spec, round(eval_start_s * 1000), sc.end_ms)
    normal = {
        name: {**lowrate.normal_false_alarms(spec, r.false_alarms),
               **sparse_false_alarms(r.false_alarms, crawl_spans)}
        for name, r in reports.items()
    }
    return {
        **found, "scenario": "lowrate", "normal_false_alarms": normal,
        "scored_days": (sc.end_ms / 1000 - eval_start_s) / 86400,
        "lull_hours": lowrate.lull_hours(spec, round(eval_start_s * 1000), sc.end_ms),
        "left_out": list(sc.left_out), "hours": hours, "rate": rate, "seed": seed,
        "labels": labels, "reports": reports, "warmup_alerts": warmup_alerts,
    }


def markdown_lowrate(result: dict[str, Any]) -> str:
    labels = result["labels"]
    storm = next((lb for lb in labels if lb["kind"] == "storm"), None)
    lines = _summary(result["reports"], len(labels))
    shapes = lowrate.NORMAL_SHAPES + SPARSE_SHAPES
    lines += _per_day("False alarms per day of the scored span, on each normal shape "
                      f"(night lulls: {result['lull_hours']:.1f} h of it):",
                      result["normal_false_alarms"], shapes, result["scored_days"])
    lines += _delays(result)
    if storm is not None:
        lines.append(f"\nThe storm's app: {storm['scope']['app']}.")
    if result["left_out"]:
        lines.append(f"\nLeft out (they do not end within --hours {result['hours']:g}): "
                     + ", ".join(result["left_out"]))
    lines += _statuswatch_alerts(result)
    return "\n".join(lines)


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: a range ``1-5`` or a list ``1,2,7``.

    >>> parse_seeds("1-3"), parse_seeds("4,9")
    ([1, 2, 3], [4, 9])
    """
    if "-" in text:
        first, last = (int(x) for x in text.split("-", 1))
        return list(range(first, last + 1))
    return [int(x) for x in text.split(",")]


def over_seeds(results: list[dict[str, Any]], detector: str = "statuswatch") -> str:
    """One scenario run once per seed: each incident's delay per seed and the worst of
    them (a miss is the worst), and the false alarms of each seed, so that no figure
    is one lucky seed's."""
    seeds = [r["seed"] for r in results]
    lines = [f"{detector}, delay per seed (s; `-` = missed):", "",
             "| incident | " + " | ".join(f"seed {s}" for s in seeds) + " | worst |",
             "|---|" + "---|" * (len(seeds) + 1)]
    for i, label in enumerate(results[0]["labels"]):
        delays = [r["reports"][detector].labels[i].delay_s for r in results]
        worst = None if any(d is None for d in delays) else max(delays)
        lines.append(f"| {label['name']} | " + " | ".join(_fmt(d) for d in delays)
                     + f" | {_fmt(worst)} |")
    false = [len(r["reports"][detector].false_alarms) for r in results]
    days = sum(r["scored_days"] for r in results)
    lines.append("| false alarms | " + " | ".join(str(n) for n in false)
                 + f" | {sum(false) / days:.1f}/day |")
    lines += [""] if any(false) else []
    for r in results:
        for fa in r["reports"][detector].false_alarms:
            lines.append(f"- seed {r['seed']}: {_when(fa['window_end'])} "
                         f"{fa.get('signal', 'share')} {fa['code']} {fa['direction']} in "
                         f"{_scope(fa['scope'])} (score {fa.get('score')})")
    return "\n".join(lines)


def suite(results: list[dict[str, Any]]) -> str:
    """Every scenario together: caught of all incidents, false alarms per day overall."""
    days = sum(r["scored_days"] for r in results)
    n = sum(len(r["labels"]) for r in results)
    lines = [f"| detector | incidents caught (of {n}) | false alarms per day |", "|---|---|---|"]
    for name in results[0]["reports"]:
        caught = sum(r["reports"][name].caught for r in results)
        false = sum(len(r["reports"][name].false_alarms) for r in results)
        lines.append(f"| {name} | {caught} | {false / days:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", choices=("all", "standard", "lowrate"), default="all",
                   help="which scenario to run (default all: standard, then lowrate)")
    p.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    p.add_argument("--rate", type=float, default=500.0,
                   help="requests/s, weekly average of the diurnal profile (default 500)")
    p.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    p.add_argument("--seeds", metavar="A-B|A,B,...",
                   help="run the scenario once per seed (--scenario standard or lowrate) and "
                   "print each incident's delay per seed and the worst")
    p.add_argument("--json", metavar="PATH", help="also write every alert and report as JSON")
    args = p.parse_args(argv)
    if args.hours < WARMUP_H + 1:
        p.error(f"--hours must be at least {WARMUP_H + 1:g}")
    if args.seeds:
        if args.scenario == "all":
            p.error("--seeds needs --scenario standard or lowrate")
        one = run if args.scenario == "standard" else run_lowrate
        print(over_seeds([one(args.hours, args.rate, s) for s in parse_seeds(args.seeds)]))
        return 0
    results = []
    if args.scenario in ("all", "standard"):
        results.append(run(args.hours, args.rate, args.seed))
        if args.scenario == "all":
            print("## Standard scenario\n")
        print(markdown(results[-1]))
    if args.scenario in ("all", "lowrate"):
        results.append(run_lowrate(args.hours, args.rate, args.seed))
        if args.scenario == "all":
            print("\n## Low-rate scenario\n")
        print(markdown_lowrate(results[-1]))
    if len(results) > 1:
        print("\n## The whole suite\n")
        print(suite(results))
    if args.json:
        out = [{**r, "reports": {k: rep.to_json() for k, rep in r["reports"].items()}}
               for r in results]
        Path(args.json).write_text(
            json.dumps(out[0] if len(out) == 1 else out, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
