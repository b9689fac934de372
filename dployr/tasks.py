"""Awaiting work that must finish: a cancel that lands meanwhile waits for it, then goes on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
_LOGGER = logging.getLogger(__name__)


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
        if not task.cancelled() and (error := task.exception()) is not None:
            # The cancel below is what the caller sees: say what the work ended with.
            _LOGGER.warning("%s failed while its caller was cancelled: %r", work, error)
        raise asyncio.CancelledError
    return task.result()


async def undone_on_cancel(
    work: Awaitable[T], undo: Callable[[asyncio.Future[T]], Awaitable[None]]
) -> T:
    """Await `work`, which a cancel cannot stop (a call in a thread). When the caller is
    cancelled meanwhile, `work` goes on and `undo(work)` runs to its end (it waits for what
    `work` makes and removes it) before the cancel goes on."""
    future = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await run_to_end(undo(future))
        raise
