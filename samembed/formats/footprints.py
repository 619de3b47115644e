"""Where each stored image lies on the ground: the footprint polygon of every chip of a scene (its
window mapped by the scene's transform) or of every georeferenced raster file (its bounds, read
from the file's header at export), and their CRS. Images without georeferencing have none; a
group whose images lie in several CRSs is refused unless the footprints are taken to one CRS
(``to_crs``, a declared reprojection through PROJ)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cache.reader import CacheGroup
from ..errors import DataNotFoundError, UsageError


@dataclass(frozen=True)
class Footprints:
    """``corners`` (N, 4, 2) float64: each image's four corners in ``crs`` (x, y: top-left,
    top-right, bottom-right, bottom-left), NaN for an image without georeferencing; ``crs`` WKT (or
    ``None`` when no image has one); ``source`` says where they were read from."""

    corners: np.ndarray
    crs: str | None
    source: str

    @property
    def any(self) -> bool:
        return bool(np.isfinite(self.corners).all(axis=(1, 2)).any())


def _corners(transform, col, row, width, height) -> np.ndarray:
    """(k, 4, 2) corners of k windows (arrays of col, row, width, height) on a grid with the affine
    ``transform`` (a, b, c, d, e, f: x = a col + b row + c, y = d col + e row + f)."""
    a, b, c, d, e, f = (float(v) for v in transform[:6])
    cols = np.stack([col, col + width, col + width, col], axis=-1).astype(np.float64)  # (k, 4)
    rows = np.stack([row, row, row + height, row + height], axis=-1).astype(np.float64)
    return np.stack([a * cols + b * rows + c, d * cols + e * rows + f], axis=-1)


def footprints(group: CacheGroup, to_crs: str | None = None) -> Footprints:
    """The footprints of every image of ``group`` (see the module)."""
    n = group.num_images
    corners = np.full((n, 4, 2), np.nan)
    crs_of = [None] * n
    georef = group.attrs.get("georef")
    if georef:  # chips of scenes: the stored windows on each scene's grid
        scenes, windows = np.asarray(group.read("scene"), dtype=object), group.read("window")
        for name, scene in georef.items():
            rows = np.flatnonzero(scenes == name)
            if scene.get("crs") and len(rows):
                corners[rows] = _corners(scene["transform"], *windows[rows].T)
                for i in rows:
                    crs_of[i] = scene["crs"]
        source = "chip windows on the scenes' grids (the cache's georef attribute)"
    else:
        source = _from_files(group, corners, crs_of)
    return _one_crs(group, corners, crs_of, to_crs, source)


def _from_files(group: CacheGroup, corners: np.ndarray, crs_of: list) -> str:
    """Bounds of each image file that is a georeferenced raster (read from its header)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError
    import warnings

    root = Path(group.attrs.get("data_root", ""))
    ids = group.read("image_ids")
    rasters = [i for i, image_id in enumerate(ids) if str(image_id).lower().endswith((".tif", ".tiff", ".jp2"))]
    if not rasters:
        return "none: the images are not georeferenced rasters"
    if not root.is_dir():
        raise DataNotFoundError(f"the footprints of {group.where} are read from its rasters' headers, and {root} (where "
                                "they were extracted from) is not there; run the export where the data is")
    for i in rasters:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(root / str(ids[i])) as src:
                    if src.crs is None:
                        continue
                    corners[i] = _corners(tuple(src.transform), *np.array([[0], [0], [src.width], [src.height]]))[0]
                    crs_of[i] = src.crs.to_wkt()
        except (RasterioError, OSError) as err:
            raise DataNotFoundError(f"cannot read the raster {root / str(ids[i])} for its footprint "
                                    f"({' '.join(str(err).split())})") from None
    return f"the rasters' headers under {root}"


def _one_crs(group: CacheGroup, corners: np.ndarray, crs_of: list, to_crs: str | None, source: str) -> Footprints:
    from rasterio.crs import CRS

    present = sorted({c for c in crs_of if c})
    if to_crs is not None:
        target = _crs(to_crs)
        labels = np.asarray([c or "" for c in crs_of], dtype=object)
        for wkt in present:  # every image of one CRS at once
            if CRS.from_wkt(wkt) != target:
                rows = np.flatnonzero(labels == wkt)
                corners[rows] = _reproject(corners[rows].reshape(-1, 2), CRS.from_wkt(wkt), target).reshape(-1, 4, 2)
        return Footprints(corners, target.to_wkt() if present else None, source + f", reprojected to {to_crs}")
    distinct = {CRS.from_wkt(c).to_wkt() for c in present}
    if len(distinct) > 1:
        names = sorted({_name(c) for c in present})
        raise UsageError(f"the images of {group.where} lie in {len(distinct)} CRSs ({', '.join(names[:4])}"
                         f"{' ...' if len(names) > 4 else ''}); one file holds one CRS: give --crs EPSG:4326 (or "
                         "another) to reproject every footprint to it")
    return Footprints(corners, present[0] if present else None, source)


def _crs(text: str):
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        return CRS.from_user_input(text)
    except CRSError:
        raise UsageError(f"--crs {text} is not a CRS PROJ knows; give one like EPSG:4326 or EPSG:32633") from None


def _name(wkt: str) -> str:
    from rasterio.crs import CRS

    crs = CRS.from_wkt(wkt)
    return f"EPSG:{crs.to_epsg()}" if crs.to_epsg() else crs.to_string()[:40]


def _reproject(corners: np.ndarray, source, target) -> np.ndarray:
    """(m, 2) points taken to ``target`` (a footprint's four corners stay a quadrilateral: at chip
    scale the bend of straight lines between CRSs is far below a pixel)."""
    from rasterio.warp import transform

    xs, ys = transform(source, target, corners[:, 0].tolist(), corners[:, 1].tolist())
    return np.stack([xs, ys], axis=1)
