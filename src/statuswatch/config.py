"""Configuration: YAML file, overridden by ``STATUSWATCH_*`` environment variables.

Precedence is explicit: init arguments > environment > YAML > defaults.
Nested keys use ``__`` in the environment, e.g. ``STATUSWATCH_WINDOW__SIZE_SECONDS=5``.
Unknown keys are rejected; errors name the dotted key and never echo values
(so secrets cannot leak through a validation message).

>>> s = Settings()
>>> s.window.size_seconds
10.0
"""

from __future__ import annotations

import contextvars
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
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
    """TLS towards the brokers (``security_protocol`` SSL or SASL_SSL).

    Without ``ca_file`` the system's CA store verifies the brokers. ``cert_file`` and
    ``key_file`` (PEM) are the client certificate for mutual TLS.
    """

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: SecretStr | None = None
    key_password_file: Path | None = None
    check_hostname: bool = True

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

    mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    username: str = Field(min_length=1)
    password: SecretStr | None = None
    password_file: Path | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SaslConfig:
        _one_secret(self.password, self.password_file, "password", required=True)
        return self

    def password_value(self) -> str:
        """The password in clear (read from ``password_file`` if that is set)."""
        return _read_secret(self.password, self.password_file) or ""


class KafkaConnection(_Strict):
    """How to reach a Kafka cluster: servers, client id, TLS and SASL."""

    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "statuswatch"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    tls: TlsConfig | None = None
    sasl: SaslConfig | None = None

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
    topic: str = Field("gateway-logs", min_length=1)
    group_id: str = Field("statuswatch", min_length=1)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_batch_records: int = Field(5000, gt=0)
    fetch_timeout_ms: int = Field(500, gt=0)
    max_partition_fetch_bytes: int = Field(4 * 1024 * 1024, gt=0)
    session_timeout_ms: int = Field(30_000, gt=0)
    #: rejected records are produced here (original value, source position, reason); off if None
    dead_letter_topic: str | None = Field(None, min_length=1)
    dead_letter_max_bytes: int = Field(64 * 1024, gt=0)
    dead_letter_max_in_flight: int = Field(1000, gt=0)
    dead_letter_timeout_seconds: float = Field(10.0, gt=0)


TimestampUnit = Literal["s", "ms", "us", "ns", "iso8601", "clf"]


class FieldMap(_Strict):
    """Dotted paths to the fields of a JSON log (formats ``json`` and ``nginx-json``).

    ``timestamp`` unset: ``time`` for ``json``; for ``nginx-json`` the first of
    ``msec``, ``time_iso8601``, ``time_local`` and ``time`` a record has.
    ``timestamp_unit`` unset: ``iso8601``, but for ``nginx-json`` the unit of a
    named nginx variable (``msec``: s, ``time_local``: clf). ``clf`` is the
    common log format's ``dd/Mon/yyyy:HH:MM:SS +zzzz``.
    """

    timestamp: str | None = Field(None, min_length=1)
    timestamp_unit: TimestampUnit | None = None
    status: str = "status"
    service: str | None = None
    route: str | None = None
    app: str | None = None


class MostlyInvalidConfig(_Strict):
    """When the input counts as mostly invalid: at least ``share`` of at least
    ``min_records`` records in the last ``window_seconds`` were rejected."""

    share: float = Field(0.5, gt=0, le=1)
    min_records: int = Field(100, ge=1)
    window_seconds: float = Field(60.0, ge=1, le=3600)


class DecodeConfig(_Strict):
    format: Literal["kong", "envoy", "nginx-json", "combined", "json"] = "kong"
    fields: FieldMap = FieldMap()
    max_record_bytes: int = Field(1_000_000, gt=0)
    max_depth: int = Field(64, gt=0)
    #: /ready 503, an ERROR line, StatuswatchInputMostlyInvalid; volume drops suppressed
    mostly_invalid: MostlyInvalidConfig = MostlyInvalidConfig()


class WindowConfig(_Strict):
    size_seconds: float = Field(10.0, gt=0, le=3600)
    allowed_lateness_seconds: float = Field(5.0, ge=0)
    idle_timeout_seconds: float = Field(30.0, gt=0)

    @property
    def size_ms(self) -> int:
        return round(self.size_seconds * 1000)

    @property
    def lateness_ms(self) -> int:
        return round(self.allowed_lateness_seconds * 1000)


DEFAULT_LEVELS: list[list[Dimension]] = [[], ["service"], ["service", "route"], ["app"]]


class ScopesConfig(_Strict):
    levels: list[list[Dimension]] = Field(default_factory=lambda: list(DEFAULT_LEVELS))
    max_per_level: int = Field(500, gt=0)

    @model_validator(mode="after")
    def _fleet_first(self) -> ScopesConfig:
        if not self.levels or self.levels[0] != []:
            raise ValueError("the first level must be [] (the whole fleet)")
        return self


class BaselineConfig(_Strict):
    half_life_windows: float = Field(90.0, gt=0)
    volume_half_life_windows: float = Field(30.0, gt=0)
    warmup_windows: int = Field(30, ge=0)
    accept_after_windows: int = Field(360, ge=0)


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

    preset: Preset | None = None
    fire_score: float | None = Field(None, gt=0)
    min_excess_count: float | None = Field(None, ge=0)
    min_share_ratio: float | None = Field(None, ge=1.0)
    direction: DirectionSetting | None = None
    k: int | None = Field(None, gt=0)
    m: int | None = Field(None, gt=0)


class VolumeThresholds(_Strict):
    """A rule's volume settings; unset keys come from ``detect.volume`` (``k``/``m``:
    hits in the last m windows needed to fire, from ``detect.k``/``m``)."""

    fire_score: float | None = Field(None, gt=0)
    min_excess_count: float | None = Field(None, ge=0)
    min_ratio: float | None = Field(None, ge=1.0)
    direction: DirectionSetting | None = None
    k: int | None = Field(None, gt=0)
    m: int | None = Field(None, gt=0)


#: Severity of an alert no rule names one for; a label value, so a plain word.
DEFAULT_SEVERITY = "page"
SEVERITY_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


class Rule(Thresholds):
    """Per-rule settings; the first rule whose ``codes`` and ``scope`` match wins.

    A scope's volume is the series of all its codes together. It is decided by the
    first rule whose scope matches, whose ``codes`` include ``all`` and which sets
    ``volume``, ``ignore`` or ``shadow``; the share keys above do not apply to it. A rule
    with ``volume`` keys leaves the share series to later rules unless it also sets a
    share key (``ignore`` and ``shadow`` then act on its volume only).
    """

    name: str = Field(min_length=1)
    codes: list[str] = Field(default_factory=lambda: ["all"])
    scope: dict[str, str] = Field(default_factory=dict)
    ignore: bool = False
    shadow: bool = False
    volume: VolumeThresholds | None = None
    #: the ``severity`` label of this rule's alerts in Alertmanager
    severity: str = Field(DEFAULT_SEVERITY, pattern=SEVERITY_PATTERN)

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
    enabled: bool = True
    direction: DirectionSetting = "down"
    fire_score: float = Field(8.0, gt=0)
    min_excess_count: float = Field(50.0, ge=0)
    min_ratio: float = Field(2.0, ge=1.0)
    #: score each scope's volume against its own history of scores (core/calibrate.py)
    calibration: bool = False
    calibration_half_life_windows: float = Field(10_000.0, gt=0)
    calibration_min_std: float = Field(2.0, gt=0)
    calibration_warmup_windows: int = Field(300, ge=0)


_APP_LEVEL: list[Dimension] = ["app"]


class BlastRadiusConfig(_Strict):
    enabled: bool = True
    level: list[Dimension] = Field(default_factory=lambda: list(_APP_LEVEL))
    scope_score: float = Field(3.0, gt=0)
    min_fraction: float = Field(0.2, gt=0, le=1)
    min_scopes: int = Field(5, ge=1)


class DetectConfig(_Strict):
    fire_score: float = Field(6.0, gt=0)
    clear_score: float = Field(3.0, ge=0)
    extreme_score: float = Field(20.0, gt=0)
    k: int = Field(2, gt=0)
    m: int = Field(3, gt=0)
    min_excess_count: float = Field(10.0, ge=0)
    min_share_ratio: float = Field(2.0, ge=1.0)
    direction: DirectionSetting = "both"
    min_firing_windows: int = Field(3, ge=1)
    clear_windows: int = Field(3, ge=1)
    long_windows: int = Field(6, ge=1)
    #: status classes also scored as one series each (the class's summed share)
    classes: list[str] = Field(default_factory=lambda: ["4xx", "5xx"])
    volume: VolumeConfig = VolumeConfig()
    blast_radius: BlastRadiusConfig = BlastRadiusConfig()
    rules: list[Rule] = Field(default_factory=list)

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

    name: str | None = Field(None, min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    queue_size: int = Field(1000, gt=0)
    timeout_seconds: float = Field(10.0, gt=0)
    deadline_seconds: float = Field(300.0, gt=0)
    backoff_initial_seconds: float = Field(0.5, gt=0)
    backoff_max_seconds: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _backoff_ordered(self) -> DeliveryConfig:
        if self.backoff_max_seconds < self.backoff_initial_seconds:
            raise ValueError("backoff_max_seconds must be >= backoff_initial_seconds")
        return self


class HttpAuthConfig(_Strict):
    """Basic auth (``username`` + ``password``) or a bearer token; secrets inline or in files."""

    username: str | None = Field(None, min_length=1)
    password: SecretStr | None = None
    password_file: Path | None = None
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None

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

    type: Literal["alertmanager"]
    urls: list[str] = Field(min_length=1)
    auth: HttpAuthConfig | None = None
    tls: TlsConfig | None = None
    #: firing alerts are sent again this often; keep it well below Alertmanager's
    #: resolve_timeout (default 5m), or a long incident resolves itself there
    resend_interval_seconds: float = Field(60.0, gt=0)

    @field_validator("urls")
    @classmethod
    def _urls_valid(cls, urls: list[str]) -> list[str]:
        return [_http_url(u).rstrip("/") for u in urls]


class WebhookSinkConfig(DeliveryConfig):
    """The alert JSON POSTed to ``url``, optionally signed with HMAC-SHA256."""

    type: Literal["webhook"]
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    auth: HttpAuthConfig | None = None
    tls: TlsConfig | None = None
    hmac_secret: SecretStr | None = None
    hmac_secret_file: Path | None = None

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

    type: Literal["kafka"]
    topic: str = Field(min_length=1)
    cluster: KafkaConnection | None = None


SinkConfig = Annotated[
    AlertmanagerSinkConfig | WebhookSinkConfig | KafkaSinkConfig, Field(discriminator="type")
]


class AlertsConfig(_Strict):
    output: str = "-"
    windows_output: str | None = None
    #: where alerts are delivered besides ``output``; any number, each with its own queue
    sinks: list[SinkConfig] = Field(default_factory=list)
    #: the metrics listener's URL as people reach it (generatorURL links to its /alerts);
    #: by default http://<metrics.host>:<metrics.port>
    external_url: str | None = None

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
    dir: str | None = None
    interval_seconds: float = Field(10.0, gt=0)
    keep: int = Field(3, ge=1)


class MetricsConfig(_Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535)
    tls_cert_file: str | None = None
    tls_key_file: str | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> MetricsConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        return self


class HealthConfig(_Strict):
    """When the process reports itself unready, unhealthy or stuck."""

    broker_timeout_seconds: float = Field(10.0, gt=0)
    heartbeat_timeout_seconds: float = Field(10.0, gt=0)
    stuck_timeout_seconds: float = Field(120.0, ge=0)
    shutdown_timeout_seconds: float = Field(5.0, gt=0)


class ReloadConfig(_Strict):
    """Re-reading the config file without a restart: on ``SIGHUP`` always; with
    ``watch`` also when the file changes (its bytes are checked every
    ``interval_seconds``). Only ``LIVE_KEYS`` may change; see ``restart_keys``."""

    watch: bool = False
    interval_seconds: float = Field(5.0, gt=0, le=3600)


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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STATUSWATCH_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    kafka: KafkaConfig = KafkaConfig()
    decode: DecodeConfig = DecodeConfig()
    window: WindowConfig = WindowConfig()
    scopes: ScopesConfig = ScopesConfig()
    baseline: BaselineConfig = BaselineConfig()
    detect: DetectConfig = DetectConfig()
    alerts: AlertsConfig = AlertsConfig()
    state: StateConfig = StateConfig()
    metrics: MetricsConfig = MetricsConfig()
    health: HealthConfig = HealthConfig()
    reload: ReloadConfig = ReloadConfig()

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
