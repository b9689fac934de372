"""The data dir's lock: one daemon (or one restore) at a time on a data dir."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "dployr.lock"


class DataDirBusy(Exception):
    """Another process (a daemon, a restore) holds the data dir's lock."""


class DataDirLock:
    """An flock(2) on <data_dir>/dployr.lock, held for the holder's lifetime. The kernel drops
    it when the process dies, even by kill -9, so a crash never leaves a stale lock; the file
    names the holder only so that the refusal can say who it is."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_path: Path, holder: str) -> DataDirLock:
        """Take the lock or raise DataDirBusy at once (never waits). Blocking: thread it."""
        path = data_path / LOCK_NAME
        # Not inherited by children (O_CLOEXEC): a build or an app never holds the lock.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = _read_holder(fd)
            os.close(fd)
            raise DataDirBusy(
                f"{data_path} is in use by another dployr process ({who}); stop it first"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {holder}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"
