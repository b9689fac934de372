"""The backup archive: a tar.gz of a manifest, an online copy of the database and the key files."""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import tarfile
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from dployr import __version__
from dployr.ids import now_iso
from dployr.store.db import backup as copy_database

FORMAT = "dployr-backup"
FORMAT_VERSION = 1
MANIFEST = "dployr-backup.json"  # always the first member
DB_NAME = "dployr.db"
AGENT_ID = "agent_id"
SECRETS = "secrets"
# What a file in secrets/ may be called (no dot first, no slash): the only names an archive may
# hold besides the manifest, the database and agent_id.
_KEY_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
_AGENT_ID = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
_SHA256 = re.compile(r"\A[0-9a-f]{64}\Z")
MANIFEST_MAX = 64 * 1024
KEY_MAX = 64 * 1024  # the keys dployr makes are 64 bytes
AGENT_ID_MAX = 256
SECRETS_MAX = 32
DB_MAX = 1 << 40  # and never more than the free space where it is unpacked
CHUNK = 1 << 20


class BackupError(Exception):
    """A backup or a restore was refused or failed; the message says why and what to do."""


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    dployr_version: str
    created_at: str
    schema_version: int
    agent_id: str | None
    members: tuple[Member, ...]

    def to_json(self) -> bytes:
        body = {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}
        return json.dumps(body, indent=2).encode("utf-8") + b"\n"

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            body = json.loads(raw)
        except ValueError:
            raise BackupError(f"{MANIFEST} is not JSON: the archive is damaged") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise BackupError(f"{MANIFEST} is not a dployr backup manifest")
        version = body.get("format_version")
        if version != FORMAT_VERSION:
            raise BackupError(
                f"the archive is in format {version!r}; this dployr reads format "
                f"{FORMAT_VERSION}: restore it with the dployr that made it or a newer one"
            )
        try:
            agent_id = body["agent_id"]
            manifest = cls(
                dployr_version=_typed(body["dployr_version"], str),
                created_at=_typed(body["created_at"], str),
                schema_version=_typed(body["schema_version"], int),
                agent_id=None if agent_id is None else _typed(agent_id, str),
                members=tuple(
                    Member(_typed(m["name"], str), _typed(m["size"], int), _typed(m["sha256"], str))
                    for m in _typed(body["members"], list)
                ),
            )
        except (KeyError, TypeError):
            raise BackupError(f"{MANIFEST} lacks a field or has one of the wrong type") from None
        manifest.check()
        return manifest

    def check(self) -> None:
        """Every member a name, a size and a checksum an archive may have."""
        names = [m.name for m in self.members]
        if DB_NAME not in names:
            raise BackupError(f"{MANIFEST} lists no {DB_NAME}")
        if len(set(names)) != len(names):
            raise BackupError(f"{MANIFEST} lists a member twice")
        if sum(n.startswith(f"{SECRETS}/") for n in names) > SECRETS_MAX:
            raise BackupError(f"{MANIFEST} lists more than {SECRETS_MAX} key files")
        if self.agent_id is not None and not _AGENT_ID.match(self.agent_id):
            raise BackupError(f"{MANIFEST} has a malformed agent_id")
        for member in self.members:
            limit = member_limit(member.name)
            if limit is None:
                raise BackupError(f"{MANIFEST} lists {member.name!r}, which no backup holds")
            if not 0 <= member.size <= limit:
                raise BackupError(f"{member.name} is {member.size} bytes; at most {limit} may be")
            if not _SHA256.match(member.sha256):
                raise BackupError(f"{MANIFEST} has a malformed checksum for {member.name}")


def _typed(value: Any, kind: type) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError
    return value


def member_limit(name: str) -> int | None:
    """The largest size a member may have; None for a name no archive may hold."""
    if name == DB_NAME:
        return DB_MAX
    if name == AGENT_ID:
        return AGENT_ID_MAX
    folder, _, file = name.partition("/")
    if folder == SECRETS and _KEY_NAME.match(file):
        return KEY_MAX
    return None


@dataclass(frozen=True)
class Written:
    path: Path
    size: int
    manifest: Manifest
    skipped: tuple[str, ...]  # entries of secrets/ left out: not regular files, or too large


def write_archive(data_path: Path, target: Path, *, force: bool = False) -> Written:
    """One archive at `target`, 0600 from its first byte, published only once complete."""
    db = data_path / DB_NAME
    if not db.is_file():
        raise BackupError(f"no database at {db}; is server.data_dir right?")
    if target.exists() and not force:
        raise BackupError(f"{target} exists; pass --force to replace it")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} is not a directory")
    keys, skipped = _key_files(data_path / SECRETS)
    extras = dict(keys)
    agent_id = _read_agent_id(data_path / AGENT_ID)
    if agent_id is not None:
        extras[AGENT_ID] = (agent_id + "\n").encode("ascii")
    # A 0700 directory of our own beside the target: the database copy is never readable by
    # others, and the finished archive is renamed (or linked) into place on the same filesystem.
    staging = Path(tempfile.mkdtemp(prefix=".dployr-backup-", dir=target.parent))
    try:
        staged_db = staging / DB_NAME
        copy_database(db, staged_db)  # the online backup API: consistent while the daemon runs
        members = [Member(DB_NAME, *_digest_file(staged_db))]
        members += [Member(n, len(b), hashlib.sha256(b).hexdigest()) for n, b in extras.items()]
        manifest = Manifest(
            __version__, now_iso(), schema_version(staged_db), agent_id, tuple(members)
        )
        partial = staging / "archive.partial"
        _write_tar(partial, manifest, staged_db, extras)
        _publish(partial, target, force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Written(target, target.stat().st_size, manifest, tuple(skipped))


def _key_files(folder: Path) -> tuple[list[tuple[str, bytes]], list[str]]:
    keys: list[tuple[str, bytes]] = []
    skipped: list[str] = []
    if not folder.is_dir():
        return keys, skipped
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        size = entry.stat(follow_symlinks=False).st_size
        if entry.is_file(follow_symlinks=False) and _KEY_NAME.match(entry.name) and size <= KEY_MAX:
            keys.append((f"{SECRETS}/{entry.name}", Path(entry.path).read_bytes()))
        else:
            skipped.append(f"{SECRETS}/{entry.name}")
    if len(keys) > SECRETS_MAX:
        raise BackupError(f"{folder} holds more than {SECRETS_MAX} key files")
    return keys, skipped


def _read_agent_id(path: Path) -> str | None:
    try:
        agent_id = path.read_text("ascii").strip()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise BackupError(f"{path} is not an agent id") from None
    if not _AGENT_ID.match(agent_id):
        raise BackupError(f"{path} is not an agent id")
    return agent_id


def _digest_file(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def schema_version(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    except sqlite3.Error as err:
        raise BackupError(f"{db.name} is not a dployr database: {err}") from None
    finally:
        conn.close()
    return int(row[0] or 0)


def _write_tar(path: Path, manifest: Manifest, db: Path, extras: dict[str, bytes]) -> None:
    # O_EXCL with mode 0600: the file never exists with wider rights, whatever the umask.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)  # and the umask did not take the owner's bits either
    with os.fdopen(fd, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, MANIFEST, len(manifest.to_json()), io.BytesIO(manifest.to_json()))
            with db.open("rb") as file:
                _add(tar, DB_NAME, db.stat().st_size, file)
            for name, data in extras.items():
                _add(tar, name, len(data), io.BytesIO(data))
        raw.flush()
        os.fsync(raw.fileno())


def _add(tar: tarfile.TarFile, name: str, size: int, file: Any) -> None:
    """A regular file owned by no one in particular: the host's user names stay here."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(time.time())
    tar.addfile(info, file)


def _publish(partial: Path, target: Path, force: bool) -> None:
    if force:
        partial.replace(target)
    else:
        try:
            os.link(partial, target)  # fails if the target appeared meanwhile: never clobbered
        except FileExistsError:
            raise BackupError(f"{target} exists; pass --force to replace it") from None
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            if target.exists():  # a filesystem without hard links
                raise BackupError(f"{target} exists; pass --force to replace it") from None
            partial.replace(target)
    fsync_dir(target.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unpack_archive(archive: Path, into: Path) -> Manifest:
    """Check the archive member by member and write its files under `into` (files 0600, the
    secrets folder 0700). The first problem raises BackupError naming the member; nothing is
    ever written outside `into`, and links, devices and unlisted names are refused."""
    try:
        with archive.open("rb") as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
            return _unpack(tar, into)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise BackupError(f"{archive} is not a readable dployr backup: {err}") from None


def _unpack(tar: tarfile.TarFile, into: Path) -> Manifest:
    members = iter(tar)
    first = next(members, None)
    if first is None or first.name != MANIFEST or not first.isreg():
        raise BackupError(f"the archive does not start with {MANIFEST}: not a dployr backup")
    if first.size > MANIFEST_MAX:
        raise BackupError(f"{MANIFEST} is larger than {MANIFEST_MAX} bytes")
    stream = tar.extractfile(first)
    assert stream is not None  # a regular file always has one
    manifest = Manifest.from_json(stream.read(MANIFEST_MAX + 1))
    expected = {m.name: m for m in manifest.members}
    needed, free = sum(m.size for m in manifest.members), shutil.disk_usage(into).free
    if needed > free:
        raise BackupError(f"the backup needs {needed} bytes in {into}; {free} are free")
    seen: set[str] = set()
    for info in members:
        if info.name in seen:
            raise BackupError(f"the archive holds {info.name!r} twice")
        seen.add(info.name)
        member = expected.pop(info.name, None)
        if member is None:
            raise BackupError(f"the archive holds {info.name!r}, which its manifest does not list")
        if not info.isreg():
            raise BackupError(f"{info.name!r} is not a regular file (links are refused)")
        if info.size != member.size:
            raise BackupError(f"{info.name} is {info.size} bytes; the manifest says {member.size}")
        file = tar.extractfile(info)
        assert file is not None
        _extract(file, into / info.name, member)
    if expected:
        raise BackupError(f"the archive lacks {', '.join(sorted(expected))}: it is truncated")
    return manifest


def _extract(source: IO[bytes], path: Path, member: Member) -> None:
    path.parent.mkdir(mode=0o700, exist_ok=True)  # into itself, or into/secrets
    digest, left = hashlib.sha256(), member.size
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out:
        while left:
            chunk = source.read(min(CHUNK, left))
            if not chunk:
                raise BackupError(f"{member.name} ends early: the archive is truncated")
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
        out.flush()
        os.fsync(out.fileno())
    if digest.hexdigest() != member.sha256:
        raise BackupError(f"{member.name} does not match its checksum: the archive is damaged")
