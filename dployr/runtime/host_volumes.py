"""Volumes on the host targets (systemd, process): one directory each under <data_dir>/volumes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from dployr.runtime.protocol import Mount, RuntimeFailure


def volume_dir(data: Path, mount: Mount) -> Path:
    """`<data_dir>/volumes/<origin service>/<name>` (SPEC §14): named after the service that
    first made it, so a kept volume attached to a new service of the same name keeps its data."""
    return data / "volumes" / mount.origin / mount.name


def volume_env(data: Path, mounts: Iterable[Mount]) -> dict[str, str]:
    """`DPLOYR_VOLUME_<NAME>`: each volume's directory (upper-cased, `-` → `_`; SPEC §14)."""
    return {
        f"DPLOYR_VOLUME_{m.name.upper().replace('-', '_')}": str(volume_dir(data, m))
        for m in mounts
    }


def prepare(data: Path, mounts: Iterable[Mount], owner: tuple[int, int] | None) -> list[Path]:
    """Blocking: each volume's directory, made on first use, and with `owner` (uid, gid) the
    service's user's (0700; the dirs above it o+x, as the release dirs' are). A kept volume
    attached to a new service changes hands: its whole tree then, only then."""
    made = []
    for mount in mounts:
        path = volume_dir(data, mount)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if owner is not None:
            for folder in (data, data / "volumes", path.parent):
                folder.chmod(folder.stat().st_mode & 0o777 | 0o711)
            if (path.stat().st_uid, path.stat().st_gid) != owner:
                _chown_tree(path, *owner)
        made.append(path)
    return made


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.lchown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            os.lchown(Path(root) / name, uid, gid)  # lchown: a link the app made is not followed


def _bytes_under(path: Path) -> int | None:
    """Bytes of the files under `path` (links not followed), or None when it is not there."""
    if not path.is_dir():
        return None
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except OSError:
                continue  # removed meanwhile by the app
    return total


async def volume_size(data: Path, mount: Mount) -> int | None:
    return await asyncio.to_thread(_bytes_under, volume_dir(data, mount))


def _remove(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise RuntimeFailure(f"could not remove volume directory {path}: {err}") from err
    with contextlib.suppress(OSError):  # the service's dir, once its last volume is gone
        path.parent.rmdir()


async def remove_volume(data: Path, mount: Mount) -> None:
    """The directory and its data; a missing one is fine."""
    await asyncio.to_thread(_remove, volume_dir(data, mount))
