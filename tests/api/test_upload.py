"""POST /deployments/upload against the real app: what it accepts, what it refuses before the
202 (each tar rule, sizes, parts, the deployment JSON), and what it keeps on disk. The engine
is never reached (its socket is a path where nothing listens): accepted deployments fail at
building, which these tests do not look at, except the retention one."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
import os
import tarfile
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from dployr.app import create_app
from dployr.keys import DEPLOYER
from tests.conftest import bearer, login, make_config, register, user_headers

Client = TestClient  # type: ignore[type-arg]
LIMIT = 2 * 1024 * 1024  # max_upload_bytes here: past server.max_body_bytes (1 MiB)
BOUND = LIMIT * 4  # what an upload may unpack to (sources.upload.EXPANSION)
APP = {"name": "web", "runtime": "static"}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def up(aiohttp_client: Any, tmp_path: Path, data_dir: Path) -> Client:
    config = make_config(
        data_dir,
        runtime={
            "default_target": "docker",
            "docker_host": f"unix://{tmp_path}/nothing-listens.sock",
            "max_upload_bytes": LIMIT,
            "keep_releases": 1,
        },
    )
    client: Client = await aiohttp_client(create_app(config))
    return client


async def _admin(client: Client) -> dict[str, str]:
    await register(client)
    return bearer((await login(client))["access_token"])


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    return info, data


def _special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info, b""


def targz(members: Iterable[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return gzip.compress(raw.getvalue())


def site(page: bytes = b"<h1>hello</h1>\n") -> bytes:
    return targz([_file("index.html", page)])


def form(
    deployment: dict[str, Any] | str | None = APP,
    archive: bytes | None = None,
    *,
    archive_first: bool = False,
) -> aiohttp.FormData:
    data = aiohttp.FormData()
    parts: list[tuple[str, Any, dict[str, str]]] = []
    if deployment is not None:
        text = deployment if isinstance(deployment, str) else json.dumps(deployment)
        parts.append(("deployment", text, {"content_type": "application/json"}))
    if archive is not None:
        parts.append(
            (
                "archive",
                io.BytesIO(archive),
                {"filename": "app.tar.gz", "content_type": "application/gzip"},
            )
        )
    for name, value, options in reversed(parts) if archive_first else parts:
        data.add_field(name, value, **options)
    return data


async def upload(client: Client, headers: dict[str, str], body: Any) -> tuple[int, Any]:
    resp = await client.post("/api/v1/deployments/upload", data=body, headers=headers)
    return resp.status, await resp.json()


def _files_under(path: Path) -> list[str]:
    return sorted(
        str(Path(root, name).relative_to(path))
        for root, _, names in os.walk(path)
        for name in names
    )


async def uploads_on_disk(data_dir: Path) -> list[str]:
    return await asyncio.to_thread(_files_under, data_dir / "uploads")


async def _total(client: Client, headers: dict[str, str]) -> int:
    listing = await (await client.get("/api/v1/deployments", headers=headers)).json()
    return int(listing["total"])


# -- accepted ----------------------------------------------------------------------------------


async def test_a_user_uploads_a_directory_past_the_body_limit(up: Client, data_dir: Path):
    """Not admin-only (unlike `local`); 1.5 MiB of incompressible data passes the 1 MiB body
    limit of every other route, streamed to disk; the archive is kept under the deployment."""
    admin = await _admin(up)
    bob = await user_headers(up, admin, "bob@example.com")
    archive = targz([_file("index.html", b"hi\n"), _file("blob.bin", os.urandom(1_500_000))])
    assert len(archive) > 1024 * 1024
    status, body = await upload(up, bob, form({**APP, "source": "upload"}, archive))
    assert status == 202, body
    assert body["source"] == "upload" and body["status"] == "queued"
    assert body["commit_sha"] is None and body["remote"] is None
    kept = f"{body['service_id']}/{body['id']}.tar.gz"
    assert await uploads_on_disk(data_dir) == [kept]
    stored = await asyncio.to_thread((data_dir / "uploads" / kept).read_bytes)
    assert stored == archive
    # Every other route keeps the 1 MiB limit.
    resp = await up.post(
        "/api/v1/deployments",
        data=io.BytesIO(b"{" + b" " * (1024 * 1024 + 10) + b"}"),
        headers={**bob, "Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"


async def test_the_archive_part_may_come_first(up: Client):
    admin = await _admin(up)
    status, body = await upload(up, admin, form(APP, site(), archive_first=True))
    assert status == 202, body


# -- the tar rules: a 400 naming the member, nothing queued, nothing kept ----------------------

BAD_MEMBERS = {
    "absolute": ([_file("/etc/evil", b"x")], "/etc/evil: an absolute path"),
    "dotdot": ([_file("app/../../evil", b"x")], "'..'"),
    "symlink out": ([_special("up", tarfile.SYMTYPE, "../../etc")], "up: a link that leaves"),
    "symlink absolute": ([_special("pw", tarfile.SYMTYPE, "/etc/passwd")], "pw: a link to an"),
    "hardlink out": ([_special("h", tarfile.LNKTYPE, "../outside")], "h: a link that leaves"),
    "inside a link": (
        [_special("s", tarfile.SYMTYPE, "sub"), _file("s/x", b"x")],
        "s/x: a member inside a link",
    ),
    "char device": ([_special("null", tarfile.CHRTYPE)], "null: a device or FIFO"),
    "block device": ([_special("sda", tarfile.BLKTYPE)], "sda: a device or FIFO"),
    "fifo": ([_special("pipe", tarfile.FIFOTYPE)], "pipe: a device or FIFO"),
}


@pytest.mark.parametrize("case", list(BAD_MEMBERS))
async def test_unsafe_members_are_refused(up: Client, data_dir: Path, case: str):
    admin = await _admin(up)
    members, said = BAD_MEMBERS[case]
    archive = targz([_file("index.html", b"ok"), *members])
    status, body = await upload(up, admin, form(APP, archive))
    assert status == 400, body
    assert body["error"]["code"] == "validation_error"
    assert body["error"]["details"]["field"] == "archive"
    assert said in body["error"]["details"]["reason"], body
    assert await _total(up, admin) == 0
    assert await uploads_on_disk(data_dir) == []


@pytest.mark.parametrize(
    "archive",
    [
        b"not a tarball at all",
        gzip.compress(b"plain text, gzipped"),
        gzip.compress(b"\0" * 10240),  # a tar with no member
        site()[:-20],  # cut short: the gzip stream never ends
    ],
    ids=["bytes", "gzipped-text", "empty-tar", "truncated"],
)
async def test_what_is_not_a_gzip_tar_is_refused(up: Client, data_dir: Path, archive: bytes):
    admin = await _admin(up)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:  # a plain (not gzipped) tar too
        tar.addfile(*_file("index.html", b"x")[:1], io.BytesIO(b"x"))
    for candidate in (archive, raw.getvalue()):
        status, body = await upload(up, admin, form(APP, candidate))
        assert status == 400, body
        assert body["error"]["details"]["field"] == "archive"
    assert await _total(up, admin) == 0
    assert await uploads_on_disk(data_dir) == []


# -- sizes: 413, and nothing left behind -------------------------------------------------------


async def test_an_archive_over_max_upload_bytes_is_a_413(up: Client, data_dir: Path):
    admin = await _admin(up)
    archive = targz([_file("big.bin", os.urandom(LIMIT + 100_000))])
    status, body = await upload(up, admin, form(APP, archive))
    assert status == 413, body
    assert body["error"]["code"] == "payload_too_large"
    assert body["error"]["details"]["field"] == "archive"
    assert str(LIMIT) in body["error"]["message"]
    assert await _total(up, admin) == 0
    assert await uploads_on_disk(data_dir) == []


async def test_a_content_length_past_the_limit_is_refused_before_reading(up: Client):
    admin = await _admin(up)
    resp = await up.post(
        "/api/v1/deployments/upload",
        data=b"x" * 10,
        headers={
            **admin,
            "Content-Type": "multipart/form-data; boundary=b",
            "Content-Length": str(LIMIT * 2),
        },
        skip_auto_headers={"Content-Length"},
        chunked=None,
    )
    assert resp.status == 413
    assert (await resp.json())["error"]["details"]["field"] == "archive"


async def test_a_small_archive_that_unpacks_past_the_bound_is_a_413(up: Client, data_dir: Path):
    admin = await _admin(up)
    bomb = targz([_file("zeros.bin", b"\0" * (BOUND + 1))])
    assert len(bomb) < 64 * 1024  # small on the wire
    status, body = await upload(up, admin, form(APP, bomb))
    assert status == 413, body
    assert body["error"]["details"]["field"] == "archive"
    assert "more than" in body["error"]["details"]["reason"]
    assert await _total(up, admin) == 0
    assert await uploads_on_disk(data_dir) == []


async def test_headers_that_hide_their_size_are_counted_as_they_unpack(up: Client, data_dir: Path):
    """Empty files, each behind a 60 KB pax record (under sources.upload.META_MAX): every
    header says size 0, but the stream unpacks past the bound; it is counted as it is read."""
    admin = await _admin(up)
    members = []
    for index in range(BOUND // 60_000 + 10):
        info, data = _file(f"f{index}", b"")
        info.pax_headers = {"comment": "x" * 60_000}
        members.append((info, data))
    bomb = targz(members)
    assert len(bomb) < 64 * 1024
    status, body = await upload(up, admin, form(APP, bomb))
    assert status == 413, body
    assert body["error"]["details"]["reason"] == f"it unpacks to more than {BOUND} bytes"
    assert await uploads_on_disk(data_dir) == []


async def test_one_huge_metadata_header_is_refused_before_it_is_read(up: Client):
    admin = await _admin(up)
    info, data = _file("f", b"")
    info.pax_headers = {"comment": "x" * (2 * 1024 * 1024)}
    status, body = await upload(up, admin, form(APP, targz([(info, data)])))
    assert status == 400, body
    assert "metadata header" in body["error"]["details"]["reason"]


async def test_a_chain_of_pax_headers_is_a_400_not_a_500(up: Client, data_dir: Path):
    """3000 pax headers in a row (12 KB gzipped) were a RecursionError inside tarfile."""
    admin = await _admin(up)
    raw = b"".join(
        tarfile.TarInfo._create_pax_generic_header(  # type: ignore[attr-defined]
            {"comment": "c"}, tarfile.XHDTYPE, "utf-8"
        )
        for _ in range(3000)
    )
    info, data = _file("index.html", b"hi")
    raw += info.tobuf(tarfile.USTAR_FORMAT) + data.ljust(512, b"\0") + b"\0" * 1024
    status, body = await upload(up, admin, form(APP, gzip.compress(raw)))
    assert status == 400, body
    assert body["error"]["details"]["field"] == "archive"
    assert "metadata headers in a row" in body["error"]["details"]["reason"]
    assert await uploads_on_disk(data_dir) == []


async def test_a_data_dir_that_cannot_store_the_archive_is_a_503(up: Client, data_dir: Path):
    admin = await _admin(up)
    await asyncio.to_thread((data_dir / "uploads").mkdir)
    await asyncio.to_thread((data_dir / "uploads" / ".incoming").write_bytes, b"in the way")
    status, body = await upload(up, admin, form(APP, site()))
    assert status == 503, body
    assert body["error"]["code"] == "unavailable"
    assert "cannot be stored" in body["error"]["message"]
    assert await _total(up, admin) == 0


# -- the parts and the deployment JSON ---------------------------------------------------------


async def test_missing_and_unknown_parts_are_400s_naming_them(up: Client):
    admin = await _admin(up)
    for body, field in (
        (form(APP, None), "archive"),
        (form(None, site()), "deployment"),
    ):
        status, answer = await upload(up, admin, body)
        assert status == 400, answer
        assert answer["error"]["details"]["field"] == field
    extra = form(APP, site())
    extra.add_field("readme", "hello")
    status, answer = await upload(up, admin, extra)
    assert status == 400 and answer["error"]["details"]["field"] == "readme", answer


@pytest.mark.parametrize(
    ("deployment", "field"),
    [
        ("{not json", "deployment"),
        ("[1, 2]", "deployment"),
        ({**APP, "source": "remote"}, "source"),
        ({**APP, "port": 70000}, "port"),
        ({"runtime": "static"}, "name"),
        ({**APP, "remote": "https://example.com/x.git"}, "remote"),
        ({**APP, "image": "nginx:latest"}, "image"),  # was a 202 showing that image
        ({"name": "web"}, "runtime"),
    ],
)
async def test_a_bad_deployment_part_is_a_400_before_the_archive_is_read(
    up: Client, data_dir: Path, deployment: Any, field: str
):
    admin = await _admin(up)
    status, body = await upload(up, admin, form(deployment, site()))
    assert status == 400, body
    assert body["error"]["details"]["field"] == field
    assert await uploads_on_disk(data_dir) == []


async def test_the_deployment_part_is_checked_before_the_archive_is_read(up: Client):
    """Sent first, a refused deployment answers at once: an archive past the limit behind it
    would have been a 413 had it been read."""
    admin = await _admin(up)
    too_big = os.urandom(LIMIT + 100_000)
    status, body = await upload(up, admin, form({**APP, "port": 0}, too_big))
    assert status == 400, body
    assert body["error"]["details"]["field"] == "port"


async def test_a_body_that_is_not_multipart_is_a_415(up: Client):
    admin = await _admin(up)
    resp = await up.post("/api/v1/deployments/upload", json=APP, headers=admin)
    assert resp.status == 415
    assert (await resp.json())["error"]["code"] == "unsupported_media_type"
    body = aiohttp.FormData()
    body.add_field("deployment", "<x/>", content_type="application/xml")
    body.add_field("archive", io.BytesIO(site()), filename="a.tgz")
    status, answer = await upload(up, admin, body)
    assert status == 415, answer


BOUNDARY = "b0undary"
_DEPLOYMENT_PART = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="deployment"\r\n'
    f"Content-Type: application/json\r\n\r\n{json.dumps(APP)}\r\n"
).encode()


@pytest.mark.parametrize(
    "raw",
    [
        f"--{BOUNDARY}\r\nX-Long: {'a' * 100_000}\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
        f"--{BOUNDARY}\r\n".encode()
        + b"X-A: a\r\n" * 1000
        + f"\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
        b"a" * 5_000_000 + b"\r\n" + _DEPLOYMENT_PART + f"--{BOUNDARY}--\r\n".encode(),
    ],
    ids=["part-header-100KB", "1000-part-headers", "preamble-line-5MB"],
)
async def test_multipart_framing_past_aiohttps_limits_is_a_400(
    up: Client, data_dir: Path, raw: bytes
):
    """aiohttp's LineTooLong and BadHttpMessage were 500s. Sent chunked (no Content-Length
    to refuse first)."""
    admin = await _admin(up)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 1 << 16):
            yield raw[start : start + (1 << 16)]

    resp = await up.post(
        "/api/v1/deployments/upload",
        data=chunks(),
        headers={**admin, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert resp.status == 400, await resp.text()
    body = await resp.json()
    assert body["error"]["code"] == "validation_error"
    assert len(body["error"]["message"]) < 1000
    assert await uploads_on_disk(data_dir) == []


@pytest.mark.parametrize("cut", ["in-part-headers", "in-deployment-json", "in-archive"])
async def test_a_client_gone_mid_part_is_no_500(
    up: Client, data_dir: Path, caplog: pytest.LogCaptureFixture, cut: str
):
    """A connection closed inside the `deployment` part raised ConnectionResetError (a 500
    and a traceback in the log); nothing stays on disk wherever it ends. Served as `dployr
    serve` serves (web.run_app: a handler is not cancelled when its client goes; the test
    server would cancel it)."""
    admin = await _admin(up)
    assert up.server.runner is not None and up.server.runner.server is not None
    up.server.runner.server.handler_cancellation = False
    archive_part = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="archive"; filename="a.tgz"\r\n'
        "Content-Type: application/gzip\r\n\r\n"
    ).encode() + site()
    whole = _DEPLOYMENT_PART + archive_part
    at = {
        "in-part-headers": 40,
        "in-deployment-json": len(_DEPLOYMENT_PART) - 10,
        "in-archive": len(whole) - 20,
    }[cut]
    reader, writer = await asyncio.open_connection(up.host, up.port)
    head = (
        "POST /api/v1/deployments/upload HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {admin['Authorization']}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    writer.write(head + b"%x\r\n" % at + whole[:at] + b"\r\n")
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.close()
    await writer.wait_closed()
    await reader.read()
    deadline = time.monotonic() + 30
    while await uploads_on_disk(data_dir) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(1)  # the handler goes on after its client went: let it answer
    assert await uploads_on_disk(data_dir) == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert await _total(up, admin) == 0


async def test_a_content_encoding_is_a_415(up: Client, data_dir: Path):
    """aiohttp inflates a gzip Content-Encoding as it reads: 425 KB became 200 MB of preamble
    to skip. The archive is compressed already; the route takes no encoding."""
    admin = await _admin(up)
    data = form(APP, site())
    payload = data()
    raw = io.BytesIO()

    class _Sink:
        async def write(self, chunk: bytes) -> None:
            raw.write(chunk)

    await payload.write(_Sink())  # type: ignore[arg-type]
    resp = await up.post(
        "/api/v1/deployments/upload",
        data=gzip.compress(raw.getvalue()),
        headers={**admin, "Content-Type": payload.content_type, "Content-Encoding": "gzip"},
    )
    assert resp.status == 415, await resp.text()
    assert (await resp.json())["error"]["code"] == "unsupported_media_type"
    assert await _total(up, admin) == 0
    assert await uploads_on_disk(data_dir) == []


async def test_an_upload_needs_a_token(up: Client):
    status, body = await upload(up, {}, form(APP, site()))
    assert status == 401, body


# -- kept per deployment: a PUT reuses it, retention and deletion remove it ---------------------


async def _wait_finished(client: Client, headers: dict[str, str], deployment_id: str) -> Any:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        resp = await client.get(f"/api/v1/deployments/{deployment_id}", headers=headers)
        body = await resp.json()
        if body["status"] in ("failed", "cancelled", "live"):
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"{deployment_id} did not finish")


async def _page(port: int) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/index.html") as resp,
    ):
        return await resp.text()


@pytest.fixture
async def on_process(aiohttp_client: Any, data_dir: Path) -> Client:
    """The process target: real releases, cheap (a static site served by the host's Python)."""
    config = make_config(
        data_dir, runtime={"default_target": "process", "keep_releases": 1, "drain_seconds": 0}
    )
    client: Client = await aiohttp_client(create_app(config))
    return client


async def test_an_upload_goes_live_a_put_rebuilds_it_and_its_archives_go_with_releases(
    on_process: Client, data_dir: Path
):
    client = on_process
    admin = await _admin(client)
    status, first = await upload(client, admin, form(APP, site(b"from the archive\n")))
    assert status == 202, first
    first = await _wait_finished(client, admin, first["id"])
    assert first["status"] == "live", first
    fetching = first["stages"][0]
    assert fetching["message"] == "read 1 file, 17 bytes", fetching
    assert first["commit_sha"] is None
    assert await _page(first["host_port"]) == "from the archive\n"
    svc = first["service_id"]
    first_path = data_dir / "uploads" / svc / f"{first['id']}.tar.gz"
    # A PUT: a new release built from the same archive.
    resp = await client.put(
        f"/api/v1/deployments/{first['id']}", json={"env": {"V": "2"}}, headers=admin
    )
    assert resp.status == 202, await resp.text()
    second = await _wait_finished(client, admin, (await resp.json())["id"])
    assert second["status"] == "live" and second["source"] == "upload", second
    assert second["host_port"] != first["host_port"]
    assert await _page(second["host_port"]) == "from the archive\n"
    # keep_releases = 1: the first release's archive went; a PUT of it asks for a new upload.
    assert not await asyncio.to_thread(first_path.exists)
    resp = await client.put(f"/api/v1/deployments/{first['id']}", json={}, headers=admin)
    assert resp.status == 409, await resp.text()
    assert "upload the directory again" in (await resp.json())["error"]["message"]
    # A failed one keeps its archive (the newest) until it is removed from the history.
    failing = {**APP, "health_check": {"path": "/missing", "timeout": 1}}
    status, third = await upload(client, admin, form(failing, site()))
    assert status == 202, third
    assert (await _wait_finished(client, admin, third["id"]))["status"] == "failed"
    third_path = data_dir / "uploads" / svc / f"{third['id']}.tar.gz"
    assert await asyncio.to_thread(third_path.exists)
    resp = await client.delete(f"/api/v1/deployments/{third['id']}", headers=admin)
    assert resp.status == 204, await resp.text()
    assert not await asyncio.to_thread(third_path.exists)
    resp = await client.delete(f"/api/v1/services/{svc}", headers=admin)
    assert resp.status == 204, await resp.text()
    assert await uploads_on_disk(data_dir) == []


async def test_a_service_keeps_at_most_three_queued_uploads(up: Client, data_dir: Path):
    """Each queued upload keeps its archive until it runs: the fourth waiting one is a 429
    (nothing recorded, nothing kept); once they have run, uploads are taken again."""
    admin = await _admin(up)
    status, first = await upload(up, admin, form(APP, site()))
    assert status == 202, first
    await _wait_finished(up, admin, first["id"])
    deployer = up.app[DEPLOYER]
    async with deployer.service_lock(first["service_id"]):  # what runs holds it: all queue
        queued = []
        for _ in range(2):
            status, body = await upload(up, admin, form(APP, site()))
            assert status == 202, body
            queued.append(body["id"])
        # Two at once for the last place: one gets it (the count is made again in the
        # transaction that records each).
        answers = await asyncio.gather(*(upload(up, admin, form(APP, site())) for _ in "ab"))
        assert sorted(status for status, _ in answers) == [202, 429], answers
        queued += [body["id"] for status, body in answers if status == 202]
        on_disk = await uploads_on_disk(data_dir)
        for archive in (site(), os.urandom(LIMIT + 100_000)):  # the big one is never read
            status, body = await upload(up, admin, form(APP, archive))
            assert status == 429, body
            assert body["error"]["code"] == "rate_limited"
            assert body["error"]["details"]["field"] == "archive"
            assert "3 uploads of web are queued" in body["error"]["message"]
        assert await _total(up, admin) == 4
        assert await uploads_on_disk(data_dir) == on_disk
    for deployment_id in queued:
        await _wait_finished(up, admin, deployment_id)
    status, body = await upload(up, admin, form(APP, site()))
    assert status == 202, body


async def test_the_start_sweeps_what_a_crash_left(
    aiohttp_client: Any, tmp_path: Path, data_dir: Path
):
    """A half-received upload, and an archive whose deployment was never committed."""

    def leave() -> None:
        (data_dir / "uploads" / ".incoming").mkdir(parents=True)
        (data_dir / "uploads" / ".incoming" / "abc.part").write_bytes(b"half")
        (data_dir / "uploads" / "svc_gone").mkdir()
        (data_dir / "uploads" / "svc_gone" / "dep_gone.tar.gz").write_bytes(site())
        (data_dir / "uploads" / "svc_gone" / "dep_gone.tar.gz.copy").write_bytes(b"cut")

    await asyncio.to_thread(leave)
    assert len(await uploads_on_disk(data_dir)) == 3
    await aiohttp_client(create_app(make_config(data_dir)))
    assert await uploads_on_disk(data_dir) == []
