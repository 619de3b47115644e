"""The runs store: one JSON record per training run, one line each, appended to
``<root>/runs.jsonl``. The file is only ever appended to, under an exclusive lock, so sweeps
running at the same time never interleave or lose a record; under the same lock an appender
checks that no other process recorded the same run meanwhile, so a run id appears once.

Reading never stops at a damaged line: a line that is not a run record is skipped with a warning
that counts such lines and names them, and the records on the other lines are read. A run id is
letters, digits, '.', '_' and '-' (it names files and is listed with spaces between ids).

What the report and ``train-head`` read of a record is checked by :func:`readable_runs` (the rule
is in docs/report.md): a record that lacks it is skipped with one counted warning; NaN or infinite
metrics and records written by a newer samembed are read, with one warning each."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from ..errors import capped, shortened, storage_error, warn
from ..locks import file_lock
from ..paths import DEFAULT_RUNS_DIR
from ..version import __version__

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

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
            if not RUN_ID.fullmatch(record["run_id"]):
                raise ValueError(f"run_id {record['run_id']!r} has characters other than letters, digits, . _ -")
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
        if isinstance(record, dict) and isinstance(record.get("run_id"), str) and RUN_ID.fullmatch(record["run_id"]):
            yield record, None
        elif isinstance(record, dict) and isinstance(record.get("run_id"), str) and record["run_id"]:
            yield None, f"line {number} has run id '{shortened(record['run_id'], 24)}' (not letters, digits, . _ -)"
        else:
            yield None, f"line {number} is not a run record"


def _ends_with_newline(path: Path, size: int) -> bool:
    if size == 0:
        return True
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1) == b"\n"


# What samembed reads of every run record (the report, train-head's summary): table -> key -> type.
ENVELOPE: dict[str, dict[str, type | tuple[type, ...]]] = {
    "config": {"head": str, "feature": str, "split": str, "seed": int},
    "cache": {"dataset": str, "group": str, "signature": dict},
    "split": {"name": str, "n_train": int, "n_val": int, "n_test": int},
    "metrics": {"evaluated_on": str},
}
# Metrics that are text by design; every other metric is a number, null, a list or a table.
TEXT_METRICS = {"evaluated_on", "selection", "resolution"}


def task_of(record: dict) -> str:
    """The task of a run record (records written before tasks were named are of
    :data:`~samembed.plugins.TASK_OF_UNTAGGED_RECORDS`)."""
    from ..plugins import TASK_OF_UNTAGGED_RECORDS

    return record.get("task") or TASK_OF_UNTAGGED_RECORDS


def record_problem(record: dict) -> str | None:
    """What a run record lacks of :data:`ENVELOPE`, or a metric that is text where a number
    belongs; ``None`` when it can be read."""
    for table, fields in ENVELOPE.items():
        value = record.get(table)
        if not isinstance(value, dict):
            return f"no '{table}' table" if value is None else f"'{table}' is not a table"
        for key, kind in fields.items():
            if key not in value:
                return f"no '{table}.{key}'"
            if not isinstance(value[key], kind) or isinstance(value[key], bool):
                return f"'{table}.{key}' is {_kind(value[key])}, not {_kind(kind)}"
    text = [k for k, v in record["metrics"].items() if isinstance(v, str) and k not in TEXT_METRICS]
    return f"metric '{text[0]}' is text, not a number" if text else None


def _kind(value) -> str:
    kind = value if isinstance(value, type) else type(value)
    return {str: "text", int: "a whole number", float: "a number", dict: "a table", list: "a list",
            bool: "true/false", type(None): "null"}.get(kind, kind.__name__)


def unfinite_metrics(record: dict) -> list[str]:
    """The names of the record's NaN or infinite metrics (numbers at the top of ``metrics``)."""
    return [k for k, v in record["metrics"].items() if isinstance(v, float) and not math.isfinite(v)]


def newer_than_this(record: dict) -> str | None:
    """The samembed version that wrote ``record`` when its release is newer than this one's."""
    version = record.get("versions", {}).get("samembed") if isinstance(record.get("versions"), dict) else None
    return str(version) if isinstance(version, str) and _release(version) > _release(__version__) else None


def _release(version: str) -> tuple[int, ...]:
    """``0.2.0rc1`` -> (0, 2, 0): the release numbers a version starts with."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip().lstrip("vV"))
    return tuple(int(part) for part in match.group().split(".")) if match else ()


def readable_runs(records: list[dict], source: str | Path) -> list[dict]:
    """The ``records`` (of the runs store ``source``) that samembed can read, in order. A record
    that lacks what is read of every run (:func:`record_problem`) is skipped, with one warning
    that counts them and names a few; a record with NaN or infinite metrics, or written by a newer
    samembed, is kept, with one warning for each kind."""
    kept, skipped, unfinite, newer = [], [], [], {}
    for record in records:
        problem = record_problem(record)
        if problem is not None:
            skipped.append(f"run {record['run_id']}: {problem}")
            continue
        kept.append(record)
        if bad := unfinite_metrics(record):
            unfinite.append(f"{record['run_id']} ({', '.join(bad)})")
        if version := newer_than_this(record):
            newer.setdefault(version, []).append(record["run_id"])
    if skipped:
        warn(f"{source}: skipped {len(skipped)} run record(s) that cannot be read ({capped(skipped, 3, 100, sep='; ')}); "
             f"the other {len(kept)} are read; fix or delete those lines (while a run's line is there, sweep and "
             "train-head count the run as done)")
    if unfinite:
        warn(f"{source}: {len(unfinite)} run(s) hold NaN or infinite metrics, shown as empty (nan) cells: "
             f"{capped(unfinite, 3, 100)}")
    if newer:
        runs = sum(map(len, newer.values()))
        warn(f"{source}: {runs} run record(s) were written by a newer samembed ({capped(sorted(newer, key=_release))}, "
             f"this is {__version__}); they are read as far as this version understands them: upgrade samembed "
             "to read them whole")
    return kept


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
