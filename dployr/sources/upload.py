"""Uploaded source archives (source "upload"): checked member by member, kept per deployment.

An upload is received under `<data_dir>/uploads/.incoming/` (swept at every start: a kill -9
mid-upload leaves nothing that stays), checked, and renamed to
`<data_dir>/uploads/<service id>/<deployment id>.tar.gz` in the transaction that records its
deployment. The fetching stage reads it back into a plain source tar, checking it again."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import shutil
import tarfile
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from secrets import token_hex
from typing import Any

from dployr.backup.archive import fsync_dir
from dployr.runtime.safe_tar import Links, member_problem, through_link
from dployr.tasks import undone_on_cancel

INCOMING = ".incoming"
SUFFIX = ".tar.gz"
# Unpacked, an upload may hold this many times `runtime.max_upload_bytes` (source code packs
# 3-5x; a zip bomb packs 1000x): past it the upload is refused as too large.
EXPANSION = 4
MAX_MEMBERS = 100_000  # files, dirs and links: a tar of empty files costs inodes, not bytes
# A pax or GNU long-name header is read whole into memory by tarfile: a real one holds a path
# (at most safe_tar.PATH_MAX) and a few numbers.
META_MAX = 64 * 1024
# Checks run in their own threads: however many uploads arrive, the rest of the daemon's
# thread work (asyncio.to_thread) never waits behind them.
CHECKS = 2
# pax and long-name headers in a row before a member: tarfile reads each by recursing (3000 of
# them, 12 KB gzipped, were a RecursionError). A real one has at most a global header, a long
# name and a long link name.
META_RUN = 4
CHUNK = 1 << 20
# A number the tar header holds (11 octal digits): other mtimes (nan, 1e400, negative) are 0.
MTIME_MAX = 8**11 - 1
_META_TYPES = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)


class ArchiveRefused(Exception):
    """The archive may not be used; `reason` says why (a member's name, or a size)."""

    def __init__(self, reason: str, *, too_big: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_big = too_big


@dataclass(frozen=True)
class Contents:
    files: int  # regular files
    size: int  # bytes of file data, unpacked


class _Counted:
    """The decompressed stream, refused once it passes `bound` bytes: whatever the headers
    say (pax records, long names, padding), what is unpacked is counted as it is read."""

    def __init__(self, raw: gzip.GzipFile, bound: int, stop: threading.Event) -> None:
        self.raw, self.bound, self.stop, self.count = raw, bound, stop, 0

    def read(self, size: int = -1) -> bytes:
        if self.stop.is_set():
            raise ArchiveRefused("the check was cancelled")
        room = self.bound - self.count + 1  # one byte past the bound proves it is passed
        data = self.raw.read(room if size < 0 else min(size, room))
        self.count += len(data)
        if self.count > self.bound:
            raise ArchiveRefused(f"it unpacks to more than {self.bound} bytes", too_big=True)
        return data


class _BoundedInfo(tarfile.TarInfo):
    """tarfile reads a pax or long-name header whole, then the next header by recursing: one
    past META_MAX, or more than META_RUN in a row, is refused first."""

    def _proc_member(self, tar: tarfile.TarFile) -> Any:
        if self.type not in _META_TYPES:
            return super()._proc_member(tar)  # type: ignore[misc]
        if self.size > META_MAX:
            raise ArchiveRefused(f"a {self.size}-byte metadata header (at most {META_MAX})")
        run = getattr(tar, "_dployr_meta_run", 0) + 1
        if run > META_RUN:
            raise ArchiveRefused(f"more than {META_RUN} metadata headers in a row")
        tar._dployr_meta_run = run  # type: ignore[attr-defined]
        try:
            return super()._proc_member(tar)  # type: ignore[misc]
        finally:
            tar._dployr_meta_run = run - 1  # type: ignore[attr-defined]


def _plain(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """The member as a build needs it: name, type, mode, size, link, time; no owner."""
    info = tarfile.TarInfo(member.name)
    info.type = tarfile.REGTYPE if member.isfile() else member.type
    info.mode = member.mode & 0o755
    info.size = member.size if member.isfile() else 0
    info.linkname = member.linkname
    info.mtime = _mtime(member.mtime)
    return info


def _mtime(value: float) -> int:
    try:
        whole = int(value)
    except (ValueError, OverflowError, TypeError):  # nan, inf
        return 0
    return whole if 0 <= whole <= MTIME_MAX else 0


class _Null:
    """A sink for the plain tar when only the check is wanted: the same writes as a build's."""

    def __init__(self) -> None:
        self.offset = 0

    def write(self, data: bytes) -> int:
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset


def check_archive(
    archive: Path, bound: int, stop: threading.Event, out: Path | None = None
) -> Contents:
    """Blocking: read `archive` (a gzip-compressed tar) to its end, refusing it whole at the
    first member that breaks a rule (runtime.safe_tar) or once it unpacks past `bound` (the
    headers' sizes, then every byte counted). With `out`, write it there as a plain tar."""
    files = size = members = 0
    links = Links()
    try:
        with contextlib.ExitStack() as stack:
            raw = stack.enter_context(archive.open("rb"))
            counted = _Counted(stack.enter_context(gzip.GzipFile(fileobj=raw)), bound, stop)
            tar = stack.enter_context(
                tarfile.open(fileobj=counted, mode="r|", tarinfo=_BoundedInfo)  # type: ignore[call-overload]
            )
            # Without `out` the plain tar is still written (to nothing): what an upload passes
            # is exactly what its fetching stage can write.
            sink: Any = _Null() if out is None else stack.enter_context(out.open("wb"))
            dest = stack.enter_context(tarfile.open(fileobj=sink, mode="w"))
            for member in tar:
                # tarfile keeps every TarInfo it reads or writes, streaming or not: 100 000
                # members would hold ~100 MB. Each is needed only while it is copied.
                tar.members.clear()
                dest.members.clear()  # type: ignore[attr-defined]
                if stop.is_set():
                    raise ArchiveRefused("the check was cancelled")
                problem = member_problem(member) or through_link(member, links)
                if problem is not None:
                    raise ArchiveRefused(problem)
                members += 1
                if members > MAX_MEMBERS:
                    raise ArchiveRefused(f"more than {MAX_MEMBERS} members")
                plain = _plain(member)
                if not member.isfile():
                    dest.addfile(plain)
                    continue
                if size + member.size > bound:
                    raise ArchiveRefused(f"its files hold more than {bound} bytes", too_big=True)
                data = tar.extractfile(member)
                assert data is not None
                dest.addfile(plain, data)  # exactly member.size bytes (a short member: an error)
                files, size = files + 1, size + member.size
            while counted.read(CHUNK):  # the rest (padding): counted, and the gzip CRC checked
                pass
        if files == 0:
            raise ArchiveRefused("it holds no file")
    except ArchiveRefused:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise ArchiveRefused(f"it is not a gzip-compressed tar archive ({err})") from err
    except (RecursionError, ValueError, OverflowError) as err:  # tarfile's words for odd headers
        raise ArchiveRefused(f"it holds a header tarfile cannot read ({err!r:.200})") from err
    return Contents(files, size)


class Uploads:
    """The uploads of this data dir: where one is received, kept, reused and removed."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.bound = max_bytes * EXPANSION
        self._checks = ThreadPoolExecutor(CHECKS, thread_name_prefix="dployr-upload-check")

    def incoming(self) -> Path:
        return self.root / INCOMING / f"{token_hex(16)}.part"

    def archive(self, service_id: str, deployment_id: str) -> Path:
        return self.root / service_id / f"{deployment_id}{SUFFIX}"

    async def check(self, path: Path, out: Path | None = None) -> Contents:
        """check_archive in a thread; a cancel stops it at its next read."""
        stop = threading.Event()

        async def undo(work: asyncio.Future[Contents]) -> None:
            stop.set()
            with contextlib.suppress(Exception):
                await work

        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self._checks, check_archive, path, self.bound, stop, out)
        return await undone_on_cancel(work, undo)

    async def place(self, incoming: Path, service_id: str, deployment_id: str) -> None:
        """The received archive becomes the deployment's (durably: the deployment is accepted)."""
        await asyncio.to_thread(_durable_rename, incoming, self.archive(service_id, deployment_id))

    async def reuse(self, source: Path, service_id: str, deployment_id: str) -> None:
        """A new deployment of the same upload (a PUT, a rollback): a hard link, else a copy."""
        await asyncio.to_thread(_link_or_copy, source, self.archive(service_id, deployment_id))

    def close(self) -> None:
        """At shutdown: checks still queued are dropped (their requests are gone too)."""
        self._checks.shutdown(wait=False, cancel_futures=True)

    async def discard(self, path: Path) -> None:
        await asyncio.to_thread(_unlink, path)

    async def remove_service(self, service_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self.root / service_id, True)

    async def kept(self) -> list[tuple[str, str, Path]]:
        """(service id, deployment id, path) of every kept archive; anything else that is
        not one (a leftover of a crash, the incoming dir) is removed on the way."""
        return await asyncio.to_thread(lambda: list(_sweep(self.root)))


def _durable_rename(source: Path, dest: Path) -> None:
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with source.open("rb") as file:
        os.fsync(file.fileno())
    source.replace(dest)
    fsync_dir(dest.parent)


def _link_or_copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        partial = dest.with_name(dest.name + ".copy")
        shutil.copyfile(source, partial)
        _durable_rename(partial, dest)
        return
    fsync_dir(dest.parent)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        path.unlink()


def _sweep(root: Path) -> Iterator[tuple[str, str, Path]]:
    shutil.rmtree(root / INCOMING, ignore_errors=True)
    if not root.is_dir():
        return
    for service_dir in root.iterdir():
        if not service_dir.is_dir():
            _unlink(service_dir)
            continue
        for path in service_dir.iterdir():
            if path.name.startswith("dep_") and path.name.endswith(SUFFIX) and path.is_file():
                yield service_dir.name, path.name.removesuffix(SUFFIX), path
            else:  # a copy a crash cut short
                _unlink(path)
        with contextlib.suppress(OSError):
            service_dir.rmdir()  # only when empty
