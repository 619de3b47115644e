"""Small checkpoints with random weights in the official key layouts of the encoders whose weights
cannot be downloaded here (Prithvi-EO-2.0, DINOv3; SAM 2's is
:func:`samembed.encoders.sam2.write_tiny_sam2_checkpoint`), for tests, the quickstart and
benchmarks. Each is written the way its publisher's files are (keys, nesting, extra tensors the
encoder ignores), so every code path that reads a real checkpoint reads these too. Their
embeddings mean nothing."""

from __future__ import annotations

from pathlib import Path

import torch


def prithvi_state_dict(embed_dim: int = 64, depth: int = 2, num_heads: int = 1, patch: int = 16, frames: int = 4,
                       decoder_dim: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """A Prithvi-EO-2.0 MAE state dict as the official ``Prithvi_EO_V2_*.pt`` files hold it:
    ``encoder.*`` (a 3D patch embedding over ``frames`` frames, fixed 3D sin-cos positions,
    timm-style blocks, norm) beside ``decoder.*`` tensors, which the encoder ignores."""
    from timm.models.vision_transformer import Block

    from .prithvi import PrithviArch, sincos_positions

    torch.manual_seed(seed)
    arch = PrithviArch(embed_dim, depth, num_heads, patch)
    tokens = (arch.native_img_size // patch) ** 2
    sd = {"encoder.patch_embed.proj.weight": torch.randn(embed_dim, 6, 1, patch, patch) * 0.02,
          "encoder.patch_embed.proj.bias": torch.randn(embed_dim) * 0.02,
          "encoder.cls_token": torch.randn(1, 1, embed_dim) * 0.02,
          "encoder.pos_embed": sincos_positions(arch, frames)}
    for i in range(depth):
        block = Block(embed_dim, num_heads, 4.0, qkv_bias=True)
        for name, value in block.state_dict().items():
            sd[f"encoder.blocks.{i}.{name}"] = value + 0.02 * torch.randn_like(value)  # not all-ones norms
    sd["encoder.norm.weight"] = 1 + 0.1 * torch.randn(embed_dim)
    sd["encoder.norm.bias"] = 0.1 * torch.randn(embed_dim)
    sd["decoder.decoder_embed.weight"] = torch.randn(decoder_dim, embed_dim) * 0.02
    sd["decoder.mask_token"] = torch.zeros(1, 1, decoder_dim)
    sd["decoder.decoder_pos_embed"] = torch.zeros(1, 1 + frames * tokens, decoder_dim)
    return sd


def write_prithvi_checkpoint(path: str | Path, **kwargs) -> Path:
    """Save :func:`prithvi_state_dict` ``(**kwargs)`` to ``path`` (a plain state dict, as published)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(prithvi_state_dict(**kwargs), path)
    return path


def dinov3_official_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A timm DINOv3 model's weights in the keys of Meta's ``dinov3_*_pretrain_*.pth`` files:
    ``storage_tokens`` for the registers, ``ls1.gamma``/``ls2.gamma`` for layer scales, a fused
    ``qkv.bias`` with its ``bias_mask`` (zero biases where timm's model has none), the
    pretraining-only ``mask_token`` and the rotary ``rope_embed.periods``."""
    sd = {}
    for k, v in model.state_dict().items():
        k = k.replace("reg_token", "storage_tokens").replace("gamma_1", "ls1.gamma").replace("gamma_2", "ls2.gamma")
        sd[k] = v.clone()
    width = sd["cls_token"].shape[-1]
    for i in range(len(model.blocks)):
        q, v = sd.pop(f"blocks.{i}.attn.q_bias", None), sd.pop(f"blocks.{i}.attn.v_bias", None)
        sd[f"blocks.{i}.attn.qkv.bias"] = torch.cat([q, torch.zeros_like(q), v]) if q is not None \
            else torch.zeros(3 * width)
        sd[f"blocks.{i}.attn.qkv.bias_mask"] = torch.ones(3 * width)
    sd["mask_token"] = torch.zeros(1, width)
    sd["rope_embed.periods"] = torch.ones(width // model.blocks[0].attn.num_heads // 4)
    return sd


def write_dinov3_checkpoint(path: str | Path, variant: str = "vits16", seed: int = 0) -> Path:
    """A randomly initialised DINOv3 ``variant`` (timm's architecture) saved in the official layout."""
    import timm

    from .dinov3 import VARIANTS

    torch.manual_seed(seed)
    model = timm.create_model(VARIANTS[variant].timm_name, pretrained=False, num_classes=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(dinov3_official_state_dict(model), path)
    return path
