"""Watching a deployment until it ends: its stage and percent from the WebSocket's
deployment.* events (GET /deployments/{id} polls when the socket fails), its build log from
the NDJSON follow; a rich progress bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from typing import Any, TextIO

from dployr.cli.client import Api
from dployr.cli.finish import FINAL

POLL_SECONDS = 1.0
# Where each stage starts on the 0-100 scale (the pipeline's): for stages that had passed
# before the socket was subscribed, read back from the deployment's `stages`.
STAGE_START = {"fetching": 5, "building": 20, "starting": 75, "health_checking": 85,
               "switching": 95}  # fmt: skip
LOG_TAIL_SECONDS = 5.0  # after the end, for the log's last lines to arrive


class SocketFailed(Exception):
    """The WebSocket could not be used (refused, closed, an error frame): poll instead."""


class PlainView:
    """Plain lines for a pipe or a file. Alone (`--quiet`): `[building 40%] message` whenever
    the stage, percent or message changes. With the build log: one such line per stage, and
    the log's own `==> stage` headers left out (they would say the same thing twice)."""

    def __init__(self, out: TextIO, with_log: bool) -> None:
        self.out = out
        self.with_log = with_log
        self.shown: set[str] = set()
        self._last: tuple[Any, ...] = ()

    def update(self, status: str, progress: int, message: str | None) -> None:
        if self.with_log and status in self.shown and status != "live":
            return
        self.shown.add(status)
        shown = (status, progress, message)
        if shown != self._last:
            self._last = shown
            tail = f" {message}" if message else ""
            print(f"[{status} {progress}%]{tail}", file=self.out, flush=True)

    def log(self, line: str) -> None:
        if not line.startswith("==> "):
            print(line, file=self.out, flush=True)

    def close(self) -> None:
        pass


class BarView:
    """A rich progress bar (stage, bar, percent, elapsed) with the log scrolling above it."""

    def __init__(self, out: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        console = Console(file=out, highlight=False)
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[stage]:<16}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=console,
        )
        self._task = self._progress.add_task("", total=100, stage="queued")
        self._progress.start()
        self.shown: set[str] = set()

    def update(self, status: str, progress: int, message: str | None) -> None:
        self.shown.add(status)
        description = (message or "").splitlines()[0][:80] if message else ""
        self._progress.update(self._task, completed=progress, stage=status, description=description)

    def log(self, line: str) -> None:
        self._progress.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        self._progress.stop()


def view_for(out: TextIO, with_log: bool) -> PlainView | BarView:
    return BarView(out) if out.isatty() else PlainView(out, with_log)


def follow(client: Api, deployment: dict[str, Any], *, quiet: bool, out: TextIO) -> dict[str, Any]:
    """Show `deployment` moving until it ends; its final object. Ctrl-C raises
    KeyboardInterrupt (the caller detaches or cancels)."""
    import aiohttp  # noqa: F401 (here, before the loop: an import reads files)

    view = view_for(out, not quiet)
    view.update(deployment["status"], deployment.get("progress") or 0, None)
    # The same trust as the urllib client's: a context made now reads SSL_CERT_FILE now
    # (aiohttp's default one was made when aiohttp was first imported), off the loop.
    context = ssl.create_default_context()
    try:
        return asyncio.run(_follow(client, deployment["id"], view, quiet, context))
    finally:
        view.close()


async def _follow(
    client: Api, dep_id: str, view: Any, quiet: bool, context: ssl.SSLContext
) -> dict[str, Any]:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=15)
    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        logs = None if quiet else asyncio.create_task(_logs(session, client, dep_id, view))
        try:
            try:
                await _watch(session, client, dep_id, view)
            except (SocketFailed, aiohttp.ClientError, OSError, ValueError) as err:
                view.log(f"-- no event stream ({_why(err)}): polling every {POLL_SECONDS:g} s")
                await _poll(client, dep_id, view)
            if logs is not None:  # let the log's last lines through
                await asyncio.wait({logs}, timeout=LOG_TAIL_SECONDS)
        finally:
            if logs is not None:
                logs.cancel()
                await asyncio.gather(logs, return_exceptions=True)
    final: dict[str, Any] = await asyncio.to_thread(client.get, f"/deployments/{dep_id}")
    return final


def _why(err: Exception) -> str:
    status = getattr(err, "status", None)  # a refused upgrade: 429 past the per-user cap
    return f"HTTP {status}" if status else str(err) or type(err).__name__


def _show(view: Any, item: dict[str, Any], message: str | None) -> bool:
    """Show a deployment (or an event's data); True once it has ended."""
    view.update(item["status"], item.get("progress") or 0, message)
    return item["status"] in FINAL


async def _watch(session: Any, client: Api, dep_id: str, view: Any) -> None:
    """Until the deployment ends, from its events; SocketFailed if the socket goes first."""
    import aiohttp

    url = client.url("/ws").replace("http", "ws", 1)  # http→ws, https→wss
    async with session.ws_connect(url, heartbeat=30) as ws:
        # The token in a message, not the URL: URLs end up in access logs.
        await ws.send_json({"type": "auth", "token": client.settings.token})
        await ws.send_json({"type": "subscribe", "events": ["deployment.*"]})
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            kind = frame.get("type")
            if kind == "error":
                raise SocketFailed(frame.get("error", {}).get("message", "error"))
            if kind == "subscribed":
                # What happened before the subscription: read once, then the events.
                now = await asyncio.to_thread(client.get, f"/deployments/{dep_id}")
                _catch_up(view, now)
                if _show(view, now, _stage_message(now)):
                    return
                continue
            data = frame.get("data")
            mine = isinstance(data, dict) and data.get("deployment_id") == dep_id
            if mine and _show(view, data, data.get("message")):
                return
    raise SocketFailed("the WebSocket closed")


def _catch_up(view: Any, deployment: dict[str, Any]) -> None:
    """Show the stages that started before we listened (a fetch takes milliseconds)."""
    for stage in deployment.get("stages") or []:
        name = stage["name"]
        if stage.get("started_at") and name != deployment["status"] and name not in view.shown:
            view.update(name, STAGE_START.get(name, 0), stage.get("message"))


async def _poll(client: Api, dep_id: str, view: Any) -> None:
    while True:
        now = await asyncio.to_thread(client.get, f"/deployments/{dep_id}")
        _catch_up(view, now)
        if _show(view, now, _stage_message(now)):
            return
        await asyncio.sleep(POLL_SECONDS)


async def _logs(session: Any, client: Api, dep_id: str, view: Any) -> None:
    """The build and deploy log, line by line as it is written, until its end line."""
    url = client.url(f"/deployments/{dep_id}/logs", {"follow": "true"})
    headers = {"Authorization": f"Bearer {client.settings.token}", "Accept": "application/x-ndjson"}
    async with session.get(url, headers=headers) as response:
        if response.status != 200:
            return  # the progress still shows; `dployr deployments logs ID` reads it later
        async for raw in response.content:
            line = json.loads(raw)
            if line.get("end"):
                return
            if "message" in line:
                view.log(line["message"])


def _stage_message(deployment: dict[str, Any]) -> str | None:
    for stage in deployment.get("stages") or []:
        if stage["name"] == deployment["status"]:
            return str(stage.get("message") or "") or None
    return deployment.get("error")


def failed_stage(deployment: dict[str, Any]) -> str | None:
    for stage in deployment.get("stages") or []:
        if stage["status"] == "failed":
            return str(stage["name"])
    return None


def summary_out(json_output: bool) -> TextIO:
    """Progress goes to stdout, or to stderr when stdout is for --json."""
    return sys.stderr if json_output else sys.stdout
