"""Bands as they are stored, for encoders that take several bands of reflectance (Prithvi) rather
than an 8-bit colour composite: a :class:`BandStack` picks the encoder's bands from a raster's
bands, by a declared mapping, and hands them on as float32 with no stretch (the encoder normalises
them itself). The mapping is named and recorded in the cache signature, so a group always says
which dataset band fed which encoder band.

The RGB encoders never see a band stack: their images go through a composite
(:mod:`samembed.datasets.composite`) or are read as they are."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ImageFormatError, UsageError, capped
from .composite import ALIASES
from .images import Pixels

# Sentinel-2 bands for each HLS band that Prithvi-EO-2.0 takes (its model cards, ibm-nasa-geospatial on
# Hugging Face: blue, green, red, narrow NIR, SWIR 1, SWIR 2; HLS's Sentinel-2 band names are NASA's HLS user guide's).
S2_FOR_HLS = {"BLUE": "B02", "GREEN": "B03", "RED": "B04", "NIR_NARROW": "B8A", "SWIR_1": "B11", "SWIR_2": "B12"}


@dataclass(frozen=True)
class BandStack:
    """``names`` of the encoder's bands (``BLUE``, ...), the 0-based dataset band ``sources`` that
    feed them, and those bands' names in the dataset (``B02``, ...)."""

    names: tuple[str, ...]
    sources: tuple[int, ...]
    source_names: tuple[str, ...]
    mapping: str  # how the mapping was chosen, e.g. "Sentinel-2 to HLS (default)" or "--bands"

    def key(self) -> str:
        """The cache group suffix: ``B02-B03-B04-B08A-B11-B12``."""
        return "-".join(self.source_names)

    def signature(self) -> dict:
        return {"bands": list(self.names), "sources": [b + 1 for b in self.sources],
                "source_names": list(self.source_names), "mapping": self.mapping,
                "values": "as stored, as float32 (no stretch; the encoder normalises them)",
                "nodata": "nodata, NaN and infinite values: 0 in the input, left out of pooling like padding"}

    def apply(self, pixels: Pixels, path) -> tuple[np.ndarray, np.ndarray | None]:
        """(H, W, k) float32 band values and the (H, W) bool data mask (``None`` when every pixel
        holds data)."""
        bands = pixels.values.shape[-1]
        if max(self.sources) >= bands:
            raise ImageFormatError(f"image {path} has {bands} band(s), but the encoder's bands need band "
                                   f"{max(self.sources) + 1}; every image of a dataset needs the same bands")
        values = pixels.values[..., list(self.sources)].astype(np.float32)
        valid = pixels.valid(self.sources) & np.isfinite(values).all(axis=-1)
        if valid.all():
            return np.ascontiguousarray(values), None
        values[~valid] = 0
        return np.ascontiguousarray(values), valid


def _find(name: str, dataset_bands: tuple[str, ...]) -> int | None:
    wanted = {name.upper(), ALIASES.get(name.upper(), name.upper())}
    return next((i for i, b in enumerate(dataset_bands) if b.upper() in wanted), None)


def band_stack(encoder_bands: tuple[str, ...], dataset_bands: tuple[str, ...] | None, bands: str | None,
               encoder: str, dataset: str) -> BandStack:
    """The :class:`BandStack` that feeds ``encoder_bands`` from a dataset's bands: ``bands`` (the
    user's ``--bands``: one dataset band per encoder band, names or 1-based numbers, in the
    encoder's order) or, by default, Sentinel-2's bands mapped to HLS (:data:`S2_FOR_HLS`).
    Refused in one line when the dataset has no such bands."""
    if dataset_bands is None:
        raise UsageError(f"{encoder} takes {len(encoder_bands)} bands of reflectance ({', '.join(encoder_bands)}), "
                         f"and {dataset} has 8-bit colour images; use a multi-band dataset such as eurosat-ms")
    if bands is not None:
        tokens = [t.strip() for t in bands.split(",") if t.strip()]
        if len(tokens) != len(encoder_bands):
            raise UsageError(f"--bands {bands} gives {len(tokens)} bands; {encoder} takes {len(encoder_bands)} "
                             f"({', '.join(encoder_bands)}): name one band of the dataset for each, in that order")
        sources = []
        for token in tokens:
            index = int(token) - 1 if token.isdigit() else _find(token, dataset_bands)
            if index is None or not 0 <= index < len(dataset_bands):
                raise UsageError(f"--bands {bands}: '{token}' is not a band of {dataset} "
                                 f"({capped(dataset_bands, 16)}; names or 1-based numbers)")
            sources.append(index)
        mapping = "--bands"
    else:
        sources = []
        for name in encoder_bands:
            s2 = S2_FOR_HLS.get(name)
            index = _find(s2, dataset_bands) if s2 else None
            if index is None:
                raise UsageError(f"{dataset} has no band {s2 or name} for {encoder}'s {name} band (its bands: "
                                 f"{capped(dataset_bands, 16)}); name one dataset band per {encoder} band with "
                                 f"--bands, in the order {','.join(encoder_bands)}")
            sources.append(index)
        mapping = "Sentinel-2 to HLS: " + ", ".join(f"{S2_FOR_HLS[n]} -> {n}" for n in encoder_bands)
    return BandStack(tuple(encoder_bands), tuple(sources), tuple(dataset_bands[i] for i in sources), mapping)
