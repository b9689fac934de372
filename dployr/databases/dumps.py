"""Commands run inside a database's container and the bytes they move (SPEC §14 backups): dumps
streamed out of `docker exec`, dumps streamed into its stdin, files in and out of the container.
Every function here blocks: they run in the DockerTarget's threads (`DockerTarget.call`)."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import tarfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dployr.databases.engines import Exec
from dployr.runtime.protocol import RuntimeFailure

if TYPE_CHECKING:
    import docker

CHUNK = 1 << 16
TAIL = 2000  # characters of a command's own output kept for its error message


class Channel:
    """The connection of one exec, which the event loop's side closes on a cancel: the thread
    blocked reading or writing it then ends (and the command in the container gets EPIPE)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self.closed = False

    def attach(self, sock: Any) -> None:
        with self._lock:
            self._socket = sock._sock  # the SDK's SocketIO wraps the engine's socket
            if self.closed:
                _close(sock)
                raise RuntimeFailure("cancelled")

    def close(self) -> None:
        with self._lock:
            self.closed = True
            if self._socket is not None:
                with contextlib.suppress(OSError):  # closed already
                    self._socket.shutdown(socket.SHUT_RDWR)


class Tail:
    """The last TAIL characters of a command's stderr (or output), for its error message."""

    def __init__(self) -> None:
        self._text = ""

    def add(self, data: bytes) -> None:
        self._text = (self._text + data.decode("utf-8", "replace"))[-TAIL:]

    def __str__(self) -> str:
        return self._text.strip() or "no output"


def _exit_code(client: docker.DockerClient, exec_id: str) -> int:
    """The exec's exit code; the engine sets it a moment after the stream ends."""
    for _ in range(100):
        info = client.api.exec_inspect(exec_id)
        if not info["Running"] and info["ExitCode"] is not None:
            return int(info["ExitCode"])
        time.sleep(0.05)
    raise RuntimeFailure("the command inside the database's container did not end")


def _start(
    client: docker.DockerClient, container: str, command: Exec, channel: Channel, stdin: bool
) -> tuple[str, Any]:
    exec_id = client.api.exec_create(
        container, command.cmd, environment=command.env, stdin=stdin, stdout=True, stderr=True
    )["Id"]
    sock = client.api.exec_start(exec_id, socket=True)
    channel.attach(sock)
    return exec_id, sock


def _frames(sock: Any) -> Iterator[tuple[int, bytes]]:
    from docker.utils.socket import frames_iter

    try:
        yield from frames_iter(sock, tty=False)
    finally:
        _close(sock)


def _close(sock: Any) -> None:
    raw = sock._sock
    sock.close()
    if raw is not None:
        raw.close()  # the SocketIO's close leaves the engine's socket open


def run(client: docker.DockerClient, container: str, command: Exec) -> tuple[int, str]:
    """Run `command` to its end: its exit code and the tail of its output."""
    exec_id, sock = _start(client, container, command, Channel(), stdin=False)
    tail = Tail()
    for _, data in _frames(sock):
        tail.add(data)
    return _exit_code(client, exec_id), str(tail)


def dump(
    client: docker.DockerClient, container: str, command: Exec, dest: Path, channel: Channel
) -> tuple[int, str]:
    """Run `command` with its stdout written to `dest` (made 0600 here): its exit code and
    the tail of its stderr. A command that writes its own file (`output`) keeps stdout."""
    exec_id, sock = _start(client, container, command, channel, stdin=False)
    tail = Tail()
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            for stream, data in _frames(sock):
                if stream == 1 and command.output is None:
                    out.write(data)
                else:
                    tail.add(data)
        _unless_cancelled(channel)
    except BaseException:
        dest.unlink(missing_ok=True)  # also when the caller's side removed it meanwhile
        raise
    return _exit_code(client, exec_id), str(tail)


def _unless_cancelled(channel: Channel) -> None:
    if channel.closed:
        raise RuntimeFailure("cancelled")


def feed(
    client: docker.DockerClient, container: str, command: Exec, source: Path, channel: Channel
) -> tuple[int, str]:
    """Run `command` with `source` on its stdin: its exit code and the tail of its output.
    The output is read meanwhile (a command that writes much while we write would otherwise
    wait for us, and we for it)."""
    exec_id, sock = _start(client, container, command, channel, stdin=True)
    tail = Tail()

    def read() -> None:
        for _, data in _frames(sock):
            tail.add(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    raw = sock._sock
    try:
        with source.open("rb") as body:
            while chunk := body.read(CHUNK):
                raw.sendall(chunk)
        raw.shutdown(socket.SHUT_WR)  # the command's stdin ends
    except OSError:
        pass  # the command exited before reading everything: its exit code says why
    reader.join()
    if channel.closed:
        raise RuntimeFailure("cancelled")
    return _exit_code(client, exec_id), str(tail)


class _ChunkReader(io.RawIOBase):
    """A file over the engine's archive stream, for tarfile's streaming mode."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def fetch_file(
    client: docker.DockerClient, container: str, inner: str, dest: Path, channel: Channel
) -> None:
    """Copy the file `inner` out of the container into `dest` (made 0600 here)."""
    stream, _ = client.api.get_archive(container, inner)
    try:
        with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(stream)), mode="r|") as archive:
            for member in archive:
                source = archive.extractfile(member)
                if source is None:
                    continue
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as out:
                    while chunk := source.read(CHUNK):
                        _unless_cancelled(channel)
                        out.write(chunk)
                _unless_cancelled(channel)
                return
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    finally:
        for _ in stream:  # read to its end: the engine's connection goes back to the pool
            pass
    raise RuntimeFailure(f"{inner} was not found in the database's container")


def _tar_stream(entries: list[tuple[str, Path | bytes | None]]) -> Iterator[bytes]:
    """A tar archive, streamed: (name, a file's path | its bytes | None for a directory)."""
    for name, body in entries:
        info = tarfile.TarInfo(name)
        info.mtime = int(time.time())
        if body is None:
            info.type, info.mode = tarfile.DIRTYPE, 0o700
            yield info.tobuf(format=tarfile.GNU_FORMAT)
            continue
        info.mode = 0o600
        info.size = body.stat().st_size if isinstance(body, Path) else len(body)
        yield info.tobuf(format=tarfile.GNU_FORMAT)
        if isinstance(body, Path):
            with body.open("rb") as source:
                while chunk := source.read(CHUNK):
                    yield chunk
        else:
            yield body
        if info.size % tarfile.BLOCKSIZE:
            yield b"\0" * (tarfile.BLOCKSIZE - info.size % tarfile.BLOCKSIZE)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)


def put_files(
    client: docker.DockerClient,
    container: str,
    path: str,
    entries: list[tuple[str, Path | bytes | None]],
) -> None:
    """Write `entries` under `path` inside the container (running or stopped: a stopped
    container's volumes are written too)."""
    if not client.api.put_archive(container, path, _tar_stream(entries)):
        raise RuntimeFailure(f"the engine did not write the files under {path}")
