"""The fuzz harness's seeds, and every input the fuzzer has found wrong, on every set-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from statuswatch.core.decode import Parsed
from tests.fuzz import harness

CASES = sorted(p for d in (harness.SEEDS, harness.FOUND) if d.is_dir() for p in d.iterdir())


def test_there_are_seeds_for_every_target() -> None:
    names = [name for name, _ in harness.targets()]
    picked = {names[p.read_bytes()[0] % len(names)] for p in CASES if p.stat().st_size}
    assert picked == set(names)


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_scanner_agrees_with_its_references(path: Path) -> None:
    harness.check(path.read_bytes(), every=True)


def test_a_disagreement_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    name, decoder = harness.targets()[0]
    good = next(p.read_bytes() for p in CASES if p.read_bytes()[:1] == b"\x00")
    harness.check(good)
    monkeypatch.setattr(decoder, "decode_one", lambda value: Parsed(0, 0, "", "", ""))
    with pytest.raises(harness.Mismatch, match=name):
        harness.check(good)


def test_a_lie_of_the_bare_scanner_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit import test_jsonscan

    bare = bytes([len(harness.targets()) - 1])
    harness.check(bare + test_jsonscan.GOOD)
    monkeypatch.setattr(test_jsonscan, "oracle", lambda value: ("another",))
    with pytest.raises(harness.Mismatch, match="vouched"):
        harness.check(bare + test_jsonscan.GOOD)
    with pytest.raises(harness.Mismatch, match="refused"):
        harness.check(bare + b'{"ts": 1, "r": {"status": 2}}')  # t is required: not vouched
