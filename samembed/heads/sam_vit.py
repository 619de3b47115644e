"""``sam-vit``: the grid map as tokens, a learned class token, a few transformer encoder layers.

Our re-implementation of the study's SAM-ViT classification head (its exact layers are not
published): each of the G x G cells becomes a token, projected to ``dim`` with a learned position
embedding; a class token is prepended; two pre-norm transformer encoder layers; the class token's
output is classified."""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_head


class GridTransformer(nn.Module):
    def __init__(self, in_shape: tuple[int, int, int], num_classes: int, dim: int = 128, depth: int = 2, heads: int = 4):
        super().__init__()
        channels, gh, gw = in_shape
        self.proj = nn.Linear(channels, dim)
        self.pos = nn.Parameter(torch.zeros(1, gh * gw, dim).normal_(0, 0.02))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.1, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.classify = nn.Linear(dim, num_classes)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        """(B, C, G, G) -> (B, num_classes)."""
        tokens = self.proj(grid.flatten(2).transpose(1, 2)) + self.pos  # (B, G*G, dim)
        tokens = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1)
        return self.classify(self.norm(self.encoder(tokens)[:, 0]))


@register_head("sam-vit", kind="grid", summary="re-implementation of the study's SAM-ViT: grid tokens, class token, 2 transformer layers")
def sam_vit_head(in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    return GridTransformer(in_shape, num_classes)
