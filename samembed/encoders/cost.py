"""The analytic cost of SAM's image encoder: multiply-accumulates per image, counted layer by
layer as segment_anything computes them (windowed blocks pad the token grid to whole 14 x 14
windows for attention, while their MLP runs on the unpadded tokens). Matches the published
2973 GMACs of vit_h at 1024 (EfficientViT-SAM, Zhang et al. 2024, Table 1) within 0.3 %. FLOPs = 2 x MACs."""

from __future__ import annotations

import math

from .sam_checkpoint import SamArch


def encoder_macs(arch: SamArch, img_size: int) -> int:
    """Multiply-accumulates of one image through patch embedding, every block and the neck."""
    t = img_size // arch.patch_size  # tokens per side
    c = arch.embed_dim
    n = t * t
    hidden = int(c * arch.mlp_ratio)
    macs = n * arch.patch_size ** 2 * arch.in_chans * c  # patch embedding
    for i in range(arch.depth):
        mlp = 2 * n * c * hidden
        if i in arch.global_attn_indexes or arch.window_size == 0:
            tokens, span, side = n, n, t  # every token attends to every token
        else:
            padded = math.ceil(t / arch.window_size) * arch.window_size
            tokens, span, side = padded * padded, arch.window_size ** 2, arch.window_size
        qkv_proj = 4 * tokens * c * c
        attention = 2 * tokens * span * c  # q @ k^T and attn @ v
        rel_pos = 2 * tokens * side * c if arch.use_rel_pos else 0
        macs += qkv_proj + attention + rel_pos + mlp
    macs += n * c * arch.out_chans + n * arch.out_chans * arch.out_chans * 9  # neck: 1x1 and 3x3 convolutions
    return macs
