"""Decoding image files to RGB arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import CorruptImageError


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode ``path`` to an (H, W, 3) uint8 array. Grayscale, palette, RGBA, CMYK and other
    modes are converted to RGB (alpha is dropped). A file that cannot be decoded completely
    raises :class:`CorruptImageError`."""
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file fails here, not later
            rgb = img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as err:
        raise CorruptImageError(
            f"cannot decode image {path} ({err}); replace or delete the file, or pass --skip-bad "
            "to skip it (recorded in the cache)"
        ) from None
    return np.asarray(rgb, dtype=np.uint8)
