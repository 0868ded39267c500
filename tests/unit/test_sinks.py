"""File sinks: a line cut short by a crash stays on its own; unusable paths fail loudly."""

from __future__ import annotations

import pytest

from statuswatch.config import Settings
from statuswatch.core.detector import Detector
from statuswatch.errors import SinkError
from statuswatch.shell.sinks import JsonLinesSink, WindowsSink


@pytest.mark.parametrize("make", [
    lambda p: JsonLinesSink(str(p)),
    lambda p: WindowsSink(str(p), Detector(Settings())),
])
def test_a_torn_last_line_does_not_swallow_the_next_runs_first_line(tmp_path, make):
    path = tmp_path / "out.jsonl"
    path.write_text('{"start":0,"end":10}\n{"start":10,"en')  # kill -9 mid-write
    make(path).close()
    assert path.read_text() == '{"start":0,"end":10}\n{"start":10,"en\n'
    make(path).close()  # an intact file is left alone
    assert path.read_text() == '{"start":0,"end":10}\n{"start":10,"en\n'


@pytest.mark.parametrize("make", [
    lambda p: JsonLinesSink(str(p)),
    lambda p: WindowsSink(str(p), Detector(Settings())),
])
def test_an_unusable_output_path_is_an_error_naming_it(tmp_path, make):
    missing = tmp_path / "no-such-dir" / "out.jsonl"
    with pytest.raises(SinkError, match="no-such-dir"):
        make(missing)
