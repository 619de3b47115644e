"""Decoding image files, faithfully.

8-bit pictures (JPEG, PNG, BMP, 8-bit TIFF with 1 or 3 bands, ...) are decoded by PIL as they
always were. PIL converts anything else with a loss (16-bit PNGs and TIFFs to their high byte or
clipped at 255, float TIFFs to black, a second or fourth TIFF band dropped), so such files are
read by rasterio (GDAL) instead, with their own dtype and every band. :func:`read_rgb` then
accepts only what the encoders take as it is, 8-bit with 1 or 3 bands, and refuses the rest in
one line that names the file, its dtype, bands and range: a conversion must be declared, never
guessed (the raster issue adds ``--bands`` and ``--stretch``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import CorruptImageError, ImageFormatError


@dataclass
class Pixels:
    """An image's pixels as stored: ``values`` (H, W, C) in the file's dtype, the file's nodata
    value of each band (``None``: none declared), whether the last band is alpha by the
    format's definition (a PNG's, say), and the raster's per-dataset ``mask`` ((H, W) bool, true
    where GDAL's mask band says the pixel holds data; ``None`` when the file has none)."""

    values: np.ndarray
    nodata: tuple[float | None, ...] = ()
    alpha: bool = False
    mask: np.ndarray | None = None

    def valid(self, bands: tuple[int, ...] | None = None) -> np.ndarray:
        """(H, W) bool: the pixels where every band of ``bands`` (default: all) holds data: not
        its nodata value, finite, and not masked by the raster's per-dataset mask band."""
        bands = tuple(range(self.values.shape[-1])) if bands is None else bands
        ok = np.ones(self.values.shape[:2], bool) if self.mask is None else self.mask.copy()
        for b in bands:
            band = self.values[..., b]
            if band.dtype.kind == "f":
                ok &= np.isfinite(band)
            nodata = self.nodata[b] if b < len(self.nodata) else None
            if nodata is not None:
                ok &= ~(np.isnan(band) if np.isnan(nodata) else band == nodata)
        return ok

# PIL modes that hold 8-bit samples; "I;16", "I" and "F" do not.
_EIGHT_BIT_MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
# Formats whose fourth band is alpha by definition (a TIFF's fourth band may be anything: NIR, ...).
_ALPHA_FORMATS = {"PNG", "WEBP", "GIF", "BMP", "ICO", "TGA", "JPEG2000"}
_TIFF_SAMPLE_FORMATS = {1: "uint", 2: "int", 3: "float"}


def _corrupt(path, err) -> CorruptImageError:
    return CorruptImageError(f"cannot decode image {path} ({' '.join(str(err).split())}); replace the file with a "
                             "good copy, or pass --skip-bad to skip it (recorded in the cache)")


def _pil_reads_it_faithfully(img: Image.Image) -> bool:
    """Whether converting ``img`` (opened, not yet loaded) to 8-bit RGB loses nothing but a
    PNG-style alpha channel."""
    if img.mode not in _EIGHT_BIT_MODES:
        return False
    if img.format == "TIFF":
        tags = img.tag_v2
        bits = tags.get(258, (1,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        sample_format = tags.get(339, (1,))
        sample_format = sample_format if isinstance(sample_format, tuple) else (sample_format,)
        samples = int(tags.get(277, 1))
        if any(b not in (1, 8) for b in bits) or any(f != 1 for f in sample_format):
            return False
        return samples in (1, 3) or (samples == 4 and img.mode == "CMYK")
    if any(";16" in tile[3] if isinstance(tile[3], str) else False for tile in img.tile):  # 16-bit PNG
        return False
    return img.mode not in ("RGBA", "LA", "PA", "RGBa", "La") or img.format in _ALPHA_FORMATS


def _has_dataset_mask(src) -> bool:
    """Whether the open rasterio dataset ``src`` has a per-dataset mask band (GDAL's
    ``GMF_PER_DATASET``: an internal mask, or a ``.msk`` file beside it). An alpha band, which
    GDAL also flags so, stays a band as before: it is chosen or refused like any other."""
    from rasterio.enums import MaskFlags

    return any(MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags for flags in src.mask_flag_enums)


def read_raster(path: str | Path, window: tuple[int, int, int, int] | None = None) -> Pixels:
    """Every band of ``path`` as it is stored (rasterio), all of it or the ``window``
    (col_off, row_off, width, height), with the file's nodata values and its per-dataset mask
    band, if it has one (0 in the mask: no data, like a nodata value)."""
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError
    from rasterio.windows import Window

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                region = Window(*window) if window is not None else None
                values = src.read(window=region)
                mask = src.read_masks(1, window=region) > 0 if _has_dataset_mask(src) else None
                return Pixels(np.moveaxis(values, 0, -1), tuple(src.nodatavals), mask=mask)
    except (RasterioError, OSError, ValueError) as err:
        raise _corrupt(path, err) from None


def _tiff_has_mask_band(img: Image.Image, path: str | Path) -> bool:
    """Whether a TIFF that PIL would decode has a per-dataset mask band, which PIL ignores: a
    ``.msk`` file beside it, or a second image in the file (GDAL writes its mask as one, which
    PIL cannot even parse) that GDAL reads as the mask. ``img`` is left at its first image."""
    if not Path(f"{path}.msk").exists():
        try:
            frames = img.n_frames
        except Exception:  # an image PIL cannot parse, such as GDAL's 1-bit mask
            frames = 2
        img.seek(0)
        if frames < 2:
            return False
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                return _has_dataset_mask(src)
    except (RasterioError, OSError, ValueError):
        return False  # not for GDAL: PIL's reading stands


def read_pixels(path: str | Path, window: tuple[int, int, int, int] | None = None) -> Pixels:
    """The pixels of ``path`` with their own dtype and band count: PIL for 8-bit pictures
    (palette, CMYK, YCbCr and 1-bit images as 8-bit RGB or gray; a PNG-style alpha channel is
    kept as the last band), rasterio for everything else, for a ``window`` of a raster and for
    a TIFF with a mask band (:func:`read_raster`)."""
    if window is not None:
        return read_raster(path, window)
    try:
        with Image.open(path) as img:
            if _pil_reads_it_faithfully(img) and not (img.format == "TIFF" and _tiff_has_mask_band(img, path)):
                img.load()  # decode now: a truncated file fails here, not later
                if img.mode in ("P", "PA"):
                    img = img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB")
                elif img.mode not in ("L", "RGB", "RGBA", "LA"):
                    img = img.convert("RGB" if img.mode not in ("1",) else "L")
                pixels = np.asarray(img, dtype=np.uint8)
                return Pixels(pixels[..., None] if pixels.ndim == 2 else pixels, alpha=img.mode in ("RGBA", "LA"))
    except UnidentifiedImageError:
        pass  # not a format PIL knows (a 16-bit RGB or multi-band GeoTIFF, say): rasterio may
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as err:
        raise _corrupt(path, err) from None
    return read_raster(path)


def describe_pixels(pixels: np.ndarray) -> str:
    """``uint16 with 13 bands, values 0-9995`` (NaN and infinities left out of the range)."""
    finite = pixels[np.isfinite(pixels)] if pixels.dtype.kind == "f" else pixels
    span = f"values {finite.min():g}-{finite.max():g}" if finite.size else "no finite values"
    bands = pixels.shape[-1]
    return f"{pixels.dtype} with {bands} band{'s' if bands != 1 else ''}, {span}"


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode ``path`` to an (H, W, 3) uint8 array, the input of every encoder (see :func:`as_rgb`)."""
    return as_rgb(read_pixels(path), path)


def as_rgb(pixels: Pixels, path) -> np.ndarray:
    """(H, W, 3) uint8 of pixels the encoders take as they are: 8-bit with 3 bands, or 1 band
    (repeated to gray RGB); palette, CMYK and YCbCr images in their RGB colours; a PNG-style alpha
    channel is dropped, and so is a TIFF's fourth band when it is opaque (255 everywhere).
    Anything else raises :class:`ImageFormatError` naming its dtype, bands and range."""
    values, bands = pixels.values, pixels.values.shape[-1]
    if values.dtype == np.uint8:
        if bands == 3:
            return np.ascontiguousarray(values)
        if bands == 1:
            return np.repeat(values, 3, axis=-1)
        if bands == 2 and pixels.alpha:  # gray + alpha
            return np.repeat(values[..., :1], 3, axis=-1)
        if bands == 4 and (pixels.alpha or bool((values[..., 3] == 255).all())):
            return np.ascontiguousarray(values[..., :3])
    raise ImageFormatError(
        f"image {path} is {describe_pixels(values)}; the encoders take 8-bit images with 1 or 3 bands, and "
        "samembed never converts pixels silently: choose the bands and a stretch to 8 bits with --bands and "
        "--stretch (see docs/rasters.md)"
    )

