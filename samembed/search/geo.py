"""Where hits lie on the map: the scene heat map at the grid's resolution, map coordinates of
cells and footprints of chips, for groups of georeferenced chips (a ``georef`` attribute).

The heat map covers a whole scene with one pixel per grid cell of its chips (a cell of the
largest chip: ``chip_size`` / G scene pixels at the default square chips). Each cell of each
usable chip puts its score on the heat-map pixel under its centre; where chips overlap (or the
last row and column of chips, moved back to end at the raster's edge, straddle pixels) a pixel
keeps the highest score. Pixels that no cell with data covers are NaN (nodata)."""

from __future__ import annotations

import numpy as np

from .exact import row_scores
from .read import read_rows
from .space import Space, cell_pixels


def crs_text(wkt: str | None) -> str | None:
    """``EPSG:xxxx`` where the CRS has an EPSG code, else its WKT; ``None`` for none."""
    if not wkt:
        return None
    from ..prompting.crs import resolve

    epsg = resolve(wkt).to_epsg()
    return f"EPSG:{epsg}" if epsg else wkt


class Georef:
    """The georeferencing of a group of chips: scenes, windows, transforms."""

    def __init__(self, space: Space):
        self.space, group = space, space.group
        self.georef = group.attrs["georef"]
        self.scenes = np.array([str(v) for v in read_rows(group, "scene")], dtype=object)
        self.windows = read_rows(group, "window").astype(np.int64)  # col, row, width, height

    def cell_size(self, row: int) -> tuple[float, float]:
        window = self.windows[row]
        return cell_pixels(self.space.geometry, self.space.side, (window[3], window[2]))

    def transform(self, row: int):
        from affine import Affine

        col, line = int(self.windows[row][0]), int(self.windows[row][1])
        return Affine(*self.georef[self.scenes[row]]["transform"][:6]) @ Affine.translation(col, line)

    def cell_centre(self, row: int, cy: int, cx: int) -> tuple[float, float]:
        """Map (x, y) of the centre of cell (cy, cx) of chip ``row``."""
        ph, pw = self.cell_size(row)
        return tuple(float(v) for v in self.transform(row) @ ((cx + 0.5) * pw, (cy + 0.5) * ph))

    def cell_polygon(self, row: int, cy: int, cx: int) -> list[tuple[float, float]]:
        ph, pw = self.cell_size(row)
        return self._ring(row, cx * pw, cy * ph, (cx + 1) * pw, (cy + 1) * ph)

    def chip_polygon(self, row: int) -> list[tuple[float, float]]:
        w, h = int(self.windows[row][2]), int(self.windows[row][3])
        return self._ring(row, 0, 0, w, h)

    def _ring(self, row: int, c0: float, r0: float, c1: float, r1: float) -> list[tuple[float, float]]:
        t = self.transform(row)
        return [tuple(float(v) for v in t @ p) for p in ((c0, r0), (c1, r0), (c1, r1), (c0, r1), (c0, r0))]

    def crs(self, scene: str) -> str | None:
        return crs_text(self.georef[scene].get("crs"))

    def heat_map(self, scene: str, weights, finish) -> tuple[np.ndarray, tuple]:
        """(float32 (H, W) heat map of ``scene``, its affine (a, b, c, d, e, f)) of the scores
        ``finish(x . weights)`` of every cell of the scene's chips."""
        from affine import Affine

        rows = np.flatnonzero(self.scenes == scene)
        info = self.georef[scene]
        widest = rows[np.argmax(self.windows[rows, 2] * self.windows[rows, 3])]
        ph, pw = self.cell_size(int(widest))
        height, width = int(np.ceil(info["height"] / ph - 1e-9)), int(np.ceil(info["width"] / pw - 1e-9))
        heat = np.full((height, width), np.nan, np.float32)
        scores = np.asarray(finish(row_scores(self.space, weights, rows)), np.float32)  # (rows, G * G)
        side = self.space.side
        g = np.arange(side) + 0.5
        for p, row in enumerate(rows):
            h, w = self.cell_size(int(row))
            ys = (self.windows[row][1] + g * h) // ph
            xs = (self.windows[row][0] + g * w) // pw
            iy, ix = np.meshgrid(np.clip(ys, 0, height - 1).astype(int), np.clip(xs, 0, width - 1).astype(int),
                                 indexing="ij")
            values = scores[p].reshape(side, side)
            ok = np.isfinite(values)
            np.fmax.at(heat, (iy[ok], ix[ok]), values[ok])
        transform = Affine(*info["transform"][:6]) @ Affine.scale(pw, ph)
        return heat, tuple(float(v) for v in transform[:6])
