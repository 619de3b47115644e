"""RunsStore: append/read, torn and malformed lines, NaN, and concurrent appenders."""

from __future__ import annotations

import json
import multiprocessing as mp
import time

import pytest

from samembed.errors import SamembedWarning
from samembed.experiments.records import DEFAULT_RUNS_DIR, RunsStore


def test_append_and_read_back_in_order(tmp_path):
    store = RunsStore(tmp_path / "exp")
    assert store.path == tmp_path / "exp" / "runs.jsonl"
    records = [{"run_id": f"r{i}", "metrics": {"accuracy": i / 10}, "tags": ["a", "b"]} for i in (3, 1, 2)]
    for record in records:
        store.append(record)
    assert store.records() == records
    assert store.run_ids() == {"r1", "r2", "r3"}
    lines = store.path.read_text().splitlines()
    assert len(lines) == 3 and lines[0] == json.dumps(records[0], sort_keys=True, separators=(",", ":"))


def test_missing_or_empty_store_reads_as_empty(tmp_path):
    store = RunsStore(tmp_path / "nowhere")
    assert store.records() == [] and store.run_ids() == set()
    assert not (tmp_path / "nowhere").exists()  # reading creates nothing
    store.root.mkdir()
    store.path.write_bytes(b"")
    assert store.records() == []
    assert DEFAULT_RUNS_DIR.name == "experiments"


def test_bad_run_id_and_nan_are_refused_before_writing(tmp_path):
    store = RunsStore(tmp_path)
    for bad in ({}, {"run_id": ""}, {"run_id": 3}):
        with pytest.raises(ValueError, match="run_id"):
            store.append(bad)
    with pytest.raises(ValueError):
        store.append({"run_id": "r", "loss": float("nan")})
    assert store.records() == []


def test_torn_last_line_is_ignored_and_next_append_is_clean(tmp_path):
    store = RunsStore(tmp_path)
    store.append({"run_id": "a"})
    with open(store.path, "ab") as f:  # a writer killed mid-write
        f.write(b'{"metrics":{"acc')
    assert store.records() == [{"run_id": "a"}]
    store.append({"run_id": "b"})
    store.append({"run_id": "c"})
    assert store.records() == [{"run_id": "a"}, {"run_id": "b"}, {"run_id": "c"}]
    lines = store.path.read_bytes().split(b"\n")
    assert lines[1].startswith(b'{"metrics":{"acc')  # the fragment is kept, on a line of its own
    assert json.loads(lines[2]) == {"run_id": "b"}


def test_unreadable_lines_are_skipped_with_a_warning_that_counts_and_names_them(tmp_path):
    """Before: one garbage line made records() raise, blocking report and sweep."""
    store = RunsStore(tmp_path)
    store.append({"run_id": "a"})
    with open(store.path, "ab") as f:
        f.write(b"this is not json\n")
    with pytest.warns(SamembedWarning, match=r"skipped 1 unreadable line\(s\).*line 2 is not valid JSON"):
        store.append({"run_id": "b"})  # appending reads what others wrote meanwhile, and says so too
    with open(store.path, "ab") as f:
        f.write(b'[1,2]\n\xff\xfe\n')
    with pytest.warns(SamembedWarning, match=r"skipped 2 .*line 4 is not a run record; line 5 is not valid JSON"):
        store.append({"run_id": "c"})
    with pytest.warns(SamembedWarning) as caught:
        records = RunsStore(tmp_path).records()
    assert [r["run_id"] for r in records] == ["a", "b", "c"]
    (message,) = [str(w.message) for w in caught]
    assert "skipped 3 unreadable line(s)" in message and "\n" not in message
    assert "line 2 is not valid JSON" in message and "line 4 is not a run record" in message and "line 5" in message


def test_a_run_already_recorded_is_not_appended_again(tmp_path):
    """Before: two sweeps on one store both appended the same run id."""
    first, second = RunsStore(tmp_path), RunsStore(tmp_path)  # two processes' views of one store
    assert first.append({"run_id": "a", "by": 1}) is True
    assert second.append({"run_id": "a", "by": 2}) is False  # seen under the lock, though never read before
    assert second.append_many([{"run_id": "b"}, {"run_id": "a"}, {"run_id": "b", "again": 1}]) == [{"run_id": "b"}]
    assert first.append({"run_id": "b"}) is False
    assert [(r["run_id"], r.get("by")) for r in RunsStore(tmp_path).records()] == [("a", 1), ("b", None)]


_PROCESSES, _PER_PROCESS, _PAD = 4, 50, 20_000


def _append_many(root: str, worker: int, start: float) -> None:
    store = RunsStore(root)
    time.sleep(max(0.0, start - time.time()))  # start together
    for i in range(_PER_PROCESS):
        store.append({"run_id": f"w{worker}-{i}", "pad": chr(ord("a") + worker) * _PAD})


def test_concurrent_appends_never_interleave_or_lose_a_record(tmp_path):
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    start = time.time() + (0.5 if method == "fork" else 5.0)
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), w, start)) for w in range(_PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    records = RunsStore(tmp_path).records()
    assert len(records) == _PROCESSES * _PER_PROCESS
    expected = {f"w{w}-{i}" for w in range(_PROCESSES) for i in range(_PER_PROCESS)}
    assert {r["run_id"] for r in records} == expected  # 200 distinct ids: none lost, none doubled
    for w in range(_PROCESSES):  # each writer's records in the order it wrote them
        assert [r["run_id"] for r in records if r["run_id"].startswith(f"w{w}-")] == [
            f"w{w}-{i}" for i in range(_PER_PROCESS)]
    for r in records:
        worker = int(r["run_id"][1:].split("-")[0])
        assert r["pad"] == chr(ord("a") + worker) * _PAD
