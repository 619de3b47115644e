"""Binary segmentation masks, read by one declared rule for a whole dataset.

Masks come as 0/255, 0/1, 1/2 or any other pair of values, in one band or as gray RGB. A rule
per image (say, "above 127 is road") reads a 0/1 mask as empty, so the rule is found once per
dataset: the distinct values of all its masks, at most two, the higher one being the foreground.
It is part of the dataset's fingerprint (:meth:`DatasetIndex.fingerprint`). A mask with a third
value (a JPEG-compressed or antialiased mask, a multi-class label map) or a colour mask is
refused in one line: a binary task cannot read it faithfully."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CorruptImageError, ImageFormatError
from .images import read_pixels


@dataclass(frozen=True)
class MaskEncoding:
    """The distinct values of a dataset's masks, sorted, at most two; the higher is foreground
    (with a single value, it is foreground unless it is 0)."""

    values: tuple[float, ...]

    @property
    def foreground(self) -> float | None:
        if not self.values or (len(self.values) == 1 and self.values[0] == 0):
            return None
        return self.values[-1]

    def describe(self) -> str:
        values = "/".join(f"{v:g}" for v in self.values) or "none"
        return f"{values} ({'nothing' if self.foreground is None else f'{self.foreground:g}'} = foreground)"

    def decode(self, values: np.ndarray, path) -> np.ndarray:
        """(H, W) mask values -> (H, W) bool foreground; a value outside the encoding is refused."""
        known = np.isin(values, np.asarray(self.values, dtype=values.dtype))
        if not known.all():
            stray = values[~known].flat[0]
            raise ImageFormatError(f"mask {path} holds the value {stray:g}, not one of the dataset's mask values "
                                   f"{self.describe()}; was the file replaced? Index the dataset again")
        if self.foreground is None:
            return np.zeros(values.shape, bool)
        return values == np.asarray(self.foreground, dtype=values.dtype)


# The masks samembed writes (predictions) and the encoding of most published datasets.
STANDARD_ENCODING = MaskEncoding((0.0, 255.0))


def mask_values(path: str | Path, window=None) -> np.ndarray:
    """(H, W) values of the mask file ``path`` (or its ``window``): its one band, or the value of
    a gray RGB(A) mask (equal channels; a palette mask gives its colours). A colour mask is refused."""
    pixels = read_pixels(path, window).values
    if pixels.shape[-1] in (2, 4):  # alpha is not part of a mask
        pixels = pixels[..., :-1]
    if pixels.shape[-1] == 1:
        return pixels[..., 0]
    if pixels.shape[-1] == 3 and (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 0] == pixels[..., 2]).all():
        return pixels[..., 0]
    raise ImageFormatError(f"mask {path} has {pixels.shape[-1]} bands that differ (a colour mask); samembed's "
                           "segmentation is binary: save each mask with one band, one value for the background "
                           "and one for the foreground")


def distinct_values(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values of an array (a count of the 256 values for uint8: no sort)."""
    if values.dtype == np.uint8:
        return np.flatnonzero(np.bincount(values.ravel(), minlength=256))
    return np.unique(values)


def scan_mask_encoding(paths: Iterable[str | Path]) -> MaskEncoding:
    """The encoding of a dataset's masks: the distinct values of all of them, at most two.
    Raises :class:`ImageFormatError` naming the first mask that brings a third value. A mask that
    cannot be decoded is passed over here: extraction reports it with its image (``--skip-bad``)."""
    seen: set[float] = set()
    for path in paths:
        try:
            values = mask_values(path)
        except CorruptImageError:
            continue
        distinct = {float(v) for v in distinct_values(values)}
        if len(seen | distinct) > 2:
            if len(distinct) > 2:
                what = f"holds {len(distinct)} distinct values ({_span(distinct)})"
            else:
                what = f"holds {_span(distinct)} where the masks before it hold {_span(seen)}"
            raise ImageFormatError(f"mask {path} {what}; a binary mask holds two values (such as 0/1 or 0/255): "
                                   "save the masks losslessly (PNG, not JPEG) with one value for the background "
                                   "and one for the foreground")
        seen |= distinct
    return MaskEncoding(tuple(sorted(seen)))


def _span(values: set[float]) -> str:
    ordered = sorted(values)
    shown = "/".join(f"{v:g}" for v in ordered[:4])
    return shown + (f"/... up to {ordered[-1]:g}" if len(ordered) > 4 else "")


def read_mask(path: str | Path, encoding: MaskEncoding = STANDARD_ENCODING, window=None) -> np.ndarray:
    """(H, W) bool foreground of the mask file ``path`` (or its ``window``) under its dataset's
    ``encoding``."""
    return encoding.decode(mask_values(path, window), path)
