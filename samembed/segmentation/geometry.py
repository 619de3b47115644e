"""Where a mask's pixels go: the original image, SAM's resized-and-padded input square, and the
decoders' output grid.

An (H, W) image becomes an (h, w) image with its longest side ``img_size`` (SAM's
``ResizeLongestSide``), placed in the top-left corner of an ``img_size`` square. Decoders predict
on an ``out_size`` square over the same canvas (SAM's 256 x 256 low-resolution masks at 1024).
Masks are resized with nearest-exact sampling, so for images no larger than ``img_size``
original -> canvas -> original gives back every pixel exactly. Predictions (probabilities) go back
bilinearly."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.utils.transforms import ResizeLongestSide


def input_shape(orig_hw: tuple[int, int], img_size: int) -> tuple[int, int]:
    """(h, w) of an (H, W) image resized so that its longest side is ``img_size``."""
    return ResizeLongestSide.get_preprocess_shape(int(orig_hw[0]), int(orig_hw[1]), img_size)


def mask_to_canvas(mask: np.ndarray, img_size: int) -> torch.Tensor:
    """(H, W) bool -> (img_size, img_size) bool: resized like the image, zero padding."""
    h, w = input_shape(mask.shape, img_size)
    resized = F.interpolate(torch.from_numpy(np.ascontiguousarray(mask))[None, None].float(), size=(h, w),
                            mode="nearest-exact")[0, 0]
    canvas = torch.zeros(img_size, img_size)
    canvas[:h, :w] = resized
    return canvas > 0.5


def mask_targets(mask: np.ndarray, img_size: int, out_size: int) -> torch.Tensor:
    """(H, W) bool -> (out_size, out_size) uint8 training target: the share of foreground pixels
    of the canvas in each output cell, times 255 (soft at edges; padding is 0)."""
    canvas = mask_to_canvas(mask, img_size).float()[None, None]
    share = F.adaptive_avg_pool2d(canvas, out_size)[0, 0]
    return (share * 255).round().to(torch.uint8)


def canvas_to_original(x: torch.Tensor, orig_hw: tuple[int, int], img_size: int, mode: str = "bilinear") -> torch.Tensor:
    """(..., S, S) values on the canvas grid (any S; S = img_size is the input square) -> (..., H, W)
    at the original resolution: the image's part of the square, resized back. ``mode`` is
    ``nearest-exact`` for masks, ``bilinear`` for probabilities or logits."""
    size = x.shape[-1]
    h, w = input_shape(orig_hw, img_size)
    lead = x.shape[:-2]
    x = x.reshape(1, -1, size, size).float()
    if size != img_size:
        x = F.interpolate(x, size=(img_size, img_size), mode=mode)
    x = x[..., :h, :w]
    x = F.interpolate(x, size=(int(orig_hw[0]), int(orig_hw[1])), mode=mode)
    return x.reshape(*lead, int(orig_hw[0]), int(orig_hw[1]))
