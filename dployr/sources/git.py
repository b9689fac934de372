"""Fetching with GitPython into a service's cached bare repository, then `git archive` of it.

Every git run is locked down: only the remote's own protocol, no hooks, no symlinks, no
submodules, no redirects, no prompts, no system or user config, `--` before positional
arguments, and a credential only through the environment (never argv, never a URL)."""

from __future__ import annotations

import asyncio
import base64
import collections
import concurrent.futures
import contextlib
import contextvars
import functools
import logging
import os
import re
import shlex
import shutil
import signal
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dployr.crypto import mask_secrets
from dployr.errors import DployrError
from dployr.sources.validate import Remote, check_branch, check_remote_host
from dployr.tasks import undone_on_cancel

_LOGGER = logging.getLogger(__name__)
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?\Z")
_LINE_BREAK = re.compile(rb"[\r\n]")
# git's advice after "Could not read from remote repository": it would push the cause out.
_BOILERPLATE = {"Please make sure you have the correct access rights", "and the repository exists."}
LineSink = Callable[[str], None]
T = TypeVar("T")
# Fetches at once: a small VPS's link and disk gain nothing from more. The deployer runs one
# deployment a service at a time, so this bounds git across services (and fetches a cancel
# left running until git is killed).
GIT_THREADS = 4
_POOL: concurrent.futures.ThreadPoolExecutor | None = None


class SourceError(DployrError):
    """The source could not be fetched; the message is safe to show (secrets masked)."""

    # The request was well formed but its source cannot be used (422, SPEC §1).
    status = 422
    code = "validation_error"
    default_message = "The source could not be fetched"


@dataclass(frozen=True)
class GitAuth:
    token: str | None = field(default=None, repr=False)
    deploy_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Checkout:
    commit_sha: str  # "" for a plain directory
    archive: Path  # a tar of the tree at that commit, with no .git


@dataclass(frozen=True)
class _Run:
    """What every git command of one fetch shares."""

    git_dir: Path
    scheme: str
    env: dict[str, str]
    secrets: list[str]
    on_line: LineSink | None
    stop: _Stop


class _Stop:
    """Stops the git runs of one fetch from the event loop (its deployment was cancelled):
    the running git is killed with its children, and no further git starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self.started = False
        self.stopped = False

    def begin(self) -> bool:
        """In the git thread, first: False when the fetch was stopped before it started."""
        with self._lock:
            self.started = not self.stopped
            return self.started

    def running(self, pid: int | None) -> None:
        with self._lock:
            self._pid = pid
            if pid is not None and self.stopped:
                _kill_group(pid)

    def stop(self) -> bool:
        """Stop the fetch; True when it had started (its thread is still to be waited for)."""
        with self._lock:
            self.stopped = True
            if self._pid is not None:
                _kill_group(self._pid)
            return self.started


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # git and its ssh or remote-http helpers


def _locked_config(scheme: str) -> list[str]:
    return [
        "-c", "core.hooksPath=/dev/null",  # a hook in the cache could run as the daemon
        "-c", "core.symlinks=false",
        "-c", "protocol.allow=never",
        "-c", f"protocol.{scheme}.allow=always",
        "-c", "http.followRedirects=false",  # a redirect would skip the address check
        "-c", "fetch.recurseSubmodules=false",
        "-c", "credential.helper=",
    ]  # fmt: skip


def _environment(
    scheme: str, git_dir: Path, home: Path, auth: GitAuth | None, known_hosts: Path
) -> tuple[dict[str, str], list[str]]:
    """The environment for git (GitPython adds it over the daemon's own) and the secrets in it."""
    env = {
        "GIT_DIR": str(git_dir),  # no repository discovery from the working directory
        "HOME": str(home),  # an empty home: no ~/.gitconfig, ~/.ssh, ~/.netrc
        "GIT_ALLOW_PROTOCOL": scheme,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }
    ssh = [
        "ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30",
        "-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={known_hosts}",
    ]  # fmt: skip
    secrets: list[str] = []
    if auth and auth.deploy_key:
        key_file = home / "deploy_key"  # home is a fresh 0700 directory
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(auth.deploy_key.strip() + "\n")  # OpenSSH wants the final newline
        ssh += ["-i", str(key_file), "-o", "IdentitiesOnly=yes"]
        secrets.append(auth.deploy_key.strip())
    env["GIT_SSH_COMMAND"] = shlex.join(ssh)  # git runs it through a shell
    if auth and auth.token:
        basic = base64.b64encode(f"x-access-token:{auth.token}".encode()).decode()
        # GIT_CONFIG_* (git >= 2.31) keeps the header out of argv, where `ps` would show it.
        env |= {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        }
        secrets += [auth.token, basic]
    return env, secrets


def _run_git(run: _Run, command: str, args: list[str], timeout: float, failure: str) -> str:
    """Run `git <command> <args>` through GitPython in its own process group, killed with its
    children after `timeout` s. Stderr is streamed, masked, to `run.on_line`; stdout (small for
    every command used here, so reading it after stderr cannot stall) is returned."""
    import git  # here, in a worker thread: an idle daemon does not hold GitPython (~2 MB)

    argv = ["git", *_locked_config(run.scheme), command, *args]
    if run.stop.stopped:
        raise SourceError("the fetch was cancelled")
    try:
        handle = git.Git(str(run.git_dir)).execute(
            argv, env=run.env, as_process=True, start_new_session=True
        )
    except git.GitCommandNotFound as err:
        raise SourceError("git is not installed on this host") from err
    proc = handle.proc
    assert proc is not None
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        _kill_group(proc.pid)

    watchdog = threading.Timer(timeout, kill)
    watchdog.start()
    run.stop.running(proc.pid)
    try:
        tail = _stream_lines(proc.stderr.fileno(), run) if proc.stderr else []
        out = proc.stdout.read() if proc.stdout else b""
        status = proc.wait()
    finally:
        run.stop.running(None)
        watchdog.cancel()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
    if run.stop.stopped:
        raise SourceError("the fetch was cancelled")
    if timed_out.is_set():
        raise SourceError(f"git {command} timed out after {timeout:g} s")
    if status != 0:
        useful = [line for line in tail if line not in _BOILERPLATE]
        detail = " / ".join(useful[-3:]) or f"git exited with status {status}"
        raise SourceError(mask_secrets(f"{failure}: {detail}", run.secrets))
    return bytes(out).decode("utf-8", "replace").strip()


def _stream_lines(fd: int, run: _Run) -> list[str]:
    """Pass git's stderr lines to on_line as they come; return the last whole lines for errors.
    Progress redraws end in `\\r`: at most one a second of those is passed on."""
    tail: collections.deque[str] = collections.deque(maxlen=10)
    pending, last_progress = b"", 0.0
    while chunk := os.read(fd, 65536):
        pending += chunk
        while match := _LINE_BREAK.search(pending):
            raw, pending = pending[: match.start()], pending[match.end() :]
            line = mask_secrets(raw.decode("utf-8", "replace").strip(), run.secrets)
            if not line:
                continue
            if match.group() == b"\n":
                tail.append(line)
            elif time.monotonic() - last_progress < 1:
                continue
            else:
                last_progress = time.monotonic()
            if run.on_line:
                run.on_line(line)
    if line := mask_secrets(pending.decode("utf-8", "replace").strip(), run.secrets):
        tail.append(line)
        if run.on_line:
            run.on_line(line)
    return list(tail)


def _fetch_and_archive(
    cache: Path,
    source: str,
    scheme: str,
    branch: str,
    auth: GitAuth | None,
    work: Path,
    timeout: float,
    on_line: LineSink | None,
    stop: _Stop,
    commit: str | None = None,
) -> Checkout:
    """Blocking: fetch `branch` of `source` into the cache (made on first use), archive its
    head, or `commit` when one is pinned (a push hook's): then exactly that commit is built."""
    check_branch(branch)  # it goes into a refspec; a local repository's HEAD was never checked
    if commit is not None and not _SHA.match(commit):
        raise SourceError(f"commit {commit!r} is not a 40 or 64 digit lowercase hex SHA")
    work.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="git-home-", dir=work))  # 0700, holds the deploy key
    try:
        env, secrets = _environment(scheme, cache, home, auth, cache.parent / "known_hosts")
        run = _Run(cache, scheme, env, secrets, on_line, stop)
        if not (cache / "HEAD").is_file():
            # --template= : no sample hooks or other files copied from the system's templates.
            _run_git(
                run, "init", ["--quiet", "--bare", "--template="], 60, "could not make the cache"
            )
        ref = f"refs/heads/{branch}"
        _run_git(
            run,
            "fetch",
            ["--no-tags", "--depth=1", "--no-recurse-submodules", "--progress",
             "--", source, f"+{ref}:{ref}"],
            timeout,
            f"could not fetch branch {branch!r} from {source}",
        )  # fmt: skip
        sha = _run_git(
            run,
            "rev-parse",
            ["--verify", "--end-of-options", f"{ref}^{{commit}}"],
            60,
            f"branch {branch!r} did not resolve to a commit",
        )
        if not _SHA.match(sha):
            raise SourceError(f"branch {branch!r} did not resolve to a commit")
        if commit is not None and commit != sha:
            sha = _fetch_commit(run, source, commit, timeout)
        archive = work / "source.tar"
        _run_git(
            run,
            "archive",
            ["--format=tar", "-o", str(archive), "--end-of-options", sha],
            timeout,
            f"could not archive commit {sha}",
        )
        _LOGGER.info("fetched %s of %s at %s", branch, source, sha)
        return Checkout(sha, archive)
    finally:
        shutil.rmtree(home, ignore_errors=True)  # the deploy key goes with it


def _fetch_commit(run: _Run, source: str, commit: str, timeout: float) -> str:
    """Fetch one commit by its SHA (the branch has moved past it, or not yet reached it in
    this cache). Protocol v2 servers (GitHub, GitLab, git >= 2.18) serve any commit they have."""
    pinned = "refs/dployr/pinned"
    _run_git(
        run,
        "fetch",
        ["--no-tags", "--depth=1", "--no-recurse-submodules", "--progress",
         "--", source, f"+{commit}:{pinned}"],
        timeout,
        f"could not fetch commit {commit} from {source}",
    )  # fmt: skip
    sha = _run_git(
        run,
        "rev-parse",
        ["--verify", "--end-of-options", f"{pinned}^{{commit}}"],
        60,
        f"{commit} is not a commit",
    )
    if sha != commit:
        raise SourceError(f"{commit} is not a commit")
    return sha


async def fetch_remote(
    cache_dir: Path,
    remote: Remote,
    branch: str,
    auth: GitAuth | None,
    work_dir: Path,
    *,
    allow_private: bool,
    limit: float = 600,
    on_line: LineSink | None = None,
    commit: str | None = None,
) -> Checkout:
    """Fetch `branch` into the service's cached bare repository and archive its head (or
    `commit`, when pinned).
    `on_line` receives git's progress and error lines, masked, from a worker thread; git is
    killed after `limit` seconds (a thread cannot be cancelled, so asyncio.timeout would not)."""
    await check_remote_host(remote, allow_private)  # DNS may have changed since the request
    stop = _Stop()
    return await _stoppable(
        stop,
        cache_dir,
        _fetch_and_archive,
        cache_dir, remote.url, remote.scheme, branch, auth, work_dir, limit, on_line, stop,
        commit,
    )  # fmt: skip


def _git_pool() -> concurrent.futures.ThreadPoolExecutor:
    """Git's own threads, made on first use: a slow remote holds one of these, never one of
    the default pool's (bcrypt, DNS and Docker SDK calls). More fetches wait for a thread."""
    global _POOL
    if _POOL is None:
        _POOL = concurrent.futures.ThreadPoolExecutor(GIT_THREADS, thread_name_prefix="git")
    return _POOL


async def _in_git_thread(fn: Callable[..., T], *args: Any) -> T:
    # A cancel while the call still waits for a thread drops it; a running one goes on.
    call = functools.partial(contextvars.copy_context().run, fn, *args)
    return await asyncio.get_running_loop().run_in_executor(_git_pool(), call)


async def _stoppable(
    stop: _Stop, cache_dir: Path, fetch: Callable[..., Checkout], *args: object
) -> Checkout:
    """Run a blocking fetch in a worker thread. A cancel kills git and waits for the thread
    to end before it goes on, so nothing of the fetch outlives its deployment; the cache git
    was writing is dropped (a killed git can leave it locked) and the next fetch makes it anew."""
    return await undone_on_cancel(
        _in_git_thread(_unless_stopped, stop, fetch, *args),
        lambda work: _stop_and_drop_cache(stop, work, cache_dir),
    )


def _unless_stopped(stop: _Stop, fetch: Callable[..., Checkout], *args: object) -> Checkout:
    if not stop.begin():
        raise SourceError("the fetch was cancelled before it started")
    return fetch(*args)


async def _stop_and_drop_cache(
    stop: _Stop, work: asyncio.Future[Checkout], cache_dir: Path
) -> None:
    if not stop.stop():  # still waiting for a git thread: when it gets one, it ends at once
        work.add_done_callback(lambda done: done.cancelled() or done.exception())
        return
    await asyncio.wait({work})  # the killed git ends its thread; then the cache goes
    if not work.cancelled() and work.exception() is not None:
        _LOGGER.info("a cancelled fetch ended with: %s", work.exception())
    await asyncio.to_thread(shutil.rmtree, cache_dir, True)


def _is_repository(path: Path) -> bool:
    bare = (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()
    return bare or (path / ".git").exists()


def _check_self_contained(path: Path) -> None:
    """A local repository's objects must all be inside it: a `.git` that is a link or a
    `gitdir:` file, a linked worktree, or alternates could make git read another repository
    (such as a service's clone cache in the data dir) past the path check."""
    git_dir = path / ".git" if (path / ".git").exists() or (path / ".git").is_symlink() else path
    if git_dir.is_symlink() or (git_dir != path and not git_dir.is_dir()):
        raise SourceError(f"{path}/.git is a link or a gitdir file; give the repository itself")
    for name in ("commondir", "objects/info/alternates", "objects/info/http-alternates"):
        if (git_dir / name).exists():
            raise SourceError(f"{path} borrows objects from elsewhere ({name}); give a plain clone")


def _head_branch(path: Path) -> str:
    """The branch a local repository's HEAD names (GitPython reads the file; no git runs).
    Blocking, in a worker thread, which also imports GitPython (see _run_git)."""
    import git

    try:
        with git.Repo(str(path)) as repo:
            return str(repo.active_branch.name)
    except TypeError:
        raise SourceError(f"{path} has a detached HEAD; name a branch") from None
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, OSError) as err:
        raise SourceError(f"{path} is not a readable git repository") from err


def _tar_directory(path: Path, archive: Path, stop: _Stop) -> None:
    """A plain directory as a tar, without any .git (symlinks stay links, never followed).
    A cancel stops it between two files."""

    def without_git(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if stop.stopped:
            raise SourceError("the read was cancelled")
        return None if ".git" in Path(info.name).parts else info

    try:
        with tarfile.open(archive, "w") as tar:
            tar.add(path, arcname=".", filter=without_git)
    except OSError as err:
        raise SourceError(f"could not read {path}: {err.strerror or err}") from err


def _read_local(
    cache: Path,
    path: Path,
    branch: str | None,
    work: Path,
    timeout: float,
    on_line: LineSink | None,
    stop: _Stop,
    commit: str | None = None,
) -> Checkout:
    if not path.is_dir():
        raise SourceError(f"local path {path} does not exist or is not a directory")
    if _is_repository(path):
        _check_self_contained(path)
        branch = branch or _head_branch(path)
        return _fetch_and_archive(
            cache, str(path), "file", branch, None, work, timeout, on_line, stop, commit
        )
    if commit is not None:
        raise SourceError(f"{path} is not a git repository: commit {commit} cannot be built")
    work.mkdir(parents=True, exist_ok=True)
    archive = work / "source.tar"
    _tar_directory(path, archive, stop)
    return Checkout("", archive)


async def fetch_local(
    cache_dir: Path,
    path: Path,
    branch: str | None,
    work_dir: Path,
    *,
    limit: float = 600,
    on_line: LineSink | None = None,
    commit: str | None = None,
) -> Checkout:
    """A git repository on this host is fetched like a remote (protocol `file`; `branch`
    defaults to its HEAD); a plain directory is tarred as it is, with commit_sha ""."""
    stop = _Stop()
    return await _stoppable(
        stop, cache_dir, _read_local, cache_dir, path, branch, work_dir, limit, on_line, stop,
        commit,
    )  # fmt: skip
