"""`dployr backup` and `dployr restore` on real data dirs and real `dployr serve` processes:
modes, refusals, bad archives, the data dir's lock, and migrations of an older backup."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import secrets
import sqlite3
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dployr.store.db import Database, bundled_migrations
from tests.integration.conftest import Daemon, daemon_env, dployr_command, run_dployr

pytestmark = pytest.mark.integration
Members = list[tuple[tarfile.TarInfo, bytes]]


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for a directory)."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
        for p in sorted(folder.rglob("*"))
    }


def projects(db: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM projects")}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def backup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An archive of a host with an admin and a project "from-backup", taken while it ran."""
    base = tmp_path_factory.mktemp("backed-up")
    config = base / "config.toml"
    config.write_text("")
    daemon = Daemon(base / "data", config, daemon_env(base / "data"))
    try:
        daemon.start()
        token = daemon.admin_token()
        assert daemon.request("POST", "/api/v1/projects", {"name": "from-backup"}, token)[0] == 201
        target = base / "host.tar.gz"
        made = run_dployr("backup", "--config", str(config), str(target), env=daemon.env)
        assert made.returncode == 0, made.stderr
    finally:
        daemon.kill()
    yield target


def restore(
    config: Path, data_dir: Path, archive: Path, *flags: str
) -> subprocess.CompletedProcess[str]:
    env = daemon_env(data_dir)
    return run_dployr("restore", "--config", str(config), str(archive), *flags, env=env)


def test_backup_is_one_0600_archive_whatever_the_umask(daemon: Daemon, tmp_path: Path) -> None:
    daemon.start()
    daemon.admin_token()
    out = tmp_path / "out"
    out.mkdir()
    target = out / "host.tar.gz"
    seen: dict[str, int] = {}
    done = threading.Event()

    def watch() -> None:  # every entry that shows up in `out` while the backup runs, and its mode
        while not done.is_set():
            for entry in list(out.rglob("*")):
                with contextlib.suppress(FileNotFoundError):
                    seen[str(entry.relative_to(out))] = mode(entry) | (entry.is_dir() << 12)
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        made = subprocess.run(
            dployr_command("backup", "--config", str(daemon.config), str(target)),
            env=daemon.env, capture_output=True, text=True, timeout=60,
            preexec_fn=lambda: os.umask(0),  # only the umask, before exec
        )  # fmt: skip
    finally:
        done.set()
        watcher.join()
    assert made.returncode == 0, made.stderr
    assert f"wrote {target}" in made.stdout and "mode 0600" in made.stdout
    assert [p.name for p in out.iterdir()] == ["host.tar.gz"]  # nothing left beside it
    assert mode(target) == 0o600
    files = {name: m for name, m in seen.items() if not m >> 12}
    folders = {name: m & 0o777 for name, m in seen.items() if m >> 12}
    assert all(m == 0o600 for m in files.values()), files
    assert all(m == 0o700 for m in folders.values()), folders
    with tarfile.open(target) as tar:
        names = tar.getnames()
        assert all(m.isreg() and m.mode == 0o600 for m in tar.getmembers())
    assert names == ["dployr-backup.json", "dployr.db", "secrets/jwt.key", "secrets/secrets.key",
                     "agent_id"]  # fmt: skip

    before = target.read_bytes()
    again = run_dployr("backup", "--config", str(daemon.config), str(target), env=daemon.env)
    assert again.returncode == 1 and "exists; pass --force" in again.stderr
    assert target.read_bytes() == before
    forced = run_dployr(
        "backup", "--config", str(daemon.config), str(target), "--force", env=daemon.env
    )
    assert forced.returncode == 0, forced.stderr
    assert mode(target) == 0o600
    nowhere = out / "missing" / "host.tar.gz"
    lost = run_dployr("backup", "--config", str(daemon.config), str(nowhere), env=daemon.env)
    assert lost.returncode == 1 and f"{out / 'missing'} is not a directory" in lost.stderr


def rewrite(source: Path, target: Path, change: Callable[[Members, dict[str, Any]], None]) -> None:
    """A copy of the archive `source` whose members (and manifest) `change` edits in place."""
    with tarfile.open(source) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    manifest = json.loads(members[0][1])
    change(members, manifest)
    raw = json.dumps(manifest).encode()
    if members and members[0][0].name == "dployr-backup.json":
        members[0] = (file_info("dployr-backup.json", raw), raw)
    with tarfile.open(target, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def file_info(
    name: str, data: bytes, kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.type, info.linkname = kind, link
    return info


def add_listed(members: Members, manifest: dict[str, Any], name: str, data: bytes) -> None:
    members.append((file_info(name, data), data))
    sha = hashlib.sha256(data).hexdigest()
    manifest["members"].append({"name": name, "size": len(data), "sha256": sha})


def replace(members: Members, name: str, info: tarfile.TarInfo, data: bytes = b"") -> None:
    members[:] = [(info, data) if m.name == name else (m, d) for m, d in members]


def tamper(members: Members, name: str) -> None:
    for i, (info, data) in enumerate(members):
        if info.name == name:
            members[i] = (info, data[:-1] + bytes([data[-1] ^ 1]))


BAD: dict[str, tuple[Callable[[Members, dict[str, Any]], None], str]] = {
    "a path out of the data dir": (
        lambda ms, mf: add_listed(ms, mf, "../evil", b"x"),
        "'../evil', which no backup holds",
    ),
    "an absolute path": (
        lambda ms, mf: ms.append((file_info("/tmp/evil", b"x"), b"x")),
        "'/tmp/evil', which its manifest does not list",
    ),
    "an unlisted member": (
        lambda ms, mf: ms.append((file_info("notes.txt", b"x"), b"x")),
        "'notes.txt', which its manifest does not list",
    ),
    "a symlink for a key": (
        lambda ms, mf: replace(
            ms, "secrets/jwt.key", file_info("secrets/jwt.key", b"", tarfile.SYMTYPE, "/etc/shadow")
        ),
        "'secrets/jwt.key' is not a regular file",
    ),
    "a hard link for a key": (
        lambda ms, mf: replace(
            ms,
            "secrets/secrets.key",
            file_info("secrets/secrets.key", b"", tarfile.LNKTYPE, "dployr.db"),
        ),
        "'secrets/secrets.key' is not a regular file",
    ),
    "a key file in a subfolder": (
        lambda ms, mf: add_listed(ms, mf, "secrets/sub/x.key", b"x"),
        "which no backup holds",
    ),
    "an oversized key": (
        lambda ms, mf: add_listed(ms, mf, "secrets/big.key", b"k" * 70_000),
        "may be",
    ),
    "a tampered database": (lambda ms, mf: tamper(ms, "dployr.db"), "does not match its checksum"),
    "a member twice": (lambda ms, mf: ms.append(ms[2]), "'secrets/jwt.key' twice"),
    "a missing member": (lambda ms, mf: ms.pop(), "lacks agent_id: it is truncated"),
    "no manifest first": (lambda ms, mf: ms.reverse(), "does not start with dployr-backup.json"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_restore_refuses_an_archive_that_fails_a_check(
    case: str, backup: Path, tmp_path: Path, empty_config: Path
) -> None:
    change, reason = BAD[case]
    bad = tmp_path / "bad.tar.gz"
    rewrite(backup, bad, change)
    data_dir = tmp_path / "new" / "data"
    done = restore(empty_config, data_dir, bad)
    assert done.returncode == 1, done.stdout
    assert reason in done.stderr and "not restored" in done.stderr
    # Nothing was restored and nothing was written elsewhere: only the (free) lock file is there.
    assert snapshot(data_dir) == {"dployr.lock": b""}
    assert not (tmp_path / "evil").exists() and not Path("/tmp/evil").exists()


def test_restore_refuses_what_is_not_an_archive(tmp_path: Path, empty_config: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(secrets.token_bytes(4096))
    done = restore(empty_config, tmp_path / "data", junk)
    assert done.returncode == 1 and "not a readable dployr backup" in done.stderr
    missing = restore(empty_config, tmp_path / "data", tmp_path / "nothing.tar.gz")
    assert missing.returncode == 1 and "is not a file" in missing.stderr


def test_restore_over_data_needs_force_and_keeps_the_old_files_aside(
    daemon: Daemon, backup: Path
) -> None:
    daemon.start()
    token = daemon.admin_token()
    assert daemon.request("POST", "/api/v1/projects", {"name": "kept"}, token)[0] == 201
    assert daemon.stop() == 0
    before = snapshot(daemon.data_dir)

    refused = restore(daemon.config, daemon.data_dir, backup)
    assert refused.returncode == 1
    assert "already holds data (1 users, 1 projects)" in refused.stderr
    assert snapshot(daemon.data_dir) == before

    forced = restore(daemon.config, daemon.data_dir, backup, "--force")
    assert forced.returncode == 0, forced.stderr
    [aside] = list(daemon.data_dir.glob("pre-restore-*"))
    assert str(aside) in forced.stdout
    assert mode(aside) == 0o700
    for name in ("dployr.db", "agent_id", "secrets/jwt.key", "secrets/secrets.key"):
        assert (aside / name).read_bytes() == before[name], name
    assert projects(aside / "dployr.db") == {"kept"}  # the old database still opens, whole
    assert projects(daemon.data_dir / "dployr.db") == {"from-backup"}
    assert (daemon.data_dir / "secrets" / "secrets.key").read_bytes() != before[
        "secrets/secrets.key"
    ]

    daemon.start()  # the restored host: the backup's admin logs in, its project is there
    token = daemon.admin_token()
    status, listed = daemon.request("GET", "/api/v1/projects", token=token)
    assert status == 200 and [p["name"] for p in listed["items"]] == ["from-backup"]


def test_restore_is_refused_while_a_daemon_runs_and_so_is_a_second_daemon(
    daemon: Daemon, backup: Path, tmp_path: Path
) -> None:
    daemon.start()
    daemon.admin_token()
    keys = snapshot(daemon.data_dir / "secrets")

    done = restore(daemon.config, daemon.data_dir, backup, "--force")
    assert done.returncode == 1
    assert f"{daemon.data_dir} is in use by another dployr process" in done.stderr
    assert f"pid {daemon.process.pid}: dployr serve" in done.stderr  # type: ignore[union-attr]
    assert snapshot(daemon.data_dir / "secrets") == keys
    assert not list(daemon.data_dir.glob("pre-restore-*"))
    assert daemon.request("GET", "/health")[0] == 200

    second = Daemon(daemon.data_dir, daemon.config, daemon.env)
    with pytest.raises(AssertionError, match="is in use by another dployr process"):
        second.start()
    assert daemon.request("GET", "/health")[0] == 200
    assert daemon.stop() == 0
    assert projects(daemon.data_dir / "dployr.db") == set()  # its own, not the backup's


def make_data_dir(data_dir: Path, migrations: int, extra_sql: str = "") -> None:
    """A data dir whose database has only the first `migrations` migrations, and a key."""
    data_dir.mkdir(parents=True, mode=0o700)

    wanted = bundled_migrations()[:migrations]

    async def make() -> None:
        db = await Database.open(data_dir / "dployr.db", wanted)
        if extra_sql:
            async with db.transaction() as tx:
                await tx.execute(extra_sql)
        await db.close()

    asyncio.run(make())
    (data_dir / "secrets").mkdir(mode=0o700)
    (data_dir / "secrets" / "secrets.key").write_bytes(secrets.token_bytes(64))


def test_an_older_backup_is_migrated_and_a_newer_one_refused(
    tmp_path: Path, empty_config: Path
) -> None:
    latest = len(bundled_migrations())
    old = tmp_path / "old"
    make_data_dir(old / "data", latest - 1)
    made = run_dployr("backup", "--config", str(empty_config), str(old / "b.tar.gz"),
                      env=daemon_env(old / "data"))  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert f"schema version {latest - 1}," in made.stdout

    fresh = tmp_path / "fresh" / "data"
    (fresh / ".restore-crashed" / "secrets").mkdir(parents=True)  # what a crashed restore left
    done = restore(empty_config, fresh, old / "b.tar.gz")
    assert done.returncode == 0, done.stderr
    assert not (fresh / ".restore-crashed").exists()
    assert f"migrated the database from schema {latest - 1} to {latest}" in done.stdout
    assert "no secrets/secrets.key" not in done.stderr
    conn = sqlite3.connect(fresh / "dployr.db")
    try:
        assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone() == (latest,)
    finally:
        conn.close()

    new = tmp_path / "new"
    future = "INSERT INTO schema_migrations VALUES (999, 'future', '2030-01-01T00:00:00Z')"
    make_data_dir(new / "data", latest, future)
    made = run_dployr("backup", "--config", str(empty_config), str(new / "b.tar.gz"),
                      env=daemon_env(new / "data"))  # fmt: skip
    assert made.returncode == 0, made.stderr
    target = tmp_path / "target" / "data"
    refused = restore(empty_config, target, new / "b.tar.gz")
    assert refused.returncode == 1
    assert "at schema version 999" in refused.stderr and "at least as new" in refused.stderr
    assert snapshot(target) == {"dployr.lock": b""}


def test_root_restores_for_a_daemon_that_runs_as_another_user(
    backup: Path, tmp_path: Path, empty_config: Path
) -> None:
    assert os.geteuid() == 0, "CI runs as root (ENVIRONMENT.md); this is what root does"
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o755)
    os.chown(data_dir, 65534, 65534)  # the daemon's user owns its data dir
    done = restore(empty_config, data_dir, backup)
    assert done.returncode == 0, done.stderr
    # Readable by no one else now; still traversable, as the systemd target's apps need it.
    assert mode(data_dir) == 0o711
    restored = [data_dir / "dployr.db", data_dir / "agent_id", data_dir / "secrets"]
    restored += list((data_dir / "secrets").iterdir())
    assert len(restored) == 5
    for path in restored:
        assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534), path
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path


def test_a_fresh_install_is_restored_over_without_force(daemon: Daemon, backup: Path) -> None:
    """What install.sh leaves on a new host: a daemon started once, no account yet. Its files
    hold nothing of an owner's, and are still moved aside rather than deleted."""
    daemon.start()
    assert daemon.stop() == 0
    fresh_key = (daemon.data_dir / "secrets" / "secrets.key").read_bytes()
    done = restore(daemon.config, daemon.data_dir, backup)
    assert done.returncode == 0, done.stderr
    [aside] = list(daemon.data_dir.glob("pre-restore-*"))
    assert (aside / "secrets" / "secrets.key").read_bytes() == fresh_key
    assert projects(daemon.data_dir / "dployr.db") == {"from-backup"}
