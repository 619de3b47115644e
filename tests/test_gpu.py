"""CUDA (skipped without a GPU): bfloat16 autocast agrees with the float32 CPU path, and the fast
path with segment_anything's float32 reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from samembed import extract, open_cache

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_cuda_bf16_embeddings_agree_with_cpu_float32(eurosat_dir, tiny_checkpoint, tmp_path):
    common = dict(data_dir=eurosat_dir, checkpoint=tiny_checkpoint, img_size=256, grid=8, progress=False)
    extract("eurosat", cache_dir=tmp_path / "cpu", device="cpu", workers=0, **common)
    extract("eurosat", cache_dir=tmp_path / "gpu", device="cuda", workers=2, **common)
    cpu, gpu = open_cache(tmp_path / "cpu", "eurosat"), open_cache(tmp_path / "gpu", "eurosat")
    assert gpu.signature["compute_dtype"] == "bfloat16" and cpu.signature["compute_dtype"] == "float32"
    for name in ("neck", "trunk"):
        a, b = cpu.read(name).astype(np.float32), gpu.read(name).astype(np.float32)
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        assert cosine.min() > 0.99, (name, cosine.min())


def test_fast_path_matches_the_float32_reference_on_the_gpu(tmp_path):
    """Issue 7's accuracy target: per-image cosine of the bf16 fast path's embeddings and
    segment_anything's float32 path at least 0.999 (vit_b shape, random weights, 1024)."""
    from samembed.bench import bench

    (row,) = bench(["vit_b"], [1024], images=10, device="cuda", reference_images=4, say=lambda line: None)
    assert row.cosine_min >= 0.999, row
    assert row.encoder_ips > row.reference_ips
    assert row.peak_memory_gib > 0
    assert row.mfu is None or row.mfu > 0
