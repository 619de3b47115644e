"""``unet``: the study's baseline, a UNet trained from scratch on the raw images (not the cache),
at the decoders' mask resolution, on the same splits and targets."""

from __future__ import annotations

import torch
from torch import nn

from ..encoders.pixels import PixelNormalise
from .registry import register_head



def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Ronneberger et al.'s UNet, compact: ``levels`` poolings, ``width`` channels at the top,
    doubling per level. (B, 3, M, M) uint8 -> (B, 1, M, M) logits; M divisible by 2**levels."""

    def __init__(self, width: int = 16, levels: int = 4):
        super().__init__()
        self.normalise = PixelNormalise()  # the same 0-255 normalisation as SAM's inputs
        widths = [width * 2 ** i for i in range(levels + 1)]
        self.down = nn.ModuleList([_double_conv(3, widths[0])] + [
            _double_conv(widths[i], widths[i + 1]) for i in range(levels)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(levels)])
        self.merge = nn.ModuleList([_double_conv(2 * widths[i], widths[i]) for i in range(levels)])
        self.out = nn.Conv2d(widths[0], 1, 1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.normalise(images)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for i in reversed(range(len(self.up))):
            x = self.merge[i](torch.cat([skips.pop(), self.up[i](x)], dim=1))
        return self.out(x)


@register_head("unet", kind="raw", task="segmentation",
               summary="baseline: a compact UNet (4 levels, 16-256 channels) trained from scratch on the raw images")
def unet(width: int = 16, levels: int = 4) -> nn.Module:
    return UNet(width, levels)
