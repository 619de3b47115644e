"""Heads trained from the cache: every head learns, runs are deterministic, stacked runs equal
solo runs, sweeps resume, records are complete, bad arguments are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import write_embedding_cache
from samembed.errors import CacheError, UsageError
from samembed.experiments.features import GridSource
from samembed.experiments.optim import RunGroupsAdamW, cosine_with_warmup
from samembed.experiments.records import RunsStore
from samembed.experiments.sweep import sweep, train_head

QUICK = dict(device="cpu", epochs=15)


def _train(cache, runs, head, **kwargs):
    return train_head("eurosat", head=head, cache_dir=cache, runs_dir=runs, **{"split": 0.25, **QUICK, **kwargs})


@pytest.mark.parametrize("head", ["linear", "mlp", "sam-conv", "sam-vit", "logreg", "knn"])
def test_every_head_learns_separable_embeddings(embedding_cache, tmp_path, head):
    record = _train(embedding_cache, tmp_path / "runs", head, lr=3e-3)
    assert record["metrics"]["accuracy"] > 0.9, record["metrics"]
    assert record["metrics"]["evaluated_on"] == "val" and record["split"]["n_val"] == 50


@pytest.mark.parametrize("head", ["linear", "knn"])
def test_no_head_learns_from_uninformative_embeddings(tmp_path, head):
    """Labels independent of the embeddings: validation accuracy stays near chance (1/5)."""
    write_embedding_cache(tmp_path / "cache", separable=False)
    record = _train(tmp_path / "cache", tmp_path / "runs", head)
    assert record["metrics"]["accuracy"] < 0.45


@pytest.mark.parametrize("head", ["linear", "sam-conv", "logreg"])
def test_runs_are_deterministic_for_a_seed(embedding_cache, tmp_path, head):
    a = _train(embedding_cache, tmp_path / "a", head, epochs=3, seed=1)
    b = _train(embedding_cache, tmp_path / "b", head, epochs=3, seed=1)
    assert a["metrics"]["confusion_matrix"] == b["metrics"]["confusion_matrix"]
    assert a["curves"] == b["curves"] and a["run_id"] == b["run_id"]


def test_stacked_runs_equal_runs_trained_alone(embedding_cache, tmp_path):
    """A sweep trains its pooled heads in one vectorised pass; each equals its solo run."""
    records = sweep("eurosat", heads=["mlp"], splits=[0.25, 0.5], seeds=2, cache_dir=embedding_cache,
                    runs_dir=tmp_path / "sweep", progress=False, device="cpu", epochs=4)
    assert len(records) == 4 and {r["head_info"]["trained_with"] for r in records} == {4}
    for record in records:
        alone = _train(embedding_cache, tmp_path / "alone", "mlp", epochs=4, split=record["config"]["split"][4:],
                       seed=record["config"]["seed"])
        assert alone["metrics"]["confusion_matrix"] == record["metrics"]["confusion_matrix"]
        np.testing.assert_allclose(alone["curves"]["val_loss"], record["curves"]["val_loss"], rtol=1e-4)
        assert alone["split"]["indices_hash"] == record["split"]["indices_hash"]


def test_a_record_holds_what_reproduces_the_run(embedding_cache, tmp_path):
    record = _train(embedding_cache, tmp_path / "runs", "linear", epochs=5)
    assert record["config"]["settings"]["epochs"] == 5 and record["config"]["feature"] == "neck"
    assert record["cache"]["group"] == "fake-enc@64" and record["cache"]["signature"]["grid"] == 4
    assert len(record["split"]["indices_hash"]) == 16 and record["split"]["n_train"] == 150
    metrics = record["metrics"]
    assert set(metrics["per_class"]) == {f"class{c}" for c in range(5)}
    assert np.array(metrics["confusion_matrix"]).sum() == 50
    assert len(record["curves"]["val_acc"]) == 5 and len(record["curves"]["train_loss"]) == 5
    assert record["seconds"] > 0 and {"torch", "samembed", "timm", "scikit_learn", "numpy"} <= set(record["versions"])
    assert metrics["selection"].startswith("none")
    assert RunsStore(tmp_path / "runs").records() == [record]


def test_same_split_indices_for_every_head_and_encoder(tmp_path):
    write_embedding_cache(tmp_path / "c", name="enc-a@64", seed=0)
    write_embedding_cache(tmp_path / "c", name="enc-b@64", seed=5)
    hashes = {
        _train(tmp_path / "c", tmp_path / "runs", head, encoder=enc, epochs=1)["split"]["indices_hash"]
        for head in ("linear", "knn") for enc in ("enc-a@64", "enc-b@64")
    }
    assert len(hashes) == 1


def test_sweep_skips_finished_runs_and_resumes(embedding_cache, tmp_path, monkeypatch):
    common = dict(heads=["linear", "knn"], splits=[0.25, 0.5], seeds=2, cache_dir=embedding_cache,
                  runs_dir=tmp_path / "runs", progress=False, device="cpu", epochs=2)
    import samembed.experiments.base as runner

    real = runner.RunsStore.append_many  # runs are recorded in batches (one per fit)
    count = {"n": 0}

    def dies_after_three(self, records):
        room = max(0, 3 - count["n"])
        appended = real(self, records[:room])
        count["n"] += len(appended)
        if len(records) > room:
            raise KeyboardInterrupt
        return appended

    monkeypatch.setattr(runner.RunsStore, "append_many", dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        sweep("eurosat", **common)
    monkeypatch.setattr(runner.RunsStore, "append_many", real)
    assert len(RunsStore(tmp_path / "runs").records()) == 3
    new = sweep("eurosat", **common)
    assert len(new) == 5
    assert sweep("eurosat", **common) == []
    ids = [r["run_id"] for r in RunsStore(tmp_path / "runs").records()]
    assert len(ids) == len(set(ids)) == 8


def test_few_shot_training(embedding_cache, tmp_path):
    record = _train(embedding_cache, tmp_path / "runs", "logreg", split=None, shots=5)
    assert record["split"]["n_train"] == 25 and record["config"]["split"] == "shots=5"
    assert "held-out" in record["metrics"]["selection"]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(head="resnet"), UsageError, "unknown head 'resnet'; choose one of: cnn, knn, linear"),
        (dict(head="linear", feature="grid"), UsageError, "--feature must be one of neck, trunk"),
        (dict(head="sam-conv", feature="neck"), UsageError, "trains on the grid map"),
        (dict(head="linear", split=1.5), UsageError, "strictly between 0 and 1"),
        (dict(head="linear", split=0.2, shots=3), UsageError, "not both"),
        (dict(head="linear", epochs=0), UsageError, "--epochs"),
        (dict(head="linear", split="standard"), UsageError, "eurosat"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, kwargs, error, match):
    write_embedding_cache(tmp_path / "c", dataset="other")
    args = {"split": 0.2, **kwargs}
    with pytest.raises(error, match=match):
        train_head("other", cache_dir=tmp_path / "c", runs_dir=tmp_path / "runs", device="cpu", **args)
    assert not (tmp_path / "runs" / "runs.jsonl").exists()


def test_several_encoders_need_a_choice_and_incomplete_caches_are_refused(tmp_path):
    write_embedding_cache(tmp_path / "c", name="enc-a@64")
    group = write_embedding_cache(tmp_path / "c", name="enc-b@64")
    with pytest.raises(UsageError, match="enc-a@64, enc-b@64"):
        _train(tmp_path / "c", tmp_path / "runs", "linear")
    group["done"][0] = False
    with pytest.raises(CacheError, match="incomplete"):
        _train(tmp_path / "c", tmp_path / "runs", "linear", encoder="enc-b@64")


def test_grid_source_reads_in_chunks_when_the_budget_is_small(embedding_cache):
    from samembed.cache import open_cache

    array = open_cache(embedding_cache, "eurosat").array("grid")
    memory, chunked = GridSource(array), GridSource(array, budget=0, block_bytes=1)
    assert memory.in_memory and not chunked.in_memory
    indices = np.arange(3, 200, 7)
    rng = np.random.default_rng(0)
    seen = [(idx, x) for idx, x in chunked.batches(indices, 8, rng)]
    order = np.concatenate([idx for idx, _ in seen])
    assert sorted(order.tolist()) == indices.tolist()  # every index exactly once
    assert not np.array_equal(order, indices)  # shuffled
    full = array[:]
    for idx, x in seen:
        assert np.array_equal(x, full[idx])
        assert len(idx) <= 8


@pytest.mark.parametrize("fused", [True, False])
def test_run_groups_adamw_equals_torch_adamw_per_run_and_leaves_idle_runs_alone(fused):
    """Three runs stacked in one parameter: runs 0-1 share a schedule (one group), run 2 has its
    own and stops after 3 steps; each run ends where torch's AdamW on it alone ends (with torch's
    fused kernel, and with the foreach fallback)."""
    torch.manual_seed(0)
    w = torch.randn(3, 5, 3)
    ours = torch.nn.Parameter(w.clone())
    alone = [torch.nn.Parameter(w[r].clone()) for r in range(3)]
    refs = [torch.optim.AdamW([p], lr=1.0, weight_decay=0.05) for p in alone]
    opt = RunGroupsAdamW([ours], [(0, 0, 2), (0, 2, 3)], weight_decay=0.05)
    opt.fused = fused
    for step in range(6):
        g = torch.randn(3, 5, 3)
        lrs = [0.01 * cosine_with_warmup(step, 6, 2), 0.5 * cosine_with_warmup(step, 3, 1) if step < 3 else None]
        k = 3 if step < 3 else 2  # run 2 is done: the step computes the first two runs only
        opt.step([g[:k]], lrs)
        for r in range(3):
            lr = lrs[0] if r < 2 else lrs[1]
            if lr is None:
                continue
            alone[r].grad = g[r].clone()
            refs[r].param_groups[0]["lr"] = lr
            refs[r].step()
    for r in range(3):
        torch.testing.assert_close(ours[r].detach(), alone[r].detach(), rtol=1e-5, atol=1e-6)
    assert ours.grad is None and not torch.equal(ours[2], w[2])


def test_one_class_and_splits_that_leave_a_class_out_are_refused_in_one_line(tmp_path):
    """One class scored a meaningless 100 %; a class missing from training or from the evaluated
    images cannot be scored honestly either: each is refused before anything is trained."""
    write_embedding_cache(tmp_path / "one", classes=1, per_class=20)
    with pytest.raises(UsageError, match=r"has one class \(class0\)") as err:
        train_head("eurosat", head="knn", split=0.5, cache_dir=tmp_path / "one", runs_dir=tmp_path / "runs", device="cpu")
    assert "\n" not in str(err.value)
    group = write_embedding_cache(tmp_path / "two", classes=3, per_class=10)
    group["ok"][:10] = False  # no usable image of class0 (all failed extraction): in neither part
    for head in ("linear", "knn"):
        with pytest.raises(UsageError, match=r"val=0.5 \(seed 0\) leaves class\(es\) class0 out of training"):
            sweep("eurosat", heads=[head], splits=[0.5], cache_dir=tmp_path / "two", runs_dir=tmp_path / "runs",
                  progress=False, device="cpu")
    assert not (tmp_path / "runs" / "runs.jsonl").exists()
    write_embedding_cache(tmp_path / "ok", classes=2, per_class=10)
    record = train_head("eurosat", head="knn", split=0.5, cache_dir=tmp_path / "ok", runs_dir=tmp_path / "runs",
                        device="cpu")
    assert record["split"]["n_train"] == 10


def test_the_step_floor_trains_small_sets_more_epochs_and_leaves_large_ones_alone(embedding_cache, tmp_path):
    """200 images, 0.25 for validation: 150 training images. With a floor, one batch of 150 an
    epoch and the floor of 100 steps makes 10 epochs 100; given epochs alone train exactly as
    release 0.1.0 did (batches of max(16, n / 8), no floor); the floor is in the run id only when
    it is set, and a floor below the epochs' steps changes nothing."""
    floored = _train(embedding_cache, tmp_path / "r", "linear", epochs=10, min_steps=100, lr=1e-2)
    exact = _train(embedding_cache, tmp_path / "r", "linear", epochs=10, lr=1e-2)
    assert floored["training"] == {"batch_size": 150, "epochs": 100, "steps": 100}
    assert exact["training"] == {"batch_size": 18, "epochs": 10, "steps": 90}
    assert "min_steps" not in exact["config"]["settings"] and floored["config"]["settings"]["min_steps"] == 100
    assert len(floored["curves"]["val_loss"]) == 10  # the curves keep 10 evenly spaced epochs
    assert floored["run_id"] != exact["run_id"]
    from samembed.experiments.kinds import TrainSettings
    from samembed.experiments.optim import schedule_for

    big = schedule_for(24_000, 256, TrainSettings(epochs=30, min_steps=1000))
    assert (big.batch, big.epochs, big.total) == (256, 30, 94 * 30)  # 2,820 steps: the floor does not bind
    one_shot = schedule_for(10, 256, TrainSettings(epochs=30, min_steps=1000))
    assert (one_shot.batch, one_shot.epochs, one_shot.total) == (10, 1000, 1000)


def test_a_sweep_says_how_long_a_slow_head_will_take_after_its_first_steps(embedding_cache, tmp_path, monkeypatch):
    """The estimate is the time per step of the first run times the steps of every run of the
    head left in the sweep (here 2 runs of 150 training images, batches of 18 (release 0.1.0's
    rule without a step floor): 9 steps an epoch, 135 a run); said once."""
    import samembed.experiments.base as base
    from samembed.errors import SamembedWarning

    monkeypatch.setattr(base, "PACE_SECONDS", 0.0)
    monkeypatch.setattr(base, "PACE_WARN_SECONDS", 0.0)  # any sweep counts as slow here
    with pytest.warns(SamembedWarning) as caught:
        sweep("eurosat", heads=["sam-conv"], splits=[0.25], seeds=2, batch_size=256, cache_dir=embedding_cache,
              runs_dir=tmp_path / "runs", progress=False, device="cpu", epochs=15)
    said = [str(w.message) for w in caught if "will take about" in str(w.message)]
    assert len(said) == 1 and "sam-conv trains at" in said[0] and "(135 steps: about" in said[0]
    assert "estimated from its first 3 steps; grid heads at this scale are a GPU job" in said[0]


def test_training_threads_follow_the_idle_cores(monkeypatch):
    """A core counts when at least 3/4 of it is idle; never fewer than 1 or more than torch's own
    number; SAMEMBED_THREADS sets it. cpu_threads leaves torch as it found it."""
    import samembed.threads as threads

    monkeypatch.delenv("SAMEMBED_THREADS", raising=False)
    for idle, expected in ((0.0, 1), (0.3, 1), (1.5, 1), (1.8, 2), (2.0, 2), (7.0, 2)):
        monkeypatch.setattr(threads, "idle_cores", lambda idle=idle: idle)
        assert threads.training_threads(2) == expected, idle
    monkeypatch.setenv("SAMEMBED_THREADS", "3")
    assert threads.training_threads(2) == 3
    monkeypatch.delenv("SAMEMBED_THREADS")
    monkeypatch.setattr(threads, "idle_cores", lambda: 0.0)
    before = torch.get_num_threads()
    with threads.cpu_threads(torch.device("cpu")) as n:
        assert n == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with threads.cpu_threads(torch.device("meta")) as n:
        assert n is None
