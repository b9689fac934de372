"""systemctl, systemd-analyze and journalctl as asyncio subprocesses (the loop never waits on
them), and what their output means: an instance's status, its journal lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from dployr.ids import iso, parse_iso
from dployr.runtime.protocol import InstanceStatus, LogLine, RuntimeFailure

_LOGGER = logging.getLogger(__name__)
CALL_TIMEOUT = 60.0
SHOWN = (
    "LoadState",
    "ActiveState",
    "SubState",
    "Result",
    "NRestarts",
    "ExecMainStartTimestamp",
    "ExecMainCode",
    "ExecMainStatus",
    "MainPID",
)
# An app's own lines: syslog priority err or worse came from its stderr (journald keeps one
# stream per unit when stdout and stderr share it, so the priority is all there is to tell).
STDERR_PRIORITY = 3


async def run(*argv: str, limit: float = CALL_TIMEOUT, check: bool = True) -> str:
    """Run a systemd tool; its stdout. RuntimeFailure (with what it printed) when it fails."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as err:
        raise RuntimeFailure(f"{argv[0]} could not run: {err}") from err
    try:
        async with asyncio.timeout(limit):
            out, errors = await process.communicate()
    except BaseException:  # a timeout or a cancel: the tool goes too
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    if check and process.returncode != 0:
        said = (errors or out).decode("utf-8", "replace").strip()
        raise RuntimeFailure(f"{' '.join(argv[:3])} failed: {said or process.returncode}")
    return out.decode("utf-8", "replace")


async def verify(unit_file: Path) -> None:
    """`systemd-analyze verify`: RuntimeFailure with its findings when it finds any. It needs no
    running manager; --man=no because app units document nothing."""
    done = await asyncio.create_subprocess_exec(
        "systemd-analyze",
        "verify",
        "--man=no",
        "--recursive-errors=no",
        str(unit_file),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(CALL_TIMEOUT):  # a hung verify never holds the service
            out, _ = await done.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            done.kill()
        await done.wait()
        raise
    said = out.decode("utf-8", "replace").strip()
    if done.returncode != 0 or said:
        raise RuntimeFailure(f"systemd-analyze verify refused {unit_file.name}: {said}")


async def systemctl(*args: str, limit: float = CALL_TIMEOUT, check: bool = True) -> str:
    return await run("systemctl", *args, limit=limit, check=check)


async def show(unit: str) -> dict[str, str]:
    """`systemctl show` of the properties status needs, as text (timestamps in UTC)."""
    out = await systemctl("show", "--timestamp=utc", "-p", ",".join(SHOWN), "--", unit, check=False)
    return parse_show(out)


def parse_show(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            found[key] = value
    return found


def status_from_show(ref: str, shown: Mapping[str, str]) -> InstanceStatus:
    """What `systemctl show` says in the protocol's words: a unit waiting to restart after a
    crash is `crashed` (as a restarting container is), one that exited 0 is `stopped`."""
    if shown.get("LoadState") in (None, "", "not-found"):
        return InstanceStatus("unknown", ref, None, 0, "the unit is gone")
    active, sub = shown.get("ActiveState", ""), shown.get("SubState", "")
    restarts = int(shown.get("NRestarts") or 0)
    if active == "active":
        status = "running"
    elif active == "activating":
        status = "crashed" if sub == "auto-restart" else "starting"
    elif active == "failed" or (
        active == "inactive" and shown.get("Result", "success") != "success"
    ):
        status = "crashed"
    elif active in ("inactive", "deactivating"):
        status = "stopped"
    else:
        status = "unknown"
    health = None
    if status == "crashed":
        health = _exit_detail(shown)
    return InstanceStatus(
        status, ref, systemd_time(shown.get("ExecMainStartTimestamp")), restarts, health
    )


def _exit_detail(shown: Mapping[str, str]) -> str:
    code, status = shown.get("ExecMainCode", ""), shown.get("ExecMainStatus", "")
    if code == "1":  # CLD_EXITED
        return f"exit code {status}"
    if code in ("2", "3"):  # CLD_KILLED, CLD_DUMPED
        return f"killed by signal {status}"
    return shown.get("Result") or "failed"


def systemd_time(text: str | None) -> str | None:
    """`Tue 2026-12-01 20:30:00 UTC` (systemctl --timestamp=utc) as the API's ISO form."""
    if not text or text == "n/a":
        return None
    try:
        moment = datetime.strptime(text, "%a %Y-%m-%d %H:%M:%S %Z").replace(tzinfo=UTC)
    except ValueError:
        return None
    return iso(moment)


def journal_args(unit: str, *, tail: int | None, since: str | None, follow: bool) -> list[str]:
    """journalctl's words for an instance's own lines (not systemd's about it)."""
    args = ["journalctl", "--no-pager", "-o", "json", "--output-fields=MESSAGE,PRIORITY"]
    args += ["-n", "all" if tail is None else str(tail)]
    if since:
        args += ["--since", parse_iso(since).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")]
    if follow:
        args.append("-f")
    args.append(f"_SYSTEMD_UNIT={unit}")
    return args


def journal_line(raw: bytes) -> LogLine | None:
    """One `journalctl -o json` record as a LogLine; None for what is not a record."""
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    message = record.get("MESSAGE")
    if isinstance(message, list):  # journald keeps non-UTF-8 output as a byte array
        message = bytes(b for b in message if isinstance(b, int)).decode("utf-8", "replace")
    if message is None:
        return None
    try:
        micros = int(record.get("__REALTIME_TIMESTAMP", 0))
        stamp = datetime.fromtimestamp(micros / 1e6, UTC).isoformat().replace("+00:00", "Z")
    except (TypeError, ValueError):
        stamp = ""
    try:
        priority = int(record.get("PRIORITY", 6))
    except (TypeError, ValueError):
        priority = 6
    stream = "stderr" if priority <= STDERR_PRIORITY else "stdout"
    return LogLine(stamp, stream, str(message).rstrip("\n"))


async def journal(
    unit: str, *, tail: int | None, since: str | None, follow: bool
) -> AsyncIterator[LogLine]:
    """An instance's lines from journald; with `follow`, new ones until the reader stops
    (journalctl is killed then, whatever ended the reading: a close, a cancel)."""
    argv = journal_args(unit, tail=tail, since=since, follow=follow)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            limit=1 << 20,  # a record may be long: journald keeps lines up to 48 KiB
        )
    except OSError as err:
        raise RuntimeFailure(f"journalctl could not run: {err}") from err
    assert process.stdout is not None
    try:
        async for raw in process.stdout:
            line = journal_line(raw)
            if line is not None:
                yield line
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await asyncio.shield(process.wait())


async def last_lines(unit: str, lines: int) -> str:
    """The instance's last lines as text (a failed health check's error)."""
    found = [line.message async for line in journal(unit, tail=lines, since=None, follow=False)]
    return "\n".join(found).strip()
