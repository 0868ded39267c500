"""``statuswatch simulate``: write simulated gateway logs to a file, stdout or Kafka.

The arguments become a :class:`~statuswatch.simulate.output.Plan`, which
:mod:`statuswatch.simulate.output` writes out: records from
:mod:`statuswatch.simulate.traffic`, as bytes from :mod:`statuswatch.simulate.encode`.
Without ``--realtime`` the output is a pure function of the arguments and is written as
fast as it can be produced; with ``--realtime`` event time starts at the wall clock and
output is paced to it.

Incidents are given as ``KIND:key=value,...`` (times in seconds from ``--start``):

>>> inc = parse_incident("freeze:start=300,duration=600,fraction=0.5", 0, 1_800_000)
>>> inc.kind, inc.start_ms, inc.end_ms, inc.fraction
('freeze', 300000, 900000, 0.5)
>>> parse_incident("outage", 0, 600_000).start_ms  # default: from mid-run to the end
300000
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from statuswatch.errors import ConfigError, SinkError
from statuswatch.simulate.encode import FORMATS
from statuswatch.simulate.fleet import trough_for
from statuswatch.simulate.incidents import INCIDENT_KINDS, Incident, Surge
from statuswatch.simulate.output import Plan, produce_kafka, write_labels, write_output
from statuswatch.simulate.spec import SimSpec

#: Default start of event time: deterministic output unless ``--realtime``.
DEFAULT_START: Final = "2023-04-04T00:00:00Z"
DEFAULT_TOPIC: Final = "gateway-logs"
#: Event time of an unbounded run (``--duration 0``): far enough to be "forever".
_FOREVER_MS: Final = 100 * 365 * 86_400_000

_INT_KEYS: Final = ("code",)
_FLOAT_KEYS: Final = ("start", "end", "duration", "fraction", "factor", "ramp")
#: keys whose value is a list of status codes, separated by "/" (e.g. ``codes=500/502``)
_CODES_KEYS: Final = ("codes",)
_STR_KEYS: Final = ("service", "route", "app", "name")


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Add the ``simulate`` options to ``p``."""
    p.add_argument("--format", choices=FORMATS, default="kong", help="log format (default kong)")
    p.add_argument(
        "--rate", type=float, default=500.0, help="records per second, averaged (default 500)"
    )
    p.add_argument(
        "--duration",
        type=float,
        default=600.0,
        help="seconds of event time to generate; 0 = no end (default 600)",
    )
    p.add_argument(
        "--start",
        default=None,
        help=f"event time start, epoch seconds or ISO-8601 (default {DEFAULT_START})",
    )
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--apps", type=int, default=200, help="number of client apps (default 200)")
    p.add_argument(
        "--diurnal",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="day/night and weekend traffic profile by UTC event time",
    )
    p.add_argument(
        "--incident",
        action="append",
        default=[],
        metavar="KIND:KEY=VALUE,...",
        help=f"add an incident (repeatable); KIND is one of {', '.join(INCIDENT_KINDS)}; "
        "keys: start, end, duration (seconds from --start), code, fraction, "
        "factor, service, route, app, name; for creep also codes (e.g. 500/502/503/504, "
        "in equal parts) and ramp (seconds to reach fraction, then held)",
    )
    p.add_argument(
        "--surge",
        action="append",
        default=[],
        metavar="KEY=VALUE,...",
        help="add a benign fleet-wide volume surge with the normal status mix (repeatable); "
        "keys: factor (required), start, end, duration (seconds from --start), "
        "ramp (seconds to reach factor, default 600)",
    )
    p.add_argument(
        "--night-rate",
        type=float,
        default=None,
        metavar="REQ_PER_S",
        help="with --diurnal: deepen the night trough so that weekday 04:00 UTC runs at "
        "REQ_PER_S (default: 25%% of the peak)",
    )
    p.add_argument(
        "--freeze-403",
        type=float,
        metavar="FRACTION",
        default=None,
        help="shortcut: freeze FRACTION of the apps (403) from mid-run to the end",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help='write records to PATH, "-" for stdout (default "-")',
    )
    p.add_argument(
        "--kafka",
        default=None,
        metavar="BOOTSTRAP",
        help="produce to Kafka at BOOTSTRAP (host:port) instead of a file",
    )
    p.add_argument("--topic", default=DEFAULT_TOPIC, help=f"Kafka topic (default {DEFAULT_TOPIC})")
    p.add_argument(
        "--realtime",
        action="store_true",
        help="event time starts now and output is paced to the wall clock",
    )
    p.add_argument(
        "--labels-out",
        default=None,
        metavar="PATH",
        help="write the incident labels as a JSON list to PATH",
    )


def parse_start(text: str) -> int:
    """Epoch milliseconds of ``text``: epoch seconds or ISO-8601 (naive = UTC).

    >>> parse_start("2023-04-04T00:00:00Z"), parse_start("1680566400.5")
    (1680566400000, 1680566400500)
    """
    try:
        seconds = float(text)
    except ValueError:
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ConfigError(
                f"simulate.start: {text!r} is neither epoch seconds nor ISO-8601"
            ) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        seconds = dt.timestamp()
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ConfigError("simulate.start: must be at or after 1970-01-01")
    return round(seconds * 1000)


def parse_incident(text: str, run_start_ms: int, run_ms: int | None) -> Incident:
    """Parse ``KIND[:key=value,...]``; times are seconds from the run start.

    The incident runs from ``start`` (default: mid-run) for ``duration`` seconds
    or until ``end`` (default: the end of the run). ``run_ms`` is ``None`` for an
    unbounded run, where ``start`` and ``duration``/``end`` are required.

    >>> parse_incident("spike:route=get-message,code=404,start=60,end=120", 1000, None)
    Incident(kind='spike', start_ms=61000, end_ms=121000, code=404, fraction=None, \
service=None, route='get-message', app=None, factor=None, name=None, codes=None, ramp_ms=None)
    """
    kind, _, rest = text.strip().partition(":")
    kind = kind.strip()
    where = f"--incident {text!r}"
    if kind not in INCIDENT_KINDS:
        raise ConfigError(
            f"{where}: unknown kind {kind!r}; expected one of {', '.join(INCIDENT_KINDS)}"
        )
    values = _parse_items(where, rest)
    start_ms, end_ms = _span(where, values, run_start_ms, run_ms)
    if "ramp" in values:
        values["ramp_ms"] = round(values.pop("ramp") * 1000)
    return Incident(
        kind=kind,  # type: ignore[arg-type]  # checked against INCIDENT_KINDS above
        start_ms=start_ms,
        end_ms=end_ms,
        **values,
    )


def parse_surge(text: str, run_start_ms: int, run_ms: int | None) -> Surge:
    """Parse ``factor=F[,start=S][,duration=D|end=E][,ramp=R]`` (seconds from the run start).

    >>> parse_surge("factor=2.5,start=60,duration=3600,ramp=300", 0, None)
    Surge(start_ms=60000, end_ms=3660000, factor=2.5, ramp_ms=300000)
    """
    where = f"--surge {text!r}"
    values = _parse_items(where, text)
    start_ms, end_ms = _span(where, values, run_start_ms, run_ms)
    factor = values.pop("factor", None)
    ramp = values.pop("ramp", 600.0)
    if values:
        raise ConfigError(f"{where}: unknown key {sorted(values)[0]!r}")
    if factor is None or factor <= 0:
        raise ConfigError(f"{where}: factor= (> 0) is required")
    if ramp < 0:
        raise ConfigError(f"{where}: ramp must be >= 0")
    return Surge(start_ms, end_ms, float(factor), round(ramp * 1000))


def _parse_items(where: str, rest: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not value:
            raise ConfigError(f"{where}: expected key=value, got {item!r}")
        if key in values:
            raise ConfigError(f"{where}: {key} given twice")
        try:
            if key in _INT_KEYS:
                values[key] = int(value)
            elif key in _CODES_KEYS:
                values[key] = tuple(int(c) for c in value.split("/"))
            elif key in _FLOAT_KEYS:
                number = float(value)
                if not math.isfinite(number):
                    raise ValueError(value)
                values[key] = number
            elif key in _STR_KEYS:
                values[key] = value
            else:
                raise ConfigError(f"{where}: unknown key {key!r}")
        except ValueError:
            raise ConfigError(f"{where}: {key} must be a number, got {value!r}") from None
    return values


def _span(where: str, values: dict[str, Any], run_start_ms: int,
          run_ms: int | None) -> tuple[int, int]:
    """Pop ``start`` and ``end``/``duration`` from ``values``: ``[start_ms, end_ms)``."""
    if "end" in values and "duration" in values:
        raise ConfigError(f"{where}: give end or duration, not both")
    if "start" in values:
        start_s = values.pop("start")
    elif run_ms is not None:
        start_s = run_ms / 2000
    else:
        raise ConfigError(f"{where}: start= is required when --duration is 0")
    if "end" in values:
        end_s = values.pop("end")
    elif "duration" in values:
        end_s = start_s + values.pop("duration")
    elif run_ms is not None:
        end_s = run_ms / 1000
    else:
        raise ConfigError(f"{where}: duration= or end= is required when --duration is 0")
    if not 0 <= start_s < end_s:
        raise ConfigError(f"{where}: needs 0 <= start < end")
    return run_start_ms + round(start_s * 1000), run_start_ms + round(end_s * 1000)


def plan(args: argparse.Namespace, now_ms: int | None = None) -> Plan:
    """Turn the parsed arguments into a :class:`Plan`; ``now_ms`` is used by ``--realtime``."""
    if args.realtime:
        if args.start is not None:
            raise ConfigError("simulate: --start and --realtime exclude each other")
        if now_ms is None:
            raise ConfigError("simulate: --realtime needs the current time")
        start_ms = now_ms
    else:
        start_ms = parse_start(args.start if args.start is not None else DEFAULT_START)
    if not (math.isfinite(args.duration) and args.duration >= 0):
        raise ConfigError("simulate.duration: must be >= 0 seconds")
    run_ms = round(args.duration * 1000) if args.duration > 0 else None
    if run_ms == 0:
        raise ConfigError("simulate.duration: must be at least 1 ms")
    incidents = [parse_incident(text, start_ms, run_ms) for text in args.incident]
    if args.freeze_403 is not None:
        if run_ms is None:
            raise ConfigError("simulate: --freeze-403 needs a --duration")
        incidents.append(
            Incident(
                "freeze",
                start_ms + run_ms // 2,
                start_ms + run_ms,
                code=403,
                fraction=args.freeze_403,
                name="freeze-403",
            )
        )
    surges = tuple(parse_surge(text, start_ms, run_ms) for text in args.surge)
    trough = SimSpec.diurnal_trough  # the shipped profile's
    if args.night_rate is not None:
        if not args.diurnal:
            raise ConfigError("simulate: --night-rate needs --diurnal")
        trough = trough_for(args.rate, args.night_rate)
    spec = SimSpec(
        seed=args.seed,
        rate=args.rate,
        n_apps=args.apps,
        diurnal=args.diurnal,
        incidents=tuple(incidents),
        surges=surges,
        diurnal_trough=trough,
    )
    end_ms = start_ms + (run_ms if run_ms is not None else _FOREVER_MS)
    return Plan(
        spec=spec, fmt=args.format, start_ms=start_ms, end_ms=end_ms, realtime=bool(args.realtime)
    )


#: The clock, replaced in tests to run ``--realtime`` without waiting.
_now: Callable[[], float] = time.time


def run(args: argparse.Namespace) -> int:
    """Run ``statuswatch simulate``: 0 on success, 2 on bad arguments, 1 on I/O errors."""
    try:
        now_ms = round(_now() * 1000) if args.realtime else None
        the_plan = plan(args, now_ms)
        if args.kafka is not None and args.out is not None:
            raise ConfigError("simulate: --out and --kafka exclude each other")
    except ConfigError as exc:
        print(f"statuswatch simulate: {exc}", file=sys.stderr)
        return 2
    try:
        if args.labels_out is not None:
            write_labels(the_plan, args.labels_out)
        if args.kafka is not None:
            asyncio.run(produce_kafka(the_plan, args.kafka, args.topic))
        else:
            write_output(the_plan, args.out if args.out is not None else "-")
    except SinkError as exc:
        print(f"statuswatch simulate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m statuswatch.simulate.cli``)."""
    parser = argparse.ArgumentParser(
        prog="statuswatch simulate", description="Write simulated API-gateway logs."
    )
    configure_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

__all__ = [
    "DEFAULT_START",
    "configure_parser",
    "main",
    "parse_incident",
    "parse_start",
    "parse_surge",
    "plan",
    "run",
]
