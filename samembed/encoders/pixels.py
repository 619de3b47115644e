"""What every encoder and every model trained on raw images does to pixels: SAM's (ImageNet's)
normalisation on the 0-255 scale, zero padding after normalising, and means over the part of a
map that covers the image rather than the padding (or pixels that hold no data)."""

from __future__ import annotations

import torch
from torch import nn

PIXEL_MEAN = (123.675, 116.28, 103.53)  # on the 0-255 scale, as segment_anything's Sam (= ImageNet's)
PIXEL_STD = (58.395, 57.12, 57.375)


def valid_mask(valid_hw: torch.Tensor, size: int, scale: int = 1) -> torch.Tensor:
    """(B, 1, size, size) float mask of the valid region; ``valid_hw`` (B, 2) is in pixels,
    ``scale`` pixels per mask cell (partly covered cells count as valid)."""
    hw = torch.div(valid_hw + scale - 1, scale, rounding_mode="floor")
    ar = torch.arange(size, device=valid_hw.device)
    rows = ar[None, :] < hw[:, :1]  # (B, size)
    cols = ar[None, :] < hw[:, 1:]
    return (rows[:, :, None] & cols[:, None, :]).unsqueeze(1).float()


def token_mask(valid_hw: torch.Tensor, size: int, scale: int, data: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 1, size, size) float mask of the tokens (``scale`` x ``scale`` pixels each) that count
    for pooled vectors: those that cover the image (:func:`valid_mask`) and, given the (B, 1, S, S)
    bool ``data`` mask of a raster, of whose pixels at least half hold data."""
    mask = valid_mask(valid_hw, size, scale)
    if data is not None:
        share = torch.nn.functional.avg_pool2d(data.float(), scale)[..., :size, :size]
        mask = mask * (share >= 0.5).float()
    return mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, C, H, W) ``x`` over the cells where (B, 1, H, W) ``mask`` is 1 -> (B, C)."""
    return (x * mask).sum(dim=(2, 3)) / mask.sum(dim=(2, 3)).clamp_min(1)


class PixelNormalise(nn.Module):
    """(B, C, S, S) pixel values (any dtype) -> float, normalised per band with ``mean`` and
    ``std`` (default: SAM's and ImageNet's, on the 0-255 scale, C = 3); with ``valid_hw`` (B, 2)
    the padding outside each image's valid region is set to zero after normalising, as SAM does,
    and so are the pixels that hold no data where a (B, 1, S, S) bool ``data`` mask is given."""

    def __init__(self, mean: tuple[float, ...] = PIXEL_MEAN, std: tuple[float, ...] = PIXEL_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor, valid_hw: torch.Tensor | None = None,
                data: torch.Tensor | None = None) -> torch.Tensor:
        x = (images.float() - self.mean) / self.std
        if valid_hw is not None:
            x = x * valid_mask(valid_hw, images.shape[-1])
        return x if data is None else x * data

