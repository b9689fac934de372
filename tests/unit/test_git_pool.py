"""Git fetches run on git's own threads: slow remotes never starve the default pool."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import bcrypt
import pytest

from dployr.sources.git import GIT_THREADS, SourceError, fetch_remote
from dployr.sources.validate import parse_remote


class Staller:
    """A git:// server that accepts and never answers: each fetch waits in its thread."""

    def __init__(self) -> None:
        self.accepted: list[asyncio.StreamWriter] = []
        self.port = 0

    async def _accept(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(writer)

    async def wait_for(self, count: int) -> None:
        while len(self.accepted) < count:
            await asyncio.sleep(0.05)


@pytest.fixture
async def staller() -> AsyncIterator[Staller]:
    stalling = Staller()
    server = await asyncio.start_server(stalling._accept, "127.0.0.1", 0)
    stalling.port = server.sockets[0].getsockname()[1]
    try:
        yield stalling
    finally:
        server.close()
        for writer in stalling.accepted:
            writer.close()  # git reads EOF and fails: its thread ends
        await server.wait_closed()


async def test_slow_fetches_leave_the_default_pool_free(tmp_path: Path, staller: Staller) -> None:
    default_workers = min(32, (os.cpu_count() or 1) + 4)  # asyncio.to_thread's pool
    remote = parse_remote(f"git://127.0.0.1:{staller.port}/app.git")

    def fetch(n: int) -> asyncio.Task[object]:
        cache, work = tmp_path / f"c{n}", tmp_path / f"w{n}"
        return asyncio.create_task(
            fetch_remote(cache, remote, "main", None, work, allow_private=True, limit=600)
        )

    fetches = [fetch(n) for n in range(max(default_workers, GIT_THREADS) + 2)]
    try:
        # Every git thread (or, before, every default-pool thread) waits on the remote.
        await asyncio.wait_for(staller.wait_for(min(GIT_THREADS, default_workers)), 60)
        hashed = await asyncio.wait_for(
            asyncio.to_thread(bcrypt.hashpw, b"password", bcrypt.gensalt(4)), 60
        )
        assert hashed.startswith(b"$2b$04$")
        infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo("localhost", 80), 60)
        assert infos
        assert not any(fetch.done() for fetch in fetches)  # still blocked, all of them
        assert len(staller.accepted) == GIT_THREADS  # the rest wait for a git thread
    finally:
        for writer in staller.accepted:
            writer.close()
        while not all(fetch.done() for fetch in fetches):
            for writer in staller.accepted:
                writer.close()  # fetches that got a thread since
            await asyncio.sleep(0.1)
    for fetch in fetches:
        assert isinstance(fetch.exception(), SourceError)
