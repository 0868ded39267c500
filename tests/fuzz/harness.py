"""Differential fuzzing of the C scanner (``_jsonscan.c``) against the full decoder.

An input is a set-up byte and a batch: ``data[0]`` picks one of ``targets()``
(modulo their number), the rest is one record or several separated by
``SEPARATOR`` (a byte no JSON text holds outside a string, nor raw inside one).
``check`` raises ``Mismatch`` (or the AssertionError of a broken batch) unless:

- for a JSON decoder set-up of ``tests/unit/test_fast_path.py`` whose fast path
  is the C scanner, ``decode`` (the scanner, falling back to the full decoder for
  what it does not vouch for) gives for the batch exactly what ``decode_one``
  (the full decoder alone) gives record by record: the same values or the same
  reason; and the batch read as a file's block of lines (``SEPARATOR`` as LF, the
  block scanned by ``Scanner.scan_lines``) decodes exactly as the list of its lines;
- for the bare scanner (``"scanner"``), reading the fields of
  ``tests/unit/test_jsonscan.py``: it vouches only for records ``json.loads`` and
  msgspec read with the same values, and for every such record without a
  backslash (its documented refusals beyond ``json.loads`` all start with one).

Run under libFuzzer (atheris), on the build with coverage and sanitizers::

    python -m tests.fuzz.native fuzz --seconds 600

``python -m tests.fuzz.harness FILE...`` runs ``check`` on saved inputs (a crash
or a mismatch the fuzzer wrote), without atheris; ``--write-seeds DIR`` writes
the seed corpus. The seeds (``corpus/``) and every input the fuzzer has found
wrong (``found/``) are regression tests (``test_corpus.py``, on every set-up).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SEEDS = HERE / "corpus"
FOUND = HERE / "found"
SEPARATOR = b"\x1e"


class Mismatch(AssertionError):
    """The scanner and its reference disagree on an input."""


#: The bare scanner's pseudo set-up.
BARE = "scanner"


@cache
def targets() -> tuple[tuple[str, Any], ...]:
    """``(name, decoder)`` of each decoder set-up whose batches run on the C scanner, then
    ``(BARE, None)`` (imported on first use, so that the fuzzer can instrument the decoders)."""
    from statuswatch.core.decode import jsondecoder
    from tests.unit.test_fast_path import DECODERS

    if jsondecoder.NATIVE_SCANNER is None:
        raise RuntimeError("the C extension statuswatch.core.decode._jsonscan is not built")
    jsondecoder.NATIVE_SCAN = True
    found = tuple(
        (name, decoder)
        for name, (decoder, _) in sorted(DECODERS.items())
        if getattr(decoder, "fast_path", "none") == "native"
    )
    assert len(found) >= 8, [name for name, _ in found]
    return (*found, (BARE, None))


@cache
def _bare_scanner() -> Any:
    from tests.unit import test_jsonscan

    return test_jsonscan.scanner()


def check(data: bytes, every: bool = False) -> None:
    """Check one input on the set-up its first byte picks (on every set-up if ``every``)."""
    if not data:
        return
    chosen = targets() if every else [targets()[data[0] % len(targets())]]
    values = data[1:].split(SEPARATOR)
    for name, decoder in chosen:
        if decoder is None:
            check_bare(values)
        else:
            check_decoder(name, decoder, values)
            check_block(name, decoder, data[1:].replace(SEPARATOR, b"\n"))


def check_decoder(name: str, decoder: Any, values: list[bytes]) -> None:
    from tests.unit.decode_samples import batch_outcomes, outcomes

    decoder._skip_fast = 0  # bad batches before must not turn the fast path off
    got, expected = batch_outcomes(decoder, values), outcomes(decoder, values)
    if got != expected:
        diff = [(g, e) for g, e in zip(got, expected, strict=True) if g != e]
        raise Mismatch(f"{name}: decode gave / decode_one gave: {diff}")


def check_block(name: str, decoder: Any, block: bytes) -> None:
    from statuswatch.core.decode.lines import Lines

    lines = block.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    lines = [line.rstrip(b"\r") for line in lines]
    as_block = Lines(block)
    if len(as_block) != len(lines):
        raise Mismatch(f"{name}: {len(as_block)} lines counted, {len(lines)} split")
    decoder._skip_fast = 0
    got = decoder.decode(as_block)
    decoder._skip_fast = 0
    expected = decoder.decode(lines)
    parts = [
        (got.ts_ms.tolist(), expected.ts_ms.tolist()),
        (got.status.tolist(), expected.status.tolist()),
        (got.dims, expected.dims),
        (got.index.tolist(), expected.index.tolist()),
        (got.invalid, expected.invalid),
        ([as_block[r.index] for r in got.invalid], [lines[r.index] for r in got.invalid]),
    ]
    for g, e in parts:
        if g != e:
            raise Mismatch(f"{name}: the block gave {g!r}, its lines {e!r}")


def check_bare(values: list[bytes]) -> None:
    from tests.unit import test_jsonscan as ts

    rows = ts.scan_all(_bare_scanner(), ts.FIELDS, values)
    for value, row in zip(values, rows, strict=True):
        expected = ts.oracle(value)
        if row is not None:
            if row != expected:
                raise Mismatch(f"vouched for {row!r}, json.loads reads {expected!r}")
            if ts.msgspec_fields(value) != row:
                raise Mismatch(f"vouched for {row!r}, msgspec reads {ts.msgspec_fields(value)!r}")
        elif expected is not None and b"\\" not in value:
            raise Mismatch(f"refused a plain record json.loads reads as {expected!r}")


def _param_values(test: Any, argname: str) -> list[Any]:
    """The values a test's ``pytest.mark.parametrize`` gives ``argname``."""
    for mark in getattr(test, "pytestmark", []):
        if mark.name != "parametrize":
            continue
        names = mark.args[0]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        if argname in names:
            at = names.index(argname)
            return [v[at] if len(names) > 1 else v for v in mark.args[1]]
    raise LookupError(f"{test.__name__} has no parameter {argname}")


def seed_inputs() -> Iterator[bytes]:
    """Valid records of every format, and the edge cases of the scanner's and the fast
    path's tests (on a record of each format, where they are members or values), each
    after the byte of a set-up that reads its format (taken in turn)."""
    import itertools
    import json

    from tests.unit import test_fast_path as tf
    from tests.unit import test_jsonscan as ts
    from tests.unit.decode_samples import LINE_FORMATS, SAMPLERS, realistic_batch

    names = [name for name, _ in targets()]
    turns = {
        fmt: itertools.cycle([bytes([i]) for i, (_, d) in enumerate(targets())
                              if d is not None and d.name == fmt])
        for fmt in SAMPLERS if fmt not in LINE_FORMATS  # no scanner: no set-up
    }  # fmt: skip
    bare = bytes([names.index(BARE)])

    def on(fmt: str, data: bytes) -> bytes:
        return next(turns[fmt]) + data

    for fmt in turns:
        for value in realistic_batch(fmt, 4, seed=11)[0] + tf.SIM_RECORDS[fmt][:4]:
            yield on(fmt, value)
    # events without a status, with ISO timestamps (the simulator writes none)
    for value in tf.TICKETS:
        yield bytes([names.index("json-events-iso")]) + value
    # the bare scanner's cases
    yield bare + ts.GOOD
    for extra in _param_values(ts.test_grammar_corners, "extra"):
        yield bare + ts.with_extra(extra)
    for member in _param_values(ts.test_fields_on_a_path, "member"):
        yield bare + ts.with_extra(member)
    for value in _param_values(ts.test_not_a_single_object, "value"):
        yield bare + value
    for text in _param_values(ts.test_int_fields, "text"):
        yield bare + f'{{"ts": {text}, "r": {{"status": 1}}, "t": ""}}'.encode()
    # the fast path's odd values, spread over the formats (mutations make the rest)
    fmts = list(turns)
    for i, raw in enumerate(tf.RAW_VALUES):
        fmt = fmts[i % len(fmts)]
        yield on(fmt, tf.SIM_RECORDS[fmt][0][:-1] + b',"extra2":' + raw.encode() + b"}")
    odd_values = itertools.cycle(tf.ODD_VALUES)
    for fmt in fmts:
        obj = json.loads(tf.SIM_RECORDS[fmt][0])
        for key in obj:
            odd = {**obj, key: next(odd_values)}
            yield on(fmt, json.dumps(odd, separators=(",", ":")).encode())
    # a batch: good, cut and empty records together
    good = tf.SIM_RECORDS["kong"][0]
    yield on("kong", SEPARATOR.join([good, good[:40], b"", good]))
    # the same as a block of lines (check_block): CRs before the line ends, a CR alone
    yield on("kong", SEPARATOR.join([good + b"\r", b"\r\r", good[:40] + b"\r", good + b"\r\r"]))


def write_seeds(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    seen = set()
    for data in seed_inputs():
        name = hashlib.sha1(data).hexdigest()[:16]
        if name not in seen:
            seen.add(name)
            (directory / name).write_bytes(data)
    return len(seen)


def _test_one_input(data: bytes) -> None:
    check(data)


def fuzz(seconds: int, libfuzzer_args: list[str]) -> None:
    """Run libFuzzer (atheris) on ``check``, instrumenting the decoders' Python code."""
    import atheris  # type: ignore[import-not-found]  # the "fuzz" extra

    from tests.fuzz.native import ENV

    if not os.environ.get(ENV):
        print("(fuzzing the in-place build: no native coverage, no sanitizers)", file=sys.stderr)
    with atheris.instrument_imports(include=["statuswatch"]):
        targets()
    work = ROOT / "build" / "fuzz"
    (work / "corpus").mkdir(parents=True, exist_ok=True)
    (work / "artifacts").mkdir(parents=True, exist_ok=True)
    dirs = [a for a in libfuzzer_args if not a.startswith("-")]
    flags = [a for a in libfuzzer_args if a.startswith("-")]
    args = [
        sys.argv[0],
        f"-max_total_time={seconds}",
        "-timeout=20",
        "-rss_limit_mb=4096",
        "-max_len=4096",
        f"-dict={HERE / 'json.dict'}",
        f"-artifact_prefix={work / 'artifacts'}/",
        "-print_final_stats=1",
        *flags,
        *(dirs or [str(d) for d in (work / "corpus", SEEDS, FOUND) if d.is_dir()]),
    ]
    atheris.Setup(args, _test_one_input)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="fuzz for this long (default 60)")
    parser.add_argument("--write-seeds", type=Path, metavar="DIR", help="write the seed corpus")
    parser.add_argument("--fuzz", action="store_true", help="run libFuzzer (atheris)")
    parser.add_argument("--every", action="store_true", help="check FILEs on every set-up")
    parser.add_argument("--quiet", action="store_true", help="no line per input")
    known, rest = parser.parse_known_args(argv)
    from tests.fuzz.native import use_jsonscan_build

    use_jsonscan_build()  # the build under test, before the decoders are imported
    if known.write_seeds:
        print(f"{write_seeds(known.write_seeds)} seeds in {known.write_seeds}")
        return 0
    if known.fuzz:
        fuzz(known.seconds, rest)
        return 0
    files = [f for name in rest for f in _files(Path(name))]
    for path in files:
        check(path.read_bytes(), every=known.every)
        if not known.quiet:
            print(f"ok: {path}")
    print(f"{len(files)} inputs checked")
    return 0


def _files(path: Path) -> list[Path]:
    """The file, or the files in the directory."""
    return sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]


if __name__ == "__main__":
    sys.exit(main())
