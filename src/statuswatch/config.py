"""Configuration: YAML file, overridden by ``STATUSWATCH_*`` environment variables.

Precedence is explicit: init arguments > environment > YAML > defaults.
Nested keys use ``__`` in the environment, e.g. ``STATUSWATCH_WINDOW__SIZE_SECONDS=5``.
Unknown keys are rejected; errors name the dotted key and never echo values
(so secrets cannot leak through a validation message).

This module is longer than the others on purpose: it is the one source of the
configuration reference (``statuswatch config-reference`` renders it, and a test holds
the YAML, the docs and the schema to it), so most of its lines are the ``Field``
descriptions of every key. Splitting the schema across modules would scatter that
reference without making any one part simpler.

>>> s = Settings()
>>> s.window.size_seconds
10.0
"""

from __future__ import annotations

import contextvars
import itertools
import urllib.parse
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from statuswatch.errors import ConfigError

Dimension = Literal["service", "route", "app"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT"]


def _one_secret(value: SecretStr | None, file: Path | None, name: str, required: bool) -> None:
    """Check that a secret is given at most (``required``: exactly) once; never show it."""
    if value is not None and file is not None:
        raise ValueError(f"set {name} or {name}_file, not both")
    if required and value is None and file is None:
        raise ValueError(f"{name} (or {name}_file) is required")
    if file is not None and not file.is_file():
        raise ValueError(f"{name}_file {file} is not a readable file")


def _read_secret(value: SecretStr | None, file: Path | None) -> str | None:
    """The secret in clear, from the value or the file (one trailing newline dropped)."""
    if value is not None:
        return value.get_secret_value()
    if file is None:
        return None
    text = file.read_text(encoding="utf-8")
    return text[:-1] if text.endswith("\n") else text


class TlsConfig(_Strict):
    """TLS towards a server: the Kafka brokers (``security_protocol`` SSL or SASL_SSL),
    Alertmanager or a webhook.

    Without ``ca_file`` the system's CA store verifies the server. ``cert_file`` and
    ``key_file`` (PEM) are the client certificate for mutual TLS.
    """

    ca_file: Path | None = Field(
        None,
        description="PEM file of the CA that signed the server certificates; unset: the system's "
        "CA store.",
    )
    cert_file: Path | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    key_file: Path | None = Field(
        None,
        description="Private key (PEM) of `cert_file`; needs `cert_file`.",
    )
    key_password: SecretStr | None = Field(
        None,
        description="Password of `key_file`, if it is encrypted; or `key_password_file`.",
    )
    key_password_file: Path | None = Field(
        None,
        description="File holding the password of `key_file` (one trailing newline dropped).",
    )
    check_hostname: bool = Field(
        True,
        description="The server certificate must name the host connected to.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TlsConfig:
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name} {path} is not a readable file")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        _one_secret(self.key_password, self.key_password_file, "key_password", required=False)
        return self

    def key_password_value(self) -> str | None:
        """The key password in clear (read from ``key_password_file`` if that is set)."""
        return _read_secret(self.key_password, self.key_password_file)


class SaslConfig(_Strict):
    """SASL authentication (``security_protocol`` SASL_SSL or SASL_PLAINTEXT).

    The password comes from ``password`` (YAML or ``STATUSWATCH_KAFKA__SASL__PASSWORD``)
    or from ``password_file`` (e.g. a mounted secret), exactly one of the two.
    """

    mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512",
        description="SASL mechanism.",
    )
    username: str = Field(min_length=1, description="The SASL user.")
    password: SecretStr | None = Field(
        None,
        description="The SASL password, e.g. from `STATUSWATCH_KAFKA__SASL__PASSWORD`; or "
        "`password_file`.",
    )
    password_file: Path | None = Field(
        None,
        description="File holding the SASL password, e.g. a mounted secret (one trailing newline "
        "dropped).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> SaslConfig:
        _one_secret(self.password, self.password_file, "password", required=True)
        return self

    def password_value(self) -> str:
        """The password in clear (read from ``password_file`` if that is set)."""
        return _read_secret(self.password, self.password_file) or ""


class KafkaConnection(_Strict):
    """How to reach a Kafka cluster: servers, client id, TLS and SASL."""

    bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        description="Comma-separated `host:port` list of the brokers.",
    )
    client_id: str = Field(
        "statuswatch",
        description="Client id; shows up in broker logs and quotas.",
    )
    security_protocol: SecurityProtocol = Field(
        "PLAINTEXT",
        description="How to talk to the brokers: plain, TLS, SASL over TLS or SASL in clear.",
    )
    tls: TlsConfig | None = Field(
        None,
        description="TLS settings, with `SSL` or `SASL_SSL`; unset: the system's CAs, hostname "
        "checked.",
    )
    sasl: SaslConfig | None = Field(
        None,
        description="SASL settings; required with `SASL_SSL` or `SASL_PLAINTEXT`, refused "
        "otherwise.",
    )

    @model_validator(mode="after")
    def _security_consistent(self) -> KafkaConnection:
        sasl_protocol = self.security_protocol.startswith("SASL_")
        if sasl_protocol and self.sasl is None:
            raise ValueError(f"security_protocol {self.security_protocol} needs a sasl section")
        if not sasl_protocol and self.sasl is not None:
            raise ValueError("a sasl section needs security_protocol SASL_SSL or SASL_PLAINTEXT")
        if self.tls is not None and not self.security_protocol.endswith("SSL"):
            raise ValueError("a tls section needs security_protocol SSL or SASL_SSL")
        return self


class KafkaConfig(KafkaConnection):
    """The source: the topic of access logs, the consumer group and fetch limits."""

    topic: str = Field(
        "gateway-logs", min_length=1,
        description="Topic holding the gateway access logs.",
    )
    group_id: str = Field(
        "statuswatch", min_length=1,
        description="Consumer group; instances sharing it split the partitions.",
    )
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest",
        description="Where a new consumer group starts reading.",
    )
    isolation_level: Literal["read_uncommitted", "read_committed"] = Field(
        "read_uncommitted",
        description="`read_committed` for a topic written in transactions (an exactly-once "
        "Flink or Kafka Streams job, Kafka Connect with exactly-once support): records of "
        "aborted transactions are never counted, and records of open ones wait for the "
        "commit (the lag is then measured to the last stable offset, so a long transaction "
        "does not look like a stuck consumer). `read_uncommitted` (Kafka's default) reads "
        "every record as soon as it is written.",
    )
    max_batch_records: int = Field(
        5000, gt=0,
        description="Most records taken per poll (bounds the CPU spent per batch).",
    )
    fetch_timeout_ms: int = Field(500, gt=0, description="How long a poll waits for data.")
    max_partition_fetch_bytes: int = Field(
        4 * 1024 * 1024, gt=0,
        description="Bytes fetched per partition per request.",
    )
    session_timeout_ms: int = Field(
        30_000, gt=0,
        description="Consumer group session timeout; heartbeats keep it alive.",
    )
    dead_letter_topic: str | None = Field(
        None, min_length=1,
        description="Topic that receives rejected records (the original value, its source "
        "position and the reason); unset: off.",
    )
    dead_letter_max_bytes: int = Field(
        64 * 1024, gt=0,
        description="Longer rejected values are cut to this many bytes in the dead letter.",
    )
    dead_letter_max_in_flight: int = Field(
        1000, gt=0,
        description="Most dead letters awaiting the broker's acknowledgement at once.",
    )
    dead_letter_timeout_seconds: float = Field(
        10.0, gt=0,
        description="How long a commit waits for dead letters to be acknowledged.",
    )
    input: Literal["raw", "aggregates"] = Field(
        "raw",
        description="What `statuswatch run` reads: `raw` access logs from `topic`, or "
        "`aggregates`, the partial windows `statuswatch aggregate` writes to `aggregate.topic` "
        "(the two-stage layout; `group_id` is then the group on that topic).",
    )


TimestampUnit = Literal["s", "ms", "us", "ns", "iso8601", "clf"]


class FieldMap(_Strict):
    """Dotted paths to the fields of a JSON log (formats ``json`` and ``nginx-json``).

    ``timestamp`` unset: ``time`` for ``json``; for ``nginx-json`` the first of
    ``msec``, ``time_iso8601``, ``time_local`` and ``time`` a record has.
    ``timestamp_unit`` unset: ``iso8601``, but for ``nginx-json`` the unit of a
    named nginx variable (``msec``: s, ``time_local``: clf). ``clf`` is the
    common log format's ``dd/Mon/yyyy:HH:MM:SS +zzzz``.
    """

    timestamp: str | None = Field(
        None, min_length=1,
        description="Field with the request time. Unset: `time` for `json`; for `nginx-json` the "
        "first of `msec`, `time_iso8601`, `time_local` and `time` a record has.",
    )
    timestamp_unit: TimestampUnit | None = Field(
        None,
        description="Unit of the time field: epoch `s`, `ms`, `us`, `ns`, `iso8601` or `clf` "
        "(`06/Dec/2026:05:30:01 +0000`). Unset: `iso8601`; for `nginx-json` the unit "
        "of the named nginx variable.",
    )
    status: str | None = Field(
        "status", min_length=1,
        description="Field with the HTTP status code. `null` (format `json` only): the records "
        "have no status, each is one event (support tickets, say), and only each scope's volume "
        "is watched.",
    )
    service: str | None = Field(
        None,
        description="Field naming the service; unset: not in the log.",
    )
    route: str | None = Field(None, description="Field naming the route; unset: not in the log.")
    app: str | None = Field(
        None,
        description="Field naming the consumer or app; unset: not in the log.",
    )


class MostlyInvalidConfig(_Strict):
    """When the input counts as mostly invalid: at least ``share`` of at least
    ``min_records`` records in the last ``window_seconds`` were rejected."""

    share: float = Field(
        0.5, gt=0, le=1,
        description="Rejected share of the records read that makes the input mostly invalid ...",
    )
    min_records: int = Field(100, ge=1, description="... of at least this many records ...")
    window_seconds: float = Field(
        60.0, ge=1, le=3600,
        description="... read in the last this many seconds (wall time).",
    )


DecodeFormat = Literal["kong", "envoy", "nginx-json", "combined", "haproxy", "caddy", "json"]
DECODE_FORMATS: tuple[str, ...] = get_args(DecodeFormat)
#: Formats whose route is a name, not a path: ``decode.route_segments`` does not apply.
NAMED_ROUTE_FORMATS: tuple[str, ...] = ("kong", "envoy")


class DecodeConfig(_Strict):
    """How one record is read: its format, field paths and size limits."""

    format: DecodeFormat = Field(
        "kong",
        description="Log format of the records: `combined` for Apache and NGINX text logs, "
        "`haproxy` for HAProxy's HTTP log (`option httplog` or `httpslog`), `caddy` for "
        "Caddy's JSON access log.",
    )
    fields: FieldMap = Field(
        FieldMap(),
        description="Dotted paths to the fields, for the `json` and `nginx-json` formats.",
    )
    envelope: Literal["none", "syslog", "json"] = Field(
        "none",
        description="Where the line is in a record. `syslog`: behind a syslog header (RFC 3164, "
        "RFC 5424, or an RFC 3339 time, host and tag, as rsyslog's omkafka and syslog-ng write "
        "them); `json`: in the string field `envelope_field` of a JSON event (Vector, Filebeat, "
        "Fluent Bit). A record without the envelope is read as it is.",
    )
    envelope_field: str = Field(
        "message", min_length=1, pattern=r"^[^.]+(\.[^.]+)*$",
        description="With `envelope: json`, the dotted path of the field holding the line: "
        "`message` (Vector, Filebeat), `log` (Fluent Bit).",
    )
    route_segments: int | None = Field(
        None, ge=1, le=16,
        description="The route is the request path's first this many segments, without the "
        "query (`/v1/charges/42?x=1`: `/v1` at 1, `/v1/charges` at 2). Unset: 1 for "
        "`combined`, `haproxy` and `caddy`; `json` and `nginx-json` take `fields.route` as "
        "it is (set this where that field holds a path, as nginx's `$request_uri` does). "
        "Not for `kong` and `envoy`, whose routes have names.",
    )
    timezone: str = Field(
        "UTC",
        description="Zone of event times written without an offset: HAProxy's accept date "
        "(`%tr`, the local time of HAProxy's host) and ISO-8601 times without `Z` or "
        "`+HH:MM`. An IANA name (`Europe/Berlin`) or `UTC`. In the hour the change to "
        "winter time repeats, a time is read as its first occurrence.",
    )
    max_record_bytes: int = Field(
        1_000_000, gt=0,
        description="Larger records are rejected as `too_large`.",
    )
    max_depth: int = Field(64, gt=0, description="Deeper JSON nesting is rejected as `too_deep`.")
    mostly_invalid: MostlyInvalidConfig = Field(
        MostlyInvalidConfig(),
        description="When most records are rejected: `/ready` 503, an ERROR line, the "
        "StatuswatchInputMostlyInvalid alert; volume drops are suppressed meanwhile.",
    )

    @field_validator("route_segments")
    @classmethod
    def _routes_are_paths(cls, segments: int | None, info: ValidationInfo) -> int | None:
        fmt = info.data.get("format")
        if segments is not None and fmt in NAMED_ROUTE_FORMATS:
            paths = ", ".join(f for f in DECODE_FORMATS if f not in NAMED_ROUTE_FORMATS)
            raise ValueError(f"format {fmt} names its routes; the segments of a path apply "
                             f"to {paths}")
        return segments

    @field_validator("timezone")
    @classmethod
    def _timezone_known(cls, name: str) -> str:
        if name != "UTC":  # UTC needs no zone database
            try:
                zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
                raise ValueError(
                    f"unknown time zone {name!r}: an IANA name such as Europe/Berlin, or UTC"
                ) from None
        return name

    @model_validator(mode="after")
    def _status_for_format(self) -> DecodeConfig:
        if self.fields.status is None and self.format != "json":
            raise ValueError(
                f"decode.fields.status: null (records without a status) needs format json, "
                f"not {self.format}"
            )
        return self


class WindowConfig(_Strict):
    """Event-time tumbling windows and how long they wait for late records."""

    size_seconds: float = Field(
        10.0, gt=0, le=3600,
        description="Length of the event-time tumbling window.",
    )
    allowed_lateness_seconds: float = Field(
        5.0, ge=0,
        description="How long a window waits for late records after it closed; later records are "
        "counted as late and dropped.",
    )
    idle_timeout_seconds: float = Field(
        30.0, gt=0,
        description="A partition silent this long stops holding back the watermark.",
    )

    @property
    def size_ms(self) -> int:
        return round(self.size_seconds * 1000)

    @property
    def lateness_ms(self) -> int:
        return round(self.allowed_lateness_seconds * 1000)


DEFAULT_LEVELS: list[list[Dimension]] = [[], ["service"], ["service", "route"], ["app"]]


class ScopesConfig(_Strict):
    """The scopes baselined separately and how many of each level are kept."""

    levels: list[list[Dimension]] = Field(
        default_factory=lambda: list(DEFAULT_LEVELS),
        description="Scopes to baseline separately, each a list of dimensions (`service`, "
        "`route`, `app`); the first must be `[]`, the whole fleet.",
    )
    max_per_level: int = Field(
        500, gt=0,
        description="Cardinality cap per level: the heaviest scopes by volume keep rows, the "
        "rest fold into `other` (metrics `statuswatch_scopes_cap`, "
        "`statuswatch_scopes_folded_total`, `statuswatch_scopes_recycled_total`).",
    )

    @model_validator(mode="after")
    def _fleet_first(self) -> ScopesConfig:
        if not self.levels or self.levels[0] != []:
            raise ValueError("the first level must be [] (the whole fleet)")
        return self


class BaselineConfig(_Strict):
    """How fast the expected share and volume of each code forget."""

    half_life_windows: float = Field(
        90.0, gt=0,
        description="Share memory: old evidence weighs half after this many windows (90 x 10 s = "
        "15 min).",
    )
    volume_half_life_windows: float = Field(
        30.0, gt=0,
        description="Volume memory, the recent traffic level (30 x 10 s = 5 min).",
    )
    warmup_windows: int = Field(
        30, ge=0,
        description="Windows of traffic a scope needs before it may alert.",
    )
    accept_after_windows: int = Field(
        360, ge=0,
        description="A level firing this many windows becomes the new normal (0: never); `kill "
        "-USR1` accepts at once.",
    )
    reference_half_life_windows: float = Field(
        2160.0, gt=0,
        description="Memory of the long reference share each code is also held against over "
        "the horizons with `long_reference` (2160 x 10 s = 6 h): a creep the fast share follows "
        "stays visible against it.",
    )
    same_hour_reference_days: float = Field(
        7.0, ge=0,
        description="Memory, in days, of each code's share at each hour of the day, read "
        "beside the long reference once a scope has a day of history: a rise over the "
        "horizons with `long_reference` is judged against the higher of the two, so a level "
        "normal at this hour on the previous days (a nightly batch accepted once) is no rise "
        "(0: off).",
    )


Preset = Literal["low", "medium", "high"]
DirectionSetting = Literal["up", "down", "both"]

#: Sensitivity presets: (fire_score, min_excess_count, min_share_ratio).
PRESETS: dict[str, tuple[float, float, float]] = {
    "high": (4.0, 5.0, 1.5),
    "medium": (6.0, 10.0, 2.0),
    "low": (9.0, 30.0, 3.0),
}


class Thresholds(_Strict):
    """When a window is a hit. Unset keys come from the preset, then the defaults."""

    preset: Preset | None = Field(
        None,
        description="Sensitivity preset: `high` (fire_score 4, min_excess_count 5, "
        "min_share_ratio 1.5), `medium` (6, 10, 2) or `low` (9, 30, 3).",
    )
    fire_score: float | None = Field(
        None, gt=0,
        description="`-log10 p` that counts as a hit; unset: from the preset, else "
        "`detect.fire_score`.",
    )
    min_excess_count: float | None = Field(
        None, ge=0,
        description="Requests above (or below) expected needed for a hit; unset: from the preset, "
        "else `detect.min_excess_count`.",
    )
    min_share_ratio: float | None = Field(
        None, ge=1.0,
        description="Observed/expected share ratio needed for a hit; unset: from the preset, else "
        "`detect.min_share_ratio`.",
    )
    direction: DirectionSetting | None = Field(
        None,
        description="Alert on share rises, drops or both; unset: `detect.direction`.",
    )
    k: int | None = Field(
        None, gt=0,
        description="Hits needed within the last `m` windows to fire; unset: `detect.k`.",
    )
    m: int | None = Field(
        None, gt=0,
        description="Windows in which `k` hits fire; unset: `detect.m`.",
    )


class VolumeThresholds(_Strict):
    """A rule's volume settings; unset keys come from ``detect.volume`` (``k``/``m``:
    hits in the last m windows needed to fire, from ``detect.k``/``m``)."""

    fire_score: float | None = Field(
        None, gt=0,
        description="`-log10 p` that counts as a volume hit; unset: `detect.volume.fire_score`.",
    )
    min_excess_count: float | None = Field(
        None, ge=0,
        description="Requests missing (or extra) needed for a volume hit; unset: "
        "`detect.volume.min_excess_count`.",
    )
    min_ratio: float | None = Field(
        None, ge=1.0,
        description="Expected/observed (drop) or observed/expected (rise) ratio needed; unset: "
        "`detect.volume.min_ratio`.",
    )
    direction: DirectionSetting | None = Field(
        None,
        description="Alert on traffic drops, surges or both; unset: `detect.volume.direction`.",
    )
    k: int | None = Field(
        None, gt=0,
        description="Volume hits needed within the last `m` windows to fire; unset: `detect.k`.",
    )
    m: int | None = Field(
        None, gt=0,
        description="Windows in which `k` volume hits fire; unset: `detect.m`.",
    )


#: Severity of an alert no rule names one for; a label value, so a plain word.
DEFAULT_SEVERITY = "page"
SEVERITY_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


class Rule(Thresholds):
    """Per-rule settings; the first rule whose ``codes`` and ``scope`` match wins.

    A scope's volume is the series of all its codes together. It is decided by the
    first rule whose scope matches, whose ``codes`` include ``all`` and which sets
    ``volume``, ``ignore`` or ``shadow``; the share keys (``preset``, the thresholds,
    ``direction``, ``k``, ``m``) do not apply to it. A rule with ``volume`` keys leaves
    the share series to later rules unless it also sets a share key (``ignore`` and
    ``shadow`` then act on its volume only).
    """

    name: str = Field(
        min_length=1,
        description="The rule's name, shown in metrics (shadow mode) and logs.",
    )
    codes: list[str] = Field(
        default_factory=lambda: ["all"],
        description="Exact codes (`403`, `0` for no response), classes (`4xx`) or `all`.",
    )
    scope: dict[str, str] = Field(
        default_factory=dict,
        description="Labels the scope must carry, e.g. `{service: checkout}`; keys `service`, "
        "`route`, `app`.",
    )
    ignore: bool = Field(False, description="Never alert on these series.")
    shadow: bool = Field(
        False,
        description="Count \"would have fired\" only: page nothing and cover nothing outside the "
        "rule's own scope.",
    )
    volume: VolumeThresholds | None = Field(
        None,
        description="Volume thresholds for the matching scopes; needs `all` among `codes`.",
    )
    severity: str = Field(
        DEFAULT_SEVERITY, pattern=SEVERITY_PATTERN,
        description="The `severity` label of this rule's alerts in Alertmanager.",
    )

    @model_validator(mode="after")
    def _codes_valid(self) -> Rule:
        for code in self.codes:
            if code in ("all", "0"):  # 0: no response was sent
                continue
            if len(code) == 3 and code[0] in "12345" and (code[1:].isdigit() or code[1:] == "xx"):
                continue
            raise ValueError(
                f"codes: {code!r} is not a status code (403, 0), class (4xx) or 'all'"
            )
        for key in self.scope:
            if key not in ("service", "route", "app"):
                raise ValueError(f"scope: unknown dimension {key!r}")
        if self.volume is not None and "all" not in self.codes:
            raise ValueError(
                "volume: a scope's volume counts every code, so a rule with volume keys "
                "needs 'all' among its codes"
            )
        return self


class VolumeConfig(_Strict):
    """Scoring each scope's request count: traffic drops, input gone silent."""

    enabled: bool = Field(True, description="Score each scope's request count at all.")
    direction: DirectionSetting = Field(
        "down",
        description="Alert on traffic drops, surges or both (`up` pages on every traffic surge).",
    )
    fire_score: float = Field(
        8.0, gt=0,
        description="`-log10 p` that counts as a volume hit; must be above `detect.clear_score`.",
    )
    min_excess_count: float = Field(
        50.0, ge=0,
        description="Requests missing (or extra) needed for a volume hit.",
    )
    min_ratio: float = Field(
        2.0, ge=1.0,
        description="Expected/observed (drop) or observed/expected (rise) ratio needed for a hit.",
    )
    calibration: bool = Field(
        False,
        description="Score each scope's volume against its own history of scores (bursty scopes "
        "page less, quiet ones as before).",
    )
    calibration_half_life_windows: float = Field(
        10_000.0, gt=0,
        description="Memory of each scope's score distribution (10000 x 10 s = ~28 h).",
    )
    calibration_min_std: float = Field(
        2.0, gt=0,
        description="Floor of that distribution's spread, in `-log10 p` units.",
    )
    calibration_warmup_windows: int = Field(
        300, ge=0,
        description="Windows of scores a scope needs before its calibrated scores count.",
    )


_APP_LEVEL: list[Dimension] = ["app"]


class BlastRadiusConfig(_Strict):
    """Many small scopes (apps) anomalous on one code at once."""

    enabled: bool = Field(True, description="Score the fraction of anomalous scopes at `level`.")
    level: list[Dimension] = Field(
        default_factory=lambda: list(_APP_LEVEL),
        description="The scope level counted; must be one of `scopes.levels`.",
    )
    scope_score: float = Field(
        3.0, gt=0,
        description="A scope counts as anomalous at this `-log10 p`.",
    )
    min_fraction: float = Field(
        0.2, gt=0, le=1,
        description="Fraction of the level's active scopes that must be anomalous ...",
    )
    min_scopes: int = Field(5, ge=1, description="... and at least this many of them.")


class HorizonConfig(_Strict):
    """One horizon: the sum of the last ``windows`` windows, scored as one count."""

    windows: int = Field(
        gt=0,
        description="Windows summed (1: the window itself; 6 x 10 s = 1 min, 360 = 1 h).",
    )
    min_excess_count: float | None = Field(
        None, ge=0,
        description="Requests above (or below) expected over this horizon needed for a hit; "
        "unset: `detect.min_excess_count` (rules with their own thresholds keep them).",
    )
    min_share_ratio: float | None = Field(
        None, ge=1.0,
        description="Observed/expected share ratio over this horizon needed for a hit; unset: "
        "`detect.min_share_ratio`.",
    )
    long_reference: bool = Field(
        False,
        description="Judge rises over this horizon against the long reference "
        "(`baseline.reference_half_life_windows`) instead of the learned share, so a slow "
        "creep the learned share followed still pages.",
    )


def _default_horizons() -> list[HorizonConfig]:
    return [
        HorizonConfig(windows=1), HorizonConfig(windows=6),
        HorizonConfig(windows=60, long_reference=True),
        HorizonConfig(windows=360, long_reference=True),
    ]


class DetectConfig(_Strict):
    """When a window is a hit, when an alert fires and when it resolves."""

    fire_score: float = Field(
        6.0, gt=0,
        description="`-log10 p` that counts as a hit (6: one in a million).",
    )
    clear_score: float = Field(
        3.0, ge=0,
        description="Below this a window is calm; every fire score (rules' and volume's too) must "
        "be above it (hysteresis).",
    )
    extreme_score: float = Field(
        20.0, gt=0,
        description="A single window this strong fires at once.",
    )
    k: int = Field(2, gt=0, description="Hits needed within the last `m` windows to fire.")
    m: int = Field(3, gt=0, description="Windows in which `k` hits fire; `k` <= `m`.")
    min_excess_count: float = Field(
        10.0, ge=0,
        description="Requests above (or below) expected needed for a hit: three 403s where one "
        "was usual never page.",
    )
    min_share_ratio: float = Field(
        2.0, ge=1.0,
        description="Observed/expected share ratio needed for a hit.",
    )
    direction: DirectionSetting = Field("both", description="Alert on share rises, drops or both.")
    min_firing_windows: int = Field(
        3, ge=1,
        description="An alert stays firing at least this many windows.",
    )
    clear_windows: int = Field(3, ge=1, description="Calm windows in a row needed to resolve.")
    horizons: list[HorizonConfig] = Field(
        default_factory=_default_horizons,
        description="Each series is also scored over the sum of its last `windows` windows "
        "(10 s, 1 min, 10 min, 1 h by default): a sparse scope's evidence adds up where its "
        "counts become meaningful. The first is 1, each a multiple of the one before; an "
        "alert resolves on the horizon that fired it.",
    )
    classes: list[str] = Field(
        default_factory=lambda: ["4xx", "5xx"],
        description="Status classes also scored as one series each, the class's summed "
        "share (`code=\"5xx\"` in alerts and metrics): a rise spread over 500/502/503 is "
        "one series.",
    )
    volume: VolumeConfig = Field(
        VolumeConfig(),
        description="Each scope's request count: traffic drops, input gone silent.",
    )
    blast_radius: BlastRadiusConfig = Field(
        BlastRadiusConfig(),
        description="Many small scopes anomalous on one code at once.",
    )
    rules: list[Rule] = Field(
        default_factory=list,
        description="Per-code and per-scope overrides; the first rule whose `codes` and `scope` "
        "match wins.",
    )

    @field_validator("horizons")
    @classmethod
    def _horizons_valid(cls, horizons: list[HorizonConfig]) -> list[HorizonConfig]:
        if not horizons or horizons[0].windows != 1:
            raise ValueError("the first horizon is the window itself: windows 1")
        for before, h in itertools.pairwise(horizons):
            if h.windows <= before.windows or h.windows % before.windows:
                raise ValueError(
                    f"windows {h.windows}: each horizon must be a larger multiple of the one "
                    f"before ({before.windows})"
                )
        return horizons

    @field_validator("classes")
    @classmethod
    def _classes_valid(cls, classes: list[str]) -> list[str]:
        for c in classes:
            if len(c) != 3 or c[0] not in "12345" or c[1:] != "xx":
                raise ValueError(f"{c!r} is not a status class (1xx .. 5xx)")
        if len(set(classes)) != len(classes):
            raise ValueError("a class is listed twice")
        return classes

    @model_validator(mode="after")
    def _consistent(self) -> DetectConfig:
        if self.k > self.m:
            raise ValueError("k must be <= m")
        if self.clear_score >= self.fire_score:
            raise ValueError("clear_score must be below fire_score (hysteresis)")
        if self.volume.fire_score <= self.clear_score:
            raise ValueError("volume.fire_score must be above clear_score (hysteresis)")
        for rule in self.rules:
            k, m = rule.k or self.k, rule.m or self.m
            if k > m:
                raise ValueError(f"rule {rule.name!r}: k must be <= m")
            fire = rule.fire_score or PRESETS.get(rule.preset or "", (self.fire_score,))[0]
            if fire <= self.clear_score:
                raise ValueError(f"rule {rule.name!r}: fire_score must be above clear_score")
            if rule.volume is None:
                continue
            vol = rule.volume
            if vol.fire_score is not None and vol.fire_score <= self.clear_score:
                raise ValueError(
                    f"rule {rule.name!r}: volume.fire_score must be above clear_score"
                )
            if (vol.k or self.k) > (vol.m or self.m):
                raise ValueError(f"rule {rule.name!r}: volume.k must be <= volume.m")
        return self


class DeliveryConfig(_Strict):
    """How one sink delivers: a bounded queue, retries with backoff, a deadline.

    The consume loop only enqueues; a full queue drops its oldest alert (counted and
    logged). A failed attempt is retried after ``backoff_initial_seconds``, doubling up
    to ``backoff_max_seconds``, with full jitter, until ``deadline_seconds`` after the
    alert was enqueued; then it is counted as expired and logged.
    """

    name: str | None = Field(
        None, min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$",
        description="The sink's name in metrics and logs; unset: its type and position, e.g. "
        "`webhook-2`.",
    )
    queue_size: int = Field(1000, gt=0, description="Alerts queued before the oldest is dropped.")
    timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one delivery attempt.")
    deadline_seconds: float = Field(
        300.0, gt=0,
        description="An alert undelivered this long after it was queued is counted as expired and "
        "logged.",
    )
    backoff_initial_seconds: float = Field(
        0.5, gt=0,
        description="First retry delay, doubling up to `backoff_max_seconds`, with full jitter.",
    )
    backoff_max_seconds: float = Field(30.0, gt=0, description="Longest retry delay.")

    @model_validator(mode="after")
    def _backoff_ordered(self) -> DeliveryConfig:
        if self.backoff_max_seconds < self.backoff_initial_seconds:
            raise ValueError("backoff_max_seconds must be >= backoff_initial_seconds")
        return self


class HttpAuthConfig(_Strict):
    """Basic auth (``username`` + ``password``) or a bearer token; secrets inline or in files."""

    username: str | None = Field(
        None, min_length=1,
        description="Basic auth user; needs `password` or `password_file`.",
    )
    password: SecretStr | None = Field(None, description="Basic auth password; or `password_file`.")
    password_file: Path | None = Field(None, description="File holding the basic auth password.")
    bearer_token: SecretStr | None = Field(
        None,
        description="Bearer token (instead of basic auth); or `bearer_token_file`.",
    )
    bearer_token_file: Path | None = Field(None, description="File holding the bearer token.")

    @model_validator(mode="after")
    def _consistent(self) -> HttpAuthConfig:
        _one_secret(self.password, self.password_file, "password", required=False)
        _one_secret(self.bearer_token, self.bearer_token_file, "bearer_token", required=False)
        basic = self.username is not None
        has_password = self.password is not None or self.password_file is not None
        if basic != has_password:
            raise ValueError("basic auth needs both username and password (or password_file)")
        has_token = self.bearer_token is not None or self.bearer_token_file is not None
        if basic and has_token:
            raise ValueError("set basic auth (username, password) or bearer_token, not both")
        return self

    def password_value(self) -> str | None:
        return _read_secret(self.password, self.password_file)

    def bearer_token_value(self) -> str | None:
        return _read_secret(self.bearer_token, self.bearer_token_file)


def _http_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    return url


class AlertmanagerSinkConfig(DeliveryConfig):
    """Alertmanager's API v2: every alert is POSTed to each URL (a cluster's members)."""

    type: Literal["alertmanager"] = Field(description="Selects this sink type.")
    urls: list[str] = Field(
        min_length=1,
        description="Alertmanager base URLs (a cluster's members); each gets every alert, with "
        "its own queue.",
    )
    auth: HttpAuthConfig | None = Field(
        None,
        description="HTTP authentication towards Alertmanager.",
    )
    tls: TlsConfig | None = Field(None, description="TLS towards Alertmanager (`https://` URLs).")
    resend_interval_seconds: float = Field(
        60.0, gt=0,
        description="Firing alerts are sent again this often; keep it well below Alertmanager's "
        "`resolve_timeout` (default 5m), or a long incident resolves itself there.",
    )

    @field_validator("urls")
    @classmethod
    def _urls_valid(cls, urls: list[str]) -> list[str]:
        return [_http_url(u).rstrip("/") for u in urls]


class WebhookSinkConfig(DeliveryConfig):
    """The alert JSON POSTed to ``url``, optionally signed with HMAC-SHA256."""

    type: Literal["webhook"] = Field(description="Selects this sink type.")
    url: str = Field(description="The `http://` or `https://` URL the alert JSON is POSTed to.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra HTTP headers sent with every request.",
    )
    auth: HttpAuthConfig | None = Field(
        None,
        description="HTTP authentication towards the webhook.",
    )
    tls: TlsConfig | None = Field(None, description="TLS towards the webhook (`https://` URL).")
    hmac_secret: SecretStr | None = Field(
        None,
        description="Signs the body: header `X-Statuswatch-Signature: t=<unix>,sha256=<hex>`; or "
        "`hmac_secret_file`.",
    )
    hmac_secret_file: Path | None = Field(None, description="File holding the HMAC secret.")

    @field_validator("url")
    @classmethod
    def _url_valid(cls, url: str) -> str:
        return _http_url(url)

    @model_validator(mode="after")
    def _consistent(self) -> WebhookSinkConfig:
        _one_secret(self.hmac_secret, self.hmac_secret_file, "hmac_secret", required=False)
        return self

    def hmac_secret_value(self) -> str | None:
        return _read_secret(self.hmac_secret, self.hmac_secret_file)


class KafkaSinkConfig(DeliveryConfig):
    """The alert JSON, keyed by alert id, produced idempotently (``acks=all``) to ``topic``.

    ``cluster`` is another cluster's connection; without it, that of the ``kafka`` section.
    """

    type: Literal["kafka"] = Field(description="Selects this sink type.")
    topic: str = Field(min_length=1, description="Topic the alerts are produced to.")
    cluster: KafkaConnection | None = Field(
        None,
        description="Connection to another cluster; unset: that of the `kafka` section.",
    )


SinkConfig = Annotated[
    AlertmanagerSinkConfig | WebhookSinkConfig | KafkaSinkConfig, Field(discriminator="type")
]


class AlertsConfig(_Strict):
    """Where alert state changes go."""

    output: str = Field(
        "-",
        description="Alert state changes as JSON lines: a file path, or `-` for stdout.",
    )
    windows_output: str | None = Field(
        None,
        description="Audit log: every closed window's counts as JSON lines; unset: off.",
    )
    sinks: list[SinkConfig] = Field(
        default_factory=list,
        description="Where alerts are delivered besides `output`; any number, each with its own "
        "queue.",
    )
    external_url: str | None = Field(
        None,
        description="The metrics listener's URL as people reach it (Alertmanager's `generatorURL` "
        "links to its `/alerts`); unset: `http://<metrics.host>:<metrics.port>`.",
    )

    @field_validator("external_url")
    @classmethod
    def _external_url_valid(cls, url: str | None) -> str | None:
        return None if url is None else _http_url(url).rstrip("/")

    @model_validator(mode="after")
    def _names_unique(self) -> AlertsConfig:
        names = [sink_name(s, i) for i, s in enumerate(self.sinks)]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two sinks are named {name!r}; give them distinct names")
        return self


def sink_name(sink: DeliveryConfig, index: int) -> str:
    """A sink's name in metrics and logs: its ``name``, else its type and position.

    >>> sink_name(WebhookSinkConfig(type="webhook", url="http://hook"), 2)
    'webhook-2'
    """
    return sink.name or f"{getattr(sink, 'type', 'sink')}-{index}"


class StateConfig(_Strict):
    """Durable snapshots: a restart loses neither windows nor baselines."""

    dir: str | None = Field(
        None,
        description="Directory for snapshots (versioned JSON, atomic); unset keeps state in "
        "memory only. Set it in production.",
    )
    interval_seconds: float = Field(
        10.0, gt=0,
        description="How often state is snapshotted (offsets are committed after).",
    )
    keep: int = Field(
        3, ge=1,
        description="Snapshot generations kept; a corrupt newest falls back to an older one.",
    )


class MetricsConfig(_Strict):
    """The HTTP listener of `/metrics`, `/ready`, `/healthz` and `/alerts`."""

    enabled: bool = Field(True, description="Serve Prometheus metrics.")
    host: str = Field(
        "127.0.0.1",
        description="Bind address of `/metrics`, `/ready` and `/healthz` (`0.0.0.0` to expose "
        "beyond the host).",
    )
    port: int = Field(
        9464, ge=0, le=65535,
        description="Port of `/metrics`, `/ready` and `/healthz`.",
    )
    tls_cert_file: str | None = Field(
        None,
        description="PEM certificate: serve the endpoints over HTTPS (with `tls_key_file`).",
    )
    tls_key_file: str | None = Field(None, description="PEM private key of `tls_cert_file`.")

    @model_validator(mode="after")
    def _tls_pair(self) -> MetricsConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        return self


class HealthConfig(_Strict):
    """When the process reports itself unready, unhealthy or stuck."""

    broker_timeout_seconds: float = Field(
        10.0, gt=0,
        description="No fetch response from the broker this long: broker down, `/ready` 503, "
        "`statuswatch_broker_up` 0.",
    )
    heartbeat_timeout_seconds: float = Field(
        10.0, gt=0,
        description="Event loop silent this long: `/healthz` 503.",
    )
    stuck_timeout_seconds: float = Field(
        120.0, ge=0,
        description="Lag > 0 with no consumed progress, or a partition that cannot be read, this "
        "long: exit 3 for the supervisor to restart (0: never).",
    )
    shutdown_timeout_seconds: float = Field(
        5.0, gt=0,
        description="Longest wait for the broker while stopping (final commit, leaving the "
        "group).",
    )


class ReloadConfig(_Strict):
    """Re-reading the config file without a restart: on ``SIGHUP`` always; with
    ``watch`` also when the file changes (its bytes are checked every
    ``interval_seconds``). Only ``LIVE_KEYS`` may change; see ``restart_keys``."""

    watch: bool = Field(
        False, description="Also reload when the file's bytes change, not only on SIGHUP."
    )
    interval_seconds: float = Field(
        5.0, gt=0, le=3600, description="How often the watched file's bytes are checked."
    )


_yaml_path: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "statuswatch_yaml_path", default=None
)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping safely (``!!python/*`` tags are refused)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read config file {path}: not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys")
    return data


class _YamlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns the whole mapping

    def __call__(self) -> dict[str, Any]:
        path = _yaml_path.get()
        return read_yaml(path) if path is not None else {}


class AggregateConfig(_Strict):
    """The two-stage layout: `statuswatch aggregate` counts `kafka.topic` per partition and
    writes partial windows to `topic`, in transactions; `statuswatch run` with
    `kafka.input: aggregates` merges them and detects."""

    topic: str = Field(
        "statuswatch-aggregates", min_length=1,
        description="Topic of the partial windows: stage 1 writes it, stage 2 reads it "
        "(read_committed). Source partition p goes to partition p mod its partition count.",
    )
    group_id: str = Field(
        "statuswatch-aggregate", min_length=1,
        description="Consumer group of the `statuswatch aggregate` workers on `kafka.topic`; "
        "also the prefix of their transactional ids (one per source partition).",
    )
    transaction_interval_seconds: float = Field(
        1.0, gt=0, le=60,
        description="Closed windows are written (and the source offsets committed) at most "
        "this often per partition: fewer transactions, at most this much added delay.",
    )
    max_scopes_per_level: int = Field(
        100_000, gt=0,
        description="Scopes a worker keeps per level before folding more into `other`; "
        "stage 2 applies `scopes.max_per_level` to what it receives.",
    )


class Settings(BaseSettings):
    """statuswatch's configuration: YAML, overridden by ``STATUSWATCH_*`` variables."""

    model_config = SettingsConfigDict(
        env_prefix="STATUSWATCH_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    kafka: KafkaConfig = Field(KafkaConfig(), description="Where the access logs come from.")
    decode: DecodeConfig = Field(DecodeConfig(), description="How to read one record.")
    window: WindowConfig = Field(WindowConfig(), description="Event-time windows.")
    scopes: ScopesConfig = Field(ScopesConfig(), description="What to baseline separately.")
    baseline: BaselineConfig = Field(
        BaselineConfig(),
        description="The expected share and volume of each code.",
    )
    detect: DetectConfig = Field(
        DetectConfig(),
        description="When a window is a hit and an alert fires.",
    )
    alerts: AlertsConfig = Field(AlertsConfig(), description="Where alert state changes go.")
    state: StateConfig = Field(
        StateConfig(),
        description="Durable snapshots: restart without losing windows or baselines.",
    )
    metrics: MetricsConfig = Field(MetricsConfig(), description="The Prometheus endpoint.")
    health: HealthConfig = Field(
        HealthConfig(),
        description="`/ready`, `/healthz` and the stuck-consumer watchdog.",
    )
    reload: ReloadConfig = Field(
        ReloadConfig(),
        description="Re-reading the config file while running (SIGHUP or a file watch).",
    )
    aggregate: AggregateConfig = Field(
        AggregateConfig(),
        description="Scale-out: `statuswatch aggregate` workers feeding one detector.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, ``dotted.key: message``; input values are never shown."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{key}: {msg}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``path`` (YAML) plus the environment; raise ``ConfigError``."""
    token = _yaml_path.set(Path(path) if path is not None else None)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    finally:
        _yaml_path.reset(token)


#: Keys a reload applies (from the next window on); a change anywhere else needs a
#: restart: it shapes state that is kept (windows, scope rows, code columns, baselines),
#: or connections and listeners opened at start.
LIVE_KEYS = ("detect", "alerts.sinks", "baseline.accept_after_windows", "reload")
#: Keys under ``LIVE_KEYS`` that still need a restart: the status classes are code
#: columns of the baselines.
RESTART_KEYS_UNDER_LIVE = ("detect.classes",)


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def changed_keys(old: BaseModel, new: BaseModel, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ (a list, such as ``detect.rules``, is one key).

    >>> changed_keys(Settings(), Settings(detect={"fire_score": 7}, window={"size_seconds": 5}))
    ['window.size_seconds', 'detect.fire_score']
    """
    out: list[str] = []
    for name in type(old).model_fields:
        a, b = getattr(old, name), getattr(new, name)
        key = f"{prefix}{name}"
        if isinstance(a, BaseModel) and isinstance(b, BaseModel) and type(a) is type(b):
            out += changed_keys(a, b, key + ".")
        elif a != b:
            out.append(key)
    return out


def restart_keys(changed: list[str]) -> list[str]:
    """Of ``changed`` keys, those a reload cannot apply.

    >>> restart_keys(["detect.rules", "alerts.sinks", "detect.classes", "kafka.topic"])
    ['detect.classes', 'kafka.topic']
    """
    return [k for k in changed
            if not _under(k, LIVE_KEYS) or _under(k, RESTART_KEYS_UNDER_LIVE)]
