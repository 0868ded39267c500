"""The one exception hierarchy of statuswatch.

::

    StatuswatchError
     +-- ConfigError          bad or unreadable configuration (names the key)
     +-- DecodeError          one record could not be decoded (carries a reason)
     +-- SourceError          the input (Kafka, file) failed
     |    +-- UnreadablePartitionError  a partition's records cannot be read; retrying won't help
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


class UnreadablePartitionError(SourceError):
    """Records of one partition cannot be read, and fetching them again cannot heal it:
    a compression codec the install lacks, a batch that fails its CRC check, a record
    larger than the fetch size. ``reason`` is a short, bounded label (a metric label value).

    >>> e = UnreadablePartitionError("corrupt_batch", "logs", 2, 40, "Invalid CRC")
    >>> str(e)
    'cannot read topic=logs partition=2 offset=40: corrupt_batch (Invalid CRC)'
    """

    def __init__(
        self, reason: str, topic: str, partition: int, offset: int | None, detail: str
    ) -> None:
        where = f"topic={topic} partition={partition}"
        if offset is not None:
            where += f" offset={offset}"
        super().__init__(f"cannot read {where}: {reason} ({detail})")
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.detail = detail


class SinkError(StatuswatchError):
    """Writing output failed."""


class BrokerHarnessError(StatuswatchError):
    """The local Kafka broker could not be fetched, started or stopped."""


class HarnessError(StatuswatchError):
    """A local server for the demo or the tests (Alertmanager, Prometheus) did not start."""
