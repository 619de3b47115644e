"""The idle-core thread policy (samembed/threads.py) covers every CPU stage (issue 22): prompting
beside one busy process ran at 2.4 prompts/s with torch's 2 threads and 12.1 with 1. Each test
sets torch to 2 threads and SAMEMBED_THREADS to 1, and checks the number torch runs with inside
the stage's work (and that torch is left as it was)."""

from __future__ import annotations

import pytest
import torch

import samembed
import samembed.extraction.encode as encode
from samembed.datasets import make_synthetic_roads
from samembed.prompting.predictor import CachePredictor


@pytest.fixture()
def one_thread_policy(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setenv("SAMEMBED_THREADS", "1")
    yield
    torch.set_num_threads(before)


def watch_threads(monkeypatch, owner, name: str) -> list[int]:
    """Record torch's thread count at each call of ``owner.name``."""
    seen, real = [], getattr(owner, name)

    def watched(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, watched)
    return seen


@pytest.fixture(scope="module")
def roads_cache(tmp_path_factory, tiny_checkpoint):
    tmp = tmp_path_factory.mktemp("threads")
    data = make_synthetic_roads(tmp / "data", counts=(4, 2, 2), size=48)
    samembed.extract("road", data_dir=data, checkpoint=tiny_checkpoint, img_size=128, workers=0, progress=False,
                     cache_dir=tmp / "cache")
    return tmp / "cache"


def test_extraction_on_the_cpu_runs_with_the_policys_threads_and_records_them(tmp_path, tiny_checkpoint,
                                                                              one_thread_policy, monkeypatch):
    seen = watch_threads(monkeypatch, encode, "_launch")
    data = make_synthetic_roads(tmp_path / "data", counts=(2, 1, 1), size=40)
    samembed.extract("road", data_dir=data, checkpoint=tiny_checkpoint, img_size=64, workers=0, progress=False,
                     cache_dir=tmp_path / "cache")
    assert seen and set(seen) == {1} and torch.get_num_threads() == 2
    (run,) = samembed.open_cache(tmp_path / "cache", "road").extraction_runs
    assert run["threads"] == 1


def test_prompting_runs_with_the_policys_threads(roads_cache, one_thread_policy, monkeypatch):
    seen = watch_threads(monkeypatch, CachePredictor, "logits")
    image = str(samembed.open_cache(roads_cache, "road").read("image_ids")[0])
    samembed.prompt("road", image=image, points=["10,10"], cache_dir=roads_cache)
    assert seen and set(seen) == {1} and torch.get_num_threads() == 2


def test_zero_shot_heads_run_inside_the_training_policy(roads_cache, one_thread_policy, monkeypatch, tmp_path):
    seen = watch_threads(monkeypatch, CachePredictor, "logits")
    samembed.sweep("road", heads=["sam-1point"], splits=["standard"], cache_dir=roads_cache,
                   runs_dir=tmp_path / "runs", progress=False)
    assert seen and set(seen) == {1} and torch.get_num_threads() == 2
