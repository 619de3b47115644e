"""Exclusive file locks that stay with the process that took them.

``flock`` locks belong to the open file, and a forked child (a DataLoader worker) shares the
parent's open files: an orphaned worker would hold the cache's lock after its parent was killed.
Every lock taken here is remembered, and :func:`close_inherited_locks` (run first in each worker)
closes the child's copies, so the lock lives exactly as long as the process that took it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locks; one writer at a time is on the user
    fcntl = None

_HELD: set[int] = set()  # file descriptors of the locks this process holds


class LockBusy(Exception):
    """Raised by :func:`file_lock` with ``wait=False`` when another process holds the lock;
    ``note`` is what the holder wrote into the lock file."""

    def __init__(self, path: str, note: str = ""):
        super().__init__(path)
        self.note = note


@contextlib.contextmanager
def file_lock(path: str | Path, wait: bool = True, note: str = ""):
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block, with
    ``note`` (who holds it) written into the file. With ``wait=False`` a lock held elsewhere
    raises :class:`LockBusy` at once, carrying the holder's note."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise LockBusy(str(path), os.pread(fd, 4096, 0).decode(errors="replace")) from None
        if note:
            os.ftruncate(fd, 0)
            os.pwrite(fd, note.encode(), 0)
        _HELD.add(fd)
        yield
    finally:
        _HELD.discard(fd)
        os.close(fd)  # releases the lock


def close_inherited_locks() -> None:
    """In a forked child: close the copies of the parent's lock files (the parent keeps its locks)."""
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()
