"""Per-rule thresholds, resolved into arrays over (scope row, code column).

Rules come from YAML (``detect.rules``); the first rule whose codes and scope
match a series decides its thresholds, and the ``detect`` defaults apply to the
rest. Codes match exactly (``403``), by class (``4xx``) or all (``all``); a
rule's scope matches every scope whose labels include the rule's items.

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

from statuswatch.config import PRESETS, DetectConfig, Rule, Thresholds
from statuswatch.core.columns import I64, MIN_STATUS

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


def code_matches(pattern: str, code: int) -> bool:
    """Whether a rule's code pattern covers a column's code (1..5: a class's summed
    series, which class patterns and "all" cover, exact codes do not).

    >>> code_matches("4xx", 403), code_matches("403", 404), code_matches("all", 200)
    (True, False, True)
    >>> code_matches("5xx", 5), code_matches("503", 5), code_matches("all", 5)
    (True, False, True)
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

    def effective_of(self, row: int, col: int) -> Effective:
        return self.lifecycles[int(self.rule_index[row, col])]


def resolve(cfg: DetectConfig, scopes: list[dict[str, str]], codes: list[int]) -> RuleTable:
    """Thresholds for every (scope, code) series."""
    n_rows, n_cols = len(scopes), len(codes)
    default = effective(Thresholds(), cfg)
    rules: list[Rule] = list(cfg.rules)
    per_rule = [effective(r, cfg) for r in rules]
    index = np.full((n_rows, n_cols), -1, np.int64)
    for i, rule in enumerate(rules):
        rows = np.array([scope_matches(rule.scope, s) for s in scopes], dtype=bool)
        cols = np.array([any(code_matches(p, c) for p in rule.codes) for c in codes], dtype=bool)
        free = (index == -1) & rows[:, None] & cols[None, :]
        index[free] = i
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
    )
