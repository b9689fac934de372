"""A remote branch's head without fetching it (`git ls-remote`), for auto_deploy "poll"."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from dployr.sources.git import (
    _SHA,
    GitAuth,
    SourceError,
    _environment,
    _in_git_thread,
    _Run,
    _run_git,
    _Stop,
)
from dployr.sources.validate import Remote, check_branch, check_remote_host


async def remote_head(
    cache_dir: Path,
    remote: Remote,
    branch: str,
    auth: GitAuth | None,
    work_dir: Path,
    *,
    allow_private: bool,
    limit: float = 60,
) -> str | None:
    """The commit `branch` of `remote` points at, None when the branch does not exist. Run
    like a fetch (same lockdown, same credential handling), in one of git's threads."""
    check_branch(branch)
    await check_remote_host(remote, allow_private)  # every time: DNS may have changed
    return await _in_git_thread(
        _ls_remote, cache_dir, remote.url, remote.scheme, branch, auth, work_dir, limit
    )


def _ls_remote(
    cache_dir: Path,
    source: str,
    scheme: str,
    branch: str,
    auth: GitAuth | None,
    work: Path,
    timeout: float,
) -> str | None:
    work.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="git-home-", dir=work))  # 0700, holds the deploy key
    try:
        # An empty GIT_DIR: ls-remote needs no repository, and must not discover one.
        git_dir = home / "none.git"
        git_dir.mkdir()
        known_hosts = cache_dir.parent / "known_hosts"  # the one the service's fetches use
        known_hosts.parent.mkdir(parents=True, exist_ok=True)
        env, secrets = _environment(scheme, git_dir, home, auth, known_hosts)
        run = _Run(git_dir, scheme, env, secrets, None, _Stop())
        ref = f"refs/heads/{branch}"
        out = _run_git(run, "ls-remote", ["--", source, ref], timeout, f"could not list {source}")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        if name == ref:
            if not _SHA.match(sha):
                raise SourceError(f"{source} answered {sha!r} for {ref}, not a commit")
            return sha
    return None
