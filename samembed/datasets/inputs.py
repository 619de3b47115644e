"""What an encoder is given for one image of a dataset: (H, W, 3) uint8 pixels (or, for an
encoder that takes bands of reflectance, (H, W, k) float32 bands) and, where some pixels hold no
data, the mask of those that do."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bands import BandStack
from .base import DatasetIndex
from .composite import Composite
from .images import as_rgb


@dataclass(frozen=True)
class InputReader:
    """Reads image ``i`` of ``index`` as the encoders take it: through the ``composite`` (bands
    and stretch, or a :class:`BandStack` of bands as stored) when there is one, else as it is
    (8-bit, 1 or 3 bands). Picklable: it runs in loader workers."""

    index: DatasetIndex
    composite: Composite | BandStack | None = None

    @property
    def may_lack_data(self) -> bool:
        """Whether images may hold pixels without data (rasters: nodata, NaN, chips at an edge)."""
        return self.composite is not None or self.index.bands is not None or self.index.chips is not None

    def __call__(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """((H, W, 3) uint8 or (H, W, k) float32 bands, (H, W) bool data mask or ``None`` when
        every pixel holds data)."""
        pixels = self.index.pixels(i)
        if self.composite is not None:
            return self.composite.apply(pixels, self.index.path(i))
        rgb = as_rgb(pixels, self.index.path(i))
        if not any(v is not None for v in pixels.nodata) and pixels.mask is None:
            return rgb, None
        valid = pixels.valid(tuple(range(min(3, pixels.values.shape[-1]))))
        if valid.all():
            return rgb, None
        rgb = rgb.copy()
        rgb[~valid] = 0
        return rgb, valid
