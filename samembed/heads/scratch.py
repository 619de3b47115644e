"""Classifiers trained from scratch on the raw images (not the cache): the study's baselines
against frozen features. They see the images resized and padded to 64 x 64 (EuroSAT's own size),
normalised like SAM's input, with random flips while training, on exactly the heads' splits."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18

from ..encoders.pixels import PixelNormalise
from .registry import register_head


class FromScratch(nn.Module):
    """(B, 3, S, S) pixel values 0-255 (any dtype) -> (B, classes) logits of ``net``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.normalise = PixelNormalise()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.normalise(images)
        if self.training:  # aerial tiles have no up or left: flip each image at random
            flip = torch.rand(2, x.shape[0], 1, 1, 1, device=x.device) < 0.5
            x = torch.where(flip[0], x.flip(-1), x)
            x = torch.where(flip[1], x.flip(-2), x)
        return self.net(x)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


@register_head("cnn", kind="scratch", summary="baseline: a compact CNN (4 double-conv blocks, 32-256 channels) trained from scratch on the raw 64x64 images")
def compact_cnn(num_classes: int) -> nn.Module:
    """(B, 3, 64, 64) -> (B, classes)."""
    return FromScratch(nn.Sequential(
        _block(3, 32), _block(32, 64), _block(64, 128), _block(128, 256),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(256, num_classes),
    ))


@register_head("resnet18", kind="scratch", summary="baseline: torchvision's ResNet-18, randomly initialised, trained from scratch on the raw images")
def resnet18_scratch(num_classes: int) -> nn.Module:
    return FromScratch(resnet18(weights=None, num_classes=num_classes))
