"""Queries: an image or chip id (a string, as in the group's ``image_ids``), a row number, or a
:class:`MapPoint` in a scene's map coordinates (the chip that holds it at granularity ``image``,
the map cell under it at ``cell``). Each becomes the items it stands for; a query that is an
image at granularity ``cell`` stands for the mean of its cells."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from numbers import Integral

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UsageError, shortened
from .read import memo, read_rows
from .space import Space, cell_pixels


@dataclass(frozen=True)
class MapPoint:
    """A point in map coordinates, in the scene's CRS; ``scene`` names the raster (relative to
    the dataset root) when the group holds several that overlap."""

    x: float
    y: float
    scene: str | None = None

    def __str__(self) -> str:
        return f"({self.x:.10g}, {self.y:.10g})" + (f" in {self.scene}" if self.scene else "")


@dataclass(frozen=True)
class Query:
    """A resolved query: its ``items`` in the space, the ``row`` (image) it is on and its text."""

    items: tuple[int, ...]
    row: int
    text: str


class Resolver:
    """Resolves queries against one :class:`Space`."""

    def __init__(self, space: Space):
        self.space, self.group = space, space.group

    @property
    def ids(self) -> np.ndarray:
        return memo(self.group, "ids", lambda: np.array([str(v) for v in read_rows(self.group, "image_ids")],
                                                        dtype=object))

    @property
    def row_of_id(self) -> dict[str, int]:
        return memo(self.group, "row_of_id", lambda: {name: i for i, name in enumerate(self.ids)})

    @cached_property
    def locator(self):
        georef = self.group.attrs.get("georef")
        if not georef:
            return None
        from ..datasets.scene import MapLocator

        return MapLocator(georef, [str(v) for v in read_rows(self.group, "scene")], read_rows(self.group, "window"))

    def resolve(self, query) -> Query:
        if isinstance(query, MapPoint):
            return self._point(query)
        if isinstance(query, (bool, np.bool_)):
            raise UsageError(f"a query is an image id, a row number or a MapPoint, not {query!r}")
        if isinstance(query, Integral):
            row = int(query)
            if not 0 <= row < self.space.rows:
                raise UsageError(f"row {row} is not in {self.group.where}: it holds rows 0 to {self.space.rows - 1}")
            return self._image(row, f"row {row} ({self.ids[row]})")
        if isinstance(query, str):
            if query not in self.row_of_id:
                raise UsageError(f"'{shortened(query)}' is not an image id of {self.group.where}; ids are paths "
                                 f"relative to the dataset, such as '{shortened(self.ids[0])}' (`samembed info` "
                                 "shows the group)")
            return self._image(self.row_of_id[query], query)
        raise UsageError(f"a query is an image id, a row number or a MapPoint, not {shortened(repr(query))}")

    def _check_usable(self, row: int, text: str) -> None:
        if not self.space.usable[row]:
            raise UsageError(f"{text} is not usable in {self.group.where} (unreadable, or blank: no data), so it "
                             "cannot be a query; choose another image")

    def _image(self, row: int, text: str) -> Query:
        self._check_usable(row, text)
        per = self.space.per_row
        cells = np.flatnonzero(self.space.valid_cells[row])
        return Query(tuple(int(row * per + c) for c in cells), row, text)

    def _point(self, point: MapPoint) -> Query:
        if self.locator is None:
            raise UsageError(f"{self.group.dataset} is not a dataset of georeferenced chips, so a map point means "
                             "nothing for it; give image ids instead")
        if point.scene is not None and point.scene not in self.locator.georef:
            raise UsageError(f"'{shortened(point.scene)}' is not a scene of {self.group.where}; it has "
                             f"{', '.join(sorted(self.locator.georef))[:200]}")
        row, col, line = self.locator.locate(point.x, point.y, point.scene)  # one line when outside every chip
        text = f"map point {point}"
        self._check_usable(row, f"the chip {self.ids[row]} under the {text}")
        if self.space.granularity == "image":
            return Query((row,), row, f"{text} (chip {self.ids[row]})")
        window = self.locator.windows[row]
        ph, pw = cell_pixels(self.space.geometry, self.space.side, (window[3], window[2]))
        cy, cx = min(int(line // ph), self.space.side - 1), min(int(col // pw), self.space.side - 1)
        item = row * self.space.per_row + cy * self.space.side + cx
        if not self.space.valid_cells[row, cy * self.space.side + cx]:
            raise UsageError(f"the {text} falls on a cell that holds no data (chip {self.ids[row]}, cell y={cy} "
                             f"x={cx}); choose a point on the image")
        return Query((item,), row, f"{text} (chip {self.ids[row]}, cell y={cy} x={cx})")

    def vectors(self, queries: list[Query]) -> torch.Tensor:
        """(len(queries), D): each query's normalised vector (the mean of its items' vectors)."""
        if not queries:
            return torch.empty(0, self.space.dim)
        every = np.array(sorted({i for q in queries for i in q.items}), np.int64)
        found = self.space.vectors(every)
        where = {int(item): p for p, item in enumerate(every)}
        return torch.stack([F.normalize(found[[where[i] for i in q.items]].mean(0), dim=0) for q in queries])
