"""The runs store: one JSON record per training run, one line each, appended to
``<root>/runs.jsonl``. The file is only ever appended to, under an exclusive lock, so sweeps
running at the same time never interleave or lose a record."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from ..errors import UsageError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, one sweep at a time is on the user
    fcntl = None

DEFAULT_RUNS_DIR = Path("experiments")

# Closes a torn last line (a writer killed mid-write) before the next record is appended. json.dumps
# never writes a raw control character, so a line ending in this one is a torn fragment, skipped.
_TORN = b"\x1e"


class RunsStore:
    """Run records in ``<root>/runs.jsonl``, in the order they were appended."""

    def __init__(self, root: str | Path = DEFAULT_RUNS_DIR):
        self.root = Path(root)

    @property
    def path(self) -> Path:
        return self.root / "runs.jsonl"

    @contextlib.contextmanager
    def _lock(self):
        fd = os.open(self.root / ".runs.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
            yield
        finally:
            os.close(fd)

    def append(self, record: dict) -> None:
        """Append ``record`` (a dict with a non-empty str ``run_id``) as one line. Raises
        ValueError for a NaN or infinite number and TypeError for a value JSON cannot hold."""
        if not isinstance(record, dict) or not isinstance(record.get("run_id"), str) or not record["run_id"]:
            raise ValueError("a run record must be a dict with a non-empty str 'run_id'")
        line = json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False).encode() + b"\n"
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock():
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if not _ends_with_newline(self.path, os.fstat(fd).st_size):
                    line = _TORN + b"\n" + line  # keep the torn fragment on a line of its own
                view = memoryview(line)
                while view:  # one write; more only if the system wrote part of it
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)

    def records(self) -> list[dict]:
        """Every record, oldest first. A missing or empty file gives []; a last line without its
        newline (a writer killed mid-write, or one still writing) is left out."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")[:-1]  # the part after the last newline is unfinished
        out = []
        for number, line in enumerate(lines, start=1):
            if not line.strip() or line.endswith(_TORN):
                continue
            try:
                record = json.loads(line)
            except ValueError as err:  # JSONDecodeError, or UnicodeDecodeError for non-UTF-8 bytes
                detail = f"{err.msg} at column {err.colno}" if isinstance(err, json.JSONDecodeError) else "not UTF-8"
                problem = f"is not valid JSON ({detail})"
            else:
                if isinstance(record, dict) and isinstance(record.get("run_id"), str):
                    out.append(record)
                    continue
                problem = "is not a run record (a JSON object with a str 'run_id')"
            raise UsageError(
                f"{self.path} line {number} {problem}; move the file aside (rename it) to start a new runs store"
            )
        return out

    def run_ids(self) -> set[str]:
        """The ``run_id`` of every record."""
        return {record["run_id"] for record in self.records()}


def _ends_with_newline(path: Path, size: int) -> bool:
    if size == 0:
        return True
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1) == b"\n"
