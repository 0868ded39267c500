"""``python -m statuswatch.localbroker``: fetch the jars, or run a broker until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from statuswatch.errors import BrokerHarnessError
from statuswatch.localbroker.broker import LocalKafka
from statuswatch.localbroker.jars import DEFAULT_KAFKA_VERSION, ensure_kafka_jars


def _parse_topic(spec: str) -> tuple[str, int]:
    name, _, count = spec.partition(":")
    try:
        partitions = int(count) if count else 1
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad partition count in {spec!r}") from None
    if not name or partitions < 1:
        raise argparse.ArgumentTypeError(f"expected NAME or NAME:PARTITIONS, got {spec!r}")
    return name, partitions


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m statuswatch.localbroker",
        description="Fetch and run a throwaway single-node Kafka broker on 127.0.0.1.",
    )
    parser.add_argument(
        "--kafka-version", default=DEFAULT_KAFKA_VERSION, help="default: %(default)s"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="jar cache (default: $STATUSWATCH_CACHE/kafka-VERSION, "
        "else ~/.cache/statuswatch/kafka-VERSION)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download the broker jars into the cache, print their dir")
    start = sub.add_parser("start", help="run a broker until Ctrl-C or SIGTERM")
    start.add_argument(
        "--topic",
        action="append",
        default=[],
        type=_parse_topic,
        metavar="NAME[:PARTITIONS]",
        help="create this topic once the broker is up (repeatable)",
    )
    start.add_argument("--port", type=int, help="broker port (default: a free one)")
    start.add_argument("--timeout", type=float, default=120.0, help="start timeout, seconds")
    return parser


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m statuswatch.localbroker``."""
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "fetch":
            print(ensure_kafka_jars(args.kafka_version, args.cache_dir), flush=True)
            return 0
        # SIGTERM (e.g. from a process manager) stops the broker cleanly, like Ctrl-C.
        signal.signal(signal.SIGTERM, _raise_interrupt)
        broker = LocalKafka(version=args.kafka_version, cache_dir=args.cache_dir, port=args.port)
        try:
            broker.start(timeout=args.timeout)
            for name, partitions in args.topic:
                broker.create_topic(name, partitions)
            print(broker.bootstrap_servers, flush=True)
            print(
                f"Kafka {args.kafka_version} up; data in {broker.data_dir}; Ctrl-C stops it",
                file=sys.stderr,
                flush=True,
            )
            while broker.running:
                time.sleep(0.5)
            print(f"the broker exited on its own\n{broker.log_tail()}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            broker.close()
    except BrokerHarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
