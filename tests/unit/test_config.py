from __future__ import annotations

from pathlib import Path

import pytest

from statuswatch.config import Settings, load_settings
from statuswatch.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_documented_default_equals_built_in_defaults():
    assert load_settings(REPO / "config" / "statuswatch.yaml") == Settings()


def test_every_documented_key_has_a_comment():
    for line in (REPO / "config" / "statuswatch.yaml").read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "- ")) and ":" in stripped:
            assert "#" in stripped, f"key without a comment: {line!r}"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("window: {size_seconds: -5}", "window.size_seconds", "greater than 0"),
        ("window: {sise_seconds: 5}", "window.sise_seconds", "unknown key"),
        ("bogus: 1", "bogus", "unknown key"),
        ("detect: {k: 4, m: 3}", "detect", "k must be <= m"),
        ("detect: {fire_score: 3, clear_score: 4}", "detect", "hysteresis"),
        ("detect: {volume: {fire_score: 2}}", "detect", "volume.fire_score must be above"),
        ("detect: {rules: [{name: r, volume: {fire_score: 3}}]}", "detect",
         "rule 'r': volume.fire_score must be above clear_score"),
        ("detect: {rules: [{name: r, volume: {k: 4}}]}", "detect",
         "rule 'r': volume.k must be <= volume.m"),
        ("decode: {format: xml}", "decode.format", "kong"),
        ("decode: {format: kong, fields: {status: null}}", "decode.fields.status",
         "needs format json, not kong"),
        ("decode: {format: nginx-json, fields: {status: null}}", "decode.fields.status",
         "needs format json, not nginx-json"),
        ("scopes: {levels: [[service]]}", "scopes", "fleet"),
        ("metrics: {port: 70000}", "metrics.port", "65535"),
        ("detect: {classes: [6xx]}", "detect.classes", "1xx .. 5xx"),
        ("detect: {classes: [5xx, 5xx]}", "detect.classes", "listed twice"),
        ("detect: {rules: [{name: r, codes: ['5xx'], volume: {min_excess_count: 9}}]}",
         "detect.rules.0", "needs 'all' among its codes"),
        ("detect: {rules: [{name: r, volume: {min_ratio: 0.5}}]}",
         "detect.rules.0.volume.min_ratio", "greater than or equal to 1"),
        ("detect: {rules: [{name: r, volume: {fire_scor: 9}}]}",
         "detect.rules.0.volume.fire_scor", "unknown key"),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, key, problem):
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text))
    assert f"{key}:" in str(err.value) or f"{key} " in str(err.value)
    assert problem in str(err.value)


def test_environment_overrides_yaml(tmp_path, monkeypatch):
    path = write(tmp_path, "window: {size_seconds: 20}\nkafka: {topic: from-yaml}\n")
    monkeypatch.setenv("STATUSWATCH_WINDOW__SIZE_SECONDS", "5")
    s = load_settings(path)
    assert s.window.size_seconds == 5
    assert s.kafka.topic == "from-yaml"


def test_python_tags_are_refused(tmp_path):
    path = write(tmp_path, "kafka: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="could not determine a constructor"):
        load_settings(path)


def test_invalid_values_are_not_echoed(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, "kafka: {topic: ''}\nwindow: {size_seconds: s3cr3t-value}\n"))
    assert "s3cr3t-value" not in str(err.value)
    assert "window.size_seconds" in str(err.value)


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(write(tmp_path, "- a\n- b\n"))
