"""``sam-conv`` for segmentation: convolutions on the cached 64 x 64 map, transposed convolutions
up to the 256 x 256 mask grid (4x, as SAM's own decoder), a 1 x 1 convolution to road logits.

Our re-implementation of the study's SAM-CONV decoder (its exact layers are not published).
Predictions go from 256 x 256 to the input and original resolution bilinearly, as SAM's
low-resolution masks do."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from .registry import register_head


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU())


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 2, stride=2, bias=False), nn.BatchNorm2d(cout), nn.GELU())


@register_head("sam-conv", kind="decoder", task="segmentation",
               summary="re-implementation of the study's SAM-CONV decoder: 3x3 convs, 2 transposed convs (4x), 1x1 to logits")
def sam_conv_decoder(in_shape: tuple[int, int, int], checkpoint: Path | None = None, width: int = 128) -> nn.Module:
    """(B, C, G, G) map -> (B, 1, 4G, 4G) road logits."""
    return nn.Sequential(
        _conv(in_shape[0], width), _conv(width, width),
        _up(width, width // 2), _conv(width // 2, width // 2),
        _up(width // 2, width // 4), nn.Conv2d(width // 4, 1, 1),
    )
