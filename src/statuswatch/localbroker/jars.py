"""The broker jars: ``kafka_2.13`` and its runtime dependencies from Maven Central,
fetched through Maven and cached per version."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from statuswatch.errors import BrokerHarnessError
from statuswatch.localbroker.process import run_to_end

DEFAULT_KAFKA_VERSION = "3.9.1"

_MARKER = ".complete"
# Pinned so that a cold cache resolves the same plugin everywhere.
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
# The kafka_2.13 POM declares only slf4j-api: without a binding the broker logs
# nothing at all (slf4j's NOP logger). Kafka 3.x's own distribution ships
# slf4j-reload4j + reload4j (log4j 1.x API, configured by log4j.properties).
_POM = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.statuswatch</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>1.7.36</version>
    </dependency>
    <dependency>
      <groupId>ch.qos.reload4j</groupId>
      <artifactId>reload4j</artifactId>
      <version>1.2.25</version>
    </dependency>
  </dependencies>
</project>
"""


def cache_root() -> Path:
    """``$STATUSWATCH_CACHE``, else ``~/.cache/statuswatch``: where the test harness keeps
    what it fetches (the broker jars, programs unpacked from Debian packages)."""
    root = os.environ.get("STATUSWATCH_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "statuswatch"


def default_cache_dir(version: str = DEFAULT_KAFKA_VERSION) -> Path:
    """``$STATUSWATCH_CACHE/kafka-<version>``, else ``~/.cache/statuswatch/kafka-<version>``."""
    return cache_root() / f"kafka-{version}"


def ensure_kafka_jars(version: str = DEFAULT_KAFKA_VERSION, cache_dir: Path | None = None) -> Path:
    """Fetch the broker jars with Maven unless cached; return the directory holding them."""
    cache = (cache_dir if cache_dir is not None else default_cache_dir(version)).absolute()
    libs = cache / "libs"
    if _cache_complete(cache, version):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerHarnessError("cannot fetch the Kafka jars: Maven (mvn) is not on PATH")
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BrokerHarnessError(f"cannot create cache dir {cache}: {exc.strerror}") from exc
    with _file_lock(cache / ".lock"):
        # Another process may have filled the cache while this one waited.
        if _cache_complete(cache, version):
            return libs
        (cache / _MARKER).unlink(missing_ok=True)
        shutil.rmtree(libs, ignore_errors=True)  # a partial copy from a failed run
        (cache / "pom.xml").write_text(_POM.format(version=version), encoding="utf-8")
        cmd = [
            mvn,
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(cache / "pom.xml"),
            f"{_DEPENDENCY_PLUGIN}:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ]
        run_to_end(cmd, cache, 900, f"Maven failed to fetch kafka_2.13:{version}")
        jars = sorted(p.name for p in libs.glob("*.jar"))
        if f"kafka_2.13-{version}.jar" not in jars:
            raise BrokerHarnessError(f"Maven ran but {libs} has no kafka_2.13-{version}.jar")
        # Written last: its presence means the copy is whole.
        (cache / _MARKER).write_text(f"{version}\n" + "\n".join(jars) + "\n", encoding="utf-8")
    return libs


def _cache_complete(cache: Path, version: str) -> bool:
    try:
        lines = (cache / _MARKER).read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    if not lines or lines[0] != version:
        return False
    return all((cache / "libs" / name).is_file() for name in lines[1:])


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
