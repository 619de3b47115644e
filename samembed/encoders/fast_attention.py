"""SAM's relative-position attention through fused kernels, equal to segment_anything's
``Attention`` within float32 rounding (tested).

segment_anything forms the (B*heads, N, N) attention matrix explicitly, adds the decomposed
relative-position bias ``rel_h[q, k_row] + rel_w[q, k_col]`` and applies softmax. Here the
per-query tables rel_h (B, heads, N, h) and rel_w (B, heads, N, w) are computed as there, and the
attention itself runs in one of two kernels:

- ``sdpa``: the bias materialised as (B, heads, N, N) and handed to
  ``F.scaled_dot_product_attention`` as ``attn_mask`` (the memory-efficient backend on CUDA; the
  flash backend takes no mask);
- ``flex``: FlexAttention with a ``score_mod`` that reads the two small tables inside the kernel,
  so nothing of size N x N is stored (compiled; where FlexAttention cannot run, see
  :mod:`samembed.encoders.attention`).

Windowed blocks project q, k and v for the image's tokens only. segment_anything pads the token
grid with zeros to whole windows before the projection, so a padded token's key and value are the
projection's bias alone: they are filled in as such (they still take part in the softmax, as
there), and the padded tokens' outputs, which segment_anything drops, are never projected."""

from __future__ import annotations

import types
from typing import Callable

import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import Attention, Block, get_rel_pos, window_partition, window_unpartition
from torch import nn

# Distinct shapes compiled per process (batch sizes, input sizes, global and windowed blocks):
# beyond torch's default of 8, dynamo would quietly fall back to the unfused implementation.
FLEX_RECOMPILE_LIMIT = 64

Core = Callable[..., torch.Tensor]  # (q, k, v, (h, w), rel_pos_h, rel_pos_w) -> (B, heads, N, d)


def rel_pos_tables(q: torch.Tensor, hw: tuple[int, int], rel_pos_h: torch.Tensor,
                   rel_pos_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q (B, heads, h*w, d) -> rel_h (B, heads, h*w, h), rel_w (B, heads, h*w, w): the terms of
    segment_anything's ``add_decomposed_rel_pos`` for every query and key row or column."""
    b, heads, n, d = q.shape
    h, w = hw
    rq = q.reshape(b * heads, h, w, d)
    rel_h = torch.einsum("bhwc,hkc->bhwk", rq, get_rel_pos(h, h, rel_pos_h).to(q.dtype))
    rel_w = torch.einsum("bhwc,wkc->bhwk", rq, get_rel_pos(w, w, rel_pos_w).to(q.dtype))
    return rel_h.reshape(b, heads, n, h), rel_w.reshape(b, heads, n, w)


def sdpa_rel_pos_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hw: tuple[int, int],
                           rel_pos_h: torch.Tensor | None, rel_pos_w: torch.Tensor | None) -> torch.Tensor:
    """(B, heads, N, d) q, k, v over an h x w grid -> (B, heads, N, d), the bias materialised."""
    bias = None
    if rel_pos_h is not None:
        rel_h, rel_w = rel_pos_tables(q, hw, rel_pos_h, rel_pos_w)
        b, heads, n, _ = q.shape
        bias = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(b, heads, n, n)  # key k = row * w + col
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # scale 1/sqrt(d), as SAM's


_compiled_flex = None


def _more_recompiles():
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # its name before torch 2.6
    return config.patch(**{name: FLEX_RECOMPILE_LIMIT})


def _flex():
    global _compiled_flex
    if _compiled_flex is None:
        from torch.nn.attention.flex_attention import flex_attention

        _compiled_flex = torch.compile(flex_attention, dynamic=False)
    return _compiled_flex


def flex_rel_pos_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hw: tuple[int, int],
                           rel_pos_h: torch.Tensor | None, rel_pos_w: torch.Tensor | None) -> torch.Tensor:
    """As :func:`sdpa_rel_pos_attention`, the bias added inside FlexAttention's kernel."""
    tables = rel_pos_tables(q, hw, rel_pos_h, rel_pos_w) if rel_pos_h is not None else None
    if not torch.compiler.is_compiling():
        with _more_recompiles():
            return _flex_call(_flex(), q, k, v, tables, hw[1])
    if q.device.type == "cuda":  # inside a compiled model: traced into its graph
        from torch.nn.attention.flex_attention import flex_attention

        return _flex_call(flex_attention, q, k, v, tables, hw[1])
    return _flex_apart(q, k, v, tables, hw[1])


def _flex_call(flex, q, k, v, tables, w):
    score_mod = None
    if tables is not None:
        rel_h, rel_w = tables

        def score_mod(score, b, head, q_idx, kv_idx):
            return score + rel_h[b, head, q_idx, kv_idx // w] + rel_w[b, head, q_idx, kv_idx % w]

    return flex(q, k, v, score_mod=score_mod)


@torch.compiler.disable
def _flex_apart(q, k, v, tables, w):
    # Inductor's CPU template takes only a graph's inputs as a score_mod's tables, not buffers
    # computed in the same graph (LoweringException), so on the CPU a compiled model calls the
    # separately compiled kernel.
    with _more_recompiles():
        return _flex_call(_flex(), q, k, v, tables, w)


CORES: dict[str, Core] = {"sdpa": sdpa_rel_pos_attention, "flex": flex_rel_pos_attention}


def _rel_pos(attn: Attention) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    return (attn.rel_pos_h, attn.rel_pos_w) if attn.use_rel_pos else (None, None)


def attention_forward(self: Attention, x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) -> (B, H, W, C), as ``Attention.forward``, through ``self.samembed_core``."""
    b, h, w, _ = x.shape
    qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)  # (3, B, heads, N, d)
    q, k, v = qkv.unbind(0)
    out = CORES[self.samembed_core](q, k, v, (h, w), *_rel_pos(self))
    out = out.view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
    return self.proj(out)


def sdpa_attention_forward(self: Attention, x: torch.Tensor) -> torch.Tensor:
    """:func:`attention_forward` through SDPA (any ``Attention``, patched or not)."""
    b, h, w, _ = x.shape
    qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
    out = sdpa_rel_pos_attention(*qkv.unbind(0), (h, w), *_rel_pos(self))
    return self.proj(out.view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1))


def windowed_attention(attn: Attention, x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) normalised tokens -> (B, H, W, C): segment_anything's ``window_partition``,
    ``Attention`` and ``window_unpartition`` with q, k, v projected for the image's tokens only."""
    b, h, w, c = x.shape
    qkv = attn.qkv(x)  # (B, H, W, 3C)
    pad_h, pad_w = -h % window, -w % window
    if pad_h or pad_w:
        qkv = F.pad(qkv, (0, 0, 0, pad_w, 0, pad_h))
        if attn.qkv.bias is not None:  # the projection of segment_anything's zero padding
            qkv[:, h:] = attn.qkv.bias
            qkv[:, :h, w:] = attn.qkv.bias
    windows, pad_hw = window_partition(qkv, window)  # (B * nW, window, window, 3C)
    n = windows.shape[0]
    q, k, v = windows.reshape(n, window * window, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    out = CORES[attn.samembed_core](q, k, v, (window, window), *_rel_pos(attn))  # (nB, heads, window², d)
    out = window_unpartition(out.transpose(1, 2).reshape(n, window, window, c), window, pad_hw, (h, w))
    return attn.proj(out)


def windowed_block_forward(self: Block, x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) -> (B, H, W, C), as ``Block.forward`` with ``window_size > 0``."""
    x = x + windowed_attention(self.attn, self.norm1(x), self.window_size)
    return x + self.mlp(self.norm2(x))


def use_fast_attention(vit: nn.Module, global_blocks: str = "sdpa", windowed_blocks: str = "sdpa") -> nn.Module:
    """Run every block of ``vit`` (an ``ImageEncoderViT``) through the kernel named for its kind
    (``sdpa`` or ``flex``, :data:`CORES`); windowed blocks without projecting padding."""
    for block in vit.blocks:
        windowed = block.window_size > 0
        block.attn.samembed_core = windowed_blocks if windowed else global_blocks
        block.attn.forward = types.MethodType(attention_forward, block.attn)
        if windowed:
            block.forward = types.MethodType(windowed_block_forward, block)
    return vit

