"""Command-line progress: bars on a terminal, one line per stage in a log."""

from __future__ import annotations

import io

from harapp.cli.progress import stage_bars


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_one_line_per_stage() -> None:
    log = io.StringIO()
    with stage_bars(log) as bars:
        for done in range(1001):
            bars("importing", done, 1000)
        bars("reading annotations", 2, 2, "2 files")
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in log.getvalue()
    assert lines[0].startswith("importing: 1000/1000 in ")
    assert lines[1].startswith("reading annotations: 2/2 (2 files) in ")


def test_a_terminal_gets_a_bar_redrawn_at_a_limited_rate() -> None:
    terminal = _Terminal()
    with stage_bars(terminal) as bars:
        for done in range(20_001):
            bars("importing", done, 20_000)
    out = terminal.getvalue()
    assert "importing: 100%" in out and "20000/20000" in out
    assert out.count("\r") < 200  # not one redraw per callback
    assert "it/s" not in out  # no meaningless rates
