"""Writing a file whole: to a temporary name beside it, then renamed, so an interrupted write
never leaves a half-written file under the real name.

Each writer gets its own temporary name (the process id, the thread and a random token), so two
writers of the same file at once (two ``export``s to one path) never write into or rename each
other's temporary file: both finish, and the file is whole, the last rename's."""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

#: Characters of the real name kept in a temporary name: with the token and the dots the
#: temporary name stays within the 255 bytes file systems allow where the real name does.
NAME_CHARS = 200


def temporary_path(path: str | Path) -> Path:
    """A temporary name beside ``path`` that no other writer (process or thread) uses: hidden,
    ``.NAME.<pid>-<thread>-<token>.tmp`` with NAME cut to :data:`NAME_CHARS` characters."""
    path = Path(path)
    token = f"{os.getpid()}-{threading.get_ident() % 10**6}-{uuid.uuid4().hex[:8]}"
    return path.with_name(f".{path.name[:NAME_CHARS]}.{token}.tmp")


@contextlib.contextmanager
def whole_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to fill; when the block ends without an error it is
    renamed to ``path`` (atomically), else removed and ``path`` left as it was."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_whole(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file beside ``path``, then rename it to ``path``.
    A failing ``write`` leaves ``path`` as it was and removes the temporary file."""
    with whole_file(path) as tmp:
        write(tmp)
    return Path(path)
