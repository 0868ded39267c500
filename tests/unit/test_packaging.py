"""The container image's build, checked without a Docker engine: the wheel built from
exactly the files its builder stage copies carries the native C scanner."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "config" / "Dockerfile"


def stages(text: str) -> list[list[str]]:
    """The Dockerfile's instructions per stage, continuation lines joined."""
    joined = text.replace("\\\n", " ")
    out: list[list[str]] = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            out.append([])
        out[-1].append(line)
    return out


def copied_sources(stage: list[str]) -> list[str]:
    """What the stage's COPY instructions take from the build context (not --from)."""
    sources: list[str] = []
    for line in stage:
        words = line.split()
        if words[0].upper() != "COPY" or any(w.startswith("--from") for w in words):
            continue
        sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def test_the_dockerfile_builds_in_one_stage_and_runs_unprivileged_in_another():
    build, runtime = stages(DOCKERFILE.read_text())
    assert "gcc" in " ".join(build), "the builder stage needs a C compiler"
    assert any("--from=build" in line for line in runtime)
    assert not any("gcc" in line for line in runtime)
    user = [line.split()[1] for line in runtime if line.upper().startswith("USER ")]
    assert user and user[-1] not in ("root", "0")


@pytest.mark.slow
def test_a_wheel_built_from_the_builder_stage_files_has_the_c_scanner(tmp_path):
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.fail("no C compiler on this machine: the image's builder stage has one")
    build, _ = stages(DOCKERFILE.read_text())
    context = tmp_path / "context"
    context.mkdir()
    for source in copied_sources(build):
        src = REPO / source
        if src.is_dir():
            shutil.copytree(src, context / source, ignore=shutil.ignore_patterns(
                "__pycache__", "*.so", "*.egg-info"))
        else:
            shutil.copy2(src, context / source)
    wheels = tmp_path / "wheels"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps",
         "--wheel-dir", str(wheels), str(context)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = wheels.glob("statuswatch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any("/decode/_jsonscan" in n and n.endswith(".so") for n in names), names
    assert "statuswatch/core/decode/_jsonscan.pyi" in names
