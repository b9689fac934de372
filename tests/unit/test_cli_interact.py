"""The CLI's prompts and waits (dployr/cli/interact.py): pure logic, on fake stdin and reads."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import pytest

from dployr.cli import interact
from dployr.cli.errors import FAILED, USAGE, CommandError


class Piped(io.StringIO):
    def isatty(self) -> bool:
        return False


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("given", "read"),
    [("s3cret\n", "s3cret"), ("s3cret\r\n", "s3cret"), ("two\n\n", "two\n"), ("a\nb", "a\nb")],
)
def test_a_secret_loses_one_trailing_newline(
    monkeypatch: pytest.MonkeyPatch, given: str, read: str
) -> None:
    monkeypatch.setattr("sys.stdin", Piped(given))
    assert interact.read_secret("token") == read


def test_a_secret_from_a_file_and_none_at_all(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "key").write_text("-----BEGIN KEY-----\nx\n-----END KEY-----\n")
    assert interact.read_secret("key", str(tmp_path / "key")).endswith("END KEY-----")
    with pytest.raises(CommandError) as missing:
        interact.read_secret("key", str(tmp_path / "nope"))
    assert missing.value.exit_code == USAGE and "cannot read the key" in str(missing.value)
    monkeypatch.setattr("sys.stdin", Piped("\n"))
    with pytest.raises(CommandError) as empty:
        interact.read_secret("token")
    assert empty.value.exit_code == USAGE and "no token given" in str(empty.value)


def test_confirm_wants_yes_or_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    interact.confirm(argparse.Namespace(yes=True), "remove it?")  # --yes: no question
    monkeypatch.setattr("sys.stdin", Piped("y\n"))
    with pytest.raises(CommandError) as refused:
        interact.confirm(argparse.Namespace(yes=False), "remove it?")
    assert refused.value.exit_code == USAGE and "refusing without --yes" in str(refused.value)
    monkeypatch.setattr("sys.stdin", Terminal("yes\n"))
    interact.confirm(argparse.Namespace(yes=False), "remove it?")
    monkeypatch.setattr("sys.stdin", Terminal("\n"))
    with pytest.raises(CommandError) as declined:
        interact.confirm(argparse.Namespace(yes=False), "remove it?")
    assert declined.value.exit_code == FAILED
    out, err = capsys.readouterr()
    assert out == "" and err.count("remove it? [y/N] ") == 2  # asked on stderr


def test_wait_for_shows_each_change_and_gives_up_at_the_timeout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(interact, "POLL_SECONDS", 0)
    states = iter(["creating", "creating", "restoring", "running"])

    def read() -> dict[str, Any]:
        return {"status": next(states)}

    done = interact.wait_for(read, lambda d: d["status"] == "running", lambda d: d["status"], 60)
    assert done == {"status": "running"}
    assert capsys.readouterr().err == "creating\nrestoring\nrunning\n"
    with pytest.raises(CommandError) as late:
        interact.wait_for(lambda: {"status": "creating"}, lambda d: False, str, 0)
    assert "still creating after 0s" in str(late.value)


def test_human_bytes() -> None:
    assert [interact.human_bytes(n) for n in (None, 0, 999, 1500, 2_500_000, 7 * 10**12)] == [
        None, "0 B", "999 B", "1.5 kB", "2.5 MB", "7000.0 GB"
    ]  # fmt: skip
