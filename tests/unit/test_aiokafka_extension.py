"""The start-up check that aiokafka parses records with its C extension."""

from __future__ import annotations

import io
import logging

import pytest
from aiokafka.record import default_records, memory_records

from statuswatch.shell.kafka_client import aiokafka_has_c_extension, warn_if_no_c_extension
from statuswatch.shell.sources import _batches_of_lines


def test_the_installed_aiokafka_has_its_c_extension() -> None:
    # CI installs a binary wheel: a silent fall-back to pure Python must fail here.
    assert aiokafka_has_c_extension()


def test_no_warning_with_the_extension(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="statuswatch.shell.kafka_client"):
        assert warn_if_no_c_extension()
    assert not caplog.records


def test_pure_python_records_are_detected_and_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # What aiokafka exports under AIOKAFKA_NO_EXTENSIONS=1 (decided at its import time).
    monkeypatch.setattr(
        default_records, "DefaultRecordBatch", default_records._DefaultRecordBatchPy
    )
    monkeypatch.setattr(memory_records, "MemoryRecords", memory_records._MemoryRecordsPy)
    assert not aiokafka_has_c_extension()
    with caplog.at_level(logging.WARNING, logger="statuswatch.shell.kafka_client"):
        assert not warn_if_no_c_extension()
    assert any("WITHOUT its C extension" in r.getMessage() for r in caplog.records)


def test_partly_pure_python_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory_records, "MemoryRecords", memory_records._MemoryRecordsPy)
    assert not aiokafka_has_c_extension()


@pytest.mark.parametrize(
    ("data", "block"),
    [
        (b"a\nb\r\n\nc", 2),
        (b"a\n", 2),
        (b"", 2),
        (b"x" * 3000 + b"\ny\r\r\n", 2),
        (b"\r\n\r\n", 2),
        (b"".join(b"line %d\n" % i for i in range(5000)), 1),
    ],
)
def test_file_lines_split_like_readlines(data: bytes, block: int) -> None:
    batches = list(_batches_of_lines(io.BytesIO(data), "f", block))
    values = [v for b in batches for v in b.values]
    offsets = [o for b in batches for o in b.offsets.tolist()]
    expected = [line.rstrip(b"\r\n") for line in io.BytesIO(data).readlines()]
    assert values == expected
    assert offsets == list(range(len(expected)))


@pytest.mark.parametrize(("fmt", "scanner", "kernels", "warned"), [
    ("kong", True, True, []), ("kong", False, True, ["C scanner"]),
    ("json", False, True, ["C scanner"]),
    ("combined", False, True, []),  # no JSON fast path to miss
    ("kong", True, False, ["C kernels"]), ("kong", False, False, ["C scanner", "C kernels"]),
])
def test_start_up_warns_when_a_c_extension_is_missing(
    fmt: str, scanner: bool, kernels: bool, warned: list[str], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from statuswatch.config import Settings
    from statuswatch.core import kernels as c_kernels
    from statuswatch.core.decode import jsondecoder
    from statuswatch.core.detector import Detector
    from statuswatch.shell.app import warn_if_no_native_code

    monkeypatch.setattr(jsondecoder, "NATIVE_SCAN", scanner)
    monkeypatch.setattr(c_kernels, "ENABLED", kernels)
    detector = Detector(Settings(decode={"format": fmt}))
    with caplog.at_level(logging.WARNING, logger="statuswatch.shell.app"):
        assert warn_if_no_native_code(detector) is not bool(warned)
    said = [r.getMessage() for r in caplog.records]
    assert [w for w in ("C scanner", "C kernels") if any(w in m for m in said)] == warned


def test_the_installed_package_has_its_c_scanner() -> None:
    # CI builds it from setup.py: a silent fall-back to the full decoder must fail here.
    from statuswatch.core.decode import jsondecoder

    assert jsondecoder.NATIVE_SCANNER is not None
