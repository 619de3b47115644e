"""CUDA extraction (skipped without a GPU): bfloat16 autocast agrees with the float32 CPU path."""

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
