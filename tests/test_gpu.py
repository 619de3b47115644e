"""CUDA (skipped without a GPU): bfloat16 autocast agrees with the float32 CPU path, the fast
paths (SDPA and FlexAttention) with segment_anything's float32 reference, and FlexAttention with
SDPA kernel by kernel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from samembed import extract, open_cache
from samembed.encoders.attention import WINDOWED_AUTO, AttentionPath, flex_problem

CUDA = torch.device("cuda")

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
    # auto: FlexAttention in the global blocks where it runs, named in the bf16 signature only
    flex = flex_problem(CUDA, 16, torch.bfloat16) is None
    assert gpu.signature.get("attention") == (f"flex,{WINDOWED_AUTO}" if flex else None)
    assert "attention" not in cpu.signature
    for name in ("neck", "trunk"):
        a, b = cpu.read(name).astype(np.float32), gpu.read(name).astype(np.float32)
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        assert cosine.min() > 0.99, (name, cosine.min())


def test_fast_path_matches_the_float32_reference_on_the_gpu(tmp_path):
    """Issue 7's accuracy target: per-image cosine of the bf16 fast path's embeddings and
    segment_anything's float32 path at least 0.999 (vit_b shape, random weights, 1024)."""
    from samembed.bench import bench

    (row,) = bench(["vit_b"], [1024], images=10, device="cuda", reference_images=4, say=lambda line: None)
    assert row.cosine_min >= 0.999, row  # (b): SDPA
    assert row.flex_note is None and row.flex_cosine_min >= 0.999, row  # (e): FlexAttention
    assert row.encoder_ips > row.reference_ips and row.flex_ips > row.reference_ips
    assert row.peak_memory_gib > 0
    assert row.mfu is None or row.mfu > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("batch, heads, hw, head_dim", [
    (2, 12, (64, 64), 64),  # vit_b's global blocks at 1024
    (1, 16, (64, 64), 80),  # vit_h's (a head size that is no power of two)
    (50, 12, (14, 14), 64),  # windowed blocks: 2 images x 25 windows
    (2, 4, (9, 12), 64),  # a non-square grid: the key's row is k // w, its column k % w
])
def test_flexattention_matches_sdpa_on_the_gpu(batch, heads, hw, head_dim, dtype):
    from samembed.encoders.fast_attention import flex_rel_pos_attention, sdpa_rel_pos_attention

    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(batch, heads, hw[0] * hw[1], head_dim, device=CUDA, generator=gen).to(dtype)
               for _ in range(3))
    rel_h, rel_w = (0.1 * torch.randn(2 * n - 1, head_dim, device=CUDA, generator=gen).to(dtype) for n in hw)
    with torch.inference_mode():
        flex = flex_rel_pos_attention(q, k, v, hw, rel_h, rel_w).float()
        sdpa = sdpa_rel_pos_attention(q, k, v, hw, rel_h, rel_w).float()
    if dtype == torch.float32:
        torch.testing.assert_close(flex, sdpa, atol=1e-4, rtol=1e-4)
    else:  # both round to bf16 in different places: compare each query's output direction
        cosine = torch.nn.functional.cosine_similarity(flex.flatten(0, 2), sdpa.flatten(0, 2), dim=1)
        assert cosine.min() >= 0.999, float(cosine.min())


def test_a_compiled_encoder_with_flexattention_matches_the_uncompiled_one(tiny_checkpoint):
    """Compiled, FlexAttention is traced into the model's graph on CUDA (a separate kernel on the CPU)."""
    from samembed.encoders import create_encoder

    spec = create_encoder("sam", checkpoint=tiny_checkpoint, img_size=256)
    spec.attention = AttentionPath("flex", "flex")
    model = spec.build(CUDA)
    images = torch.randint(0, 256, (4, 3, 256, 256), dtype=torch.uint8, device=CUDA)
    valid = torch.tensor([[256, 256]] * 4, device=CUDA)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        eager = model(images, valid)[1].float().flatten(1)
        compiled = torch.compile(model, dynamic=False)(images, valid)[1].float().flatten(1)
    assert torch.nn.functional.cosine_similarity(eager, compiled, dim=1).min() >= 0.999
