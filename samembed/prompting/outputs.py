"""Writing prompt masks: a PNG per mask for plain images; for chips of georeferenced scenes a
GeoTIFF on the scene's grid (the chip's window, the scene's CRS and transform) and the mask's
polygons in map coordinates as GeoJSON. Every file is written whole (a temporary name, then a
rename)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import write_whole


def mask_stem(image_id: str, prompt_name: str, k: int) -> str:
    """A file-name stem for prompt ``k`` on ``image_id``: safe characters only."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(image_id.split("#")[0]).stem + ("_" + image_id.split("#")[1]
                                                                                   if "#" in image_id else ""))
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", prompt_name) if prompt_name else f"prompt{k}"
    return f"{base}_{name}"


def write_png(mask: np.ndarray, path: Path) -> Path:
    """(H, W) bool -> a one-band PNG, 255 where the mask is."""
    return write_whole(path, lambda tmp: Image.fromarray(mask.astype(np.uint8) * 255).save(tmp, format="PNG"))


def write_geotiff(mask: np.ndarray, path: Path, crs: str | None, transform) -> Path:
    """(H, W) bool -> a one-band uint8 GeoTIFF (1 where the mask is) with ``crs`` (WKT) and the
    ``transform`` of its pixel grid (an ``affine.Affine``)."""
    import rasterio

    def write(tmp: Path) -> None:
        with rasterio.open(tmp, "w", driver="GTiff", width=mask.shape[1], height=mask.shape[0], count=1, dtype="uint8",
                           crs=crs, transform=transform, nodata=None) as dst:
            dst.write(mask.astype(np.uint8)[None])

    return write_whole(path, write)


def mask_polygons(mask: np.ndarray, transform) -> list[dict]:
    """The polygons of a (H, W) bool mask in map coordinates (GeoJSON geometries)."""
    from rasterio import features

    return [geometry for geometry, value in features.shapes(mask.astype(np.uint8), mask=mask, transform=transform)
            if value == 1]


def write_geojson(features: list[dict], path: Path, crs: str | None) -> Path:
    """A FeatureCollection of ``features`` in the scene's CRS, named in a ``crs`` member (an EPSG
    URN where the CRS has an EPSG code, else its WKT), as GeoJSON readers assume WGS 84 otherwise."""
    collection = {"type": "FeatureCollection", "features": features}
    if crs:
        from rasterio.crs import CRS

        epsg = CRS.from_wkt(crs).to_epsg()
        collection["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}" if epsg else crs}}
    return write_whole(path, lambda tmp: tmp.write_text(json.dumps(collection)))
