"""The one exception hierarchy of statuswatch.

::

    StatuswatchError
     +-- ConfigError          bad or unreadable configuration (names the key)
     +-- DecodeError          one record could not be decoded (carries a reason)
     +-- SourceError          the input (Kafka, file) failed
     +-- SinkError            an output (alerts, metrics) failed
     +-- BrokerHarnessError   the local Kafka broker could not be fetched or started

Pure-core code raises only ``DecodeError`` and ``ConfigError``; the shell wraps
library errors from aiokafka or the file system in ``SourceError``/``SinkError``.
"""

from __future__ import annotations


class StatuswatchError(Exception):
    """Base of every error statuswatch raises on purpose."""


class ConfigError(StatuswatchError):
    """The configuration is invalid. The message names the key and the problem."""


class DecodeError(StatuswatchError):
    """A record could not be decoded.

    ``reason`` is a short, bounded label (used as a metric label value).

    >>> DecodeError("invalid_json").reason
    'invalid_json'
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class SourceError(StatuswatchError):
    """Reading input failed."""


class SinkError(StatuswatchError):
    """Writing output failed."""


class BrokerHarnessError(StatuswatchError):
    """The local Kafka broker could not be fetched, started or stopped."""


class HarnessError(StatuswatchError):
    """A local server for the demo or the tests (Alertmanager, Prometheus) did not start."""
