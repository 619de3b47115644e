"""Small synthetic classification datasets in the real on-disk layouts, for tests and the
quickstart. Each class has its own colour and stripe orientation plus noise, so a head trained
on good features can separate them; the numbers they give say nothing about real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UsageError
from .eurosat import CLASSES as EUROSAT_CLASSES

LAYOUTS = ("2750", "EuroSAT_RGB", "folder")
#: How far the classes overlap, as the ``jitter`` of :func:`synthetic_image`: ``easy`` classes are
#: separable (every head scores 100 %), ``medium`` ones make heads, splits and seeds differ (about
#: 75-90 % in the README quickstart: 8 images per class, a tiny random encoder), ``hard`` ones sit
#: near chance there.
DIFFICULTIES = {"easy": 0.0, "medium": 20.0, "hard": 40.0}


def synthetic_image(label: int, num_classes: int, height: int, width: int, rng: np.random.Generator,
                    jitter: float = 0.0) -> np.ndarray:
    """(H, W, 3) uint8 image whose colour and stripe angle depend on ``label``. ``jitter`` is the
    standard deviation (0-255 scale) of a random per-image shift of the colour: above about 40 the
    classes overlap, so heads no longer separate them perfectly."""
    hue = label / num_classes
    base = 127 + 100 * np.cos(2 * np.pi * (hue + np.array([0.0, 1 / 3, 2 / 3])))
    if jitter:
        base = base + rng.normal(0, jitter, 3)
    angle = np.pi * label / num_classes
    yy, xx = np.mgrid[0:height, 0:width]
    phase = rng.uniform(0, 2 * np.pi)
    stripes = np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * 0.5 + phase)
    img = base[None, None, :] + 40 * stripes[..., None] + rng.normal(0, 12, (height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_synthetic_dataset(
    out_dir: str | Path,
    layout: str = "2750",
    images_per_class: int = 8,
    size: int | tuple[int, int] = 64,
    classes: list[str] | None = None,
    seed: int = 0,
    suffix: str = ".jpg",
    vary_size: bool = False,
    jitter: float = 0.0,
    difficulty: str | None = None,
) -> Path:
    """Write a dataset under ``out_dir`` and return the folder to pass as ``--data-dir``.

    ``layout`` ``2750`` and ``EuroSAT_RGB`` write EuroSAT's two published layouts with its class
    names and ``<Class>_<n>.jpg`` file names; ``folder`` writes ``out_dir/<class>/``. ``size`` is
    the side (or (height, width)); ``vary_size`` draws each image's height and width between
    half and one and a half times it (non-square, for testing resize and padding). ``jitter``
    makes the classes overlap (see :func:`synthetic_image`); ``difficulty`` (a name of
    :data:`DIFFICULTIES`) sets it by name instead."""
    if difficulty is not None:
        if difficulty not in DIFFICULTIES:
            raise UsageError(f"unknown difficulty '{difficulty}'; choose one of: {', '.join(DIFFICULTIES)}")
        jitter = DIFFICULTIES[difficulty]
    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout '{layout}'; choose one of: {', '.join(LAYOUTS)}")
    if images_per_class < 1:
        raise UsageError("images per class must be at least 1")
    classes = list(classes or EUROSAT_CLASSES)
    out_dir = Path(out_dir)
    root = out_dir if layout == "folder" else out_dir / layout
    h0, w0 = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for n in range(1, images_per_class + 1):
            h, w = h0, w0
            if vary_size:
                h, w = (int(rng.integers(max(8, s // 2), s + s // 2 + 1)) for s in (h0, w0))
            img = synthetic_image(label, len(classes), h, w, rng, jitter)
            Image.fromarray(img).save(root / name / f"{name}_{n}{suffix}", quality=95)
    return out_dir


def synthetic_road_image(height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An (H, W, 3) uint8 aerial-like image with a few straight grey roads on green-brown texture,
    and its (H, W) bool road mask."""
    yy, xx = np.mgrid[0:height, 0:width]
    ground = np.array([90, 110, 60]) + rng.normal(0, 18, (height, width, 3))
    mask = np.zeros((height, width), dtype=bool)
    for _ in range(int(rng.integers(1, 4))):
        angle = rng.uniform(0, np.pi)
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        distance = np.abs((yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle))
        mask |= distance < rng.uniform(0.02, 0.05) * min(height, width)
    road = np.array([170, 170, 165]) + rng.normal(0, 10, (height, width, 3))
    image = np.where(mask[..., None], road, ground)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def make_synthetic_roads(out_dir: str | Path, layout: str = "road", counts: tuple[int, int, int] = (12, 4, 6),
                         size: int = 96, seed: int = 0, mask_channels: int = 1) -> Path:
    """Write generated road images of varied, non-square sizes (half to one and a half times
    ``size``) with masks (255 = road), and return the folder for ``--data-dir``.

    ``layout="road"`` writes the Cheng layout: ``Train/``, ``Validation/``, ``Test/`` with ``counts``
    images each, ``image/imageN.bmp`` and ``label/N.bmp`` (``mask_channels`` 1 or 3).
    ``layout="seg-folder"`` writes ``images/N.png`` and ``masks/N.png`` (sum of ``counts`` pairs)."""
    if layout not in ("road", "seg-folder"):
        raise UsageError(f"unknown layout '{layout}'; choose road or seg-folder")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    number = 0
    parts = zip(("Train", "Validation", "Test"), counts) if layout == "road" else [("", sum(counts))]
    for subset, count in parts:
        image_dir = out_dir / subset / "image" if layout == "road" else out_dir / "images"
        mask_dir = out_dir / subset / "label" if layout == "road" else out_dir / "masks"
        image_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            number += 1
            h, w = (int(rng.integers(size // 2, size + size // 2 + 1)) for _ in range(2))
            image, mask = synthetic_road_image(h, w, rng)
            values = mask.astype(np.uint8) * 255
            if mask_channels == 3:
                values = np.repeat(values[..., None], 3, axis=-1)
            if layout == "road":
                Image.fromarray(image).save(image_dir / f"image{number}.bmp")
                Image.fromarray(values).save(mask_dir / f"{number}.bmp")
            else:
                Image.fromarray(image).save(image_dir / f"{number}.png")
                Image.fromarray(values).save(mask_dir / f"{number}.png")
    return out_dir


def _write_raster(path: Path, bands: np.ndarray, crs: str | None = None, transform=None, nodata=None,
                  descriptions: tuple[str, ...] | None = None) -> Path:
    """Write ``bands`` (C, H, W) as a GeoTIFF (rasterio), georeferenced when ``crs`` is given."""
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(driver="GTiff", width=bands.shape[2], height=bands.shape[1], count=bands.shape[0],
                   dtype=bands.dtype, nodata=nodata)
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(bands)
            for b, name in enumerate(descriptions or ()):
                dst.set_band_description(b + 1, name)
    return path


def synthetic_bands(label: int, num_classes: int, bands: int, size: int, rng: np.random.Generator,
                    scale: float, jitter: float = 0.0) -> np.ndarray:
    """(bands, size, size) float: a class-dependent level per band (its own spectrum) plus stripes
    and noise, scaled to ``scale``."""
    phase = 2 * np.pi * label / num_classes
    levels = 0.5 + 0.4 * np.cos(phase + np.arange(bands) * 0.7) + rng.normal(0, jitter, bands)
    yy, xx = np.mgrid[0:size, 0:size]
    angle = np.pi * label / num_classes
    stripes = 0.1 * np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * 0.5 + rng.uniform(0, 2 * np.pi))
    image = levels[:, None, None] + stripes[None] + rng.normal(0, 0.05, (bands, size, size))
    return np.clip(image, 0.01, 1.5) * scale


def make_synthetic_rasters(out_dir: str | Path, kind: str = "eurosat-ms", images_per_class: int = 4, size: int = 32,
                           classes: list[str] | None = None, seed: int = 0, jitter: float = 0.0) -> Path:
    """Write a small raster dataset in a real layout and return the folder for ``--data-dir``:
    ``eurosat-ms`` (13-band uint16 reflectance x 10,000 in the archive's nested layout),
    ``eurosat-sar`` (2-band float32 linear backscatter, VV and VH, in class folders) or
    ``raster-folder`` (4-band uint8). Each class has its own spectrum; results mean nothing."""
    from .rasters import MS_LAYOUT

    layouts = {"eurosat-ms": (13, np.uint16, 3000.0), "eurosat-sar": (2, np.float32, 0.2),
               "raster-folder": (4, np.uint8, 160.0)}
    if kind not in layouts:
        raise UsageError(f"unknown raster layout '{kind}'; choose one of: {', '.join(layouts)}")
    bands, dtype, scale = layouts[kind]
    classes = list(classes or EUROSAT_CLASSES)
    out_dir = Path(out_dir)
    root = out_dir / MS_LAYOUT if kind == "eurosat-ms" else out_dir / ("EuroSAT-SAR" if kind == "eurosat-sar" else "")
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        for n in range(1, images_per_class + 1):
            values = synthetic_bands(label, len(classes), bands, size, rng, scale, jitter)
            _write_raster(root / name / f"{name}_{n}.tif", values.astype(dtype) if dtype != np.uint8
                          else np.clip(values, 0, 255).astype(np.uint8))
    return out_dir


def make_synthetic_scene(out_dir: str | Path, size: tuple[int, int] = (700, 900), bands: int = 4, seed: int = 0,
                         crs: str | None = "EPSG:32633", origin: tuple[float, float] = (500000.0, 5000000.0),
                         pixel: float = 10.0, nodata: int | None = 0, masks: bool = False) -> Path:
    """Write one georeferenced uint16 scene ``scene.tif`` of ``size`` (height, width) into
    ``out_dir`` (``crs``, top-left corner ``origin``, ``pixel`` metres; ``crs=None`` for none),
    with a nodata band across its left edge and, with ``masks``, an aligned road mask in
    ``masks/scene.tif``. Returns ``out_dir``."""
    from affine import Affine

    rng = np.random.default_rng(seed)
    h, w = size
    values = synthetic_bands(1, 4, bands, max(h, w), rng, 3000.0)[:, :h, :w].astype(np.uint16)
    values = np.maximum(values, 1)  # 0 is nodata
    if nodata is not None:
        values[:, :, : w // 10] = nodata  # a strip without data, as at a tile's edge
    transform = Affine(pixel, 0, origin[0], 0, -pixel, origin[1])
    out_dir = Path(out_dir)
    _write_raster(out_dir / "scene.tif", values, crs, transform, nodata,
                  tuple(f"B{b + 1:02d}" for b in range(bands)))
    if masks:
        _, road = synthetic_road_image(h, w, rng)
        _write_raster(out_dir / "masks" / "scene.tif", road.astype(np.uint8)[None], crs, transform)
    return out_dir
