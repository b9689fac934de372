"""Unpacking a source tar into a release dir, refusing members that would reach outside it."""

from __future__ import annotations

import os
import posixpath
import tarfile
from pathlib import Path

from dployr.runtime.protocol import RuntimeFailure

# Linux's PATH_MAX and NAME_MAX: no file a checkout holds is longer, and every check below stays
# cheap however the archive was made (a pax header may name a member with a megabyte).
PATH_MAX = 4096
NAME_MAX = 255


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why `member` may not be unpacked (None: it may): absolute paths, `..`, links that leave
    the tree, devices and FIFOs."""
    name = member.name
    if (long := _too_long(name)) is not None:
        return f"{name[:100]}...: {long}"
    if name.startswith("/") or posixpath.isabs(name):
        return f"{name}: an absolute path"
    if ".." in name.split("/"):
        return f"{name}: a path with '..'"
    if member.ischr() or member.isblk() or member.isfifo():
        return f"{name}: a device or FIFO"
    if member.issym() or member.islnk():
        link = member.linkname
        if (long := _too_long(link)) is not None:
            return f"{name}: a link target {long}"
        if posixpath.isabs(link):
            return f"{name}: a link to an absolute path"
        # A symlink is read from its own directory, a hard link from the archive's root.
        base = posixpath.dirname(name) if member.issym() else ""
        target = posixpath.normpath(posixpath.join(base, link))
        if target == ".." or target.startswith("../"):
            return f"{name}: a link that leaves the tree"
        if _climbs_back(link):
            # `b -> a/..` reads as `.`, but through a link `a -> .` (before or after it in
            # the archive) it is the parent of the tree: a target may climb out of the
            # link's own directory, never out of a name it gave itself.
            return f"{name}: a link target with '..' after a name"
    elif not (member.isfile() or member.isdir()):
        return f"{name}: an unsupported member type"
    return None


def _climbs_back(link: str) -> bool:
    steps = [step for step in link.split("/") if step not in ("", ".")]
    named = next((i for i, step in enumerate(steps) if step != ".."), len(steps))
    return ".." in steps[named:]


def _too_long(path: str) -> str | None:
    encoded = path.encode("utf-8", "surrogateescape")
    if len(encoded) > PATH_MAX:
        return f"a path over {PATH_MAX} bytes"
    if any(len(part) > NAME_MAX for part in encoded.split(b"/")):
        return f"a path component over {NAME_MAX} bytes"
    return None


class _Node:
    __slots__ = ("children", "link")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.link = False


class Links:
    """The links seen so far, as a tree of path components: asking whether a path goes
    through one costs one step per component (never a rebuilt prefix per component)."""

    def __init__(self) -> None:
        self._root = _Node()

    def add(self, parts: list[str]) -> None:
        node = self._root
        for part in parts:
            node = node.children.setdefault(part, _Node())
        node.link = True

    def through(self, parts: list[str]) -> bool:
        """Whether a proper prefix of `parts` is a link."""
        node: _Node | None = self._root
        for part in parts[:-1]:
            node = node.children.get(part) if node is not None else None
            if node is None:
                return False
            if node.link:
                return True
        return False


def through_link(member: tarfile.TarInfo, links: Links) -> str | None:
    """A member placed inside an earlier link (`s -> .` then `s/up -> ../x`) would land where
    the lexical checks above do not look; git never stores one. `links` collects the links."""
    parts = posixpath.normpath(member.name).split("/")
    if links.through(parts):
        return f"{member.name}: a member inside a link"
    if member.issym() or member.islnk():
        links.add(parts)
    return None


def extract_source(archive: Path, dest: Path) -> None:
    """Blocking: unpack `archive` into `dest` (which exists), or refuse it whole before a file
    is written. Python's `data` filter checks again as it writes (a symlink placed earlier
    in the archive cannot redirect a later member); where Python has none, the same check
    of the disk is made here."""
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            links = Links()
            for member in members:
                problem = member_problem(member) or through_link(member, links)
                if problem is not None:
                    raise RuntimeFailure(f"the source archive is refused: {problem}")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=members, filter="data")
            else:  # before 3.11.4 (Debian 12's python3 is 3.11.2)
                _extract_checked(tar, members, dest)
    except (tarfile.TarError, OSError) as err:
        raise RuntimeFailure(f"the source archive cannot be unpacked: {err}") from err


def _extract_checked(tar: tarfile.TarFile, members: list[tarfile.TarInfo], dest: Path) -> None:
    """What the `data` filter checks as it writes, for Pythons without it: each member, and a
    link's target, resolved on disk as it is now, stays inside `dest`."""
    root = os.path.realpath(dest)

    def inside(path: str) -> bool:
        return os.path.commonpath([root, os.path.realpath(path)]) == root

    for member in members:
        path = posixpath.join(root, member.name)
        target = None
        if member.issym():
            target = posixpath.join(posixpath.dirname(path), member.linkname)
        elif member.islnk():
            target = posixpath.join(root, member.linkname)
        if not inside(path) or (target is not None and not inside(target)):
            raise RuntimeFailure(f"the source archive is refused: {member.name}: outside the tree")
        member.mode &= 0o755  # as the filter does: no setuid, setgid or sticky bit
        tar.extract(member, root, set_attrs=not member.issym())
