"""What a search ranks: the pooled vector of every image (granularity ``image``), or every cell of
the stored grid maps (granularity ``cell``). An item is a row (``image``) or ``row * G * G + y * G
+ x`` (``cell``). Vectors are compared by cosine, so blocks come L2-normalised in float32.

Items that hold no image are never ranked: unusable images (:meth:`CacheGroup.usable`: unreadable
or blank), and at ``cell`` the cells outside the image (the padding of the encoder's square input)
or without data (``data_share`` 0)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from ..errors import UsageError
from .read import memo, read_rows, read_selected

BLOCK_FLOATS = 1 << 23  # float32 values per block read (32 MiB): bounds search's memory
GRANULARITIES = ("image", "cell")


@dataclass
class Block:
    """Rows ``start:stop`` of the group: ``raw`` (m, D) float32 vectors as stored, their L2
    ``norms`` (m,), ``valid`` (m,) bool, and the item number of the first vector (items follow in
    order). Scores are ``raw @ w / norms``: cheaper than normalising every vector first."""

    start: int
    stop: int
    first_item: int
    raw: torch.Tensor
    norms: torch.Tensor
    valid: torch.Tensor

    @property
    def vectors(self) -> torch.Tensor:
        """(m, D) float32, L2-normalised."""
        return self.raw / self.norms[:, None]

    def scores(self, weights: torch.Tensor) -> torch.Tensor:
        """(m,) cosine-space scores ``x / |x| . weights``."""
        return (self.raw @ weights) / self.norms


class Space:
    """The items of one group at one granularity, for one pooled ``feature`` (``image``) or the
    grid map (``cell``)."""

    def __init__(self, group, granularity: str = "image", feature: str | None = None):
        if granularity not in GRANULARITIES:
            raise UsageError(f"granularity must be 'image' or 'cell', not '{granularity}'")
        self.group, self.granularity = group, granularity
        pooled = list(group.attrs.get("pooled", ("neck", "trunk")))
        if granularity == "image":
            feature = feature or pooled[0]
            if feature not in pooled:
                raise UsageError(f"feature must be one of the pooled arrays of {group.where} ({', '.join(pooled)}), "
                                 f"not '{feature}'")
            self.array_name, self.side = feature, 1
        else:
            if "grid" not in group.group:
                raise UsageError(f"{group.where} stores no grid map, so it cannot be searched per map cell; search "
                                 "with granularity 'image'")
            if feature not in (None, "grid"):
                raise UsageError(f"granularity 'cell' searches the stored grid map; drop feature '{feature}'")
            self.array_name, self.side = "grid", int(group.attrs.get("grid") or group.group["grid"].shape[-1])
        array = group.group[self.array_name]
        self.feature = feature if granularity == "image" else "grid"
        self.rows, self.dim = int(array.shape[0]), int(array.shape[1])
        self.per_row = self.side * self.side
        chunk = int(array.chunks[0])
        rows = max(1, BLOCK_FLOATS // (self.per_row * self.dim))
        self.block_rows = max(chunk, rows // chunk * chunk)  # whole chunks: each is decompressed once

    @property
    def items(self) -> int:
        """Items in the space, usable or not (item numbers run below it)."""
        return self.rows * self.per_row

    @property
    def usable(self) -> np.ndarray:
        """(N,) bool: the group's usable images."""
        return memo(self.group, "usable", lambda: np.asarray(self.group.usable(), bool))

    @property
    def valid_cells(self) -> np.ndarray:
        """(N, G * G) bool: the cells that hold the image (every cell at ``image``: one per row)."""
        return memo(self.group, ("rankable", self.granularity), self._valid_cells)

    def _valid_cells(self) -> np.ndarray:
        valid = np.repeat(self.usable[:, None], self.per_row, axis=1)
        if self.granularity == "cell":
            valid &= self._cells_on_image()
            if "data_share" in self.group.group:
                valid &= read_rows(self.group, "data_share").reshape(self.rows, -1) > 0
        return valid

    def _cells_on_image(self) -> np.ndarray:
        """(N, G * G) bool: cells of the square input that the resized image covers, at least in part."""
        cover_y, cover_x = self.cell_cover()
        g = np.arange(self.side)
        return ((g[None, :, None] < cover_y[:, None, None]) & (g[None, None, :] < cover_x[:, None, None])).reshape(
            self.rows, -1)

    def cell_cover(self) -> tuple[np.ndarray, np.ndarray]:
        """(N,) cells down and across that the resized image covers (the rest is padding)."""
        geometry = self.geometry
        full = np.full(self.rows, self.side)
        if geometry is None or geometry.resize == "square" or "valid_hw" not in self.group.group:
            return full, full
        hw = read_rows(self.group, "valid_hw").astype(np.int64)
        hw[(hw == 0).all(axis=1)] = geometry.img_size  # not recorded (generated groups): the whole square
        cover = np.ceil(hw * self.side / geometry.img_size).astype(np.int64)
        return np.clip(cover[:, 0], 1, self.side), np.clip(cover[:, 1], 1, self.side)

    @cached_property
    def geometry(self):
        from ..encoders.geometry import Geometry

        encoder = self.group.signature.get("encoder", {})
        return Geometry.from_signature(encoder) if encoder.get("img_size") else None

    @property
    def count(self) -> int:
        """Items that can be ranked."""
        return int(self.valid_cells.sum())

    def split(self, item: int) -> tuple[int, int, int]:
        """(row, cell y, cell x) of an item (0, 0 at ``image``)."""
        row, cell = divmod(int(item), self.per_row)
        return row, cell // self.side, cell % self.side

    def _raw(self, raw: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """((m, D) float32 vectors, (m,) their norms, at least 1e-12) of a block of stored rows."""
        x = torch.from_numpy(np.ascontiguousarray(raw))
        if self.granularity == "cell":  # (b, C, G, G) -> (b * G * G, C), items in row, y, x order
            x = x.permute(0, 2, 3, 1).reshape(-1, self.dim)
        x = x.float()
        return x, torch.linalg.vector_norm(x, dim=1).clamp_min(1e-12)

    def _vectors(self, raw: np.ndarray) -> torch.Tensor:
        """(m, D) float32 normalised vectors of a block of stored rows."""
        x, norms = self._raw(raw)
        return x / norms[:, None]

    def blocks(self, start: int = 0, stop: int | None = None) -> Iterator[Block]:
        """Rows ``start:stop`` in blocks of about :data:`BLOCK_FLOATS` values."""
        stop = self.rows if stop is None else stop
        valid = self.valid_cells
        for lo in range(start, stop, self.block_rows):
            hi = min(stop, lo + self.block_rows)
            if not valid[lo:hi].any():
                continue
            raw, norms = self._raw(read_rows(self.group, self.array_name, lo, hi))
            yield Block(lo, hi, lo * self.per_row, raw, norms, torch.from_numpy(valid[lo:hi].reshape(-1)))

    def vectors(self, items) -> torch.Tensor:
        """(len(items), D) normalised vectors of the given items (their rows read together)."""
        items = np.asarray(items, np.int64)
        if not len(items):
            return torch.empty(0, self.dim)
        rows = items // self.per_row
        unique = np.unique(rows)
        found = self._vectors(read_selected(self.group, self.array_name, unique))  # (len(unique) * per_row, D)
        where = np.searchsorted(unique, rows) * self.per_row + items % self.per_row
        return found[torch.from_numpy(where)]

    def sample(self, count: int, seed: int = 0, exclude=()) -> np.ndarray:
        """Up to ``count`` rankable items drawn at random (``seed``), none of ``exclude``."""
        candidates = np.flatnonzero(self.valid_cells.reshape(-1))
        candidates = np.setdiff1d(candidates, np.asarray(list(exclude), np.int64))
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(candidates, size=min(count, len(candidates)), replace=False))

    def describe(self) -> str:
        what = f"pooled '{self.feature}'" if self.granularity == "image" else f"grid map ({self.side} x {self.side} cells)"
        return f"{self.granularity} granularity, {what}"


def cell_pixels(geometry, side: int, window_hw) -> tuple[float, float]:
    """(height, width) in chip pixels of one grid cell of a chip of (height, width) ``window_hw``."""
    h, w = int(window_hw[0]), int(window_hw[1])
    if geometry is None:
        return h / side, w / side
    in_h, in_w = geometry.input_shape((h, w))
    step = geometry.img_size / side  # input pixels per cell
    return step * h / in_h, step * w / in_w

