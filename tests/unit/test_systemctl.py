"""What systemctl and journalctl say, in the runtime protocol's words (their output as systemd
252 prints it, checked in the box)."""

from __future__ import annotations

import json

import pytest

from dployr.runtime.systemctl import (
    journal_args,
    journal_line,
    parse_show,
    status_from_show,
    systemd_time,
)

RUNNING = """MainPID=277
NRestarts=0
ExecMainStartTimestamp=Tue 2026-12-01 20:02:56 UTC
ExecMainCode=0
ExecMainStatus=0
LoadState=loaded
ActiveState=active
SubState=running
Result=success
"""


def shown(**changes: str) -> dict[str, str]:
    return {**parse_show(RUNNING), **changes}


def test_a_running_unit() -> None:
    status = status_from_show("dployr-web-1-a0b1c2.service", parse_show(RUNNING))
    assert status.status == "running"
    assert status.started_at == "2026-12-01T20:02:56Z"
    assert status.restarts == 0
    assert status.health is None


@pytest.mark.parametrize(
    ("changes", "status", "health"),
    [
        # Waiting to restart after a crash (Restart=on-failure): a restarting container's word.
        (
            {"ActiveState": "activating", "SubState": "auto-restart", "ExecMainCode": "1",
             "ExecMainStatus": "3", "NRestarts": "2", "Result": "exit-code"},
            "crashed",
            "exit code 3",
        ),
        ({"ActiveState": "activating", "SubState": "start"}, "starting", None),
        (
            {"ActiveState": "failed", "SubState": "failed", "ExecMainCode": "2",
             "ExecMainStatus": "9", "Result": "signal"},
            "crashed",
            "killed by signal 9",
        ),
        ({"ActiveState": "inactive", "SubState": "dead", "Result": "success"}, "stopped", None),
        ({"ActiveState": "inactive", "SubState": "dead", "Result": "exit-code",
          "ExecMainCode": "1", "ExecMainStatus": "1"}, "crashed", "exit code 1"),
        ({"ActiveState": "deactivating", "SubState": "stop-sigterm"}, "stopped", None),
        ({"LoadState": "not-found", "ActiveState": "inactive"}, "unknown", "the unit is gone"),
        ({"ActiveState": "reloading"}, "unknown", None),
    ],
)  # fmt: skip
def test_states(changes: dict[str, str], status: str, health: str | None) -> None:
    found = status_from_show("u", shown(**changes))
    assert (found.status, found.health) == (status, health)
    assert found.restarts == int(changes.get("NRestarts", "0"))


def test_nothing_shown_is_unknown() -> None:
    assert status_from_show("u", {}).status == "unknown"


def test_timestamps() -> None:
    assert systemd_time("Wed 2026-12-02 01:02:03 UTC") == "2026-12-02T01:02:03Z"
    assert systemd_time("n/a") is None
    assert systemd_time("") is None
    assert systemd_time("garbage") is None


def test_journal_records() -> None:
    record = {
        "MESSAGE": "Serving HTTP on 0.0.0.0 port 8000\n",
        "PRIORITY": "6",
        "__REALTIME_TIMESTAMP": "1796155376308758",
    }
    line = journal_line(json.dumps(record).encode())
    assert line is not None
    assert line.message == "Serving HTTP on 0.0.0.0 port 8000"
    assert line.stream == "stdout"
    assert line.timestamp == "2026-12-01T20:02:56.308758Z"
    # systemd's own word about a spawn failure is an error; a binary line arrives as bytes.
    failed = journal_line(json.dumps({**record, "PRIORITY": "3"}).encode())
    assert failed is not None and failed.stream == "stderr"
    binary = journal_line(json.dumps({**record, "MESSAGE": [255, 104, 105]}).encode())
    assert binary is not None and binary.message == "\ufffdhi"
    assert journal_line(b"not json") is None
    assert journal_line(b"[1, 2]") is None
    assert journal_line(json.dumps({"PRIORITY": "6"}).encode()) is None


def test_journal_arguments() -> None:
    unit = "dployr-web-1-a0b1c2.service"
    args = journal_args(unit, tail=50, since=None, follow=False)
    assert args[-1] == f"_SYSTEMD_UNIT={unit}"  # the app's own lines, not systemd's about it
    assert args[args.index("-n") + 1] == "50"
    assert "-f" not in args
    args = journal_args(unit, tail=None, since="2026-12-01T20:00:00Z", follow=True)
    assert args[args.index("-n") + 1] == "all"
    assert args[args.index("--since") + 1] == "2026-12-01 20:00:00 UTC"
    assert "-f" in args
