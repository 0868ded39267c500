"""Per-rule thresholds, resolved into arrays over (scope row, code column).

Rules come from YAML (``detect.rules``); the first rule whose codes and scope
match a series decides its thresholds, and the ``detect`` defaults apply to the
rest. Codes match exactly (``403``), by class (``4xx``) or all (``all``); a
rule's scope matches every scope whose labels include the rule's items. A scope's
volume is one more series, code 0, which only ``all`` covers (``VolumeRules``).

>>> from statuswatch.config import DetectConfig, Rule
>>> cfg = DetectConfig(rules=[Rule(name="quiet-404", codes=["404"], preset="low")])
>>> t = resolve(cfg, [{}, {"service": "a"}], [200, 404])
>>> t.fire_score.tolist()
[[6.0, 9.0], [6.0, 9.0]]
>>> t.rule_names, t.rule_index.tolist()
(['quiet-404'], [[-1, 0], [-1, 0]])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from statuswatch.config import (
    PRESETS,
    DetectConfig,
    Rule,
    Thresholds,
    VolumeConfig,
    VolumeThresholds,
)
from statuswatch.core.columns import I64, MIN_STATUS

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


#: The column code of a scope's volume (all codes together; alerts say ``"code": 0``).
VOLUME_CODE = 0


def code_matches(pattern: str, code: int) -> bool:
    """Whether a rule's code pattern covers a column's code (1..5: a class's summed
    series, which class patterns and "all" cover, exact codes do not).

    >>> code_matches("4xx", 403), code_matches("403", 404), code_matches("all", 200)
    (True, False, True)
    >>> code_matches("5xx", 5), code_matches("503", 5), code_matches("all", 5)
    (True, False, True)
    >>> code_matches("all", VOLUME_CODE), code_matches("4xx", VOLUME_CODE)
    (True, False)
    """
    if pattern == "all":
        return True
    digit = code if code < MIN_STATUS else code // 100
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
    """Per scope row: the volume hit settings of the first rule whose scope matches and
    whose codes include ``all`` (``detect.volume`` where none does)."""

    fire_score: F64
    min_excess_count: F64
    min_ratio: F64
    up: B
    down: B
    ignore: B
    shadow: B
    rule_index: I64  # -1: the defaults


def volume_rules(
    rules: list[Rule], index: I64, defaults: VolumeConfig
) -> VolumeRules:
    """``index``: each row's rule for the volume series (-1: none).

    >>> from statuswatch.config import VolumeConfig, VolumeThresholds
    >>> quiet = Rule(name="quiet", scope={"service": "a"}, volume=VolumeThresholds(
    ...     min_excess_count=500, direction="both"))
    >>> v = volume_rules([quiet], np.array([-1, 0]), VolumeConfig())
    >>> v.min_excess_count.tolist(), v.up.tolist(), v.down.tolist()
    ([50.0, 500.0], [False, True], [True, True])
    """
    table = [r.volume or _NO_VOLUME_KEYS for r in rules] + [_NO_VOLUME_KEYS]

    def pick(attr: str) -> F64:
        values = [getattr(t, attr) for t in table]
        fallback = getattr(defaults, attr)
        return np.array([fallback if x is None else x for x in values], np.float64)[index]

    direction = np.array([t.direction or defaults.direction for t in table])[index]
    return VolumeRules(
        fire_score=pick("fire_score"),
        min_excess_count=pick("min_excess_count"),
        min_ratio=pick("min_ratio"),
        up=np.isin(direction, ("up", "both")),
        down=np.isin(direction, ("down", "both")),
        ignore=np.array([r.ignore for r in rules] + [False], dtype=bool)[index],
        shadow=np.array([r.shadow for r in rules] + [False], dtype=bool)[index],
        rule_index=index,
    )


_NO_VOLUME_KEYS = VolumeThresholds()


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

    def effective_of(self, row: int, col: int) -> Effective:
        return self.lifecycles[int(self.rule_index[row, col])]

    def shadow_rule(self, row: int, col: int, signal: str) -> str | None:
        """The shadow-mode rule deciding a share (``col``) or volume series, if any."""
        if signal == "share" and self.shadow[row, col]:
            return self.rule_names[int(self.rule_index[row, col])]
        if signal == "volume" and self.volume.shadow[row]:
            return self.rule_names[int(self.volume.rule_index[row])]
        return None


def resolve(cfg: DetectConfig, scopes: list[dict[str, str]], codes: list[int]) -> RuleTable:
    """Thresholds for every (scope, code) series, and for every scope's volume."""
    n_rows, n_cols = len(scopes), len(codes)
    default = effective(Thresholds(), cfg)
    rules: list[Rule] = list(cfg.rules)
    per_rule = [effective(r, cfg) for r in rules]
    # One more column, code 0: the volume series, which only "all" covers.
    series = [*codes, VOLUME_CODE]
    with_volume = np.full((n_rows, n_cols + 1), -1, np.int64)
    for i, rule in enumerate(rules):
        rows = np.array([scope_matches(rule.scope, s) for s in scopes], dtype=bool)
        cols = np.array([any(code_matches(p, c) for p in rule.codes) for c in series],
                        dtype=bool)
        free = (with_volume == -1) & rows[:, None] & cols[None, :]
        with_volume[free] = i
    index = with_volume[:, :n_cols]
    table = [*per_rule, default]  # index -1 selects the defaults

    def pick(attr: str, dtype: type) -> npt.NDArray[np.generic]:
        values: npt.NDArray[np.generic] = np.array([getattr(e, attr) for e in table], dtype=dtype)
        return values[index]

    ignore = np.array([r.ignore for r in rules] + [False], dtype=bool)[index]
    shadow = np.array([r.shadow for r in rules] + [False], dtype=bool)[index]
    return RuleTable(
        fire_score=pick("fire_score", np.float64).astype(np.float64),
        min_excess_count=pick("min_excess_count", np.float64).astype(np.float64),
        min_share_ratio=pick("min_share_ratio", np.float64).astype(np.float64),
        up=pick("up", bool).astype(bool),
        down=pick("down", bool).astype(bool),
        ignore=ignore,
        shadow=shadow,
        rule_index=index,
        rule_names=[r.name for r in rules],
        lifecycles=table,
        volume=volume_rules(rules, with_volume[:, n_cols], cfg.volume),
    )
