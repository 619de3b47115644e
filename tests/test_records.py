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


# ------------------------------------------------------------- what is read of a record


def test_a_run_id_with_spaces_is_refused_on_append_and_skipped_on_read(tmp_path):
    store = RunsStore(tmp_path)
    with pytest.raises(ValueError, match="run_id 'a b'"):
        store.append({"run_id": "a b"})
    store.append({"run_id": "ok.1_x-2"})
    with open(store.path, "ab") as f:
        f.write(b'{"run_id": "abc def"}\n')
    with pytest.warns(SamembedWarning, match=r"line 2 has run id 'abc def' \(not letters, digits, \. _ -\)"):
        assert [r["run_id"] for r in RunsStore(tmp_path).records()] == ["ok.1_x-2"]


@pytest.fixture()
def swept(tmp_path, embedding_cache):
    """A runs store of four real classification runs (knn, 2 splits x 2 seeds)."""
    import samembed

    samembed.sweep("eurosat", heads=["knn"], splits=[0.3, 0.5], seeds=2, cache_dir=embedding_cache,
                   runs_dir=tmp_path / "runs", progress=False)
    return tmp_path / "runs"


def _rewrite(runs, change) -> list[dict]:
    path = runs / "runs.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    change(records)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))  # json.dumps writes NaN as NaN
    return records


def test_records_the_report_cannot_read_are_skipped_with_one_counted_warning(swept, tmp_path):
    """Before: a record without 'cache' or with a text metric was a KeyError/TypeError traceback."""
    import samembed

    def damage(records):
        del records[0]["cache"]
        records[1]["metrics"]["accuracy"] = "0.9"
    records = _rewrite(swept, damage)
    with pytest.warns(SamembedWarning) as caught:
        report = samembed.write_report(swept, tmp_path / "report")
    messages = [str(w.message) for w in caught if "cannot be read" in str(w.message)]
    assert len(messages) == 1 and "\n" not in messages[0]
    assert f"skipped 2 run record(s) that cannot be read (run {records[0]['run_id']}: no 'cache' table; run " \
           f"{records[1]['run_id']}: metric 'accuracy' is text, not a number); the other 2 are read" in messages[0]
    assert report.runs == 2


def test_nan_metrics_and_records_of_a_newer_samembed_are_read_with_a_warning(swept, tmp_path):
    import samembed

    def change(records):
        records[0]["metrics"]["accuracy"] = float("nan")
        records[1]["versions"]["samembed"] = "99.1.0"
        records[2]["versions"]["samembed"] = "0.0.1"  # older: nothing to say
    records = _rewrite(swept, change)
    with pytest.warns(SamembedWarning) as caught:
        report = samembed.write_report(swept, tmp_path / "report")
    messages = [str(w.message) for w in caught]
    assert any(f"1 run(s) hold NaN or infinite metrics, shown as empty (nan) cells: {records[0]['run_id']} (accuracy)"
               in m for m in messages), messages
    assert any("1 run record(s) were written by a newer samembed (99.1.0, this is" in m for m in messages), messages
    assert report.runs == 4 and all("\n" not in m for m in messages)


def test_version_order_is_by_release_numbers():
    from samembed.experiments.records import newer_than_this

    assert newer_than_this({"versions": {"samembed": "99.0"}}) == "99.0"
    assert newer_than_this({"versions": {"samembed": "0.1.0"}}) is None
    assert newer_than_this({"versions": {"samembed": "0.0.9rc1"}}) is None
    assert newer_than_this({"versions": {}}) is None and newer_than_this({}) is None


def test_train_head_again_says_when_the_run_was_recorded_and_refuses_a_damaged_record(swept, embedding_cache):
    import samembed

    options = dict(head="knn", split=0.3, seed=0, cache_dir=embedding_cache, runs_dir=swept)
    with pytest.warns(SamembedWarning, match=r"run \w+ \(knn, split val=0.3, seed 0\) was already recorded on "
                                             r"20\d\d-.* in .*runs.jsonl; nothing was trained"):
        again = samembed.train_head("eurosat", **options)
    records = _rewrite(swept, lambda records: records[0]["metrics"].update(accuracy="high"))
    assert again["run_id"] == records[0]["run_id"]
    with pytest.raises(samembed.SamembedError, match=rf"run {again['run_id']} is in .* but its record cannot be read "
                                                     r"\(metric 'accuracy' is text, not a number\); delete its line"):
        samembed.train_head("eurosat", **options)
