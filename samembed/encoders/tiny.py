"""Tiny SAM-format checkpoints with random weights, for tests, the quickstart and benchmarks.

They are built from ``segment_anything.modeling`` classes exactly as ``build_sam`` builds the real
models, only smaller, and saved as a plain state dict like the official files, so every code path
that reads a real checkpoint reads these too. Their embeddings mean nothing."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from torch import nn

from .sam_checkpoint import VARIANTS


def build_sam(
    embed_dim: int = 32, depth: int = 2, num_heads: int = 2, global_attn_indexes: tuple[int, ...] = (1,),
    out_chans: int = 32, img_size: int = 1024, patch_size: int = 16, window_size: int = 14, seed: int = 0,
) -> Sam:
    """A complete randomly initialised ``Sam`` (image encoder, prompt encoder, mask decoder)."""
    torch.manual_seed(seed)
    tokens = img_size // patch_size
    encoder = ImageEncoderViT(
        img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
        mlp_ratio=4, out_chans=out_chans, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6),
        use_rel_pos=True, rel_pos_zero_init=False, window_size=window_size, global_attn_indexes=global_attn_indexes,
    )
    with torch.no_grad():  # zero-initialised tables would hide mistakes in their handling
        encoder.pos_embed.normal_(0, 0.02)
        for block in encoder.blocks:
            block.attn.rel_pos_h.normal_(0, 0.02)
            block.attn.rel_pos_w.normal_(0, 0.02)
    sam = Sam(
        image_encoder=encoder,
        prompt_encoder=PromptEncoder(
            embed_dim=out_chans, image_embedding_size=(tokens, tokens), input_image_size=(img_size, img_size),
            mask_in_chans=8,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            # 8 heads, as every published SAM: the checkpoint's tensors do not say, so readers assume it
            transformer=TwoWayTransformer(depth=2, embedding_dim=out_chans, mlp_dim=2 * out_chans, num_heads=8),
            transformer_dim=out_chans, iou_head_depth=2, iou_head_hidden_dim=out_chans,
        ),
    )
    return sam.eval()


def write_tiny_checkpoint(path: str | Path, **kwargs) -> Path:
    """Save :func:`build_sam` ``(**kwargs)``'s state dict to ``path`` in the official format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(build_sam(**kwargs).state_dict(), path)
    return path


def variant_state_dict_shapes(variant: str) -> dict[str, torch.Size]:
    """Tensor shapes of a published variant's image encoder, built on the meta device (no memory)."""
    dim, depth, heads, glob = VARIANTS[variant]
    with torch.device("meta"):
        enc = ImageEncoderViT(
            img_size=1024, embed_dim=dim, depth=depth, num_heads=heads, mlp_ratio=4, out_chans=256,
            qkv_bias=True, use_rel_pos=True, window_size=14, global_attn_indexes=glob,
        )
    return {k: v.shape for k, v in enc.state_dict().items()}
