"""Command line: ``statuswatch run|backtest|simulate|check-config|demo``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from statuswatch import __version__
from statuswatch.config import Settings, load_settings
from statuswatch.errors import SourceError, StatuswatchError
from statuswatch.evaluate import evaluate

if TYPE_CHECKING:
    from statuswatch.core.decide import AlertEvent
    from statuswatch.shell.sinks import JsonLinesSink

log = logging.getLogger("statuswatch")

FORMATS = ("kong", "envoy", "nginx-json", "combined", "json")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "format", None):
        base = load_settings(args.config)
        overrides["decode"] = base.decode.model_copy(update={"format": args.format})
    return load_settings(args.config, **overrides)


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    print(f"{args.config or '(defaults)'}: OK (format={settings.decode.format}, "
          f"window={settings.window.size_seconds}s, topic={settings.kafka.topic})")
    return 0


class _CollectingSink:
    """Writes alerts through to ``inner`` and keeps their JSON for ``--labels``."""

    def __init__(self, inner: JsonLinesSink) -> None:
        self.inner = inner
        self.alerts: list[dict[str, Any]] = []

    def write(self, events: list[AlertEvent]) -> None:
        self.inner.write(events)
        self.alerts.extend(e.to_json() for e in events)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


def _read_labels(path: str) -> list[dict[str, Any]]:
    """The incident labels of ``statuswatch simulate --labels-out``."""
    try:
        labels = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SourceError(f"cannot read labels {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise SourceError(f"labels {path}: not JSON: {exc}") from exc
    if not (isinstance(labels, list) and all(
        isinstance(x, dict) and {"start", "end", "direction"} <= x.keys() for x in labels
    )):
        raise SourceError(f"labels {path}: expected a JSON list of labels (start, end, ...)")
    return labels


def cmd_backtest(args: argparse.Namespace) -> int:
    from statuswatch.core.detector import Detector
    from statuswatch.shell.runtime import backtest
    from statuswatch.shell.sinks import JsonLinesSink
    from statuswatch.shell.sources import read_file_batches

    settings = _settings(args)
    labels = _read_labels(args.labels) if args.labels else None
    detector = Detector(settings)
    sink = _CollectingSink(JsonLinesSink(args.alerts_out))
    try:
        summary = backtest(detector, read_file_batches(args.input), sink)
    finally:
        sink.close()
    result = summary.to_json()
    if labels is not None:
        c = detector.counters
        first, last = c.first_event_ms, c.last_event_ms
        span = (0.0, 0.0) if first is None or last is None else (first / 1000, last / 1000)
        report = evaluate(sink.alerts, labels, *span)
        print(report.format_table(), file=sys.stderr)
        result["evaluation"] = report.to_json()
    text = json.dumps(result, indent=2)
    if args.summary_out:
        Path(args.summary_out).write_text(text + "\n", encoding="utf-8")
    else:
        print(text, file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from statuswatch.shell.app import run_forever

    settings = _settings(args)
    return asyncio.run(run_forever(settings, metrics_port=args.metrics_port))


def cmd_simulate(args: argparse.Namespace) -> int:
    from statuswatch.simulate.cli import run

    return run(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from statuswatch.shell.demo import demo

    return asyncio.run(demo(metrics_port=args.metrics_port, live_seconds=args.live_seconds))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="statuswatch",
        description="Streaming anomaly detection for HTTP status codes in gateway access logs.",
    )
    parser.add_argument("--version", action="version", version=f"statuswatch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", metavar="PATH", help="YAML config (default: built-in defaults)")

    p = sub.add_parser("run", help="consume from Kafka and detect")
    with_config(p)
    p.add_argument("--format", choices=FORMATS, help="override decode.format")
    p.add_argument("--metrics-port", type=int, help="override metrics.port")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("backtest", help="run the pipeline over a file or stdin in event time")
    with_config(p)
    p.add_argument("input", metavar="PATH", help="log file, or - for stdin")
    p.add_argument("--format", choices=FORMATS, help="override decode.format")
    p.add_argument(
        "--alerts-out", default="-", metavar="PATH", help="alerts as JSON lines (default stdout)"
    )
    p.add_argument("--summary-out", metavar="PATH", help="summary JSON (default stderr)")
    p.add_argument(
        "--labels", metavar="PATH",
        help="incident labels (simulate --labels-out): score the alerts against them",
    )
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("simulate", help="produce synthetic gateway traffic with incidents")
    from statuswatch.simulate.cli import configure_parser

    configure_parser(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("check-config", help="validate a YAML config")
    p.add_argument("--config", metavar="PATH", required=True, help="YAML config to check")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("demo", help="local broker + simulated 403 incident + detector, end to end")
    p.add_argument("--metrics-port", type=int, default=9464, help="port of /metrics (default 9464)")
    p.add_argument("--live-seconds", type=float, default=90.0, help="seconds of live traffic")
    p.set_defaults(func=cmd_demo)
    return parser


def single_threaded_math() -> None:
    """Keep OpenBLAS (loaded with numpy) from starting a thread pool: statuswatch does no
    BLAS work, and the idle pool costs ~0.3 s of CPU at start-up on a sidecar's cores.
    Must run before numpy is imported; a value the user set wins."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def main(argv: Sequence[str] | None = None) -> int:
    single_threaded_math()
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING if not args.verbose else logging.DEBUG)
    try:
        return int(args.func(args))
    except StatuswatchError as exc:
        print(f"statuswatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
