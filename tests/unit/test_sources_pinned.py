"""A pinned commit (a push hook's): exactly that commit is fetched and archived, over the git
protocol and from a local repository, whether or not the branch has moved past it."""

import asyncio
import tarfile
from pathlib import Path

import pytest

from dployr.sources.git import SourceError, fetch_local, fetch_remote
from dployr.sources.validate import parse_remote
from tests.unit.test_sources_git import commit, make_repo


def read_member(archive: Path, name: str) -> str:
    with tarfile.open(archive) as tar:
        member = tar.extractfile(name)  # git archive writes names without ./
        assert member is not None
        return member.read().decode()


async def test_a_pinned_commit_behind_the_branch_head_is_the_one_built(git_server, tmp_path):
    base, port = git_server
    first = await asyncio.to_thread(make_repo, base / "app", {"app.py": "one"})
    second = await asyncio.to_thread(commit, base / "app", {"app.py": "two"})
    cache, remote = tmp_path / "cache", parse_remote(f"git://127.0.0.1:{port}/app")

    checkout = await fetch_remote(
        cache, remote, "main", None, tmp_path / "w1", allow_private=True, commit=first
    )
    assert checkout.commit_sha == first != second
    assert await asyncio.to_thread(read_member, checkout.archive, "app.py") == "one"

    # The head itself, pinned: one fetch, the head's tree.
    checkout = await fetch_remote(
        cache, remote, "main", None, tmp_path / "w2", allow_private=True, commit=second
    )
    assert checkout.commit_sha == second
    assert await asyncio.to_thread(read_member, checkout.archive, "app.py") == "two"


async def test_a_pinned_commit_the_remote_does_not_have_is_a_source_error(git_server, tmp_path):
    base, port = git_server
    await asyncio.to_thread(make_repo, base / "app", {"app.py": "one"})
    remote = parse_remote(f"git://127.0.0.1:{port}/app")
    missing = "ab" * 20
    with pytest.raises(SourceError) as failed:
        await fetch_remote(
            tmp_path / "c", remote, "main", None, tmp_path / "w", allow_private=True, commit=missing
        )
    assert failed.value.message.startswith(f"could not fetch commit {missing}")


@pytest.mark.parametrize("bad", ["ABCD" * 10, "abc", "-" + "a" * 39, "a" * 41, "HEAD"])
async def test_a_pinned_commit_must_be_a_lowercase_full_sha(git_server, tmp_path, bad):
    base, port = git_server
    await asyncio.to_thread(make_repo, base / "app", {"app.py": "one"})
    remote = parse_remote(f"git://127.0.0.1:{port}/app")
    with pytest.raises(SourceError, match="40 or 64 digit"):
        await fetch_remote(
            tmp_path / "c", remote, "main", None, tmp_path / "w", allow_private=True, commit=bad
        )


async def test_a_local_repository_builds_the_pinned_commit(tmp_path):
    first = await asyncio.to_thread(make_repo, tmp_path / "src", {"app.py": "one"})
    await asyncio.to_thread(commit, tmp_path / "src", {"app.py": "two"})
    checkout = await fetch_local(
        tmp_path / "cache", tmp_path / "src", "main", tmp_path / "w", commit=first
    )
    assert checkout.commit_sha == first
    assert await asyncio.to_thread(read_member, checkout.archive, "app.py") == "one"


async def test_a_plain_directory_cannot_build_a_pinned_commit(tmp_path):
    await asyncio.to_thread((tmp_path / "dir").mkdir)
    with pytest.raises(SourceError, match="not a git repository"):
        await fetch_local(
            tmp_path / "cache", tmp_path / "dir", None, tmp_path / "w", commit="a" * 40
        )
