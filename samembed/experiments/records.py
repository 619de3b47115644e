"""The runs store: one JSON record per training run, one line each, appended to
``<root>/runs.jsonl``. The file is only ever appended to, under an exclusive lock, so sweeps
running at the same time never interleave or lose a record; under the same lock an appender
checks that no other process recorded the same run meanwhile, so a run id appears once.

Reading never stops at a damaged line: a line that is not a run record is skipped with a warning
that counts such lines and names them, and the records on the other lines are read."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import storage_error, warn
from ..locks import file_lock
from ..paths import DEFAULT_RUNS_DIR

# Closes a torn last line (a writer killed mid-write) before the next record is appended. json.dumps
# never writes a raw control character, so a line ending in this one is a torn fragment, skipped.
_TORN = b"\x1e"


class RunsStore:
    """Run records in ``<root>/runs.jsonl``, in the order they were appended."""

    def __init__(self, root: str | Path = DEFAULT_RUNS_DIR):
        self.root = Path(root)
        self._known: set[str] = set()  # run ids in the first _scanned bytes of the file
        self._scanned = 0
        self._lines = 0  # lines in those bytes

    @property
    def path(self) -> Path:
        return self.root / "runs.jsonl"

    def append(self, record: dict) -> bool:
        """Append ``record`` (a dict with a non-empty str ``run_id``) as one line; ``False`` (and
        nothing written) when its run id is already in the store. Raises ValueError for a NaN or
        infinite number and TypeError for a value JSON cannot hold."""
        return bool(self.append_many([record]))

    def append_many(self, records: list[dict]) -> list[dict]:
        """Append every record whose run id is not in the store yet (nor earlier in ``records``),
        in one write made durable by one fsync; returns the records appended. Another process's
        appends are seen: the check runs under the store's lock, on the file as it is then."""
        lines = {}
        for record in records:
            if not isinstance(record, dict) or not isinstance(record.get("run_id"), str) or not record["run_id"]:
                raise ValueError("a run record must be a dict with a non-empty str 'run_id'")
            lines[id(record)] = json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False).encode() + b"\n"
        if not records:
            return []
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with file_lock(self.root / ".runs.lock"):
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    size = os.fstat(fd).st_size
                    self._scan(size)
                    new = []
                    for record in records:
                        if record["run_id"] not in self._known:
                            self._known.add(record["run_id"])
                            new.append(record)
                    if not new:
                        return []
                    blob = b"".join(lines[id(r)] for r in new)
                    if not _ends_with_newline(self.path, size):
                        blob = _TORN + b"\n" + blob  # keep the torn fragment on a line of its own
                    view = memoryview(blob)
                    while view:  # one write; more only if the system wrote part of it
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                    self._scanned = os.fstat(fd).st_size
                    self._lines += blob.count(b"\n")
                    return new
                finally:
                    os.close(fd)
        except OSError as err:
            self._scanned, self._lines, self._known = 0, 0, set()  # read the file afresh next time
            raise storage_error(err, f"recording runs in {self.path}") from None

    def contains(self, run_id: str) -> bool:
        """Whether ``run_id`` is recorded: the file as it is now, read from where this store last
        stopped (cheap to ask before every run, and it sees other processes' appends)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return False
        self._scan(size)
        return run_id in self._known

    def record(self, run_id: str) -> dict | None:
        """The first record of ``run_id``, or ``None``."""
        return next((r for r in self.records() if r["run_id"] == run_id), None)

    def _scan(self, size: int) -> None:
        """Add the run ids of the lines between what was scanned before and ``size`` bytes."""
        if size < self._scanned:  # the file was replaced: start over
            self._known, self._scanned, self._lines = set(), 0, 0
        if size == self._scanned:
            return
        with open(self.path, "rb") as f:
            f.seek(self._scanned)
            data = f.read(size - self._scanned)
        end = data.rfind(b"\n") + 1  # a line still being written is scanned next time
        bad = []
        for record, problem in _parse(data[:end], first_line=self._lines + 1):
            if record is not None:
                self._known.add(record["run_id"])
            elif problem is not None:
                bad.append(problem)
        self._scanned += end
        self._lines += data[:end].count(b"\n")
        if bad:
            self._warn_unreadable(bad, len(self._known))

    def records(self) -> list[dict]:
        """Every record, oldest first. A missing or empty file gives []; a last line without its
        newline (a writer killed mid-write, or one still writing) is left out; a line that is not
        a run record is skipped with a warning naming it."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        out, bad = [], []
        for record, problem in _parse(data[: data.rfind(b"\n") + 1]):
            if record is not None:
                out.append(record)
            elif problem is not None:
                bad.append(problem)
        if bad:
            self._warn_unreadable(bad, len(out))
        return out

    def _warn_unreadable(self, problems: list[str], records: int) -> None:
        shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
        warn(f"{self.path}: skipped {len(problems)} unreadable line(s), the other {records} records are read ({shown})")

    def run_ids(self) -> set[str]:
        """The ``run_id`` of every record."""
        return {record["run_id"] for record in self.records()}


def _parse(data: bytes, first_line: int = 1):
    """``(record, None)`` for each line of ``data`` that holds a run record, ``(None, problem)``
    for one that does not (naming its line, counted from ``first_line``), ``(None, None)`` for a
    blank line or a torn fragment."""
    for number, line in enumerate(data.split(b"\n")[:-1], start=first_line):
        if not line.strip() or line.endswith(_TORN):
            yield None, None
            continue
        try:
            record = json.loads(line)
        except ValueError as err:  # JSONDecodeError, or UnicodeDecodeError for non-UTF-8 bytes
            detail = f"{err.msg} at column {err.colno}" if isinstance(err, json.JSONDecodeError) else "not UTF-8"
            yield None, f"line {number} is not valid JSON ({detail})"
            continue
        if isinstance(record, dict) and isinstance(record.get("run_id"), str) and record["run_id"]:
            yield record, None
        else:
            yield None, f"line {number} is not a run record"


def _ends_with_newline(path: Path, size: int) -> bool:
    if size == 0:
        return True
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1) == b"\n"


def warn_recorded_elsewhere(record: dict, store: RunsStore) -> None:
    """Say that ``record`` was not appended because another process recorded its run first."""
    warn(f"run {record['run_id']} ({record['config']['head']}, split {record['config']['split']}, seed "
         f"{record['config']['seed']}) was recorded meanwhile by another process on {store.path}; the first record "
         "is kept and this one is dropped")


def first_of_each_run(records: list[dict]) -> tuple[list[dict], int]:
    """``records`` with only the first record of each run id, and how many later ones were dropped
    (stores written by samembed before the append-time check may hold duplicates)."""
    seen: set[str] = set()
    kept = []
    for record in records:
        if record["run_id"] not in seen:
            seen.add(record["run_id"])
            kept.append(record)
    return kept, len(records) - len(kept)
