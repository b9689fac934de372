"""A process instance's log files: size-capped rotation, and tail/since read across the files."""

from __future__ import annotations

from pathlib import Path

import pytest

from dployr.runtime import proclog
from dployr.runtime.proclog import append_rotating, format_line, parse_line, read_lines
from dployr.runtime.protocol import LogLine


def test_lines_round_trip() -> None:
    line = LogLine("2026-12-01T20:00:00.123Z", "stderr", "a message  with spaces")
    assert parse_line(format_line(line)) == line
    assert parse_line("garbage\n") is None


def test_files_rotate_at_the_cap_and_keep_three(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(proclog, "MAX_BYTES", 200)
    for n in range(100):
        stamp = f"2026-12-01T20:00:{n // 10:02d}.{n % 10:03d}Z"
        append_rotating(tmp_path, format_line(LogLine(stamp, "stdout", f"line {n:03d}")))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["output.log", "output.log.1", "output.log.2"]
    assert all(p.stat().st_size <= 200 for p in tmp_path.iterdir())
    kept = read_lines(tmp_path, None, None)
    numbers = [int(line.message.split()[1]) for line in kept]
    assert numbers == list(range(numbers[0], 100))  # the newest, in order, none twice
    assert [line.message for line in read_lines(tmp_path, 2, None)] == ["line 098", "line 099"]
    since = read_lines(tmp_path, None, "2026-12-01T20:00:09.005Z")
    assert [line.message for line in since] == [f"line {n:03d}" for n in range(95, 100)]
