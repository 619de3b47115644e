"""``scene``: large georeferenced rasters (a Sentinel-2 tile, an aerial orthophoto) cut into chips.

``--data-dir`` is a raster or a folder of rasters (GeoTIFF, JPEG 2000, VRT); a ``masks/``
folder beside them holding rasters of the same names, aligned with them (same size and
transform), makes it a segmentation dataset. Chips are ``chip_size`` pixels a side, ``chip_overlap``
pixels apart from their neighbours' edges; the last row and column are moved back to end at the
raster's edge, so every chip is whole (a raster smaller than a chip is one chip). Every chip keeps
its window, and the cache keeps each raster's CRS and affine transform, so any chip pixel maps
back to map coordinates (:class:`MapLocator`). Rasters are only ever read window by window, so
memory follows the chip size, not the scene's."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataNotFoundError, ImageFormatError, UsageError
from .base import Chips, DatasetIndex, relative_id
from .masks import MaskEncoding, distinct_values, mask_values
from .registry import register_dataset
from .segmentation import SEGMENTATION_CLASSES

SCENE_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt")
DEFAULT_CHIP_SIZE = 512
SCAN_ROWS = 512  # rows of a mask raster read at a time when its values are scanned


@dataclass(frozen=True)
class RasterInfo:
    width: int
    height: int
    count: int
    dtype: str
    crs: str | None  # WKT
    transform: tuple[float, ...]  # a, b, c, d, e, f
    descriptions: tuple[str | None, ...]


def raster_info(path: Path) -> RasterInfo:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                return RasterInfo(src.width, src.height, src.count, src.dtypes[0],
                                  src.crs.to_wkt() if src.crs else None, tuple(src.transform)[:6], tuple(src.descriptions))
    except (RasterioError, OSError) as err:
        raise DataNotFoundError(f"cannot read the raster {path} ({' '.join(str(err).split())}); replace the file") \
            from None


def band_names(count: int, descriptions: tuple[str | None, ...]) -> tuple[str, ...]:
    """A raster's band names: its band descriptions where every band has a distinct one, else
    ``1`` ... ``count``."""
    if all(descriptions) and len(set(descriptions)) == count:
        return tuple(descriptions)
    return tuple(str(b + 1) for b in range(count))


def chip_origins(length: int, size: int, overlap: int) -> list[int]:
    """Offsets of chips of ``size`` along a side of ``length`` pixels, ``overlap`` apart; the
    last one ends at the edge."""
    if length <= size:
        return [0]
    stride = size - overlap
    origins = list(range(0, length - size + 1, stride))
    if origins[-1] != length - size:
        origins.append(length - size)
    return origins


def _scenes(data_dir: Path) -> tuple[Path, list[Path]]:
    if data_dir.is_file():
        return data_dir.parent, [data_dir]
    if not data_dir.is_dir():
        raise DataNotFoundError(f"{data_dir} is neither a raster nor a folder; pass --data-dir FILE.tif or a folder "
                                "of rasters")
    found = sorted(p for p in data_dir.iterdir() if p.is_file() and p.suffix.lower() in SCENE_SUFFIXES
                   and not p.name.startswith("."))
    if not found:
        raise DataNotFoundError(f"no rasters ({', '.join(SCENE_SUFFIXES)}) in {data_dir}; pass --data-dir a raster "
                                "or a folder of them")
    return data_dir, found


def scan_raster_mask(path: Path, info: RasterInfo) -> set[float]:
    """The distinct values of a mask raster, read :data:`SCAN_ROWS` rows at a time."""
    values: set[float] = set()
    for row in range(0, info.height, SCAN_ROWS):
        block = mask_values(path, (0, row, info.width, min(SCAN_ROWS, info.height - row)))
        values |= {float(v) for v in distinct_values(block)}
        if len(values) > 2:
            raise ImageFormatError(f"mask {path} holds more than two values ({', '.join(f'{v:g}' for v in sorted(values)[:4])}"
                                   ", ...); a binary mask holds two, one for the background and one for the foreground")
    return values


@register_dataset("scene", options=("chip_size", "chip_overlap"))
def load_scene(data_dir: Path | None, download: bool = False, chip_size: int = DEFAULT_CHIP_SIZE,
               chip_overlap: int = 0) -> DatasetIndex:
    """Chips of the rasters at ``data_dir`` (see the module docstring)."""
    if download:
        raise UsageError("the 'scene' dataset is your own rasters and cannot be downloaded; drop --download")
    if data_dir is None:
        raise UsageError("the 'scene' dataset needs --data-dir: a raster (GeoTIFF, ...) or a folder of rasters")
    if chip_size < 16 or not 0 <= chip_overlap < chip_size:
        raise UsageError(f"--chip-size must be at least 16 and --chip-overlap between 0 and the chip size; got "
                         f"{chip_size} and {chip_overlap}")
    root, paths = _scenes(data_dir)
    masks_dir = root / "masks"
    infos = {p: raster_info(p) for p in paths}
    first = infos[paths[0]]
    for p, info in infos.items():
        if (info.count, info.dtype) != (first.count, first.dtype):
            raise DataNotFoundError(f"{p} has {info.count} band(s) of {info.dtype}, but {paths[0]} has {first.count} "
                                    f"of {first.dtype}; the rasters of one dataset need the same bands")
    with_masks = masks_dir.is_dir()
    ids, scenes, windows, mask_ids, georef, mask_values_seen = [], [], [], [], {}, set()
    for path, info in infos.items():
        rel = relative_id(path, root)
        georef[rel] = {"crs": info.crs, "transform": list(info.transform), "width": info.width, "height": info.height}
        if with_masks:
            mask = masks_dir / path.name
            if not mask.is_file():
                raise DataNotFoundError(f"{path} has no mask {mask} (masks/ holds rasters named as the scenes)")
            mask_info = raster_info(mask)
            if (mask_info.width, mask_info.height, mask_info.transform) != (info.width, info.height, info.transform):
                raise DataNotFoundError(f"the mask {mask} is not aligned with {path} (size {mask_info.width} x "
                                        f"{mask_info.height}, transform {mask_info.transform[:6]} against {info.width} x "
                                        f"{info.height}, {info.transform[:6]}); resample it onto the scene's grid")
            mask_values_seen |= scan_raster_mask(mask, mask_info)
            if len(mask_values_seen) > 2:
                raise ImageFormatError(f"the masks up to {mask} hold more than two values together; a binary mask "
                                       "holds two")
        for row in chip_origins(info.height, chip_size, chip_overlap):
            for col in chip_origins(info.width, chip_size, chip_overlap):
                ids.append(f"{rel}#{col},{row}")
                scenes.append(rel)
                windows.append((col, row, min(chip_size, info.width), min(chip_size, info.height)))
                if with_masks:
                    mask_ids.append(relative_id(masks_dir / path.name, root))
    bands = band_names(first.count, first.descriptions)
    chips = Chips(scenes, np.asarray(windows, dtype=np.int64), georef)
    options = {"chip_size": chip_size, "chip_overlap": chip_overlap}
    if with_masks:
        return DatasetIndex("scene", root, ids, np.zeros(len(ids), dtype=np.int64), SEGMENTATION_CLASSES,
                            mask_ids=mask_ids, mask_encoding=MaskEncoding(tuple(sorted(mask_values_seen))), bands=bands,
                            dtype=first.dtype, chips=chips, options=options)
    return DatasetIndex("scene", root, ids, np.zeros(len(ids), dtype=np.int64), ["scene"], bands=bands,
                        dtype=first.dtype, chips=chips, options=options)


class MapLocator:
    """Between map coordinates and chips: which chip holds a map point, and where each chip pixel
    lies on the map. ``georef``, ``scenes`` and ``windows`` as in :class:`~samembed.datasets.base.Chips`
    (a cache group of chips holds them as its ``georef`` attribute and its ``scene`` and ``window``
    arrays)."""

    def __init__(self, georef: dict[str, dict], scenes, windows):
        self.georef, self.scenes, self.windows = georef, list(scenes), np.asarray(windows)

    def transform(self, i: int):
        """The affine transform of chip ``i``: its pixel (col, row) -> map (x, y)."""
        from affine import Affine

        scene = self.georef[self.scenes[i]]
        col, row = int(self.windows[i][0]), int(self.windows[i][1])
        return Affine(*scene["transform"]) @ Affine.translation(col, row)

    def crs(self, i: int) -> str | None:
        return self.georef[self.scenes[i]]["crs"]

    def locate(self, x: float, y: float, scene: str | None = None) -> tuple[int, float, float]:
        """(chip index, col, row in that chip) of the map point (x, y); among overlapping chips the
        one whose centre is nearest. ``scene`` picks a raster when several are given."""
        from affine import Affine

        best = None
        for i, name in enumerate(self.scenes):
            if scene is not None and name != scene:
                continue
            if self.georef[name]["crs"] is None:
                raise UsageError(f"{name} has no CRS, so map coordinates mean nothing for it; give pixel coordinates "
                                 "of a chip instead")
            col, row = ~Affine(*self.georef[name]["transform"]) @ (x, y)
            c0, r0, w, h = (int(v) for v in self.windows[i])
            if c0 <= col < c0 + w and r0 <= row < r0 + h:
                distance = (col - c0 - w / 2) ** 2 + (row - r0 - h / 2) ** 2
                if best is None or distance < best[0]:
                    best = (distance, i, col - c0, row - r0)
        if best is None:
            raise UsageError(f"the map point ({x:g}, {y:g}) lies outside every chip"
                             + (f" of {scene}" if scene else "") + "; is it in the rasters' CRS?")
        return best[1], best[2], best[3]
