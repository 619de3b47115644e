"""Reading embeddings from the cache once per process: pooled vectors always in memory, grid maps
in memory when they fit the budget and read chunk by chunk when they do not."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from ..cache.integrity import CheckedArray

DEFAULT_MEMORY_FRACTION = 0.5


def memory_budget() -> int:
    """Bytes of embeddings we allow in memory: half the machine's physical memory."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * DEFAULT_MEMORY_FRACTION)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 4 << 30


class ArraySource:
    """Rows of an in-memory (N, ...) array in batches, with :class:`GridSource`'s interface."""

    def __init__(self, data: np.ndarray):
        self.data = data

    def batches(self, indices: np.ndarray, batch_size: int, rng: np.random.Generator | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = rng.permutation(indices) if rng is not None else indices
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            yield idx, self.data[idx]


class GridSource:
    """Batches of grid maps (B, C, G, G) float16 for given image indices.

    In memory when the whole array fits ``budget`` bytes; otherwise read from the Zarr array in
    blocks of whole chunks (shuffled chunk order, shuffled rows within a block), so memory stays
    at about ``block_bytes`` however large the cache is. A block's chunks are read in one
    selection, which zarr fetches concurrently (what keeps object storage fast)."""

    def __init__(self, array: CheckedArray, budget: int | None = None, block_bytes: int = 256 << 20):
        self.array = array
        self.in_memory = array.nbytes <= (memory_budget() if budget is None else budget)
        self.data = array[:] if self.in_memory else None
        self.chunk_rows = array.chunks[0]
        row_bytes = array.nbytes // max(1, array.shape[0])
        self.block_chunks = max(1, block_bytes // max(1, row_bytes * self.chunk_rows))

    def batches(self, indices: np.ndarray, batch_size: int, rng: np.random.Generator | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(idx, x)`` covering ``indices`` once: shuffled when ``rng`` is given."""
        if self.in_memory:
            yield from ArraySource(self.data).batches(indices, batch_size, rng)
            return
        chunks = np.unique(indices // self.chunk_rows)
        if rng is not None:
            chunks = rng.permutation(chunks)
        n = self.array.shape[0]
        wanted = np.zeros(n, bool)
        wanted[indices] = True
        pending_idx, pending_x = [], []
        for b in range(0, len(chunks), self.block_chunks):
            rows = np.concatenate([np.flatnonzero(wanted[c * self.chunk_rows:min((c + 1) * self.chunk_rows, n)])
                                   + c * self.chunk_rows for c in np.sort(chunks[b:b + self.block_chunks])])
            pending_idx.append(rows)
            pending_x.append(self.array.read_rows(rows))
            idx, x = np.concatenate(pending_idx), np.concatenate(pending_x)
            if rng is not None:
                perm = rng.permutation(len(idx))
                idx, x = idx[perm], x[perm]
            full = len(idx) // batch_size * batch_size
            for i in range(0, full, batch_size):
                yield idx[i:i + batch_size], x[i:i + batch_size]
            pending_idx, pending_x = [idx[full:]], [x[full:]]
        idx, x = np.concatenate(pending_idx), np.concatenate(pending_x)
        if len(idx):
            yield idx, x


def load_raw_images(index, usable: np.ndarray, size: int, progress: bool = False) -> np.ndarray:
    """(N, 3, size, size) uint8: every usable image of ``index`` resized (longest side ``size``)
    and padded like SAM's input, for the baselines trained from scratch; unusable rows are 0."""
    from tqdm.auto import tqdm

    from ..datasets import read_rgb
    from ..encoders.geometry import Geometry

    geometry = Geometry(size)
    out = np.zeros((len(index), 3, size, size), np.uint8)
    for i in tqdm(np.flatnonzero(usable), desc="reading images", unit="img", disable=not progress, dynamic_ncols=True):
        out[i] = geometry.canvas(read_rgb(index.path(i)))[0].numpy()
    return out
