"""Unpacking a source tar into a release dir, refusing members that would reach outside it."""

from __future__ import annotations

import posixpath
import tarfile
from pathlib import Path

from dployr.runtime.protocol import RuntimeFailure


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why `member` may not be unpacked (None: it may): absolute paths, `..`, links that leave
    the tree, devices and FIFOs."""
    name = member.name
    if name.startswith("/") or posixpath.isabs(name):
        return f"{name}: an absolute path"
    if ".." in name.split("/"):
        return f"{name}: a path with '..'"
    if member.ischr() or member.isblk() or member.isfifo():
        return f"{name}: a device or FIFO"
    if member.issym() or member.islnk():
        link = member.linkname
        if posixpath.isabs(link):
            return f"{name}: a link to an absolute path"
        # A symlink is read from its own directory, a hard link from the archive's root.
        base = posixpath.dirname(name) if member.issym() else ""
        target = posixpath.normpath(posixpath.join(base, link))
        if target == ".." or target.startswith("../"):
            return f"{name}: a link that leaves the tree"
    elif not (member.isfile() or member.isdir()):
        return f"{name}: an unsupported member type"
    return None


def through_link(member: tarfile.TarInfo, links: set[str]) -> str | None:
    """A member placed inside an earlier link (`s -> .` then `s/up -> ../x`) would land where
    the lexical checks above do not look; git never stores one. `links` collects the links."""
    name = posixpath.normpath(member.name)
    parts = name.split("/")
    if any("/".join(parts[:i]) in links for i in range(1, len(parts))):
        return f"{member.name}: a member inside a link"
    if member.issym() or member.islnk():
        links.add(name)
    return None


def extract_source(archive: Path, dest: Path) -> None:
    """Blocking: unpack `archive` into `dest` (which exists), or refuse it whole before a file
    is written. Python's `data` filter checks again as it writes (a symlink placed earlier
    in the archive cannot redirect a later member)."""
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            links: set[str] = set()
            for member in members:
                problem = member_problem(member) or through_link(member, links)
                if problem is not None:
                    raise RuntimeFailure(f"the source archive is refused: {problem}")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=members, filter="data")
            else:  # before 3.11.4 (Debian 12's python3 is 3.11.2): the checks above suffice
                tar.extractall(dest, members=members)  # noqa: S202 - every member checked
    except (tarfile.TarError, OSError) as err:
        raise RuntimeFailure(f"the source archive cannot be unpacked: {err}") from err
