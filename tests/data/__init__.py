"""Public data vendored for the tests, examples and benchmarks (see SOURCES.md here)."""

from __future__ import annotations

import gzip
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: 10,000 real Apache combined-log lines over 3.5 days (elastic/examples, Apache-2.0).
APACHE_LOG = HERE / "apache" / "apache_logs.gz"

#: Its per-code counts, checked against the file by the tests.
APACHE_CODES = {200: 9126, 304: 445, 404: 213, 301: 164, 206: 45, 500: 3, 416: 2, 403: 2}


def apache_lines() -> list[bytes]:
    """The Apache log's lines, without line ends."""
    return gzip.decompress(APACHE_LOG.read_bytes()).splitlines()
