"""Where an image's pixels go on their way into an encoder and back: the one object that every
stage asks (the loader, the decoders' targets and predictions, the report, prompts), so that
nothing recomputes it.

An (H, W) image is resized so that its longest side is ``img_size`` (SAM's ``ResizeLongestSide``:
aspect kept, PIL bilinear) and placed in the top-left corner of an ``img_size`` square; the rest
is padding. Some encoders (SAM 2) instead stretch every image to the whole square, aspect not
kept (``resize="square"``): then nothing is padding, and points, boxes and masks are scaled by
S/W and S/H separately. The feature map has one cell per ``patch`` x ``patch`` pixels of the
square. Masks go to the square with nearest-exact sampling, so for images no larger than
``img_size`` original -> square -> original gives back every pixel; predictions (probabilities,
logits) go back bilinearly.

The canvas an image becomes is uint8 (3 bands, SAM's PIL resize: 4 x less to copy than
float32) or float32 (``pixels="float32"``: any number of bands, resized with torch's bilinear
antialiased interpolation and not rounded; for encoders whose own preprocessing is in floating
point, or whose input is reflectance rather than 8-bit colour)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


RESIZES = {
    "longest-side": "longest side resized to img_size, aspect kept, top-left on a zero square",
    "square": "stretched to img_size x img_size, aspect not kept (no padding)",
}


@dataclass(frozen=True)
class Geometry:
    """The input square of an encoder: ``img_size`` pixels a side, ``patch`` pixels per feature
    cell. Picklable: loader workers call :meth:`canvas`."""

    img_size: int
    patch: int = 16
    resize: str = "longest-side"  # or "square": stretched to the whole square, aspect not kept
    pixels: str = "uint8"  # the canvas dtype: "uint8" (3 bands) or "float32" (any bands)
    channels: int = 3

    def __post_init__(self):
        if self.resize not in RESIZES or self.pixels not in ("uint8", "float32"):
            raise ValueError(f"unknown geometry resize={self.resize!r} pixels={self.pixels!r}")

    @classmethod
    def from_signature(cls, encoder: dict) -> Geometry:
        """The geometry that a cache group's encoder signature records (groups made before SAM 2
        record none: SAM's longest-side resize)."""
        stored = encoder.get("geometry", {})
        patch = stored.get("patch", encoder.get("arch", {}).get("patch_size", 16))
        return cls(int(encoder["img_size"]), int(patch), stored.get("resize", "longest-side"),
                   stored.get("pixels", "uint8"), int(stored.get("channels", 3)))

    def to_dict(self) -> dict:
        """What the cache signature records (:meth:`from_signature` reads it back)."""
        return {"resize": self.resize, "patch": self.patch, "pixels": self.pixels, "channels": self.channels,
                "rule": RESIZES[self.resize]}

    @property
    def map_size(self) -> int:
        """Side T of the (C, T, T) feature map."""
        return self.img_size // self.patch

    def input_shape(self, orig_hw) -> tuple[int, int]:
        """(h, w) of an (H, W) image on the square: its longest side becomes ``img_size``, or
        (with ``resize="square"``) both sides do."""
        if self.resize == "square":
            return self.img_size, self.img_size
        h, w = int(orig_hw[0]), int(orig_hw[1])
        scale = self.img_size / max(h, w)
        return int(h * scale + 0.5), int(w * scale + 0.5)  # as segment_anything's get_preprocess_shape

    # -- images ------------------------------------------------------------------------------

    def canvas(self, rgb: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """(H, W, C) pixels -> ((C, S, S) canvas with the resized image top-left on zeros, (h, w)).

        uint8 canvases (``pixels="uint8"``, 3 bands) use segment_anything's own resize
        (``ResizeLongestSide``, PIL bilinear). float32 canvases are resized in float32 with torch's
        bilinear antialiased interpolation (torchvision's ``Resize`` on tensors, as SAM 2 does) and
        keep the values' scale (0-255, or reflectance). Normalising and zeroing the padding happen
        later, on the device."""
        h, w = self.input_shape(rgb.shape[:2])
        if rgb.shape[-1] != self.channels:
            raise ValueError(f"{rgb.shape[-1]} bands given to an encoder that takes {self.channels}")
        if self.pixels == "uint8":
            from segment_anything.utils.transforms import ResizeLongestSide

            resized = ResizeLongestSide(self.img_size).apply_image(rgb)  # (h, w, 3) uint8
            canvas = torch.zeros(3, self.img_size, self.img_size, dtype=torch.uint8)
            canvas[:, :h, :w] = torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1)
            return canvas, (h, w)
        x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
        if x.shape[-2:] != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        canvas = torch.zeros(self.channels, self.img_size, self.img_size, dtype=torch.float32)
        canvas[:, :h, :w] = x[0]
        return canvas, (h, w)

    def blank(self, side: int | None = None) -> torch.Tensor:
        """A (C, side, side) canvas of zeros (default side: ``img_size``), for an unreadable image."""
        side = self.img_size if side is None else side
        return torch.zeros(self.channels, side, side, dtype=getattr(torch, self.pixels))

    __call__ = canvas  # a Geometry is the loader's per-image preprocessing

    # -- points and boxes --------------------------------------------------------------------

    def points_to_input(self, xy: np.ndarray, orig_hw) -> np.ndarray:
        """(..., 2) x, y in original pixels -> the same points on the square (SamPredictor's
        ``apply_coords``)."""
        h, w = self.input_shape(orig_hw)
        out = np.array(xy, dtype=np.float64, copy=True)
        out[..., 0] *= w / int(orig_hw[1])
        out[..., 1] *= h / int(orig_hw[0])
        return out

    def boxes_to_input(self, boxes: np.ndarray, orig_hw) -> np.ndarray:
        """(..., 4) x0, y0, x1, y1 in original pixels -> the same boxes on the square."""
        return self.points_to_input(np.asarray(boxes, dtype=np.float64).reshape(-1, 2, 2), orig_hw).reshape(
            np.shape(boxes))

    # -- masks -------------------------------------------------------------------------------

    def mask_to_input(self, mask: np.ndarray) -> torch.Tensor:
        """(H, W) bool -> (S, S) bool: resized like the image (nearest-exact), zero padding."""
        h, w = self.input_shape(mask.shape)
        resized = F.interpolate(torch.from_numpy(np.ascontiguousarray(mask))[None, None].float(), size=(h, w),
                                mode="nearest-exact")[0, 0]
        canvas = torch.zeros(self.img_size, self.img_size)
        canvas[:h, :w] = resized
        return canvas > 0.5

    def mask_targets(self, mask: np.ndarray, out_size: int) -> torch.Tensor:
        """(H, W) bool -> (out_size, out_size) uint8 training target: the share of foreground
        pixels of the square in each cell, times 255 (soft at edges; padding is 0)."""
        share = F.adaptive_avg_pool2d(self.mask_to_input(mask).float()[None, None], out_size)[0, 0]
        return (share * 255).round().to(torch.uint8)

    def input_to_original(self, x: torch.Tensor, orig_hw, mode: str = "bilinear") -> torch.Tensor:
        """(..., s, s) values on a grid over the square (any s; s = img_size is the square) ->
        (..., H, W) at the original resolution: the image's part of the square, resized back.
        ``mode`` is ``nearest-exact`` for masks, ``bilinear`` for probabilities or logits."""
        size = x.shape[-1]
        h, w = self.input_shape(orig_hw)
        lead = x.shape[:-2]
        x = x.reshape(1, -1, size, size).float()
        if self.resize == "square":  # the whole grid is the image: straight to the original size, as SAM 2 does
            x = F.interpolate(x, size=(int(orig_hw[0]), int(orig_hw[1])), mode=mode)
            return x.reshape(*lead, int(orig_hw[0]), int(orig_hw[1]))
        if size != self.img_size:
            x = F.interpolate(x, size=(self.img_size, self.img_size), mode=mode)
        x = x[..., :h, :w]
        x = F.interpolate(x, size=(int(orig_hw[0]), int(orig_hw[1])), mode=mode)
        return x.reshape(*lead, int(orig_hw[0]), int(orig_hw[1]))
