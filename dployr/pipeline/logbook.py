"""A deployment's log: lines masked, numbered, batched into SQLite, readable while written."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from dployr.crypto import mask_secrets
from dployr.ids import now_iso
from dployr.store import deployments
from dployr.store.db import Database

_LOGGER = logging.getLogger(__name__)
FLUSH_SECONDS = 0.25
MAX_LINES = 20_000  # a runaway build cannot fill the disk through its log
MAX_LINE = 4096


class Logbook:
    """write() is synchronous and cheap (it can be called for every build line); a task
    writes the buffer every FLUSH_SECONDS, one transaction a batch."""

    def __init__(
        self, db: Database, deployment_id: str, secrets: list[str], start_seq: int
    ) -> None:
        self._db = db
        self._deployment_id = deployment_id
        self._secrets = secrets
        self._seq = start_seq
        self._buffer: list[tuple[int, str, str]] = []
        self._dropped = 0
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    def mask(self, text: str) -> str:
        return mask_secrets(text, self._secrets)

    def write(self, line: str) -> None:
        if self._seq >= MAX_LINES:
            self._dropped += 1
            return
        self._seq += 1
        text = self.mask(line.rstrip("\r\n"))[:MAX_LINE]
        self._buffer.append((self._seq, now_iso(), text))
        self._wake.set()

    async def __aenter__(self) -> Logbook:
        self._flusher = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._flusher is not None
        self._flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._flusher
        if self._dropped:
            note = f"({self._dropped} more lines dropped)"
            self._buffer.append((MAX_LINES + 1, now_iso(), note))
        await asyncio.shield(self.flush())

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()
            await asyncio.sleep(FLUSH_SECONDS)

    async def flush(self) -> None:
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        try:
            await deployments.append_log(self._db, self._deployment_id, batch)
        except Exception:
            _LOGGER.exception("could not write the log of %s", self._deployment_id)
