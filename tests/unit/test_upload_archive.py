"""sources.upload.check_archive on its own: the plain tar a build gets, a stop, a short member."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gzip
import io
import tarfile
import threading
import tracemalloc
from pathlib import Path

import pytest

from dployr.sources.upload import ArchiveRefused, Uploads, check_archive


def _targz(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    path.write_bytes(gzip.compress(raw.getvalue()))
    return path


def _file(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uname, info.uid = len(data), mode, "someone", 4242
    return info, data


def test_the_build_gets_a_plain_tar_without_owners_or_special_bits(tmp_path: Path):
    link = tarfile.TarInfo("current")
    link.type, link.linkname = tarfile.SYMTYPE, "bin/run"
    archive = _targz(
        tmp_path / "a.tgz",
        [_file("bin/run", b"#!/bin/sh\n", 0o4755), _file("index.html", b"hi"), (link, b"")],
    )
    out = tmp_path / "source.tar"
    contents = check_archive(archive, 1 << 20, threading.Event(), out)
    assert (contents.files, contents.size) == (2, 12)
    with tarfile.open(out) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["bin/run"].mode == 0o755  # no setuid
        assert members["bin/run"].uid == 0 and members["bin/run"].uname == ""
        assert members["current"].issym() and members["current"].linkname == "bin/run"
        data = tar.extractfile("index.html")
        assert data is not None and data.read() == b"hi"


def test_a_stop_ends_the_check_at_its_next_read(tmp_path: Path):
    archive = _targz(tmp_path / "a.tgz", [_file("index.html", b"hi")])
    stop = threading.Event()
    stop.set()
    with pytest.raises(ArchiveRefused, match="cancelled"):
        check_archive(archive, 1 << 20, stop)


def test_a_member_cut_short_is_refused(tmp_path: Path):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        tar.addfile(*_file("big.bin", b"x" * 5000)[:1], io.BytesIO(b"x" * 5000))
    cut = raw.getvalue()[: 512 + 1000]  # the header, then 1000 of the 5000 bytes it names
    archive = tmp_path / "cut.tgz"
    archive.write_bytes(gzip.compress(cut))
    with pytest.raises(ArchiveRefused, match="not a gzip-compressed tar"):
        check_archive(archive, 1 << 20, threading.Event())


async def test_a_cancelled_check_stops_its_thread(tmp_path: Path):
    """Cancelled while it reads, the thread stops at its next read and the cancel goes on once
    it has (nothing keeps reading a file the caller is about to remove)."""
    zeros = b"\0" * (64 << 20)
    archive = await asyncio.to_thread(_targz, tmp_path / "z.tgz", [_file("z.bin", zeros)])
    out = tmp_path / "source.tar"
    uploads = Uploads(tmp_path / "uploads", 1 << 30)
    task = asyncio.create_task(uploads.check(archive, out))
    while not await asyncio.to_thread(lambda: out.exists() and out.stat().st_size > 0):
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    written = (await asyncio.to_thread(out.stat)).st_size
    assert written < len(zeros)  # it stopped part way


def test_a_deep_name_is_refused_at_once(tmp_path: Path):
    """A 40 KB name (in a pax header) once took the check seconds (minutes at 200 KB) and
    passed; PATH_MAX refuses it before any walk."""
    info = tarfile.TarInfo("a/" * 20_000 + "f")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b""))
    archive = tmp_path / "deep.tgz"
    archive.write_bytes(gzip.compress(raw.getvalue()))
    with pytest.raises(ArchiveRefused, match="a path over 4096 bytes"):
        check_archive(archive, 1 << 20, threading.Event())


async def test_checks_do_not_wait_for_the_daemons_shared_threads(tmp_path: Path):
    """Uploads are checked in their own threads: with every thread of the loop's default
    executor busy, a check still runs (and busy checks cannot starve asyncio.to_thread)."""
    archive = await asyncio.to_thread(_targz, tmp_path / "a.tgz", [_file("index.html", b"hi")])
    loop = asyncio.get_running_loop()
    busy = concurrent.futures.ThreadPoolExecutor(1)
    loop.set_default_executor(busy)
    release = threading.Event()
    blocked = loop.run_in_executor(None, release.wait)
    try:
        async with asyncio.timeout(60):
            contents = await Uploads(tmp_path / "uploads", 1 << 20).check(archive)
        assert contents.files == 1
    finally:
        release.set()
        await blocked


def _meta_chain(kind: str, count: int) -> bytes:
    """`count` pax (`x`) or GNU long-name (`L`) headers in a row, then one file."""
    raw = b""
    for _ in range(count):
        if kind == "x":
            raw += tarfile.TarInfo._create_pax_generic_header(  # type: ignore[attr-defined]
                {"comment": "c"}, tarfile.XHDTYPE, "utf-8"
            )
        else:
            raw += tarfile.TarInfo._create_gnu_long_header(  # type: ignore[attr-defined]
                "n" * 10, tarfile.GNUTYPE_LONGNAME, "utf-8", "strict"
            )
    info = tarfile.TarInfo("index.html")
    info.size = 2
    raw += info.tobuf(tarfile.USTAR_FORMAT) + b"hi".ljust(512, b"\0") + b"\0" * 1024
    return gzip.compress(raw)


@pytest.mark.parametrize("kind", ["x", "L"])
def test_a_chain_of_metadata_headers_is_refused(tmp_path: Path, kind: str):
    """tarfile reads the header after a pax or long-name one by recursing: 3000 in a row
    (12 KB gzipped) were a RecursionError, a 500."""
    archive = tmp_path / "chain.tgz"
    archive.write_bytes(_meta_chain(kind, 3000))
    with pytest.raises(ArchiveRefused, match="metadata headers in a row"):
        check_archive(archive, 1 << 20, threading.Event())
    archive.write_bytes(_meta_chain(kind, 3))  # a few are fine (the last one wins)
    assert check_archive(archive, 1 << 20, threading.Event()).files == 1


def test_long_names_and_long_link_names_pass(tmp_path: Path):
    """What GNU tar and pax writers make of a deep tree: one long-name and one long-link
    header before a member, or a global pax header then a per-file one."""
    deep = "d" * 200 + "/" + "f" * 200
    link = tarfile.TarInfo("l" * 150 + "/link")
    link.type, link.linkname = tarfile.SYMTYPE, "../" + deep
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=fmt, pax_headers={"comment": "g"}) as tar:
            tar.addfile(_file(deep, b"hi")[0], io.BytesIO(b"hi"))
            tar.addfile(link)
        archive = tmp_path / "long.tgz"
        archive.write_bytes(gzip.compress(raw.getvalue()))
        out = tmp_path / "plain.tar"
        assert check_archive(archive, 1 << 20, threading.Event(), out).files == 1
        with tarfile.open(out) as tar:
            assert tar.getnames() == [deep, link.name]


@pytest.mark.parametrize("mtime", ["nan", "1e400", "-1e30", "1e20"])
def test_an_mtime_no_tar_header_holds_is_written_as_0(tmp_path: Path, mtime: str):
    """A pax mtime of nan or 1e400 passed the upload's check (which wrote nothing), then the
    fetching stage failed writing it: both write the same plain tar now."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info, data = _file("index.html", b"hi")
        info.pax_headers = {"mtime": mtime}
        tar.addfile(info, io.BytesIO(data))
    archive = tmp_path / "mtime.tgz"
    archive.write_bytes(gzip.compress(raw.getvalue()))
    assert check_archive(archive, 1 << 20, threading.Event()).files == 1
    out = tmp_path / "plain.tar"
    assert check_archive(archive, 1 << 20, threading.Event(), out).files == 1
    with tarfile.open(out) as tar:
        assert tar.getmember("index.html").mtime == 0


def test_memory_stays_flat_however_many_members(tmp_path: Path):
    """tarfile keeps every TarInfo, even streaming: 10 000 empty members held ~8 MB."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for index in range(10_000):
            tar.addfile(tarfile.TarInfo(f"d/{index:05}"), io.BytesIO(b""))
    archive = tmp_path / "many.tgz"
    archive.write_bytes(gzip.compress(raw.getvalue()))
    tracemalloc.start()
    try:
        contents = check_archive(archive, 1 << 30, threading.Event(), tmp_path / "plain.tar")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert contents.files == 10_000
    assert peak < 4 << 20, peak  # a few MiB of buffers, not a TarInfo per member
