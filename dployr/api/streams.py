"""Streaming answers (NDJSON or SSE) that end as soon as the client goes away."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")
WATCH_SECONDS = 1.0


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def until_gone(request: web.Request, items: AsyncIterator[T]) -> AsyncIterator[T]:
    """Items of `items` until it ends or the client disconnects; then the source is closed
    (its connection to the engine too): a quiet follow stream leaves nothing behind."""
    step: asyncio.Future[T] | None = None
    try:
        while True:
            step = asyncio.ensure_future(anext(items))
            while not step.done():
                await asyncio.wait({step}, timeout=WATCH_SECONDS)
                if not step.done() and client_gone(request):
                    step.cancel()
                    await asyncio.gather(step, return_exceptions=True)
                    return
            try:
                yield step.result()
            except StopAsyncIteration:
                return
    finally:
        # Also when aiohttp cancels the handler: the pending read must not outlive it.
        if step is not None and not step.done():
            step.cancel()
            await asyncio.gather(step, return_exceptions=True)
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()


class LineStream:
    """NDJSON by default; Server-Sent Events when the client asks for text/event-stream."""

    def __init__(self, request: web.Request) -> None:
        self.sse = "text/event-stream" in request.headers.get("Accept", "")
        content_type = "text/event-stream" if self.sse else "application/x-ndjson"
        self.response = web.StreamResponse(
            headers={"Content-Type": content_type, "Cache-Control": "no-cache"}
        )
        self._request = request

    async def __aenter__(self) -> LineStream:
        await self.response.prepare(self._request)
        return self

    async def send(self, item: dict[str, Any]) -> None:
        text = json.dumps(item)
        data = f"data: {text}\n\n" if self.sse else text + "\n"
        await self.response.write(data.encode("utf-8"))

    async def __aexit__(self, *exc: object) -> None:
        if exc[0] is None:
            await self.response.write_eof()
