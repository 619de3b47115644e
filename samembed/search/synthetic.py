"""A generated cache group of chips of one georeferenced scene with a planted pattern, written
without any encoder: for tests, the README's heat-map picture and the benchmarks. Its numbers are
synthetic and say nothing about any model (the encoder is ``fake``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCENE = "scene.tif"


@dataclass(frozen=True)
class PlantedScene:
    """What :func:`write_scene_cache` planted: ``sites`` [(col0, row0, col1, row1)] in scene pixels
    holding the pattern, and the scene's affine ``transform`` (pixel -> map)."""

    sites: tuple[tuple[int, int, int, int], ...]
    transform: tuple[float, ...]
    crs: str

    def centre(self, site: int) -> tuple[float, float]:
        """Map (x, y) of the centre of site ``site``."""
        from affine import Affine

        c0, r0, c1, r1 = self.sites[site]
        return tuple(float(v) for v in Affine(*self.transform) @ ((c0 + c1) / 2, (r0 + r1) / 2))


def write_scene_cache(cache_dir: str | Path, *, size: tuple[int, int] = (384, 512), chip: int = 128, grid: int = 8,
                      dim: int = 32, sites: tuple[tuple[int, int, int, int], ...] = ((96, 64, 144, 112),
                                                                                     (352, 256, 400, 304)),
                      nodata_cols: int = 32, pixel: float = 10.0, origin: tuple[float, float] = (500000.0, 5000000.0),
                      epsg: int = 32633, seed: int = 0, name: str = "fake-enc@128") -> PlantedScene:
    """A complete group of dataset ``scene``: a (height, width) ``size`` scene cut into ``chip``
    pixel chips (no overlap), each with a (dim, grid, grid) map whose cells are one of four
    land-cover vectors plus noise, except cells whose centre lies in a planted site (scene pixels
    col0, row0, col1, row1): those hold the pattern. The first ``nodata_cols`` columns hold no
    data (``data_share`` 0)."""
    from affine import Affine
    from rasterio.crs import CRS

    from ..cache.integrity import writable
    from ..cache.store import open_group_for_writing
    from ..datasets.base import Chips

    rng = np.random.default_rng(seed)
    h, w = size
    crs = CRS.from_epsg(epsg).to_wkt()
    transform = Affine(pixel, 0, origin[0], 0, -pixel, origin[1])
    windows = [(c, r, chip, chip) for r in range(0, h - chip + 1, chip) for c in range(0, w - chip + 1, chip)]
    n = len(windows)
    cell = chip / grid
    covers = rng.normal(0, 1, (4, dim))
    pattern = rng.normal(0, 1, dim) * 1.5
    # Land cover in blobs of 64 x 64 pixels, so neighbouring cells look alike, as in a real scene.
    cover_of = rng.integers(0, 4, (int(np.ceil(h / 64)), int(np.ceil(w / 64))))
    maps = np.empty((n, dim, grid, grid), np.float32)
    share = np.full((n, grid, grid), 255, np.uint8)
    g = (np.arange(grid) + 0.5) * cell
    for i, (c0, r0, _, _) in enumerate(windows):
        ys, xs = r0 + g, c0 + g  # cell centres in scene pixels
        cover = cover_of[(ys // 64).astype(int)[:, None], (xs // 64).astype(int)[None, :]]  # (G, G)
        maps[i] = np.moveaxis(covers[cover], -1, 0) + 0.6 * rng.normal(0, 1, (dim, grid, grid))
        for s0, t0, s1, t1 in sites:
            inside = ((ys >= t0) & (ys < t1))[:, None] & ((xs >= s0) & (xs < s1))[None, :]
            maps[i][:, inside] = pattern[:, None] + 0.3 * rng.normal(0, 1, (dim, int(inside.sum())))
        share[i][:, xs < nodata_cols] = 0
        maps[i][:, :, xs < nodata_cols] = 0.0
    georef = {SCENE: {"crs": crs, "transform": list(transform)[:6], "width": w, "height": h}}
    chips = Chips([SCENE] * n, np.asarray(windows, np.int64), georef)
    signature = {"encoder": {"encoder": "fake", "img_size": chip}, "grid": grid, "dataset": "scene", "num_images": n}
    group = open_group_for_writing(
        cache_dir, "scene", name, signature, class_names=["scene"], image_ids=[f"{SCENE}#{c},{r}" for c, r, _, _ in windows],
        labels=np.zeros(n, np.int64), pooled_dims={"neck": dim}, map_channels=dim, grid=grid, shard_images=64,
        data_share=True, chips=chips, attrs={"dataset_options": {"chip_size": chip, "chip_overlap": 0}})
    writable(group["grid"])[:] = maps.astype("float16")
    writable(group["neck"])[:] = maps.mean(axis=(2, 3)).astype("float16")
    writable(group["data_share"])[:] = share
    writable(group["valid_hw"])[:] = np.full((n, 2), chip, np.int32)
    writable(group["orig_hw"])[:] = np.full((n, 2), chip, np.int32)
    writable(group["error"])[:] = np.full(n, "", dtype=object)
    writable(group["ok"])[:] = True
    writable(group["done"])[:] = True
    return PlantedScene(tuple(sites), tuple(transform)[:6], crs)
