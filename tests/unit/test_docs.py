"""The documentation's examples and links hold: YAML configs validate, relative links and
their anchors exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from statuswatch.config import load_settings

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
TOP_SECTIONS = {"kafka", "decode", "window", "scopes", "baseline", "detect", "alerts", "state",
                "metrics", "health", "reload"}


def config_examples() -> list[tuple[str, str]]:
    """Every ```yaml block of the docs that is a statuswatch config (top keys are sections)."""
    out = []
    for path in DOCS:
        for block in re.findall(r"```yaml\n(.*?)```", path.read_text(encoding="utf-8"), re.S):
            data = yaml.safe_load(block)
            if isinstance(data, dict) and data and set(data) <= TOP_SECTIONS:
                out.append((path.name, block))
    return out


@pytest.mark.parametrize(("name", "block"), config_examples(),
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(config_examples())])
def test_config_examples_validate(name, block, tmp_path):
    text = block.replace("/var/lib/statuswatch", str(tmp_path / "state"))
    # Files of the reader's machine (a CA, a mounted secret) stand in as empty files here:
    # the schema checks that they are readable files.
    for i, path in enumerate(sorted(set(re.findall(r"_file: (/\S+)", text)))):
        stand_in = tmp_path / f"file-{i}"
        stand_in.write_text("x\n")
        text = text.replace(path, str(stand_in))
    config = tmp_path / "example.yaml"
    config.write_text(text)
    assert load_settings(config) is not None, name


def test_there_are_config_examples():
    assert any(name == "README.md" for name, _ in config_examples())


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file."""
    out = set()
    for heading in re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def test_relative_links_and_anchors_exist():
    broken = []
    for path in DOCS:
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{path.name}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{path.name}: {target} (no such heading)")
    assert broken == []
