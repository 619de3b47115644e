"""SAM's attention through ``torch.nn.functional.scaled_dot_product_attention``.

segment_anything's ``Attention.forward`` forms the (B*heads, N, N) attention matrix explicitly,
adds the decomposed relative-position bias and applies softmax. Here the same bias is built
(B, heads, N, N) and handed to SDPA as ``attn_mask``, which dispatches to a fused kernel (the
memory-efficient backend on CUDA; flash attention cannot take a mask). Numerically the same
computation: equal to the original within float32 rounding (tested)."""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import Attention, get_rel_pos
from torch import nn


def sdpa_attention_forward(self: Attention, x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) -> (B, H, W, C), as ``Attention.forward``."""
    b, h, w, _ = x.shape
    heads = self.num_heads
    qkv = self.qkv(x).reshape(b, h * w, 3, heads, -1).permute(2, 0, 3, 1, 4)  # (3, B, heads, N, d)
    q, k, v = qkv.unbind(0)
    bias = None
    if self.use_rel_pos:
        d = q.shape[-1]
        rq = q.reshape(b * heads, h, w, d)
        rh = get_rel_pos(h, h, self.rel_pos_h).to(q.dtype)
        rw = get_rel_pos(w, w, self.rel_pos_w).to(q.dtype)
        rel_h = torch.einsum("bhwc,hkc->bhwk", rq, rh)  # (B*heads, h, w, h)
        rel_w = torch.einsum("bhwc,wkc->bhwk", rq, rw)  # (B*heads, h, w, w)
        bias = (rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]).reshape(b, heads, h * w, h * w)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # default scale 1/sqrt(d), as SAM's
    out = out.view(b, heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
    return self.proj(out)


def use_sdpa(vit: nn.Module) -> nn.Module:
    """Switch every ``Attention`` of ``vit`` (an ``ImageEncoderViT``) to :func:`sdpa_attention_forward`."""
    for module in vit.modules():
        if isinstance(module, Attention):
            module.forward = types.MethodType(sdpa_attention_forward, module)
    return vit
