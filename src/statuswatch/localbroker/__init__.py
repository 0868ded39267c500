"""A throwaway single-node Apache Kafka broker for the tests, the demo and CI.

The broker jars come from Maven Central through Maven (``kafka_2.13`` and its
runtime dependencies) and are cached per version. The broker runs in KRaft mode
(one process is broker and controller) on free loopback ports, with its data
in a temporary directory, under the machine's ``java``.

Command line::

    python -m statuswatch.localbroker fetch   # cache the jars, print their dir
    python -m statuswatch.localbroker start   # run a broker until Ctrl-C
"""

from statuswatch.localbroker.broker import LocalKafka
from statuswatch.localbroker.jars import (
    DEFAULT_KAFKA_VERSION,
    default_cache_dir,
    ensure_kafka_jars,
)

__all__ = ["DEFAULT_KAFKA_VERSION", "LocalKafka", "default_cache_dir", "ensure_kafka_jars"]
