"""A deployment's log: lines masked, numbered, batched into SQLite, readable while written."""

from __future__ import annotations

import asyncio
import logging

from dployr.crypto import mask_secrets
from dployr.ids import now_iso
from dployr.store import deployments
from dployr.store.db import Database
from dployr.tasks import run_to_end

_LOGGER = logging.getLogger(__name__)
FLUSH_SECONDS = 0.25
# A runaway build cannot fill the disk through its log: a deployment keeps at most MAX_BYTES of
# text (a newline counted per line) and MAX_LINES rows (each row has ~70 bytes of overhead).
MAX_BYTES = 5 * 1024 * 1024
MAX_LINES = 100_000
MAX_LINE = 4096  # characters; a longer line is cut


class Logbook:
    """write() is synchronous and cheap (it can be called for every build line); a task
    writes the buffer every FLUSH_SECONDS, one transaction a batch. Past its cap the log
    takes no more lines, and its last line says how much was dropped."""

    def __init__(
        self,
        db: Database,
        deployment_id: str,
        secrets: list[str],
        start_seq: int,
        *,
        max_bytes: int = MAX_BYTES,
        max_lines: int = MAX_LINES,
    ) -> None:
        self._db = db
        self._deployment_id = deployment_id
        self._secrets = secrets
        self._seq = start_seq
        self._max_bytes = max_bytes
        self._max_lines = max_lines
        self._bytes = 0  # what the log holds already: counted at __aenter__ (a resumed attempt)
        self._buffer: list[tuple[int, str, str]] = []
        self._dropped_lines = 0
        self._dropped_bytes = 0
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    def mask(self, text: str) -> str:
        return mask_secrets(text, self._secrets)

    def add_secret(self, secret: str) -> None:
        """One more value to mask (a secret read after the log opened: a registry login)."""
        self._secrets.append(secret)

    def write(self, line: str) -> None:
        line = line.rstrip("\r\n")
        if self._dropped_lines:
            self._drop(line)  # once cut, always cut: a log with holes would mislead
            return
        text = self.mask(line)[:MAX_LINE]
        size = len(text.encode("utf-8")) + 1
        if self._bytes + size > self._max_bytes or self._seq >= self._max_lines:
            self._drop(line)
            return
        self._bytes += size
        self._seq += 1
        self._buffer.append((self._seq, now_iso(), text))
        self._wake.set()

    def _drop(self, line: str) -> None:
        self._dropped_lines += 1
        self._dropped_bytes += len(line.encode("utf-8", "replace")) + 1

    async def __aenter__(self) -> Logbook:
        self._bytes = await deployments.log_bytes(self._db, self._deployment_id)
        self._flusher = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._flusher is not None
        self._flusher.cancel()
        # The last lines are written even when a cancel lands here; the cancel goes on after.
        await run_to_end(self._close())

    async def _close(self) -> None:
        assert self._flusher is not None
        await asyncio.gather(self._flusher, return_exceptions=True)
        if self._dropped_lines:
            note = (
                f"[log truncated at {self._bytes} bytes, line {self._seq}: "
                f"{self._dropped_lines} more lines ({self._dropped_bytes} bytes) dropped; "
                f"a deployment's log keeps at most {self._max_bytes} bytes]"
            )
            self._seq += 1  # may pass max_lines by this one line
            self._buffer.append((self._seq, now_iso(), note))
        await self.flush()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()
            await asyncio.sleep(FLUSH_SECONDS)

    async def flush(self) -> None:
        if not self._buffer:
            return
        # The batch leaves the buffer only once it is written: a flush cancelled (or failed)
        # mid-write loses nothing, and writing a line twice is harmless (INSERT OR IGNORE).
        batch = list(self._buffer)
        try:
            await deployments.append_log(self._db, self._deployment_id, batch)
        except Exception:
            _LOGGER.exception("could not write the log of %s", self._deployment_id)
            return
        last = batch[-1][0]
        self._buffer = [entry for entry in self._buffer if entry[0] > last]
