"""core/rules.resolve: which rule decides each share series and each scope's volume."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from statuswatch.config import DetectConfig, Rule, VolumeThresholds
from statuswatch.core.columns import VOLUME_CODE
from statuswatch.core.rules import resolve, severity_of

SCOPES = [{}, {"service": "checkout"}, {"service": "search"}]
CODES = [4, 200, 403]  # the 4xx class column, then two codes


def test_volume_only_rule_leaves_share_series_to_later_rules() -> None:
    cfg = DetectConfig(rules=[
        Rule(name="checkout-volume", scope={"service": "checkout"},
             volume=VolumeThresholds(min_excess_count=500, direction="both")),
        Rule(name="mute-403", codes=["403"], ignore=True),
    ])
    t = resolve(cfg, SCOPES, CODES)
    assert t.ignore[:, 2].tolist() == [True, True, True]  # checkout's 403 still muted
    assert t.rule_index[:, :2].tolist() == [[-1, -1]] * 3
    v = t.volume
    assert v.rule_index.tolist() == [-1, 0, -1]
    assert v.min_excess_count.tolist() == [50.0, 500.0, 50.0]
    assert v.up.tolist() == [False, True, False]
    assert v.down.tolist() == [True, True, True]
    assert not v.ignore.any()


def test_share_only_rule_leaves_volume_to_later_rules() -> None:
    cfg = DetectConfig(rules=[
        Rule(name="quiet", preset="low"),
        Rule(name="floor", volume=VolumeThresholds(min_excess_count=5000)),
    ])
    t = resolve(cfg, SCOPES, CODES)
    assert t.rule_index.tolist() == [[0, 0, 0]] * 3
    assert t.fire_score[0].tolist() == [9.0, 9.0, 9.0]
    assert t.volume.rule_index.tolist() == [1, 1, 1]
    assert t.volume.min_excess_count.tolist() == [5000.0] * 3


def test_ignore_and_shadow_rules_on_all_codes_decide_volume_first_match_wins() -> None:
    cfg = DetectConfig(rules=[
        Rule(name="search-shadow", scope={"service": "search"}, shadow=True),
        Rule(name="mute-5xx", codes=["5xx"], ignore=True),  # not all codes: not volume
        Rule(name="mute-all", ignore=True),
    ])
    t = resolve(cfg, SCOPES, CODES)
    v = t.volume
    assert v.rule_index.tolist() == [2, 2, 0]
    assert v.ignore.tolist() == [True, True, False]
    assert v.shadow.tolist() == [False, False, True]
    assert t.shadow_rule(2, -1, "volume") == "search-shadow"
    assert t.shadow_rule(1, -1, "volume") is None
    assert t.shadow_rule(2, 1, "share") == "search-shadow"
    assert t.shadow_rule(1, 1, "share") is None


def test_new_scope_rows_get_their_rules() -> None:
    cfg = DetectConfig(rules=[
        Rule(name="late", scope={"service": "late"}, volume=VolumeThresholds(fire_score=12)),
    ])
    before = resolve(cfg, SCOPES, CODES)
    after = resolve(cfg, [*SCOPES, {"service": "late"}], CODES)
    assert before.volume.fire_score.tolist() == [8.0] * 3
    assert after.volume.fire_score.tolist() == [8.0, 8.0, 8.0, 12.0]


def test_volume_rule_with_shadow_or_null_share_keys_leaves_share_series_alone() -> None:
    """``shadow`` on a volume rule shadows the volume only; a share key given as null
    (YAML ``preset: null``) is unset, as in ``effective``."""
    cfg = DetectConfig(rules=[
        Rule(name="try-volume", volume=VolumeThresholds(min_excess_count=10), shadow=True),
        Rule(name="null-preset", volume=VolumeThresholds(fire_score=9), preset=None),
        Rule(name="quiet", preset="low"),
    ])
    t = resolve(cfg, SCOPES, CODES)
    assert t.rule_index.tolist() == [[2, 2, 2]] * 3
    assert not t.shadow.any()
    assert t.volume.rule_index.tolist() == [0, 0, 0]
    assert t.volume.shadow.all()


_rule = st.builds(
    lambda i, codes, scope, volume, flag, severity: Rule(
        name=f"r{i}", codes=codes, scope=scope, severity=severity,
        volume=VolumeThresholds(min_ratio=3) if volume and "all" in codes else None,
        **({flag: True} if flag else {}),
    ),
    st.integers(0, 99),
    st.lists(st.sampled_from(["all", "4xx", "403", "200", "5xx"]), min_size=1, max_size=2),
    st.sampled_from([{}, {"service": "checkout"}, {"service": "search"}]),
    st.booleans(),
    st.sampled_from([None, "ignore", "shadow"]),
    st.sampled_from(["page", "ticket", "info"]),
)


@given(st.lists(_rule, max_size=5))
def test_severity_follows_the_rule_resolve_picks(rules: list[Rule]) -> None:
    """An alert's severity is that of the rule deciding its series' thresholds, for
    share series and for volume, ``page`` where no rule decides."""
    t = resolve(DetectConfig(rules=rules), SCOPES, CODES)
    for row, scope in enumerate(SCOPES):
        for col, code in enumerate(CODES):
            index = int(t.rule_index[row, col])
            want = rules[index].severity if index >= 0 else "page"
            assert severity_of(rules, scope, code, "share") == want
        index = int(t.volume.rule_index[row])
        want = rules[index].severity if index >= 0 else "page"
        assert severity_of(rules, scope, VOLUME_CODE, "volume") == want
