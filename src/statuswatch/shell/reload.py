"""Re-reading the configuration without a restart: on ``SIGHUP``, and with
``reload.watch`` whenever the file's bytes change.

A reload is all or nothing. The file (and the environment, as at start) is loaded and
validated; an invalid one is refused with its dotted keys, a change to a key outside
``config.LIVE_KEYS`` is refused as needing a restart, and in both cases the running
configuration goes on unchanged. Otherwise the new settings are applied between two
batches, so they take effect from the next closed window on.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from statuswatch.config import Settings, changed_keys, restart_keys
from statuswatch.errors import ConfigError, SinkError

log = logging.getLogger(__name__)

#: Outcomes of a reload, the ``result`` label of ``statuswatch_config_reloads_total``.
RESULTS = ("applied", "invalid", "restart_required")


def file_hash(path: Path | None) -> str | None:
    """The first 12 hex digits of the sha256 of the file's bytes; ``""`` without a file,
    None if it cannot be read.

    >>> file_hash(None)
    ''
    """
    if path is None:
        return ""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except OSError:
        return None


class ConfigReloader:
    """Loads the configuration again and hands it to ``apply`` if it may be applied.

    ``load`` reads the file and the environment as at start; ``apply`` switches the
    running pipeline to the new settings and may raise ``SinkError`` (a sink that
    cannot be built) before it changed anything.
    """

    def __init__(
        self, path: str | Path | None, settings: Settings,
        load: Callable[[], Settings], apply: Callable[[Settings], None],
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.settings = settings
        self.load = load
        self.apply = apply
        self.results: Counter[str] = Counter({r: 0 for r in RESULTS})
        #: hash of the file the running configuration came from
        self.hash = file_hash(self.path) or ""
        self.last_successful = True
        self._seen = self.hash  # the file version last tried (the watch tries each once)

    def reload(self, why: str) -> str:
        """Reload now; the result (one of ``RESULTS``), logged in one line."""
        digest = file_hash(self.path)
        self._seen = digest or self._seen
        result = self._reload(why, digest)
        self.results[result] += 1
        self.last_successful = result == "applied"
        return result

    def _reload(self, why: str, digest: str | None) -> str:
        where = str(self.path) if self.path is not None else "(defaults and environment)"
        try:
            new = self.load()
        except ConfigError as exc:
            lines = [line.strip() for line in str(exc).splitlines()]
            log.error("config reload (%s) of %s refused, the running configuration goes on: "
                      "%s", why, where, " ".join([lines[0], "; ".join(lines[1:])]).strip())
            return "invalid"
        changed = changed_keys(self.settings, new)
        restart = restart_keys(changed)
        if restart:
            log.error("config reload (%s) of %s refused: %s cannot change without a restart; "
                      "nothing applied, the running configuration goes on (restart "
                      "statuswatch to apply it)", why, where, ", ".join(restart))
            return "restart_required"
        try:
            self.apply(new)
        except SinkError as exc:
            log.error("config reload (%s) of %s refused, the running configuration goes on: "
                      "alerts.sinks: %s", why, where, exc)
            return "invalid"
        self.settings = new
        self.hash = digest or self.hash
        log.warning("config reload (%s) of %s applied (hash %s): %s", why, where, self.hash,
                    ", ".join(changed) if changed else "no key changed")
        return "applied"

    async def watch(self) -> None:
        """Reload whenever the file's bytes change, checked every
        ``reload.interval_seconds`` while ``reload.watch`` is on."""
        while True:
            await asyncio.sleep(self.settings.reload.interval_seconds)
            if not self.settings.reload.watch or self.path is None:
                continue
            digest = file_hash(self.path)
            if digest is not None and digest != self._seen:  # unreadable: mid-replace
                self.reload("file changed")

    def install(self) -> asyncio.Task[None]:
        """Reload on SIGHUP, and start the watch; the watch's task."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: self.reload("SIGHUP"))
        return loop.create_task(self.watch(), name="config-watch")


class ReloadCollector(Collector):
    """``statuswatch_config_reloads_total{result}``, ``statuswatch_config_info{hash}`` and
    ``statuswatch_config_last_reload_successful``."""

    def __init__(self, reloader: ConfigReloader) -> None:
        self.reloader = reloader

    def collect(self) -> Iterator[Metric]:
        r = self.reloader
        reloads = CounterMetricFamily(
            "statuswatch_config_reloads",
            "Configuration reloads (SIGHUP, reload.watch), by result: applied; invalid (the "
            "file did not validate); restart_required (a key that cannot change live).",
            labels=["result"],
        )
        for result in RESULTS:
            reloads.add_metric([result], r.results[result])
        yield reloads
        info = GaugeMetricFamily(
            "statuswatch_config_info",
            "Always 1; the running configuration's file as a label (first 12 hex digits of "
            "the sha256 of its bytes; empty without a file).", labels=["hash"],
        )
        info.add_metric([r.hash], 1.0)
        yield info
        yield GaugeMetricFamily(
            "statuswatch_config_last_reload_successful",
            "0 while the last reload was refused (the file differs from what runs), else 1.",
            value=float(r.last_successful),
        )
