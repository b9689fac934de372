"""`dployr backup` and `dployr restore`: a host's database and keys in one 0600 archive."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dployr.cli.errors import CommandError
from dployr.cli.server import load, server_command

if TYPE_CHECKING:
    from dployr.backup.archive import Manifest


def add_commands(commands: Any) -> None:
    backup = server_command(
        commands,
        "backup",
        "write one 0600 archive: the database (online) and the key files of secrets/",
        "dployr backup /var/backups/   # dployr-backup-<time>.tar.gz in that directory\n"
        "dployr backup /root/dployr.tar.gz --force",
    )
    backup.add_argument(
        "path", type=Path, help="the archive to write, or a directory to write it in"
    )
    backup.add_argument("--force", action="store_true", help="replace an existing file")
    backup.set_defaults(run=run_backup)

    restore = server_command(
        commands,
        "restore",
        "bring this host's data dir back from a `dployr backup` archive",
        "systemctl stop dployr && dployr restore /var/backups/dployr-backup-….tar.gz",
    )
    restore.add_argument("path", type=Path, help="the archive")
    restore.add_argument(
        "--force",
        action="store_true",
        help="restore over a data dir that holds data (its files are moved aside, not deleted)",
    )
    restore.set_defaults(run=run_restore)


def archive_name() -> str:
    return time.strftime("dployr-backup-%Y%m%dT%H%M%SZ.tar.gz", time.gmtime())


def run_backup(args: argparse.Namespace) -> int:
    from dployr.backup.archive import BackupError, write_archive

    config = load(args)
    target: Path = args.path / archive_name() if args.path.is_dir() else args.path
    try:
        written = write_archive(config.data_path, target, force=args.force)
    except BackupError as err:
        raise CommandError(str(err)) from None
    except OSError as err:  # names the file: the archive, or a key it could not read
        raise CommandError(f"no backup written to {target}: {err}") from None
    for name in written.skipped:
        print(f"dployr: warning: left out {name} (not a regular key file)", file=sys.stderr)
    print(f"wrote {written.path} ({written.size} bytes, mode 0600)")
    _describe(written.manifest)
    return 0


def run_restore(args: argparse.Namespace) -> int:
    from dployr.backup.archive import SECRETS, BackupError
    from dployr.backup.restore import restore
    from dployr.datadir import DataDirBusy

    config = load(args)
    try:
        done = restore(args.path, config.data_path, force=args.force)
    except (BackupError, DataDirBusy) as err:
        raise CommandError(f"not restored: {err}") from None
    except OSError as err:
        raise CommandError(f"not restored: {err}") from None
    manifest = done.manifest
    print(
        f"restored {config.data_path} from {args.path} (made {manifest.created_at} "
        f"by dployr {manifest.dployr_version})"
    )
    _describe(manifest)
    if done.schema != manifest.schema_version:
        print(f"  migrated the database from schema {manifest.schema_version} to {done.schema}")
    if done.aside is not None:
        print(f"  the files that were there are in {done.aside}")
    if "secrets.key" not in done.keys:
        print(
            f"dployr: warning: the archive has no {SECRETS}/secrets.key: stored secrets will "
            "not decrypt",
            file=sys.stderr,
        )
    print(
        "next: start the daemon; a service whose image or release dir is not on this host "
        "comes back with its next deployment (POST /api/v1/deployments, the same body)"
    )
    return 0


def _describe(manifest: Manifest) -> None:
    for member in manifest.members:
        print(f"  {member.name} ({member.size} bytes)")
    print(f"  schema version {manifest.schema_version}, agent id {manifest.agent_id or '(none)'}")
