"""segment-anything-fast's image encoder (pytorch-labs/segment-anything-fast: SDPA, a Triton
kernel with the relative-position bias fused, bf16) with a SAM spec's weights, as a peer to time
beside samembed's path. Used only when its package ``segment_anything_fast`` is importable; it is
no dependency. (The registry's ``segment-anything-fast`` is another project, FastSAM, which
installs ``fastsam``; pytorch-labs' package installs from its repository.)"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from .pixels import PixelNormalise
from .sam import SamEncoderSpec, resize_for_input
from .sam_checkpoint import load_encoder_state_dict


class SamFastEncoder(nn.Module):
    """segment-anything-fast's ``ImageEncoderViT`` behind samembed's normalisation and padding:
    the same inputs as :class:`~samembed.encoders.sam.SamImageEncoder` (uint8 canvases
    (B, 3, S, S), ``valid_hw`` (B, 2)); returns ``(None, neck map (B, 256, S/16, S/16))``."""

    def __init__(self, vit: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.vit, self.dtype = vit, dtype
        self.normalise = PixelNormalise()

    def forward(self, images: torch.Tensor, valid_hw: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, self.vit(self.normalise(images, valid_hw).to(self.dtype))


def sam_fast_problem() -> str | None:
    """Why segment-anything-fast cannot be timed here, or ``None``."""
    try:
        from segment_anything_fast.modeling import ImageEncoderViT  # noqa: F401
    except ImportError as err:  # absent, or its own imports (triton, ...) fail
        return f"segment_anything_fast is not importable ({err}); install pytorch-labs/segment-anything-fast"
    return None


def build_sam_fast(spec: SamEncoderSpec, device: torch.device) -> SamFastEncoder:
    """segment-anything-fast's encoder of ``spec``'s architecture, input size and weights, in its
    own recipe's precision: the weights in bfloat16 on CUDA, float32 on the CPU."""
    from segment_anything_fast.modeling import ImageEncoderViT

    a = spec.arch
    vit = ImageEncoderViT(
        img_size=spec.img_size, patch_size=a.patch_size, in_chans=a.in_chans, embed_dim=a.embed_dim, depth=a.depth,
        num_heads=a.num_heads, mlp_ratio=a.mlp_ratio, out_chans=a.out_chans, qkv_bias=a.qkv_bias,
        norm_layer=partial(nn.LayerNorm, eps=1e-6), act_layer=nn.GELU, use_abs_pos=a.use_abs_pos,
        use_rel_pos=a.use_rel_pos, window_size=a.window_size, global_attn_indexes=a.global_attn_indexes,
    )
    vit.load_state_dict(resize_for_input(load_encoder_state_dict(spec.checkpoint, mmap=False), a, spec.img_size))
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = SamFastEncoder(vit.to(dtype), dtype).to(device).eval()
    model.requires_grad_(False)
    return model
