"""Per-rule thresholds, resolved into arrays over (scope row, code column).

Rules come from YAML (``detect.rules``); the first rule whose codes and scope
match a series decides its thresholds, and the ``detect`` defaults apply to the
rest. Codes match exactly (``403``), by class (``4xx``) or all (``all``); a
rule's scope matches every scope whose labels include the rule's items. A scope's
volume is one more series (``VOLUME_CODE``), decided by the first matching rule that covers
``all`` and sets ``volume``, ``ignore`` or ``shadow`` (``decides_volume``,
``VolumeRules``).

>>> from statuswatch.config import DetectConfig, Rule
>>> cfg = DetectConfig(rules=[Rule(name="quiet-404", codes=["404"], preset="low")])
>>> t = resolve(cfg, [{}, {"service": "a"}], [200, 404])
>>> t.fire_score.tolist()
[[6.0, 9.0], [6.0, 9.0]]
>>> t.rule_names, t.rule_index.tolist()
(['quiet-404'], [[-1, 0], [-1, 0]])
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from statuswatch.config import (
    DEFAULT_SEVERITY,
    PRESETS,
    DetectConfig,
    Rule,
    Thresholds,
    VolumeThresholds,
)
from statuswatch.core.columns import I64, is_class

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
Table = TypeVar("Table", "VolumeRules", "RuleTable")


def _of_rows(table: Table, rows: I64) -> Table:
    """``table`` with every per-row array cut to ``rows``, in that order."""
    cut: dict[str, Any] = {}
    for name in _FIELDS[type(table)]:
        value = getattr(table, name)
        if isinstance(value, np.ndarray):
            cut[name] = value[rows]
        elif isinstance(value, VolumeRules):
            cut[name] = _of_rows(value, rows)
        else:
            cut[name] = value
    return type(table)(**cut)


def code_matches(pattern: str, code: int) -> bool:
    """Whether a rule's code pattern covers a column's code (1..5: a class's summed
    series, which class patterns and "all" cover, exact codes do not).

    >>> code_matches("4xx", 403), code_matches("403", 404), code_matches("all", 200)
    (True, False, True)
    >>> code_matches("5xx", 5), code_matches("503", 5), code_matches("all", 5)
    (True, False, True)
    >>> from statuswatch.core.columns import VOLUME_CODE
    >>> code_matches("all", VOLUME_CODE), code_matches("4xx", VOLUME_CODE)
    (True, False)
    >>> code_matches("0", 0), code_matches("all", 0), code_matches("5xx", 0)
    (True, True, False)
    """
    if pattern == "all":
        return True
    digit = code if is_class(code) else code // 100
    if pattern.endswith("xx"):
        return digit == int(pattern[0])
    return code == int(pattern)


def scope_matches(rule_scope: dict[str, str], scope: dict[str, str]) -> bool:
    return all(scope.get(k) == v for k, v in rule_scope.items())


@dataclass(frozen=True, slots=True)
class Effective:
    """Thresholds of one rule after preset and defaults are applied."""

    fire_score: float
    min_excess_count: float
    min_share_ratio: float
    up: bool
    down: bool
    k: int
    m: int


def effective(t: Thresholds, defaults: DetectConfig) -> Effective:
    fire, excess, ratio = PRESETS[t.preset] if t.preset else (
        defaults.fire_score, defaults.min_excess_count, defaults.min_share_ratio
    )
    direction = t.direction or defaults.direction
    return Effective(
        fire_score=t.fire_score if t.fire_score is not None else fire,
        min_excess_count=t.min_excess_count if t.min_excess_count is not None else excess,
        min_share_ratio=t.min_share_ratio if t.min_share_ratio is not None else ratio,
        up=direction in ("up", "both"),
        down=direction in ("down", "both"),
        k=t.k or defaults.k,
        m=t.m or defaults.m,
    )


@dataclass(frozen=True, slots=True)
class VolumeRules:
    """Per scope row: the volume hit settings of the first matching rule that decides
    volume (``decides_volume``; ``detect.volume`` where none does)."""

    fire_score: F64
    min_excess_count: F64
    min_ratio: F64
    up: B
    down: B
    ignore: B
    shadow: B
    k: I64
    m: I64
    rule_index: I64  # -1: the defaults

    def of_rows(self, rows: I64) -> VolumeRules:
        """The settings of ``rows`` only, in that order."""
        return _of_rows(self, rows)


def per_rule(values: list[object], default: object, index: I64,
             dtype: type | None = None) -> npt.NDArray[np.generic]:
    """Each series' value from its rule (``index`` -1: ``default``)."""
    table: npt.NDArray[np.generic] = np.array([*values, default], dtype=dtype)
    return table[index]


def pick_flag(rules: list[Rule], attr: str, index: I64) -> B:
    """A rule flag (``ignore``, ``shadow``) per series; False where no rule decides."""
    return per_rule([getattr(r, attr) for r in rules], False, index, bool).astype(bool)


def volume_rules(rules: list[Rule], index: I64, cfg: DetectConfig) -> VolumeRules:
    """``index``: each row's rule for the volume series (-1: none). Unset keys come
    from ``detect.volume``, and ``k``/``m`` from ``detect.k``/``m``.

    >>> from statuswatch.config import DetectConfig, VolumeThresholds
    >>> quiet = Rule(name="quiet", scope={"service": "a"}, volume=VolumeThresholds(
    ...     min_excess_count=500, direction="both", k=5, m=6))
    >>> v = volume_rules([quiet], np.array([-1, 0]), DetectConfig())
    >>> v.min_excess_count.tolist(), v.up.tolist(), v.down.tolist(), v.k.tolist()
    ([50.0, 500.0], [False, True], [True, True], [2, 5])
    """
    defaults = cfg.volume
    keys = [r.volume or VolumeThresholds() for r in rules]

    def pick(attr: str, fallback: object, dtype: type | None) -> npt.NDArray[np.generic]:
        values = [fallback if getattr(k, attr) is None else getattr(k, attr) for k in keys]
        return per_rule(values, fallback, index, dtype)

    direction = pick("direction", defaults.direction, None)
    return VolumeRules(
        fire_score=pick("fire_score", defaults.fire_score, np.float64).astype(np.float64),
        min_excess_count=pick(
            "min_excess_count", defaults.min_excess_count, np.float64
        ).astype(np.float64),
        min_ratio=pick("min_ratio", defaults.min_ratio, np.float64).astype(np.float64),
        up=np.isin(direction, ("up", "both")),
        down=np.isin(direction, ("down", "both")),
        ignore=pick_flag(rules, "ignore", index),
        shadow=pick_flag(rules, "shadow", index),
        k=pick("k", cfg.k, np.int64).astype(np.int64),
        m=pick("m", cfg.m, np.int64).astype(np.int64),
        rule_index=index,
    )


#: Rule keys about share series; a rule that sets only ``volume`` leaves them alone.
SHARE_KEYS = frozenset(
    {"preset", "fire_score", "min_excess_count", "min_share_ratio", "direction", "k", "m"}
)


def decides_shares(rule: Rule) -> bool:
    """Whether a rule takes the share series it matches: a rule with ``volume`` keys
    does only if it also sets a share key, so a volume rule (shadow or ignore included)
    cannot shadow a later rule about codes.

    >>> from statuswatch.config import VolumeThresholds
    >>> volume = VolumeThresholds(min_excess_count=10)
    >>> decides_shares(Rule(name="a", volume=volume, shadow=True))
    False
    >>> decides_shares(Rule(name="b", volume=volume, preset="low")), decides_shares(
    ...     Rule(name="c", shadow=True))
    (True, True)
    """
    return rule.volume is None or any(getattr(rule, key) is not None for key in SHARE_KEYS)


def decides_volume(rule: Rule) -> bool:
    """Whether a rule takes the volume of the scopes it matches: its codes include
    ``all`` and it says something about volume (``volume`` keys, ``ignore``, ``shadow``),
    so a rule about share thresholds cannot shadow a later volume rule.

    >>> decides_volume(Rule(name="a", ignore=True)), decides_volume(Rule(name="b", preset="low"))
    (True, False)
    """
    return "all" in rule.codes and (rule.volume is not None or rule.ignore or rule.shadow)


@dataclass(frozen=True, slots=True)
class RuleTable:
    fire_score: F64
    min_excess_count: F64
    min_share_ratio: F64
    up: B
    down: B
    ignore: B
    shadow: B
    rule_index: I64  # -1: the defaults
    rule_names: list[str]
    lifecycles: list[Effective]  # per rule, then the defaults last
    volume: VolumeRules

    def of_rows(self, rows: I64) -> RuleTable:
        """The thresholds of ``rows`` only, in that order (row indices then count
        within ``rows``)."""
        return _of_rows(self, rows)

    def effective_of(self, row: int, col: int) -> Effective:
        return self.lifecycles[int(self.rule_index[row, col])]

    def shadow_rule(self, row: int, col: int, signal: str) -> str | None:
        """The shadow-mode rule deciding a share (``col``) or volume series, if any; a
        blast-radius alert (row 0) follows the fleet's rule for its code."""
        if signal in ("share", "blast_radius") and self.shadow[row, col]:
            return self.rule_names[int(self.rule_index[row, col])]
        if signal == "volume" and self.volume.shadow[row]:
            return self.rule_names[int(self.volume.rule_index[row])]
        return None


def resolve(cfg: DetectConfig, scopes: list[dict[str, str]], codes: list[int]) -> RuleTable:
    """Thresholds for every (scope, code) series, and for every scope's volume."""
    n_rows, n_cols = len(scopes), len(codes)
    rules: list[Rule] = list(cfg.rules)
    # One more column: the volume series.
    with_volume = np.full((n_rows, n_cols + 1), -1, np.int64)
    for i, rule in enumerate(rules):
        rows = np.array([scope_matches(rule.scope, s) for s in scopes], dtype=bool)
        cols = np.array(
            [decides_shares(rule) and any(code_matches(p, c) for p in rule.codes)
             for c in codes] + [decides_volume(rule)],
            dtype=bool,
        )
        free = (with_volume == -1) & rows[:, None] & cols[None, :]
        with_volume[free] = i
    index = with_volume[:, :n_cols]
    per_rule_effective = [effective(r, cfg) for r in rules]
    default = effective(Thresholds(), cfg)

    def pick(attr: str, dtype: type) -> npt.NDArray[np.generic]:
        values = [getattr(e, attr) for e in per_rule_effective]
        return per_rule(values, getattr(default, attr), index, dtype)

    return RuleTable(
        fire_score=pick("fire_score", np.float64).astype(np.float64),
        min_excess_count=pick("min_excess_count", np.float64).astype(np.float64),
        min_share_ratio=pick("min_share_ratio", np.float64).astype(np.float64),
        up=pick("up", bool).astype(bool),
        down=pick("down", bool).astype(bool),
        ignore=pick_flag(rules, "ignore", index),
        shadow=pick_flag(rules, "shadow", index),
        rule_index=index,
        rule_names=[r.name for r in rules],
        lifecycles=[*per_rule_effective, default],  # index -1 selects the defaults
        volume=volume_rules(rules, with_volume[:, n_cols], cfg),
    )


_FIELDS = {t: [f.name for f in fields(t)] for t in (VolumeRules, RuleTable)}


def severity_of(rules: list[Rule], scope: dict[str, str], code: int, signal: str) -> str:
    """The severity of an alert: that of the rule deciding its series (as ``resolve``
    picks it: a volume series by ``decides_volume``, a share or blast-radius series by
    ``decides_shares``), ``page`` where no rule does.

    >>> from statuswatch.config import VolumeThresholds
    >>> rules = [Rule(name="auth", codes=["401"], scope={"service": "auth"}, severity="ticket"),
    ...          Rule(name="vol", volume=VolumeThresholds(min_ratio=3), severity="info")]
    >>> severity_of(rules, {"service": "auth"}, 401, "share")
    'ticket'
    >>> severity_of(rules, {"service": "auth"}, 500, "share")
    'page'
    >>> from statuswatch.core.columns import VOLUME_CODE
    >>> severity_of(rules, {}, VOLUME_CODE, "volume")
    'info'
    """
    for rule in rules:
        if not scope_matches(rule.scope, scope):
            continue
        if signal == "volume":
            if decides_volume(rule):
                return rule.severity
        elif decides_shares(rule) and any(code_matches(p, code) for p in rule.codes):
            return rule.severity
    return DEFAULT_SEVERITY
