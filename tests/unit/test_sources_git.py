"""Fetching with real git: a loopback `git daemon`, a cached bare repository, local sources."""

import asyncio
import base64
import http.server
import os
import socket
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from dployr.errors import ValidationError
from dployr.sources.git import GitAuth, SourceError, fetch_local, fetch_remote
from dployr.sources.validate import parse_remote

# The developer's own git config must not change what the tests see.
GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}
TOKEN = "tok_s3cret-value-1234567890"


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def make_repo(path: Path, files: dict[str, str], branch: str = "main") -> str:
    """A work-tree repository with one commit of `files`; returns its sha."""
    path.mkdir(parents=True)
    git(path, "init", "--quiet", "-b", branch)
    return commit(path, files)


def commit(path: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "-m", "change")
    return git(path, "rev-parse", "HEAD")


def tar_names(archive: Path) -> set[str]:
    with tarfile.open(archive) as tar:
        return {name.removeprefix("./") for name in tar.getnames()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(git_server: tuple[Path, int]) -> tuple[Path, int]:
    """A `git daemon` on loopback (tests/conftest.py): (its base directory, its port)."""
    return git_server


async def test_fetches_then_refetches_into_the_same_cache(served, tmp_path):
    base, port = served
    first = await asyncio.to_thread(make_repo, base / "app", {"app.py": "1", "lib/x.py": "x"})
    cache, remote = tmp_path / "repos" / "svc", parse_remote(f"git://127.0.0.1:{port}/app")
    lines: list[str] = []

    checkout = await fetch_remote(
        cache, remote, "main", None, tmp_path / "w1", allow_private=True, on_line=lines.append
    )
    assert checkout.commit_sha == first
    assert checkout.archive == tmp_path / "w1" / "source.tar"
    names = await asyncio.to_thread(tar_names, checkout.archive)
    assert {"app.py", "lib/x.py"} <= names
    assert not any(".git" in name for name in names)
    assert any("Receiving objects" in line or "remote:" in line for line in lines)

    assert await asyncio.to_thread((cache / "objects").is_dir)
    await asyncio.to_thread((cache / "marker").write_text, "still here")  # not re-cloned
    second = await asyncio.to_thread(commit, base / "app", {"app.py": "2", "new.py": "n"})
    checkout = await fetch_remote(cache, remote, "main", None, tmp_path / "w2", allow_private=True)
    assert checkout.commit_sha == second != first
    assert "new.py" in await asyncio.to_thread(tar_names, checkout.archive)
    assert await asyncio.to_thread((cache / "marker").exists)


async def test_a_missing_branch_is_a_clear_source_error(served, tmp_path):
    base, port = served
    await asyncio.to_thread(make_repo, base / "app", {"a": "1"})
    remote = parse_remote(f"git://127.0.0.1:{port}/app")
    with pytest.raises(SourceError) as failed:
        await fetch_remote(
            tmp_path / "cache", remote, "nope", None, tmp_path / "w", allow_private=True
        )
    message = failed.value.message
    assert message.startswith(f"could not fetch branch 'nope' from git://127.0.0.1:{port}/app: ")
    assert "couldn't find remote ref" in message


async def test_loopback_remote_is_refused_unless_private_remotes_are_allowed(served, tmp_path):
    _, port = served
    with pytest.raises(ValidationError):
        await fetch_remote(
            tmp_path / "cache",
            parse_remote(f"git://127.0.0.1:{port}/app"),
            "main",
            None,
            tmp_path / "w",
            allow_private=False,
        )
    assert not await asyncio.to_thread((tmp_path / "cache").exists)


async def test_hooks_in_the_cache_never_run(served, tmp_path):
    base, port = served
    await asyncio.to_thread(make_repo, base / "app", {"a": "1"})
    cache, remote = tmp_path / "cache", parse_remote(f"git://127.0.0.1:{port}/app")
    await fetch_remote(cache, remote, "main", None, tmp_path / "w1", allow_private=True)
    marker = tmp_path / "hook-ran"

    def plant_hook() -> None:
        # reference-transaction runs on every ref update, a fetch's included.
        hook = cache / "hooks" / "reference-transaction"
        hook.parent.mkdir(exist_ok=True)
        hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
        hook.chmod(0o755)
        git(cache, "update-ref", "refs/heads/probe", "refs/heads/main")  # plain git runs it
        assert marker.exists()
        marker.unlink()
        commit(base / "app", {"a": "2"})

    await asyncio.to_thread(plant_hook)
    await fetch_remote(cache, remote, "main", None, tmp_path / "w2", allow_private=True)
    assert not await asyncio.to_thread(marker.exists)


async def test_a_token_never_appears_in_the_error(tmp_path):
    # The token is even in the URL's path here, so git's own message would carry it unmasked.
    remote = parse_remote(f"http://127.0.0.1:{free_port()}/{TOKEN}/app.git")
    lines: list[str] = []
    with pytest.raises(SourceError) as failed:
        await fetch_remote(
            tmp_path / "cache",
            remote,
            "main",
            GitAuth(token=TOKEN),
            tmp_path / "w",
            allow_private=True,
            on_line=lines.append,
        )
    assert "********" in failed.value.message
    assert TOKEN not in failed.value.message
    assert not any(TOKEN in line for line in lines)
    assert TOKEN not in repr(GitAuth(token=TOKEN))


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def do_GET(self) -> None:
        RecordingHandler.seen.append(self.headers.get("Authorization"))
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def test_a_token_is_sent_as_a_basic_authorization_header(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        remote = parse_remote(f"http://127.0.0.1:{server.server_address[1]}/app.git")
        with pytest.raises(SourceError) as failed:
            await fetch_remote(
                tmp_path / "cache", remote, "main", GitAuth(token=TOKEN), tmp_path / "w",
                allow_private=True,
            )  # fmt: skip
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert RecordingHandler.seen and RecordingHandler.seen[0] == f"Basic {basic}"
    assert TOKEN not in failed.value.message and basic not in failed.value.message


async def test_a_fetch_past_its_limit_is_killed(tmp_path):
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        remote = parse_remote(f"git://127.0.0.1:{silent.getsockname()[1]}/app")
        started = time.monotonic()
        with pytest.raises(SourceError) as failed:
            await fetch_remote(
                tmp_path / "cache", remote, "main", None, tmp_path / "w",
                allow_private=True, limit=1,
            )  # fmt: skip
    assert failed.value.message == "git fetch timed out after 1 s"
    assert time.monotonic() - started < 10


def git_processes_using(path: Path) -> list[int]:
    """Pids of live processes whose command line names `path` (git runs with GIT_DIR=path,
    and its argv names the cache through -C when GitPython sets the working directory)."""
    found = []
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            environ = (proc_dir / "environ").read_bytes()
            status = (proc_dir / "status").read_text()
        except OSError:
            continue
        if f"GIT_DIR={path}".encode() in environ.split(b"\0") and "State:\tZ" not in status:
            found.append(int(proc_dir.name))
    return found


async def test_a_cancelled_fetch_kills_git_and_drops_the_cache(tmp_path):
    """A cancel during fetching stops git at once (not at its time limit) and leaves no cache
    that a killed git might have left locked."""
    cache = tmp_path / "cache" / "repo.git"
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        remote = parse_remote(f"git://127.0.0.1:{silent.getsockname()[1]}/app")
        fetch = asyncio.create_task(
            fetch_remote(cache, remote, "main", None, tmp_path / "w", allow_private=True, limit=600)
        )
        deadline = time.monotonic() + 30
        while not await asyncio.to_thread(git_processes_using, cache):
            assert time.monotonic() < deadline, "git fetch never started"
            await asyncio.sleep(0.05)
        fetch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fetch
        # When the cancel has gone through, git is gone and so is the cache it was writing.
        assert await asyncio.to_thread(git_processes_using, cache) == []
        assert not await asyncio.to_thread(cache.exists)


@pytest.mark.parametrize("how", ["git-link", "gitdir-file", "alternates"])
async def test_a_local_repository_that_reads_another_is_refused(tmp_path, how):
    """A path that passes the directory check must not make git read another repository
    (a service's clone cache in the data dir, say) through its .git."""
    other = tmp_path / "other"
    await asyncio.to_thread(make_repo, other, {"secret.py": "theirs"})

    def arrange() -> Path:
        app = tmp_path / "app"
        if how == "alternates":
            make_repo(app, {"app.py": "mine"})
            alternates = app / ".git" / "objects" / "info" / "alternates"
            alternates.write_text(str(other / ".git" / "objects") + "\n")
        else:
            app.mkdir()
            if how == "git-link":
                (app / ".git").symlink_to(other / ".git")
            else:
                (app / ".git").write_text(f"gitdir: {other / '.git'}\n")
        return app

    app = await asyncio.to_thread(arrange)
    with pytest.raises(SourceError, match="give"):
        await fetch_local(tmp_path / "cache", app, None, tmp_path / "w")


async def test_fetch_local_reads_a_repository_at_its_head_branch(tmp_path):
    sha = await asyncio.to_thread(make_repo, tmp_path / "src", {"main.go": "package main"}, "trunk")
    checkout = await fetch_local(tmp_path / "cache", tmp_path / "src", None, tmp_path / "w")
    assert checkout.commit_sha == sha
    assert "main.go" in await asyncio.to_thread(tar_names, checkout.archive)


async def test_fetch_local_tars_a_plain_directory_without_git(tmp_path):
    def layout() -> None:
        for name in ["index.html", ".github/workflows/ci.yml", "vendor/lib/.git/config"]:
            (tmp_path / "site" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "site" / name).write_text("x")

    await asyncio.to_thread(layout)
    checkout = await fetch_local(tmp_path / "cache", tmp_path / "site", None, tmp_path / "w")
    assert checkout.commit_sha == ""
    names = await asyncio.to_thread(tar_names, checkout.archive)
    assert {"index.html", ".github/workflows/ci.yml", "vendor/lib"} <= names
    assert not any(".git/" in name or name.endswith("/.git") for name in names)


async def test_fetch_local_of_a_missing_path(tmp_path):
    with pytest.raises(SourceError) as failed:
        await fetch_local(tmp_path / "cache", tmp_path / "gone", None, tmp_path / "w")
    assert failed.value.message.startswith(f"local path {tmp_path / 'gone'} does not exist")
