"""Builds of the C scanner under sanitizers, and the runs that use them.

::

    python -m tests.fuzz.native sanitize [pytest args]
    python -m tests.fuzz.native fuzz [--seconds N] [libFuzzer args]
    python -m tests.fuzz.native coverage [input files or directories]

``sanitize`` builds both C extensions (``_jsonscan.c`` and ``_kernels.c``) with gcc,
AddressSanitizer and UndefinedBehaviorSanitizer into ``build/sanitize/`` and runs
their tests (``SANITIZE_TESTS``) on that build. ``fuzz`` builds it with clang, libFuzzer's
coverage instrumentation and the same sanitizers into ``build/fuzz/`` and runs
the differential harness (``tests/fuzz/harness.py``) on it with atheris.
``coverage`` builds it with gcov into ``build/coverage/``, checks the fuzz
corpus (the seeds, the inputs found wrong and what ``fuzz`` kept in
``build/fuzz/corpus``) on every set-up and prints the line coverage.

The in-place build of ``pip install -e .`` stays as it is: each run starts a new
interpreter (with the sanitizer runtime preloaded: a Python host is not built
with it) and names its build in ``STATUSWATCH_JSONSCAN``, which this module,
loaded as a pytest plugin (``-p tests.fuzz.native``) or by the harness, imports
in place of the in-place one (``STATUSWATCH_KERNELS`` likewise for the kernels). Every
sanitizer report aborts the run, so the
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
#: The other C extension, the core's per-cell kernels; ``sanitize`` builds and tests it too.
KERNELS_SOURCE = ROOT / "src" / "statuswatch" / "core" / "_kernels.c"
KERNELS_MODULE = "statuswatch.core._kernels"
KERNELS_ENV = "STATUSWATCH_KERNELS"
#: Per module: its C source, the variable naming a build of it, and the module that
#: must not be imported before the override (it binds the extension at import).
EXTENSIONS = {
    MODULE: (SOURCE, ENV, "statuswatch.core.decode.jsondecoder"),
    KERNELS_MODULE: (KERNELS_SOURCE, KERNELS_ENV, "statuswatch.core.kernels"),
}

#: The scanner's own tests, the fast-path properties on the scanner (the fallback, the
#: full decoder, runs no C), the fuzz corpus as regressions, and the kernels' tests.
SANITIZE_TESTS = [
    "tests/unit/test_jsonscan.py", "tests/unit/test_fast_path.py",
    "tests/unit/test_block_scan.py", "tests/fuzz", "tests/unit/test_kernels.py",
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
    """Import each C extension from the file its variable (``EXTENSIONS``) names, if set.

    Must run before anything imports ``statuswatch.core``; the scanner's path, or None.
    """
    for module_name, (_, env, binder) in EXTENSIONS.items():
        path = os.environ.get(env)
        if not path:
            continue
        if binder in sys.modules:
            raise RuntimeError(f"{env} is set but {binder} was imported before the override")
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"{env}={path} is not an extension module")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[module_name] = module
    return os.environ.get(ENV) or None


# As a pytest plugin (-p tests.fuzz.native): the override is in place before collection.
use_jsonscan_build()


def pytest_collection_finish(session: Any) -> None:
    """Say which builds of the C extensions the tests run on, and check they are used."""
    from statuswatch.core import kernels
    from statuswatch.core.decode import jsondecoder

    in_use = {MODULE: getattr(jsondecoder.NATIVE_SCANNER, "__module__", None),
              KERNELS_MODULE: getattr(kernels.native, "__name__", None)}
    for module_name, (_, env, _binder) in EXTENSIONS.items():
        path = os.environ.get(env)
        if not path:
            continue
        module = sys.modules[module_name]
        if in_use[module_name] != module_name or module.__file__ != path:
            raise RuntimeError(f"statuswatch does not use the build {env} names ({path})")
        session.config.get_terminal_writer().line(f"{module_name} under test: {path}")


def build(kind: str, source: Path = SOURCE) -> Path:
    """Compile ``source`` (the scanner's, by default) for ``kind`` (a key of ``BUILDS``)
    into build/<kind>/; its path."""
    cc, flags = BUILDS[kind]
    if shutil.which(cc) is None:
        raise SystemExit(f"{cc} is needed for the {kind} build (.ci/run installs it)")
    out = ROOT / "build" / kind / f"{source.stem}{sysconfig.get_config_var('EXT_SUFFIX')}"
    out.parent.mkdir(parents=True, exist_ok=True)
    obj = out.parent / f"{source.stem}.o"  # (gcov finds its notes and counts next to it)
    include = sysconfig.get_paths()["include"]
    for cmd in (
        [cc, "-c", "-fPIC", *flags, "-ffp-contract=off", "-Wall", "-Wextra", "-Werror",
         f"-I{include}", str(source), "-o", str(obj)],
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
        env[KERNELS_ENV] = str(build(kind, KERNELS_SOURCE))
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
