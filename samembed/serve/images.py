"""Pictures for the page, as PNG bytes: an image or chip as its encoder saw it (read from the
dataset where the extraction found it, through the group's composite and stretch), a thumbnail of
it, a whole scene at screen resolution (read in blocks of rows, each decimated by the raster
library's own resampling, then through the composite), a mask drawn as a see-through colour."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from ..datasets.images import Pixels, as_rgb
from ..datasets.inputs import InputReader
from .state import GroupView, NotFound

MASK_COLOUR = (0, 229, 255)
MASK_ALPHA = 140  # of 255: the image shows through
OVERVIEW_ROWS = 1024  # rows of a scene read at a time for its overview


def png(rgb: np.ndarray, fast: bool = True) -> bytes:
    """(H, W, 3) or (H, W) uint8 -> PNG bytes (zlib level 1: these are sent once, not kept)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=1 if fast else 6)
    return buffer.getvalue()


def mask_png(mask: np.ndarray, colour: tuple[int, int, int] = MASK_COLOUR, alpha: int = MASK_ALPHA) -> bytes:
    """(H, W) bool -> a two-colour palette PNG: transparent off the mask, ``colour`` at ``alpha``
    on it (a few kilobytes, drawn straight over the image)."""
    image = Image.fromarray(mask.astype(np.uint8), mode="P") if mask.dtype != np.uint8 else Image.fromarray(mask, "P")
    image.putpalette([0, 0, 0, *colour])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", transparency=bytes([0, alpha]), compress_level=1)
    return buffer.getvalue()


def image_rgb(view: GroupView, row: int) -> np.ndarray:
    """(H, W, 3) uint8 image ``row`` of the group as its encoder saw it."""
    index, positions, composite = view.dataset()
    image_id = view.index()["ids"][row]
    if image_id not in positions:
        raise NotFound(image_id)
    return InputReader(index, composite)(positions[image_id])[0]


def thumbnail(rgb: np.ndarray, side: int) -> np.ndarray:
    """``rgb`` fitted into ``side`` x ``side`` (never enlarged)."""
    image = Image.fromarray(rgb)
    image.thumbnail((side, side), Image.Resampling.BILINEAR)
    return np.asarray(image)


def truth_mask(view: GroupView, row: int) -> np.ndarray:
    """(H, W) bool ground truth of image ``row`` of a segmentation group."""
    index, positions, _ = view.dataset()
    image_id = view.index()["ids"][row]
    if index.mask_ids is None or image_id not in positions:
        raise NotFound(image_id)
    return index.mask(positions[image_id])


def scene_overview(view: GroupView, scene: str, max_side: int) -> tuple[np.ndarray, float]:
    """((h, w, 3) uint8 scene ``scene`` of a group of chips at most ``max_side`` pixels a side,
    the scale: overview pixels per scene pixel). Read :data:`OVERVIEW_ROWS` scene rows at a time,
    each block decimated on reading (GDAL's average), so memory follows the screen, not the scene."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.windows import Window

    index, _, composite = view.dataset()
    georef = view.group.attrs["georef"][scene]
    width, height = int(georef["width"]), int(georef["height"])
    scale = min(1.0, max_side / max(width, height))
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    blocks = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(index.root / scene) as src:
            step = max(1, OVERVIEW_ROWS)
            done = 0
            for row in range(0, height, step):
                rows = min(step, height - row)
                target = round((row + rows) * scale) - done if row + rows < height else out_h - done
                if target <= 0:
                    continue
                window = Window(0, row, width, rows)
                values = src.read(window=window, out_shape=(src.count, target, out_w), resampling=Resampling.average)
                mask = src.read_masks(1, window=window, out_shape=(target, out_w)) > 0
                blocks.append((np.moveaxis(values, 0, -1), mask))
                done += target
            nodata = tuple(src.nodatavals)
    values = np.concatenate([b[0] for b in blocks])
    pixels = Pixels(values, nodata, mask=np.concatenate([b[1] for b in blocks]))
    if composite is not None:
        rgb, _ = composite.apply(pixels, index.root / scene)
    else:
        rgb = as_rgb(pixels, index.root / scene)
    return rgb, out_w / width


def overview_side(requested: int | None, default: int = 1600, limit: int = 4096) -> int:
    return max(64, min(limit, int(requested) if requested else default))

