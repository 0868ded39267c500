"""Command line: ``statuswatch run|aggregate|backtest|simulate|check-config|config-reference|
demo``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, get_args

from statuswatch import __version__
from statuswatch.config import DECODE_FORMATS, DecodeConfig, Settings, load_settings
from statuswatch.errors import StatuswatchError

log = logging.getLogger("statuswatch")

#: the choices of ``decode.format`` and ``decode.envelope``, from their types
FORMATS: tuple[str, ...] = DECODE_FORMATS
ENVELOPES: tuple[str, ...] = get_args(DecodeConfig.model_fields["envelope"].annotation)


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    decode = {k: v for k in ("format", "envelope") if (v := getattr(args, k, None))}
    if decode:
        base = load_settings(args.config)
        overrides["decode"] = base.decode.model_copy(update=decode)
    if getattr(args, "input", None):
        base = load_settings(args.config)
        overrides["kafka"] = base.kafka.model_copy(update={"input": args.input})
    return load_settings(args.config, **overrides)


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    print(f"{args.config or '(defaults)'}: OK (format={settings.decode.format}, "
          f"window={settings.window.size_seconds}s, topic={settings.kafka.topic})")
    return 0


def cmd_config_reference(args: argparse.Namespace) -> int:
    from statuswatch.configdoc import render

    sys.stdout.write(render())
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from statuswatch.shell.backtest_cli import BacktestRequest, run_backtest

    compare = None
    if args.compare:
        compare = _settings(argparse.Namespace(
            config=args.compare, format=args.format, envelope=args.envelope))
    return run_backtest(_settings(args), BacktestRequest(
        inputs=tuple(args.paths), config_name=args.config or "(defaults)",
        alerts_out=args.alerts_out, summary_out=args.summary_out, labels=args.labels,
        compare=compare, compare_name=args.compare or "", output=args.output,
        plots=args.plots, quiet=args.quiet,
    ))


def cmd_run(args: argparse.Namespace) -> int:
    from statuswatch.shell.app import run_forever

    settings = _settings(args)
    return asyncio.run(run_forever(
        settings, metrics_port=args.metrics_port, config_path=args.config,
        reload_settings=lambda: _settings(args),
    ))


def cmd_aggregate(args: argparse.Namespace) -> int:
    from statuswatch.shell.app import aggregate_forever

    return asyncio.run(aggregate_forever(_settings(args), metrics_port=args.metrics_port))


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
    p.add_argument("--envelope", choices=ENVELOPES, help="override decode.envelope")
    p.add_argument("--metrics-port", type=int, help="override metrics.port")
    p.add_argument(
        "--input", choices=("raw", "aggregates"),
        help="override kafka.input: aggregates reads the partial windows of `aggregate`",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "aggregate",
        help="stage 1 of the scale-out: count kafka.topic per partition into aggregate.topic",
    )
    with_config(p)
    p.add_argument("--format", choices=FORMATS, help="override decode.format")
    p.add_argument("--envelope", choices=ENVELOPES, help="override decode.envelope")
    p.add_argument("--metrics-port", type=int, help="override metrics.port")
    p.set_defaults(func=cmd_aggregate)

    p = sub.add_parser("backtest", help="run the pipeline over a file or stdin in event time")
    with_config(p)
    p.add_argument(
        "paths", metavar="PATH", nargs="+",
        help="log files in time order (rotated ones oldest first; gzip is read as such), "
             "or - for stdin",
    )
    p.add_argument("--format", choices=FORMATS, help="override decode.format")
    p.add_argument("--envelope", choices=ENVELOPES, help="override decode.envelope")
    p.add_argument(
        "--alerts-out", metavar="PATH",
        help="alerts as JSON lines (default stdout; with --compare, not written unless given)",
    )
    p.add_argument(
        "--summary-out", metavar="PATH",
        help="summary JSON (default stderr; with --compare, the comparison as JSON)",
    )
    p.add_argument(
        "--labels", metavar="PATH",
        help="incident labels (simulate --labels-out): score the alerts against them",
    )
    p.add_argument(
        "--compare", metavar="PATH",
        help="a second YAML config (e.g. the current one) run over the same decoded records: "
             "prints the alerts each raises and the other does not",
    )
    p.add_argument(
        "--output", choices=("table", "json"), default="table",
        help="the --compare report as a table (default) or JSON, on stdout",
    )
    p.add_argument(
        "--plots", metavar="DIR",
        help="one PNG per alert episode (needs: pip install 'statuswatch[plots]')",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line on a terminal")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("simulate", help="produce synthetic gateway traffic with incidents")
    from statuswatch.simulate.cli import configure_parser

    configure_parser(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("check-config", help="validate a YAML config")
    p.add_argument("--config", metavar="PATH", required=True, help="YAML config to check")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser(
        "config-reference",
        help="print the configuration reference (docs/configuration.md) as Markdown",
    )
    p.set_defaults(func=cmd_config_reference)

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
