"""The .tar.gz `dployr deploy` uploads: a directory's files less what .gitignore and
.dockerignore leave out (and `.git`, always)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dployr.cli.errors import USAGE, CommandError


@dataclass(frozen=True)
class Rule:
    """One ignore pattern compiled to a regex over `/`-separated relative paths."""

    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def glob_regex(pattern: str) -> str:
    """`**`, `*`, `?` and `[…]` of gitignore and .dockerignore (both use these)."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            body = "^" + body[1:] if body[0] in "!^" else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        elif pattern[i] == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def _lines(text: str) -> list[tuple[str, bool]]:
    """(pattern, negated) of an ignore file: no blanks, comments or trailing spaces."""
    rules = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate or line.startswith(("\\!", "\\#")):  # `\!` and `\#`: the character itself
            line = line[1:]
        rules.append((line, negate))
    return rules


def gitignore_rules(text: str) -> list[Rule]:
    """A .gitignore's rules, relative to its directory: a pattern with no inner `/` matches
    at any depth, a trailing `/` only directories."""
    rules = []
    for line, negate in _lines(text):
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        body = glob_regex(line.lstrip("/"))
        regex = body if anchored else f"(?:.*/)?{body}"
        rules.append(Rule(re.compile(f"^{regex}$", re.DOTALL), negate, dir_only))
    return rules


def dockerignore_rules(text: str) -> list[Rule]:
    """A .dockerignore's rules: every pattern is relative to the directory's root (Docker
    cleans it like a path), and excludes what is under a match too."""
    rules = []
    for line, negate in _lines(text):
        cleaned = os.path.normpath(line.strip().lstrip("/")).replace(os.sep, "/")
        if cleaned in (".", ""):
            continue
        regex = glob_regex(cleaned)
        rules.append(Rule(re.compile(f"^{regex}(?:/.*)?$", re.DOTALL), negate, False))
    return rules


def ignored(rules: list[Rule], path: str, is_dir: bool) -> bool | None:
    """The last rule matching `path` decides: True ignored, False kept (a `!` rule), None no
    rule matches."""
    verdict = None
    for rule in rules:
        if (is_dir or not rule.dir_only) and rule.regex.match(path):
            verdict = not rule.negate
    return verdict


def _git_files(root: Path) -> list[str] | None:
    """What git would keep, when `root` is in a git work tree: tracked files and untracked ones
    no .gitignore (or .git/info/exclude, or the global excludes) leaves out."""
    try:
        done = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None  # not a work tree, or no git at all
    names = [name for name in done.stdout.decode("utf-8", "surrogateescape").split("\0") if name]
    # --cached lists files deleted from the work tree but not from the index: not sent.
    return sorted({n for n in names if os.path.lexists(root / n)})


def walk_files(root: Path) -> list[str]:
    """The files under `root` that its .gitignore files (each for its own subtree) keep."""
    kept: list[str] = []
    stack: list[tuple[str, list[tuple[str, list[Rule]]]]] = [("", [])]
    while stack:
        rel, inherited = stack.pop()
        here = root / rel
        scopes = inherited
        ignore_file = here / ".gitignore"
        if ignore_file.is_file():
            scopes = [*inherited, (rel, gitignore_rules(ignore_file.read_text(errors="replace")))]
        with os.scandir(here) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                path = f"{rel}/{entry.name}" if rel else entry.name
                is_dir = entry.is_dir(follow_symlinks=False)
                if entry.name == ".git" or _ignored_by(scopes, path, is_dir):
                    continue
                if is_dir:
                    stack.append((path, scopes))
                else:
                    kept.append(path)
    return sorted(kept)


def _ignored_by(scopes: list[tuple[str, list[Rule]]], path: str, is_dir: bool) -> bool:
    verdict = False
    for base, rules in scopes:  # outer files first: a deeper .gitignore overrides
        inner = path[len(base) + 1 :] if base else path
        if (found := ignored(rules, inner, is_dir)) is not None:
            verdict = found
    return verdict


@dataclass
class Archive:
    path: Path
    files: int = 0
    bytes: int = 0  # of the files, before compression
    skipped: list[str] = field(default_factory=list)  # sockets, fifos, devices

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def select_files(root: Path) -> list[str]:
    """The relative paths `dployr deploy` sends from `root`."""
    names = _git_files(root)
    if names is None:
        names = walk_files(root)
    dockerignore = root / ".dockerignore"
    if dockerignore.is_file():
        rules = dockerignore_rules(dockerignore.read_text(errors="replace"))
        names = [n for n in names if not ignored(rules, n, False)]
    return [n for n in names if ".git" not in n.split("/")]


class LinkOutside(CommandError):
    def __init__(self, message: str) -> None:
        super().__init__(
            message + ": the daemon refuses it; remove it or list it in .dockerignore", USAGE
        )


def build(root: Path) -> Archive:
    """Write the .tar.gz to a temp file (the caller removes it). A link that leaves the directory
    stops it with a message: the daemon refuses such an archive."""
    root = root.resolve()
    names = select_files(root)
    fd, temp = tempfile.mkstemp(prefix="dployr-upload.", suffix=".tar.gz")
    os.close(fd)
    archive = Archive(Path(temp))
    try:
        with tarfile.open(temp, "w:gz", compresslevel=6) as tar:
            dirs: set[str] = set()
            for name in names:
                _add(tar, root, name, dirs, archive)
    except BaseException:
        archive.path.unlink(missing_ok=True)
        raise
    return archive


def _add(tar: tarfile.TarFile, root: Path, name: str, dirs: set[str], archive: Archive) -> None:
    path = root / name
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        link = path.readlink()
        if not (path.parent / link).resolve().is_relative_to(root):
            raise LinkOutside(f"{name} is a link to {link}, outside the directory")
    elif not stat.S_ISREG(mode):
        archive.skipped.append(name)
        return
    parts = name.split("/")
    for depth in range(1, len(parts)):  # the parents first, each once
        parent = "/".join(parts[:depth])
        if parent not in dirs:
            dirs.add(parent)
            tar.addfile(_clean(tar.gettarinfo(root / parent, parent)))
    info = _clean(tar.gettarinfo(path, name))
    if info.isreg():
        with path.open("rb") as data:
            tar.addfile(info, data)
        archive.bytes += info.size
    else:
        tar.addfile(info)
    archive.files += 1


def _clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """No owner names or ids of this laptop in the archive."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
