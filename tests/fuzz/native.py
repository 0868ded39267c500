"""Builds of the C scanner under sanitizers, and the runs that use them.

::

    python -m tests.fuzz.native sanitize [pytest args]
    python -m tests.fuzz.native fuzz [--seconds N] [libFuzzer args]
    python -m tests.fuzz.native coverage [input files or directories]

``sanitize`` builds ``_jsonscan.c`` with gcc, AddressSanitizer and
UndefinedBehaviorSanitizer into ``build/sanitize/`` and runs the scanner's tests
(``SANITIZE_TESTS``) on that build. ``fuzz`` builds it with clang, libFuzzer's
coverage instrumentation and the same sanitizers into ``build/fuzz/`` and runs
the differential harness (``tests/fuzz/harness.py``) on it with atheris.
``coverage`` builds it with gcov into ``build/coverage/``, checks the fuzz
corpus (the seeds, the inputs found wrong and what ``fuzz`` kept in
``build/fuzz/corpus``) on every set-up and prints the line coverage.

The in-place build of ``pip install -e .`` stays as it is: each run starts a new
interpreter (with the sanitizer runtime preloaded: a Python host is not built
with it) and names its build in ``STATUSWATCH_JSONSCAN``, which this module,
loaded as a pytest plugin (``-p tests.fuzz.native``) or by the harness, imports
in place of the in-place one. Every sanitizer report aborts the run, so the
command fails: its exit status is the run's.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "statuswatch" / "core" / "decode" / "_jsonscan.c"
MODULE = "statuswatch.core.decode._jsonscan"
#: The environment variable naming the build of the C scanner to test instead of the in-place one.
ENV = "STATUSWATCH_JSONSCAN"

#: The scanner's own tests, the fast-path properties on the scanner (the fallback, the
#: full decoder, runs no C) and the fuzz corpus as regressions.
SANITIZE_TESTS = [
    "tests/unit/test_jsonscan.py", "tests/unit/test_fast_path.py",
    "tests/unit/test_block_scan.py", "tests/fuzz",
    "-k", "not full_decoder",
]  # fmt: skip

#: Every report is fatal: UBSan does not recover, ASan halts. (Not -fwrapv, which Python's
#: own flags have: signed overflow is then defined, and UBSan would not report it.)
SANITIZER_FLAGS = [
    "-g", "-O1", "-fno-omit-frame-pointer",
    "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
]  # fmt: skip
#: Per build: the compiler and its flags beyond the common ones.
BUILDS = {
    "sanitize": ("gcc", SANITIZER_FLAGS),
    "fuzz": ("clang", [*SANITIZER_FLAGS, "-fsanitize=fuzzer-no-link"]),
    "coverage": ("gcc", ["-O0", "--coverage"]),
}
SANITIZER_ENV = {
    # (no leak check: the host is Python, whose interned and static objects all look leaked)
    "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1:abort_on_error=1:strict_string_checks=1"
    ":detect_stack_use_after_return=1:check_initialization_order=1",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
    # Python objects from malloc, not from Python's small-object arenas: ASan sees each one.
    "PYTHONMALLOC": "malloc",
}


def use_jsonscan_build() -> str | None:
    """Import the C scanner from the file ``$STATUSWATCH_JSONSCAN`` names (if set).

    Must run before anything imports ``statuswatch.core.decode``; the path, or None.
    """
    path = os.environ.get(ENV)
    if not path:
        return None
    if "statuswatch.core.decode.jsondecoder" in sys.modules:
        raise RuntimeError(f"{ENV} is set but the decoders were imported before the override")
    spec = importlib.util.spec_from_file_location(MODULE, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{ENV}={path} is not an extension module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[MODULE] = module
    return path


# As a pytest plugin (-p tests.fuzz.native): the override is in place before collection.
_LOADED = use_jsonscan_build()


def pytest_collection_finish(session: Any) -> None:
    """Say which build of the scanner the tests run on, and check the decoders use it."""
    if _LOADED is None:
        return
    from statuswatch.core.decode import jsondecoder

    module = sys.modules[MODULE]
    if jsondecoder.NATIVE_SCANNER is not module.Scanner or module.__file__ != _LOADED:
        raise RuntimeError(f"the decoders do not use the C scanner {ENV} names ({_LOADED})")
    session.config.get_terminal_writer().line(f"C scanner under test: {_LOADED}")


def build(kind: str) -> Path:
    """Compile the scanner for ``kind`` (a key of ``BUILDS``) into build/<kind>/; its path."""
    cc, flags = BUILDS[kind]
    if shutil.which(cc) is None:
        raise SystemExit(f"{cc} is needed for the {kind} build (.ci/run installs it)")
    out = ROOT / "build" / kind / f"_jsonscan{sysconfig.get_config_var('EXT_SUFFIX')}"
    out.parent.mkdir(parents=True, exist_ok=True)
    obj = out.parent / "_jsonscan.o"  # (gcov finds its notes and counts next to it)
    include = sysconfig.get_paths()["include"]
    for cmd in (
        [cc, "-c", "-fPIC", *flags, "-Wall", "-Wextra", "-Werror", f"-I{include}", str(SOURCE),
         "-o", str(obj)],
        [cc, "-shared", *flags, str(obj), "-o", str(out)],
    ):  # fmt: skip
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return out


def runtime(kind: str) -> Path:
    """The sanitizer runtime to preload for ``kind``: gcc's ASan, or atheris's ASan + libFuzzer."""
    if kind == "sanitize":
        found = subprocess.run(["gcc", "-print-file-name=libasan.so"], check=True,
                               capture_output=True, text=True).stdout.strip()  # fmt: skip
        path = Path(found)
    else:
        import atheris  # type: ignore[import-not-found]  # the "fuzz" extra

        path = Path(atheris.path()) / "asan_with_fuzzer.so"
    if not path.is_absolute() or not path.exists():
        raise SystemExit(f"no sanitizer runtime for the {kind} build (looked for {path})")
    return path


def run(kind: str, args: list[str]) -> int:
    so = build(kind)
    env = {**os.environ, ENV: str(so)}
    if kind == "sanitize":
        env.update(SANITIZER_ENV, LD_PRELOAD=str(runtime(kind)))
        cmd = [sys.executable, "-m", "pytest", "-p", "tests.fuzz.native", "-p", "no:cacheprovider",
               "--capture=sys", "-q", *(args or SANITIZE_TESTS)]  # fmt: skip
    elif kind == "fuzz":
        env.update(SANITIZER_ENV, LD_PRELOAD=str(runtime(kind)))
        cmd = [sys.executable, "-m", "tests.fuzz.harness", "--fuzz", *args]
    else:
        for old in so.parent.glob("*.gcda"):
            old.unlink()
        corpus = [ROOT / "build" / "fuzz" / "corpus", ROOT / "tests" / "fuzz" / "corpus",
                  ROOT / "tests" / "fuzz" / "found"]  # fmt: skip
        inputs = args or [str(d) for d in corpus if d.is_dir()]
        cmd = [sys.executable, "-m", "tests.fuzz.harness", "--every", "--quiet", *inputs]
    print(" ".join(cmd), flush=True)
    status = subprocess.run(cmd, env=env, cwd=ROOT, check=False).returncode
    if kind == "coverage" and status == 0:
        report = subprocess.run(["gcov", "-n", "-o", str(so.parent), str(SOURCE)], cwd=ROOT,
                                check=True, capture_output=True, text=True).stdout  # fmt: skip
        ours = report.split(f"File '{SOURCE}'\n", 1)[-1].split("\n", 1)[0]
        print(f"{SOURCE.relative_to(ROOT)}: {ours}")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=sorted(BUILDS))
    known, rest = parser.parse_known_args(argv)
    return run(known.kind, rest)


if __name__ == "__main__":
    sys.exit(main())
