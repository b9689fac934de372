"""Awaiting work that must finish: a cancel that lands meanwhile waits for it, then goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def run_to_end(work: Awaitable[T]) -> T:
    """Await `work` to its end even when the caller is cancelled meanwhile (once or many
    times); such a cancel is raised after the work ended, so the caller knows its outcome
    was settled. Use it for what must not be left half-done: a COMMIT, a container being
    created, a git process being killed."""
    task = asyncio.ensure_future(work)
    interrupted = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        if not task.cancelled():
            task.exception()  # retrieved: the cancel below is what the caller sees
        raise asyncio.CancelledError
    return task.result()
