"""The Docker engine's wire formats: build contexts, multiplexed log frames, messages, times."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import tarfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

DOCKERFILE_NAME = ".dployr.Dockerfile"


async def frames(content: aiohttp.StreamReader) -> AsyncIterator[tuple[str, bytes]]:
    """The engine's multiplexed stream: an 8-byte header (stream, 0, 0, 0, size) per frame."""
    while True:
        try:
            header = await content.readexactly(8)
        except asyncio.IncompleteReadError:
            return
        size = int.from_bytes(header[4:8], "big")
        payload = await content.readexactly(size)
        yield ("stderr" if header[0] == 2 else "stdout"), payload


def close_failed_sockets(err: BaseException | None) -> None:
    """docker-py's unix-socket connect() leaves its socket open when the engine is down (it is
    still a local of the failed frame): close it, or every call leaks a descriptor until GC."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        trace = err.__traceback__
        while trace is not None:
            for value in trace.tb_frame.f_locals.values():
                if isinstance(value, socket.socket):
                    value.close()
            trace = trace.tb_next
        err = err.__cause__ or err.__context__


def build_context(source: Path, dockerfile: str | None, target: Path) -> None:
    """The source tar plus our Dockerfile (when the runtime renders one)."""
    with tarfile.open(target, "w") as out:
        with tarfile.open(source) as src:
            for member in src:
                if member.name.lstrip("./") == DOCKERFILE_NAME:
                    continue
                out.addfile(member, src.extractfile(member) if member.isfile() else None)
        if dockerfile is not None:
            data = dockerfile.encode("utf-8")
            info = tarfile.TarInfo(DOCKERFILE_NAME)
            info.size, info.mode = len(data), 0o644
            out.addfile(info, io.BytesIO(data))


def engine_message(raw: bytes) -> str:
    try:
        return str(json.loads(raw)["message"])
    except (ValueError, KeyError, TypeError):
        return raw.decode("utf-8", "replace").strip()[:500]


def docker_time(value: str | None) -> str | None:
    """Docker's RFC 3339 with nanoseconds → ISO 8601 UTC with milliseconds and Z."""
    if not value or value.startswith("0001-"):
        return None
    main, _, rest = value.rstrip("Z").partition(".")
    digits = "".join(ch for ch in rest if ch.isdigit())[:3].ljust(3, "0")
    try:
        moment = datetime.fromisoformat(main).replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{digits}Z"
