"""statuswatch: streaming anomaly detection for HTTP status codes.

Data flow (one module per stage)::

    shell/sources   file | list; kafka_source     (I/O)
      core/decode   bytes -> columns               (pure)
      core/window   event-time tumbling windows    (pure)
      core/baseline expected share and volume      (pure, River)
      core/score    count-aware significance       (pure)
      core/decide   pending/firing/resolved        (pure)
    shell/sinks     JSON lines, metrics            (I/O)
"""

__version__ = "0.1.0"
