"""``sam-conv``: convolution blocks on the cached grid map, global pooling, a classifier.

Our re-implementation of the study's SAM-CONV classification head (its exact layers are not
published): a 1x1 convolution reduces SAM's 256 channels, two 3x3 convolution blocks mix
neighbouring cells, global average pooling and a linear layer classify."""

from __future__ import annotations

from torch import nn

from .registry import register_head


def _block(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.GELU())


@register_head("sam-conv", kind="grid", summary="re-implementation of the study's SAM-CONV: 1x1 + two 3x3 conv blocks, pooling, linear")
def sam_conv_head(in_shape: tuple[int, int, int], num_classes: int, width: int = 128) -> nn.Module:
    """(B, C, G, G) grid map -> (B, num_classes) logits."""
    channels = in_shape[0]
    return nn.Sequential(
        _block(channels, width, 1), _block(width, width, 3), _block(width, width, 3),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(width, num_classes),
    )
